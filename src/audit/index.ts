// Public API of the audit layer.
export * from "./audit-log.ts";
export * from "./verify.ts";
export * from "./canonical.ts";
export { eventHash, GENESIS_HASH, type ChainFields } from "./chain.ts";
