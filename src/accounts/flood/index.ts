// Public API of flood control.
export * from "./flood.ts";
