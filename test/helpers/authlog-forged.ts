// Lines and runs for the red-team tests of `check authlog`'s keys logged out of time order (rounds 40 and 40b): sshd's
// failure and login lines with BSD or RFC 3339 stamps, read on 7 December 2026 at noon UTC, and what a run reports.
import { AuthLogAnalyzer } from "../../src/checks/authlog/analyzer.ts";
import { authLogFindings } from "../../src/checks/authlog/findings.ts";
import { analyzeLines } from "../../src/checks/authlog/test-helpers.ts";
import type { AuthLogOptions, AuthLogResult } from "../../src/checks/authlog/types.ts";

/** The log is read on 7 December 2026 at noon UTC. */
export const REF = Date.UTC(2026, 11, 7, 12);
export const ATTACKER = "203.0.113.66";
export const ADMIN = "192.0.2.10";
/** The burst: 6 December 03:00 UTC. */
export const B0 = Date.UTC(2026, 11, 6, 3);
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** BSD syslog stamp ("Dec  6 03:00:00") of epoch ms, in UTC. */
export function bsd(ms: number): string {
  const d = new Date(ms);
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
}
export const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(".000Z", "Z");
export const fail = (stamp: string, address: string, user: string, pid: number): string => `${stamp} web sshd[${pid}]: Failed password for ${user} from ${address} port ${40000 + (pid % 20000)} ssh2`;
export const accept = (stamp: string, address: string, user: string, method = "password"): string => `${stamp} web sshd[950]: Accepted ${method} for ${user} from ${address} port 41000 ssh2`;

export const findingIds = (r: AuthLogResult): string[] => authLogFindings(r).map((f) => `${f.id}/${f.severity}`);
/** One file's lines, analysed as read at REF. */
export const one = (lines: readonly string[], options: Partial<AuthLogOptions> = {}): AuthLogResult => analyzeLines(lines, { referenceMs: REF, utcOffsetMinutes: 0, ...options });
/** Files read in the order given, as `check authlog FILE…` reads them. */
export function run(files: ReadonlyArray<readonly [string, readonly string[]]>, options: Partial<AuthLogOptions> = {}): AuthLogResult {
  const a = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0, ...options });
  for (const [name, lines] of files) {
    a.beginFile(name);
    lines.forEach((l, i) => a.line(l, i + 1));
  }
  return a.finish();
}
export const critical = (r: AuthLogResult): boolean => findingIds(r).includes("authlog.success-after-failures/critical");
export const incomplete = (r: AuthLogResult) => authLogFindings(r).filter((f) => f.id === "authlog.analysis-incomplete");
/** What a run reports, for comparing two runs. */
export const summary = (r: AuthLogResult) => ({
  offenders: r.offenders.map((o) => [o.address, o.bans, o.offenderSinceMs]),
  users: r.attackedUsers.map((u) => [u.user, u.attackFirstMs, u.attackLastMs]),
  compromises: r.compromises.map((c) => [c.address, c.user, c.timeMs, c.offender !== null, c.targetedUser !== null]),
  findings: findingIds(r).sort(),
});
