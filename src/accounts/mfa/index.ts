// Public API of the MFA module: one service over TOTP, recovery codes and WebAuthn, built from the app's
// database, clock, random source, keyring and flood control.
import type { Kysely } from "kysely";
import type { Keyring } from "../../crypto/keyring.ts";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import { executorDialect, lockKeyOf, serialiseTransactions, type Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { prepareHot } from "../../store/sqlite-dialect-prepared.ts";
import type { FloodControl } from "../flood/flood.ts";
import { resolveSessionPolicy, type SessionPolicy } from "../sessions/policy.ts";
import { takeUserSessionsTurn } from "../sessions/revocation.ts";
import { factorRef, floodIdentifier, MFA_FLOOD_NAMESPACE, type FactorCounter } from "./policy.ts";
import { createRecoveryCodes, type RecoveryCodes } from "./recovery.ts";
import { createTOTPFactor, type TOTPFactor } from "./totp.ts";
import { createWebAuthnFactor, type WebAuthnFactor, type WebAuthnSettings } from "./webauthn.ts";

export { MfaError, mfaErrors } from "./errors.ts";
export * from "./policy.ts";
export { normaliseRecoveryCode, type RecoveryCodes, type RecoveryVerdict } from "./recovery.ts";
export { TOTP_ENROLMENT_TTL_MS, TOTP_REPLACEMENT_TTL_MS, totpCipherContext, type ReplacementOptions, type TOTPFactor, type TOTPVerdict } from "./totp.ts";
export { MAX_LIVE_WEBAUTHN_CHALLENGES, resetChallengeContext, sessionChallengeContext, type ChallengeOptions, type Passkey, type WebAuthnFactor, type WebAuthnSettings } from "./webauthn.ts";
export type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from "@simplewebauthn/server";

export interface MfaFactors {
  /** A confirmed authenticator app (an unconfirmed enrolment is not a factor). */
  totp: boolean;
  webauthn: number;
  recoveryCodes: number;
  /** Present while a replacement of the app waits for its first code (POST /auth/mfa/totp/replace): when it began and expires. */
  totpReplacement?: { startedAt: number; expiresAt: number };
  /** Present while a first app's enrolment waits for its first code (POST /auth/mfa/totp): when it began and expires. */
  totpEnrolment?: { startedAt: number; expiresAt: number };
}

export interface MfaService {
  totp: TOTPFactor;
  recovery: RecoveryCodes;
  webauthn: WebAuthnFactor;
  /** What the user has enrolled (confirmed TOTP only). */
  factors(userId: string): Promise<MfaFactors>;
  /**
   * True with a confirmed authenticator app or a passkey. Recovery codes alone are a fallback, not MFA. With
   * `executor` (a caller's transaction), asked in it: what a change about to commit there may rely on.
   */
  hasMfa(userId: string, executor?: Kysely<Schema>): Promise<boolean>;
  /**
   * The user's confirmed authenticator app and passkey ids, read with `executor` (a caller's transaction): what a
   * removal about to commit there may rely on (the last-factor rule, asked again after the user's turn is taken).
   */
  enrolledIn(executor: Kysely<Schema>, userId: string): Promise<{ totp: boolean; passkeys: string[]; suspended: string[] }>;
  /**
   * Whether the user still holds `factor` (factorRef), asked with `executor` (a caller's transaction): the app, that
   * passkey, or — for a recovery code, or a session whose factor is not known (null) — any app or passkey.
   */
  holds(userId: string, factor: string | null, executor: Kysely<Schema>): Promise<boolean>;
  /** Deletes every factor of the user, and lowers their sessions to aal 1 with them, in one transaction. */
  removeAll(userId: string): Promise<void>;
  /**
   * After a factor is removed: when no authenticator app or passkey is left, deletes the user's recovery codes and
   * returns how many were unused. They exist to stand in for a lost factor; left behind, an old (perhaps leaked)
   * set would count again the day a new factor is enrolled. With `executor` (the removal's transaction), in it and
   * in turn with a regeneration of the codes (a set made meanwhile is not left behind).
   */
  discardRecoveryCodesIfNoFactor(userId: string, executor?: Kysely<Schema>): Promise<number>;
  /**
   * At a first enrolment: deletes the recovery codes created at or before `at` and returns how many were unused. Codes
   * made while the account had no factor (an old build allowed it; an attacker holding only the password could)
   * must not become a working second factor the day the owner enrols one.
   */
  discardRecoveryCodesUpTo(userId: string, at: number): Promise<number>;
  /**
   * Lifts the TOTP and recovery-code throttles of a user, on both counters (sign-in and reset, FactorCounter),
   * including the 100-consecutive-failures stop that no success can clear (call it after an administrator verified
   * the user, or after a password reset). On `executor` when given, so the lifting commits with the caller's audit event.
   */
  clearThrottle(userId: string, executor?: Kysely<Schema>): Promise<void>;
  /**
   * Whether a factor of the user is at its 100-consecutive-failures stop on `options.counter` ("sign-in" by default),
   * which no wait lifts (only clearThrottle): a throttled answer then promises no time to try again.
   */
  stopped(userId: string, options?: { counter?: FactorCounter }): Promise<boolean>;
}

export interface MfaDeps {
  database: Database;
  clock: Clock;
  random: RandomSource;
  keyring: Keyring;
  /** Counts TOTP and recovery-code failures per user: build it with MFA_FLOOD_POLICY and MFA_FLOOD_NAMESPACE. */
  flood: FloodControl;
  /** Shown in authenticator apps (config.serviceName). */
  issuer: string;
  webauthn: WebAuthnSettings;
  /**
   * The session lifetimes in force (the session manager's; defaults otherwise): a waiting enrolment belongs to a
   * session only while that session stands by them.
   */
  session?: Partial<SessionPolicy>;
}

/**
 * Builds the MFA service.
 *
 * @example
 * const mfa = createMfaService({ database, clock, random, keyring, issuer: "Bulwark",
 *   flood: new FloodControl({ database, clock, keyOf: (text) => keyring.floodKey(text), policy: MFA_FLOOD_POLICY, namespace: MFA_FLOOD_NAMESPACE }),
 *   webauthn: { rpID: "bulwark.example.org", rpName: "Bulwark", origins: ["https://bulwark.example.org"] } });
 * const { uri } = await mfa.totp.begin(user.id, user.email); // show as a QR code
 * await mfa.totp.confirm(user.id, "123456");                 // true once the app's code matches
 * await mfa.totp.verify(user.id, "654321");                  // "ok" | "invalid" | "replayed" | "throttled" | "not-enrolled"
 */
export function createMfaService(deps: MfaDeps): MfaService {
  const { database, clock, random, keyring, flood, issuer } = deps;
  if (flood.namespace !== MFA_FLOOD_NAMESPACE) {
    throw new Error(`the MFA service needs a FloodControl with namespace "${MFA_FLOOD_NAMESPACE}" (got ${JSON.stringify(flood.namespace)}): otherwise failed logins can reach its counters`);
  }
  const db = database.db;
  const totp = createTOTPFactor({ db, clock, random, keyring, flood, issuer, sessionLimits: resolveSessionPolicy(deps.session) });
  const recovery = createRecoveryCodes({ db, clock, random, flood });
  const webauthn = createWebAuthnFactor({ database, clock, random, settings: deps.webauthn });

  const hasMfaStatement = prepareHot<{ n: number | string }>(
    database,
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL LIMIT 1) AS t) + " +
      "(SELECT count(*) FROM (SELECT 1 FROM webauthn_credentials WHERE user_id = $1 LIMIT 1) AS w) AS n",
  );

  async function enrolledIn(executor: Kysely<Schema>, userId: string): Promise<{ totp: boolean; passkeys: string[]; suspended: string[] }> {
    const app = await executor.selectFrom("mfa_totp").select("user_id").where("user_id", "=", userId).where("confirmed_at", "is not", null).executeTakeFirst();
    const keys = await executor.selectFrom("webauthn_credentials").select(["id", "suspended_at"]).where("user_id", "=", userId).execute();
    return { totp: app !== undefined, passkeys: keys.map((k) => k.id), suspended: keys.filter((k) => k.suspended_at !== null).map((k) => k.id) };
  }

  async function factors(userId: string): Promise<MfaFactors> {
    const [app, keys, codes, replacement, enrolment] = await Promise.all([
      db.selectFrom("mfa_totp").select("user_id").where("user_id", "=", userId).where("confirmed_at", "is not", null).executeTakeFirst(),
      db.selectFrom("webauthn_credentials").select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", userId).executeTakeFirstOrThrow(),
      recovery.remaining(userId),
      totp.pendingReplacement(userId),
      totp.pendingEnrolment(userId),
    ]);
    // A waiting replacement or enrolment is shown where the owner looks at factors: one begun by someone else is seen,
    // while its session stands (after that no session can confirm it, and it is not shown).
    return {
      totp: app !== undefined, webauthn: Number(keys.n), recoveryCodes: codes,
      ...(replacement ? { totpReplacement: replacement } : {}), ...(enrolment ? { totpEnrolment: enrolment } : {}),
    };
  }

  return {
    totp,
    recovery,
    webauthn,
    factors,
    enrolledIn,
    async hasMfa(userId, executor) {
      if (executor !== undefined) {
        const enrolled = await enrolledIn(executor, userId);
        return enrolled.totp || enrolled.passkeys.length > 0;
      }
      // Asked on every login: one compiled statement, and no count of recovery codes (they do not decide it).
      const [row] = await hasMfaStatement.all([userId]);
      return Number(row?.n ?? 0) > 0;
    },
    async stopped(userId, options = {}) {
      for (const factor of ["totp", "recovery"] as const) {
        const verdict = await flood.check({ identifier: floodIdentifier(factor, userId, options.counter), ip: null });
        if (!verdict.allowed && verdict.reason === "consecutive") return true;
      }
      return false;
    },
    async clearThrottle(userId, executor) {
      // Both counters: the reset link's stop, too, lifts only here (an owner who lost the password needs it back).
      for (const counter of ["sign-in", "reset"] as const) {
        for (const factor of ["totp", "recovery"] as const) {
          const attempt = { identifier: floodIdentifier(factor, userId, counter), ip: null };
          await flood.clearAccount(attempt, executor);
        }
      }
    },
    async discardRecoveryCodesIfNoFactor(userId, executor = db) {
      // The lock recovery.generate takes: on PostgreSQL a set it inserts, not yet committed, would escape the DELETE.
      if (executor.isTransaction) await serialiseTransactions({ dialect: executorDialect(executor) }, executor, lockKeyOf(`recovery-codes:${userId}`));
      // One statement, conditional on the factors as they are when it runs: an enrolment racing it keeps the codes.
      const result = await executor.deleteFrom("mfa_recovery_codes").where("user_id", "=", userId)
        .where((eb) => eb.not(eb.exists(eb.selectFrom("mfa_totp").select("user_id").where("user_id", "=", userId).where("confirmed_at", "is not", null))))
        .where((eb) => eb.not(eb.exists(eb.selectFrom("webauthn_credentials").select("user_id").where("user_id", "=", userId))))
        .returning("used_at")
        .execute();
      return result.filter((r) => r.used_at === null).length;
    },
    async discardRecoveryCodesUpTo(userId, at) {
      const result = await db.deleteFrom("mfa_recovery_codes").where("user_id", "=", userId).where("created_at", "<=", at).returning("used_at").execute();
      return result.filter((r) => r.used_at === null).length;
    },
    async holds(userId, factor, executor) {
      const enrolled = await enrolledIn(executor, userId);
      if (factor === factorRef.totp) return enrolled.totp;
      // A suspended passkey (caught as cloned) still counts as a factor of the account (it is never left behind the
      // password alone), but no longer holds a session up: a rotation committing after the suspension keeps aal 1.
      if (factor !== null && factor.startsWith(factorRef.passkey(""))) {
        const id = factor.slice(factorRef.passkey("").length);
        return enrolled.passkeys.includes(id) && !enrolled.suspended.includes(id);
      }
      return enrolled.totp || enrolled.passkeys.length > 0;
    },
    async removeAll(userId) {
      // One transaction: a crash never leaves the user with half their factors (for example codes but no app), nor a
      // session still counted as multi-factor with every factor gone. In the user's session turn, as a rotation to
      // aal 2 takes it: one in flight commits first (and is lowered here) or finds no factor (multiFactorHeld).
      await database.transaction(async (t) => {
        await takeUserSessionsTurn(database.dialect, t, userId);
        await t.updateTable("sessions").set({ aal: 1, factor: null }).where("user_id", "=", userId).where("aal", ">", 1).execute();
        await t.deleteFrom("mfa_totp").where("user_id", "=", userId).execute();
        await t.deleteFrom("mfa_recovery_codes").where("user_id", "=", userId).execute();
        await t.deleteFrom("webauthn_credentials").where("user_id", "=", userId).execute();
        await t.deleteFrom("webauthn_challenges").where("user_id", "=", userId).execute();
      });
    },
  };
}
