// Public API of API tokens: `bwk_<id>_<secret>` tokens with scopes, expiry, last use and revocation.
export * from "./token-service.ts";
export { MAX_TOKEN_LENGTH, parseAPIToken, TOKEN_PREFIX } from "./token-format.ts";
export { TokenError, tokenErrors } from "./errors.ts";
