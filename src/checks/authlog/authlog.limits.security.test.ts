// Attacks on the auth-log check's memory bounds that must fail: filling the address and user
// tables so that a later brute force goes unseen, and flooding the output with offenders until the
// JSON cannot be written. The tables are made small through `limits`; the defaults (500,000
// addresses, 100,000 users) behave the same, only later.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthLogAnalyzer, LIMITS } from "./analyzer.ts";
import { AuthLogOptionError } from "./errors.ts";
import { authLogFindings, COMPROMISE_FINDINGS, EVIDENCE_LIMIT } from "./findings.ts";
import type { Finding } from "../finding.ts";
import type { AuthLogOptions, AuthLogResult } from "./types.ts";
import { analyzeLines } from "./test-helpers.ts";

const REF = Date.UTC(2026, 10, 22, 12);
const T0 = Date.UTC(2026, 10, 21, 3);
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function at(ms: number): string {
  const d = new Date(ms);
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
}

/** A distinct IPv6 address per i (i < 65,535), as a botnet with a /64 per bot gives them; in canonical form. */
function v6(i: number): string {
  return `2001:db8:1:${(i + 1).toString(16)}::1`;
}

let pid = 1;
function failed(ms: number, ip: string, user: string): string {
  return `${at(ms)} web sshd[${++pid}]: Failed password for ${user} from ${ip} port 22 ssh2`;
}
function accepted(ms: number, ip: string, user: string, method = "password"): string {
  return `${at(ms)} web sshd[${++pid}]: Accepted ${method} for ${user} from ${ip} port 4243 ssh2`;
}

const run = (lines: Iterable<string>, options: Partial<AuthLogOptions> = {}): AuthLogResult => analyzeLines(lines, { referenceMs: REF, ...options });

function byId(findings: Finding[], id: string): Finding[] {
  return findings.filter((f) => f.id === id);
}

/** Seed 001 after a fill: ten failures for deploy from one address, then its password works. */
function* bruteForceThenLogin(ms: number): Generator<string> {
  for (let k = 0; k < 10; k++) yield failed(ms + k * 1000, "198.51.100.7", "deploy");
  yield accepted(ms + 30_000, "198.51.100.7", "deploy");
}

// ASVS 6.3.5 / 16.3.1: a log that first fills the tables must not hide a later compromise.
test("a log that opens with more one-failure addresses than the table holds still shows a later brute force and login", () => {
  const limits = { sources: 1000, users: 200 };
  function* log(): Generator<string> {
    // One failure from each of 1,000 addresses over 17 minutes; the first 200 name existing users.
    for (let i = 0; i < 1000; i++) yield failed(T0 + i * 1000, v6(i), i < 200 ? `u${i}` : `invalid user x${i}`);
    yield* bruteForceThenLogin(T0 + 3600_000);
  }
  const r = run(log(), { limits });
  const findings = authLogFindings(r);
  const critical = byId(findings, "authlog.success-after-failures");
  assert.equal(critical.length, 1);
  const ev = critical[0]?.evidence as { address: string; user: string; offender: { failures: number } | null; targetedUser: { failures: number } | null };
  assert.equal(ev.address, "198.51.100.7");
  assert.equal(ev.user, "deploy");
  assert.equal(ev.offender?.failures, 10);
  assert.equal(ev.targetedUser?.failures, 10, "the user table made room too");
  // The idle one-off addresses and users were forgotten, not the attack.
  assert.deepEqual([r.stats.evictedSources, r.stats.evictedUsers, r.stats.untrackedSources, r.stats.untrackedUsers], [1000, 200, 0, 0]);
  assert.deepEqual(byId(findings, "authlog.analysis-incomplete"), []);
});

test("an address still inside the window is kept while idle ones make room: a slow brute force completes", () => {
  // One new address every 20 s for an hour (30 per 10-minute window, a table of 50), and one
  // address failing every two minutes near the end: evicting by insertion order, or refusing when
  // full, would lose it before its fifth failure.
  const lines: string[] = [];
  for (let s = 0; s < 3600; s += 20) {
    lines.push(failed(T0 + s * 1000, v6(s), "invalid user x"));
    if (s >= 3000 && s % 120 === 0) lines.push(failed(T0 + s * 1000 + 1, "198.51.100.9", "root"));
  }
  const r = run(lines, { limits: { sources: 50 } });
  assert.deepEqual(r.offenders.map((o) => o.address), ["198.51.100.9"]);
  assert.equal(r.offenders[0]?.failures, 5);
  assert.equal(r.stats.untrackedSources, 0);
  assert.ok(r.stats.evictedSources > 100);
});

test("when more addresses are active in one window than the table holds, a high finding says the analysis is incomplete", () => {
  // 150 addresses within two minutes, one failure each for root, against a table of 100.
  const lines = Array.from({ length: 150 }, (_, i) => failed(T0 + i * 800, v6(i), "root"));
  const r = run(lines, { limits: { sources: 100 } });
  const findings = authLogFindings(r);
  const incomplete = byId(findings, "authlog.analysis-incomplete");
  assert.equal(incomplete.length, 1);
  assert.equal(incomplete[0]?.severity, "high");
  assert.match(incomplete[0]?.title ?? "", /Analysis incomplete: 50 failure\(s\)/);
  assert.deepEqual(
    [incomplete[0]?.evidence["untrackedSourceFailures"], incomplete[0]?.evidence["sourceLimit"], incomplete[0]?.evidence["evictedSources"]],
    [50, 100, 0],
  );
  assert.ok((incomplete[0]?.remediation ?? "").length > 0);
  // Failures from untracked addresses are still charged to the user they tried.
  assert.equal(byId(findings, "authlog.user-brute-force")[0]?.evidence["failures"], 150);
});

test("offenders are never evicted: a login from an early offender is critical even when the table is full", () => {
  const lines: string[] = [];
  for (let i = 0; i < 10; i++) for (let k = 0; k < 5; k++) lines.push(failed(T0 + i * 100 + k * 10, `203.0.113.${i + 1}`, "invalid user admin"));
  lines.push(failed(T0 + 7200_000, "198.51.100.20", "invalid user guest"));
  lines.push(accepted(T0 + 7200_000 + 1000, "203.0.113.3", "deploy", "publickey"));
  const r = run(lines, { limits: { sources: 10 } });
  const findings = authLogFindings(r);
  assert.equal(byId(findings, "authlog.success-after-failures")[0]?.evidence["address"], "203.0.113.3");
  assert.equal(r.offenders.length, 10);
  assert.equal(r.stats.evictedSources, 0);
  assert.equal(byId(findings, "authlog.analysis-incomplete")[0]?.evidence["untrackedSourceFailures"], 1);
});

test("limits default to 500,000 addresses, 100,000 users, 20,000 kept logins and 2,000,000 failures of keys logged out of order, and refuse nonsense", () => {
  assert.deepEqual(run([]).limits, { sources: 500_000, users: 100_000, logins: 20_000, outOfOrder: 2_000_000 });
  assert.deepEqual(LIMITS, { sources: 500_000, users: 100_000, logins: 20_000, outOfOrder: 2_000_000 });
  assert.throws(() => new AuthLogAnalyzer({ referenceMs: REF, limits: { sources: 0 } }), AuthLogOptionError);
  assert.throws(() => new AuthLogAnalyzer({ referenceMs: REF, limits: { users: 1.5 } }), AuthLogOptionError);
  assert.throws(() => new AuthLogAnalyzer({ referenceMs: REF, limits: { logins: -1 } }), AuthLogOptionError);
});

/** Each [name, lines] as one file, in the order given. */
function runFiles(list: Array<[string, string[]]>, options: Partial<AuthLogOptions> = {}): AuthLogResult {
  const a = new AuthLogAnalyzer({ referenceMs: REF, ...options });
  for (const [name, lines] of list) {
    a.beginFile(name);
    lines.forEach((l, i) => a.line(l, i + 1));
  }
  return a.finish();
}

// Forged "Accepted" lines (logger) ahead of the real login, in the newest file read first: the logins kept for the
// second look are bounded, and when one past the bound may have followed a brute force read later, the run fails.
test("logins past the kept bound are counted, and an incomplete analysis is reported when a later file's brute force precedes them", () => {
  const forged = Array.from({ length: 5 }, (_, i) => accepted(T0 + 3600_000 + i * 1000, `192.0.2.${i + 1}`, `u${i}`, "publickey"));
  const newer = [...forged, accepted(T0 + 7200_000, "198.51.100.7", "deploy")];
  const older = Array.from({ length: 10 }, (_, k) => failed(T0 + k * 1000, "198.51.100.7", "deploy"));
  const r = runFiles([["auth.log", newer], ["auth.log.1", older]], { limits: { logins: 5 } });
  assert.equal(r.stats.loginsNotRejudged, 1);
  assert.equal(r.stats.loginsNotRejudgedMatter, true);
  const findings = authLogFindings(r);
  assert.deepEqual(byId(findings, "authlog.success-after-failures"), [], "the real login was past the bound");
  const incomplete = byId(findings, "authlog.analysis-incomplete")[0];
  assert.equal(incomplete?.severity, "high");
  assert.deepEqual(incomplete?.evidence, { loginsNotRejudged: 1, loginLimit: 5 });
  assert.match(incomplete?.detail ?? "", /oldest first/);
  // Oldest first, every login is judged when it is read: the bound does not matter and the compromise is found.
  const ordered = runFiles([["auth.log.1", older], ["auth.log", newer]], { limits: { logins: 5 } });
  assert.equal(ordered.stats.loginsNotRejudgedMatter, false);
  assert.deepEqual(byId(authLogFindings(ordered), "authlog.analysis-incomplete"), []);
  assert.equal(byId(authLogFindings(ordered), "authlog.success-after-failures").length, 1);
});

// Output flood: 450,000 offenders made 900,000 findings whose JSON no longer fit in a string.
test("thousands of offending addresses and attacked users give one grouped finding each, with counts", () => {
  const lines: string[] = [];
  for (let i = 0; i < 5000; i++) for (let k = 0; k < 5; k++) lines.push(failed(T0 + k * 1000, v6(i), `u${i}`));
  const findings = authLogFindings(run(lines));
  assert.deepEqual(findings.map((f) => f.id), ["authlog.brute-force", "authlog.user-brute-force"]);
  const [brute, users] = findings as [Finding, Finding];
  assert.match(brute.title, /^SSH brute force from 2001:db8:1:1::1 and 4999 other address\(es\): 25000 failures$/);
  assert.deepEqual([brute.evidence["count"], brute.evidence["failures"], (brute.evidence["offenders"] as unknown[]).length, brute.evidence["omitted"]], [5000, 25_000, EVIDENCE_LIMIT, 5000 - EVIDENCE_LIMIT]);
  assert.deepEqual([users.evidence["count"], users.evidence["failures"], (users.evidence["users"] as unknown[]).length, users.evidence["omitted"]], [5000, 25_000, EVIDENCE_LIMIT, 5000 - EVIDENCE_LIMIT]);
  assert.match(brute.detail, /and 4995 more \(all counted in --json evidence, first 100 listed\)/);
  assert.ok(JSON.stringify(findings).length < 200_000, "the output does not grow with the number of offenders");
});

test("suspect logins past the first 20 are grouped, and those past the 1,000 kept are still counted", () => {
  const lines: string[] = [];
  for (let i = 0; i < 1050; i++) {
    for (let k = 0; k < 5; k++) lines.push(failed(T0 + i * 10_000 + k * 100, v6(i), "invalid user admin"));
    lines.push(accepted(T0 + i * 10_000 + 1000, v6(i), "deploy", "publickey"));
  }
  const r = run(lines);
  assert.equal(r.stats.untrackedCompromises, 50);
  const critical = byId(authLogFindings(r), "authlog.success-after-failures");
  assert.equal(critical.length, COMPROMISE_FINDINGS + 1);
  assert.equal(critical[0]?.evidence["address"], v6(0), "the first ones stay individually visible");
  const group = critical[COMPROMISE_FINDINGS];
  assert.equal(group?.severity, "critical");
  assert.match(group?.title ?? "", /1030 more login\(s\) after a brute force/);
  assert.deepEqual([group?.evidence["count"], (group?.evidence["logins"] as unknown[]).length, group?.evidence["omitted"]], [1030, EVIDENCE_LIMIT, 930]);
});

// The slow rules count over the compromise window (24 h), longer than --find-time: a record forgotten after
// --find-time would let a campaign paced under it start afresh with every try. ASVS 6.3.1, 16.3.1.
test("a slow sprayer is not forgotten after --find-time while one-off addresses fill the table around it", () => {
  // A table of 50; a new one-off address every 20 s (30 per --find-time), and the sprayer trying a new name every
  // 15 minutes: idle longer than --find-time between its tries, and the table evicting all the while.
  const lines: string[] = [];
  for (let s = 0; s < 20 * 900; s += 20) {
    lines.push(failed(T0 + s * 1000, v6(s / 20), "invalid user x"));
    if (s % 900 === 0) lines.push(failed(T0 + s * 1000 + 1, "203.0.113.9", `user${s / 900}`));
  }
  lines.push(accepted(T0 + 20 * 900_000, "203.0.113.9", "user7"));
  const r = run(lines, { limits: { sources: 50 } });
  const slow = byId(authLogFindings(r), "authlog.success-after-slow-failures");
  assert.equal(slow.length, 1);
  assert.equal((slow[0]?.evidence["sprayer"] as { failures: number }).failures, 20, "one record saw every name");
  assert.equal(r.stats.untrackedSources, 0);
  assert.ok(r.stats.evictedSources > 500, "the one-off addresses still made room");
});

test("a table full of addresses that tried two names within 24 hours leaves new ones untracked, and says so", () => {
  // Held for the slow-spraying rule, they cannot be forgotten an hour later: the analysis is incomplete, not quietly
  // blind to a sprayer that arrives then.
  const lines: string[] = [];
  for (let i = 0; i < 10; i++) lines.push(failed(T0 + i * 1000, `203.0.113.${i + 1}`, "invalid user a"), failed(T0 + i * 1000 + 1, `203.0.113.${i + 1}`, "invalid user b"));
  lines.push(failed(T0 + 3600_000, "198.51.100.20", "invalid user c"));
  const r = run(lines, { limits: { sources: 10 } });
  assert.equal(r.stats.untrackedSources, 1);
  assert.equal(byId(authLogFindings(r), "authlog.analysis-incomplete")[0]?.severity, "high");
  // One name each, they go after --find-time as before.
  const single = run(lines.filter((_, k) => k % 2 === 0 || k === lines.length - 1), { limits: { sources: 10 } });
  assert.deepEqual([single.stats.untrackedSources, single.stats.evictedSources], [0, 10]);
});

test("slow-suspect logins past the first 20 are grouped as high, and those past the 1,000 kept pairs are still counted", () => {
  // An address sprays 20 names one every 15 minutes, then logs in by password as 1,030 different users.
  const lines = Array.from({ length: 20 }, (_, i) => failed(T0 + i * 900_000, "203.0.113.9", `user${i}`));
  for (let i = 0; i < 1030; i++) lines.push(accepted(T0 + 20 * 900_000 + i * 1000, "203.0.113.9", `victim${i}`));
  const r = run(lines);
  assert.deepEqual([r.stats.untrackedSlowCompromises, r.stats.untrackedCompromises], [30, 0]);
  const slow = byId(authLogFindings(r), "authlog.success-after-slow-failures");
  assert.equal(slow.length, COMPROMISE_FINDINGS + 1);
  assert.ok(slow.every((f) => f.severity === "high"));
  const group = slow[COMPROMISE_FINDINGS];
  assert.match(group?.title ?? "", /1010 more password login\(s\) after slow spraying or guessing/);
  assert.deepEqual([group?.evidence["count"], (group?.evidence["logins"] as unknown[]).length, group?.evidence["omitted"]], [1010, EVIDENCE_LIMIT, 910]);
  assert.deepEqual(byId(authLogFindings(r), "authlog.success-after-failures"), []);
});
