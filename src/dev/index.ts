// Public API of developer tools: synthetic data.
export * from "./seed.ts";
