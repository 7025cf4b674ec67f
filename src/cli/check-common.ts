// What every `bulwark check NAME` shares: --json, --fail-on, --record, human output of findings,
// and the exit code (1 when a finding is at or above --fail-on).
import { InvalidArgumentError, type Command } from "commander";
import { atLeast, isSeverity, sortFindings, type Finding, type Severity } from "../checks/finding.ts";
import { InputError } from "../lib/errors.ts";
import { escapeControls } from "../lib/terminal.ts";
import type { CliContext } from "./context.ts";
import { EXIT, type ExitCode } from "./exit-codes.ts";
import { writeJSON, writeLine } from "./run.ts";

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * A byte count as given to --max-file-bytes / --max-scan-bytes (check files, check downloads): digits and an optional
 * K, M, G or T (powers of 1024); undefined when the option was not given. Exit 2 naming the option otherwise.
 *
 * @example
 * parseBytes("--max-file-bytes", "4G"); // 4294967296
 */
export function parseBytes(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,16})([KMGT]?)$/i.exec(value);
  const n = m ? Number(m[1]) * (UNITS[(m[2] as string).toUpperCase()] as number) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw new InputError("BULWARK_ERR_USAGE", `${option} must be a number of bytes, optionally followed by K, M, G or T (e.g. 4G), got "${value.slice(0, 20)}"`);
  }
  return n;
}

export interface CheckOptions {
  json?: boolean;
  failOn?: string;
  record?: boolean;
}

const FAIL_ON = "critical, high, medium, low, info, none";

/**
 * Checks --fail-on as commander reads it, before the action runs: a typo must not cost a scan of a whole
 * tree or a 2 GB log, nor leave a baseline written behind an exit 2 (a retry would then be refused).
 */
function failOnOption(value: string): string {
  // A blank value is left to guardOptions, so it gets the message every other option gets for one.
  if (value.trim() === "") return value;
  const v = value.toLowerCase();
  if (v !== "none" && !isSeverity(v)) throw new InvalidArgumentError(`It must be one of ${FAIL_ON}.`);
  return v;
}

/** Adds the options every check shares. Default --fail-on is "high". */
export function addCheckOptions(cmd: Command): Command {
  return cmd
    .option("--json", "print machine-readable JSON on stdout")
    .option("--fail-on <severity>", "exit 1 when a finding is at or above this severity (critical|high|medium|low|info|none)", failOnOption, "high")
    .option("--record", "store this run and its findings in the database for history");
}

export interface CheckResult {
  /** Check name, e.g. "ssh". */
  check: string;
  findings: Finding[];
  /** Extra top-level JSON members printed beside "findings" (e.g. ssh's "effective"). */
  extra?: Record<string, unknown>;
  /** Lines printed before the findings in human output. */
  summary?: string[];
}

function parseFailOn(value: string | undefined): Severity | "none" {
  const v = (value ?? "high").toLowerCase();
  if (v === "none") return "none";
  if (!isSeverity(v)) throw new InputError("BULWARK_ERR_USAGE", `--fail-on must be one of ${FAIL_ON}; got "${value}"`);
  return v;
}

/**
 * Prints the result (human or JSON), records it when asked, and returns the exit code. Titles, details,
 * remediations and summary lines quote what the check read (a Match value, a file name, a log field): in human
 * output their control characters are written as \xNN (escapeControls), so a hostile input cannot erase or
 * forge a finding on the operator's terminal. JSON output escapes them as JSON does, C1 included (writeJSON).
 */
export async function finishCheck(ctx: CliContext, opts: CheckOptions, result: CheckResult): Promise<ExitCode> {
  const failOn = parseFailOn(opts.failOn);
  const findings = sortFindings(result.findings);
  if (opts.record) {
    const app = await ctx.app();
    await app.checkRuns.record({ check: result.check, findings, extra: result.extra ?? {} });
  }
  if (opts.json) {
    writeJSON(ctx, { ...(result.extra ?? {}), findings });
  } else {
    for (const line of result.summary ?? []) writeLine(ctx, escapeControls(line));
    if (findings.length === 0) writeLine(ctx, `${result.check}: no findings`);
    for (const f of findings) {
      writeLine(ctx, `[${f.severity.toUpperCase()}] ${escapeControls(f.id)}: ${escapeControls(f.title)}`);
      if (f.detail) writeLine(ctx, `    ${escapeControls(f.detail)}`);
      if (f.remediation) writeLine(ctx, `    fix: ${escapeControls(f.remediation)}`);
    }
  }
  if (failOn === "none") return EXIT.ok;
  return findings.some((f) => atLeast(f.severity, failOn)) ? EXIT.fails : EXIT.ok;
}
