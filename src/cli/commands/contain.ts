// `bulwark contain LEVER… [scope] [--dry-run] [--incident ID] [--yes] [--json]` and `contain status|resume|cancel|undo [--dry-run] [--yes]|list`:
// containment levers as resumable jobs (issue 5). Exit codes: 0 done, 2 bad usage or not confirmed, 3 failure.
import { readFileSync, statSync } from "node:fs";
import type { Command } from "commander";
import type { CliContext, CommandModule } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { action, cliActor, collect, group, progress, writeJSON, writeLine } from "../run.ts";
import { escapeControls } from "../../lib/terminal.ts";
import { parseDuration, parseTime } from "../time.ts";
import type { ScopeSpec } from "../../contain/scope.ts";
import type { JobView } from "../../contain/service.ts";
import type { UndoDryRunReport } from "../../contain/undo.ts";
import type { Job, JobPosition, UnreadableJob } from "../../jobs/job-store.ts";
import { InputError } from "../../lib/errors.ts";
import { confirmOrRefuse } from "../prompt.ts";
import { publicURLRefusal, realRunRefused, requirePublicURL } from "../public-url.ts";

/**
 * Writes a line of human output with control characters shown as \xNN: ids from an --ids file (a breach feed, a
 * paste), lock reasons and notes reach this output, and a hostile one must not move the cursor, erase lines or
 * print a fake "0 users in scope" on the operator's terminal (ASVS 16.4.1).
 */
function say(ctx: Parameters<typeof writeLine>[0], text: string): void {
  writeLine(ctx, escapeControls(text));
}

const BUILTIN = "lock-accounts, revoke-sessions, revoke-tokens, invalidate-passwords, expire-passwords, require-mfa-reenrolment, unlink-sso, demote-inactive-admins, rotate-keys";
// A real run on more users than this asks first (issue 5).
const CONFIRM_ABOVE = 100;
// An --ids file larger than this is not a list of accounts.
const MAX_IDS_FILE_BYTES = 256 * 1024 * 1024;

interface RunOpts {
  all?: boolean;
  role: string[];
  ids?: string;
  createdBefore?: string;
  createdAfter?: string;
  lastLoginBefore?: string;
  lastLoginAfter?: string;
  activeWithin?: string;
  activeBetween?: string[];
  scheme?: string;
  inactiveDays?: string;
  lockReason?: string;
  emailChangedWithin?: string;
  batchSize?: string;
  dryRun?: boolean;
  incident?: string;
  yes?: boolean;
  json?: boolean;
}


function usage(message: string): InputError {
  return new InputError("BULWARK_ERR_USAGE", message);
}

function wholeNumber(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text.trim())) throw usage(`${option} must be a whole number; got "${text.slice(0, 20)}"`);
  return Number(text);
}

/** `--email-changed-within`: whole days, written `30d` or `30`; `0` turns the hold off. */
function windowDays(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d{1,5})d?$/.exec(text.trim());
  if (!m) throw usage(`--email-changed-within must be a number of days such as 30d (0 holds only changes made after the job is created); got "${text.slice(0, 20)}"`);
  return Number(m[1]);
}

async function loadScope(opts: RunOpts, now: number): Promise<ScopeSpec> {
  const scope: ScopeSpec = {};
  if (opts.all) scope.all = true;
  if (opts.role.length) scope.roles = opts.role;
  if (opts.ids !== undefined) {
    let text: string;
    try {
      const stat = statSync(opts.ids);
      // Not "is a file": `--ids <(grep …)` is a pipe, and welcome.
      if (stat.isDirectory()) throw usage(`--ids ${opts.ids} is a directory, not a file`);
      if (stat.size > MAX_IDS_FILE_BYTES) throw usage(`--ids file is larger than ${MAX_IDS_FILE_BYTES / 1024 / 1024} MiB`);
      text = readFileSync(opts.ids, "utf8");
    } catch (cause) {
      if (cause instanceof InputError) throw cause;
      throw new InputError("BULWARK_ERR_USAGE", `--ids: cannot read "${opts.ids}" (${(cause as NodeJS.ErrnoException).code ?? "error"})`, { cause });
    }
    const { parseIdsFile } = await import("../../contain/scope.ts");
    scope.ids = parseIdsFile(text);
  }
  // "Given" is `!== undefined`, never truthiness: an empty value (an unset $CUTOFF) used to be dropped, and the scope
  // widened to everyone the other options name. guardOptions refuses it first; parseTime would refuse it too.
  if (opts.createdBefore !== undefined) scope.createdBefore = parseTime(opts.createdBefore, "--created-before", now);
  if (opts.createdAfter !== undefined) scope.createdAfter = parseTime(opts.createdAfter, "--created-after", now);
  if (opts.lastLoginBefore !== undefined) scope.lastLoginBefore = parseTime(opts.lastLoginBefore, "--last-login-before", now);
  if (opts.lastLoginAfter !== undefined) scope.lastLoginAfter = parseTime(opts.lastLoginAfter, "--last-login-after", now);
  if (opts.activeWithin !== undefined && opts.activeBetween !== undefined) throw usage("give --active-within or --active-between, not both");
  if (opts.activeWithin !== undefined) scope.activeFrom = now - parseDuration(opts.activeWithin, "--active-within");
  if (opts.activeBetween !== undefined) {
    if (opts.activeBetween.length !== 2) throw usage("--active-between takes two times: --active-between T1 T2");
    scope.activeFrom = parseTime(opts.activeBetween[0] as string, "--active-between", now);
    scope.activeTo = parseTime(opts.activeBetween[1] as string, "--active-between", now);
  }
  if (opts.scheme !== undefined) scope.scheme = opts.scheme;
  return scope;
}

function printJob(ctx: CliContext, view: JobView): void {
  say(ctx, `job ${view.id} (${view.kind}): ${view.status}, ${view.done}/${view.total}${view.undoOf ? `, undoing ${view.undoOf}` : ""}${view.incidentId ? `, incident ${view.incidentId}` : ""}`);
  for (const [lever, counts] of Object.entries(view.counts)) {
    // No count yet: "nothing yet" while the job may still act; once it ended, it changed nothing.
    const ended = view.status === "done" || view.status === "failed" || view.status === "cancelled";
    say(ctx, `  ${lever}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ") || (ended ? "nothing changed" : "nothing yet")}`);
  }
  if (view.error) say(ctx, `  error: ${view.error}`);
  for (const note of view.notes) say(ctx, `  note: ${note}`);
}

/** The first 20 rows an undo leaves alone, and how many more there are (`total` of them in all). */
function describeLeftAlone(rows: Array<{ lever: string; userId: string; entity: string }>, total: number = rows.length): string {
  const shown = rows.slice(0, 20).map((s) => `${s.userId}${s.entity ? `/${s.entity}` : ""} (${s.lever})`).join(", ");
  return total > 20 ? `${shown} and ${total - 20} more (--json lists them)` : shown;
}

function printUndoDryRun(ctx: CliContext, report: UndoDryRunReport): void {
  say(ctx, `dry run: undoing job ${report.undoOf} would go through ${report.changes} recorded changes; nothing was changed`);
  for (const [lever, c] of Object.entries(report.counts)) say(ctx, `  ${lever}: would restore ${c.restored}, would leave alone ${c.skipped}`);
  if (report.sample.length) say(ctx, `  would restore e.g. ${report.sample.join(", ")}`);
  if (report.leftAlone.length) say(ctx, `  would be left alone (changed since the job, or contained by a later one): ${describeLeftAlone(report.leftAlone, Object.values(report.counts).reduce((n, c) => n + c.skipped, 0))}`);
}

async function services(ctx: CliContext) {
  const [app, contain] = await Promise.all([ctx.app(), import("../../contain/index.ts")]);
  return { app, contain, deps: contain.containDeps(app) };
}

function register(program: Command, ctx: CliContext): void {
  const cmd = group(program, "contain", "Containment levers on the account base: resumable jobs with dry run, progress, audit and undo.");
  cmd
    .argument("[levers...]", `one or more of: ${BUILTIN}`)
    .option("--all", "every user (never implied)")
    .option("--role <name>", "users holding this role (repeatable: any of them)", collect, [])
    .option("--ids <file>", "users listed in FILE, one user id or email per line (# starts a comment, unless the line could be an address: an @ and no space)")
    .option("--created-before <time>", "accounts created before (ISO date/time, UTC when written without an offset; or an age such as 30d)")
    .option("--created-after <time>", "accounts created at or after")
    .option("--last-login-before <time>", "last login before")
    .option("--last-login-after <time>", "last login at or after")
    .option("--active-within <window>", "active (logged in) within this window, e.g. 72h: the window of exposure")
    .option("--active-between <times...>", "active between T1 and T2")
    .option("--scheme <id>", "stored password hash scheme (e.g. md5, phpass)")
    .option("--inactive-days <n>", "demote-inactive-admins: no login for N days (default 90)")
    .option("--lock-reason <text>", "lock-accounts: the reason recorded (default \"containment\")")
    .option("--email-changed-within <days>", "invalidate-passwords: no reset email to an account whose address it changed itself within this window, e.g. 30d (default; 0 holds only changes made after the job is created)")
    .option("--batch-size <n>", "users per batch, 1 to 5000 (default 1000 on SQLite, 5000 on PostgreSQL)")
    .option("--dry-run", "report what would change, with a sample; change nothing")
    .option("--incident <id>", "tie the job to an incident")
    .option("--yes", "do not ask for confirmation (more than 100 users)")
    .option("--json", "print the job (or the dry-run report) as JSON")
    .action(
      action(ctx, async (names: string[], opts: RunOpts) => {
        if (names.length === 0) throw usage(`name at least one lever (${BUILTIN}) or a subcommand (status, resume, cancel, undo, list)`);
        const { app, contain, deps } = await services(ctx);
        const scope = await loadScope(opts, app.clock.now());
        const inactiveDays = wholeNumber(opts.inactiveDays, "--inactive-days");
        const emailChangedWithinDays = windowDays(opts.emailChangedWithin);
        const batchSize = wholeNumber(opts.batchSize, "--batch-size");
        const request = {
          levers: names, scope, actor: cliActor(), incidentId: opts.incident ?? null,
          options: {
            ...(inactiveDays !== undefined ? { inactiveDays } : {}), ...(opts.lockReason !== undefined ? { lockReason: opts.lockReason } : {}),
            ...(emailChangedWithinDays !== undefined ? { emailChangedWithinDays } : {}),
          },
          ...(batchSize !== undefined ? { batchSize } : {}),
        };
        const mailing = contain.resolveLevers(names).filter(contain.leverMailsLinks);
        contain.validateScope(scope);
        // The real run's refusal from a shell without BULWARK_PUBLIC_URL: thrown by the run, reported by the dry run
        // (a note, and realRunRefused in --json: a script reading the report used to be told the job could run).
        const refusal = mailing.length > 0 ? publicURLRefusal(app, `${mailing.join(", ")} mails links`) : null;
        if (opts.dryRun) {
          const report = await contain.dryRunContain(deps, request);
          if (opts.json) writeJSON(ctx, { ...report, ...realRunRefused(refusal) });
          else {
            say(ctx, `dry run: ${report.users} users in scope; nothing was changed`);
            if (report.unmatchedIds && report.unmatchedIds.count > 0) say(ctx, `  note: ${contain.describeUnmatched(report.unmatchedIds)}`);
            for (const [lever, r] of Object.entries(report.levers)) {
              say(ctx, `  ${lever}: ${Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(", ")}${r.sample.length ? ` (e.g. ${r.sample.join(", ")})` : ""}`);
              for (const note of r.notes ?? []) say(ctx, `    note: ${note}`);
            }
            if (refusal !== null) say(ctx, `  note: BULWARK_PUBLIC_URL is not set here; the real run of ${mailing.join(", ")} will refuse until it is (its mails' links would point at ${app.config.http.publicURL})`);
          }
          return EXIT.ok;
        }
        if (refusal !== null) throw refusal;
        const count = await contain.countScope(deps, scope);
        if (count > CONFIRM_ABOVE) {
          await confirmOrRefuse(ctx, {
            yes: opts.yes, question: `Apply ${contain.resolveLevers(names).join(", ")} to ${count} users? Type "yes" to go on: `,
            noTerminal: () => contain.containErrors.needsConfirmation(count), declined: contain.containErrors.declined,
          });
        }
        // Created over the scope as counted and confirmed (or as small as needed no question), else refused: accounts
        // made or changed meanwhile must not make a "yes" to N users lock N + 20 (BULWARK_ERR_CONTAIN_SCOPE_CHANGED).
        // --yes asks nothing and checks nothing: a script's scope is whatever the scope holds.
        const job = await contain.createContainJob(deps, request, opts.yes ? {} : { confirmed: { users: count, above: CONFIRM_ABOVE } });
        if (!opts.json) say(ctx, `job ${job.id} created: ${job.total} users (resume with: bulwark contain resume ${job.id})`);
        const bar = progress(ctx, "contain", job.total);
        const done = await contain.runJob(deps, job.id, { onProgress: (d, t) => bar.update(d, t), worker: `cli:${process.pid}` });
        bar.done();
        const view = contain.jobView(done);
        const queued = view.counts["invalidate-passwords"]?.["resetEmailsQueued"] ?? 0;
        if (queued > 0 && app.config.http.mail === null) {
          view.notes.push(`${queued} reset emails wait in the outbox: no SMTP is configured (BULWARK_SMTP_URL, BULWARK_MAIL_FROM); bulwark serve sends them once it is`);
        }
        if (opts.json) writeJSON(ctx, view);
        else printJob(ctx, view);
        return EXIT.ok;
      }),
    );

  // commander hands an option written after a subcommand to `contain` when `contain` declares it too (the program
  // reorders the words before `contain` parses them), so `contain resume JOB --dry-run` used to set `contain`'s own
  // --dry-run and resume for real. A subcommand takes the parent options it also declares and refuses the others
  // with exit 2, rather than act as if they had not been given.
  type Flag = "json" | "dryRun" | "yes";
  const withParent = <O extends Partial<Record<Flag, boolean>>>(sub: string, opts: O, takes: Flag[]): O => {
    const given = cmd.options.filter((o) => cmd.getOptionValueSource(o.attributeName()) === "cli");
    const refused = given.filter((o) => !(takes as string[]).includes(o.attributeName()));
    if (refused.length > 0) throw usage(`contain ${sub} does not take ${refused.map((o) => o.long ?? o.flags).join(", ")}`);
    const parent = cmd.opts<RunOpts>();
    const merged: Partial<Record<Flag, boolean>> = {};
    for (const flag of takes) merged[flag] = opts[flag] === true || parent[flag] === true;
    return { ...opts, ...merged };
  };

  cmd
    .command("status")
    .description("Show a containment job's progress (done, total, rate, ETA); the latest job when none is named.")
    .argument("[job]", "job id")
    .option("--json", "print the job as JSON")
    .action(
      action(ctx, async (id: string | undefined, opts: { json?: boolean }) => {
        opts = withParent("status", opts, ["json"]);
        const { app, contain, deps } = await services(ctx);
        let jobId = id;
        if (jobId === undefined) {
          const newest = async (kind: string) => (await deps.jobs.listReadable({ kind, limit: 1 })).jobs;
          const latest = [...(await newest(contain.CONTAIN_KIND)), ...(await newest(contain.UNDO_KIND))].sort((a, b) => b.createdAt - a.createdAt)[0];
          // Nothing to report is an answer, not a usage error.
          if (!latest) {
            if (opts.json) writeJSON(ctx, null);
            else say(ctx, "no containment jobs yet");
            return EXIT.ok;
          }
          jobId = latest.id;
        }
        const job = await deps.jobs.get<Record<string, unknown>>(jobId);
        if (job.kind !== contain.CONTAIN_KIND && job.kind !== contain.UNDO_KIND) throw contain.containErrors.notContainJob(jobId);
        const view = contain.jobView(job);
        const { ratePerSecond, etaSeconds, stalledSeconds } = contain.jobProgress(job, app.clock.now());
        if (opts.json) writeJSON(ctx, { ...view, ratePerSecond, etaSeconds, stalledSeconds });
        else {
          printJob(ctx, view);
          say(ctx, `  rate ${ratePerSecond}/s${etaSeconds !== null && job.status !== "done" ? `, ETA ${etaSeconds}s` : ""}`);
          if (stalledSeconds !== null) {
            say(ctx, `  no batch committed for ${stalledSeconds}s: if no process is running this job (it was killed, or its server stopped), resume it with \`bulwark contain resume ${job.id}\``);
          }
        }
        return EXIT.ok;
      }),
    );

  cmd
    .command("resume")
    .description("Resume a containment or undo job that stopped (killed, crashed, failed) where it stopped.")
    .argument("<job>", "job id")
    .option("--json", "print the job as JSON")
    .action(
      action(ctx, async (id: string, opts: { json?: boolean }) => {
        opts = withParent("resume", opts, ["json"]);
        const { app, contain, deps } = await services(ctx);
        const before = await deps.jobs.get(id);
        contain.registerBuiltinLevers();
        const mailing = before.kind === contain.CONTAIN_KIND ? contain.storedLevers(id, before.spec as { levers?: unknown }).filter(contain.leverMailsLinks) : [];
        if (mailing.length > 0) requirePublicURL(app, `the job's ${mailing.join(", ")} mails links`);
        const bar = progress(ctx, "contain", before.total);
        const view = contain.jobView(await contain.resumeJob(deps, id, { actor: cliActor(), onProgress: (d, t) => bar.update(d, t), worker: `cli:${process.pid}` }));
        bar.done();
        if (opts.json) writeJSON(ctx, view);
        else printJob(ctx, view);
        return EXIT.ok;
      }),
    );

  cmd
    .command("cancel")
    .description("Stop a containment or undo job that has not ended: no further batch runs; what it applied stays and can be undone.")
    .argument("<job>", "job id")
    .option("--json", "print what was cancelled as JSON")
    .action(
      action(ctx, async (id: string, opts: { json?: boolean }) => {
        opts = withParent("cancel", opts, ["json"]);
        const { contain, deps } = await services(ctx);
        const outcome = await contain.cancelJob(deps, id, { actor: cliActor() });
        if (opts.json) writeJSON(ctx, { ...outcome, status: "cancelled" });
        else {
          say(ctx, `job ${outcome.id} (${outcome.kind}) cancelled: it was ${outcome.was}, ${outcome.done}/${outcome.total} handled; no further batch will run`);
          // A process running it stops at its next batch: the batch in flight, if any, rolls back.
          if (outcome.kind === contain.CONTAIN_KIND && outcome.done > 0) say(ctx, `  what it applied stays; to reverse it: bulwark contain undo ${outcome.id}`);
        }
        return EXIT.ok;
      }),
    );

  cmd
    .command("undo")
    .description("Undo a finished or cancelled job's reversible levers (expire, lock, demote): rows changed since are left alone and reported.")
    .argument("<job>", "the containment job to undo")
    .option("--dry-run", "report what would be restored and what would be left alone; change nothing")
    .option("--yes", "do not ask for confirmation (more than 100 users)")
    .option("--json", "print the undo job and the rows left alone (or the dry-run report) as JSON")
    .action(
      action(ctx, async (id: string, opts: { dryRun?: boolean; yes?: boolean; json?: boolean }) => {
        opts = withParent("undo", opts, ["json", "dryRun", "yes"]);
        const { contain, deps } = await services(ctx);
        const { dryRunUndo, planUndo } = await import("../../contain/undo.ts");
        if (opts.dryRun) {
          const report = await dryRunUndo(deps, id, cliActor());
          if (opts.json) writeJSON(ctx, report);
          else printUndoDryRun(ctx, report);
          return EXIT.ok;
        }
        // An undo unlocks, un-expires and re-grants in bulk: as consequential as the job itself, so it asks as `contain` does.
        const plan = await planUndo(deps, id);
        if (plan.users > CONFIRM_ABOVE) {
          await confirmOrRefuse(ctx, {
            yes: opts.yes, question: `Undo ${plan.levers.join(", ")} of job ${id} for ${plan.users} users? Type "yes" to go on: `,
            noTerminal: () => contain.containErrors.needsConfirmation(plan.users), declined: contain.containErrors.declined,
          });
        }
        const undo = await contain.createUndoJob(deps, id, cliActor());
        if (!opts.json) say(ctx, `undo job ${undo.id} created: ${undo.total} recorded changes`);
        const bar = progress(ctx, "undo", undo.total);
        const view = contain.jobView(await contain.runJob(deps, undo.id, { onProgress: (d, t) => bar.update(d, t), worker: `cli:${process.pid}` }));
        bar.done();
        const skipped = await contain.skippedByUndo(deps, id);
        if (opts.json) writeJSON(ctx, { ...view, leftAlone: skipped });
        else {
          printJob(ctx, view);
          if (skipped.length) say(ctx, `  left alone (changed since the job): ${describeLeftAlone(skipped)}`);
        }
        return EXIT.ok;
      }),
    );

  cmd
    .command("list")
    .description("List containment and undo jobs, newest first.")
    .option("--json", "print the jobs as JSON")
    .action(
      action(ctx, async (opts: { json?: boolean }) => {
        opts = withParent("list", opts, ["json"]);
        const { contain, deps } = await services(ctx);
        // Row by row: one unreadable job (a damaged spec) is listed as such, never hiding the others mid-incident. Every
        // job, read a page at a time: cut at the newest hundred, a job could be buried under empty ones started after it.
        const found: Job[] = [];
        const damaged: UnreadableJob[] = [];
        for (let after: JobPosition | null = null; ;) {
          const page = await deps.jobs.listReadable({ kinds: [contain.CONTAIN_KIND, contain.UNDO_KIND], limit: 500, after });
          found.push(...page.jobs);
          damaged.push(...page.unreadable);
          const rows = [...page.jobs.map((j) => ({ createdAt: j.createdAt, id: j.id })), ...page.unreadable.map((u) => ({ createdAt: u.createdAt, id: u.id }))];
          if (rows.length < 500) break;
          after = rows.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1)).at(-1) as JobPosition;
        }
        const jobs = found.sort((a, b) => b.createdAt - a.createdAt).map((j) => contain.jobView(j));
        const unreadable = damaged.map((u) => ({ id: u.id, kind: u.kind, status: u.status, unreadable: true, error: u.error.message }));
        if (opts.json) writeJSON(ctx, [...jobs, ...unreadable]);
        else if (jobs.length === 0 && unreadable.length === 0) say(ctx, "no containment jobs");
        else {
          for (const j of jobs) say(ctx, `${j.id}  ${j.kind.padEnd(12)} ${j.status.padEnd(8)} ${String(j.done).padStart(8)}/${j.total}  ${j.levers.join(",")}  ${j.createdAt}`);
          for (const u of unreadable) say(ctx, `${u.id}  ${u.kind.padEnd(12)} ${u.status.padEnd(8)} UNREADABLE: ${u.error}`);
        }
        return EXIT.ok;
      }),
    );
}

export default { register } satisfies CommandModule;
