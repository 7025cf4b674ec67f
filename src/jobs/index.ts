// Public API of resumable jobs.
export * from "./job-store.ts";
