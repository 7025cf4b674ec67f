// Public API of flood control.
export * from "./flood.ts";
export { ipBucket, withoutPort } from "./ip-bucket.ts";
