// What every new password of an account is checked with, and what a refusal says: one place for the HTTP routes
// (reset, change, POST /api/v1/users) and `bulwark users create`, so they cannot drift apart (the API once left the
// display name out, and its refusal was worded apart).
import { InputError } from "../../lib/errors.ts";
import { breachCheckUnavailable, verdictUnavailable } from "./errors.ts";
import type { PolicyContext, PolicyResult } from "./types.ts";

/**
 * The context words of an account's new password (ASVS 6.2.11): its email address, its username, its display name
 * (refused whole and by its pieces, as the username is: "gibson…" for "William Gibson", context-words.ts) and the
 * service's name.
 *
 * @example
 * await policy.check(password, accountPasswordContext({ email: "ada@example.org", displayName: "Ada Lovelace" }, "Example"));
 */
export function accountPasswordContext(account: { email: string; username?: string | null; displayName?: string | null }, serviceName: string): PolicyContext {
  return {
    email: account.email, serviceName,
    ...(account.username ? { username: account.username } : {}),
    ...(account.displayName ? { extraWords: [account.displayName] } : {}),
  };
}

/**
 * Throws what a refused verdict means, nothing when it passed: the lookup's outage alone is the server's failure
 * (BULWARK_ERR_BREACH_CHECK_UNAVAILABLE: HTTP 503, CLI exit 3), anything else bad input listing every reason
 * (BULWARK_ERR_PASSWORD_POLICY, their codes in `details.reasons`).
 */
export function throwIfRefused(verdict: PolicyResult): void {
  if (verdict.ok) return;
  if (verdictUnavailable(verdict)) throw breachCheckUnavailable();
  throw new InputError("BULWARK_ERR_PASSWORD_POLICY", `the new password is refused: ${verdict.reasons.map((r) => r.message).join("; ")}`, { details: { reasons: verdict.reasons.map((r) => r.code) } });
}
