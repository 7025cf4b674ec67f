// The lever interface and its registry. A lever is one containment action; the job engine applies levers
// in registry order, batch by batch, inside one transaction per batch. docs/containment.md: how to add one.
import type { Kysely, SelectQueryBuilder } from "kysely";
import type { Keyring } from "../crypto/keyring.ts";
import type { SessionLimits } from "../accounts/sessions/open-rule.ts";
import { addressProblem, type SecurityEvent } from "../notify/index.ts";
import type { DialectName } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";

/** Queues the mail a lever owes a user (a reset link, a security notice), inside the batch's transaction (outbox). */
export interface ResetNotifier {
  /**
   * Queues a reset link for the user inside the batch's transaction, keyed by job and user (sent once); `seq`, the
   * user's number in the job's scope when a batch queues it (LeverContext.seqOf), goes into the key to follow the
   * job's order.
   */
  enqueueReset(trx: Kysely<Schema>, user: { id: string; email: string }, jobId: string, seq?: number): Promise<void>;
  /**
   * The same for a whole batch's users at once, with the same keys (multi-row inserts instead of two statements per
   * user). Optional: without it invalidate-passwords calls enqueueReset once per user.
   */
  enqueueResets?(trx: Kysely<Schema>, users: ReadonlyArray<{ id: string; email: string; seq?: number }>, jobId: string): Promise<void>;
  /**
   * Queues a security notice (ASVS 6.3.7: a factor removed, a sign-in provider unlinked) for the user inside the
   * batch's transaction, keyed by job, user and notice (and factor), so a resumed batch never mails twice. Optional:
   * a notifier without it (one that only sends reset links) queues no notice, as a job without a notifier.
   */
  enqueueNotice?(trx: Kysely<Schema>, user: { id: string; email: string }, jobId: string, event: SecurityEvent, seq?: number): Promise<void>;
  /**
   * The same for a whole batch's notices at once, with the same keys (a multi-row insert instead of one statement per
   * notice: at 200,000 users a containment spends a third of its time queueing them one by one). Optional, and only
   * beside enqueueNotice: without it queueNotices calls enqueueNotice once per notice; without enqueueNotice the
   * notifier queues no notice at all, whatever else it has (forecastNotices counts none either).
   * `seq` (both methods): the user's number in the job's scope when a batch queues the notice (LeverContext.seqOf),
   * for the key to follow the job's order; absent outside a batch.
   */
  enqueueNotices?(trx: Kysely<Schema>, notices: ReadonlyArray<{ user: { id: string; email: string }; event: SecurityEvent; seq?: number }>, jobId: string): Promise<void>;
}

/** Appended for each user whose security notice the outbox refuses (their address): the operator must tell them. */
export const NOTICE_REFUSED = "contain.notice.refused";

/** A user a lever changed and the notices it owes them. */
export interface NoticeDue {
  id: string;
  email: string;
  events: SecurityEvent[];
}

function noticeName(event: SecurityEvent): string {
  return event.type === "mfa-factor-removed" ? `${event.type}:${event.factor}` : event.type;
}

/**
 * Queues the notices of `due` through the job's notifier, counting them per notice: `noticesQueued`, and
 * `noticesRefused` with one audit event per user (subject: the user id) when the outbox would refuse the address.
 * The address is checked before enqueueing, as invalidate-passwords does: a refusal thrown inside the batch would
 * roll it back, and every resume would stop at the same user. Without a notifier nothing is queued or counted.
 */
export async function queueNotices(trx: Kysely<Schema>, ctx: LeverContext, due: NoticeDue[]): Promise<{ queued: number; refused: number; events: LeverEvent[] }> {
  const result = { queued: 0, refused: 0, events: [] as LeverEvent[] };
  const notifier = ctx.notifier;
  if (!notifier?.enqueueNotice) return result;
  const owed: Array<{ user: { id: string; email: string }; event: SecurityEvent; seq?: number }> = [];
  for (const user of due) {
    if (user.events.length === 0) continue;
    const problem = addressProblem(user.email);
    if (problem !== null) {
      result.refused += user.events.length;
      result.events.push({ type: NOTICE_REFUSED, subject: user.id, data: { notices: user.events.map(noticeName), reason: problem } });
      continue;
    }
    const seq = ctx.seqOf?.get(user.id);
    for (const event of user.events) owed.push({ user: { id: user.id, email: user.email }, event, ...(seq === undefined ? {} : { seq }) });
  }
  result.queued = owed.length;
  // In the job's order: keys that carry the seq then go into the outbox's key index one after the other.
  if (ctx.seqOf) owed.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  if (notifier.enqueueNotices) {
    if (owed.length > 0) await notifier.enqueueNotices(trx, owed, ctx.jobId);
  } else {
    for (const { user, event, seq } of owed) await notifier.enqueueNotice(trx, user, ctx.jobId, event, seq);
  }
  return result;
}

/** Refused addresses a dry run names: enough to act on, few enough to read. */
const NAMED = 20;

/**
 * A dry run's forecast of `queueNotices`: `page(after)` returns the next users (by id, after `after`) the lever would
 * change, with the number of notices each is owed; the walk stops at a short page. Zero without a notifier.
 */
export async function forecastNotices(
  ctx: LeverContext, pageSize: number, page: (after: string) => Promise<Array<{ id: string; email: string; notices: number }>>,
): Promise<{ counts: { noticesQueued: number; noticesRefused: number }; notes: string[] }> {
  const counts = { noticesQueued: 0, noticesRefused: 0 };
  if (!ctx.notifier?.enqueueNotice) return { counts, notes: [] };
  let users = 0;
  const named: string[] = [];
  for (let after = ""; ;) {
    const rows = await page(after);
    for (const r of rows) {
      const problem = addressProblem(r.email);
      if (problem === null) counts.noticesQueued += r.notices;
      else {
        counts.noticesRefused += r.notices;
        users++;
        if (named.length < NAMED) named.push(`${r.id} (${problem})`);
      }
    }
    if (rows.length < pageSize) break;
    after = (rows[rows.length - 1] as { id: string }).id;
  }
  if (users === 0) return { counts, notes: [] };
  const more = users > named.length ? ` and ${users - named.length} more` : "";
  return { counts, notes: [`the outbox refuses the address of ${users} users: they will be changed but not told (tell them another way): ${named.join(", ")}${more}`] };
}

/** Options that levers read; fixed when the job is created and stored in its spec. */
export interface LeverOptions {
  /** demote-inactive-admins: no login for this many days. */
  inactiveDays: number;
  /** lock-accounts: the reason recorded on the account. */
  lockReason: string;
  /**
   * invalidate-passwords: an account whose address the account itself changed (`auth.email.changed`) this many days
   * before the job, or since, gets no reset link: the address may be a hijacker's. 0 holds only a change made after the job
   * was created (never off: the job cannot mail its link to an address moved during the response). Optional
   * for jobs stored before it existed; a lever reads it through `emailChangeWindowDays`.
   */
  emailChangedWithinDays?: number;
}

export interface LeverContext {
  jobId: string;
  dialect: DialectName;
  /** The job's action time (fixed at creation): every row a job stamps gets the same time, resumed or not. */
  at: number;
  /**
   * When the current batch runs (= `at` outside a batch). For a lever whose promise covers everything up to
   * its own change — require-mfa-reenrolment ends the sessions opened with a factor it deletes, including
   * those opened after the job was created but before the batch reached the user.
   */
  now: number;
  options: LeverOptions;
  /**
   * The job's revocation epoch, taken when its stamps were raised (migration 16): rows issued before it are what
   * the stamps refuse, whatever clock wrote their times, and rows issued from it on came after the job's creation
   * (invalidate-passwords' tokens minted since). Every job whose levers have a begin takes one. 0 for a job without
   * one or recorded before migration 16, and in the begin of a lever that touches links (it runs before the epoch is
   * taken, and raises no stamp).
   */
  epoch: number;
  /**
   * The audit log's seq of the job's creation (`contain.revocation.raised`, appended in the transaction of the levers'
   * begins, after invalidate-passwords spent the links): an event with a larger seq came after the job was created,
   * whatever time the node that appended it gave it. Absent in a dry run, for a job whose levers have no begin, and for
   * jobs recorded before it existed: a lever then decides "after the job" by times, as before.
   */
  createdSeq?: number;
  /**
   * True when the job's creation recorded this lever's targets (UserLever.targets, under targetsKey): a lever with a
   * `targets` hook then decides by those. Set per lever (a job recorded before a lever had the hook has none of its
   * targets, whatever the other levers recorded). Absent in a dry run, in a begin, and for jobs recorded before it
   * existed: such a lever judges its users at the batch's time, as before.
   */
  targetsRecorded?: boolean;
  /** True when the job's scope is --all: revocation then raises the one global stamp instead of one per user. */
  allUsers: boolean;
  /**
   * In a batch's apply: each of the batch's users' number in the job's scope (contain_job_users.seq, fixed when the job
   * was created). queueNotices puts it in a notice's key, so that a job's notices are keyed in the order its batches
   * run: each batch appends to the outbox's key index instead of writing into hundreds of its pages at random (at
   * 200,000 users that was a third of the job's statement time, most of it in the batches' commits). Absent elsewhere.
   */
  seqOf?: ReadonlyMap<string, number>;
  keyring: Keyring | null;
  notifier: ResetNotifier | null;
  /**
   * The session policy in force (ContainDeps.sessionPolicy): which sessions are open (openSessionSQL), so that what a
   * lever counts as ended, dry or real, is what sessions.list and validate find open, not every stored row.
   */
  sessionPolicy: SessionLimits;
}

/** What an undo runs with: the lever context, and the job being undone. */
export interface UndoContext extends LeverContext {
  /**
   * The containment job whose changes are undone, and its action time. A lever whose change leaves nothing to
   * compare against (demote-inactive-admins deletes the grant) finds later decisions about the row in the audit
   * log from this time on.
   */
  undoOf: { jobId: string; at: number };
  /**
   * The account whose request made the undo (its creator, src/contain/creator.ts), null for the CLI's and once an
   * operator took it over: told of each administrative role the undo hands back, as the acting account of a grant is.
   */
  undoneBy: string | null;
}

/** One row's change, recorded as the job applies it, so undo can restore exactly it (reversible levers). */
export interface ChangeRecord {
  userId: string;
  /** "" for the user row itself; e.g. the role name for a demotion. */
  entity: string;
  before: Record<string, unknown>;
  /** null when the job deleted the row. */
  after: Record<string, unknown> | null;
}

export interface DryRunResult {
  /** What would change, e.g. { users: 1200 } or { users: 3, identities: 5 }. */
  counts: Record<string, number>;
  /** A few ids (user ids) that would change, for a human to check the scope. */
  sample: string[];
  /** What the operator must know before the real run (e.g. reset emails the outbox will refuse). */
  notes?: string[];
}

/** An audit event a lever asks for, appended in the batch's transaction under the job's actor. */
export interface LeverEvent {
  type: string;
  /** Usually the user the event is about. */
  subject: string;
  data: Record<string, unknown>;
}

export interface ApplyResult {
  counts: Record<string, number>;
  changes: ChangeRecord[];
  /** Per-user outcomes an operator must be able to find later (a reset email the outbox refused). */
  events?: LeverEvent[];
}

export interface UndoResult {
  restored: ChangeRecord[];
  /** Changed since the job (current value ≠ the recorded after-value): left alone and reported. */
  skipped: ChangeRecord[];
  /** What the step must record of what it restored (a role handed back: its grant), appended under the undo's actor. */
  events?: LeverEvent[];
  /** Counts beside restored and skipped (noticesQueued, noticesRefused), keyed "lever.outcome" by the step. */
  counts?: Record<string, number>;
}

export type ScopeQuery = SelectQueryBuilder<Schema, "users", { id: string }>;

/** A lever that acts on the users of the scope, a batch of user ids at a time. */
export interface UserLever {
  kind: "user";
  name: string;
  description: string;
  dryRun(db: Kysely<Schema>, scope: ScopeQuery, ctx: LeverContext): Promise<DryRunResult>;
  /**
   * Optional: runs once, in its own transaction committed BEFORE the scope is recorded and the job row is
   * written (e.g. a revocation stamp for the whole scope), so its effect is instant whatever the number of
   * users. Must be idempotent and safe on its own: a crash right after it leaves the effect and no job.
   */
  begin?(trx: Kysely<Schema>, scope: ScopeQuery, ctx: LeverContext): Promise<Record<string, number>>;
  /**
   * Optional: the users a lever acts on when what makes them its targets is a state as of the job's time that later
   * events overwrite (demote-inactive-admins: no login since the cutoff; a login after the job replaces last_login_at,
   * and with it the job's reason). Run once, in the transaction that records the job's scope: those of the scope it
   * returns are recorded in contain_job_users under targetsKey(job, lever), and `apply` (with ctx.targetsRecorded)
   * decides by them, whenever its batch runs, resumed or not (demote-inactive-admins acts on them only;
   * require-mfa-reenrolment and invalidate-passwords end what they must for them even when another hand removed the
   * factor or invalidated the password first). Must ask what the dry run counts, at ctx.at.
   */
  targets?(db: Kysely<Schema>, ctx: LeverContext): ScopeQuery;
  /** Applies the lever to these users. Must be idempotent: re-applying to an already changed user changes nothing. */
  apply(trx: Kysely<Schema>, userIds: string[], ctx: LeverContext): Promise<ApplyResult>;
  /**
   * The lever writes the accounts' reset or email-change links (its begin, its apply): a batch takes the accounts' link
   * locks before its first write, and job creation runs its begin before the other levers' (which raise session
   * stamps), in the order a reset or an email confirmation takes them (link, link rows, account, stamp).
   */
  touchesLinks?: boolean;
  /** The lever mails links built on the public URL (a reset link): a run from a shell must know the site's address. */
  mailsLinks?: boolean;
  /**
   * Optional: the users among `userIds` whose roles this batch's `apply` takes away. The batch then takes turns with
   * role removals (the last-admin lock) and waits for those users' own changes in flight (holdActing, exclusive),
   * before its first write, as an API lock or revocation does: a demoted administrator's request never lands after.
   */
  demotes?(trx: Kysely<Schema>, userIds: string[], ctx: LeverContext): Promise<string[]>;
  /**
   * Optional: the users among `userIds` whom this batch's `apply` stops from acting without demoting them (it locks
   * them). The batch waits for their own changes in flight (holdActing, exclusive) before its first write, as an API
   * lock does: a change a locked administrator had checked its right to make never commits after the lock.
   */
  stopsActing?(trx: Kysely<Schema>, userIds: string[], ctx: LeverContext): Promise<string[]>;
  /**
   * Optional: the lever's whole work for an --all scope as one step in one transaction, run instead of `apply`
   * batch by batch. For levers that delete most of a table, where batches by user cost several times the work
   * itself (docs/decisions/0005-bulk-containment-on-sqlite.md). Must act on exactly the rows `apply` would over
   * every user, be idempotent, and not be reversible (no change records). `counted`: what `countAll` read before
   * the step's transaction, when the lever has it.
   */
  applyAll?(trx: Kysely<Schema>, ctx: LeverContext, counted?: Record<string, number>): Promise<Record<string, number>>;
  /**
   * Optional, beside applyAll: reads what applyAll will report (its counts), outside any transaction just before the
   * step's, so that on SQLite the counting does not hold the database's write lock (logins and session writes wait
   * for the step). A write may commit between the two: the counts carry the number of rows the step will change, and
   * applyAll counts again in its transaction when it changes another number. Run again with a step that failed or was
   * interrupted.
   */
  countAll?(db: Kysely<Schema>, ctx: LeverContext): Promise<Record<string, number> | null>;
  /**
   * Present only on reversible levers: restores the recorded rows whose current value still equals `after`, and no
   * later change touched (a deleted row: none was audited since `ctx.undoOf.at`).
   */
  undo?(trx: Kysely<Schema>, changes: ChangeRecord[], ctx: UndoContext): Promise<UndoResult>;
}

/** A lever that acts on the whole database, not per user (rotate-keys), in steps with its own position. */
export interface GlobalLever {
  kind: "global";
  name: string;
  description: string;
  dryRun(db: Kysely<Schema>, scope: ScopeQuery, ctx: LeverContext): Promise<DryRunResult>;
  /** Runs once when the job starts its global stage (before the first step); must tolerate being re-run after a crash. */
  prepare?(ctx: LeverContext): Promise<Record<string, unknown> | void>;
  /** One batch from `position` (null at the start); returns where the next starts, null when finished. */
  step(trx: Kysely<Schema>, position: string | null, ctx: LeverContext): Promise<{ counts: Record<string, number>; next: string | null }>;
}

export type Lever = UserLever | GlobalLever;

/**
 * The contain_job_users key of a lever's targets recorded at the job's creation (UserLever.targets): the job's id and
 * the lever's name, which no job id equals, so the job's own scope and every reader of it (by job id) are untouched.
 *
 * @example
 * targetsKey("job_…", "demote-inactive-admins") // "job_…/demote-inactive-admins"
 */
export function targetsKey(jobId: string, lever: string): string {
  return `${jobId}/${lever}`;
}

const registry: Lever[] = [];

/**
 * Adds a lever. Order of registration is the order levers run in within a batch (so a lever that must act
 * first, e.g. a revocation stamp, registers first). Throws on a duplicate name.
 *
 * @example
 * registerLever({ kind: "user", name: "revoke-sessions", description: "…", dryRun, apply });
 */
export function registerLever(lever: Lever, options: { before?: string } = {}): void {
  if (registry.some((l) => l.name === lever.name)) throw new Error(`lever "${lever.name}" is already registered`);
  const at = options.before ? registry.findIndex((l) => l.name === options.before) : -1;
  if (at >= 0) registry.splice(at, 0, lever);
  else registry.push(lever);
}

export function levers(): readonly Lever[] {
  return registry;
}

export function leverNames(): string[] {
  return registry.map((l) => l.name);
}

export function findLever(name: string): Lever | undefined {
  return registry.find((l) => l.name === name);
}

/** Whether the lever named `name` mails links built on the public URL (UserLever.mailsLinks). */
export function leverMailsLinks(name: string): boolean {
  const lever = findLever(name);
  return lever !== undefined && "mailsLinks" in lever && lever.mailsLinks === true;
}

/** What `pairingNotes` may quote: counts taken over the job's scope (the dry run's, or at the job's creation). */
export interface PairingCounts {
  /** Live API tokens (not revoked, not expired) of the scope's accounts, when no lever of the job ends them. */
  liveTokens?: number;
}

/** The levers that take a password away but leave the account's API tokens (the token note names the first pulled). */
const PASSWORD_LEVERS = ["invalidate-passwords", "expire-passwords"] as const;

/**
 * What a set of levers leaves open that pulling another with it would close, said before and after the job, per
 * lever the note belongs to.
 * - require-mfa-reenrolment alone lets whoever signs in first with a user's password enrol the next factor: if the
 *   passwords may be known too (the same breach), invalidate-passwords puts a reset link in the owner's mailbox
 *   first, and lock-accounts keeps everyone out until an administrator lets the owner back.
 * - invalidate-passwords or expire-passwords without revoke-tokens ends what the password opened, but an API token is
 *   a credential of its own (ASVS 7.4.5): one an intruder minted with the cracked password outlives the reset. Said
 *   with the number of such tokens, and only when there is one.
 *
 * @example
 * pairingNotesByLever(["invalidate-passwords"], { liveTokens: 3 }); // { "invalidate-passwords": ["... 3 live API tokens ..."] }
 */
export function pairingNotesByLever(names: readonly string[], counts: PairingCounts = {}): Record<string, string[]> {
  const notes: Record<string, string[]> = {};
  if (names.includes("require-mfa-reenrolment") && !names.includes("invalidate-passwords") && !names.includes("lock-accounts")) {
    notes["require-mfa-reenrolment"] = [
      "require-mfa-reenrolment without invalidate-passwords: whoever signs in first with a user's password enrols that user's next factor; " +
        "if the passwords may be known too, pull invalidate-passwords with it (the owner's mailbox then gets a reset link first)",
    ];
  }
  const password = PASSWORD_LEVERS.find((n) => names.includes(n));
  const live = counts.liveTokens ?? 0;
  if (password !== undefined && !names.includes("revoke-tokens") && live > 0) {
    notes[password] = [
      `${password} without revoke-tokens: ${live} live API ${live === 1 ? "token of an account in scope stays" : "tokens of accounts in scope stay"} valid (a token is a credential ` +
        "of its own: one minted with a leaked password outlives the password); to end them, run revoke-tokens over the same scope " +
        "(`bulwark contain revoke-tokens SCOPE`), or pull it with this job",
    ];
  }
  return notes;
}

/**
 * `pairingNotesByLever` as one list, for the job's view.
 *
 * @example
 * pairingNotes(["require-mfa-reenrolment"]); // ["require-mfa-reenrolment without invalidate-passwords: ..."]
 */
export function pairingNotes(names: readonly string[], counts: PairingCounts = {}): string[] {
  return Object.values(pairingNotesByLever(names, counts)).flat();
}
