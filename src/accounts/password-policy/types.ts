// Shared types of the new-password policy: the context a password is checked in, the result with
// one reason per rejection, and the interface every breached-password lookup implements.

/** Stable rejection codes: the UI and API clients switch on these, so they never change meaning. */
export type PolicyReasonCode =
  | "too-short"
  | "too-long"
  /** An unpaired UTF-16 surrogate or a NUL: the hash layer cannot store it exactly as typed. */
  | "not-text"
  | "common"
  /** One short or listed piece repeated ("1" × 16, "password" × 3): guessed as fast as the piece. */
  | "repeated"
  | "context-word"
  | "breached"
  | "breach-check-unavailable";

export interface PolicyReason {
  code: PolicyReasonCode;
  /** A sentence for the person choosing the password. Never contains the password. */
  message: string;
}

export type PolicyResult = { ok: true } | { ok: false; reasons: PolicyReason[] };

/** What we know about the account, to refuse passwords built from it (ASVS 6.2.11). */
export interface PolicyContext {
  email?: string;
  username?: string;
  /** The name of the service or organisation ("Bulwark", "Example Corp"). */
  serviceName?: string;
  /** Other words specific to this site or user (product names, the user's display name, …); each refused whole and by its pieces. */
  extraWords?: readonly string[];
}

/**
 * Outcome of one breached-password lookup. `unavailable` is a lookup that could not be made (the
 * service is down, too slow, or answered nonsense); `failClosed` says whether the policy must then
 * refuse the password (fail-closed) or accept it (fail-open) — the checker's configuration decides.
 */
export type BreachVerdict =
  | { status: "breached"; count: number }
  | { status: "clean" }
  | { status: "unavailable"; reason: string; failClosed: boolean };

/** A source of breached passwords: the k-anonymity range API, an offline file, or a test double. */
export interface BreachChecker {
  /** Short name for logs and the unavailable hook ("range", "offline-file"). */
  readonly name: string;
  check(password: string): Promise<BreachVerdict>;
}
