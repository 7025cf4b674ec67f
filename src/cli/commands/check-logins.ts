// `bulwark check logins [--since 24h] [--state FILE]`: failed-login waves and the sign-ins that got through, from the audit log.
import { open, rm, type FileHandle } from "node:fs/promises";
import type { Command } from "commander";
import { InputError, RuntimeFailure } from "../../lib/errors.ts";
import { addCheckOptions, finishCheck, type CheckOptions } from "../check-common.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { action, group, writeFlushed } from "../run.ts";
import { parseTime } from "../time.ts";

interface LoginsOptions extends CheckOptions {
  since?: string;
  until?: string;
  state?: string;
  waveMin?: string;
  waveFactor?: string;
  timeZone?: string;
  streak?: string;
  sprayMin?: string;
  guessMin?: string;
  baselineDays?: string;
  idsOut?: string;
}

/** A whole number from `min` to 1,000,000,000 typed for `option`, or the default. */
function whole(text: string | undefined, option: string, min: number, fallback: number): number {
  if (text === undefined) return fallback;
  const t = text.trim();
  if (!/^\d{1,10}$/.test(t) || Number(t) < min || Number(t) > 1e9) throw new InputError("BULWARK_ERR_USAGE", `${option} must be a whole number from ${min} to 1000000000; got "${t.slice(0, 20)}"`);
  return Number(t);
}

/** Creates `path` for the id list, owner-only, refusing an existing file or link (exit 2 naming it). */
async function createIdsFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, "wx", 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "EEXIST" ? "it exists already (choose a new name; it is never overwritten)" : code === "ENOENT" ? "its directory does not exist" : code === "EACCES" ? "permission denied" : String(code ?? (error as Error).message);
    throw new InputError("BULWARK_ERR_USAGE", `--ids-out ${JSON.stringify(path)}: cannot create it: ${why}`);
  }
}

export default {
  register(program: Command, ctx: CliContext): void {
    const check = group(program, "check", "run a security check and print findings");
    addCheckOptions(
      check
        .command("logins")
        .description(
          "read this Bulwark's own sign-ins from its audit log: failed logins far above the usual in any 60 minutes (a credential-stuffing wave), " +
            "addresses failing on many accounts at any pace (a list being worked through), accounts failing from any number of addresses at " +
            "any pace (one password guessed by a botnet), and the sign-ins that got through any of them, or came after a run of failures; each with the session to end",
        )
        .option("--since <time>", "the window's start: an age such as 24h, 7d, or an ISO 8601 time (UTC unless it carries an offset); default 24h. With --state, only while FILE does not exist yet")
        .option("--until <time>", "the window's end (default: now)")
        .option("--state <file>", "start the window where the last run with this FILE ended, however late this one starts (for cron: no sign-in falls between two runs), " +
          "and record this run's end in it once the report is written; a new file the first time (the window is then --since's). Refused (exit 2) unless a regular file only you can write")
        .option("--wave-min <n>", "a wave is any 60 minutes with at least this many failed logins (default 100)...")
        .option("--wave-factor <n>", "...and at least this many times the usual hour (default 5; see --baseline-days)")
        .option("--streak <n>", "report a sign-in after at least this many failed attempts in a row on its account (default 5, as the owner's notice)")
        .option("--spray-min <n>", "report an address that failed on at least this many different accounts in the window and the 24 hours before it, and the sign-ins from it (default 20)")
        .option("--guess-min <n>", "report an account that took at least this many failed logins in the window and the 24 hours before it, at any pace, from any addresses (or in the 7 days before it, from at least half as many clients), and the sign-ins from browsers new to it after them (default 20)")
        .option("--time-zone <zone>", "the site's time zone, an IANA name such as Europe/Berlin (default UTC): each hour of the day's usual is read in its time, so a daily peak that keeps local time stays at its hour through a daylight-saving change")
        .option("--baseline-days <n>", "days before the window whose median hour is the usual rate of failures, or of the as many days before those if lower (default 7; 0: the window's own)")
        .option("--ids-out <file>", "write the id of every account a reported sign-in belongs to, one per line, for `bulwark contain … --ids` (a new file)"),
    ).action(
      action(ctx, async (opts: LoginsOptions) => {
        const { canonicalZone } = await import("../../checks/logins/day-clock.ts");
        const { checkLogins, checkWindowState, DEFAULT_LOGINS_OPTIONS, LONG_WINDOW_MS, MAX_LATE_WRITE_MS, newestSeq, readWindowState, writeWindowState, writtenLate } = await import("../../checks/logins/index.ts");
        const { datedAheadToleranceFor } = await import("../../store/clock-skew.ts");
        // Checked before the store is opened: a typo costs nothing.
        const waveMin = whole(opts.waveMin, "--wave-min", 1, DEFAULT_LOGINS_OPTIONS.waveMin);
        const waveFactor = whole(opts.waveFactor, "--wave-factor", 1, DEFAULT_LOGINS_OPTIONS.waveFactor);
        const streak = whole(opts.streak, "--streak", 1, DEFAULT_LOGINS_OPTIONS.streak);
        const sprayMin = whole(opts.sprayMin, "--spray-min", 1, DEFAULT_LOGINS_OPTIONS.sprayMin);
        const guessMin = whole(opts.guessMin, "--guess-min", 1, DEFAULT_LOGINS_OPTIONS.guessMin);
        const baselineDays = whole(opts.baselineDays, "--baseline-days", 0, DEFAULT_LOGINS_OPTIONS.baselineDays);
        const timeZone = opts.timeZone === undefined ? "UTC" : canonicalZone(opts.timeZone);
        if (timeZone === null) throw new InputError("BULWARK_ERR_USAGE", `--time-zone ${JSON.stringify(opts.timeZone)}: not a time zone this platform knows; give an IANA name such as UTC, Europe/Berlin or America/New_York`);
        // The window's times are read once here for their shape (a mistyped --since is named before any store is
        // looked for), and again below against the application's clock.
        const sinceText = opts.since ?? "24h";
        parseTime(sinceText, "--since", Date.now());
        if (opts.until !== undefined) parseTime(opts.until, "--until", Date.now());
        // The state file too (where the last run ended; null: none yet), refused whole and left untouched if it is not
        // one this user wrote (src/checks/logins/window-state.ts).
        const last = opts.state === undefined ? null : await readWindowState(opts.state);
        const lastEnd = last?.until ?? null;
        const app = await ctx.app();
        const now = app.clock.now();
        // A sign-in stamped late by a node whose clock is behind is judged again in the next run (twice the clock skew a
        // node may have and still serve, 60 s by default); a state file dated ahead by more than that is refused.
        const lateWriteMs = datedAheadToleranceFor(app.config.maxClockSkewMs);
        if (opts.state !== undefined && lastEnd !== null) checkWindowState(opts.state, lastEnd, { now, aheadToleranceMs: lateWriteMs });
        const until = opts.until === undefined ? now : parseTime(opts.until, "--until", now);
        // With a state, the window starts where the last run ended: --since is for the first run only.
        const since = lastEnd ?? parseTime(sinceText, "--since", now);
        if (lastEnd !== null && lastEnd >= until) {
          throw new InputError("BULWARK_ERR_USAGE", `--state ${JSON.stringify(opts.state)}: the last run ended at ${new Date(lastEnd).toISOString()}, not before this run's end (${new Date(until).toISOString()}): nothing to judge (an earlier --until, or the clock set back); the file is left as it was`);
        }
        if (since >= until) throw new InputError("BULWARK_ERR_USAGE", `--since (${new Date(since).toISOString()}) must be before --until (${new Date(until).toISOString()})`);
        // The log's position before it is read, for the state: the next run asks what was written after it.
        const seq = opts.state === undefined ? 0 : await newestSeq(app.db);
        // Login events written since the last run read the log but stamped before what this run judges again (its end
        // less lateWriteMs) were judged by no run: their writer's clock was behind this host's by more than the tolerance
        // (this host's clock ahead of the writers', or set back since). Judged now, from the earliest of them, by the
        // log's order, not by the clocks; at most a day back: a stamp older than that is a clock out of all bounds (a
        // node stamping 1970), and reopening every window since would report again what earlier runs judged.
        let lateMs = lateWriteMs;
        let lateLine: string | null = null;
        if (last !== null && last.seq !== null) {
          const late = await writtenLate(app.db, last.seq, since - lateWriteMs);
          if (late.earliest !== null) {
            const beyond = since - late.earliest > MAX_LATE_WRITE_MS;
            lateMs = beyond ? MAX_LATE_WRITE_MS : since - late.earliest;
            lateLine = `${late.n} login event(s) written since the last run read the log are stamped before its end (${new Date(lastEnd as number).toISOString()}) by more than ${lateWriteMs / 1000} s: their writers' clocks were behind this host's when it ran (this host's clock ahead, or set back since); sign-ins are judged from ${new Date(since - lateMs).toISOString()}` +
              (beyond ? ` (the earliest is stamped ${new Date(late.earliest).toISOString()}, more than a day back: a writer's clock far off; check the clocks of the nodes, and run with --since/--until over that time to judge it)` : "");
          }
        }
        // The id file is created before the log is read (never over an existing file: it may be another run's, or a
        // link planted where the operator writes), so a refusal costs no scan; it is removed again if the check fails,
        // so a retry is not refused for it.
        const idsOut = opts.idsOut === undefined ? null : await createIdsFile(opts.idsOut);
        let r: Awaited<ReturnType<typeof checkLogins>>;
        try {
          r = await checkLogins(app.db, { since, until, waveMin, waveFactor, streak, sprayMin, guessMin, baselineDays, timeZone, lateWriteMs: lateMs });
          if (idsOut !== null) {
            await idsOut.writeFile(r.reportedAccounts.map((id) => `${id}\n`).join(""));
            await idsOut.sync(); // on disk before the run reports it written: the list a containment's --ids then reads
          }
        } catch (error) {
          if (idsOut !== null) {
            await idsOut.close();
            await rm(opts.idsOut as string, { force: true });
          }
          throw error;
        }
        await idsOut?.close();
        const longWindow = lastEnd !== null && until - since > LONG_WINDOW_MS;
        const sinceIgnored = lastEnd !== null && opts.since !== undefined;
        const stateLines = opts.state === undefined ? [] : [
          lastEnd === null
            ? `${opts.state} does not exist yet: the window is --since's; it records this run's end once the report is written`
            : `the window starts where the last run with ${opts.state} ended${sinceIgnored ? ` (--since ${opts.since} is ignored: it sets the first window only)` : ""}`,
          ...(lateLine === null ? [] : [lateLine]),
          ...(longWindow ? [`the window is ${Math.round(((until - since) / 86_400_000) * 10) / 10} days long: runs were missed or failed since ${new Date(since).toISOString()}; it is judged whole, and the spraying and guessed-account rules count failures over all of it`] : []),
        ];
        const lowHour = Math.min(...r.usualByHourOfDay);
        const highHour = Math.max(...r.usualByHourOfDay);
        const byHour = lowHour === highHour ? "" : `; by hour of the day, ${r.timeZone}, from ${lowHour} to ${highHour}: the bars are each hour's`;
        const usual = r.usualFrom === "window" ? "the window's own median, the store being younger than the baseline" : `the median hour of the ${baselineDays} days before, or of the ${baselineDays} before those if lower${byHour}`;
        const summary = [
          `${r.window.since} to ${r.window.until}: ${r.failed} failed login(s), usually ${r.usualFailedPerHour} an hour (${usual}), ${r.throttled} throttled event(s), ${r.succeeded} sign-in(s); ${r.waves.length} wave(s), ${r.sprayingAddresses.length} spraying address(es), ${r.guessedAccounts.length} guessed account(s)`,
          ...stateLines,
          ...(idsOut !== null ? [`${r.reportedAccounts.length} account id(s) written to ${opts.idsOut}`] : []),
          ...(r.succeededWithoutDetail > 0 ? [`${r.succeededWithoutDetail} sign-in(s) were recorded before sign-in events named their session and browser: not judged on them`] : []),
        ];
        const code = await finishCheck(ctx, opts, {
          check: "logins",
          findings: r.findings,
          extra: {
            window: r.window, failed: r.failed, throttled: r.throttled, succeeded: r.succeeded, medianFailedPerHour: r.medianFailedPerHour,
            usualFailedPerHour: r.usualFailedPerHour, usualFrom: r.usualFrom, timeZone: r.timeZone, usualByHourOfDay: r.usualByHourOfDay, usualByTenMinutes: r.usualByTenMinutes, waves: r.waves, sprayingAddresses: r.sprayingAddresses, guessedAccounts: r.guessedAccounts,
            succeededWithoutDetail: r.succeededWithoutDetail, reportedAccounts: r.reportedAccounts.length,
            ...(opts.state === undefined ? {} : { state: { file: opts.state, lastEnd: lastEnd === null ? null : new Date(lastEnd).toISOString(), sinceIgnored, longWindow, judgedFrom: new Date(since - lateMs).toISOString() } }),
          },
          summary,
        });
        if (opts.state !== undefined) {
          // Only once the report has been taken by standard output (the --ids-out list is on disk already): a run that
          // dies before then leaves the old state, and the next run judges this window again, rather than past it.
          try {
            await writeFlushed(ctx.stdout, "");
          } catch (cause) {
            throw new RuntimeFailure("BULWARK_ERR_OUTPUT_WRITE", `cannot write the report (${(cause as Error).message}); --state ${JSON.stringify(opts.state)} is left as it was: the next run judges this window again`, { cause });
          }
          // Never past the time the log was read: an --until ahead of it covered sign-ins not yet made.
          await writeWindowState(opts.state, { until: Math.min(until, now), seq });
        }
        return code;
      }),
    );
  },
} satisfies CommandModule;
