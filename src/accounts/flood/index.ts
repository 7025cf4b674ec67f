// Public API of flood control.
export * from "./flood.ts";
export { ipBucket } from "./ip-bucket.ts";
