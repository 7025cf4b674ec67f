// Public API of the account store.
export * from "./user-store.ts";
export * from "./normalise.ts";
