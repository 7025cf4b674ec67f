// Public API of the audit layer.
export * from "./audit-log.ts";
export * from "./verify.ts";
export * from "./canonical.ts";
export * from "./errors.ts";
export * from "./trusted-keys.ts";
export { rotateSigningKey, type SigningKeyRotation } from "./rotate-signing-key.ts";
export { checkpointKeyProblem, RETIRED_KEY_GRACE_MS } from "./signing-keys.ts";
export * from "./event-time.ts";
export { firstSeqSince, parseStoredData, type ReadOptions, type StoredData, type StoredRow } from "./read-events.ts";
export { eventHash, GENESIS_HASH, type ChainFields } from "./chain.ts";
