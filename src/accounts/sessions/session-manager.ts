// Sessions over Kysely (SQLite and PostgreSQL alike): create, validate on every request, list, end, rotate on
// login and privilege change, and revoke by stamp. Only a hash of each secret is stored (ASVS 7.2.3, 7.4.1).
import { CompiledQuery, sql, type ExpressionBuilder, type Kysely, type Selectable } from "kysely";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { changeUnheld, unheld } from "../../store/unheld.ts";
import { numberedFor, prepareHot } from "../../store/sqlite-dialect-prepared.ts";
import { sessionErrors, type SessionRefusal } from "./errors.ts";
import { absoluteEnd, openSessionSQL, sessionClosedBy } from "./open-rule.ts";
import { resolveSessionPolicy, type SessionPolicy } from "./policy.ts";
import { CURRENT_EPOCH_SQL, GLOBAL_SCOPE, holdGlobalStamp, raiseStamp, readStamps, refusedBy, revokedBefore, stampOf, takeUserSessionsTurn, userScope, type SessionTurnOptions } from "./revocation.ts";
import type { SessionsTable } from "./tables.ts";
import { generateSessionToken, parseSessionToken, secretMatches } from "./token.ts";
import type { Schema } from "../../store/schema.ts";

/** Authenticator assurance level: 0 none (pre-login), 1 password, 2 multi-factor. */
export type AAL = 0 | 1 | 2;

export interface Session {
  id: string;
  /** Null for a pre-login session. */
  userId: string | null;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  ip: string | null;
  userAgent: string | null;
  aal: AAL;
  /** The revocation counter's value when the session (or the one it replaced, keeping its lifetime) was issued. */
  issuedEpoch: number;
  /**
   * The second factor that raised it to aal 2 (factorRef in src/accounts/mfa/policy.ts: `totp`, `webauthn:<id>`,
   * `recovery-code`); null below aal 2, or not known (a session from before migration 25).
   */
  factor: string | null;
  /**
   * Whether the owner knows this session's browser: the login that made it found the browser known to the account
   * (the known-device cookie) or, for an account with a second factor, queued the new-device notice for it (migration
   * 34). The second-factor step remembers the browser only then (an account without one has its browser remembered
   * by the login itself). False for every session a login did not make (a step-up's, a re-authentication's), and for
   * one from before migration 34.
   */
  deviceTold: boolean;
}

export interface SessionContext {
  ip?: string | null;
  userAgent?: string | null;
  /** Defaults to 0 for a pre-login session and 1 for a user's. */
  aal?: AAL;
  /** With aal 2: the second factor that earned it (Session.factor). */
  factor?: string | null;
  /**
   * For a session a password verify earned (a login): the password's change time as the verify read it. The
   * session is stored only if the account still has that password (same change time, not invalidated), in the
   * same statement; otherwise `passwordChanged` is thrown. A reset or change that commits while the slow verify
   * runs then ends every session, including the one this login would have added after it.
   */
  verifiedPassword?: { changedAt: number | null };
  /** For a user's session a login made: the owner knows its browser (Session.deviceTold). Default false. */
  deviceTold?: boolean;
}

export type SessionValidation =
  // No secret in here: results get logged by mistake. The CSRF key comes from parseSessionToken(cookie).secret.
  | { valid: true; session: Session; userId: string | null }
  | { valid: false; reason: SessionRefusal };

export interface RotateOptions extends Omit<SessionContext, "aal"> {
  /**
   * The new session's assurance. `"kept"`: the old session's, and its factor, as the old row stands when the rotation
   * deletes it in the user's turn (a password change, a re-authentication without a factor): a removal of the factor
   * that lowered the row while the request ran is not undone by the aal the request read when it started.
   */
  aal: AAL | "kept";
  /** Who logged in. Required when the old session is a pre-login one; otherwise defaults to its user. */
  userId?: string;
  /**
   * The new session keeps the old one's creation time and absolute expiry: for a step-up, which raises the
   * assurance level without the password being typed again, so neither freshness (ASVS 7.5.1) nor the
   * absolute lifetime (ASVS 7.3.2) restarts, and a revocation stamp covers it as it covered the old one.
   */
  keepLifetime?: boolean;
  /**
   * Runs first in the rotation's transaction, before the user's sessions turn is taken: for what every other
   * transaction doing both takes or does before that turn — the account's link lock (a reset completion takes it,
   * then ends the sessions) and a change of the account row (a lock updates the row, then ends the sessions) — so
   * the two orders never meet and deadlock. It may use only the executor given; throwing rolls everything back.
   */
  first?: (executor: Kysely<Schema>) => Promise<void>;
  /**
   * Runs in the rotation's transaction once this request has won the old session (a racing rotation of the same
   * token throws "replaced" before it runs): what the rotation rewards, such as spending the second factor that
   * earned it, commits with it or not at all. It may use only the executor given; throwing rolls everything back.
   */
  within?: (executor: Kysely<Schema>) => Promise<void>;
  /**
   * With `aal: 2`: whether the user still holds `factor` (the new session's, null when not known: any factor), asked
   * in the rotation's transaction in the user's turn, after `within`; false makes the new session aal 1. What a
   * request read of its session when it started (aal 2) may be stale by then: a removal of the factor that lowered
   * its sessions (lowerAssurance, in the same turn) while a slow password hash ran must not come back as a new aal-2
   * session resting on no factor.
   */
  multiFactorHeld?: (executor: Kysely<Schema>, factor: string | null) => Promise<boolean>;
  /**
   * Runs last in the rotation's transaction, once the new session is written and no stamp refuses it: what names the
   * new session (a step-up's audit event, its notice) commits with it or not at all. A step-up whose record failed
   * (the audit head held past the store's wait bound) committed its rotation before: the factor spent, the session the
   * browser held replaced by one no browser held and no event named, and the owner's retry refused as "replaced"
   * (test/bounded-waits-b-red-team.test.ts). It may use only the executor given; throwing rolls everything back.
   */
  record?: (executor: Kysely<Schema>, session: Session) => Promise<void>;
}

export interface SessionManager {
  readonly policy: Readonly<SessionPolicy>;
  /** Issues a new session. The token is returned once; only its secret's hash is stored. */
  createSession(userId: string | null, context?: SessionContext): Promise<{ token: string; session: Session }>;
  /** Checks a presented token: shape, secret, revocation stamps, account state, absolute and idle expiry. */
  validate(token: string): Promise<SessionValidation>;
  /** Records activity, at most once per policy.touchIntervalMs. Returns true when a write happened. */
  touch(sessionId: string): Promise<boolean>;
  /**
   * The user's live sessions, most recently used first (then by id, descending) (ASVS 7.5.2): at most `limit` of them
   * when given, and only those after `before` in that order (a page's last one, for the next page).
   */
  list(userId: string, options?: { limit?: number; before?: { lastSeenAt: number; id: string } }): Promise<Session[]>;
  /**
   * After a second factor of the user is removed: the sessions it stepped up count as password-only (aal 1) — with
   * `factor` (factorRef), those whose factor it was or is not known, except the session `except` (the one removing
   * it, just re-authenticated), whose factor becomes not known; without `factor` (the last factor gone), every one.
   * With `executor` (the removal's transaction), in it and in the user's turn, so a rotation in flight either commits
   * first (and its session is lowered here) or waits and sees the factor gone (RotateOptions.multiFactorHeld).
   */
  lowerAssurance(userId: string, options?: { executor?: Kysely<Schema>; factor?: string; except?: string }): Promise<number>;
  /**
   * Records that the owner was told of the browser of session `sessionId` (Session.deviceTold), once the login that
   * made it queued the new-device notice; false when no such session exists any more.
   */
  markDeviceTold(sessionId: string): Promise<boolean>;
  /**
   * Ends one of the user's sessions; false when it was not theirs or did not exist. With `executor` (a caller's
   * transaction), in it: the end commits with the caller's record of it, or not at all.
   */
  end(sessionId: string, userId: string, options?: { executor?: Kysely<Schema> }): Promise<boolean>;
  /**
   * Ends all the user's sessions, except one (the current) if given. Returns how many ended. With `executor` (a
   * caller's transaction), in it: the user's turn is then held until that transaction ends, so the sessions end
   * with the change they answer (a password change) or not at all.
   */
  endAll(userId: string, options?: { except?: string; executor?: Kysely<Schema> }): Promise<number>;
  /**
   * Replaces a session on login or privilege change: the old row is deleted and a new id AND secret issued,
   * so a token planted before login is never promoted (session fixation, ASVS 7.2.4).
   */
  rotate(oldToken: string | null, options: RotateOptions): Promise<{ token: string; session: Session }>;
  /** Refuses every session created before `before` (default: every session that exists now). Returns the stamp in force. */
  revokeAll(options?: { before?: number }): Promise<number>;
  /** Refuses every session of one user created before `before` (default: every one that exists now). */
  revokeUser(userId: string, options?: { before?: number }): Promise<number>;
  /**
   * Deletes rows past their idle or absolute limit, or dated ahead of this clock (Session refusal "future-dated"), on
   * `executor` when given (maintenance bounds its waits). Returns how many.
   */
  purgeExpired(executor?: Kysely<Schema>): Promise<number>;
}

/**
 * The row as a Session under the absolute lifetime in force (`absoluteTimeoutMs`): its expiry is absoluteEnd (the
 * earlier of the one written when it was issued and its creation time plus that lifetime, src/accounts/sessions/
 * open-rule.ts), so expiresAt, which GET /auth/session and the session list show, does not promise the old end of a
 * lifetime shortened since (ASVS 7.3.2, 7.1.1).
 */
function toSession(r: Selectable<SessionsTable>, absoluteTimeoutMs: number): Session {
  const aal = Number(r.aal);
  const createdAt = Number(r.created_at);
  return {
    id: r.id, userId: r.user_id, createdAt, lastSeenAt: Number(r.last_seen_at), expiresAt: absoluteEnd({ createdAt, expiresAt: Number(r.expires_at) }, { absoluteTimeoutMs }),
    ip: r.ip, userAgent: r.user_agent, aal: aal === 2 ? 2 : aal === 1 ? 1 : 0, issuedEpoch: Number(r.issued_epoch),
    factor: aal === 2 ? r.factor : null, deviceTold: Number(r.device_told) === 1,
  };
}

// Control characters are removed from client-supplied strings before they are stored and later shown.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;

function clean(value: string | null | undefined, max: number): string | null {
  if (typeof value !== "string") return null;
  const text = value.replace(CONTROL, "").trim().slice(0, max);
  return text.length > 0 ? text : null;
}

/**
 * How long a session replaced by a rotation is told apart from one that never existed. A request that raced the
 * rotation with the old cookie is refused as "replaced" and its answer leaves the cookie alone: clearing it could
 * delete the new cookie the rotation's answer set, if it arrives later. Long enough for requests in flight.
 */
export const REPLACED_GRACE_MS = 60_000;

/** Rows one statement of purgeExpired deletes at most (about 6 ms of SQLite's write lock for sessions). */
export const PURGE_BATCH = 1_000;

const SESSION_COLUMNS = ["s.id", "s.user_id", "s.secret_hash", "s.created_at", "s.last_seen_at", "s.expires_at", "s.ip", "s.user_agent", "s.aal", "s.issued_epoch", "s.factor", "s.device_told"] as const;

/**
 * Builds the session manager.
 *
 * @example
 * const sessions = createSessionManager({ database, clock: systemClock, random: systemRandom });
 * const { token } = await sessions.createSession(user.id, { ip, userAgent, aal: 1 });
 * const check = await sessions.validate(token); // { valid: true, session, userId } or { valid: false, reason }
 */
export function createSessionManager(deps: { database: Database; clock: Clock; random: RandomSource; policy?: Partial<SessionPolicy> }): SessionManager {
  const { database, clock, random } = deps;
  const policy = resolveSessionPolicy(deps.policy);
  const db = database.db;
  // $12: the epoch a rotation keeps (keepLifetime), else null for the revocation counter's last value taken. The cast
  // lets PostgreSQL type a parameter that may be null.
  const ISSUED_EPOCH = `COALESCE(CAST($12 AS BIGINT), ${CURRENT_EPOCH_SQL})`;
  const INSERT_SQL =
    "INSERT INTO sessions (id, user_id, secret_hash, created_at, last_seen_at, expires_at, ip, user_agent, aal, factor, device_told, issued_epoch) " +
    `VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ${ISSUED_EPOCH}) RETURNING issued_epoch`;
  const insertStatement = prepareHot<{ issued_epoch: number | bigint }>(database, INSERT_SQL);
  // The same insert, only while the user's password is still the one a login verified (SessionContext.verifiedPassword).
  const INSERT_IF_PASSWORD_SQL =
    "INSERT INTO sessions (id, user_id, secret_hash, created_at, last_seen_at, expires_at, ip, user_agent, aal, factor, device_told, issued_epoch) " +
    `SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ${ISSUED_EPOCH} WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 ` +
    "AND password_changed_at IS NOT DISTINCT FROM $13 AND password_invalidated_at IS NULL) RETURNING issued_epoch";
  const insertIfPasswordStatement = prepareHot<{ issued_epoch: number | bigint }>(database, INSERT_IF_PASSWORD_SQL);

  async function insert(target: Kysely<Schema>, userId: string | null, context: SessionContext, lifetime?: { createdAt: number; expiresAt: number; issuedEpoch: number }): Promise<{ token: string; session: Session }> {
    const aal: AAL = context.aal ?? (userId === null ? 0 : 1);
    // A pre-login session cannot carry assurance, and a user's session always has at least a password.
    if ((userId === null) !== (aal === 0)) throw sessionErrors.badPolicy("aal 0 is for pre-login sessions only, and a pre-login session has aal 0");
    const now = clock.now();
    const fresh = generateSessionToken(random);
    const row = {
      id: fresh.id, user_id: userId, secret_hash: fresh.secretHash, created_at: lifetime?.createdAt ?? now, last_seen_at: now,
      expires_at: lifetime?.expiresAt ?? now + policy.absoluteTimeoutMs,
      ip: clean(context.ip, 64), user_agent: clean(context.userAgent, policy.maxUserAgentLength), aal,
      factor: aal === 2 ? context.factor ?? null : null,
      // A pre-login session has no account whose owner could know its browser.
      device_told: userId !== null && context.deviceTold === true ? 1 : 0,
    };
    // A step-up keeps the epoch of the session it replaces, as it keeps its creation time: a stamp raised while
    // it ran refuses the new session as it refused the old one.
    const values = [row.id, row.user_id, row.secret_hash, row.created_at, row.last_seen_at, row.expires_at, row.ip, row.user_agent, row.aal, row.factor, row.device_told, lifetime?.issuedEpoch ?? null];
    const verified = context.verifiedPassword;
    let stored: { issued_epoch: number | bigint }[];
    if (verified !== undefined && userId !== null) {
      const guarded = [...values, verified.changedAt];
      stored = target === db
        ? await insertIfPasswordStatement.all(guarded)
        : (await target.executeQuery<{ issued_epoch: number | bigint }>(CompiledQuery.raw(numberedFor(database, INSERT_IF_PASSWORD_SQL), guarded))).rows;
      if (stored.length !== 1) throw sessionErrors.passwordChanged();
    } else {
      // The compiled statement outside a transaction (every login without a presented cookie), the same text inside one.
      stored = target === db
        ? await insertStatement.all(values)
        : (await target.executeQuery<{ issued_epoch: number | bigint }>(CompiledQuery.raw(numberedFor(database, INSERT_SQL), values))).rows;
    }
    const issued: Selectable<SessionsTable> = { ...row, issued_epoch: Number(stored[0]?.issued_epoch) };
    return { token: fresh.token, session: toSession(issued, policy.absoluteTimeoutMs) };
  }

  /**
   * PostgreSQL: makes the transaction wait for any other that creates or ends this user's sessions (endUserSessions
   * takes the same turn). Without it a DELETE of "every other session" (password change, sign out elsewhere) ran
   * while a rotation's new row was not yet committed, could not see it, and the new session outlived the change.
   * A transaction that stores a session (`newCredential`) also waits for a containment batch holding the account's
   * row: a login that verified a leaked password just before invalidate-passwords reached the account stored its
   * session while the batch was open, reading the account as not yet invalidated, and kept it after the job was done.
   * SQLite runs one writer at a time.
   */
  async function userTurn(t: Kysely<Schema>, userId: string, options: SessionTurnOptions = {}): Promise<void> {
    await takeUserSessionsTurn(database.dialect, t, userId, options);
  }

  /**
   * Runs `work`, which stores a session, in the user's turn: on PostgreSQL in a transaction that waits for it (and for
   * a containment holding the account's row); on SQLite directly on the connection (one statement cannot interleave
   * with another writer's, and the login path keeps its single insert).
   */
  function inUserTurn<T>(userId: string, work: (t: Kysely<Schema>) => Promise<T>): Promise<T> {
    if (database.dialect !== "postgres") return work(db);
    return database.transaction(async (t) => {
      await userTurn(t, userId, { newCredential: true });
      return work(t);
    });
  }

  /**
   * In a rotation's transaction, after the user's turn and once the new session is written: throws "revoked" when the
   * stamps now in force refuse `previous`, the session it replaces (whose creation time and epoch never change, and
   * whose row the rotation's DELETE just won). The old token was validated before the transaction; a revoke-sessions
   * job created meanwhile only raises stamps (its batch deletes rows issued before its epoch, later), so the DELETE
   * still found the row and the new session, created now with the job's epoch, escaped both stamp and batch
   * (ASVS 7.4.1, 7.2.4). For a list of users the job holds the account's row until it commits, and the turn waited for
   * it; for --all it holds the global stamp's row, waited for here (holdGlobalStamp: after the insert, ADR 0018 says
   * why). The stamps are then read in a statement of their own, so that they include what the job committed.
   */
  async function refuseIfRevokedSince(t: Kysely<Schema>, userId: string, previous: Session): Promise<void> {
    await holdGlobalStamp(t);
    const stamps = await readStamps(t, [GLOBAL_SCOPE, userScope(userId)]);
    if (refusedBy(stamps, previous.createdAt, previous.issuedEpoch)) throw sessionErrors.refused("revoked");
  }

  /**
   * Deletes a session check() judged closed, best effort: on PostgreSQL a row another transaction holds (a frozen node,
   * a DBA's session) is left at once, not waited for. Its dates already decided the answer (signed out), and waiting
   * turned that answer into 503 "try again" past the store's wait bound (test/bounded-waits-d-red-team.test.ts); the
   * maintenance pass (purgeExpired) removes the row later. On SQLite likewise when another process holds the file's
   * write lock (changeUnheld).
   */
  async function deleteClosedSession(id: string): Promise<void> {
    await changeUnheld(database, db.deleteFrom("sessions").where(unheld(database, "sessions", (eb) => eb("id", "=", id))));
  }

  async function check(token: string, withTouch: boolean): Promise<SessionValidation> {
    const parsed = parseSessionToken(token);
    if (!parsed) return { valid: false, reason: "malformed" };
    // One indexed query: the row, its account's state and both revocation stamps, so the stamps are
    // checked on every request with no cache and no staleness window.
    const row = await db
      .selectFrom("sessions as s")
      .leftJoin("users as u", "u.id", "s.user_id")
      .leftJoin("revocation_stamps as us", (join) => join.on(sql<boolean>`us.scope = 'user:' || s.user_id`))
      .leftJoin("revocation_stamps as g", (join) => join.on("g.scope", "=", GLOBAL_SCOPE))
      .select([...SESSION_COLUMNS, "u.status as user_status", "u.locked_at as user_locked_at", "us.not_before as user_stamp", "g.not_before as global_stamp",
        "us.not_before_epoch as user_epoch", "g.not_before_epoch as global_epoch"])
      .where("s.id", "=", parsed.id)
      .executeTakeFirst();
    if (!row) return { valid: false, reason: await replacedOrUnknown(parsed.id, parsed.secret) };
    // The secret is checked first: whoever knows only an id learns nothing else about the session.
    if (!secretMatches(parsed.secret, row.secret_hash)) return { valid: false, reason: "bad-secret" };
    const session = toSession(row, policy.absoluteTimeoutMs);
    const stamp = stampOf([{ time: row.global_stamp, epoch: row.global_epoch }, { time: row.user_stamp, epoch: row.user_epoch }]);
    if (refusedBy(stamp, session.createdAt, session.issuedEpoch)) return { valid: false, reason: "revoked" };
    if (session.userId !== null) {
      // ASVS 7.4.2: a disabled (or locked by containment) account has no usable session.
      if (row.user_status !== "active") return { valid: false, reason: "account-disabled" };
      if (row.user_locked_at !== null) return { valid: false, reason: "account-locked" };
    }
    const now = clock.now();
    // Both limits are judged from dates the issuing node wrote: a session dated ahead of this clock (a node whose clock
    // ran fast, this host's clock stepped back since) would outlive the absolute limit by that much, and idle out only
    // once real time caught up with its last-seen date. Ended, as isFresh refuses such a creation time: the user signs
    // in again on a clock that agrees (ASVS 7.3.1, 7.3.2). Only beyond the skew a node may have and still serve
    // (policy.datedAheadToleranceMs): within it the issuing node is a healthy one, and its sessions stand everywhere.
    // Then the absolute lifetime in force (not only the one it was issued under) and the idle timeout: the one rule
    // (sessionClosedBy) that the session list and containment's counts judge by too (openSessionSQL).
    const closed = sessionClosedBy(session, now, policy);
    if (closed !== null) {
      await deleteClosedSession(session.id);
      return { valid: false, reason: closed };
    }
    if (withTouch && now - session.lastSeenAt >= policy.touchIntervalMs) {
      // Best effort while the session has slack: a row another transaction holds (a frozen node, a DBA's session) made
      // every request of the session wait for it and answer 503 past the store's wait bound, for a bookkeeping write a
      // stale last-seen does without (test/bounded-waits-b-red-team.test.ts). Each request past the interval tries
      // again, so a session in use is touched once the row is free. Once half its idle timeout has gone by unrecorded,
      // the touch waits as any write does (and past the bound the request fails as busy, as before): skipped touches
      // never let a session in use idle out, and one left idle after a skipped touch still has half the timeout.
      const waits = now - session.lastSeenAt >= policy.idleTimeoutMs / 2;
      if (await touchAt(session.id, now, { skipLocked: !waits })) session.lastSeenAt = now;
    }
    return { valid: true, session, userId: session.userId };
  }

  /** Why no row answers `id`: replaced by a rotation a moment ago (and the secret is its holder's), or unknown. */
  async function replacedOrUnknown(id: string, secret: string): Promise<"replaced" | "unknown"> {
    const gone = await db.selectFrom("replaced_sessions").select(["secret_hash", "replaced_at"]).where("id", "=", id).executeTakeFirst();
    if (!gone || !secretMatches(secret, gone.secret_hash)) return "unknown";
    return clock.now() - Number(gone.replaced_at) < REPLACED_GRACE_MS ? "replaced" : "unknown";
  }

  async function touch(sessionId: string): Promise<boolean> {
    return touchAt(sessionId, clock.now(), { skipLocked: false });
  }

  /**
   * Writes `now` as the session's last-seen time unless it was written within the interval; true when a write
   * happened. `skipLocked`: a lock another transaction holds is left as it is, at once, rather than waited for (the
   * touch is then false, and the next request past the interval tries again): the row on PostgreSQL, the file's write
   * lock another process holds on SQLite (changeUnheld). Otherwise the touch waits as any write does.
   */
  async function touchAt(sessionId: string, now: number, options: { skipLocked: boolean }): Promise<boolean> {
    // The condition in the WHERE clause keeps concurrent requests from each writing.
    const due = (eb: ExpressionBuilder<Schema, "sessions">) => eb.and([eb("id", "=", sessionId), eb("last_seen_at", "<=", now - policy.touchIntervalMs)]);
    if (options.skipLocked) return (await changeUnheld(database, db.updateTable("sessions").set({ last_seen_at: now }).where(unheld(database, "sessions", due)))) > 0;
    const result = await db.updateTable("sessions").set({ last_seen_at: now }).where(due).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  function checkBefore(before: number | undefined): number {
    const now = clock.now();
    // Default: everything created up to and including this millisecond (a session is refused when created
    // before the stamp, so the stamp is one past now). A login in the same millisecond is refused too: harmless.
    const at = before ?? revokedBefore(now);
    if (!Number.isSafeInteger(at) || at < 0) throw sessionErrors.badPolicy(`revocation time must be epoch milliseconds, got ${String(before)}`);
    if (at > revokedBefore(now)) throw sessionErrors.futureStamp(at, now);
    return at;
  }

  /**
   * Without `before`, everything issued until now: a new epoch, whatever clock wrote the rows. With `before`, only
   * the time can say which rows came earlier; the epoch is left as it is.
   */
  function raiseStampFor(scope: string, before: number | undefined): Promise<number> {
    const at = checkBefore(before);
    if (before !== undefined) return raiseStamp(db, scope, at, clock.now(), 0);
    return database.transaction((t) => raiseStamp(t, scope, at, clock.now()));
  }

  const manager = {
    policy,
    // A user's new session and the ending of their sessions take turns (see userTurn); a pre-login one has no user.
    createSession: (userId, context = {}) => (userId === null ? insert(db, null, context) : inUserTurn(userId, (t) => insert(t, userId, context))),
    validate: (token) => check(token, true),
    touch,
    async list(userId, options = {}) {
      const now = clock.now();
      let q = db
        .selectFrom("sessions as s")
        .select(SESSION_COLUMNS)
        .where("s.user_id", "=", userId)
        // Open as validate judges it (sessionClosedBy): stored expiry, the lifetime and idle timeout in force, dated ahead.
        .where(openSessionSQL(now, policy, { table: "s" }))
        .orderBy("s.last_seen_at", "desc")
        .orderBy("s.id", "desc");
      const before = options.before;
      if (before) {
        q = q.where((eb) => eb.or([eb("s.last_seen_at", "<", before.lastSeenAt), eb.and([eb("s.last_seen_at", "=", before.lastSeenAt), eb("s.id", "<", before.id)])]));
      }
      if (options.limit !== undefined) q = q.limit(options.limit);
      const [rows, stamps] = await Promise.all([
        q.execute(),
        readStamps(db, [GLOBAL_SCOPE, userScope(userId)]),
      ]);
      return rows.map((r) => toSession(r, policy.absoluteTimeoutMs)).filter((s) => !refusedBy(stamps, s.createdAt, s.issuedEpoch));
    },
    async lowerAssurance(userId, options = {}) {
      const executor = options.executor ?? db;
      if (options.executor !== undefined) await userTurn(executor, userId);
      const { factor, except } = options;
      let q = executor.updateTable("sessions").set({ aal: 1, factor: null }).where("user_id", "=", userId).where("aal", ">", 1);
      if (factor !== undefined) {
        // A session whose factor is not known (from before migration 25) may rest on the one removed.
        q = q.where((eb) => eb.or([eb("factor", "=", factor), eb("factor", "is", null)]));
        if (except !== undefined) {
          q = q.where("id", "!=", except);
          // It keeps its assurance, resting on no factor it can name now: the next removal of any factor lowers it.
          await executor.updateTable("sessions").set({ factor: null }).where("id", "=", except).where("user_id", "=", userId).where("factor", "=", factor).execute();
        }
      }
      return Number((await q.executeTakeFirst()).numUpdatedRows);
    },
    async markDeviceTold(sessionId) {
      const result = await db.updateTable("sessions").set({ device_told: 1 }).where("id", "=", sessionId).where("user_id", "is not", null).executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
    async end(sessionId, userId, options = {}) {
      // Scoped by user: knowing another user's session id does not let anyone end it.
      const result = await (options.executor ?? db).deleteFrom("sessions").where("id", "=", sessionId).where("user_id", "=", userId).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },
    async endAll(userId, options = {}) {
      const end = async (t: Kysely<Schema>): Promise<number> => {
        let q = t.deleteFrom("sessions").where("user_id", "=", userId);
        if (options.except !== undefined) q = q.where("id", "!=", options.except);
        return Number((await q.executeTakeFirst()).numDeletedRows);
      };
      if (options.executor === undefined) return inUserTurn(userId, end);
      await userTurn(options.executor, userId);
      return end(options.executor);
    },
    async rotate(oldToken, options) {
      const old = oldToken === null ? null : await check(oldToken, false);
      const previous = old?.valid ? old.session : null;
      const userId = options.userId ?? previous?.userId ?? null;
      if (userId === null) {
        if (old && !old.valid && options.userId === undefined) throw sessionErrors.refused(old.reason);
        throw sessionErrors.userRequired();
      }
      const context: SessionContext = {
        ip: options.ip !== undefined ? options.ip : previous?.ip ?? null,
        userAgent: options.userAgent !== undefined ? options.userAgent : previous?.userAgent ?? null,
        ...(options.verifiedPassword !== undefined ? { verifiedPassword: options.verifiedPassword } : {}),
        // Never carried from the old session: only a login says what the owner was told of (a step-up's new session,
        // and a login rotating away another account's or a pre-login session, start from what they are given).
        ...(options.deviceTold !== undefined ? { deviceTold: options.deviceTold } : {}),
      };
      // The assurance and factor of the new session: those given, or ("kept") the old session's as its row stands when
      // deleted below.
      const given: { aal: AAL; factor: string | null } = options.aal === "kept"
        ? { aal: previous?.aal === 2 ? 2 : 1, factor: previous?.factor ?? null }
        : { aal: options.aal, factor: options.aal === 2 ? options.factor ?? null : null };
      return database.transaction(async (t) => {
        let carried = given;
        await options.first?.(t);
        await userTurn(t, userId, { newCredential: true });
        if (previous) {
          // Two requests racing to rotate one token: only the one that deletes the row carries it on. A login
          // that loses (its user id given: the password was just proven) still gets a new session of its own.
          const gone = await t.deleteFrom("sessions").where("id", "=", previous.id).returning(["secret_hash", "aal", "factor"]).executeTakeFirst();
          if (gone) {
            if (options.aal === "kept") carried = Number(gone.aal) === 2 ? { aal: 2, factor: gone.factor } : { aal: 1, factor: null };
            await t.insertInto("replaced_sessions").values({ id: previous.id, secret_hash: gone.secret_hash, replaced_at: clock.now() })
              .onConflict((oc) => oc.column("id").doNothing()).execute();
          } else if (options.userId === undefined) {
            throw sessionErrors.refused("replaced");
          }
        }
        await options.within?.(t);
        const aal = carried.aal;
        const held = aal !== 2 || options.multiFactorHeld === undefined || (await options.multiFactorHeld(t, carried.factor));
        const lifetime = options.keepLifetime && previous ? { createdAt: previous.createdAt, expiresAt: previous.expiresAt, issuedEpoch: previous.issuedEpoch } : undefined;
        const issued = await insert(t, userId, held ? { ...context, aal, factor: carried.factor } : { ...context, aal: 1 }, lifetime);
        // A login (its user id given) stands on the password it just proved, not on the session it replaces.
        if (previous && options.userId === undefined) await refuseIfRevokedSince(t, userId, previous);
        // Last: a record that takes the audit log's head holds it only until the commit that follows.
        await options.record?.(t, issued.session);
        return issued;
      });
    },
    async revokeAll(options = {}) {
      return raiseStampFor(GLOBAL_SCOPE, options.before);
    },
    async revokeUser(userId, options = {}) {
      return raiseStampFor(userScope(userId), options.before);
    },
    async purgeExpired(executor = db) {
      const now = clock.now();
      // On PostgreSQL a row another transaction holds (a frozen node, a DBA's session) is skipped, not waited for: one
      // held row made the whole DELETE wait past the step's bound and roll back, so every pass purged nothing for as long
      // as it was held (test/bounded-waits-d-red-team.test.ts). The skipped row goes in a later pass, once free.
      // In batches of PURGE_BATCH, each its own statement: on SQLite one DELETE of every expired row held the file's one
      // write lock for as long as it ran (1.6 s for 250,000 sessions, the first pass after an outage longer than the idle
      // timeout; about 11 s for two million), and every login of the server waited on it or failed 503
      // (test/lock-holds-red-team.test.ts). Between batches other work runs (setImmediate) and other processes write.
      const inBatches = async (batch: () => Promise<{ numDeletedRows: bigint }>): Promise<number> => {
        let deleted = 0;
        for (;;) {
          const n = Number((await batch()).numDeletedRows);
          deleted += n;
          if (n < PURGE_BATCH) return deleted;
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      const staleReplaced = now - REPLACED_GRACE_MS;
      await inBatches(() => executor.deleteFrom("replaced_sessions")
        .where(unheld(database, "replaced_sessions", (eb) => eb("replaced_at", "<=", staleReplaced), { limit: PURGE_BATCH })).executeTakeFirst());
      // And the rows dated ahead of this clock ("future-dated"): one nobody presents before real time passes its dates
      // would then be judged by them, and outlive both limits by the difference. A pass every maintenance interval
      // bounds that to the interval, after a clock stepped back or on a node whose clock runs ahead of the others'. By
      // validate's own tolerance: a narrower one deleted the sessions of a node the product lets serve. Exactly the rows
      // the one rule finds not open (openSessionSQL): past the stored expiry, the lifetime or the idle timeout in force.
      return inBatches(() => executor.deleteFrom("sessions")
        .where(unheld(database, "sessions", (eb) => eb.not(openSessionSQL(now, policy)), { limit: PURGE_BATCH })).executeTakeFirst());
    },
  } satisfies SessionManager;
  return manager;
}
