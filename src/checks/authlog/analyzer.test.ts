import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthLogAnalyzer } from "./analyzer.ts";
import { AuthLogOptionError } from "./errors.ts";
import { authLogFindings } from "./findings.ts";
import type { AuthLogOptions, AuthLogResult, SprayState } from "./types.ts";
import { analyzeLines } from "./test-helpers.ts";
import { pushName } from "./slow-rules.ts";

const REF = Date.UTC(2026, 10, 22, 12);
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** A BSD syslog stamp for `ms` (UTC). */
function at(ms: number): string {
  const d = new Date(ms);
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
}

const run = (lines: string[], options: Partial<AuthLogOptions> = {}): AuthLogResult => analyzeLines(lines, { referenceMs: REF, ...options });

const T0 = Date.UTC(2026, 10, 21, 4);
let pid = 1000;
function failed(ms: number, ip: string, user = "root"): string {
  return `${at(ms)} web sshd[${++pid}]: Failed password for ${user} from ${ip} port ${40000 + (pid % 1000)} ssh2`;
}
function accepted(ms: number, ip: string, user = "root", method = "password"): string {
  return `${at(ms)} web sshd[${++pid}]: Accepted ${method} for ${user} from ${ip} port 50022 ssh2`;
}

// ASVS 6.3.1: detecting password brute force against SSH, with fail2ban's default window.
test("makes an address an offender at 5 failures within 10 minutes (fail2ban defaults)", () => {
  const lines = [0, 60, 120, 180, 240].map((s) => failed(T0 + s * 1000, "203.0.113.9"));
  const r = run(lines);
  assert.equal(r.offenders.length, 1);
  assert.equal(r.offenders[0]?.address, "203.0.113.9");
  assert.equal(r.offenders[0]?.offenderAt?.line, 5);
});

test("does not make an address an offender for 4 failures, or 5 spread over more than 10 minutes", () => {
  assert.equal(run([0, 60, 120, 180].map((s) => failed(T0 + s * 1000, "203.0.113.9"))).offenders.length, 0);
  assert.equal(run([0, 151, 302, 453, 604].map((s) => failed(T0 + s * 1000, "203.0.113.9"))).offenders.length, 0);
});

test("uses a sliding window: an old failure does not break a later burst", () => {
  const lines = [0, 3600, 3601, 3602, 3603, 3604].map((s) => failed(T0 + s * 1000, "203.0.113.9"));
  assert.equal(run(lines).offenders[0]?.offenderAt?.line, 6);
});

test("honours a custom max retry and find time", () => {
  const lines = [0, 100, 200].map((s) => failed(T0 + s * 1000, "203.0.113.9"));
  assert.equal(run(lines, { maxRetry: 3, findTimeMs: 300_000 }).offenders.length, 1);
  assert.equal(run(lines, { maxRetry: 3, findTimeMs: 150_000 }).offenders.length, 0);
});

test("rejects a max retry of 0 and a find time under a second", () => {
  assert.throws(() => new AuthLogAnalyzer({ referenceMs: REF, maxRetry: 0 }), AuthLogOptionError);
  assert.throws(() => new AuthLogAnalyzer({ referenceMs: REF, findTimeMs: 10 }), AuthLogOptionError);
  assert.throws(() => new AuthLogAnalyzer({ referenceMs: REF, year: 99 }), AuthLogOptionError);
});

// ASVS 6.3.5: a successful login after a brute force is a suspicious authentication attempt.
test("SourceLair: five hours of root failures from a botnet, then an accepted password, is a critical compromise", () => {
  // Seed 001: root brute-forced over SSH 04:00–09:00, then a login with the password.
  const lines: string[] = [];
  for (let s = 0; s < 5 * 3600; s += 20) lines.push(failed(T0 + s * 1000, `198.18.${(s / 20) % 50}.${1 + ((s / 20) % 200)}`));
  lines.push(accepted(T0 + 5 * 3600 * 1000 + 120_000, "198.51.100.77"));
  const findings = authLogFindings(run(lines));
  const critical = findings.filter((f) => f.id === "authlog.success-after-failures");
  assert.equal(critical.length, 1);
  assert.equal(critical[0]?.severity, "critical");
  assert.match(critical[0]?.title ?? "", /Compromise suspected/);
  const ev = critical[0]?.evidence as { address: string; user: string; line: { line: number }; targetedUser: { failures: number; firstAttack: string; lastAttack: string } };
  assert.equal(ev.address, "198.51.100.77");
  assert.equal(ev.user, "root");
  assert.equal(ev.line.line, lines.length);
  assert.equal(ev.targetedUser.firstAttack.slice(11, 13), "04");
  assert.equal(ev.targetedUser.lastAttack.slice(11, 13), "08");
  assert.equal(ev.targetedUser.failures, 900);
  const root = findings.find((f) => f.id === "authlog.root-login");
  assert.equal(root?.severity, "high");
});

test("a login from an address that was an offender is critical, whatever the user", () => {
  const lines = [0, 10, 20, 30, 40].map((s) => failed(T0 + s * 1000, "203.0.113.9", "admin"));
  lines.push(accepted(T0 + 3 * 86_400_000, "203.0.113.9", "deploy", "publickey"));
  const f = authLogFindings(run(lines)).find((x) => x.id === "authlog.success-after-failures");
  assert.equal(f?.severity, "critical");
  assert.equal((f?.evidence as { offender: { failures: number } }).offender.failures, 5);
});

test("a login by a user whose brute force ended more than the compromise window ago is not flagged", () => {
  const lines = [0, 10, 20, 30, 40].map((s) => failed(T0 + s * 1000, `198.18.0.${s + 1}`, "alice"));
  lines.push(accepted(T0 + 2 * 86_400_000, "192.0.2.10", "alice"));
  assert.equal(authLogFindings(run(lines)).filter((x) => x.id === "authlog.success-after-failures").length, 0);
});

test("a few typos before a login are not a compromise", () => {
  const lines = [failed(T0, "192.0.2.10", "alice"), failed(T0 + 5000, "192.0.2.10", "alice"), accepted(T0 + 9000, "192.0.2.10", "alice")];
  const r = run(lines);
  assert.deepEqual(authLogFindings(r), []);
  assert.equal(r.stats.failures, 2);
  assert.equal(r.stats.successes, 1);
});

// ASVS 6.3.2: logins to the default "root" account are reported.
test("a root login by key is a medium finding, by password high", () => {
  const key = authLogFindings(run([accepted(T0, "192.0.2.10", "root", "publickey")]));
  assert.deepEqual(key.map((f) => [f.id, f.severity]), [["authlog.root-login", "medium"]]);
  const pw = authLogFindings(run([accepted(T0, "192.0.2.10", "root", "password")]));
  assert.deepEqual(pw.map((f) => [f.id, f.severity]), [["authlog.root-login", "high"]]);
});

test("brute-force evidence has failures, users tried, first and last time and lines", () => {
  const lines = ["root", "admin", "test", "oracle", "root", "pi"].map((u, i) => failed(T0 + i * 1000, "203.0.113.9", u));
  const f = authLogFindings(run(lines)).find((x) => x.id === "authlog.brute-force");
  assert.equal(f?.severity, "medium");
  assert.deepEqual([f?.evidence["count"], f?.evidence["failures"], f?.evidence["omitted"]], [1, 6, 0]);
  const ev = (f?.evidence["offenders"] as Array<Record<string, unknown>>)[0] ?? {};
  assert.equal(ev["address"], "203.0.113.9");
  assert.equal(ev["failures"], 6);
  assert.deepEqual(ev["users"], ["root", "admin", "test", "oracle", "pi"]);
  assert.equal(ev["firstSeen"], new Date(T0).toISOString());
  assert.equal(ev["lastSeen"], new Date(T0 + 5000).toISOString());
  assert.deepEqual(ev["firstLine"], { file: "auth.log", line: 1 });
  assert.deepEqual(ev["lastLine"], { file: "auth.log", line: 6 });
});

test("failed public keys followed by a successful key login do not count (several keys offered)", () => {
  const p = 4242;
  const lines = [
    `${at(T0)} web sshd[${p}]: Failed publickey for git from 192.0.2.1 port 57904 ssh2: ECDSA SHA256:aaa`,
    `${at(T0)} web sshd[${p}]: Failed publickey for git from 192.0.2.1 port 57904 ssh2: RSA SHA256:bbb`,
    `${at(T0)} web sshd[${p}]: Accepted publickey for git from 192.0.2.1 port 57904 ssh2: ED25519 SHA256:ccc`,
    `${at(T0 + 1000)} web sshd[${p}]: Connection closed by 192.0.2.1 port 57904`,
  ];
  assert.equal(run(lines).stats.failures, 0);
});

test("a failure logged before the client's address is known is charged when the address appears", () => {
  const p = 777;
  const matches: string[] = [];
  const a = new AuthLogAnalyzer({ referenceMs: REF, onFailure: (m) => matches.push(`${m.line} ${m.address} ${m.kind}`) });
  a.beginFile("x");
  a.line(`${at(T0)} web sshd[${p}]: Disconnecting: Too many authentication failures for root [preauth]`, 1);
  a.line(`${at(T0)} web sshd[${p}]: Connection closed by 203.0.113.9 port 1 [preauth]`, 2);
  assert.deepEqual(matches, ["2 203.0.113.9 preauth-close"]);
});

test("counts malformed lines, blank lines and other programs without failing", () => {
  const r = run(["", "not a log line", "\u0000\u0001binary", `${at(T0)} web CRON[1]: pam_unix(cron:session): session opened for user root`, "-- Boot 0123 --", failed(T0, "203.0.113.9")]);
  assert.equal(r.stats.lines, 6);
  assert.equal(r.stats.malformed, 2);
  assert.equal(r.stats.blank, 2);
  assert.equal(r.stats.sshdLines, 1);
  assert.equal(r.stats.failures, 1);
});

test("reads journalctl -o short-iso, rsyslog ISO, RFC 5424 and sshd-session lines alike", () => {
  const r = run([
    "2026-11-21T04:00:00+0000 web sshd[10]: Failed password for root from 203.0.113.9 port 1 ssh2",
    "2026-11-21T04:00:01.123456+00:00 web sshd[11]: Failed password for root from 203.0.113.9 port 2 ssh2",
    "<38>1 2026-11-21T04:00:02.000Z web sshd 12 - - Failed password for root from 203.0.113.9 port 3 ssh2",
    "<38>1 2026-11-21T04:00:03.000Z web sshd 13 - [meta x=\"[y]\"] Failed password for root from 203.0.113.9 port 4 ssh2",
    "Nov 21 04:00:04 web sshd-session[14]: Failed password for root from 203.0.113.9 port 5 ssh2",
  ]);
  assert.equal(r.stats.failures, 5);
  assert.equal(r.offenders.length, 1);
});

test("ignores sshd-looking text logged by another program", () => {
  const r = run([`${at(T0)} web logger[9]: sshd[1]: Accepted password for root from 203.0.113.9 port 1 ssh2`, `${at(T0)} web sudo: sshd Failed password for root from 203.0.113.9 port 1 ssh2`]);
  assert.equal(r.stats.successes, 0);
  assert.equal(r.stats.failures, 0);
});

test("with a given year, a second file continues the first one's calendar across New Year", () => {
  const times: string[] = [];
  const a = new AuthLogAnalyzer({ referenceMs: REF, year: 2019, onFailure: (m) => times.push(new Date(m.timeMs).toISOString()) });
  a.beginFile("auth.log.1");
  a.line("Dec 31 23:59:00 web sshd[1]: Invalid user a from 203.0.113.9 port 1", 1);
  a.beginFile("auth.log");
  a.line("Jan  1 00:01:00 web sshd[2]: Invalid user a from 203.0.113.9 port 1", 1);
  assert.deepEqual(times, ["2019-12-31T23:59:00.000Z", "2020-01-01T00:01:00.000Z"]);
});

/** Seed 001 without the success: root guessed from 200 addresses, two tries each, over five hours. */
function botnet(): string[] {
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) lines.push(failed(T0 + i * 45_000, `198.51.100.${1 + (i % 200)}`));
  return lines;
}

// ASVS 6.3.1: a password brute force spread over a botnet is detected even when no login follows.
test("a distributed brute force on root with no success (400 failures from 200 addresses over 5 h) is reported", () => {
  const r = run(botnet());
  assert.equal(r.offenders.length, 0, "no single address reaches the threshold");
  const findings = authLogFindings(r);
  const f = findings.find((x) => x.id === "authlog.user-brute-force");
  assert.equal(f?.severity, "medium");
  assert.match(f?.title ?? "", /SSH brute force against user root: 400 failures/);
  const group = f?.evidence as { count: number; failures: number; omitted: number; users: Array<{ user: string; failures: number; firstAttack: string; lastAttack: string; firstAttackLine: { line: number }; sourcesTruncated: boolean }> };
  assert.deepEqual([group.count, group.failures, group.omitted], [1, 400, 0]);
  const ev = group.users[0] ?? assert.fail("no user listed");
  assert.equal(ev.user, "root");
  assert.equal(ev.failures, 400);
  assert.equal(ev.firstAttack, new Date(T0 + 4 * 45_000).toISOString());
  assert.equal(ev.lastAttack, new Date(T0 + 399 * 45_000).toISOString());
  assert.equal(ev.firstAttackLine.line, 5);
  assert.equal(ev.sourcesTruncated, true);
  assert.deepEqual(findings.filter((x) => x.id !== "authlog.user-brute-force"), []);
});

test("failures for a user that stay under the threshold, or for unknown user names, are no user brute force", () => {
  assert.deepEqual(authLogFindings(run([0, 151, 302, 453, 604].map((s) => failed(T0 + s * 1000, `198.18.0.${s % 200}`, "alice")))), []);
  const invalid = Array.from({ length: 20 }, (_, i) => `${at(T0 + i * 1000)} web sshd[${++pid}]: Failed password for invalid user oracle from 198.18.1.${i} port 1 ssh2`);
  assert.deepEqual(authLogFindings(run(invalid)).map((f) => f.id), []);
});

test("after a botnet attack on root, the admin's key login from an address that never failed is not a compromise", () => {
  // False alarm: this was a critical authlog.success-after-failures.
  const findings = authLogFindings(run([...botnet(), accepted(T0 + 5 * 3600_000 + 30 * 60_000, "192.0.2.10", "root", "publickey")]));
  assert.deepEqual(findings.filter((f) => f.id === "authlog.success-after-failures"), []);
  assert.deepEqual(findings.find((f) => f.id === "authlog.root-login")?.severity, "medium");
  // A password (or keyboard-interactive) login by the attacked user, from anywhere, still is.
  for (const method of ["password", "keyboard-interactive/pam"]) {
    const after = authLogFindings(run([...botnet(), accepted(T0 + 5 * 3600_000 + 30 * 60_000, "192.0.2.10", "root", method)]));
    assert.equal(after.find((f) => f.id === "authlog.success-after-failures")?.severity, "critical", method);
  }
});

test("rsyslog's 'message repeated N times' lines count N more failures", () => {
  // Missed attack: Ubuntu's rsyslog ($RepeatedMsgReduction on) folds one connection's tries into one line.
  const lines = [
    "Jan 14 04:00:01 srv sshd[100]: Failed password for root from 198.51.100.7 port 5000 ssh2",
    "Jan 14 04:00:09 srv sshd[100]: message repeated 5 times: [ Failed password for root from 198.51.100.7 port 5000 ssh2]",
    "Jan 14 04:00:10 srv sshd[100]: error: maximum authentication attempts exceeded for root from 198.51.100.7 port 5000 ssh2 [preauth]",
  ];
  const matches: number[] = [];
  const r = run(lines, { onFailure: (m) => matches.push(m.line) });
  assert.equal(r.stats.failures, 7);
  assert.deepEqual(matches, [1, 2, 2, 2, 2, 2, 3]);
  assert.equal(r.stats.byKind["failed-password"], 6);
  assert.deepEqual(r.offenders.map((o) => o.address), ["198.51.100.7"]);
  assert.equal(r.offenders[0]?.failures, 7);
});

test("a repeated line keeps sshd's prefixes inside the brackets and bounds a forged count", () => {
  const r = run([
    "Jan 14 04:00:09 srv sshd[100]: message repeated 2 times: [ error: maximum authentication attempts exceeded for root from 198.51.100.8 port 5000 ssh2 [preauth]]",
    "Jan 14 04:00:10 srv sshd[101]: message repeated 4294967295 times: [ Failed password for root from 198.51.100.9 port 5001 ssh2]",
    "Jan 14 04:00:11 srv sshd[102]: message repeated 3 times: [ Failed password for root from 198.51.100.10 port 5002 ssh2",
  ]);
  assert.equal(r.stats.byKind["max-auth-attempts"], 2);
  assert.equal(r.stats.byKind["failed-password"], 1000, "counts above 1000 are read as 1000");
  assert.equal(r.stats.failures, 1002, "a line without its closing bracket is not unwrapped");
});

// The slow rules' thresholds (docs/checks.md, authlog): options checked like --max-retry.
test("rejects a spray min under 2, a guess min of 0, thresholds over 1000 and a compromise window under a second", () => {
  for (const bad of [{ sprayMin: 1 }, { sprayMin: 1001 }, { sprayMin: 2.5 }, { guessMin: 0 }, { guessMin: 1001 }, { compromiseWindowMs: 10 }, { compromiseWindowMs: Number.NaN }]) {
    assert.throws(() => new AuthLogAnalyzer({ referenceMs: REF, ...bad }), AuthLogOptionError, JSON.stringify(bad));
  }
  assert.deepEqual([run([]).sprayMin, run([]).guessMin, run([]).compromiseWindowMs], [20, 20, 86_400_000]);
});

test("honours custom slow thresholds: 5 names, or 5 failures on one user, one every 15 minutes", () => {
  const names = [0, 1, 2, 3, 4].map((i) => failed(T0 + i * 900_000, "203.0.113.9", `user${i}`));
  const login = accepted(T0 + 5 * 900_000, "203.0.113.9", "user2");
  const slow = (r: AuthLogResult): string[] => authLogFindings(r).filter((f) => f.id === "authlog.success-after-slow-failures").map((f) => f.severity);
  assert.deepEqual(slow(run([...names, login])), []);
  assert.deepEqual(slow(run([...names, login], { sprayMin: 5 })), ["high"]);
  const guesses = [0, 1, 2, 3, 4].map((i) => failed(T0 + i * 900_000, `198.51.100.${i + 1}`, "deploy"));
  const owner = accepted(T0 + 5 * 900_000, "192.0.2.200", "deploy");
  assert.deepEqual(slow(run([...guesses, owner])), []);
  assert.deepEqual(slow(run([...guesses, owner], { guessMin: 5 })), ["high"]);
  // The window is the compromise window: 5 names within 30 minutes, not within an hour.
  assert.deepEqual(slow(run([...names, login], { sprayMin: 5, compromiseWindowMs: 1_800_000 })), []);
});

test("pushName keeps the most recently tried names: a name tried again is not counted twice, and the least recent one makes room", () => {
  const s: SprayState = { names: [], times: [], oldest: 0, marks: null };
  const DAY = 86_400_000;
  assert.equal(pushName(s, "a", 1000, 3, DAY), false);
  assert.equal(pushName(s, "b", 2000, 3, DAY), false);
  assert.equal(pushName(s, "a", 3000, 3, DAY), false, "a again: still two names");
  assert.equal(pushName(s, "c", 4000, 3, DAY), true);
  // d replaces b (the least recently tried, at 2000), not a (tried again at 3000).
  assert.equal(pushName(s, "d", 5000, 3, DAY), true);
  assert.deepEqual([...s.names].sort(), ["a", "c", "d"]);
  // Three names within the window ending now, however many were tried: a day later only the latest counts.
  assert.equal(pushName(s, "e", 5000 + DAY + 1, 3, DAY), false);
  assert.ok(s.names.length <= 3);
});

// --- Red team 38 ---

const REF38 = Date.UTC(2026, 11, 7, 12);
const iso38 = (s: number): string => new Date(Date.UTC(2026, 11, 6, 10) + s * 1000).toISOString();

// ASVS 16.3.1. Finding 8: where account lookup ignores case (SSSD's AD provider, winbind), sshd logs the name as typed.
test("per-user rules count a name's spellings as one user; the evidence shows the name as first logged", () => {
  const lines = ["admin", "Admin", "ADMIN", "aDmin", "adMin"].map((u, i) => `${iso38(i * 20)} web sshd[${1000 + i}]: Failed password for ${u} from 198.18.${i}.7 port 50000 ssh2`);
  lines.push(`${iso38(200)} web sshd[2000]: Accepted password for ADMIN from 198.18.99.7 port 50000 ssh2`);
  const r = analyzeLines(lines, { referenceMs: REF38 });
  assert.deepEqual(r.attackedUsers.map((u) => [u.user, u.failures]), [["admin", 5]]);
  assert.deepEqual(r.compromises.map((c) => [c.user, c.targetedUser?.user]), [["ADMIN", "admin"]]);
});

// ASVS 16.3.1. Red team 38b, finding 5: sshd escapes every byte past ASCII (\303\274 is ü), which lower-casing left apart.
test("per-user rules count a name's escaped, raw UTF-8, decomposed and differently cased spellings as one user, shown as first logged", () => {
  // Lines are read as latin1, one char per byte: raw UTF-8 as it lies in a file.
  const raw = (text: string): string => Buffer.from(text, "utf8").toString("latin1");
  const spellings = ["J\\303\\234RGEN", "j\\303\\274rgen", raw("Jürgen"), raw("ju\u0308rgen"), "JU\\314\\210RGEN"];
  const lines = spellings.map((u, i) => `${iso38(i * 20)} web sshd[${1000 + i}]: Failed password for ${u} from 198.18.${i}.7 port 50000 ssh2`);
  const r = analyzeLines(lines, { referenceMs: REF38 });
  assert.deepEqual(r.attackedUsers.map((u) => [u.user, u.failures]), [["J\\303\\234RGEN", 5]]);
});

test("only sshd's octal escapes of UTF-8 are decoded for the key: an escaped backslash before digits, or bytes that are no UTF-8, stay as written", () => {
  const fail = (u: string, i: number): string => `${iso38(i * 20)} web sshd[${1000 + i}]: Failed password for ${u} from 198.18.${i}.7 port 50000 ssh2`;
  // "x\\\\303\\274" is x, a backslash, "303" and a lone continuation byte (\\274 alone is no UTF-8): not "xü".
  const lines = ["x\\\\303\\274", "X\\303\\274", "x\\377", "X\\377", "x\\\\303\\274"].map(fail);
  const r = analyzeLines(lines, { referenceMs: REF38, maxRetry: 2 });
  assert.deepEqual(r.attackedUsers.map((u) => [u.user, u.failures]).sort(), [["x\\377", 2], ["x\\\\303\\274", 2]]);
});

// ASVS 16.3.1. Finding 6: fe80::/64 is every link-local host on every link; counted by address and zone.
test("link-local failures are counted by address and zone, never as one /64", () => {
  const lines = Array.from({ length: 5 }, (_, i) => `${iso38(i)} web sshd[80${i}]: Failed password for invalid user guest from fe80::bad:${i + 1}%eth0 port ${50000 + i} ssh2`);
  for (let i = 0; i < 5; i++) lines.push(`${iso38(10 + i)} web sshd[81${i}]: Failed password for invalid user guest from fe80::66%eth1 port ${51000 + i} ssh2`);
  lines.push(`${iso38(600)} web sshd[900]: Accepted publickey for admin from fe80::66%eth0 port 40000 ssh2: ED25519 SHA256:3q2+7w`);
  const r = analyzeLines(lines, { referenceMs: REF38 });
  assert.deepEqual(r.offenders.map((o) => o.address), ["fe80::66%eth1"]);
  assert.deepEqual(r.compromises, [], "fe80::66 on eth0 is another host than on eth1");
});

// ASVS 16.3.1. Finding 7: each 64:ff9b::/96 address is one IPv4 client, counted alone.
test("NAT64 addresses are counted one by one, as the IPv4 clients they are, never as one /64", () => {
  const lines = Array.from({ length: 5 }, (_, i) => `${iso38(i)} web sshd[80${i}]: Failed password for root from 64:ff9b::cb00:7142 port ${50000 + i} ssh2`);
  for (let i = 0; i < 4; i++) lines.push(`${iso38(10 + i)} web sshd[81${i}]: Failed password for root from 64:ff9b:1::c633:64${String(i + 10)} port 51000 ssh2`);
  lines.push(`${iso38(600)} web sshd[900]: Accepted publickey for admin from 64:ff9b::c000:20a port 40000 ssh2: ED25519 SHA256:3q2+7w`);
  const r = analyzeLines(lines, { referenceMs: REF38 });
  assert.deepEqual(r.offenders.map((o) => o.address), ["64:ff9b::cb00:7142"]);
  assert.deepEqual(r.compromises, []);
});

// ASVS 16.3.1. Red team 38b, finding 4: a 64:ff9b::/96 address is counted under the IPv4 address it embeds.
test("one IPv4 client natively and through 64:ff9b::/96 is one count, shown in the translated form; the local-use /48 counts alone", () => {
  const lines: string[] = [];
  for (let i = 0; i < 5; i++) lines.push(`${iso38(i)} web sshd[80${i}]: Failed password for root from ${i % 2 === 0 ? "203.0.113.66" : "64:ff9b::203.0.113.66"} port ${50000 + i} ssh2`);
  for (let i = 0; i < 4; i++) lines.push(`${iso38(10 + i)} web sshd[81${i}]: Failed password for root from ${i % 2 === 0 ? "198.51.100.7" : "64:ff9b:1::c633:6407"} port 51000 ssh2`);
  const r = analyzeLines(lines, { referenceMs: REF38 });
  assert.deepEqual(r.offenders.map((o) => [o.address, o.failures]), [["64:ff9b::cb00:7142", 5]]);
  // Natively first, the record takes the translated form at the second failure; the cache stays right after it.
  const native = analyzeLines(lines.slice(0, 5).concat(`${iso38(20)} web sshd[900]: Accepted password for root from 203.0.113.66 port 40000 ssh2`), { referenceMs: REF38 });
  assert.deepEqual(native.compromises.map((c) => [c.address, c.offender?.address]), [["203.0.113.66", "64:ff9b::cb00:7142"]]);
});

// ASVS 16.3.1. Finding 5: forged failures stamped years back, four after every four real ones, are read between them.
test("failures stamped years back, read between a burst's failures, do not keep its address or user below the window", () => {
  const lines: string[] = [];
  for (let i = 0; i < 12; i++) {
    lines.push(`${iso38(i)} web sshd[900]: Failed password for deploy from 203.0.113.66 port ${40000 + i} ssh2`);
    if (i % 4 === 3) for (let k = 0; k < 4; k++) lines.push(`<38>1 2024-06-0${k + 1}T00:00:00Z m sshd 77 - - Failed password for deploy from 203.0.113.66 port 1 ssh2`);
  }
  const r = analyzeLines(lines, { referenceMs: REF38 });
  assert.deepEqual(r.offenders.map((o) => o.address), ["203.0.113.66"]);
  assert.deepEqual(r.attackedUsers.map((u) => u.user), ["deploy"]);
});

// Finding 5, the spraying rule: a name older than every one held took the place of the oldest real one.
test("pushName: a new name stamped before every name held is not kept and meets nothing", () => {
  const s: SprayState = { names: [], times: [], oldest: 0, marks: null };
  for (let i = 0; i < 3; i++) assert.equal(pushName(s, `u${i}`, 1000 + i, 3, 600_000), i === 2);
  assert.equal(pushName(s, "old", 0 - 10 * 600_000, 3, 600_000), false);
  assert.deepEqual(s.names, ["u0", "u1", "u2"]);
  // Read out of order, the latest name decides: three names within the window only if the latest is too.
  assert.equal(pushName(s, "late", 10 * 600_000, 3, 600_000), false);
  assert.equal(pushName(s, "mid", 1500, 3, 600_000), false, "u2 (1002), mid (1500) and late (6,000,000) are not within 10 minutes");
});
