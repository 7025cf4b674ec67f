// Turns the analysis into Findings (ids are a public contract): authlog.brute-force per offender,
// authlog.user-brute-force per attacked user, authlog.success-after-failures (compromise suspected),
// authlog.root-login.
import { escapeControls } from "../../lib/terminal.ts";
import type { Finding } from "../finding.ts";
import { addressFamily } from "./address.ts";
import type { AuthLogResult, LineRef, SourceRecord, SuccessRecord, UserRecord } from "./types.ts";

/**
 * Log text is attacker-controlled: control characters would reach a terminal as escapes, so they
 * are written as \xNN, and long names are cut.
 *
 * @example
 * printable("a\u001b[2Jb"); // "a\\x1b[2Jb"
 */
export function printable(text: string): string {
  const clean = escapeControls(text);
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

function iso(ms: number): string | null {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

function where(ref: LineRef | null): string {
  return ref ? `${ref.file}:${ref.line}` : "?";
}

/**
 * A window in the largest whole unit, as --find-time takes it.
 *
 * @example
 * formatDuration(600_000); // "10m"
 */
export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

function offenderEvidence(s: SourceRecord): Record<string, unknown> {
  return {
    address: s.address,
    family: addressFamily(s.address),
    failures: s.failures,
    users: [...s.users].map(printable),
    usersTruncated: s.moreUsers,
    firstSeen: iso(s.firstMs),
    lastSeen: iso(s.lastMs),
    firstLine: s.first,
    lastLine: s.last,
    offenderSince: iso(s.offenderSinceMs),
    offenderSinceLine: s.offenderAt,
    bans: s.bans,
  };
}

function bruteForce(s: SourceRecord, result: AuthLogResult): Finding {
  const users = [...s.users].map(printable);
  const shown = users.slice(0, 5).join(", ") + (users.length > 5 || s.moreUsers ? ", ..." : "");
  return {
    id: "authlog.brute-force",
    severity: "medium",
    title: `SSH brute force from ${s.address}: ${s.failures} failures`,
    detail:
      `${s.failures} failed SSH logins from ${s.address} between ${iso(s.firstMs)} and ${iso(s.lastMs)} ` +
      `(${where(s.first)} to ${where(s.last)})` +
      (users.length > 0 ? `, user names tried: ${shown}` : "") +
      `. It reached ${result.maxRetry} failures within ${formatDuration(result.findTimeMs)} at ${iso(s.offenderSinceMs)}.`,
    evidence: offenderEvidence(s),
    remediation:
      "Block the address (bulwark check authlog FILE --format nft > offenders.nft; nft -f offenders.nft), run fail2ban or " +
      "sshguard, and turn PasswordAuthentication off in favour of keys.",
  };
}

/**
 * A user attacked from anywhere: a botnet that spreads its guesses over hundreds of addresses keeps
 * every address under the per-address threshold, yet the account took maxRetry failures within the
 * window (seed 001: root, five hours). Reported whether or not a login followed.
 */
function userBruteForce(u: UserRecord, result: AuthLogResult): Finding {
  const user = printable(u.user);
  const sources = `${u.sources.size}${u.moreSources ? "+" : ""}`;
  return {
    id: "authlog.user-brute-force",
    severity: "medium",
    title: `SSH brute force against user ${user}: ${u.failures} failures from ${sources} address(es)`,
    detail:
      `${u.failures} failed SSH logins for ${user} from ${sources} address(es); ${result.maxRetry} failures within ` +
      `${formatDuration(result.findTimeMs)} were first reached at ${iso(u.attackFirstMs)} (${where(u.firstAttackAt)}), last at ${iso(u.attackLastMs)}. ` +
      "Blocking single addresses does not stop an attack spread over many.",
    evidence: {
      user,
      failures: u.failures,
      firstAttack: iso(u.attackFirstMs),
      lastAttack: iso(u.attackLastMs),
      firstAttackLine: u.firstAttackAt,
      sources: [...u.sources],
      sourcesTruncated: u.moreSources,
    },
    remediation:
      `Make sure ${user} cannot log in with a password (PasswordAuthentication no, PermitRootLogin no or prohibit-password; ` +
      "bulwark check ssh), check that no login for it followed, and rate-limit SSH (MaxStartups, a firewall limit).",
  };
}

function compromise(r: SuccessRecord): Finding {
  const reasons: string[] = [];
  if (r.offender) reasons.push(`${r.address} had already failed ${r.offender.failures} times (offender since ${iso(r.offender.offenderSinceMs)})`);
  if (r.targetedUser) {
    const u = r.targetedUser;
    reasons.push(`${printable(r.user)} was brute-forced from ${iso(u.attackFirstMs)} to ${iso(u.attackLastMs)} (${u.attackFailures} failures from ${u.sources.size}${u.moreSources ? "+" : ""} addresses)`);
  }
  return {
    id: "authlog.success-after-failures",
    severity: "critical",
    title: `Compromise suspected: ${printable(r.user)} logged in from ${r.address} after a brute force`,
    detail: `Accepted ${r.method} for ${printable(r.user)} from ${r.address} at ${iso(r.timeMs)} (${where(r)}); ${reasons.join("; ")}.` + (r.repeats > 0 ? ` ${r.repeats} more login(s) followed.` : ""),
    evidence: {
      address: r.address,
      user: printable(r.user),
      method: r.method,
      at: iso(r.timeMs),
      line: { file: r.file, line: r.line },
      laterLogins: r.repeats,
      offender: r.offender ? offenderEvidence(r.offender) : null,
      targetedUser: r.targetedUser
        ? {
            failures: r.targetedUser.attackFailures,
            firstAttack: iso(r.targetedUser.attackFirstMs),
            lastAttack: iso(r.targetedUser.attackLastMs),
            firstAttackLine: r.targetedUser.firstAttackAt,
            sources: [...r.targetedUser.sources],
            sourcesTruncated: r.targetedUser.moreSources,
          }
        : null,
    },
    remediation:
      "Treat the host as compromised: isolate it, open an incident, rotate every secret stored on it (SSH keys, " +
      "tokens, OAuth secrets), check authorized_keys, cron and running processes, and rebuild from a trusted image.",
  };
}

function rootLogin(logins: SuccessRecord[], total: number, byPassword: boolean): Finding {
  const addresses = [...new Set(logins.map((l) => l.address))];
  const methods = [...new Set(logins.map((l) => l.method))];
  const first = logins[0];
  const last = logins[logins.length - 1];
  return {
    id: "authlog.root-login",
    severity: byPassword ? "high" : "medium",
    title: byPassword ? `root logged in over SSH with a password (${total} login(s))` : `root logged in over SSH (${total} login(s))`,
    detail: `Accepted ${methods.join("/")} for root from ${addresses.slice(0, 10).join(", ")}${addresses.length > 10 ? ", ..." : ""}, first at ${iso(first?.timeMs ?? Number.NaN)} (${where(first ?? null)}), last at ${iso(last?.timeMs ?? Number.NaN)}.`,
    evidence: {
      logins: total,
      methods,
      addresses: addresses.slice(0, 50),
      addressesTruncated: addresses.length > 50,
      first: iso(first?.timeMs ?? Number.NaN),
      last: iso(last?.timeMs ?? Number.NaN),
      lines: logins.slice(0, 50).map((l) => ({ file: l.file, line: l.line })),
    },
    remediation: byPassword
      ? "Set PermitRootLogin no (or prohibit-password) and PasswordAuthentication no; log in as a named user and use sudo."
      : "Set PermitRootLogin no and log in as a named user with sudo, so actions are attributable.",
  };
}

/** Methods where a guessable secret was typed: what a brute force can win. */
export function isPasswordMethod(method: string): boolean {
  return method === "password" || method.startsWith("keyboard-interactive");
}

/**
 * Builds the findings of an auth-log analysis.
 *
 * @example
 * const findings = authLogFindings(analyzer.finish());
 */
export function authLogFindings(result: AuthLogResult): Finding[] {
  const findings: Finding[] = result.compromises.map(compromise);
  const byPassword = result.rootLogins.filter((l) => isPasswordMethod(l.method));
  const byKey = result.rootLogins.filter((l) => !isPasswordMethod(l.method));
  // Only a sample of root logins is kept for evidence; the totals come from the counters.
  const s = result.stats;
  if (s.rootPasswordLogins > 0) findings.push(rootLogin(byPassword, s.rootPasswordLogins, true));
  if (s.rootLogins > s.rootPasswordLogins) findings.push(rootLogin(byKey, s.rootLogins - s.rootPasswordLogins, false));
  for (const s of result.offenders) findings.push(bruteForce(s, result));
  for (const u of result.attackedUsers) findings.push(userBruteForce(u, result));
  return findings;
}
