// `bulwark users import | migrate-hashes | census`: bulk account import, the wrap-migration job, and the
// password-hash census. Heavy modules load inside each action so CLI start-up stays fast.
import { basename, extname } from "node:path";
import type { Command } from "commander";
import { InputError } from "../../lib/errors.ts";
import { escapeControls } from "../../lib/terminal.ts";
import { snapshotInput } from "../snapshot.ts";
import type { App } from "../../app/index.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { EXIT, type ExitCode } from "../exit-codes.ts";
import { action, cliActor, group, progress, writeJSON, writeLine } from "../run.ts";

const usage = (message: string): InputError => new InputError("BULWARK_ERR_USAGE", message);

function positiveInt(name: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^[0-9]{1,9}$/.test(text) || Number(text) < 1 || Number(text) > max) throw usage(`${name} must be an integer between 1 and ${max}, got "${text.slice(0, 20)}"`);
  return Number(text);
}

function oneOf<T extends string>(name: string, text: string | undefined, allowed: readonly T[], fallback: T): T {
  if (text === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(text)) throw usage(`${name} must be one of ${allowed.join(", ")}, got "${text.slice(0, 20)}"`);
  return text as T;
}


function migrateDeps(app: App): import("../../accounts/migrate-hashes/index.ts").MigrateDeps {
  const { passwords, users, jobs } = app.accounts;
  return { database: app.db, passwords, users, jobs, audit: app.audit };
}

interface ImportFlags {
  format?: string; map?: string; preset?: string; source?: string; salted?: string; saltColumn?: string; ignoreColumns?: string;
  onConflict?: string; replacePasswords?: boolean; batch?: string; dryRun?: boolean; skipBad?: boolean; json?: boolean;
}

async function runImport(ctx: CliContext, file: string, opts: ImportFlags): Promise<ExitCode> {
  const { statSync } = await import("node:fs");
  const imp = await import("../../accounts/import/index.ts");
  const { parseSaltedTemplate } = await import("../../accounts/passwords/index.ts");
  const preset = opts.preset === undefined ? null : oneOf("--preset", opts.preset, ["drupal7"] as const, "drupal7");
  const ext = extname(file).toLowerCase();
  const inferred = ext === ".csv" ? "csv" : ext === ".jsonl" || ext === ".ndjson" ? "jsonl" : undefined;
  const format = oneOf("--format", opts.format ?? inferred, ["csv", "jsonl"] as const, "csv");
  if (opts.format === undefined && inferred === undefined) throw usage("--format csv|jsonl is required (it cannot be told from the file name)");
  if ((opts.salted === undefined) !== (opts.saltColumn === undefined)) throw usage("--salted and --salt-column go together: the template and the column holding each row's salt");
  const onConflict = oneOf("--on-conflict", opts.onConflict, ["skip", "update", "fail"] as const, "fail");
  if (opts.replacePasswords && onConflict !== "update") throw usage("--replace-passwords goes with --on-conflict update: it decides what an update does with stored passwords");
  const batchSize = positiveInt("--batch", opts.batch, 500, imp.MAX_BATCH);
  try {
    if (!statSync(file).isFile()) throw usage(`${file} is not a file`);
  } catch (cause) {
    if (cause instanceof InputError) throw cause;
    throw new InputError("BULWARK_ERR_USAGE", `cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  }
  const explicit = imp.parseFieldMap(opts.map);
  const map = imp.resolveMap({ preset, map: explicit, saltColumn: opts.saltColumn });
  // Columns no field reads refuse the import unless named here (or known to the preset): never dropped silently.
  const ignored = imp.parseColumnList(opts.ignoreColumns);
  const rules = { map, preset, source: opts.source ?? preset ?? basename(file), salted: opts.salted !== undefined ? parseSaltedTemplate(opts.salted) : null, ignored };

  const app = await ctx.app();
  // Every pass reads one private, nameless copy taken now (src/cli/snapshot.ts): what is validated is what is written
  // and what the audit's digest names. A stretch without a line break longer than any record the parsers accept (1 Mi
  // characters, up to 4 bytes each) stops the copy at once.
  const snapshot = await snapshotInput(file, { maxLineBytes: 4 * imp.DEFAULT_CSV_LIMITS.maxRecordChars, name: file }).catch((cause: unknown) => {
    if (cause instanceof InputError) throw cause;
    throw new InputError("BULWARK_ERR_USAGE", `cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  });
  const bar = progress(ctx, opts.dryRun ? "validating" : "importing", 0);
  const report = await imp.importUsers(
    {
      database: app.db, users: app.accounts.users, passwords: app.accounts.passwords, audit: app.audit, clock: app.clock, jobs: app.accounts.jobs,
      // A replaced password's owner is told through the outbox (ASVS 6.3.7); sent once mail is configured.
      notices: { outbox: app.accounts.outbox, appName: app.config.serviceName },
    },
    {
      format, rules, onConflict, replacePasswords: Boolean(opts.replacePasswords), batchSize, dryRun: Boolean(opts.dryRun), skipBad: Boolean(opts.skipBad), actor: cliActor(), file: basename(file),
      // Bytes, not a "utf8" stream: that would turn bytes that are not UTF-8 into U+FFFD silently.
      open: () => snapshot.open(),
      ...(format === "csv" ? { onHeader: (header: string[]) => imp.checkHeader(header, map, explicit, { preset, ignore: ignored }) } : {}),
      onProgress: (rows) => bar.update(rows, rows),
    },
  ).finally(() => snapshot.close());
  bar.done();
  if (opts.json) writeJSON(ctx, report);
  else {
    const verb = report.dryRun ? "dry run (nothing written)" : "imported";
    // The path and the source (by default the file's name) as typed or planted: escaped, newlines included.
    writeLine(ctx, `${verb}: ${escapeControls(file)} as source "${escapeControls(report.source)}": ${report.rows} rows; ${report.dryRun ? "would create" : "created"} ${report.created}, updated ${report.updated}, skipped ${report.skipped}, failed ${report.failed}`);
    if (report.resumedAfterLine !== null) {
      writeLine(ctx, `  ${report.dryRun ? "would resume" : "resumed"} the interrupted import of this file (job ${report.jobId}): its ${report.alreadyImported} rows up to line ${report.resumedAfterLine} were already written`);
    }
    // The reasons quote the file's cells: control characters are shown as \xNN, never sent to the terminal.
    listRows(ctx, report.bad, "bad rows", (b) => `line ${b.line}: ${escapeControls(b.reason)}`);
    listRows(ctx, report.skippedRows, "skipped rows", (s) => `line ${s.line}: skipped, ${escapeControls(s.reason)}`);
    // An address an anonymous POST /auth/register held and never finished: the row's account takes it (ASVS 6.3.7).
    listRows(ctx, report.signUpsRemoved, "unfinished sign-ups removed", (r) => `line ${r.line}: the unfinished sign-up ${r.id} holding the address ${report.dryRun ? "would be" : "was"} deleted for the row's account`);
    const replaced = report.dryRun ? "would be replaced" : "replaced";
    listRows(ctx, report.passwordsReplaced, "password hashes replaced", (p) => `line ${p.line}: password hash ${replaced} (${p.from ?? "no password"} -> ${p.to})`);
    if (report.timesClamped > 0) writeLine(ctx, `  ${report.timesClamped} row(s) dated a sign-up or sign-in ahead of this import's clock (the legacy host's clock or time zone) ${report.dryRun ? "would be" : "were"} stored at this import's time`);
    if (report.passwordsKept > 0) writeLine(ctx, `  ${report.passwordsKept} stored password hash(es) differ from the file's and ${report.dryRun ? "would be" : "were"} kept (--replace-passwords replaces them)`);
    if (report.passwordsNotSet > 0) writeLine(ctx, `  ${report.passwordsNotSet} updated account(s) hold no password; the file's ${report.dryRun ? "would not be" : "was not"} set (--replace-passwords sets it)`);
  }
  // A dry run is a check: bad rows mean the file does not hold (exit 1).
  return report.dryRun && report.bad.length > 0 ? EXIT.fails : EXIT.ok;
}

/** Rows of one kind the human report lists by line before it says how many more there are (`--json` lists every one). */
export const LISTED_ROWS = 20;

/**
 * One line per row of `rows` up to LISTED_ROWS, then one line counting the rest: a re-import of a million-row file under
 * `--on-conflict skip` names its first skipped rows and the count, not a million lines.
 */
function listRows<T>(ctx: CliContext, rows: readonly T[], what: string, line: (row: T) => string): void {
  for (const row of rows.slice(0, LISTED_ROWS)) writeLine(ctx, `  ${line(row)}`);
  if (rows.length > LISTED_ROWS) writeLine(ctx, `  … and ${rows.length - LISTED_ROWS} more ${what} (--json lists every one)`);
}

function registerImport(users: Command, ctx: CliContext): void {
  users
    .command("import <file>")
    .description("import accounts from CSV (with a header row) or JSONL; validates every row first")
    .option("--format <format>", "csv or jsonl (default: from the file extension)")
    .option("--map <pairs>", "field=column pairs, e.g. email=mail,password_hash=pass (fields: email, username, display_name, password_hash, status, created_at, last_login_at, external_id)")
    .option("--preset <name>", "a known export layout: drupal7 (Drupal 7 users table)")
    .option("--source <name>", "external source recorded with legacy ids (default: the preset or the file name)")
    .option("--salted <template>", 'layout of salted legacy digests, e.g. "sha256(salt+password):hex"')
    .option("--salt-column <column>", "the column holding each row's salt (with --salted)")
    .option("--ignore-columns <columns>", "columns (JSONL keys) the file carries that no field should read, e.g. notes,theme; any other column no field reads refuses the import")
    .option("--on-conflict <mode>", "existing email: skip, update or fail (default fail)")
    .option("--replace-passwords", "with --on-conflict update: replace stored password hashes that differ from the file's (never with a weaker one)")
    .option("--batch <n>", "rows per transaction (default 500)")
    .option("--dry-run", "validate everything and report every bad row; write nothing but an audit event")
    .option("--skip-bad", "import the good rows even when some rows are bad (they are reported and counted as failed)")
    .option("--json", "print the report as JSON")
    .action(action(ctx, (file: string, opts: ImportFlags) => runImport(ctx, file, opts)));
}

interface MigrateFlags { dryRun?: boolean; batch?: string; concurrency?: string; new?: boolean; json?: boolean }

/** What migrate-hashes and the census say of slow hashes below their minimum cost (see WrappableCensus). */
function belowMinimumNote(n: number): string {
  return `${n} user(s) on a slow scheme below its minimum cost (argon2 below the policy's, bcrypt below cost 10, scrypt below OWASP's N=2^17,r=8,p=1 or an equivalent): weak, and left as they are (migrate-hashes does not wrap them, and no job can rehash them without the password); each is rehashed to the policy's argon2id at the user's next sign-in`;
}

/** argon2 hashes in flight: enough to keep every core (and every libuv pool thread) busy. */
async function defaultConcurrency(): Promise<number> {
  const { availableParallelism } = await import("node:os");
  // @node-rs/argon2 hashes on the libuv pool (UV_THREADPOOL_SIZE threads; main.ts sizes it to the
  // cores): fewer in flight leaves a core idle. Twice the cores keeps the pool fed while finished
  // hashes travel back through the event loop and a batch commits.
  return 2 * availableParallelism();
}

/** Runs a job to the end with a progress bar, and prints the result. */
async function finishMigration(ctx: CliContext, app: App, job: import("../../jobs/job-store.ts").Job<import("../../accounts/migrate-hashes/index.ts").MigrateSpec>, resumed: boolean, opts: MigrateFlags): Promise<ExitCode> {
  const mig = await import("../../accounts/migrate-hashes/index.ts");
  const batch = opts.batch === undefined ? undefined : positiveInt("--batch", opts.batch, 200, mig.MAX_BATCH);
  const concurrency = positiveInt("--concurrency", opts.concurrency, await defaultConcurrency(), 256);
  if (!opts.json) ctx.stderr.write(resumed ? `resuming job ${job.id} (${job.done}/${job.total} done)\n` : `started job ${job.id}: ${job.total} user(s) to wrap\n`);
  const bar = progress(ctx, "wrapping", job.total);
  const done = await mig.runMigration(migrateDeps(app), job, { actor: cliActor(), concurrency, ...(batch ? { batch } : {}), onProgress: (n, total) => bar.update(n, total) });
  bar.done();
  if (opts.json) writeJSON(ctx, { job: done.id, resumed, status: done.status, total: done.total, done: done.done, counts: done.counts });
  else {
    writeLine(ctx, `job ${done.id} ${done.status}: wrapped ${done.counts["wrapped"] ?? 0}, skipped ${done.counts["skipped"] ?? 0} (changed since read), of ${done.total}`);
    const swept = done.counts["swept"] ?? 0;
    if (swept > 0) writeLine(ctx, `${swept} fast hash(es) arrived behind the job's cursor while it ran (an import, say): its closing sweep took them in (counted above)`);
    // The closing sweep still found fast hashes (an import running alongside): the job is not claimed done.
    if (done.status === "running") writeLine(ctx, `not done: fast hashes were still arriving while the job swept the table; resume it with \`bulwark users migrate-hashes resume ${done.id}\` once imports have finished`);
    // Counted over the batches this run and earlier runs of the job committed.
    const left = done.counts["belowMinimum"] ?? 0;
    if (left > 0) writeLine(ctx, belowMinimumNote(left));
  }
  // Not done (hashes still arriving, or the job ended otherwise): fast hashes may be left, so not "everything holds".
  return done.status === "done" ? EXIT.ok : EXIT.fails;
}

function registerMigrate(users: Command, ctx: CliContext): void {
  const cmd = users
    .command("migrate-hashes")
    .description("wrap every fast legacy hash in argon2id now, without waiting for logins (a resumable job; resumes an unfinished one)")
    .option("--dry-run", "print the census of what would change; write only an audit event")
    .option("--batch <n>", "users per batch/transaction (default 200)")
    .option("--concurrency <n>", "argon2 hashes in flight (default: 2 × available cores)")
    .option("--new", "start a new job even if an unfinished one exists")
    .option("--json", "print the result as JSON")
    .action(
      action(ctx, async (opts: MigrateFlags) => {
        const mig = await import("../../accounts/migrate-hashes/index.ts");
        // Flags are checked before the data dir is opened: bad usage changes nothing.
        const batch = positiveInt("--batch", opts.batch, 200, mig.MAX_BATCH);
        positiveInt("--concurrency", opts.concurrency, 1, 256);
        if (opts.dryRun && opts.new) throw usage("--dry-run and --new do not go together: a dry run starts no job");
        const app = await ctx.app();
        const deps = migrateDeps(app);
        if (opts.dryRun) {
          const census = await mig.wrappableCensus(deps);
          await app.audit.append({ type: "users.migrate-hashes.dry-run", actor: cliActor(), data: { total: census.total, schemes: census.bySchemes, belowMinimum: census.belowMinimum } });
          if (opts.json) return void writeJSON(ctx, { dryRun: true, wouldWrap: census.total, schemes: census.bySchemes, belowMinimum: census.belowMinimum });
          writeLine(ctx, `dry run: ${census.total} user(s) would be wrapped in argon2id`);
          for (const [scheme, n] of Object.entries(census.bySchemes).sort((a, b) => b[1] - a[1])) writeLine(ctx, `  ${scheme.padEnd(22)} ${n}`);
          if (census.belowMinimum > 0) writeLine(ctx, belowMinimumNote(census.belowMinimum));
          return;
        }
        const { job, resumed } = await mig.openMigrationJob(deps, { actor: cliActor(), batch, ...(opts.new ? { forceNew: true } : {}) });
        return finishMigration(ctx, app, job, resumed, opts);
      }),
    );
  cmd
    .command("resume")
    .description("resume an unfinished migrate-hashes job (killed, crashed) where its last committed batch ended")
    .argument("[job]", "job id (default: the newest unfinished migrate-hashes job)")
    .option("--batch <n>", "users per batch/transaction (default: the job's own)")
    .option("--concurrency <n>", "argon2 hashes in flight (default: 2 × available cores)")
    .option("--json", "print the result as JSON")
    .action(
      action(ctx, async (id: string | undefined, opts: MigrateFlags) => {
        // commander hands --json after a subcommand to the parent command, which declares it too.
        const merged: MigrateFlags = { ...cmd.opts<MigrateFlags>(), ...opts };
        const mig = await import("../../accounts/migrate-hashes/index.ts");
        if (merged.batch !== undefined) positiveInt("--batch", merged.batch, 200, mig.MAX_BATCH);
        positiveInt("--concurrency", merged.concurrency, 1, 256);
        if (merged.dryRun || merged.new) throw usage("resume takes neither --dry-run nor --new");
        const app = await ctx.app();
        const job = await mig.resumeMigrationJob(migrateDeps(app), { actor: cliActor(), ...(id !== undefined ? { id } : {}) });
        return finishMigration(ctx, app, job, true, merged);
      }),
    );
}

function registerCensus(users: Command, ctx: CliContext): void {
  users
    .command("census")
    .description("users per password scheme and parameters, users without a password, the share on weak schemes (fast legacy ones, and slow ones below their minimum cost: argon2 below the policy's, bcrypt below 10, scrypt below OWASP's)")
    .option("--json", "print the census as JSON")
    .action(
      action(ctx, async (opts: { json?: boolean }) => {
        const { passwordCensus } = await import("../../accounts/census/index.ts");
        const app = await ctx.app();
        const census = await passwordCensus({ database: app.db, passwords: app.accounts.passwords });
        if (opts.json) return void writeJSON(ctx, census);
        writeLine(ctx, `${"scheme".padEnd(22)} ${"users".padStart(8)}  parameters`);
        for (const row of census.schemes) writeLine(ctx, `${row.scheme.padEnd(22)} ${String(row.users).padStart(8)}  ${row.params}${row.argon2Version === 16 ? " (argon2 1.0)" : ""}${row.weak ? "  (weak)" : ""}`);
        writeLine(ctx, `${"(no password)".padEnd(22)} ${String(census.withoutPassword).padStart(8)}`);
        writeLine(ctx, `${census.users} user(s); ${census.weak} on weak schemes (${(census.weakShare * 100).toFixed(1)}% of those with a password), ${census.unsalted} unsalted or on a shared salt (one precomputation for all of them)`);
        // Counts only: a salt is never printed. Slow hashes on a shared salt are not "weak" by their cost, yet a cracker
        // tests each group with one computation per guess.
        if (census.sharedSalt > 0) writeLine(ctx, `${census.sharedSalt} user(s) share their salt with another user of the same scheme and cost (${census.sharedSaltGroups} group(s), the largest of ${census.largestSharedSaltGroup}): one computation per guess tests a whole group; the fast ones among them are counted unsalted above, the slow ones keep their salt until a sign-in rehashes them (bcrypt, scrypt, argon2 below the policy) or a new password replaces them (a reset; the invalidate-passwords lever)`);
        // migrate-hashes lifts the fast schemes; these only a sign-in lifts, so the operator is told not to wait for the job.
        if (census.belowMinimum > 0) writeLine(ctx, `of the weak, ${belowMinimumNote(census.belowMinimum)}`);
      }),
    );
}

function registerLookalikes(users: Command, ctx: CliContext): void {
  users
    .command("lookalikes")
    .description("accounts whose email or username reads like another account's (the same letters in another script), stored before such look-alikes were refused; exit 1 when there are any")
    .option("--claim-free", "put an account whose look-alike is gone back under the unique index, so that the database itself refuses new look-alikes of it")
    .option("--json", "print the list as JSON")
    .action(
      action(ctx, async (opts: { claimFree?: boolean; json?: boolean }) => {
        const { storedLookalikes } = await import("../../accounts/users/lookalikes.ts");
        const app = await ctx.app();
        const found = await storedLookalikes(app.db, { claimFree: opts.claimFree === true });
        const pending = found.filter((l) => !l.claimed);
        if (opts.json) writeJSON(ctx, { lookalikes: found });
        else {
          const shown = (a: { email: string; username: string | null }): string => escapeControls(a.username === null ? a.email : `${a.email} (${a.username})`);
          for (const l of found) {
            const what = l.readsLike ? `reads like ${l.readsLike.id} ${shown(l.readsLike)}` : l.claimed ? "read like an account that is gone; it is under the unique index again" : "reads like no account now (--claim-free puts it under the unique index again)";
            writeLine(ctx, `${l.account.id} ${shown(l.account)}: its ${l.field} ${what}`);
          }
          writeLine(ctx, found.length === 0 ? "no account reads like another" : `${pending.length} look-alike identifier(s) left to judge (rename or disable one of each pair)`);
        }
        return pending.length === 0 ? EXIT.ok : EXIT.fails;
      }),
    );
}

export default {
  register(program, ctx) {
    const users = group(program, "users", "user accounts: create, unlock, import, migrate hashes, census, look-alikes");
    registerImport(users, ctx);
    registerMigrate(users, ctx);
    registerCensus(users, ctx);
    registerLookalikes(users, ctx);
  },
} satisfies CommandModule;
