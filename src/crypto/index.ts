// Public API of the crypto layer: constant-time compare, tokens, the keyring and signing.
export * from "./constant-time.ts";
export * from "./tokens.ts";
export * from "./keyring.ts";
export * from "./master-key.ts";
export * from "./errors.ts";
export type { Signer } from "./signer.ts";
