// The numbers of the MFA module in one place, each with the reason it has the value it has.
import type { Kysely } from "kysely";
import type { Schema } from "../../store/schema.ts";
import type { FloodPolicy } from "../flood/flood.ts";

/** RFC 6238 §4: 30-second time steps; the default every authenticator app uses. */
export const TOTP_PERIOD_MS = 30_000;
/** Six digits: what authenticator apps display (RFC 4226 §5.3 minimum); ASVS 6.5.4 asks for ≥ 20 bits. */
export const TOTP_DIGITS = 6;
/**
 * Steps accepted either side of the server's current step (RFC 6238 §5.2 "at most one time step" of
 * network delay). ±1 means a code lives at most 90 s (ASVS 6.5.5 defined lifetime).
 */
export const TOTP_WINDOW = 1;
/** 160-bit secrets: RFC 4226 §4 R6 recommends 160 bits for HMAC-SHA-1 (ASVS 6.5.3, CSPRNG). */
export const TOTP_SECRET_BYTES = 20;

/** Ten recovery codes: enough for years of lost phones, few enough to print on one line each. */
export const RECOVERY_CODE_COUNT = 10;
/** 15 random bytes = 120 bits per code (ASVS 6.5.2: ≥ 112 bits lets us store a fast SHA-256). */
export const RECOVERY_CODE_BYTES = 15;

/** WebAuthn challenges: 32 random bytes (ASVS 6.7.2 asks for ≥ 64 bits). */
export const WEBAUTHN_CHALLENGE_BYTES = 32;
/** How long a ceremony may take: the WebAuthn timeout hint and the server-side challenge life. */
export const WEBAUTHN_CHALLENGE_TTL_MS = 5 * 60_000;
/** Longest user-chosen passkey name; longer names are refused, not truncated silently. */
export const MAX_CREDENTIAL_NAME = 64;
/** A user may not register more passkeys than this (every bound an attacker controls is bounded). */
export const MAX_WEBAUTHN_CREDENTIALS = 20;
/**
 * Longest credential id a registration may store, in bytes: WebAuthn Level 3 §7.1 step 21 has relying parties refuse
 * longer ones (a stateless security key wraps its key into the id, so ids of a hundred bytes and more are real).
 * PostgreSQL's index on the id refuses rows over ~2.7 KB, so an unbounded id was a 500 there and stored on SQLite.
 */
export const MAX_CREDENTIAL_ID_BYTES = 1023;
/**
 * Shortest credential id a registration may store, in bytes: authenticators make ids of at least 16 bytes (WebAuthn
 * Level 3 §6.1, "Credential ID": 16 bytes with 100 bits of entropy, or a wrapped key, longer still). A shorter one is
 * made up by the client; an empty one was stored as a factor no one could pass and the owner could not remove
 * (DELETE /auth/mfa/webauthn/:id has no empty id to name).
 */
export const MIN_CREDENTIAL_ID_BYTES = 16;

/**
 * Flood policy for second-factor attempts (TOTP codes and recovery codes), counted per user and per
 * factor, never per IP: an attacker who already holds the password can rotate addresses at will.
 *
 * - 5 failures per 5 minutes: a user who mistypes recovers quickly; an attacker gets at most 60 guesses
 *   an hour, and with ±1 step each guess hits with probability 3/10^6.
 * - 100 consecutive failures stop the factor until a success or a reset clears the streak
 *   (NIST SP 800-63B §5.2.2 "no more than 100 consecutive failed attempts"; ASVS 6.3.1, 6.6.3). So an
 *   attacker's total budget is 100 guesses (≈ 3·10^-4 chance against TOTP, ≈ 0 against 120-bit codes).
 *
 * The composition root builds the FloodControl it passes to createMfaService with this policy; the
 * service works with any policy (the Drupal login defaults are stricter: 5 per 6 hours).
 */
export const MFA_FLOOD_POLICY: Readonly<FloodPolicy> = Object.freeze({
  ipLimit: 50,
  ipWindowMs: 60 * 60_000,
  accountLimit: 5,
  accountWindowMs: 5 * 60_000,
  perAccountOnly: true,
  maxConsecutive: 100,
});

/**
 * The MFA limiter's flood namespace. Its counts share the flood tables with the login's, and a login identifier is
 * whatever an attacker types: without a namespace, failed logins as "mfa:totp:<user id>" would raise that user's
 * second-factor streak to its permanent stop. createMfaService refuses a limiter built without it.
 */
export const MFA_FLOOD_NAMESPACE = "mfa";

/**
 * Which count a factor guess goes on. "sign-in": a step-up after the password, a re-authentication, an enrolment's
 * confirmation (whoever guesses there holds the password or a session). "reset": a guess sent with a password reset
 * link, whose holder may hold only the mailbox. Apart, so that guesses made with reset links (as many as the mailbox
 * can ask for) cannot bring the owner's sign-in factors to their 100-failure stop; each is still per user, so asking
 * for new links buys no new guesses.
 */
export type FactorCounter = "sign-in" | "reset";

/** The options of a factor's `prove`: the counter the guess goes on (default "sign-in"). */
export interface FactorProveOptions {
  counter?: FactorCounter;
}

/**
 * The flood identifier of one factor of one user on one counter ("mfa:totp:<id>", "mfa:reset-totp:<id>"); no IP, so the
 * count is per user whatever the address.
 */
export function floodIdentifier(factor: "totp" | "recovery", userId: string, counter: FactorCounter = "sign-in"): string {
  return counter === "reset" ? `mfa:reset-${factor}:${userId}` : `mfa:${factor}:${userId}`;
}

/**
 * What a factor change runs in its own transaction, after the change and only when it happened: the caller's audit
 * event and security notice (ASVS 6.3.7), so the change, its record and the owner's notice commit together or not
 * at all. It may use only the transaction it is given (on SQLite another query would wait for it to end).
 */
export interface FactorChangeOptions {
  within?: (trx: Kysely<Schema>) => Promise<void>;
}

/**
 * A removal's options: `within` as for any change, and `first`, run at the start of the removal's transaction,
 * before the factor's row is touched: the locks `within` will need, taken in the order other transactions take them
 * (a step-up takes the user's session turn, then its factor's row). Same rule: only the transaction it is given.
 */
export interface FactorRemovalOptions extends FactorChangeOptions {
  first?: (trx: Kysely<Schema>) => Promise<void>;
}

/**
 * An authenticator app's confirmation's options, as a removal's: `first` runs before the pending app's row is marked
 * confirmed. The route checks there that the session asking is still live, waiting for a containment batch that holds
 * the account (require-mfa-reenrolment deletes the factors, then the sessions): checked after the row was locked, the
 * check waited for the batch while the batch's DELETE waited for that row (a deadlock, and a failed batch).
 */
export type FactorConfirmOptions = FactorRemovalOptions;

/**
 * A second factor checked but not used up yet. `spend` makes it single-use (a compare-and-set: true only for the
 * one request that wins it) inside the caller's transaction, together with what the factor was for: a step-up's
 * session rotation, a reset's redeemed link. A request that loses that (another request rotated the session or
 * redeemed the link first) rolls its spend back, so a double submit never burns a recovery code for nothing.
 * `spend` may use only the executor it is given (on SQLite another query would wait for the transaction to end);
 * `settle` runs after the commit and clears the factor's failure count.
 */
export interface FactorProof {
  /** The factor checked (factorRef): a session the proof steps up records it, and loses aal 2 when it is removed. */
  readonly factor: string;
  spend(executor: Kysely<Schema>): Promise<boolean>;
  settle(): Promise<void>;
  /**
   * After a failure that stopped what the proof was for (a store past its wait bound: 503 BULWARK_ERR_DB_BUSY), its
   * transaction rolled back with the spend: takes back the attempt `prove` counted, neither a failure nor a success
   * (FloodControl.release), as a login gives back a right password's (abandonLogin). Only a proof has it: a wrong code
   * has none, so it always counts, whatever fails after it — failures an attacker can cause buy no free guesses. A
   * no-op after `settle`, and for a passkey (no count). Not for a spend lost to another request: that is a replay.
   */
  release(): Promise<void>;
  /**
   * A passkey's only, after its spend was lost: whether what won had a counter as high as this proof's or higher — a copy
   * of the authenticator racing it (WebAuthn L3 §6.1.1), not a replay — in which case the passkey is suspended (in a
   * statement of its own: the spend's transaction is rolled back). True: this request made the suspension; the caller
   * lowers the sessions it raised and records `counter-regressed`. False also when a racing copy suspended it first
   * (that one recorded it): the loss is then told as a replay, and the owner is mailed once.
   */
  outrun?(): Promise<boolean>;
}

/**
 * How a session names the second factor that raised it to aal 2 (sessions.factor, migration 25): the authenticator
 * app (one per user), one passkey by its credential id, or a recovery code (spent: nothing to remove later).
 */
export const factorRef = {
  totp: "totp",
  recoveryCode: "recovery-code",
  passkey: (credentialId: string): string => `webauthn:${credentialId}`,
} as const;

/** The kind of factor a factorRef names, as a session list shows it (no credential id); null for none or not known. */
export function factorKind(ref: string | null): "totp" | "webauthn" | "recovery-code" | null {
  if (ref === factorRef.totp || ref === factorRef.recoveryCode) return ref;
  return ref !== null && ref.startsWith(factorRef.passkey("")) ? "webauthn" : null;
}

/** What proving a factor gives: a proof to spend, or why there is none. */
export type Proven<Refusal extends string> = { ok: true; proof: FactorProof } | { ok: false; refusal: Refusal };

/**
 * Spends a proof at once, on its own (the plain `verify` of each factor): "ok" when this request won it, else
 * `lost` (what a concurrent request that spent it first makes this one).
 */
export async function spendNow<Refusal extends string>(proven: Proven<Refusal>, db: Kysely<Schema>, lost: Refusal): Promise<"ok" | Refusal> {
  if (!proven.ok) return proven.refusal;
  if (!(await proven.proof.spend(db))) return lost;
  await proven.proof.settle();
  return "ok";
}
