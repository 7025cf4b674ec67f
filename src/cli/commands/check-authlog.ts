// `bulwark check authlog FILE...`: SSH brute force, logins that followed it and root logins, from
// syslog or journal auth logs (plain, gzip or zstd). --matches lists every counted failure; --format nft
// prints the offenders as nftables sets, leaving out loopback, the host's own addresses and --ignore'd ones.
import { availableParallelism, networkInterfaces } from "node:os";
import { Writable } from "node:stream";
import type { Command } from "commander";
import { InputError } from "../../lib/errors.ts";
import { systemClock } from "../../lib/clock.ts";
import { escapeControls } from "../../lib/terminal.ts";
import { addCheckOptions, finishCheck, type CheckOptions } from "../check-common.ts";
import type { CliContext, CommandModule } from "../context.ts";
import { action, collect, group, writeNote } from "../run.ts";
import { EXIT } from "../exit-codes.ts";

/** Failures listed in `--json --matches` (about 100 bytes each); the rest are counted in matchesOmitted. */
export const JSON_MATCHES = 100_000;

interface AuthlogOptions extends CheckOptions {
  maxRetry?: string;
  findTime?: string;
  sprayMin?: string;
  guessMin?: string;
  year?: string;
  utcOffset?: string;
  matches?: boolean;
  format?: string;
  ignore?: string[];
}

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new InputError("BULWARK_ERR_USAGE", `${name} must be a whole number, got "${value}"`);
  return Number(value);
}

function utcOffset(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(value);
  if (!m || Number(m[2]) > 14 || Number(m[3]) > 59) throw new InputError("BULWARK_ERR_USAGE", `--utc-offset must look like +01:00 or -0500, got "${value}"`);
  return (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
}

/**
 * The name `--matches` prints for `file` when several files are read (FILE:LINE<TAB>IP<TAB>KIND): scripts cut those
 * lines at tabs (`cut -f2 | xargs block-address`), and the files are often a glob over a directory others name files
 * in (logs collected from several hosts). A log named "x:1<TAB>192.0.2.1<TAB>failed-password<LF>…" forged a line
 * blocking an address that failed nowhere, and an OSC sequence in a name reached the terminal. Such a name is written
 * escaped (\x09…): every line keeps three fields, and the file's matches still reach the blocklist; refusing the run
 * instead let one planted name blind the check for every other host (test/session-twenty-red-team.test.ts). Each
 * such name is said once on stderr, since an escaped name cannot be told from one that holds those four characters.
 */
function matchesName(ctx: CliContext, file: string, shownNames: Map<string, string>): string {
  const known = shownNames.get(file); // once per file, not per line: --matches can print millions
  if (known !== undefined) return known;
  const shown = escapeControls(file);
  if (shown !== file) {
    writeNote(ctx, `bulwark: --matches: the file name "${shown}" has control, bidirectional or invisible characters; its lines name it escaped as shown (look at who named it so)`);
  }
  shownNames.set(file, shown);
  return shown;
}

/** Thrown from --matches' output once stdout has failed: ends the analysis (see `outputGone` below). */
const OUTPUT_GONE = new Error("standard output has failed");

/** A context whose stdout swallows output: findings are still recorded and decide the exit code. */
function quiet(ctx: CliContext): CliContext {
  return { ...ctx, stdout: new Writable({ write: (_chunk, _enc, done) => done() }) };
}

export default {
  register(program: Command, ctx: CliContext): void {
    const check = group(program, "check", "run a security check and print findings");
    addCheckOptions(
      check
        .command("authlog")
        .description(
          "find SSH brute force (fail2ban's sshd filter, aggressive mode), logins after it and root logins in auth logs " +
            "(syslog with or without facility/priority, rsyslog ISO, RFC 5424, journalctl -o short-iso, short-full, short-unix or json; plain, gzip or zstd; '-' reads stdin)",
        )
        // Any order: logins are judged again at the end against a brute force in any other file (by the stamps), so
        // /var/log/auth.log* (newest first, as the shell sorts it) is read right. Oldest first stays best for --year.
        .argument("<files...>", "log files in any order, e.g. /var/log/auth.log* (--year names the first file's year)")
        .option("--max-retry <n>", "failures that make an address an offender (fail2ban maxretry)", "5")
        .option("--find-time <duration>", "window for --max-retry: seconds, or 90s, 10m, 1h, 1d (fail2ban findtime)", "10m")
        // The slow rules, for attacks paced under --find-time (as `check logins --spray-min` judges a list at any pace).
        .option("--spray-min <n>", "a password login from an address that failed on this many different user names within 24 hours is suspect, at any pace", "20")
        .option("--guess-min <n>", "a password login by a user who took this many failures within 24 hours is suspect, at any pace", "20")
        .option("--year <yyyy>", "year of the first syslog time stamp (default: inferred from today)")
        .option("--utc-offset <+hh:mm>", "time zone of syslog stamps that carry none (default +00:00)")
        .option("--matches", "print one line per counted failure: LINE<TAB>IP<TAB>KIND (FILE:LINE with several files)")
        .option("--format <format>", "print the offenders in another format: nft (nftables sets for nft -f)")
        .option("--ignore <addr|cidr>", "never put this address or range into the --format nft sets (repeatable; loopback and this host's own addresses never are)", collect),
    ).action(
      action(ctx, async (files: string[], opts: AuthlogOptions) => {
        if (opts.format !== undefined && opts.format !== "nft") throw new InputError("BULWARK_ERR_USAGE", `--format must be "nft", got "${opts.format}"`);
        if (opts.format === "nft" && (opts.json || opts.matches)) throw new InputError("BULWARK_ERR_USAGE", "--format nft cannot be combined with --json or --matches");
        const lib = await import("../../checks/authlog/index.ts");
        // Built (and checked) before any file is read: a typo should not cost a pass over a large log.
        const ignore = new lib.IgnoreList(opts.ignore ?? [], lib.hostAddresses(networkInterfaces()));
        const several = files.length > 1;
        const shownNames = new Map<string, string>();
        // --json --matches holds them in memory until the document is written: at most JSON_MATCHES, the rest counted
        // (the plain --matches streams every one).
        const matches: Array<Record<string, unknown>> = [];
        let matchesOmitted = 0;
        // --matches can print millions of lines: batch them instead of one write per failure.
        let pending = "";
        // --matches' lines are this command's only product: once stdout fails (its reader went away, a full disk) the
        // analysis stops, since a failing stdout no longer ends a running command (src/cli/main.ts) and `-` may be a
        // followed log (`journalctl -f | bulwark check authlog --matches - | head`) that never ends on its own.
        let outputGone = false;
        if (opts.matches && !opts.json) ctx.stdout.once("error", () => (outputGone = true));
        const flush = (): void => {
          if (outputGone) throw OUTPUT_GONE;
          if (pending !== "") ctx.stdout.write(pending);
          pending = "";
        };
        const analyzer = new lib.AuthLogAnalyzer({
          referenceMs: systemClock.now(),
          maxRetry: integer("--max-retry", opts.maxRetry),
          findTimeMs: lib.parseDuration(opts.findTime ?? "10m"),
          sprayMin: integer("--spray-min", opts.sprayMin),
          guessMin: integer("--guess-min", opts.guessMin),
          year: integer("--year", opts.year),
          utcOffsetMinutes: utcOffset(opts.utcOffset),
          // With a second core, the lines are split and read in a worker thread while this one keeps the windows and
          // rules: the same findings (test/authlog-workers.test.ts), sooner (docs/checks.md, Measured).
          workers: availableParallelism() > 1,
          onFailure: !opts.matches
            ? undefined
            : opts.json
              ? (m) => {
                  if (matches.length >= JSON_MATCHES) matchesOmitted++;
                  else matches.push({ file: m.file, line: m.line, address: m.address, kind: m.kind, user: m.user === null ? null : lib.printable(m.user) });
                }
              : (m) => {
                  // Every field is plain text: the file name escaped (matchesName), the address a validated IP or host
                  // name (scanAddress) and the kind one of ours.
                  pending += `${several ? `${matchesName(ctx, m.file, shownNames)}:` : ""}${m.line}\t${m.address}\t${m.kind}\n`;
                  if (pending.length > 65_536) flush();
                },
        });
        try {
          for (const file of files) {
            // Corrupt or unreadable compressed data on stdin exits 2 naming "-", as it does for a file.
            if (file === "-") await lib.analyzeStream(analyzer, "-", ctx.stdin);
            else await lib.analyzeFile(analyzer, file);
          }
          flush();
        } catch (error) {
          // Stopped for a stdout that fails: nothing more can be told. main.ts keeps exit 0 for a reader that went
          // away (as `| head` expects) and makes it 3 for output lost otherwise.
          if (error === OUTPUT_GONE || (error as { cause?: unknown } | null)?.cause === OUTPUT_GONE) return EXIT.ok;
          throw error;
        }
        const result = analyzer.finish();
        const findings = lib.authLogFindings(result);
        const s = result.stats;
        const offenders = result.offenders.map((o) => o.address);
        if (opts.format === "nft") ctx.stdout.write(lib.renderNft(offenders, { ignore }));
        const summary = [
          `${s.lines} line(s) in ${s.files} file(s): ${s.sshdLines} from sshd, ${s.malformed} malformed, ${s.overlong} overlong`,
          `${s.failures} counted failure(s), ${s.successes} accepted login(s), ${result.offenders.length} offender(s) ` +
            `(${result.maxRetry} failures within ${lib.formatDuration(result.findTimeMs)})`,
        ];
        // Past the bound, a login was judged only against the files read before it: say so, even when nothing read
        // later was stamped before it (then no finding says it).
        if (s.loginsNotRejudged > 0 && s.files > 1) {
          summary.push(
            `${s.loginsNotRejudged} accepted login(s) past the first ${result.limits.logins} were matched only against the lines read before them; ` +
              "give the files oldest first to have every brute force read before the logins after it",
          );
        }
        const silent = !opts.json && (opts.matches || opts.format === "nft");
        return finishCheck(silent ? quiet(ctx) : ctx, opts, {
          check: "authlog",
          findings,
          summary,
          extra: {
            stats: s,
            maxRetry: result.maxRetry,
            findTimeSeconds: result.findTimeMs / 1000,
            sprayMin: result.sprayMin,
            guessMin: result.guessMin,
            offenders,
            ...(opts.matches ? { matches, matchesOmitted } : {}),
          },
        });
      }),
    );
  },
} satisfies CommandModule;

