// Turns the analysis into Findings (ids are a public contract): authlog.success-after-failures
// (compromise suspected, the first 20 one by one), authlog.success-after-slow-failures (likewise, for
// attacks paced under --find-time), authlog.analysis-incomplete, authlog.log-not-read, authlog.root-login, and one
// authlog.brute-force and one authlog.user-brute-force grouping every offender and attacked user, and
// authlog.untrusted-entries (journal entries that claim to be sshd's, written by another process).
// Output stays bounded however many addresses a log holds.
import { isoOrNull as iso } from "../../lib/calendar.ts";
import { escapeControls } from "../../lib/terminal.ts";
import type { Finding } from "../finding.ts";
import { addressFamily, ipv6GroupOf } from "./address.ts";
import { NFT_NETS_SET } from "./nft.ts";
import type { AuthLogResult, LineRef, RootLoginSample, SlowEvidence, SourceRecord, SuccessRecord, UserRecord } from "./types.ts";
import { notReadFinding } from "./unread-files.ts";

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
    ...sourceCounts(s),
    firstSeen: iso(s.firstMs),
    lastSeen: iso(s.lastMs),
    firstLine: s.first,
    lastLine: s.last,
    offenderSince: iso(s.offenderSinceMs),
    offenderSinceLine: s.offenderAt,
    bans: s.bans,
    ...prefixMembers(s),
  };
}

/** What every finding about an address (or an IPv6 /64) says of its failures: its family, count and the names tried. */
function sourceCounts(s: SourceRecord): { family: number; failures: number; users: string[]; usersTruncated: boolean } {
  return { family: addressFamily(s.address), failures: s.failures, users: [...s.users].map(printable), usersTruncated: s.moreUsers };
}

/** An IPv6 /64: the addresses in it that failed (nothing for a single address). */
function prefixMembers(s: SourceRecord): { addresses?: string[]; addressesTruncated?: boolean } {
  return s.members === null ? {} : { addresses: [...s.members], addressesTruncated: s.moreMembers };
}

/** "203.0.113.9", or for a /64 "12 addresses in the IPv6 /64 2001:db8:1:2::/64". */
function source(s: SourceRecord): string {
  return s.members === null ? s.address : `${s.members.size}${s.moreMembers ? "+" : ""} addresses in the IPv6 /64 ${s.address}`;
}

/**
 * Failures of all offenders, each counted once: a /64 is listed beside the addresses in it that offended on their
 * own, and its count includes theirs.
 */
function totalFailures(offenders: readonly SourceRecord[]): number {
  const inPrefix = new Map<string, number>();
  let total = 0;
  for (const o of offenders) {
    if (o.members !== null) continue;
    total += o.failures;
    // A link-local or NAT64 address is in no /64 record (ipv6GroupOf).
    const p = addressFamily(o.address) === 6 ? ipv6GroupOf(o.address) : null;
    if (p !== null) inPrefix.set(p, (inPrefix.get(p) ?? 0) + o.failures);
  }
  for (const o of offenders) if (o.members !== null) total += Math.max(0, o.failures - (inPrefix.get(o.address) ?? 0));
  return total;
}

/** Offenders, users and logins listed in a grouped finding's evidence; the rest are counted in `omitted`. */
export const EVIDENCE_LIMIT = 100;
/** Suspect logins reported as findings of their own; later ones are grouped into one more finding. */
export const COMPROMISE_FINDINGS = 20;
/** Names quoted in a finding's one-line detail (human output); the evidence has up to EVIDENCE_LIMIT. */
const DETAIL_NAMES = 5;

function more(count: number, shown: number): string {
  return count > shown ? `; and ${count - shown} more (all counted in --json evidence, first ${EVIDENCE_LIMIT} listed)` : "";
}

/**
 * Every offending address in one finding, most failures first: a botnet of 450,000 addresses is one
 * finding listing 100 of them, not 450,000 findings (whose JSON no longer fits in a string).
 * `--format nft` and the `offenders` member of --json still give every address.
 */
function bruteForce(offenders: SourceRecord[], result: AuthLogResult): Finding {
  const s = offenders[0] as SourceRecord;
  const total = totalFailures(offenders);
  const users = [...s.users].map(printable);
  const shown = users.slice(0, 5).join(", ") + (users.length > 5 || s.moreUsers ? ", ..." : "");
  const window = `${result.maxRetry} failures within ${formatDuration(result.findTimeMs)}`;
  const one =
    `${s.failures} failed SSH logins from ${source(s)} between ${iso(s.firstMs)} and ${iso(s.lastMs)} ` +
    `(${where(s.first)} to ${where(s.last)})` +
    (users.length > 0 ? `, user names tried: ${shown}` : "") +
    `. It reached ${window} at ${iso(s.offenderSinceMs)}.`;
  const others = offenders.slice(1, DETAIL_NAMES).map((o) => `${o.address} (${o.failures})`);
  return {
    id: "authlog.brute-force",
    severity: "medium",
    title: offenders.length === 1 ? `SSH brute force from ${s.address}: ${s.failures} failures` : `SSH brute force from ${s.address} and ${offenders.length - 1} other address(es): ${total} failures`,
    detail:
      offenders.length === 1
        ? one
        : `${offenders.length} ${offenders.some((o) => o.members !== null) ? "addresses and IPv6 /64s" : "addresses"} each reached ${window}, ${total} failed SSH logins in all. The most active: ${one} ` +
          `Next: ${others.join(", ")}${more(offenders.length, DETAIL_NAMES)}.`,
    evidence: {
      count: offenders.length,
      failures: total,
      offenders: offenders.slice(0, EVIDENCE_LIMIT).map(offenderEvidence),
      omitted: Math.max(0, offenders.length - EVIDENCE_LIMIT),
    },
    remediation:
      "Block the addresses (bulwark check authlog FILE --format nft > offenders.nft; nft -f offenders.nft), run fail2ban or " +
      "sshguard, and turn PasswordAuthentication off in favour of keys." +
      (offenders.some((o) => o.members !== null) ? ` The IPv6 /64s go into the set ${NFT_NETS_SET}, which needs a rule of its own (ip6 saddr @${NFT_NETS_SET} tcp dport 22 drop).` : ""),
  };
}

function userEvidence(u: UserRecord): Record<string, unknown> {
  return {
    user: printable(u.user),
    failures: u.failures,
    firstAttack: iso(u.attackFirstMs),
    lastAttack: iso(u.attackLastMs),
    firstAttackLine: u.firstAttackAt,
    sources: [...u.sources],
    sourcesTruncated: u.moreSources,
  };
}

/**
 * Users attacked from anywhere: a botnet that spreads its guesses over hundreds of addresses keeps
 * every address under the per-address threshold, yet the account took maxRetry failures within the
 * window (seed 001: root, five hours). Reported whether or not a login followed; all such users in
 * one finding, most failures first.
 */
function userBruteForce(attacked: UserRecord[], result: AuthLogResult): Finding {
  const u = attacked[0] as UserRecord;
  const user = printable(u.user);
  const total = attacked.reduce((n, a) => n + a.failures, 0);
  const sources = `${u.sources.size}${u.moreSources ? "+" : ""}`;
  const one =
    `${u.failures} failed SSH logins for ${user} from ${sources} address(es); ${result.maxRetry} failures within ` +
    `${formatDuration(result.findTimeMs)} were first reached at ${iso(u.attackFirstMs)} (${where(u.firstAttackAt)}), last at ${iso(u.attackLastMs)}.`;
  const others = attacked.slice(1, DETAIL_NAMES).map((a) => `${printable(a.user)} (${a.failures})`);
  const names = attacked.length === 1 ? user : "these users";
  return {
    id: "authlog.user-brute-force",
    severity: "medium",
    title:
      attacked.length === 1
        ? `SSH brute force against user ${user}: ${u.failures} failures from ${sources} address(es)`
        : `SSH brute force against user ${user} and ${attacked.length - 1} other user(s): ${total} failures`,
    detail:
      (attacked.length === 1 ? one : `${attacked.length} users were brute-forced, ${total} failures in all. The most attacked: ${one} Next: ${others.join(", ")}${more(attacked.length, DETAIL_NAMES)}.`) +
      " Blocking single addresses does not stop an attack spread over many.",
    evidence: {
      count: attacked.length,
      failures: total,
      users: attacked.slice(0, EVIDENCE_LIMIT).map(userEvidence),
      omitted: Math.max(0, attacked.length - EVIDENCE_LIMIT),
    },
    remediation:
      `Make sure ${names} cannot log in with a password (PasswordAuthentication no, PermitRootLogin no or prohibit-password; ` +
      "bulwark check ssh), check that no login followed, and rate-limit SSH (MaxStartups, a firewall limit).",
  };
}

const COMPROMISE_REMEDIATION =
  "Treat the host as compromised: isolate it, open an incident, rotate every secret stored on it (SSH keys, " +
  "tokens, OAuth secrets), check authorized_keys, cron and running processes, and rebuild from a trusted image.";

function compromise(r: SuccessRecord, result: AuthLogResult): Finding {
  const reasons: string[] = [];
  const o = r.offender;
  if (o) {
    const who = o.members === null ? r.address : `${r.address} lies in the IPv6 /64 ${o.address}, whose ${o.members.size}${o.moreMembers ? "+" : ""} addresses`;
    reasons.push(`${who} had already failed ${o.failures} times (offender since ${iso(o.offenderSinceMs)})`);
  }
  if (r.targetedUser) {
    const u = r.targetedUser;
    reasons.push(`${printable(r.user)} was brute-forced from ${iso(u.attackFirstMs)} to ${iso(u.attackLastMs)} (${u.attackFailures} failures from ${u.sources.size}${u.moreSources ? "+" : ""} addresses)`);
  }
  // A pair first suspect by the slow rules, raised by a brute force found at the second look: both are said.
  reasons.push(...slowReasons(r, result));
  // The method is the token sshd logged after "Accepted": anyone who can write to syslog (logger)
  // chooses it, so it is escaped like the user name.
  const method = printable(r.method);
  return {
    id: "authlog.success-after-failures",
    severity: "critical",
    title: `Compromise suspected: ${printable(r.user)} logged in from ${r.address} after a brute force`,
    detail: `Accepted ${method} for ${printable(r.user)} from ${r.address} at ${iso(r.timeMs)} (${where(r)}); ${reasons.join("; ")}.` + (r.repeats > 0 ? ` ${r.repeats} more login(s) followed.` : ""),
    evidence: {
      ...loginEvidence(r),
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
    remediation: COMPROMISE_REMEDIATION,
  };
}

/** The compromise window as a reader says it: "24 hours" rather than "1d". */
function windowText(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000} hour${ms === 3_600_000 ? "" : "s"}` : formatDuration(ms);
}

/** Why a login is suspect by the slow rules, one sentence part per rule met. */
function slowReasons(r: SuccessRecord, result: AuthLogResult): string[] {
  const within = windowText(result.compromiseWindowMs);
  const reasons: string[] = [];
  const sp = r.sprayer;
  if (sp) {
    const o = sp.record;
    const who = o.members === null ? r.address : `${r.address} lies in the IPv6 /64 ${o.address}, which`;
    const names = [...o.users].slice(0, DETAIL_NAMES).map(printable).join(", ") + (o.users.size > DETAIL_NAMES || o.moreUsers ? ", ..." : "");
    reasons.push(
      `${who} had failed on ${result.sprayMin} or more different user names within ${within} (first at ${iso(sp.run.firstMs)}, ${where(sp.run.firstAt)}; ` +
        `last at ${iso(sp.run.lastMs)}), ${o.failures} failures in all${names === "" ? "" : ` (${names})`}: password spraying`,
    );
  }
  const g = r.guessedUser;
  if (g) {
    const u = g.record;
    reasons.push(
      `${printable(r.user)} had taken ${result.guessMin} or more failed logins within ${within} (first at ${iso(g.run.firstMs)}, ${where(g.run.firstAt)}; ` +
        `last at ${iso(g.run.lastMs)}), ${u.failures} in all from ${u.sources.size}${u.moreSources ? "+" : ""} address(es): password guessing`,
    );
  }
  return reasons;
}

function sprayerEvidence(e: SlowEvidence<SourceRecord>): Record<string, unknown> {
  const o = e.record;
  return {
    source: o.address,
    ...sourceCounts(o),
    firstReached: iso(e.run.firstMs),
    firstReachedLine: e.run.firstAt,
    lastReached: iso(e.run.lastMs),
    ...prefixMembers(o),
  };
}

function guessedEvidence(e: SlowEvidence<UserRecord>): Record<string, unknown> {
  const u = e.record;
  return {
    failures: u.failures,
    firstReached: iso(e.run.firstMs),
    firstReachedLine: e.run.firstAt,
    lastReached: iso(e.run.lastMs),
    sources: [...u.sources],
    sourcesTruncated: u.moreSources,
  };
}

const SLOW_REMEDIATION =
  "Ask the account's owner whether the login was theirs; if not, treat the host as compromised: isolate it, rotate " +
  "every secret stored on it, check authorized_keys, cron and running processes, and rebuild from a trusted image. " +
  "Either way turn PasswordAuthentication off in favour of keys: a campaign paced under every ban keeps trying.";

/** What every compromise finding says of the login it reports: where from, as whom, how, when, and where it was read. */
function loginEvidence(r: SuccessRecord) {
  return { address: r.address, user: printable(r.user), method: printable(r.method), at: iso(r.timeMs), line: { file: r.file, line: r.line }, laterLogins: r.repeats };
}

/**
 * A password login after an attack paced under --find-time, which fail2ban (and the brute-force rules) never see: from
 * an address that worked through many user names (spraying), or by a user who took many failures from anywhere
 * (guessing), within the compromise window. High, not critical: a NAT shared by many, or an owner's own login during a
 * background trickle of guesses at a common name, can meet them too; `check logins` rates the same shapes high.
 */
function slowCompromise(r: SuccessRecord, result: AuthLogResult): Finding {
  const method = printable(r.method);
  const what = r.sprayer && r.guessedUser ? "password spraying and guessing" : r.sprayer ? "password spraying" : "password guessing";
  return {
    id: "authlog.success-after-slow-failures",
    severity: "high",
    title: `Compromise suspected: ${printable(r.user)} logged in by password from ${r.address} after slow ${what}`,
    detail:
      `Accepted ${method} for ${printable(r.user)} from ${r.address} at ${iso(r.timeMs)} (${where(r)}); ${slowReasons(r, result).join("; ")}.` +
      (r.repeats > 0 ? ` ${r.repeats} more login(s) followed.` : ""),
    evidence: {
      ...loginEvidence(r),
      sprayer: r.sprayer ? sprayerEvidence(r.sprayer) : null,
      guessedUser: r.guessedUser ? guessedEvidence(r.guessedUser) : null,
      sprayMin: result.sprayMin,
      guessMin: result.guessMin,
      windowSeconds: result.compromiseWindowMs / 1000,
    },
    remediation: SLOW_REMEDIATION,
  };
}

/** The slow-rule logins past the first COMPROMISE_FINDINGS, in one finding of the same id and severity. */
function moreSlowCompromises(rest: SuccessRecord[], untracked: number, result: AuthLogResult): Finding {
  const count = rest.length + untracked;
  const listed = rest.slice(0, EVIDENCE_LIMIT);
  const shown = listed.slice(0, DETAIL_NAMES).map((r) => `${printable(r.user)} from ${r.address} at ${iso(r.timeMs)} (${where(r)})`);
  return {
    id: "authlog.success-after-slow-failures",
    severity: "high",
    title: `Compromise suspected: ${count} more password login(s) after slow spraying or guessing`,
    detail:
      `Beyond the ${COMPROMISE_FINDINGS} reported one by one, ${count} more password logins came from an address that had failed on ${result.sprayMin} or more ` +
      `user names, or for a user who had taken ${result.guessMin} or more failures, within ${windowText(result.compromiseWindowMs)}` +
      (shown.length > 0 ? `: ${shown.join("; ")}${more(count, shown.length)}.` : ".") +
      (untracked > 0 ? ` ${untracked} of them were counted but not kept (1,000 address/user pairs were).` : ""),
    evidence: {
      count,
      logins: listed.map((r) => ({
        ...loginEvidence(r), spraying: r.sprayer !== null, guessing: r.guessedUser !== null,
      })),
      omitted: count - listed.length,
    },
    remediation: SLOW_REMEDIATION,
  };
}

/**
 * The suspect logins past the first COMPROMISE_FINDINGS, in one finding of the same id and severity:
 * each is as serious, but tens of thousands of findings would bury the first ones (and the JSON).
 */
function moreCompromises(rest: SuccessRecord[], untracked: number): Finding {
  const count = rest.length + untracked;
  const listed = rest.slice(0, EVIDENCE_LIMIT);
  const shown = listed.slice(0, DETAIL_NAMES).map((r) => `${printable(r.user)} from ${r.address} at ${iso(r.timeMs)} (${where(r)})`);
  return {
    id: "authlog.success-after-failures",
    severity: "critical",
    title: `Compromise suspected: ${count} more login(s) after a brute force`,
    detail:
      `Beyond the ${COMPROMISE_FINDINGS} reported one by one, ${count} more logins came from an offending address or for a brute-forced user` +
      (shown.length > 0 ? `: ${shown.join("; ")}${more(count, shown.length)}.` : ".") +
      (untracked > 0 ? ` ${untracked} of them were counted but not kept (1,000 address/user pairs were).` : ""),
    evidence: {
      count,
      logins: listed.map(loginEvidence),
      omitted: count - listed.length,
    },
    remediation: COMPROMISE_REMEDIATION,
  };
}

/**
 * The tables were full of addresses or users active within --find-time (or offending), so failures
 * from new ones went uncounted; or more accepted logins than are kept came before a brute force read
 * in a later file (files given newest first). An attack, or a login after one, could be missing, and a
 * clean report must not be read as "no attack". High, so the default --fail-on fails the run.
 */
function incomplete(result: AuthLogResult): Finding {
  const s = result.stats;
  const window = formatDuration(result.findTimeMs);
  const untracked = s.untrackedSources + s.untrackedUsers + s.untrackedPrefixes;
  const logins =
    `${s.loginsNotRejudged} accepted login(s) past the ${result.limits.logins} kept were judged only against the lines read before them, ` +
    "and a brute force read later is stamped before some of them: a login after it may be missing from these findings. " +
    "Give the files oldest first (auth.log.1 auth.log), so that every brute force is read before the logins that follow it.";
  if (untracked === 0) {
    return {
      id: "authlog.analysis-incomplete",
      severity: "high",
      title: `Analysis incomplete: ${s.loginsNotRejudged} login(s) could not be matched against a brute force read after them`,
      detail: logins,
      evidence: { loginsNotRejudged: s.loginsNotRejudged, loginLimit: result.limits.logins },
      remediation: "Give the files oldest first, or analyse fewer files at a time.",
    };
  }
  return {
    id: "authlog.analysis-incomplete",
    severity: "high",
    title: `Analysis incomplete: ${untracked} failure(s) could not be tracked; attacks may be missing`,
    detail:
      `More than ${result.limits.sources} addresses or ${result.limits.users} user names were active within ${window} of each other or had become offenders, ` +
      `so ${s.untrackedSources} failure(s) from further addresses and ${s.untrackedUsers} for further user names were not tracked: a brute force, or a login after one, ` +
      `among them may be missing from these findings.` +
      (s.untrackedPrefixes > 0 ? ` ${s.untrackedPrefixes} failure(s) from tracked IPv6 addresses were not counted for their /64, whose table was as full.` : "") +
      ` (${s.evictedSources} address(es) and ${s.evictedUsers} user name(s) idle for longer than ${window} were forgotten to make room, as intended.)` +
      (s.loginsNotRejudgedMatter ? ` Also: ${logins}` : ""),
    evidence: {
      untrackedSourceFailures: s.untrackedSources,
      untrackedUserFailures: s.untrackedUsers,
      untrackedPrefixFailures: s.untrackedPrefixes,
      sourceLimit: result.limits.sources,
      userLimit: result.limits.users,
      evictedSources: s.evictedSources,
      evictedUsers: s.evictedUsers,
      ...(s.loginsNotRejudgedMatter ? { loginsNotRejudged: s.loginsNotRejudged, loginLimit: result.limits.logins } : {}),
      offenders: result.offenders.length,
      attackedUsers: result.attackedUsers.length,
    },
    remediation:
      "Analyse the log in smaller time slices (per day or per hour) so each stays under the limits; treat this many active " +
      "addresses as a large distributed attack in itself: rate-limit SSH (MaxStartups, a firewall limit) and turn PasswordAuthentication off.",
  };
}

/** The first `n` of `items`, with `last` among them (in place of the n-th) when it is not already. */
function withLast<T>(items: readonly T[], last: T, n: number): T[] {
  const listed = items.slice(0, n);
  if (!listed.includes(last)) listed[Math.min(listed.length, n - 1)] = last;
  return listed;
}

/**
 * Root logins of one kind. First and last come from every login, the addresses and lines from those kept (the first
 * from each address, and the earliest and the latest): a log that forges a thousand root logins before the intruder's
 * own still names the intruder's, the latest, with its address, line and time.
 */
function rootLogin(s: RootLoginSample, byPassword: boolean): Finding {
  const earliest = s.earliest as SuccessRecord;
  const latest = s.latest as SuccessRecord;
  const addresses = [...s.byAddress.keys()];
  const distinct = addresses.length + (s.byAddress.has(latest.address) ? 0 : 1);
  const kept = [...new Set([earliest, ...s.byAddress.values(), latest])];
  const lines = withLast(kept, latest, 50);
  // Forged lines can carry any number of made-up methods: escaped, and bounded like the addresses.
  const methods = [...s.methods].map(printable);
  const named = withLast(addresses, latest.address, 10);
  return {
    id: "authlog.root-login",
    severity: byPassword ? "high" : "medium",
    title: byPassword ? `root logged in over SSH with a password (${s.count} login(s))` : `root logged in over SSH (${s.count} login(s))`,
    detail:
      `Accepted ${methods.slice(0, 10).join("/")}${methods.length > 10 || s.moreMethods ? "/..." : ""} for root from ${named.join(", ")}` +
      `${distinct > named.length || s.moreAddresses ? ", ..." : ""}, first at ${iso(earliest.timeMs)} (${where(earliest)}), ` +
      `last at ${iso(latest.timeMs)} (${where(latest)}).`,
    evidence: {
      logins: s.count,
      methods: methods.slice(0, 50),
      methodsTruncated: s.moreMethods,
      addresses: withLast(addresses, latest.address, 50),
      addressesTruncated: distinct > 50 || s.moreAddresses,
      first: iso(earliest.timeMs),
      last: iso(latest.timeMs),
      lines: lines.map((l) => ({ file: l.file, line: l.line })),
      omitted: s.count - lines.length,
    },
    remediation: byPassword
      ? "Set PermitRootLogin no (or prohibit-password) and PasswordAuthentication no; log in as a named user and use sudo."
      : "Set PermitRootLogin no and log in as a named user with sudo, so actions are attributable.",
  };
}

/**
 * Journal entries that claim to be sshd's (SYSLOG_IDENTIFIER, the writer's word) but that journald says another process
 * wrote: a local user forging failures to have an address blocked or a login blamed (`logger -t sshd`, `systemd-cat -t
 * sshd`). Their failures were not counted; their logins were. Raised when one of them was either: a session's own lines
 * (sshd as the logged-in user: "Received disconnect") are counted in the stats only.
 */
function untrustedEntries(result: AuthLogResult): Finding {
  const s = result.stats;
  const writers = result.untrustedWriters.map((w) => ({ writer: printable(w.writer), entries: w.entries }));
  const named = writers.slice(0, DETAIL_NAMES).map((w) => `${w.writer} (${w.entries})`);
  return {
    id: "authlog.untrusted-entries",
    severity: "medium",
    title: `${s.untrustedEntries} journal entries claim to be sshd's but were not written by sshd`,
    detail:
      `${s.untrustedEntries} entries name sshd as their program, but journald recorded another writer (or sshd not running as root): ${named.join("; ")}` +
      `${writers.length > named.length ? "; ..." : ""}. ${s.untrustedFailures} failure(s) among them were not counted ` +
      "(no ban, no brute force, not in --format nft)" +
      (s.untrustedLogins > 0 ? `; ${s.untrustedLogins} login(s) among them are reported all the same, in case sshd wrote them some other way.` : "."),
    evidence: {
      entries: s.untrustedEntries,
      failures: s.untrustedFailures,
      logins: s.untrustedLogins,
      writers,
      // Writers past the first 20 are counted in `entries` only.
      writersTruncated: s.untrustedEntries > writers.reduce((n, w) => n + w.entries, 0),
    },
    remediation:
      "Find out who wrote them: a local account writing sshd's messages into the journal is forging evidence (a compromised " +
      "service's user, by the unit). sshd's own entries come from an OpenSSH binary, or ssh.service, running as root.",
  };
}

/** Methods where a guessable secret was typed: what a brute force can win. */
export function isPasswordMethod(method: string): boolean {
  return method === "password" || method.startsWith("keyboard-interactive");
}

/**
 * Failures of keys logged out of time order (out-of-order.ts) that could not be judged exactly: past the bound on the
 * failures kept for such keys (the largest keys give theirs up, so those are the keys named), or read before the
 * disorder, no longer held, and close enough in time to what was kept to have made a window. A forged line can put a key out of order, so this is never left to a clean report. High for
 * the failures past the bound and for a key with an accepted login from or for it after its failures: the window it
 * could hide makes that login a compromise. A key with no such login could hide a brute force only (medium, as that
 * finding is): a DST fall-back puts an honest job's keys out of order (a monitor failing every ten minutes), and the
 * repeated hour's failures lie near those dropped before it, with no way to count those without keeping them.
 */
function outOfOrderIncomplete(result: AuthLogResult): Finding[] {
  const s = result.stats;
  const { unheld, uncertain } = result.outOfOrder;
  // `uncertain` lists the keys with a login first.
  const withLogin = uncertain.slice(0, s.outOfOrderUncertainLogin);
  const quiet = uncertain.slice(s.outOfOrderUncertainLogin);
  const window = formatDuration(result.findTimeMs);
  const evidence = {
    outOfOrderKeys: s.outOfOrderKeys, outOfOrderUnheld: s.outOfOrderUnheld, outOfOrderLimit: result.limits.outOfOrder,
    outOfOrderUnheldKeys: s.outOfOrderUnheldKeys, outOfOrderUnheldLogin: s.outOfOrderUnheldLogin,
    outOfOrderUncertain: s.outOfOrderUncertain, outOfOrderUncertainLogin: s.outOfOrderUncertainLogin,
  };
  const uncertainText = (names: string[], count: number): string =>
    `${names.join(", ")}${count > names.length ? ` (${count} in all)` : ""}: logged out of time order, and failures read before that, no longer held, lie within ${window} of later ones: ` +
    "a brute force by stamp among them may be missing. Lines stamped out of order are often forged (a central log's sender, a local user writing to the journal).";
  const remediation = "Find who wrote the out-of-order lines (the sending host, the journal's _UID); analyse fewer files at a time, or one host's log apart.";
  const findings: Finding[] = [];
  if (s.outOfOrderUnheld > 0 || withLogin.length > 0) {
    const parts: string[] = [];
    if (s.outOfOrderUnheld > 0) {
      parts.push(
        `${s.outOfOrderUnheld} failure(s) of address(es) or user(s) logged out of time order (stamped more than ${window} before a failure of theirs read earlier in the same file) ` +
          `were not among the ${result.limits.outOfOrder} kept to judge such keys exactly (at that bound the keys holding the most give up their oldest), and were judged only as read: a brute force among them may be missing. ` +
          `${s.outOfOrderUnheldKeys} key(s)${unheld.length < s.outOfOrderUnheldKeys ? ", some of them" : ""}: ${unheld.join(", ")}` +
          (s.outOfOrderUnheldLogin > 0 ? ` (the first ${Math.min(s.outOfOrderUnheldLogin, unheld.length)} with an accepted login from or for them after their failures: it could be a compromise).` : "."),
      );
    }
    if (withLogin.length > 0) parts.push(`${uncertainText(withLogin, s.outOfOrderUncertainLogin)} An accepted login from or for them followed their failures: it could be a compromise.`);
    findings.push({
      id: "authlog.analysis-incomplete",
      severity: "high",
      // The names with a login first, from both lists.
      title: `Analysis incomplete: failures logged out of time order could not all be judged (${[...unheld.slice(0, s.outOfOrderUnheldLogin), ...withLogin, ...unheld.slice(s.outOfOrderUnheldLogin)].slice(0, 3).join(", ")})`,
      detail: parts.join(" "),
      evidence: { ...evidence, unheld, uncertain: withLogin },
      remediation,
    });
  }
  const quietCount = s.outOfOrderUncertain - s.outOfOrderUncertainLogin;
  if (quietCount > 0) {
    findings.push({
      id: "authlog.analysis-incomplete",
      severity: "medium",
      title: `Analysis incomplete: failures logged out of time order could not all be judged, no login after them (${quiet.slice(0, 3).join(", ")}${quietCount > 3 ? ", …" : ""})`,
      detail: `${uncertainText(quiet, quietCount)} No accepted login from or for them followed their failures. A DST fall-back in zone-less stamps does this to a job failing every few minutes.`,
      evidence: { ...evidence, uncertain: quiet },
      remediation,
    });
  }
  return findings;
}

/**
 * Builds the findings of an auth-log analysis.
 *
 * @example
 * const findings = authLogFindings(analyzer.finish());
 */
export function authLogFindings(result: AuthLogResult): Finding[] {
  const bruteForced = result.compromises.filter((r) => r.offender !== null || r.targetedUser !== null);
  const slow = result.compromises.filter((r) => r.offender === null && r.targetedUser === null);
  const findings: Finding[] = bruteForced.slice(0, COMPROMISE_FINDINGS).map((r) => compromise(r, result));
  const rest = bruteForced.slice(COMPROMISE_FINDINGS);
  if (rest.length + result.stats.untrackedCompromises > 0) findings.push(moreCompromises(rest, result.stats.untrackedCompromises));
  findings.push(...slow.slice(0, COMPROMISE_FINDINGS).map((r) => slowCompromise(r, result)));
  const slowRest = slow.slice(COMPROMISE_FINDINGS);
  if (slowRest.length + result.stats.untrackedSlowCompromises > 0) findings.push(moreSlowCompromises(slowRest, result.stats.untrackedSlowCompromises, result));
  const s = result.stats;
  if (s.untrackedSources + s.untrackedUsers + s.untrackedPrefixes > 0 || s.loginsNotRejudgedMatter) findings.push(incomplete(result));
  findings.push(...outOfOrderIncomplete(result));
  if (s.unreadFiles > 0) findings.push(notReadFinding(result));
  // Only a sample of root logins is kept for evidence; the totals come from the counters.
  if (result.rootLogins.password.count > 0) findings.push(rootLogin(result.rootLogins.password, true));
  if (result.rootLogins.key.count > 0) findings.push(rootLogin(result.rootLogins.key, false));
  if (result.offenders.length > 0) findings.push(bruteForce(result.offenders, result));
  if (result.attackedUsers.length > 0) findings.push(userBruteForce(result.attackedUsers, result));
  if (s.untrustedFailures + s.untrustedLogins > 0) findings.push(untrustedEntries(result));
  return findings;
}
