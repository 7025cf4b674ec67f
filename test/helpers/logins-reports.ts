// What the check logins red-team files ask of a run and its report: the run over a window at the defaults, its worst
// severity, whether a session is named, the findings in one line; and their rows put in time order.
import type { Severity } from "../../src/checks/finding.ts";
import { checkLogins, DEFAULT_LOGINS_OPTIONS, type LoginsCheckOptions, type LoginsReport } from "../../src/checks/logins/index.ts";
import type { Database } from "../../src/store/database.ts";
import { signInRow, type AuditRow } from "./audit-rows.ts";

/** `check logins` over [since, until) at the defaults, `options` over them. */
export const runLogins = (database: Database, since: number, until: number, options: Partial<LoginsCheckOptions> = {}): Promise<LoginsReport> =>
  checkLogins(database, { since, until, ...DEFAULT_LOGINS_OPTIONS, ...options });

/** The most severe finding's severity, or "none". */
export const worst = (r: LoginsReport): Severity | "none" =>
  (["critical", "high", "medium", "low", "info"] as const).find((s) => r.findings.some((f) => f.severity === s)) ?? "none";

/** Whether some finding's evidence names `session`. */
export const names = (r: { findings: Array<{ evidence: unknown }> }, session: string): boolean =>
  r.findings.some((f) => JSON.stringify(f.evidence).includes(`"${session}"`));

/** The findings as [id, severity] pairs, in one line (for assertion messages). */
export const ids = (r: LoginsReport): string => JSON.stringify(r.findings.map((f) => [f.id, f.severity]));

/** `rows` sorted by time, in place: the order the login path writes them. */
export const byTime = (rows: AuditRow[]): AuditRow[] => rows.sort((a, b) => a.at - b.at);

/** The waves in one line: from, to, failed, and each bar it reached as [hours, at, failed] (for assertion messages). */
export const wavesLine = (r: LoginsReport): string =>
  JSON.stringify(r.waves.map((w) => [w.from, w.to, w.failed, w.bars.map((b) => [b.hours, b.at, b.failed])]));

/** A sign-in as `usr_<tag>` from a browser new to its account, no failure before it, in session `ses_<tag>`. */
export const wonRow = (tag: string, at: number): AuditRow =>
  signInRow(`usr_${tag}`, at, "172.30.9.9", { newDevice: true, failuresBefore: 0, session: `ses_${tag}` });

/** `n` failures in the 10 minutes from `at`, one per account and address (no other rule sees them). */
export const burstRows = (at: number, n: number, one: (at: number) => AuditRow): AuditRow[] =>
  Array.from({ length: n }, (_, j) => one(at + 10_000 + Math.floor((j * (9 * 60_000)) / n)));
