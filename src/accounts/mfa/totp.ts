// TOTP second factor (RFC 6238: HMAC-SHA-1, 6 digits, 30 s, ±1 step, server clock): enrol, confirm, verify
// with each time step accepted once, replace, remove. Secrets are sealed by the keyring and bound to their row; an app
// waiting for its first code (an enrolment, a replacement) belongs to the session that began it, for 30 minutes.
import type { Kysely } from "kysely";
import { HOTP, Secret, TOTP } from "otpauth";
import { constantTimeEqual, constantTimeEqualString } from "../../crypto/constant-time.ts";
import type { CipherContext, Keyring } from "../../crypto/keyring.ts";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import type { FloodControl } from "../flood/flood.ts";
import { GLOBAL_SCOPE, readStamps, refusedBy, userScope } from "../sessions/revocation.ts";
import { sessionClosedBy, type SessionLimits } from "../sessions/open-rule.ts";
import { mfaErrors } from "./errors.ts";
import { factorRef, floodIdentifier, spendNow, TOTP_DIGITS, TOTP_PERIOD_MS, TOTP_SECRET_BYTES, TOTP_WINDOW, type FactorConfirmOptions, type FactorProveOptions, type FactorRemovalOptions, type Proven } from "./policy.ts";
import type { Schema } from "../../store/schema.ts";

export type TOTPVerdict = "ok" | "invalid" | "replayed" | "throttled" | "not-enrolled";

export interface TOTPFactor {
  /**
   * Starts (or restarts) enrolment: a new secret, stored encrypted and unconfirmed, for `options.sessionId`, the
   * session beginning it (migration 35; none for a caller outside any session), until TOTP_ENROLMENT_TTL_MS has passed.
   * Restarting replaces an unconfirmed secret, whichever session began it.
   */
  begin(userId: string, accountName: string, options?: { sessionId?: string }): Promise<{ uri: string; secret: string }>;
  /**
   * Confirms enrolment with a code from the app; false when the code is wrong. Only the session that began it
   * (`options.sessionId`, absent for an enrolment begun without one), within its lifetime: throws
   * BULWARK_ERR_MFA_NOT_ENROLLED otherwise. Rate-limited on the same counter as `verify`: throws
   * BULWARK_ERR_MFA_THROTTLED (the code not evaluated) past the limit.
   */
  confirm(userId: string, code: string, options?: FactorConfirmOptions & { sessionId?: string }): Promise<boolean>;
  /**
   * Starts replacing the confirmed app: a new secret waits beside it (restarting replaces a waiting one) while the old
   * app keeps signing in, so the account never stands on its password alone. Throws BULWARK_ERR_MFA_NOT_ENROLLED
   * without a confirmed app (enrol one with `begin`).
   */
  beginReplacement(userId: string, accountName: string, options: ReplacementOptions): Promise<{ uri: string; secret: string; expiresAt: number }>;
  /**
   * Swaps the waiting replacement in with a code from the new app, in one transaction (`options` as for `confirm`);
   * false when the code is wrong. Rate-limited on the same counter as `confirm`. Throws BULWARK_ERR_MFA_NOT_ENROLLED
   * when no replacement waits.
   */
  confirmReplacement(userId: string, code: string, options: FactorConfirmOptions & { sessionId: string }): Promise<boolean>;
  /**
   * Hands the waiting enrolment or replacement begun in session `from` to session `to`, which replaced it (a
   * re-authentication): the same browser goes on with it. Nothing when none waits for `from`.
   */
  followSession(userId: string, from: string, to: string): Promise<void>;
  /**
   * Drops what of the user's app waits for a first code, in `executor` when given (a password change or reset, signing
   * out everywhere): a replacement, and an enrolment not confirmed (its row). True when one waited.
   */
  cancelUnconfirmed(userId: string, executor?: Kysely<Schema>): Promise<boolean>;
  /**
   * The user's waiting replacement, if one is still live (within its lifetime, and the session that began it neither
   * ended nor refused by a revocation stamp): when it was begun and when it expires.
   */
  pendingReplacement(userId: string): Promise<{ startedAt: number; expiresAt: number } | null>;
  /** The user's enrolment not confirmed yet, if one is still live as `pendingReplacement` says: when it began and expires. */
  pendingEnrolment(userId: string): Promise<{ startedAt: number; expiresAt: number } | null>;
  /** Drops every replacement past its lifetime (the maintenance pass); returns how many. */
  purgeExpiredReplacements(executor?: Kysely<Schema>): Promise<number>;
  /** Deletes every enrolment not confirmed within its lifetime (the maintenance pass); returns how many. */
  purgeExpiredEnrolments(executor?: Kysely<Schema>): Promise<number>;
  /** Checks a login code: each time step accepted once; attempts rate-limited. */
  verify(userId: string, code: string): Promise<TOTPVerdict>;
  /**
   * Checks a login code without spending its time step: the proof's `spend` does, in the caller's transaction. The
   * guess counts on `options.counter` ("sign-in" by default; "reset" for a code sent with a reset link), and the
   * proof's `settle` clears that counter only.
   */
  prove(userId: string, code: string, options?: FactorProveOptions): Promise<Proven<Exclude<TOTPVerdict, "ok">>>;
  /**
   * Deletes the user's authenticator app; false when there was none. With `confirmed`, only an app in that state: a
   * cancelled enrolment (false) never deletes an app another request confirmed after the caller looked, and a
   * removal (true) never deletes an enrolment begun anew meanwhile.
   */
  remove(userId: string, options?: FactorRemovalOptions & { confirmed?: boolean }): Promise<boolean>;
}

/**
 * How long a replacement app waits for its first code, as an email-change link does: begun by someone at the owner's
 * unlocked computer who kept the seed, it must not wait for a later chance.
 */
export const TOTP_REPLACEMENT_TTL_MS = 30 * 60_000;

/**
 * How long a first app's enrolment waits for its first code: as long as a replacement, for the same story (an intruder
 * at the owner's unlocked computer who begins one and keeps the seed; test/half-done-red-team.test.ts).
 */
export const TOTP_ENROLMENT_TTL_MS = TOTP_REPLACEMENT_TTL_MS;

/**
 * A replacement's beginning: the session beginning it (the only one that may confirm it, migration 32), and what
 * commits with it (`within`: its record and the owner's notice) after `first` (the session checked again).
 */
export interface ReplacementOptions extends Omit<FactorConfirmOptions, "within"> {
  sessionId: string;
  /** Given the replacement's expiry, for its record and notice. */
  within?: (trx: Kysely<Schema>, expiresAt: number) => Promise<void>;
}

/** Where a user's TOTP secret lives: the associated data that a copied ciphertext cannot satisfy. */
export function totpCipherContext(userId: string): CipherContext {
  return { table: "mfa_totp", column: "secret_ct", row: userId };
}

/** Where a replacement app's secret waits for its first code (migration 30): sealed for that column, not secret_ct's. */
function pendingCipherContext(userId: string): CipherContext {
  return { table: "mfa_totp", column: "pending_secret_ct", row: userId };
}

/** Longest account label we put in the URI; an authenticator app shows it, so keep it readable. */
const MAX_ACCOUNT_NAME = 254;

/** The account label an authenticator app shows, checked. */
function accountLabel(accountName: unknown): string {
  if (typeof accountName !== "string" || accountName.trim().length === 0) throw mfaErrors.invalidInput("the account name shown in the authenticator app is empty");
  if (accountName.length > MAX_ACCOUNT_NAME) throw mfaErrors.invalidInput(`the account name is longer than ${MAX_ACCOUNT_NAME} characters`);
  return accountName.trim();
}

/** Digits only after removing the spaces people type ("123 456"); anything else is not a code. */
function normaliseCode(code: unknown): string | null {
  if (typeof code !== "string" || code.length > 32) return null;
  const digits = code.replace(/[\s-]/g, "");
  return new RegExp(`^[0-9]{${TOTP_DIGITS}}$`).test(digits) ? digits : null;
}

/**
 * The time steps within the window whose code equals `code`. Every candidate is computed and compared
 * in constant time (no early exit), so the response time does not tell which step matched.
 */
function matchingSteps(secret: Secret, code: string, now: number): number[] {
  const current = Math.floor(now / TOTP_PERIOD_MS);
  const matches: number[] = [];
  for (let step = current - TOTP_WINDOW; step <= current + TOTP_WINDOW; step++) {
    const expected = HOTP.generate({ secret, algorithm: "SHA1", digits: TOTP_DIGITS, counter: step });
    if (constantTimeEqualString(expected, code)) matches.push(step);
  }
  return matches;
}

/** The otpauth:// URI an authenticator app scans. */
function otpauthURI(issuer: string, label: string, secret: Secret): string {
  return new TOTP({ issuer, label, secret, algorithm: "SHA1", digits: TOTP_DIGITS, period: TOTP_PERIOD_MS / 1000 }).toString();
}

/** Builds the TOTP factor over the mfa_totp table. */
export function createTOTPFactor(deps: {
  db: Kysely<Schema>; clock: Clock; random: RandomSource; keyring: Keyring; flood: FloodControl; issuer: string;
  /** The session lifetimes in force (sessionStands judges a session by them, as the session manager does). */
  sessionLimits: SessionLimits;
}): TOTPFactor {
  const { db, clock, random, keyring, flood, issuer } = deps;

  async function openSecret(userId: string, ciphertext: string): Promise<Secret> {
    // Throws BULWARK_ERR_DECRYPT when the ciphertext was sealed for another row: fail closed, never guess.
    // unseal, not decrypt: a key another process created (a rotation by the CLI) is loaded on first sight.
    const bytes = await keyring.unseal(ciphertext, totpCipherContext(userId));
    return new Secret({ buffer: new Uint8Array(bytes).buffer });
  }

  /**
   * Whether session `sessionId` of `userId` still stands: its row there, not past its absolute expiry, not refused by
   * the user's or the global revocation stamp. What waits for a session is judged by this when read, so every end of
   * the user's sessions (an email confirmation, a lock, a containment, an import), whether or not it cancels it, leaves
   * nothing listed that no session can confirm.
   */
  async function sessionStands(userId: string, sessionId: string | null): Promise<boolean> {
    if (sessionId === null) return false;
    const row = await db.selectFrom("sessions").select(["created_at", "issued_epoch", "expires_at", "last_seen_at"]).where("id", "=", sessionId).where("user_id", "=", userId).executeTakeFirst();
    if (!row) return false;
    // Ended as the session manager judges it (sessionClosedBy: its stored expiry, the lifetimes in force, one shortened
    // since the row was written included, and dates ahead of the clock), so an enrolment is never listed for a session
    // no request can present.
    const dates = { createdAt: Number(row.created_at), lastSeenAt: Number(row.last_seen_at), expiresAt: Number(row.expires_at) };
    if (sessionClosedBy(dates, clock.now(), deps.sessionLimits) !== null) return false;
    return !refusedBy(await readStamps(db, [GLOBAL_SCOPE, userScope(userId)]), Number(row.created_at), Number(row.issued_epoch));
  }

  async function prove(userId: string, code: string, options: FactorProveOptions = {}): Promise<Proven<Exclude<TOTPVerdict, "ok">>> {
    const row = await db.selectFrom("mfa_totp").select(["secret_ct", "last_step", "created_at", "confirmed_at"]).where("user_id", "=", userId).where("confirmed_at", "is not", null).executeTakeFirst();
    if (!row || row.confirmed_at === null) return { ok: false, refusal: "not-enrolled" };
    const enrolment = { created: Number(row.created_at), confirmed: Number(row.confirmed_at) };
    // A reset link's guesses count apart from the sign-in's (FactorCounter): its holder may have only the mailbox.
    const attempt = { identifier: floodIdentifier("totp", userId, options.counter), ip: null };
    // ASVS 6.3.1 / 6.6.3: the check comes before any work, so a throttled guess is not even evaluated; the guess is
    // counted as it starts (FloodControl.begin), so parallel guesses count each other.
    const begun = await flood.begin(attempt);
    if (!begun.allowed) return { ok: false, refusal: "throttled" };
    const digits = normaliseCode(code);
    const steps = digits === null ? [] : matchingSteps(await openSecret(userId, row.secret_ct), digits, clock.now());
    if (steps.length === 0) return { ok: false, refusal: "invalid" };
    const step = Math.max(...steps);
    if (row.last_step !== null && step <= Number(row.last_step)) return { ok: false, refusal: "replayed" };
    return {
      ok: true,
      proof: {
        factor: factorRef.totp,
        async spend(executor) {
          // Compare-and-set: of two concurrent requests with the same code, only one moves last_step (ASVS 6.5.1).
          const result = await executor
            .updateTable("mfa_totp")
            .set({ last_step: step })
            .where("user_id", "=", userId)
            // The enrolment the code was checked against, not merely the user's: an app removed and another confirmed
            // meanwhile (the owner replacing a lost phone) records a step of its own, which the old app's next code passed.
            // Its times, not its ciphertext: a key rotation re-seals the same secret, and an honest spend must still land.
            .where("created_at", "=", enrolment.created)
            .where("confirmed_at", "=", enrolment.confirmed)
            .where((eb) => eb.or([eb("last_step", "is", null), eb("last_step", "<", step)]))
            .executeTakeFirst();
          return Number(result.numUpdatedRows) === 1;
        },
        settle: () => flood.succeeded(begun.ticket),
        release: () => flood.release(begun.ticket),
      },
    };
  }

  return {
    async begin(userId, accountName, options = {}) {
      const label = accountLabel(accountName);
      const secret = new Secret({ buffer: new Uint8Array(random.bytes(TOTP_SECRET_BYTES)).buffer });
      const now = clock.now();
      const secretCt = await keyring.seal(secret.bytes, totpCipherContext(userId));
      // The session beginning it, the only one that confirms it (migration 35): one begun by someone at the owner's
      // unlocked computer, who kept the seed, dies with that session, not waiting for the owner's next one.
      const session = options.sessionId ?? null;
      // One statement: insert, or replace an unconfirmed secret. A confirmed one is never overwritten, so a
      // hijacked session cannot silently swap the user's authenticator (remove it first, which is audited).
      const result = await db
        .insertInto("mfa_totp")
        .values({ user_id: userId, secret_ct: secretCt, created_at: now, confirmed_at: null, last_step: null, enrolment_session_id: session })
        .onConflict((oc) =>
          oc.column("user_id").doUpdateSet({ secret_ct: secretCt, created_at: now, last_step: null, enrolment_session_id: session }).where("mfa_totp.confirmed_at", "is", null),
        )
        .executeTakeFirst();
      if (Number(result.numInsertedOrUpdatedRows ?? 0n) === 0) throw mfaErrors.alreadyConfirmed();
      return { uri: otpauthURI(issuer, label, secret), secret: secret.base32 };
    },

    async beginReplacement(userId, accountName, options) {
      const label = accountLabel(accountName);
      const secret = new Secret({ buffer: new Uint8Array(random.bytes(TOTP_SECRET_BYTES)).buffer });
      const pendingCt = await keyring.seal(secret.bytes, pendingCipherContext(userId));
      const now = clock.now();
      const expiresAt = now + TOTP_REPLACEMENT_TTL_MS;
      await db.transaction().execute(async (trx) => {
        await options.first?.(trx);
        // Beside the confirmed app only: without one there is nothing to replace (and `begin` enrols).
        const result = await trx.updateTable("mfa_totp").set({ pending_secret_ct: pendingCt, pending_created_at: now, pending_session_id: options.sessionId })
          .where("user_id", "=", userId).where("confirmed_at", "is not", null).executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) throw mfaErrors.notEnrolled("authenticator app");
        await options.within?.(trx, expiresAt);
      });
      return { uri: otpauthURI(issuer, label, secret), secret: secret.base32, expiresAt };
    },

    async confirmReplacement(userId, code, options) {
      const row = await db.selectFrom("mfa_totp").select(["pending_secret_ct", "pending_created_at", "pending_session_id", "confirmed_at"]).where("user_id", "=", userId).executeTakeFirst();
      // Only the session that began it, within its lifetime: one begun elsewhere (an intruder's, kept for later) or long
      // ago is no replacement of this session's.
      const live = row && row.confirmed_at !== null && row.pending_secret_ct !== null && row.pending_created_at !== null &&
        row.pending_session_id === options.sessionId && clock.now() - Number(row.pending_created_at) < TOTP_REPLACEMENT_TTL_MS;
      if (!live) throw mfaErrors.noReplacement();
      // The same counter as every code of this user's app (ASVS 6.3.1), counted as it starts.
      const begun = await flood.begin({ identifier: floodIdentifier("totp", userId), ip: null });
      if (!begun.allowed) throw mfaErrors.throttled();
      const digits = normaliseCode(code);
      if (digits === null) return false;
      const bytes = await keyring.unseal(row.pending_secret_ct as string, pendingCipherContext(userId));
      const secret = new Secret({ buffer: new Uint8Array(bytes).buffer });
      const steps = matchingSteps(secret, digits, clock.now());
      if (steps.length === 0) return false;
      // Sealed again for secret_ct: a ciphertext is bound to its column, so the waiting one cannot simply move.
      const sealed = await keyring.seal(secret.bytes, totpCipherContext(userId));
      const begunAt = Number(row.pending_created_at);
      const swapped = await db.transaction().execute(async (trx) => {
        await options.first?.(trx);
        // The replacement the code was checked against (its time, not its ciphertext: a key rotation re-seals it),
        // still beside a confirmed app: one restarted, removed with the app, or swapped in by a concurrent request is not
        // swapped again. The new app's times are its own, so a proof of the old app still in flight loses its spend;
        // the step that confirmed it counts as used.
        const result = await trx.updateTable("mfa_totp")
          .set({ secret_ct: sealed, created_at: begunAt, confirmed_at: clock.now(), last_step: Math.max(...steps), pending_secret_ct: null, pending_created_at: null, pending_session_id: null })
          .where("user_id", "=", userId).where("confirmed_at", "is not", null).where("pending_created_at", "=", begunAt).where("pending_session_id", "=", options.sessionId)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await options.within?.(trx);
        return true;
      });
      if (swapped) await flood.succeeded(begun.ticket);
      return swapped;
    },

    async followSession(userId, from, to) {
      await db.updateTable("mfa_totp").set({ pending_session_id: to }).where("user_id", "=", userId).where("pending_session_id", "=", from).execute();
      await db.updateTable("mfa_totp").set({ enrolment_session_id: to }).where("user_id", "=", userId).where("enrolment_session_id", "=", from).where("confirmed_at", "is", null).execute();
    },

    async cancelUnconfirmed(userId, executor = db) {
      const replacement = await executor.updateTable("mfa_totp").set({ pending_secret_ct: null, pending_created_at: null, pending_session_id: null })
        .where("user_id", "=", userId).where("pending_created_at", "is not", null).executeTakeFirst();
      const enrolment = await executor.deleteFrom("mfa_totp").where("user_id", "=", userId).where("confirmed_at", "is", null).executeTakeFirst();
      return Number(replacement.numUpdatedRows) + Number(enrolment.numDeletedRows) > 0;
    },

    async pendingReplacement(userId) {
      const row = await db.selectFrom("mfa_totp").select(["pending_created_at", "pending_session_id", "confirmed_at"]).where("user_id", "=", userId).executeTakeFirst();
      if (!row || row.confirmed_at === null || row.pending_created_at === null) return null;
      const startedAt = Number(row.pending_created_at);
      const expiresAt = startedAt + TOTP_REPLACEMENT_TTL_MS;
      // Not listed once its session is gone, whatever ended it: no session can confirm it then.
      return clock.now() < expiresAt && (await sessionStands(userId, row.pending_session_id)) ? { startedAt, expiresAt } : null;
    },

    async pendingEnrolment(userId) {
      const row = await db.selectFrom("mfa_totp").select(["created_at", "enrolment_session_id"]).where("user_id", "=", userId).where("confirmed_at", "is", null).executeTakeFirst();
      if (!row) return null;
      const startedAt = Number(row.created_at);
      const expiresAt = startedAt + TOTP_ENROLMENT_TTL_MS;
      return clock.now() < expiresAt && (await sessionStands(userId, row.enrolment_session_id)) ? { startedAt, expiresAt } : null;
    },

    async purgeExpiredReplacements(executor = db) {
      const result = await executor.updateTable("mfa_totp").set({ pending_secret_ct: null, pending_created_at: null, pending_session_id: null })
        .where("pending_created_at", "<=", clock.now() - TOTP_REPLACEMENT_TTL_MS).executeTakeFirst();
      return Number(result.numUpdatedRows);
    },

    async purgeExpiredEnrolments(executor = db) {
      const result = await executor.deleteFrom("mfa_totp").where("confirmed_at", "is", null).where("created_at", "<=", clock.now() - TOTP_ENROLMENT_TTL_MS).executeTakeFirst();
      return Number(result.numDeletedRows);
    },

    async confirm(userId, code, options = {}) {
      const row = await db.selectFrom("mfa_totp").select(["secret_ct", "created_at", "confirmed_at", "enrolment_session_id"]).where("user_id", "=", userId).executeTakeFirst();
      if (!row) throw mfaErrors.notEnrolled("authenticator app enrolment");
      if (row.confirmed_at !== null) throw mfaErrors.alreadyConfirmed();
      // Only the session that began it, within its lifetime, as a replacement: one begun elsewhere (an intruder's at the
      // owner's unlocked computer, kept for later) or long ago enrols nothing. Before the counter: no guess is spent.
      if (row.enrolment_session_id !== (options.sessionId ?? null) || clock.now() - Number(row.created_at) >= TOTP_ENROLMENT_TTL_MS) throw mfaErrors.noEnrolment();
      // Throttled as a login code is, on the same counter (ASVS 6.3.1): guessing the code that confirms an enrolment
      // is guessing a TOTP code of this user. Counted as it starts, so parallel guesses count each other.
      const begun = await flood.begin({ identifier: floodIdentifier("totp", userId), ip: null });
      if (!begun.allowed) throw mfaErrors.throttled();
      const digits = normaliseCode(code);
      if (digits === null) return false;
      const secret = await openSecret(userId, row.secret_ct);
      const steps = matchingSteps(secret, digits, clock.now());
      if (steps.length === 0) return false;
      // The step used to confirm counts as used: the same code cannot then log in (ASVS 6.5.1). The
      // secret_ct condition makes sure a concurrent restart of enrolment is not confirmed with the old code.
      for (let ciphertext = row.secret_ct, attempt = 0; ; attempt++) {
        const expected = ciphertext;
        const confirmed = await db.transaction().execute(async (trx) => {
          await options.first?.(trx);
          const result = await trx
            .updateTable("mfa_totp")
            .set({ confirmed_at: clock.now(), last_step: Math.max(...steps), enrolment_session_id: null })
            .where("user_id", "=", userId)
            .where("confirmed_at", "is", null)
            .where("secret_ct", "=", expected)
            .executeTakeFirst();
          if (Number(result.numUpdatedRows) !== 1) return false;
          await options.within?.(trx);
          return true;
        });
        if (confirmed) {
          await flood.succeeded(begun.ticket);
          return true;
        }
        // A key rotation re-encrypts the pending secret (same secret, new ciphertext): confirm against the new
        // ciphertext if, and only if, it still holds the secret the code was checked against.
        const now = await db.selectFrom("mfa_totp").select(["secret_ct", "confirmed_at"]).where("user_id", "=", userId).executeTakeFirst();
        if (attempt >= 2 || !now || now.confirmed_at !== null || now.secret_ct === ciphertext) return false;
        const same = await openSecret(userId, now.secret_ct).then((s) => constantTimeEqual(s.bytes, secret.bytes), () => false);
        if (!same) return false;
        ciphertext = now.secret_ct;
      }
    },

    async verify(userId, code) {
      return spendNow(await prove(userId, code), db, "replayed");
    },

    prove,

    async remove(userId, options = {}) {
      return db.transaction().execute(async (trx) => {
        await options.first?.(trx);
        let q = trx.deleteFrom("mfa_totp").where("user_id", "=", userId);
        if (options.confirmed !== undefined) q = q.where("confirmed_at", options.confirmed ? "is not" : "is", null);
        const result = await q.executeTakeFirst();
        if (Number(result.numDeletedRows) === 0) return false;
        await options.within?.(trx);
        return true;
      });
    },
  };
}
