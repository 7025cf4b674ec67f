// An unfinished sign-up holds no address against a proven owner. POST /auth/register makes an account for a free address
// at once, with no password, and only the link it mails finishes it; anyone may start one for any address, so a hijacker
// who moved an account away could hold the address it left for ever, and the administrator's set-email back to it, or
// the owner's own confirmed email change to it, was refused as "taken" (test/half-done-red-team.test.ts). An address held
// only by such accounts is taken by a change that proves its owner (a confirmed link to it, an administrator's decision):
// the sign-up is deleted in the change's transaction, its link with it, and recorded (SIGN_UP_REMOVED_EVENT). While
// registration is closed, nothing finishes one: its link is refused, a reset request mails none (password-routes.ts).
// An administrator's new account for such an address takes it the same way (createOverSignUps), and so does an imported
// row (import/apply-batch.ts, through removeUnfinishedSignUp), and the maintenance pass
// deletes one left unfinished past BULWARK_SIGNUP_ABANDONED_HOURS whose links are all dead (removeAbandonedSignUps).
import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool, type Transaction } from "kysely";
import type { AuditLog } from "../../audit/audit-log.ts";
import { DEFAULT_DATED_AHEAD_TOLERANCE_MS } from "../../store/clock-skew.ts";
import type { Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { accountErrors } from "../errors.ts";
import { lockAccountLinks, lockManyAccountsLinks } from "../password-reset/link-lock.ts";
import { confusableSkeleton } from "../users/confusables.ts";
import { identifierKey, validateEmail } from "../users/normalise.ts";

/** The audit event of an unfinished sign-up deleted for the address a change gave another account. */
export const SIGN_UP_REMOVED_EVENT = "user.sign-up-removed";

/**
 * How far from the account's creation its `user.created` event may be written: the sign-up appends it in the account's
 * own transaction, by the same node's clock. Only bounds the read (the events of one type are indexed by time); an
 * event outside it leaves the account counted as a real one, which is the safe side.
 */
const CREATED_EVENT_SLACK_MS = 60 * 60_000;

/** Who else holds an address: refused, or held only by unfinished sign-ups the change may remove. */
export type AddressHolders = { free: true; signUps: string[] } | { free: false; reason: "taken" | "confusable" };

/**
 * Whether account `id` is an unfinished sign-up, as `executor` sees it: made by POST /auth/register (its `user.created`
 * event, actor anonymous, `via: register`; an administrator's account without a password is someone's invitation), no
 * password ever set, never signed in, untouched since (active, not locked, no containment's mark, no username, display
 * name or external identity) and holding nothing: no session, factor, recovery code, API token, role, linked identity or
 * email-change link. A sign-up whose link was followed has a password: a real account, which keeps its address.
 */
export async function isUnfinishedSignUp(executor: Kysely<Schema>, id: string): Promise<boolean> {
  const row = await untouchedRow(executor, id);
  return row !== undefined && (await madeBySignUp(executor, id, Number(row.created_at)));
}

/**
 * Which of the accounts `ids` are unfinished sign-ups (isUnfinishedSignUp), in one read: for the administrator's user
 * list and reads (`unfinishedSignUp`), which showed an outsider's squat exactly as an invitation, though the two are
 * handled apart (a create takes a sign-up's address, the maintenance pass deletes it, a lock or set-email keeps it).
 *
 * @example
 * const squats = await unfinishedSignUpsAmong(db, page.map((u) => u.id)); // Set { "usr_…" }
 */
export async function unfinishedSignUpsAmong(executor: Kysely<Schema>, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await executor.selectFrom("users").select("id").where("id", "in", [...ids]).where(untouched)
    .where((eb) => eb.exists(signUpEvents(eb))).execute();
  return new Set(rows.map((r) => r.id));
}

/**
 * isUnfinishedSignUp with the same two reads whatever the answer, for a public request whose work must not single out
 * an address held by an unfinished sign-up among other accounts and unknown addresses (ASVS 6.3.8): `id` may be a
 * throw-away one, and without an untouched row the event read still runs, over a window no event of it is in.
 */
export async function isUnfinishedSignUpEvenly(executor: Kysely<Schema>, id: string): Promise<boolean> {
  const row = await untouchedRow(executor, id);
  const made = await madeBySignUp(executor, id, row === undefined ? 0 : Number(row.created_at));
  return row !== undefined && made;
}

/** The row of account `id` when it is untouched as an unfinished sign-up is (isUnfinishedSignUp), else undefined. */
function untouchedRow(executor: Kysely<Schema>, id: string): Promise<{ created_at: number } | undefined> {
  return executor.selectFrom("users").select("created_at").where("id", "=", id).where(untouched).executeTakeFirst();
}

/** The condition on a `users` row of untouchedRow: no password ever, never signed in, untouched, holding nothing. */
function untouched(eb: ExpressionBuilder<Schema, "users">): Expression<SqlBool> {
  return eb.and([
    eb("users.password_hash", "is", null), eb("users.password_changed_at", "is", null), eb("users.password_invalidated_at", "is", null),
    eb("users.last_login_at", "is", null), eb("users.status", "=", "active"), eb("users.locked_at", "is", null), eb("users.reset_held_at", "is", null),
    eb("users.username", "is", null), eb("users.display_name", "is", null), eb("users.external_source", "is", null), eb("users.external_id", "is", null),
    eb("users.seeded", "=", 0),
    // Never written since it was made: an administrator's set-email (or lock, or any change) makes the account theirs to
    // keep, as an invitation is, not a sign-up to take over or delete as abandoned.
    eb("users.updated_at", "=", eb.ref("users.created_at")),
    eb.not(eb.or([
      eb.exists(eb.selectFrom("sessions").select("sessions.id").whereRef("sessions.user_id", "=", "users.id")),
      eb.exists(eb.selectFrom("mfa_totp").select("mfa_totp.user_id").whereRef("mfa_totp.user_id", "=", "users.id")),
      eb.exists(eb.selectFrom("mfa_recovery_codes").select("mfa_recovery_codes.user_id").whereRef("mfa_recovery_codes.user_id", "=", "users.id")),
      eb.exists(eb.selectFrom("webauthn_credentials").select("webauthn_credentials.user_id").whereRef("webauthn_credentials.user_id", "=", "users.id")),
      eb.exists(eb.selectFrom("api_tokens").select("api_tokens.id").whereRef("api_tokens.user_id", "=", "users.id")),
      eb.exists(eb.selectFrom("user_roles").select("user_roles.user_id").whereRef("user_roles.user_id", "=", "users.id")),
      eb.exists(eb.selectFrom("identities").select("identities.id").whereRef("identities.user_id", "=", "users.id")),
      eb.exists(eb.selectFrom("email_change_tokens").select("email_change_tokens.id").whereRef("email_change_tokens.user_id", "=", "users.id")),
    ])),
  ]);
}

/** Whether account `id`, created at `createdAt`, was made by POST /auth/register: its `user.created` event says so. */
async function madeBySignUp(executor: Kysely<Schema>, id: string, createdAt: number): Promise<boolean> {
  const events = await executor.selectFrom("audit_events").select("data")
    .where("type", "=", "user.created").where("at", ">=", createdAt - CREATED_EVENT_SLACK_MS).where("at", "<=", createdAt + CREATED_EVENT_SLACK_MS)
    .where("subject", "=", id).where("actor", "=", "anonymous").execute();
  return events.some((e) => {
    try {
      return (JSON.parse(e.data) as { via?: unknown }).via === "register";
    } catch {
      return false;
    }
  });
}

/**
 * The accounts other than `userId` (null: an account not yet made) that hold `address` (its lookup key) or a look-alike
 * of it (confusables.ts): refused as the account store refuses them ("taken" before "confusable"), unless every one is
 * an unfinished sign-up of the address itself. A sign-up that only looks like it (`scope@` under `ѕсоре@`) is another
 * address's: its owner's sign-up in progress is not removed for it, and the look-alike is refused as confusable, as it
 * is beside any other account (docs/decisions/0013-confusable-skeletons.md).
 *
 * @example
 * const holders = await addressHolders(trx, userId, "owner@example.org");
 * if (!holders.free) throw accountErrors.emailTaken();
 */
export async function addressHolders(executor: Kysely<Schema>, userId: string | null, address: string): Promise<AddressHolders> {
  const key = identifierKey(address);
  let query = executor.selectFrom("users").select(["id", "email_key"])
    .where((eb) => eb.or([eb("email_key", "=", key), eb("email_skeleton", "=", confusableSkeleton(address))]));
  if (userId !== null) query = query.where("id", "!=", userId);
  const holders = await query.execute();
  const signUps = new Set<string>();
  for (const holder of holders) {
    if (holder.email_key === key && (await isUnfinishedSignUp(executor, holder.id))) signUps.add(holder.id);
  }
  return judgeHolders(key, holders, signUps);
}

/**
 * addressHolders for several addresses at once, each beside its own account (`userId`), in two reads whatever their
 * number: the accounts holding any of them or a look-alike, then which of those holding one exactly are unfinished
 * sign-ups (unfinishedSignUpsAmong, the same predicate in one read; only when one does). For the outbox's
 * claim (src/app/link-states.ts), which must not send an email-change link confirm would refuse as taken. In the order
 * of `wanted`.
 *
 * @example
 * const [held] = await addressHoldersOfMany(db, [{ userId, address: "new@example.org" }]); // { free: false, reason: "taken" }
 */
export async function addressHoldersOfMany(executor: Kysely<Schema>, wanted: readonly { userId: string | null; address: string }[]): Promise<AddressHolders[]> {
  if (wanted.length === 0) return [];
  const asked = wanted.map((w) => ({ userId: w.userId, key: identifierKey(w.address), skeleton: confusableSkeleton(w.address) }));
  const rows = await executor.selectFrom("users").select(["id", "email_key", "email_skeleton"])
    .where((eb) => eb.or([eb("email_key", "in", [...new Set(asked.map((a) => a.key))]), eb("email_skeleton", "in", [...new Set(asked.map((a) => a.skeleton))])]))
    .execute();
  const holdersOf = asked.map((a) => rows.filter((r) => r.id !== a.userId && (r.email_key === a.key || r.email_skeleton === a.skeleton)));
  const exact = new Set(asked.flatMap((a, i) => holdersOf[i]!.filter((r) => r.email_key === a.key).map((r) => r.id)));
  const signUps = await unfinishedSignUpsAmong(executor, [...exact]);
  return asked.map((a, i) => judgeHolders(a.key, holdersOf[i]!, signUps));
}

/**
 * The verdict on the accounts holding an address of lookup key `key` or a look-alike (addressHolders): "taken" before
 * "confusable", free when every one holds the address itself and is an unfinished sign-up (`signUps`).
 */
function judgeHolders(key: string, holders: readonly { id: string; email_key: string }[], signUps: ReadonlySet<string>): AddressHolders {
  const removable = holders.filter((h) => h.email_key === key && signUps.has(h.id));
  const others = holders.filter((h) => !removable.includes(h));
  if (others.some((h) => h.email_key === key)) return { free: false, reason: "taken" };
  if (others.length > 0) return { free: false, reason: "confusable" };
  return { free: true, signUps: removable.map((h) => h.id) };
}

/** Why an unfinished sign-up is removed: the account that takes its address, and how. */
export interface SignUpRemoval {
  /** Recorded as the event's actor: the administrator (user id or CLI tag), the account whose link confirmed, or "system". */
  actor: string;
  /** The account that takes the address; null for a sign-up the maintenance pass removed as abandoned. */
  for: string | null;
  /**
   * An administrator's set-email or new account ("api", "cli", as their events say), the owner's confirmed change, the
   * maintenance pass (removeAbandonedSignUps), or a row of `bulwark users import` whose new account takes the address.
   */
  via: "api" | "cli" | "email-confirm" | "maintenance" | "import";
  requestId?: string;
  /** More for the event's data (the API caller's context, the confirmed link's id). */
  detail?: Record<string, unknown>;
}

/**
 * Deletes the unfinished sign-up `id` in `trx` (its sign-up link and every row of it go too, by the foreign keys) and
 * appends SIGN_UP_REMOVED_EVENT there; returns false, deleting nothing, when it is no longer one. Under its link lock,
 * which its link's completion takes first: a sign-up finished at this moment either committed before (a password now:
 * kept, and the caller refuses the address) or finds its link gone.
 */
export async function removeUnfinishedSignUp(database: Database, trx: Kysely<Schema>, audit: Pick<AuditLog, "appendIn">, id: string, removal: SignUpRemoval): Promise<boolean> {
  if (!(await deleteUnfinishedSignUp(database, trx, id))) return false;
  await recordSignUpRemoved(trx, audit, id, removal);
  return true;
}

/**
 * removeUnfinishedSignUp without its event, for a change that learns `for` only after the delete (createOverSignUps):
 * under the link lock and the account's row lock, checked again, and deleted only while the row is still untouched and
 * `also` holds of it too (the maintenance pass's age and live-link conditions, removeAbandonedSignUps).
 */
async function deleteUnfinishedSignUp(database: Database, trx: Kysely<Schema>, id: string, also?: (eb: ExpressionBuilder<Schema, "users">) => Expression<SqlBool>): Promise<boolean> {
  await lockAccountLinks(database, trx, id);
  // The row too, before the check reads it (PostgreSQL; SQLite runs one write transaction at a time): a change that makes
  // the account someone's to keep without the link lock (an administrator's lock, a role grant, whose foreign key holds
  // the row FOR KEY SHARE) and commits meanwhile was read as it had been, and the DELETE, waiting for the row, then
  // deleted the locked account or the granted role with it (test/not-a-sign-up-red-team.test.ts). Now such a change
  // either commits first, and the check (a new snapshot) sees it, or waits for this transaction. Link lock, then row:
  // the order of every path that takes both (a link's completion, set-email, containment's batches).
  if (database.dialect === "postgres") await trx.selectFrom("users").select("id").where("id", "=", id).forUpdate().execute();
  if (!(await isUnfinishedSignUp(trx, id))) return false;
  let query = trx.deleteFrom("users").where("id", "=", id).where(untouched);
  if (also !== undefined) query = query.where(also);
  const deleted = await query.executeTakeFirst();
  return Number(deleted.numDeletedRows) === 1;
}

async function recordSignUpRemoved(trx: Kysely<Schema>, audit: Pick<AuditLog, "appendIn">, id: string, removal: SignUpRemoval): Promise<void> {
  await audit.appendIn(trx, {
    type: SIGN_UP_REMOVED_EVENT, actor: removal.actor, subject: id, ...(removal.requestId ? { requestId: removal.requestId } : {}),
    data: { ...removal.detail, via: removal.via, for: removal.for },
  });
}

/** Who creates an account over an unfinished sign-up: an administrator, through the API or the CLI (no `for` yet). */
export type CreationRemoval = Omit<SignUpRemoval, "for" | "via"> & { via: "api" | "cli" };

/**
 * Runs `create` (an administrator's new account for `email`, written in `trx`; given the sign-up removed for it) after
 * deleting the unfinished sign-ups that alone hold the address (addressHolders), each under its link lock and checked
 * again there as set-email does, then records each removal (SIGN_UP_REMOVED_EVENT, `for`: the new account). An outsider who knew the address was about
 * to get an account signed it up and never finished, and the administrator's create was refused as taken. An address a
 * real account holds (a password, an invitation) is left to `create`, which refuses it as before; so is a sign-up
 * finished meanwhile (a password now). Throws what `create` throws; nothing is deleted then (one transaction).
 *
 * @example
 * const { created, signUpRemoved } = await createOverSignUps(app.db, trx, app.audit, email, { actor, via: "cli" }, () => users.create({ email }, trx));
 * // { created: { id: "usr_…", … }, signUpRemoved: "usr_…" } (null when no sign-up held the address)
 */
export async function createOverSignUps<T extends { id: string }>(
  database: Database, trx: Kysely<Schema>, audit: Pick<AuditLog, "appendIn">, email: string, removal: CreationRemoval, create: (signUpRemoved: string | null) => Promise<T>,
): Promise<{ created: T; signUpRemoved: string | null }> {
  // Validated as the store validates it (an invalid address is refused with the store's own error, before any read).
  const holders = await addressHolders(trx, null, validateEmail(email));
  const removed: string[] = [];
  // (At most one: a sign-up takes only plain ASCII addresses, whose skeleton is their lookup key.)
  for (const signUp of holders.free ? holders.signUps : []) {
    // Finished by its link meanwhile: a password now, a real account, which keeps the address.
    if (!(await deleteUnfinishedSignUp(database, trx, signUp))) throw accountErrors.emailTaken();
    removed.push(signUp);
  }
  // Told the sign-up it replaces, for its own user.created event (as user.email-set names it).
  const created = await create(removed[0] ?? null);
  for (const signUp of removed) await recordSignUpRemoved(trx, audit, signUp, { ...removal, for: created.id });
  return { created, signUpRemoved: removed[0] ?? null };
}

/** How many abandoned sign-ups one transaction deletes, and how many such batches one maintenance pass runs. */
export const ABANDONED_SIGN_UP_BATCH = 100;
export const ABANDONED_SIGN_UP_MAX_BATCHES = 10;

/** What removeAbandonedSignUps deletes, and how much of it at once. */
export interface AbandonedSignUpPurge {
  now: number;
  /** Deleted only once the account is older than this (BULWARK_SIGNUP_ABANDONED_HOURS); must be positive. */
  olderThanMs: number;
  /**
   * How far a reset link's date, written by another node's clock, may be past the age and still count as asked for
   * before it (liveResetLinks): the services' dated-ahead tolerance, datedAheadToleranceFor(config.maxClockSkewMs);
   * DEFAULT_DATED_AHEAD_TOLERANCE_MS by default. 0 or more.
   */
  aheadToleranceMs?: number;
  /** Sign-ups per transaction (ABANDONED_SIGN_UP_BATCH) and transactions per call (ABANDONED_SIGN_UP_MAX_BATCHES). */
  batch?: number;
  maxBatches?: number;
  /** Runs one batch's transaction (the maintenance pass bounds its waits); `database.transaction` by default. */
  transaction?: <T>(work: (trx: Transaction<Schema>) => Promise<T>) => Promise<T>;
}

/**
 * Deletes the unfinished sign-ups (isUnfinishedSignUp) made more than `olderThanMs` before `now` none of whose reset
 * links still works, oldest first, at most `batch` a transaction and `maxBatches` transactions a call (the next call
 * goes on); returns how many. Anyone may start a sign-up and only its link finishes one, so those never finished
 * piled up for ever, each in every user list, count and containment scope. Time-based and local, never triggered
 * by a request: no public form decides what is deleted. Each is checked again under its link lock, which a link's
 * completion takes first (a sign-up finished at this moment has a password, and stays), and recorded as
 * SIGN_UP_REMOVED_EVENT (actor "system", `via: maintenance`, `for`: null, its age in whole hours).
 *
 * @example
 * await removeAbandonedSignUps(app.db, app.audit, { now: clock.now(), olderThanMs: 168 * 3_600_000, aheadToleranceMs: 60_000 }) // 3
 */
export async function removeAbandonedSignUps(database: Database, audit: Pick<AuditLog, "appendIn">, options: AbandonedSignUpPurge): Promise<number> {
  const { now, olderThanMs } = options;
  const aheadToleranceMs = options.aheadToleranceMs ?? DEFAULT_DATED_AHEAD_TOLERANCE_MS;
  const batch = options.batch ?? ABANDONED_SIGN_UP_BATCH;
  const transaction = options.transaction ?? ((work) => database.transaction(work));
  if (!(olderThanMs > 0)) throw new RangeError(`olderThanMs must be positive, got ${olderThanMs}`);
  if (!(aheadToleranceMs >= 0)) throw new RangeError(`aheadToleranceMs must be 0 or more, got ${aheadToleranceMs}`);
  const isAbandoned = (eb: ExpressionBuilder<Schema, "users">): Expression<SqlBool> => abandoned(eb, now, olderThanMs, aheadToleranceMs);
  let removed = 0;
  // Where the previous batch ended (oldest first): a candidate kept at its check is not read again in this call.
  let after: { createdAt: number; id: string } | null = null;
  for (let i = 0; i < (options.maxBatches ?? ABANDONED_SIGN_UP_MAX_BATCHES); i++) {
    const from = after;
    const { seen, deleted, last } = await transaction(async (trx) => {
      let query = trx.selectFrom("users").select(["id", "created_at"]).where(untouched)
        .where(isAbandoned)
        .where((eb) => eb.exists(signUpEvents(eb)));
      if (from !== null) query = query.where((eb) => eb.or([eb("created_at", ">", from.createdAt), eb.and([eb("created_at", "=", from.createdAt), eb("id", ">", from.id)])]));
      const candidates = await query.orderBy("created_at").orderBy("id").limit(batch).execute();
      await lockCandidates(database, trx, candidates.map((c) => c.id));
      const deleted: typeof candidates = [];
      for (const candidate of candidates) {
        if (await deleteUnfinishedSignUp(database, trx, candidate.id, isAbandoned)) deleted.push(candidate);
      }
      // Recorded once every row is deleted: an append holds the log's head until the commit, and a change that wrote a
      // later candidate's row and waits for the head to record it (an administrator's lock) would wait for this
      // transaction while it waited for that row ("deadlock detected").
      for (const { id, created_at } of deleted) {
        const ageHours = Math.floor((now - Number(created_at)) / 3_600_000);
        await recordSignUpRemoved(trx, audit, id, { actor: "system", for: null, via: "maintenance", detail: { ageHours } });
      }
      const last = candidates.at(-1);
      return { seen: candidates.length, deleted: deleted.length, last: last === undefined ? null : { createdAt: Number(last.created_at), id: last.id } };
    });
    after = last;
    removed += deleted;
    if (seen < batch) break;
  }
  return removed;
}

/**
 * PostgreSQL: the locks deleteUnfinishedSignUp takes for each of `ids`, taken for all of them before the first delete, in
 * the order a containment batch takes them (src/contain/job.ts): the link locks in key order (lockManyAccountsLinks),
 * then the rows in id order. Taken candidate by candidate (oldest first), the purge held one sign-up's row while it waited
 * for another's, held by a request's foreign key (FOR KEY SHARE), and a lock-accounts batch over both, holding that one
 * FOR NO KEY UPDATE in id order, waited for the first: "deadlock detected", the job failed
 * (test/new-code-twentysix-b-red-team.test.ts). deleteUnfinishedSignUp then finds its locks held. Nothing on SQLite.
 */
async function lockCandidates(database: Database, trx: Kysely<Schema>, ids: readonly string[]): Promise<void> {
  if (database.dialect !== "postgres" || ids.length === 0) return;
  await lockManyAccountsLinks(database.dialect, trx, ids);
  await trx.selectFrom("users").select("id").where("id", "in", [...ids]).orderBy("id").forUpdate().execute();
}

/**
 * The condition, beside untouched, of a sign-up the maintenance pass deletes: made more than `olderThanMs` before `now`,
 * and no reset link asked for before that age still works (liveResetLinks). A link asked for through "forgot password"
 * before the sign-up reached its age lives on past it (30 minutes): its owner may be finishing the sign-up right now.
 * Not one asked for later: anyone may ask for a link to any address, and an outsider asking every 25 minutes kept their
 * squat for ever; the owner who comes back after that signs up again. Judged when the candidates are read and again,
 * under the link lock, by the DELETE itself (deleteUnfinishedSignUp).
 */
function abandoned(eb: ExpressionBuilder<Schema, "users">, now: number, olderThanMs: number, aheadToleranceMs: number): Expression<SqlBool> {
  return eb.and([eb("users.created_at", "<=", now - olderThanMs), eb.not(eb.exists(liveResetLinks(eb, now, olderThanMs + aheadToleranceMs)))]);
}

/**
 * The reset links of the `users` row that still work at `now` (neither used nor expired) and were asked for before the
 * account was `keptForMs` old: a later one (anyone may ask for one) does not keep an abandoned sign-up. `keptForMs` is
 * the age plus the dated-ahead tolerance: the link's date is its node's clock, the account's another's, and two nodes
 * may be that far apart (datedAheadToleranceFor); the owner's link asked 30 s before the age on a node 50 s ahead lost
 * its sign-up (test/nodes-twentysix-red-team.test.ts). So an outsider's link asked within that tolerance after the age
 * keeps the squat too, only until that link expires (30 minutes).
 */
function liveResetLinks(eb: ExpressionBuilder<Schema, "users">, now: number, keptForMs: number) {
  return eb.selectFrom("password_reset_tokens").select("password_reset_tokens.id").whereRef("password_reset_tokens.user_id", "=", "users.id")
    .where("password_reset_tokens.used_at", "is", null).where("password_reset_tokens.expires_at", ">", now)
    .where("password_reset_tokens.created_at", "<=", sql<number>`users.created_at + ${keptForMs}`);
}

/**
 * The `user.created` events of POST /auth/register for the `users` row, in madeBySignUp's window: narrows the candidates
 * so that old invitations are not read again and again; madeBySignUp, under the lock, decides.
 */
function signUpEvents(eb: ExpressionBuilder<Schema, "users">) {
  return eb.selectFrom("audit_events").select("audit_events.seq")
    .where("audit_events.type", "=", "user.created").where("audit_events.actor", "=", "anonymous").whereRef("audit_events.subject", "=", "users.id")
    .where("audit_events.at", ">=", sql<number>`users.created_at - ${CREATED_EVENT_SLACK_MS}`)
    .where("audit_events.at", "<=", sql<number>`users.created_at + ${CREATED_EVENT_SLACK_MS}`)
    .where("audit_events.data", "like", '%"via":"register"%');
}
