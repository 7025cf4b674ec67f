// What every `bulwark check NAME` shares: --json, --fail-on, --record, human output of findings,
// and the exit code (1 when a finding is at or above --fail-on).
import type { Command } from "commander";
import { atLeast, isSeverity, sortFindings, type Finding, type Severity } from "../checks/finding.ts";
import { InputError } from "../lib/errors.ts";
import type { CliContext } from "./context.ts";
import { EXIT, type ExitCode } from "./exit-codes.ts";
import { writeJSON, writeLine } from "./run.ts";

export interface CheckOptions {
  json?: boolean;
  failOn?: string;
  record?: boolean;
}

/** Adds the options every check shares. Default --fail-on is "high". */
export function addCheckOptions(cmd: Command): Command {
  return cmd
    .option("--json", "print machine-readable JSON on stdout")
    .option("--fail-on <severity>", "exit 1 when a finding is at or above this severity (critical|high|medium|low|info|none)", "high")
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
  if (!isSeverity(v)) throw new InputError("BULWARK_ERR_USAGE", `--fail-on must be one of critical, high, medium, low, info, none; got "${value}"`);
  return v;
}

/** Prints the result (human or JSON), records it when asked, and returns the exit code. */
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
    for (const line of result.summary ?? []) writeLine(ctx, line);
    if (findings.length === 0) writeLine(ctx, `${result.check}: no findings`);
    for (const f of findings) {
      writeLine(ctx, `[${f.severity.toUpperCase()}] ${f.id}: ${f.title}`);
      if (f.detail) writeLine(ctx, `    ${f.detail}`);
      if (f.remediation) writeLine(ctx, `    fix: ${f.remediation}`);
    }
  }
  if (failOn === "none") return EXIT.ok;
  return findings.some((f) => atLeast(f.severity, failOn)) ? EXIT.fails : EXIT.ok;
}
