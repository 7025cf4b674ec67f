// /api/v1/contain/jobs (issue 5): dry runs, real runs in the background (202 + the job), progress, undo.
// Every route needs contain.run; real jobs and undo need a fresh session too (ASVS 7.5.3). The library in src/contain does the work; this file validates and maps.
import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { canonicalJSON } from "../../audit/canonical.ts";
import * as contain from "../../contain/index.ts";
import { isRequestKeyCollision, type Job, type RequestKey, type UnreadableJob } from "../../jobs/job-store.ts";
import { isoOrNull } from "../../lib/calendar.ts";
import { BulwarkError } from "../../lib/errors.ts";
import type { App } from "../../app/types.ts";
import { auditAPI, ID, PAGE_QUERY, parseTime, text, TIME } from "./common.ts";
import { openPosition, sealPosition } from "./cursor.ts";
import { apiErrors } from "./errors.ts";
import { ADMINISTRATIVE } from "../../accounts/roles/index.ts";
import { assertFresh, callerOf, can, type Caller } from "./guard.ts";
import type { JobRunner } from "./job-runner.ts";

// An id list travels in the body; bounded far below the CLI's file limit (larger scopes: use roles, times or
// --ids from the CLI). 20,000 ids of ≤ 254 characters stay under the body limit below.
const MAX_API_IDS = 20_000;
const CONTAIN_BODY = 6 * 1024 * 1024;
const LEFT_ALONE_SHOWN = 100;

const SCOPE = {
  type: "object", additionalProperties: false,
  properties: {
    all: { type: "boolean" },
    roles: { type: "array", minItems: 1, maxItems: 50, items: text(1, 40) },
    ids: { type: "array", minItems: 1, maxItems: MAX_API_IDS, items: text(1, 254) },
    createdBefore: TIME, createdAfter: TIME, lastLoginBefore: TIME, lastLoginAfter: TIME, activeFrom: TIME, activeTo: TIME,
    scheme: text(1, 64),
  },
} as const;

type TimeField = "createdBefore" | "createdAfter" | "lastLoginBefore" | "lastLoginAfter" | "activeFrom" | "activeTo";
const TIME_FIELDS: TimeField[] = ["createdBefore", "createdAfter", "lastLoginBefore", "lastLoginAfter", "activeFrom", "activeTo"];

interface ScopeBody {
  all?: boolean;
  roles?: string[];
  ids?: string[];
  scheme?: string;
  createdBefore?: string | number; createdAfter?: string | number; lastLoginBefore?: string | number;
  lastLoginAfter?: string | number; activeFrom?: string | number; activeTo?: string | number;
}

function toScope(body: ScopeBody): contain.ScopeSpec {
  const scope: contain.ScopeSpec = {};
  if (body.all !== undefined) scope.all = body.all;
  if (body.roles) scope.roles = body.roles;
  // A NUL or an unpaired surrogate in an id never reaches PostgreSQL (a 500): the schema's text pattern refuses it
  // (400 naming body/scope/ids/N), and contain.validateScope would again.
  if (body.ids) scope.ids = body.ids;
  if (body.scheme !== undefined) scope.scheme = body.scheme;
  for (const field of TIME_FIELDS) {
    const value = body[field];
    if (value !== undefined) scope[field] = parseTime(value, `scope.${field}`);
  }
  return scope;
}

/** A job's view with its progress: done, total, rate (users per second), ETA (seconds) and whether it stalled. */
function progressView(app: App, job: Job): Record<string, unknown> {
  return { ...contain.jobView(job), progress: contain.jobProgress(job, app.clock.now()) };
}

/** A job row that cannot be read, as listed: enough for an operator to find it and repair it. */
function unreadableView(u: UnreadableJob): Record<string, unknown> {
  return { id: u.id, kind: u.kind, status: u.status, unreadable: true, error: u.error.message, createdAt: isoOrNull(u.createdAt) };
}

async function containJob(deps: contain.ContainDeps, id: string): Promise<Job> {
  let job: Job;
  try {
    job = await deps.jobs.get(id);
  } catch (cause) {
    // A containment job whose row cannot be read exists all the same: 409 saying so, not a 404 that hides it.
    if (cause instanceof BulwarkError && cause.code === "BULWARK_ERR_JOB_UNREADABLE") {
      const row = await deps.database.db.selectFrom("jobs").select("kind").where("id", "=", id).executeTakeFirst();
      if (row?.kind === contain.CONTAIN_KIND || row?.kind === contain.UNDO_KIND) throw contain.containErrors.unreadableJob(id, { cause });
    }
    throw Object.assign(apiErrors.jobNotFound(id), { cause });
  }
  // Other kinds of jobs (hash migration…) are not containment jobs: not found here.
  if (job.kind !== contain.CONTAIN_KIND && job.kind !== contain.UNDO_KIND) throw apiErrors.jobNotFound(id);
  return job;
}

// What an Idempotency-Key may hold: a UUID, a ULID, base64 or a caller's own token; bounded.
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:+/=-]{1,128}$/;

/**
 * The request's Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header), or null when it has none. The
 * draft makes it a Structured Fields string, which is quoted; a bare value is accepted too. Sent twice, Node joins
 * the values with ", ", which the pattern refuses.
 */
function idempotencyKey(request: FastifyRequest): string | null {
  const raw = request.headers["idempotency-key"];
  if (raw === undefined) return null;
  const text = Array.isArray(raw) ? "" : /^"[^"]*"$/.test(raw) ? raw.slice(1, -1) : raw;
  if (!IDEMPOTENCY_KEY.test(text)) throw apiErrors.badIdempotencyKey("give one value of 1 to 128 characters from A-Z a-z 0-9 . _ : + / = - (a UUID, say)");
  return text;
}

/**
 * The request key of a real containment request: the caller's own namespace of keys (user ids never hold a colon),
 * and a hash of the request as the job would be made of it, which tells a retry from the key reused for another
 * request. Spellings of one request hash alike: levers and listed ids in any order, a time as ISO text or epoch ms,
 * options left out or given empty, object keys in any order (canonical JSON).
 */
export function requestKeyOf(caller: Pick<Caller, "userId">, key: string, request: { levers: readonly string[]; scope: contain.ScopeSpec; incidentId?: string; batchSize?: number; options?: Record<string, unknown> }): RequestKey {
  const scope = request.scope.ids ? { ...request.scope, ids: [...request.scope.ids].sort() } : request.scope;
  const made = { levers: [...new Set(request.levers)].sort(), scope, incidentId: request.incidentId ?? null, batchSize: request.batchSize ?? null, options: request.options ?? {} };
  return { key: `${caller.userId}:${key}`, fingerprint: createHash("sha256").update(canonicalJSON(made)).digest("hex") };
}

/** The administrative permissions the caller (or the token it calls with) lacks: [] for an administrator. */
function lackedBy(caller: Caller): string[] {
  return [...ADMINISTRATIVE].filter((p) => !can(caller, p));
}

/**
 * The outranking rule of the user routes, for a whole scope and the administrative permissions: a caller may
 * not contain accounts that hold an administrative permission (admin, accounts.write, contain.run,
 * inventory.manage) the caller lacks. contain.run alone must not lock, demote or cut off the administrators; an
 * administrator (who holds everything) is not limited, and the CLI, run by whoever holds the server, is the
 * break-glass path. Checked for dry runs too, so a dry run says what the real run would do. The job records
 * `lacking` (spec.creatorLacks), and each of its batches leaves alone a user who holds one by then: the batches
 * run later (in the background, after a restart) against whoever the scope's users have become.
 */
async function assertScopeOutranked(deps: contain.ContainDeps, lacking: readonly string[], scope: contain.ScopeSpec): Promise<void> {
  if (lacking.length === 0) return;
  const row = await deps.database.db
    .selectFrom("user_roles")
    .innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
    .where("role_permissions.permission", "in", [...lacking])
    .where("user_roles.user_id", "in", contain.scopedUserIds(deps.database.db, deps.database.dialect, scope))
    .select(["user_roles.user_id", "role_permissions.permission"])
    .limit(1)
    .executeTakeFirst();
  if (row) throw apiErrors.outranked(row.user_id, row.permission);
}

/**
 * The rule that guards a cancel and an undo: the caller must hold every administrative permission the job's creator
 * held, or contain.run alone could stop — or reverse — an administrator's containment of another account (a help
 * desk undoing the lock, the forced password change and the demotion an administrator put on its confederate). A job
 * whose spec cannot be read is taken to have been created by an administrator. `action` names the refused request.
 *
 * A job taken over (`takenOverBy`: an operator's `bulwark contain resume` once its creator no longer stood behind it)
 * runs on that operator's authority, the server's: it is held as a shell-made job is, and only an administrator may
 * cancel or undo it. Read by the fired creator's `creatorLacks` (kept in the spec for the batches' outranking rule), a
 * help desk's takeover could be undone by another help desk, reversing the team's decision (ASVS 8.2.2).
 */
function assertHoldsWhatCreatorHeld(lacking: readonly string[], job: { id: string; spec: Record<string, unknown> | null }, action: "cancel" | "undo"): void {
  let creatorLacked: string[] = [];
  try {
    creatorLacked = job.spec === null || job.spec["takenOverBy"] !== undefined ? [] : contain.storedCreatorLacks(job.id, job.spec);
  } catch (error) {
    if (!(error instanceof BulwarkError)) throw error;
  }
  const held = lacking.find((p) => !creatorLacked.includes(p));
  if (held !== undefined) throw apiErrors.outrankedJob(job.id, held, action);
}

/**
 * The same rule for an undo: it may not change accounts that now hold an administrative permission the caller
 * lacks (unlocking a locked administrator, say), nor hand back a role carrying one (the re-grants of
 * demote-inactive-admins). Otherwise contain.run alone could undo an administrator's containment of another
 * administrator and so do what it may not do directly. Reads only the job's open change records.
 */
async function assertUndoOutranked(deps: contain.ContainDeps, lacking: readonly string[], jobId: string): Promise<void> {
  if (lacking.length === 0) return;
  const db = deps.database.db;
  const open = db.selectFrom("contain_changes").where("contain_changes.job_id", "=", jobId).where("contain_changes.undo_status", "is", null);
  const held = await db
    .selectFrom("user_roles")
    .innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
    .where("role_permissions.permission", "in", [...lacking])
    .where("user_roles.user_id", "in", open.select("contain_changes.user_id"))
    .select(["user_roles.user_id", "role_permissions.permission"])
    .limit(1)
    .executeTakeFirst();
  if (held) throw apiErrors.outranked(held.user_id, held.permission);
  const regrant = await open
    .innerJoin("role_permissions", "role_permissions.role", "contain_changes.entity")
    .where("contain_changes.lever", "=", "demote-inactive-admins")
    .where("role_permissions.permission", "in", [...lacking])
    .select(["contain_changes.user_id", "role_permissions.permission"])
    .limit(1)
    .executeTakeFirst();
  if (regrant) throw apiErrors.outranked(regrant.user_id, regrant.permission);
}

/** Registers the containment routes on the API plugin. */
export function registerContainRoutes(api: FastifyInstance, app: App, deps: contain.ContainDeps, runner: JobRunner): void {
  const JOB_PARAMS = { type: "object", required: ["id"], additionalProperties: false, properties: { id: ID } } as const;

  api.post("/contain/jobs", {
    config: { access: "contain.run" },
    bodyLimit: CONTAIN_BODY,
    schema: {
      body: {
        type: "object", required: ["levers", "scope"], additionalProperties: false,
        properties: {
          levers: { type: "array", minItems: 1, maxItems: 20, uniqueItems: true, items: text(1, 60) },
          scope: SCOPE,
          dryRun: { type: "boolean", default: false },
          incidentId: { type: "string", minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.:-]+$" },
          batchSize: { type: "integer", minimum: 1, maximum: 5000 },
          options: {
            type: "object", additionalProperties: false,
            properties: { inactiveDays: { type: "integer", minimum: 1, maximum: 36_500 }, lockReason: text(1, 200), emailChangedWithinDays: { type: "integer", minimum: 0, maximum: 36_500 } },
          },
        },
      },
    },
  }, async (request: FastifyRequest, reply) => {
    const caller = callerOf(request);
    const body = request.body as { levers: string[]; scope: ScopeBody; dryRun: boolean; incidentId?: string; batchSize?: number; options?: { inactiveDays?: number; lockReason?: string; emailChangedWithinDays?: number } };
    // Checked for dry runs too (a bad header is a mistake worth naming), though a dry run creates nothing to repeat.
    const key = idempotencyKey(request);
    // ASVS 7.5.3: a real job acts on many accounts at once and needs a fresh session; a dry run changes nothing.
    if (!body.dryRun) await assertFresh(app, request);
    const scope = toScope(body.scope);
    contain.resolveLevers(body.levers);
    contain.validateScope(scope);
    const lacking = lackedBy(caller);
    await assertScopeOutranked(deps, lacking, scope);
    const containRequest: contain.ContainRequest = {
      levers: body.levers, scope, actor: caller.userId, incidentId: body.incidentId ?? null, options: body.options ?? {}, creatorLacks: lacking,
      // The job runs on the caller's authority: each batch checks again that they still hold it (src/contain/creator.ts),
      // and, when they call with an API token, that the token has not been revoked since (a leaked token rotated).
      creatorUser: caller.userId,
      ...(caller.via === "token" && caller.tokenId !== null ? { creatorToken: caller.tokenId } : {}),
      ...(body.batchSize !== undefined ? { batchSize: body.batchSize } : {}),
    };
    if (body.dryRun) {
      const report = await contain.dryRunContain(deps, containRequest);
      await auditAPI(app, request, caller, { type: "api.contain.dry-run", data: { levers: body.levers, users: report.users } });
      return report;
    }
    const requestKey = key === null ? null : requestKeyOf(caller, key, { ...body, scope });
    if (requestKey !== null) {
      const earlier = await deps.jobs.byRequestKey(requestKey.key);
      if (earlier !== null) return replayed(request, reply, caller, key as string, requestKey, earlier);
    }
    let job: { id: string; total: number };
    try {
      // The API's record of the request commits with the job: a failure leaves no job behind, and the retry makes one.
      job = await contain.createContainJob(deps, { ...containRequest, requestKey }, {
        record: (trx, made) => auditAPI(app, request, caller, { type: "api.contain.job.created", subject: made.id, data: { levers: body.levers, users: made.total, incidentId: body.incidentId ?? null } }, trx),
      });
    } catch (error) {
      // Two requests with one key at once (a retry racing the first attempt, on two nodes): the database let one job
      // in, and this request answers with it. The revocation stamps this one raised first stay: they only end sessions
      // the other request's stamps ended too.
      if (requestKey === null || !isRequestKeyCollision(error)) throw error;
      const earlier = await deps.jobs.byRequestKey(requestKey.key);
      if (earlier === null) throw error;
      return replayed(request, reply, caller, key as string, requestKey, earlier);
    }
    const view = progressView(app, await deps.jobs.get(job.id));
    runner.start(job.id);
    return reply.status(202).header("location", `/api/v1/contain/jobs/${job.id}`).send({ job: view });
  });

  /**
   * The answer to a request whose Idempotency-Key already created a job: that job as it is now, with the status and
   * Location of the first answer and `Idempotent-Replayed: true`; a conflict when the key came with another request.
   * A job still pending is started here: the first attempt may have died between creating it and starting it.
   */
  async function replayed(request: FastifyRequest, reply: FastifyReply, caller: Caller, key: string, requestKey: RequestKey, earlier: { id: string; fingerprint: string | null }): Promise<FastifyReply> {
    if (earlier.fingerprint !== requestKey.fingerprint) throw apiErrors.idempotencyKeyReused(key, earlier.id);
    const job = await containJob(deps, earlier.id);
    await auditAPI(app, request, caller, { type: "api.contain.job.replayed", subject: job.id, data: { idempotencyKey: key, status: job.status } });
    if (job.status === "pending") runner.start(job.id);
    return reply.status(202).header("location", `/api/v1/contain/jobs/${job.id}`).header("idempotent-replayed", "true").send({ job: progressView(app, job) });
  }

  api.get("/contain/jobs", {
    config: { access: "contain.run" },
    schema: { querystring: { type: "object", additionalProperties: false, properties: PAGE_QUERY } },
  }, async (request) => {
    const { limit, cursor } = request.query as { limit: number; cursor?: string };
    // Pages, newest first: cut at the newest `limit`, a job could be pushed out of every responder's reach by
    // starting enough (empty) jobs after it.
    const after = cursor === undefined ? null : await openPosition(app.keyring, "contain-jobs", "", cursor);
    // Each row is read on its own: one that cannot be read (its spec is not JSON) is listed as unreadable, and the
    // others as usual. It made the whole listing a 500, for every caller, in the middle of an incident.
    const listed = await deps.jobs.listReadable({ kinds: [contain.CONTAIN_KIND, contain.UNDO_KIND], limit: limit + 1, after });
    const entries = [
      ...listed.jobs.map((j) => ({ id: j.id, at: j.createdAt, view: (): Record<string, unknown> => progressView(app, j) })),
      ...listed.unreadable.map((u) => ({ id: u.id, at: u.createdAt, view: (): Record<string, unknown> => unreadableView(u) })),
    ].sort((a, b) => b.at - a.at || (a.id < b.id ? -1 : 1));
    const page = entries.slice(0, limit);
    const last = page.at(-1);
    const nextCursor = entries.length > limit && last ? await sealPosition(app.keyring, "contain-jobs", "", { createdAt: last.at, id: last.id }) : null;
    return { jobs: page.map((e) => e.view()), nextCursor };
  });

  api.get("/contain/jobs/:id", { config: { access: "contain.run" }, schema: { params: JOB_PARAMS } }, async (request) => {
    const job = await containJob(deps, (request.params as { id: string }).id);
    const view: Record<string, unknown> = { ...progressView(app, job), runningHere: runner.running(job.id) };
    const undoOf = (job.spec as { undoOf?: unknown }).undoOf;
    if (job.kind === contain.UNDO_KIND && job.status === "done" && typeof undoOf === "string") {
      // Rows the undo left alone (changed since the job, held by another job, or now outranking the undo's creator):
      // the operator must look at them.
      const skipped = await contain.skippedByUndo(deps, undoOf, LEFT_ALONE_SHOWN + 1);
      view["leftAlone"] = { rows: skipped.slice(0, LEFT_ALONE_SHOWN), more: skipped.length > LEFT_ALONE_SHOWN };
    }
    if (job.kind === contain.CONTAIN_KIND && Object.entries(job.counts).some(([k, v]) => k.endsWith(".leftAlone") && typeof v === "number" && v > 0)) {
      // Users its batches left alone because they hold, by then, an administrative permission its creator lacks.
      const users = await contain.leftAloneByJob(deps.database.db, job.id, LEFT_ALONE_SHOWN + 1);
      view["leftAlone"] = { users: users.slice(0, LEFT_ALONE_SHOWN), more: users.length > LEFT_ALONE_SHOWN };
    }
    return { job: view };
  });

  // Cancelling stops a containment mid-incident (an attacker's wish): fresh session required, as for an undo.
  api.post("/contain/jobs/:id/cancel", { config: { access: "contain.run", reauth: "required" }, schema: { params: JOB_PARAMS } }, async (request) => {
    const caller = callerOf(request);
    const id = (request.params as { id: string }).id;
    const lacking = lackedBy(caller);
    const outcome = await contain.cancelJob(deps, id, {
      actor: caller.userId,
      // Outranking, under the job row's lock: contain.run alone must not stop an administrator's containment.
      check: (job) => assertHoldsWhatCreatorHeld(lacking, job, "cancel"),
      record: (trx, done) => auditAPI(app, request, caller, { type: "api.contain.job.cancelled", subject: id, data: { was: done.was, done: done.done, total: done.total } }, trx),
    }).catch((error: unknown) => {
      // Not found, or not a containment job: the same 404 as the other job routes.
      if (error instanceof BulwarkError && (error.code === "BULWARK_ERR_JOB_NOT_FOUND" || error.code === "BULWARK_ERR_CONTAIN_JOB")) throw Object.assign(apiErrors.jobNotFound(id), { cause: error });
      throw error;
    });
    // The job's view, as the other job routes answer it; null for a row that cannot be read (cancelled all the same).
    const job = await deps.jobs.get<Record<string, unknown>>(id).then((j) => progressView(app, j), (error: unknown) => {
      if (error instanceof BulwarkError && error.code === "BULWARK_ERR_JOB_UNREADABLE") return null;
      throw error;
    });
    return { job, cancelled: outcome };
  });

  // An undo changes accounts in bulk again: fresh session required (ASVS 7.5.3).
  api.post("/contain/jobs/:id/undo", { config: { access: "contain.run", reauth: "required" }, schema: { params: JOB_PARAMS } }, async (request, reply) => {
    const caller = callerOf(request);
    const original = await containJob(deps, (request.params as { id: string }).id);
    const lacking = lackedBy(caller);
    // Cancel's rule first: undoing a job reverses it, which is more than stopping it (ASVS 8.2.2). Then the accounts
    // it would change, as they are now.
    assertHoldsWhatCreatorHeld(lacking, original, "undo");
    await assertUndoOutranked(deps, lacking, original.id);
    // The undo runs on the caller's authority, checked again at each step (src/contain/creator.ts).
    const undo = await contain.createUndoJob(deps, original.id, caller.userId, {
      creatorLacks: lacking, creatorUser: caller.userId,
      ...(caller.via === "token" && caller.tokenId !== null ? { creatorToken: caller.tokenId } : {}),
      record: (trx, made) => auditAPI(app, request, caller, { type: "api.contain.undo.created", subject: made.id, data: { undoOf: original.id, changes: made.total } }, trx),
    });
    const view = progressView(app, await deps.jobs.get(undo.id));
    runner.start(undo.id);
    return reply.status(202).header("location", `/api/v1/contain/jobs/${undo.id}`).send({ job: view });
  });
}
