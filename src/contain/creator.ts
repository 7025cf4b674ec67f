// A job created by an API caller runs on that caller's authority, batch after batch: its batches run later (in the
// background, after a restart, as `system`), so each reads its creator again in its own transaction, as a single API
// change reads its caller where it commits (callerWithin). A creator fired meanwhile — demoted, locked, disabled,
// deleted — stops the job until an administrator takes it over or cancels it (ASVS 8.3.2, 8.2.2).
import type { Kysely } from "kysely";
import { ADMINISTRATIVE, allows, permissionsHeldWithin, type Permission } from "../accounts/roles/index.ts";
import { readStamps, refusedBy, revokedBefore } from "../accounts/sessions/revocation.ts";
import { TOKENS_GLOBAL_SCOPE, tokenUserScope } from "../accounts/tokens/index.ts";
import { storedObject } from "../jobs/job-store.ts";
import type { Database } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";
import type { OwnLockTest } from "./creator-own-lock.ts";
import { containErrors } from "./errors.ts";

/**
 * The actor of the server's own resumes (resumeUnfinishedJobs; run-server.ts's resumeContainment runs the jobs without
 * resumeJob): no person decided anything, so it never takes a job over from its creator.
 */
export const SYSTEM_ACTOR = "system";

// A user id as this code writes it (newId: a prefix and base32 text), bounded as the API's ID parameter.
const USER_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The user on whose authority a job's batches run, from its stored spec (`creatorUser`): null for a job created by the
 * CLI or the system, for one recorded before the field existed, and for one an operator took over (resumeJob). Anything
 * other than a user id is refused with the job's coded error (fails closed, ASVS 16.5.3): a row altered to
 * `"creatorUser": 0` must not read as "nobody to check".
 *
 * @example
 * storedCreatorUser(job.id, { creatorUser: "usr_…" }) // "usr_…"
 */
export function storedCreatorUser(jobId: string, spec: { creatorUser?: unknown }): string | null {
  const creator = spec.creatorUser;
  if (creator === undefined) return null;
  if (typeof creator !== "string" || !USER_ID.test(creator)) throw containErrors.corruptJob(jobId, "its stored spec's creatorUser is not a user id");
  return creator;
}

/**
 * The API token a job was posted with (`creatorToken`, its id), from its stored spec: null for a job posted from a
 * browser session, by the CLI, or recorded before the field existed. Anything other than a token id fails closed, as
 * storedCreatorUser does: a row altered to `"creatorToken": 0` must not read as "no token to check".
 */
export function storedCreatorToken(jobId: string, spec: { creatorToken?: unknown }): string | null {
  const token = spec.creatorToken;
  if (token === undefined) return null;
  if (typeof token !== "string" || !USER_ID.test(token)) throw containErrors.corruptJob(jobId, "its stored spec's creatorToken is not a token id");
  return token;
}

/**
 * The token check of a job's batches (CreatorCheckOptions.token), from its stored spec: the token it was posted with
 * (storedCreatorToken) and, when the job pulls revoke-tokens, its own revocation (its action time `at` and `epoch`),
 * which does not stop it. Null when it was posted with no token. An undo pulls no revoke-tokens: every revocation counts.
 *
 * @example
 * creatorTokenOf(job.id, job.spec) // { id: "tok_…", own: null }
 */
export function creatorTokenOf(jobId: string, spec: { creatorToken?: unknown; levers?: unknown; at?: unknown; epoch?: unknown }): { id: string; own: OwnRevocation | null } | null {
  const id = storedCreatorToken(jobId, spec);
  return id === null ? null : tokenCheckOf(id, spec);
}

/** The token check for token `id` of a job with `spec`: its own revocation excused when it pulls revoke-tokens. */
function tokenCheckOf(id: string, spec: { levers?: unknown; at?: unknown; epoch?: unknown }): { id: string; own: OwnRevocation | null } {
  const revokes = Array.isArray(spec.levers) && spec.levers.includes("revoke-tokens") && typeof spec.at === "number";
  return { id, own: revokes ? { at: spec.at as number, epoch: typeof spec.epoch === "number" ? spec.epoch : 0 } : null };
}

// The events the API route appends for a job it created (src/http/api/contain.ts, auditAPI, in the job's transaction): subject the job, and
// callerContext's `auth` and `tokenId` in its data. The same shape since the first API (803d605), for jobs and undos.
const API_CREATED_EVENTS = ["api.contain.job.created", "api.contain.undo.created"];

/**
 * The first audit event of one of `types` whose subject is job `jobId`, read through `trx`: the job's own record of its
 * creation (written in, or right after, the transaction that wrote its row), which older jobs' specs lack a field of.
 *
 * @example
 * await firstJobEvent(trx, "job_…", ["contain.job.created"]) // { seq: 42, type: "contain.job.created", data: "{…}" }
 */
export async function firstJobEvent(trx: Kysely<Schema>, jobId: string, types: readonly string[]): Promise<{ seq: number; type: string; data: string } | undefined> {
  const event = await trx.selectFrom("audit_events").select(["seq", "type", "data"]).where("type", "in", [...types]).where("subject", "=", jobId)
    .orderBy("seq").limit(1).executeTakeFirst();
  return event === undefined ? undefined : { seq: Number(event.seq), type: event.type, data: event.data };
}

/**
 * The token check of a job posted over the API before `creatorToken` existed (92a6a00), read in `trx`: the route
 * recorded the token only in its own audit event (API_CREATED_EVENTS, subject the job), so when that event says
 * `auth: "token"` its `tokenId` is the token the job was posted with, and the job stops once that token is revoked,
 * as a newer one does (it used to run to its end: the rotated leaked token was never read). Null when the spec
 * records a token or a takeover (resumeJob's `takenOverBy`: the operator answers for it now, not the token), and
 * when no such event says "token" (a session, the CLI, or a process that died before appending it). An event that
 * says "token" with no token id fails closed with the job's coded error: it must not read as "no token to check".
 * One lookup on the log's (type, seq) index among the API's job events, which are few: its callers read it once per
 * run (the event never changes).
 *
 * @example
 * await legacyCreatorTokenWithin(trx, "job_…", {}) // { id: "tok_…", own: null } for a job posted with that token
 */
export async function legacyCreatorTokenWithin(trx: Kysely<Schema>, jobId: string, spec: { creatorToken?: unknown; takenOverBy?: unknown; levers?: unknown; at?: unknown; epoch?: unknown }): Promise<{ id: string; own: OwnRevocation | null } | null> {
  if (spec.creatorToken !== undefined || spec.takenOverBy !== undefined) return null;
  // The first one: the route appends it in the job's transaction (older versions right after it committed), and no
  // other code writes these types.
  const event = await firstJobEvent(trx, jobId, API_CREATED_EVENTS);
  if (!event) return null;
  let data: unknown;
  try {
    data = JSON.parse(event.data);
  } catch (error) {
    throw containErrors.corruptJob(jobId, `its ${event.type} audit event's data is not JSON`, { cause: error });
  }
  const { auth, tokenId } = (typeof data === "object" && data !== null ? data : {}) as { auth?: unknown; tokenId?: unknown };
  if (auth !== "token") return null;
  if (typeof tokenId !== "string" || !USER_ID.test(tokenId)) throw containErrors.corruptJob(jobId, `its ${event.type} audit event says it was posted with an API token but names no token id`);
  return tokenCheckOf(tokenId, spec);
}

/**
 * Who a job's events name as their actor now: whoever took it over (resumeJob's `takenOverBy`), else the job's own
 * actor (its creator, the CLI's operator, the system). After a takeover the remaining batches run on the operator's
 * authority, and the audit trail must file them under the operator, not under the account that was fired — often the
 * intruder's (ASVS 16.2.1). One helper for every event a job writes (batches, completion, preparation, lever events,
 * left-alone, failure), so none is left naming the fired creator. A `takenOverBy` that is not text (an altered row)
 * is not believed: the job's own actor stands.
 *
 * @example
 * actingActor({ actor: "usr_…", spec: { takenOverBy: "cli:bob" } }) // "cli:bob"
 */
export function actingActor(job: { actor: string; spec?: unknown }): string {
  const spec = job.spec;
  const taken = typeof spec === "object" && spec !== null ? (spec as { takenOverBy?: unknown }).takenOverBy : undefined;
  return typeof taken === "string" && taken !== "" ? taken.slice(0, 200) : job.actor;
}

/**
 * The creator of a job recorded before `creatorUser` existed (17019cd): the API wrote its caller's user id as the job's
 * actor (`jobs.actor`), so an actor that names an account is taken as the creator, read in `trx`, and such a job stops
 * when its creator is fired as a newer one does (it used to run on; the docs said to cancel it by hand). The CLI's
 * actor ("cli:NAME"), the system's and any other text name no account: null, as before. Only when the spec names no
 * creator and no one who took the job over (resumeJob's `takenOverBy`): a job moved to an operator is theirs, and
 * reading its old actor again would stop it at once.
 *
 * @example
 * await legacyCreatorWithin(trx, {}, "usr_…") // "usr_…" while that account exists; null for "cli:alice"
 */
export async function legacyCreatorWithin(trx: Kysely<Schema>, spec: { creatorUser?: unknown; takenOverBy?: unknown }, actor: string): Promise<string | null> {
  if (spec.creatorUser !== undefined || spec.takenOverBy !== undefined) return null;
  if (!USER_ID.test(actor)) return null;
  // Accounts are disabled, never deleted (their rows hold the audit's subjects): a user id here stays found.
  const user = await trx.selectFrom("users").select("id").where("id", "=", actor).executeTakeFirst();
  return user?.id ?? null;
}

/**
 * What the creator must still hold for the job to go on: contain.run (the API's access rule for every job) and every
 * administrative permission it held when it created the job (those it did not lack): an administrator's job acts on
 * administrators, and must stop once its creator is no longer one — the rule cancel applies to whoever stops it.
 */
export function creatorMustHold(creatorLacks: readonly string[]): Permission[] {
  return [...new Set<Permission>(["contain.run", ...[...ADMINISTRATIVE].filter((p) => !creatorLacks.includes(p))])];
}

/**
 * Why `userId` no longer stands behind the job, read in `trx` (permissionsHeldWithin: on PostgreSQL the creator's
 * acting lock is held shared and their role rows FOR SHARE until `trx` ends, so a lock or demotion in flight is waited
 * for and seen, and one that starts later waits for the batch), or null when they still hold every one of `needed`.
 * A transaction that takes the last-admin lock (holdRoleRemovals) takes it before this, as every removal does.
 *
 * `lockedByOwnJob`: a lock this very job set on its creator does not stop it. An administrator's lock-accounts over
 * `{all: true}` locks the caller's own account with the rest (docs/api.md: deliberate, in a breach); stopping there
 * would leave the other batches undone. Only while the lock is exactly the one the job recorded (as its undo checks)
 * and no later decision locks the creator too: an administrator locking the creator again over the API sets a lock of
 * their own (user-queries.ts lockUser, "relocked"), and a later containment job pulling lock-accounts over them
 * (ownLockOf) withdraws the exception; either one counts.
 *
 * @example
 * await creatorShortfall(database, trx, "usr_…", ["contain.run"]) // "is locked" — or null
 */
export async function creatorShortfall(database: Pick<Database, "dialect">, trx: Kysely<Schema>, userId: string, needed: readonly Permission[], options: { lockedByOwnJob?: OwnLockTest } = {}): Promise<string | null> {
  const held = await permissionsHeldWithin(database, trx, userId);
  const lost = needed.filter((p) => !allows(held, p));
  if (lost.length === 0) return null;
  // permissionsHeldWithin answers nothing for an account that may not act at all: say which state, not the list.
  const account = await trx.selectFrom("users").select(["status", "locked_at", "locked_reason"]).where("id", "=", userId).executeTakeFirst();
  if (!account) return "no longer exists (deleted)";
  if (account.status !== "active") return `is ${account.status.slice(0, 20)}, not active`;
  if (account.locked_at === null) return `no longer holds ${lost.join(", ")}`;
  if (options.lockedByOwnJob === undefined || !(await options.lockedByOwnJob(trx, userId, account))) return "is locked";
  const roles = await rolePermissions(database, trx, userId);
  const lostByRole = needed.filter((p) => !allows(roles, p));
  return lostByRole.length === 0 ? null : `no longer holds ${lostByRole.join(", ")}`;
}

/**
 * A revocation of the creator's token made by the job itself (revoke-tokens over its own creator, as lock-accounts may
 * lock them): the lever marks token rows revoked at the job's time (`at`) and raises token stamps to revokedBefore(at)
 * with the job's epoch. Null for a job that does not pull revoke-tokens.
 */
export interface OwnRevocation {
  at: number;
  epoch: number;
}

/**
 * Whether API token `tokenId` has been revoked, read in `trx`: its row marked revoked (by itself or with the token it
 * was minted from), or refused by a token stamp (the user's, or the global one of a revoke-tokens `--all` run, whose
 * batches mark the rows later), or gone. A revocation the job made itself (`own`) does not count, as its own lock of
 * its creator does not: the same time on the row, no stamp beyond its own. An expiry does not count either: a long job
 * outliving the short-lived token it was posted with is normal, and stopping it there would make responders post
 * containment with long-lived tokens.
 */
export async function tokenRevokedWithin(trx: Kysely<Schema>, tokenId: string, own: OwnRevocation | null): Promise<boolean> {
  const row = await trx.selectFrom("api_tokens").select(["user_id", "created_at", "issued_epoch", "revoked_at"]).where("id", "=", tokenId).executeTakeFirst();
  // Token rows keep their history (revoked, never deleted): one that is gone was removed by hand. Fails closed.
  if (!row) return true;
  if (row.revoked_at !== null && !(own !== null && Number(row.revoked_at) === own.at)) return true;
  const stamp = await readStamps(trx, [TOKENS_GLOBAL_SCOPE, tokenUserScope(row.user_id)]);
  if (!refusedBy(stamp, Number(row.created_at), Number(row.issued_epoch))) return false;
  // Refused by a stamp: only this job's own raise (its time and epoch, no later) is excused.
  return own === null || stamp.time > revokedBefore(own.at) || stamp.epoch > own.epoch;
}

/** The permissions the account's roles carry, whatever its state; on PostgreSQL the rows stay FOR SHARE, as in permissionsHeldWithin. */
async function rolePermissions(database: Pick<Database, "dialect">, trx: Kysely<Schema>, userId: string): Promise<Set<string>> {
  const query = trx.selectFrom("user_roles").innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
    .select("role_permissions.permission").where("user_roles.user_id", "=", userId);
  return new Set((await (database.dialect === "postgres" ? query.forShare() : query).execute()).map((r) => r.permission));
}

/** What a job's batches check of its creator besides their account: the token it was posted with (finding: ASVS 7.4.1). */
export interface CreatorCheckOptions {
  /** A containment job's own lock of its creator does not count (above). */
  lockedByOwnJob?: OwnLockTest;
  /** The API token the job was posted with (storedCreatorToken), and the job's own revocation of it, if any. */
  token?: { id: string; own: OwnRevocation | null } | null;
}

// Why a job stops when the token it was posted with is revoked (containErrors.creatorLost quotes it after the creator).
const TOKEN_REVOKED = "no longer stands behind it: the API token it was posted with was revoked";

/**
 * Why `creator` no longer stands behind the job, read in `trx`, or null: their account (creatorShortfall), then the API
 * token the job was posted with. A team that rotates a leaked token and keeps its colleague (the Sentry response)
 * revokes the credential, not the account: the job the token posted must stop with it (ASVS 8.3.2, 7.4.1). Used by
 * every batch (creatorCheck) and by a takeover (service.ts), so a person's resume takes over exactly the jobs that stop.
 */
export async function creatorStanding(database: Pick<Database, "dialect">, trx: Kysely<Schema>, creator: string, needed: readonly Permission[], options: CreatorCheckOptions = {}): Promise<string | null> {
  const why = await creatorShortfall(database, trx, creator, needed, options);
  if (why !== null) return why;
  // Read without a row lock: a revocation committing while this batch runs is seen by the next one. A FOR SHARE here,
  // taken before the batch locks its accounts, would wait in a cycle with a revoke-tokens batch holding those accounts.
  const token = options.token ?? null;
  if (token !== null && (await tokenRevokedWithin(trx, token.id, token.own))) return `${TOKEN_REVOKED} (${token.id})`;
  return null;
}

/**
 * The check each batch (and each step) of a job runs first, in its transaction: throws containErrors.creatorLost when
 * the job's creator no longer stands behind it (creatorStanding), which fails the job (nothing of the batch is
 * applied); returns the creator it checked, null for a job without a user creator. `creator`: the spec's
 * (storedCreatorUser); when it names none, the job row's actor is read once, in the first batch's transaction
 * (legacyCreatorWithin: a job recorded before `creatorUser` existed). `lockedByOwnJob`: a containment job's own lock
 * of its creator does not count (above); `token`: the token it was posted with, checked only while a creator is (a job
 * taken over runs on the operator's authority, not the token's); when the spec names none, the job's API event is read
 * once too, in the same transaction (legacyCreatorTokenWithin: a job posted before `creatorToken` existed).
 */
export function creatorCheck(database: Pick<Database, "dialect">, jobId: string, creator: string | null, needed: readonly Permission[], options: CreatorCheckOptions = {}): (trx: Kysely<Schema>) => Promise<string | null> {
  // Found once per run: a job's actor, spec and API event do not change while it runs (a takeover builds the stages
  // again), and an account id, once found, stays an account's.
  const token = options.token ?? null;
  let found: { creator: string | null; token: CreatorCheckOptions["token"] } | undefined = creator !== null && token !== null ? { creator, token } : undefined;
  return async (trx) => {
    if (found === undefined) {
      // A job recorded before `creatorUser` or `creatorToken` existed: its row's actor, its API event's token.
      const row = await trx.selectFrom("jobs").select(["spec", "actor"]).where("id", "=", jobId).executeTakeFirst();
      const spec = row ? storedObject(jobId, "spec", row.spec) : null;
      const who = creator ?? (row && spec ? await legacyCreatorWithin(trx, spec, row.actor) : null);
      found = { creator: who, token: token ?? (who !== null && spec !== null ? await legacyCreatorTokenWithin(trx, jobId, spec) : null) };
    }
    const who = found.creator;
    if (who === null) return null;
    const why = await creatorStanding(database, trx, who, needed, { ...options, token: found.token });
    if (why !== null) throw containErrors.creatorLost(jobId, who, why);
    return who;
  };
}
