// Errors of the API token module, each with a stable code. A refused token is an expected outcome (a value
// from verify); these errors are for bad input when creating one, and for a live token the MFA policy holds.
import { BulwarkError, InputError, type BulwarkErrorOptions } from "../../lib/errors.ts";

export class TokenError extends BulwarkError {}

export const tokenErrors = {
  invalidInput: (what: string, options?: BulwarkErrorOptions): InputError => new InputError("BULWARK_ERR_TOKEN_INPUT", what, options),
  unknownScope: (scope: string, known: readonly string[]): InputError =>
    new InputError("BULWARK_ERR_TOKEN_SCOPE", `unknown scope "${scope.slice(0, 60)}": a scope is a permission, one of ${known.join(", ")}`),
  outlivesParent: (parentExpiry: string): TokenError =>
    new TokenError("BULWARK_ERR_TOKEN_OUTLIVES_PARENT", "forbidden", `a token minted by a token cannot outlive it: expiresAt must be set and no later than ${parentExpiry} (omit it to expire with the parent)`),
  userNotFound: (): TokenError => new TokenError("BULWARK_ERR_TOKEN_USER", "not-found", "cannot create a token: no such user"),
  chainTooDeep: (max: number): TokenError =>
    new TokenError("BULWARK_ERR_TOKEN_CHAIN_DEPTH", "conflict", `cannot mint a token from this one: it already has ${max} tokens above it (minted by a token minted by a token...), the most a usable token may have; mint it from a session or a token nearer the top`),
  tooManyLive: (max: number): TokenError => new TokenError("BULWARK_ERR_TOKEN_LIMIT", "conflict", `the user already has ${max} live API tokens; revoke some first`),
  // The token is genuine and live; what refuses it is its owner's account under the MFA policy in force (ASVS 6.3.3).
  ownerMFARequired: (): TokenError =>
    new TokenError(
      "BULWARK_ERR_TOKEN_OWNER_MFA_REQUIRED", "forbidden",
      "this API token's account has no second factor, which this server now requires of it (BULWARK_REQUIRE_MFA): the token is refused until the account's owner signs in and enrols one under /auth/mfa, or an administrator revokes the token (a revoke-tokens containment job over the account)",
    ),
};
