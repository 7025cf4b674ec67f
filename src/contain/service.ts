// Running, resuming and describing containment jobs; the entry points the CLI, the HTTP API and server
// start-up use (the server lists `resumableJobs` and starts them all in its job runner).
import type { Kysely } from "kysely";
import type { App } from "../app/types.ts";
import type { Schema } from "../store/schema.ts";
import type { Job, JobStatus, UnreadableJob } from "../jobs/job-store.ts";
import { epochNow, jobErrors, RESUMABLE_STATUSES, storedObject, storedObjectOrNull } from "../jobs/job-store.ts";
import { isoOrNull } from "../lib/calendar.ts";
import { BulwarkError } from "../lib/errors.ts";
import { recordFailure, runStages, TERMINAL, type ContainDeps, type RunOptions, type Stage } from "./engine.ts";
import { containErrors, isCorruptJobError } from "./errors.ts";
import { CONTAIN_KIND, containStages, type ContainSpec } from "./job.ts";
import { LEFT_ALONE_EVENT, storedCreatorLacks } from "./outranked.ts";
import { creatorMustHold, creatorStanding, creatorTokenOf, legacyCreatorTokenWithin, legacyCreatorWithin, storedCreatorUser, SYSTEM_ACTOR } from "./creator.ts";
import { pairingNotes, type ResetNotifier } from "./lever.ts";
import { emailChangeWindowDays, RESET_EMAIL_REFUSED, RESET_EMAIL_WITHHELD, WITHHELD_NEXT_STEP } from "./levers/invalidate-passwords.ts";
import { describeUnmatched, type UnmatchedIds } from "./scope.ts";
import { notifySecurityEvent, securityMessages, type SecurityEvent, type SecurityNotice } from "../notify/index.ts";
import { reversibleLevers, UNDO_KIND, undoStages, type UndoSpec } from "./undo.ts";

/**
 * The containment dependencies from an opened application. The reset notifier queues each user's link in the
 * outbox inside the batch's transaction; without SMTP the messages wait there until mail is configured.
 */
export function containDeps(app: App, notifier: ResetNotifier | null = resetNotifierFor(app)): ContainDeps {
  return { database: app.db, clock: app.clock, random: app.random, audit: app.audit, jobs: app.accounts.jobs, keyring: app.keyring, notifier, sessionPolicy: app.accounts.sessions.policy };
}

/** invalidate-passwords' reset links and the other levers' security notices, through the app's reset tokens and outbox. */
export function resetNotifierFor(app: App): ResetNotifier {
  const mailer = app.accounts.resetMailer;
  return {
    async enqueueReset(trx, user, jobId, seq) {
      await mailer.issueInTransaction(trx, user.id, { email: user.email, publicURL: app.config.http.publicURL, serviceName: app.config.serviceName, reason: "containment", jobId, ...(seq === undefined ? {} : { seq }) });
    },
    async enqueueResets(trx, users, jobId) {
      await mailer.issueContainmentLinks(trx, users, { publicURL: app.config.http.publicURL, serviceName: app.config.serviceName, jobId });
    },
    async enqueueNotice(trx, user, jobId, event, seq) {
      await notifySecurityEvent(app.accounts.outbox, containmentNotice(jobId, user, event, app.clock.now(), seq), { appName: app.config.serviceName, executor: trx });
    },
    async enqueueNotices(trx, notices, jobId) {
      // The messages notifySecurityEvent would queue one by one, in multi-row inserts (a key already there is skipped).
      const at = app.clock.now();
      const messages = notices.flatMap(({ user, event, seq }) => securityMessages(containmentNotice(jobId, user, event, at, seq), { appName: app.config.serviceName }));
      await app.accounts.outbox.enqueueMany(messages, { executor: trx });
    },
  };
}

/** A containment's notice to `user` about `event`: keyed by job, user and notice (noticeEventId), for the account's address now. */
function containmentNotice(jobId: string, user: { id: string; email: string }, event: SecurityEvent, at: number, seq: number | undefined): SecurityNotice {
  return { eventId: noticeEventId(jobId, user.id, event, seq), to: user.email, accountId: user.id, at, event };
}

// Digits of a user's number in a notice's reference: fixed, so that the references (and keys) of one job sort as its
// batches run, up to ten billion users.
const SEQ_DIGITS = 10;

/**
 * The event id of a containment notice: its reference in the mail, and with the kind and the recipient its outbox key.
 * Keyed by job, user and notice (the kind is in the key; a factor too, as one job removes several; a role, as one undo
 * hands several back): a batch that is resumed, or a lever run again, queues nothing twice. An undo's notice to the
 * account that asked for it names the account given the role back, not the recipient (its address is in the key
 * already): `job.usr.role` stays within the outbox's 128 characters.
 */
function noticeEventId(jobId: string, userId: string, event: SecurityEvent, seq: number | undefined): string {
  // In a batch, the user's number in the job comes first: `job.0000000042.usr`, in the order the job queues them.
  const job = seq === undefined ? jobId : `${jobId}.${String(seq).padStart(SEQ_DIGITS, "0")}`;
  switch (event.type) {
    case "mfa-factor-removed":
      return `${job}.${userId}.${event.factor}`;
    case "administrative-role-received":
      return `${job}.${userId}.${event.role}`;
    case "administrative-role-given":
      return `${jobId}.${event.grantee}.${event.role}`;
    default:
      return `${job}.${userId}`;
  }
}

/**
 * Runs a containment or undo job until it is done; also resumes one that was interrupted.
 *
 * @example
 * const job = await createContainJob(deps, request); await runJob(deps, job.id, { onProgress });
 */
export async function runJob(deps: ContainDeps, jobId: string, options: RunOptions = {}): Promise<Job> {
  const job = await deps.jobs.get(jobId);
  if (job.kind !== CONTAIN_KIND && job.kind !== UNDO_KIND) throw containErrors.notContainJob(jobId);
  // An ended job has nothing left to run (runStages would return it as it is): its spec is not read again.
  if (job.status === "done" || job.status === "cancelled") return job as Job;
  let stages: Stage[];
  try {
    stages = job.kind === CONTAIN_KIND ? containStages(deps, job as Job<ContainSpec>) : undoStages(deps, job as Job<UndoSpec>);
  } catch (error) {
    // A spec that fails its checks (a batch size of 0, say) fails the job where an operator sees it, as a corrupted
    // cursor does in the engine; nothing has been applied by this run.
    if (isCorruptJobError(error)) throw await recordFailure(deps, job, null, error, options.worker);
    throw error;
  }
  return runStages(deps, jobId, stages, options);
}

export interface ResumeOptions extends RunOptions {
  /**
   * Who resumes the job: the actor of the `contain.job.resumed` event (the CLI's operator, "system" for the server's
   * own resume). Not the job's creator, who may be someone else entirely (the event keeps it as `createdBy`).
   */
  actor: string;
}

/**
 * Resumes a job that stopped (killed, crashed, failed); refuses one that is already finished.
 *
 * A job created through the API runs on its creator's authority (src/contain/creator.ts). When that creator no longer
 * stands behind it (demoted, locked, disabled, deleted), a resume by a person — the CLI's operator, who holds the
 * server — takes the job over: its remaining batches run on the operator's authority, recorded in the job's spec
 * (`takenOverBy`) and in the `contain.job.resumed` event (`tookOverFrom`, and why) in one commit. The server's own
 * resume at start (actor "system") never does: the job stops again, naming why, until someone decides.
 *
 * @example
 * await resumeJob(deps, "job_…", { actor: cliActor(), worker: `cli:${process.pid}` });
 */
export async function resumeJob(deps: ContainDeps, jobId: string, options: ResumeOptions): Promise<Job> {
  const { actor, ...run } = options;
  const job = await deps.jobs.get(jobId);
  if (job.kind !== CONTAIN_KIND && job.kind !== UNDO_KIND) throw containErrors.notContainJob(jobId);
  if (job.status === "done" || job.status === "cancelled") throw jobErrors.finished(jobId, job.status);
  await deps.database.transaction(async (trx) => {
    const takeover = actor === SYSTEM_ACTOR ? null : await takeOver(deps, trx, jobId, actor);
    await deps.audit.appendIn(trx, {
      type: "contain.job.resumed", actor, subject: jobId,
      data: { status: job.status, done: job.done, total: job.total, createdBy: job.actor, worker: run.worker ?? "", ...(takeover ?? {}) },
    });
  });
  return runJob(deps, jobId, run);
}

/**
 * In `trx`, under the job row's lock: when job `jobId` runs on the authority of a creator who no longer stands behind
 * it, moves it to `actor` (the spec loses `creatorUser` and gains `takenOverBy`) and returns what the resumed event
 * records; null when there is nothing to take over (no user creator, or one who still stands: their job stays theirs).
 * A spec that cannot be read is left to runJob, which fails the job naming it.
 */
async function takeOver(deps: ContainDeps, trx: Kysely<Schema>, jobId: string, actor: string): Promise<{ tookOverFrom: string; creatorLost: string } | null> {
  let q = trx.selectFrom("jobs").select(["spec", "actor"]).where("id", "=", jobId);
  if (deps.database.dialect === "postgres") q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) return null;
  let spec: Record<string, unknown>;
  let creator: string | null;
  let lacks: string[];
  let token: ReturnType<typeof creatorTokenOf>;
  try {
    spec = storedObject(jobId, "spec", row.spec);
    creator = storedCreatorUser(jobId, spec);
    lacks = storedCreatorLacks(jobId, spec);
    token = creatorTokenOf(jobId, spec);
  } catch (error) {
    if (error instanceof BulwarkError) return null;
    throw error;
  }
  // A job recorded before `creatorUser` existed: its actor, when that names an account (as its batches read it).
  creator ??= await legacyCreatorWithin(trx, spec, row.actor);
  if (creator === null) return null;
  // One posted before `creatorToken` existed: the token its API event names (as its batches read it), so that a
  // person's resume takes over the job its revoked token stopped instead of failing on it again.
  try {
    token ??= await legacyCreatorTokenWithin(trx, jobId, spec);
  } catch (error) {
    if (error instanceof BulwarkError) return null;
    throw error;
  }
  // What the batches check (creatorStanding): the account, and the API token the job was posted with. A job stopped
  // because that token was revoked is taken over like one whose creator was fired: a person decides it goes on.
  const why = await creatorStanding(deps.database, trx, creator, creatorMustHold(lacks), { token });
  if (why === null) return null;
  const moved: Record<string, unknown> = { ...spec, takenOverBy: actor };
  delete moved["creatorUser"];
  await trx.updateTable("jobs").set({ spec: JSON.stringify(moved) }).where("id", "=", jobId).execute();
  return { tookOverFrom: creator, creatorLost: why };
}

/** What `cancelJob` did: the job, the status it had when it was cancelled, and how far it had got. */
export interface CancelOutcome {
  id: string;
  kind: string;
  /** The status the job had: pending, running or failed. */
  was: JobStatus;
  done: number;
  total: number;
}

/** The cancelled job as the check of `CancelOptions` sees it, under the job row's lock. */
export interface CancelCandidate {
  id: string;
  kind: string;
  /** Who created the job. */
  actor: string;
  /** The stored spec, or null when it cannot be read (a damaged row can be cancelled all the same). */
  spec: Record<string, unknown> | null;
}

export interface CancelOptions {
  /** Who cancels: the actor of the `contain.job.cancelled` event. */
  actor: string;
  /** Runs under the job row's lock before anything changes; throws to refuse (the API's outranking rule). */
  check?: (job: CancelCandidate) => void;
  /** The caller's record of the cancellation (the API's), written last in its transaction: it commits with it or not at all. */
  record?: (trx: Kysely<Schema>, outcome: CancelOutcome) => Promise<unknown>;
}

/**
 * Cancels a containment or undo job that has not ended (pending, running, or failed part-way): no further batch
 * is applied, by this process or any other. What its committed batches did stays, and stays recorded: a cancelled
 * containment job can be undone like a finished one. A worker in the middle of a batch finds the job ended under
 * the job row's lock and rolls that batch back (src/contain/engine.ts), so the job's counts are exactly what was
 * applied. The status change and the `contain.job.cancelled` event commit together. The stored spec is not needed:
 * a job whose row cannot be read (which no worker can run) can be cancelled, so it stops being listed as resumable.
 *
 * @example
 * const outcome = await cancelJob(deps, "job_…", { actor: cliActor() }); // { was: "running", done: 3000, total: 50000, … }
 */
export async function cancelJob(deps: ContainDeps, jobId: string, options: CancelOptions): Promise<CancelOutcome> {
  return deps.database.transaction(async (trx) => {
    // FOR UPDATE on PostgreSQL: a batch commits under this lock too, so the cancel comes before or after a whole
    // batch. SQLite's write lock, taken at BEGIN, does the same.
    let q = trx.selectFrom("jobs").select(["id", "kind", "status", "spec", "actor", "done", "total"]).where("id", "=", jobId);
    if (deps.database.dialect === "postgres") q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw jobErrors.notFound(jobId);
    if (row.kind !== CONTAIN_KIND && row.kind !== UNDO_KIND) throw containErrors.notContainJob(jobId);
    const was = row.status as JobStatus;
    if (!RESUMABLE_STATUSES.includes(was)) throw containErrors.notCancellable(jobId, row.status);
    const spec = storedObjectOrNull(row.id, "spec", row.spec);
    options.check?.({ id: row.id, kind: row.kind, actor: row.actor, spec });
    const now = deps.clock.now();
    await trx.updateTable("jobs").set({ status: "cancelled", updated_at: now, finished_at: now, finished_epoch: epochNow() })
      .where("id", "=", jobId).where("status", "in", [...RESUMABLE_STATUSES]).execute();
    const outcome: CancelOutcome = { id: row.id, kind: row.kind, was, done: Number(row.done), total: Number(row.total) };
    await deps.audit.appendIn(trx, {
      type: "contain.job.cancelled", actor: options.actor, subject: jobId,
      data: { kind: row.kind, was, done: outcome.done, total: outcome.total, createdBy: row.actor },
    });
    if (options.record) await options.record(trx, outcome);
    return outcome;
  });
}

/** Where the background resume reports (the server passes its pino logger, which has this shape). */
export interface ResumeLogger {
  info(data: Record<string, unknown>, message: string): void;
  error(data: Record<string, unknown>, message: string): void;
}

export interface ResumeOutcome {
  id: string;
  /** How the job ended this time; "unreadable" for a row that could not be read (left as it is, not resumed). */
  status: string;
  error?: string;
}

/**
 * The containment and undo jobs to pick up again: pending or running (their process died) and failed (a batch
 * threw — a lost connection, a full disk; every batch is a transaction, so resuming is always safe), oldest first,
 * and the rows among them that cannot be read. Each row is read on its own: one unreadable row (its spec is not
 * JSON) is reported and left as it is, and does not keep the others from resuming.
 */
async function resumableListing(deps: ContainDeps): Promise<{ jobs: Job[]; unreadable: UnreadableJob[] }> {
  const jobs: Job[] = [];
  const unreadable: UnreadableJob[] = [];
  for (const kind of [CONTAIN_KIND, UNDO_KIND]) {
    const listed = await deps.jobs.listReadable({ kind, status: ["pending", "running", "failed"], limit: 500 });
    jobs.push(...listed.jobs);
    unreadable.push(...listed.unreadable);
  }
  // Oldest first: an undo waits for the job it undoes only if that job is older, which it always is.
  return { jobs: jobs.sort((a, b) => a.createdAt - b.createdAt), unreadable };
}

/** Logs each unreadable job row with its id: it is not resumed, and an operator must repair it. */
function reportUnreadable(logger: ResumeLogger | undefined, unreadable: readonly UnreadableJob[]): void {
  for (const u of unreadable) {
    logger?.error({ jobId: u.id, kind: u.kind, status: u.status, err: u.error }, `contain: job ${u.id} cannot be read and is not resumed; its row is left as it is (${u.error.message})`);
  }
}

/**
 * The containment and undo jobs to pick up again: pending or running (their process died) and failed (a batch
 * threw — a lost connection, a full disk; every batch is a transaction, so resuming is always safe). A row that
 * cannot be read is skipped, and logged with its id through `logger`.
 *
 * @example
 * for (const job of await resumableJobs(containDeps(app), { logger: app.logger })) runner.start(job.id);
 */
export async function resumableJobs(deps: ContainDeps, options: { logger?: ResumeLogger } = {}): Promise<Job[]> {
  const { jobs, unreadable } = await resumableListing(deps);
  reportUnreadable(options.logger, unreadable);
  return jobs;
}

/**
 * Resumes every unfinished containment and undo job, one after another, oldest first, in the background (the
 * server itself starts them all at once in its job runner instead: `resumeContainment` in run-server.ts). Returns at once; `finished` settles (never rejects) when every job has run, with how each
 * ended. Another node resuming the same job at the same time is safe: batches are claimed. A job row that cannot be
 * read is logged, left as it is, and listed with status "unreadable".
 *
 * @example
 * const { finished } = resumeUnfinishedJobs(containDeps(app), { logger: app.logger, worker: `server:${process.pid}` });
 */
export function resumeUnfinishedJobs(deps: ContainDeps, options: { logger?: ResumeLogger; worker?: string } = {}): { finished: Promise<ResumeOutcome[]> } {
  const { logger } = options;
  const finished = (async (): Promise<ResumeOutcome[]> => {
    const outcomes: ResumeOutcome[] = [];
    let pending: Job[];
    try {
      const listing = await resumableListing(deps);
      reportUnreadable(logger, listing.unreadable);
      for (const u of listing.unreadable) outcomes.push({ id: u.id, status: "unreadable", error: u.error.message });
      pending = listing.jobs;
    } catch (error) {
      logger?.error({ err: error }, "contain: could not list unfinished jobs to resume");
      return outcomes;
    }
    for (const job of pending) {
      logger?.info({ jobId: job.id, kind: job.kind, status: job.status, done: job.done, total: job.total }, "contain: resuming unfinished job");
      try {
        // The server resumes on its own: the system is the actor, as of every server-start event.
        const ended = await resumeJob(deps, job.id, { actor: SYSTEM_ACTOR, ...(options.worker !== undefined ? { worker: options.worker } : {}) });
        outcomes.push({ id: job.id, status: ended.status });
        logger?.info({ jobId: job.id, status: ended.status, done: ended.done, total: ended.total }, "contain: resumed job finished");
      } catch (error) {
        // One job failing (or finished meanwhile by another node) does not stop the others.
        const message = error instanceof Error ? error.message : String(error);
        outcomes.push({ id: job.id, status: "failed", error: message });
        logger?.error({ jobId: job.id, err: error }, "contain: resuming job failed");
      }
    }
    return outcomes;
  })();
  return { finished };
}

export interface JobView {
  id: string;
  kind: string;
  status: string;
  levers: string[];
  /** Per lever: outcome → count, e.g. { "expire-passwords": { users: 1200 } }. */
  counts: Record<string, Record<string, number>>;
  total: number;
  done: number;
  scope?: Record<string, unknown>;
  undoOf?: string;
  incidentId: string | null;
  createdAt: string;
  finishedAt: string | null;
  error: string | null;
  notes: string[];
  /**
   * The id of the API token the job was posted with (ContainSpec.creatorToken): revoking that token stops the job, so
   * a responder rotating a leaked token sees which jobs it started. Absent for a job posted from a session or the CLI.
   */
  creatorToken?: string;
}

/** The public shape of a job (CLI --json, HTTP API). */
/** How long an unfinished job may go without a committed batch before its progress is called stalled. */
export const STALL_MS = 2 * 60_000;

export interface JobProgress {
  done: number;
  total: number;
  /** Users (or records) per second while the job was making progress. */
  ratePerSecond: number;
  /** Seconds to go at that rate; 0 when done; null when unknown, or when the job is stalled. */
  etaSeconds: number | null;
  /**
   * Seconds since the job last committed a batch, when that is over STALL_MS and the job is not finished: a
   * process killed mid-job leaves it `running` for ever, and an ETA would only keep growing. Null otherwise.
   */
  stalledSeconds: number | null;
}

/**
 * A job's progress at `now`, for `contain status` and the API: the rate is measured up to the last committed
 * batch, so a job whose process died does not show a rate that decays and an ETA that grows without end.
 */
export function jobProgress(job: Job, now: number): JobProgress {
  const finished = TERMINAL.has(job.status);
  const idle = now - job.updatedAt;
  const stalled = !finished && idle >= STALL_MS;
  const until = job.finishedAt ?? (stalled ? job.updatedAt : now);
  const rate = job.done / (Math.max(1, until - job.createdAt) / 1000);
  const eta = job.status === "done" ? 0 : finished || stalled || rate <= 0 ? null : Math.round((job.total - job.done) / rate);
  return { done: job.done, total: job.total, ratePerSecond: Math.round(rate), etaSeconds: eta, stalledSeconds: stalled ? Math.round(idle / 1000) : null };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An epoch-ms column as ISO text; a value no Date can hold (an altered row) is shown as it is, never thrown on. */
function isoTime(ms: number): string {
  return isoOrNull(ms) ?? `invalid time (${String(ms).slice(0, 40)})`;
}

// A token id as the token library writes it (tok_ and base32), bounded: anything else in a stored spec is not shown.
const TOKEN_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The parts of a stored spec a view shows, each checked for its shape. The spec is read back from a database an
 * operator, a restore or an attacker may have changed: a part of another shape (levers not a list, unmatchedIds
 * without a sample) is left out of the view rather than thrown on, so one such row does not make every listing of
 * jobs fail; running the job refuses it (containErrors.corruptJob).
 */
function viewedSpec(spec: Record<string, unknown>): { levers: string[]; scope?: Record<string, unknown>; undoOf?: string; mailer?: unknown; unmatched?: UnmatchedIds; liveTokens?: number; options?: Record<string, unknown>; creatorToken?: string } {
  const levers = Array.isArray(spec["levers"]) ? spec["levers"].filter((l): l is string => typeof l === "string") : [];
  const u = spec["unmatchedIds"];
  const unmatched = isRecord(u) && typeof u["count"] === "number" && Array.isArray(u["sample"]) && u["sample"].every((x) => typeof x === "string")
    ? { count: u["count"], sample: u["sample"] as string[] } : undefined;
  return {
    levers, mailer: spec["mailer"],
    ...(isRecord(spec["scope"]) ? { scope: spec["scope"] } : {}),
    ...(typeof spec["undoOf"] === "string" && spec["undoOf"] !== "" ? { undoOf: spec["undoOf"] } : {}),
    ...(unmatched ? { unmatched } : {}),
    ...(typeof spec["liveTokens"] === "number" && Number.isSafeInteger(spec["liveTokens"]) ? { liveTokens: spec["liveTokens"] } : {}),
    ...(isRecord(spec["options"]) ? { options: spec["options"] } : {}),
    ...(typeof spec["creatorToken"] === "string" && TOKEN_ID.test(spec["creatorToken"]) ? { creatorToken: spec["creatorToken"] } : {}),
  };
}

export function jobView(job: Job): JobView {
  // Grouped in maps, then made objects with fromEntries (own properties): a stored counts key "__proto__.x" is an
  // entry like any other, where `counts[lever] ??= {}` wrote to Object.prototype. Counts that are not numbers are left out.
  const grouped = new Map<string, Map<string, number>>();
  const group = (lever: string): Map<string, number> => grouped.get(lever) ?? grouped.set(lever, new Map()).get(lever) as Map<string, number>;
  for (const [key, value] of Object.entries(job.counts)) {
    if (typeof value !== "number") continue;
    const dot = key.indexOf(".");
    group(dot < 0 ? key : key.slice(0, dot)).set(dot < 0 ? "count" : key.slice(dot + 1), value);
  }
  const spec = viewedSpec(job.spec);
  const levers = spec.levers;
  for (const l of levers) group(l);
  const counts: Record<string, Record<string, number>> = Object.fromEntries([...grouped].map(([lever, m]) => [lever, Object.fromEntries(m)]));
  const notes: string[] = [];
  if (job.kind === CONTAIN_KIND && levers.includes("invalidate-passwords") && spec.mailer === false) {
    notes.push("no mailer is configured: invalidate-passwords queued no reset emails (resetEmailsQueued: 0); tell the users another way");
  }
  const refused = counts["invalidate-passwords"]?.["resetEmailsRefused"] ?? 0;
  if (refused > 0) {
    notes.push(`${refused} reset emails were not queued because the outbox refuses the address (the passwords are invalidated all the same); the ${RESET_EMAIL_REFUSED} audit events name the users: tell them another way`);
  }
  const withheld = counts["invalidate-passwords"]?.["resetEmailsWithheld"] ?? 0;
  if (withheld > 0) {
    const days = emailChangeWindowDays(spec.options ?? {});
    notes.push(`${withheld} reset emails were held back: the account itself had changed its address within the ${days} days before the job, and the link could reach ` +
      `whoever moved it (the passwords are invalidated all the same); the ${RESET_EMAIL_WITHHELD} audit events name the users and the change: ${WITHHELD_NEXT_STEP}`);
  }
  const disabled = counts["invalidate-passwords"]?.["resetEmailsSkippedDisabled"] ?? 0;
  if (disabled > 0) notes.push(`${disabled} disabled accounts got no reset email (their passwords are invalidated all the same): if one is enabled again, its owner asks for a reset link on the sign-in page`);
  const leftOpen = counts["require-mfa-reenrolment"]?.["linksLeftOpenSpent"] ?? 0;
  if (leftOpen > 0) {
    notes.push(`${leftOpen} reset or email-change links that earlier batches had left open (batches run by the previous release, which removed factors and kept links) were spent by the job's closing check: a link kept from before would have reset a password with no factor`);
  }
  if (spec.unmatched && spec.unmatched.count > 0) notes.push(describeUnmatched(spec.unmatched));
  const leftAlone = Math.max(0, ...Object.values(counts).map((c) => c["leftAlone"] ?? 0));
  if (job.kind === CONTAIN_KIND && leftAlone > 0) {
    const who = leftAlone === 1 ? "1 user was left alone: it holds" : `${leftAlone} users were left alone: they hold`;
    notes.push(`${who} an administrative permission the job's creator lacks (granted after the job was created); leftAlone and the ${LEFT_ALONE_EVENT} audit events name them: an administrator must contain them`);
  }
  if (job.kind === CONTAIN_KIND) notes.push(...pairingNotes(levers, spec.liveTokens !== undefined ? { liveTokens: spec.liveTokens } : {}));
  // Who answers for the batches after a takeover (resumeJob): the job's creator no longer stood behind it. Shown as
  // stored (bounded, control characters dropped): the view must not be where an altered row speaks.
  const takenOverBy = job.spec["takenOverBy"];
  if (typeof takenOverBy === "string") {
    notes.push(`taken over by ${takenOverBy.replace(/[\u0000-\u001f\u007f-\u009f]/g, "").slice(0, 80)} once its creator no longer stood behind it: its later batches ran on that operator's authority (contain.job.resumed says why)`);
  }
  if (job.status === "cancelled") {
    if (job.kind !== CONTAIN_KIND) notes.push(`cancelled after ${job.done} of ${job.total} records: what it restored stays restored; another undo of ${spec.undoOf ?? "the job"} takes up the rest`);
    else if (reversibleLevers(levers).length > 0) notes.push(`cancelled after ${job.done} of ${job.total} users: what its batches applied stays; undo the job to reverse it`);
    else notes.push(`cancelled after ${job.done} of ${job.total} users: what its batches applied stays (${levers.join(", ")} cannot be undone)`);
  }
  return {
    id: job.id, kind: job.kind, status: job.status, levers, counts, total: job.total, done: job.done,
    ...(spec.scope ? { scope: spec.scope } : {}), ...(spec.undoOf ? { undoOf: spec.undoOf } : {}),
    incidentId: job.incidentId, createdAt: isoTime(job.createdAt),
    finishedAt: job.finishedAt === null ? null : isoTime(job.finishedAt), error: job.error, notes,
    ...(spec.creatorToken !== undefined ? { creatorToken: spec.creatorToken } : {}),
  };
}
