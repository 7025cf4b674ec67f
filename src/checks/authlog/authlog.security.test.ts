// Attacks on the auth-log check that must fail: log injection through user names, terminal
// escapes in findings, memory blow-up through unique names.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthLogAnalyzer } from "./analyzer.ts";
import type { AuthLogResult } from "./types.ts";
import { authLogFindings } from "./findings.ts";
import { analyzeLines } from "./test-helpers.ts";
import type { Finding } from "../finding.ts";

const REF = Date.UTC(2026, 10, 22);

const run = (lines: string[]): AuthLogResult => analyzeLines(lines, { referenceMs: REF });

// ASVS 16.4.1: log injection through the user name must not redirect the blame.
test("a user name carrying 'from VICTIM port N ssh2' does not get the victim blocked", () => {
  // ssh 'x from 192.0.2.200 port 22 ssh2'@server, five times: the attacker wants 192.0.2.200 banned.
  const lines = Array.from({ length: 5 }, (_, i) => `Nov 21 04:00:0${i} web sshd[${i}]: Failed password for invalid user x from 192.0.2.200 port 22 ssh2 from 203.0.113.9 port 4000 ssh2`);
  const r = run(lines);
  assert.deepEqual(r.offenders.map((o) => o.address), ["203.0.113.9"]);
});

test("a user name carrying a victim address in a preauth close is attributed to the real client", () => {
  const lines = Array.from({ length: 5 }, (_, i) => `Nov 21 04:00:0${i} web sshd[${i}]: Connection closed by invalid user a 192.0.2.200 port 22 203.0.113.9 port 4000 [preauth]`);
  assert.deepEqual(run(lines).offenders.map((o) => o.address), ["203.0.113.9"]);
});

// ASVS 16.4.1, 6.3.1: the login after a brute force must not be put on another address by the name it logged in as.
test("a user name carrying 'from OTHER port 22 ssh2:' in an Accepted line does not move the login off the offending address", () => {
  const lines = Array.from({ length: 5 }, (_, i) => `Nov 21 04:00:0${i} web sshd[${i}]: Failed password for root from 203.0.113.9 port 4000 ssh2`);
  lines.push("Nov 21 04:01:00 web sshd[9]: Connection from 203.0.113.9 port 4711 on 192.0.2.1 port 22 rdomain \"\"");
  lines.push("Nov 21 04:01:01 web sshd[9]: Accepted password for x from 192.0.2.10 port 22 ssh2: y from 203.0.113.9 port 4711 ssh2");
  const c = authLogFindings(run(lines)).filter((f) => f.id === "authlog.success-after-failures");
  assert.deepEqual(c.map((f) => [f.evidence["address"], f.evidence["user"]]), [["203.0.113.9", "x from 192.0.2.10 port 22 ssh2: y"]]);
});

test("an accepted login cannot be forged through a failed line's user name", () => {
  const r = run(["Nov 21 04:00:00 web sshd[1]: Failed password for invalid user Accepted password for root from 192.0.2.1 port 1 ssh2 from 203.0.113.9 port 2 ssh2"]);
  assert.equal(r.stats.successes, 0);
  assert.equal(r.stats.failures, 1);
});

// ASVS 16.4.1: attacker-controlled log text is encoded before it reaches a terminal.
test("terminal escape sequences in user names are neutralised in findings", () => {
  const evil = "\u001b]0;pwned\u0007\u001b[2J";
  const lines = Array.from({ length: 5 }, (_, i) => `Nov 21 04:00:0${i} web sshd[${i}]: Failed password for invalid user ${evil} from 203.0.113.9 port 1 ssh2`);
  const text = JSON.stringify(authLogFindings(run(lines)));
  assert.doesNotMatch(text, /\\u001b|\\u0007/);
  assert.match(text, /\\\\x1b/);
});

test("terminal escape sequences in the method of a forged 'Accepted' line are neutralised in findings", () => {
  // `logger -t 'sshd[9]'` lets any local user write such a line; the escapes erase the title above.
  // The log is read as latin1, so "\u00c2\u009b" are the UTF-8 bytes of the C1 CSI, U+009B.
  const evil = "pw\u001b[1A\u001b[2K\u001b]0;PWNED\u0007\u00c2\u009b2J";
  const lines = Array.from({ length: 5 }, (_, i) => `Nov 21 04:00:0${i} web sshd[9]: Failed password for root from 203.0.113.9 port 22 ssh2`);
  lines.push(`Nov 21 04:01:00 web sshd[10]: Accepted ${evil} for root from 203.0.113.9 port 22 ssh2`);
  const findings = authLogFindings(run(lines));
  assert.deepEqual(findings.map((f) => f.id).sort(), ["authlog.brute-force", "authlog.root-login", "authlog.success-after-failures", "authlog.user-brute-force"]);
  // Nothing a terminal would act on, anywhere in a finding (C0, DEL, C1)...
  assert.doesNotMatch(JSON.stringify(findings), /\\u00(?:[01][0-9a-f]|7f|[89][0-9a-f])/);
  for (const f of findings) assert.doesNotMatch(`${f.title} ${f.detail} ${f.remediation}`, /[\u0000-\u001f\u007f-\u009f]/);
  // ...and the method still readable, as \xNN.
  const critical = findings.find((f) => f.id === "authlog.success-after-failures");
  assert.equal(critical?.evidence["method"], "pw\\x1b[1A\\x1b[2K\\x1b]0;PWNED\\x07\\x9b2J");
  assert.match(critical?.detail ?? "", /^Accepted pw\\x1b\[1A/);
  assert.deepEqual(findings.find((f) => f.id === "authlog.root-login")?.evidence["methods"], [critical?.evidence["method"]]);
});

test("a log of a million unique user names keeps a bounded list per offender", () => {
  const a = new AuthLogAnalyzer({ referenceMs: REF });
  a.beginFile("x");
  for (let i = 0; i < 20_000; i++) a.line(`Nov 21 04:00:00 web sshd[${i}]: Invalid user u${i} from 203.0.113.9 port 1`, i + 1);
  const o = a.finish().offenders[0];
  assert.equal(o?.failures, 20_000);
  assert.equal(o?.users.size, 50);
  assert.equal(o?.moreUsers, true);
});

test("a method name like 'constructor' or '__proto__' is just an unknown method", () => {
  const r = run([
    "Nov 21 04:00:00 web sshd[1]: Failed constructor for root from 203.0.113.9 port 1 ssh2",
    "Nov 21 04:00:01 web sshd[2]: Failed __proto__ for root from 203.0.113.9 port 1 ssh2",
    "Nov 21 04:00:02 web sshd[3]: Accepted toString for root from 203.0.113.9 port 1 ssh2",
  ]);
  assert.deepEqual(r.stats.byKind, { "failed-other": 2, "accepted-other": 1 });
});

// Rotated files in the order a shell glob gives them (auth.log auth.log.1: newest first), and files that overlap: a
// login must be matched against a brute force in any file, by the stamps. ASVS 6.3.5.
const T0 = Date.UTC(2026, 10, 21, 4);
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
function stamp(ms: number): string {
  const d = new Date(ms);
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
}
let rpid = 5000;
const fail = (ms: number, ip: string, user: string): string => `${stamp(ms)} web sshd[${++rpid}]: Failed password for ${user} from ${ip} port 4000 ssh2`;
const accept = (ms: number, ip: string, user: string, method = "password"): string => `${stamp(ms)} web sshd[${++rpid}]: Accepted ${method} for ${user} from ${ip} port 4001 ssh2`;

/** Each [name, lines] as one file, in the order given. */
function files(list: Array<[string, string[]]>, limits: { logins?: number } = {}): AuthLogResult {
  const a = new AuthLogAnalyzer({ referenceMs: REF, limits });
  for (const [name, lines] of list) {
    a.beginFile(name);
    lines.forEach((l, i) => a.line(l, i + 1));
  }
  return a.finish();
}
const compromises = (r: AuthLogResult): string[] => authLogFindings(r).filter((f) => f.id === "authlog.success-after-failures").map((f) => `${f.evidence["user"]}@${f.evidence["address"]}`);

test("a login in auth.log after a brute force in auth.log.1 is a compromise when auth.log is read first", () => {
  const older = Array.from({ length: 10 }, (_, i) => fail(T0 + i * 1000, "203.0.113.9", "deploy"));
  const newer = [accept(T0 + 3600_000, "203.0.113.9", "deploy", "publickey")];
  const r = files([["auth.log", newer], ["auth.log.1", older]]);
  assert.deepEqual(compromises(r), ["deploy@203.0.113.9"]);
  const ev = authLogFindings(r).find((f) => f.id === "authlog.success-after-failures")?.evidence as { line: unknown; offender: { offenderSince: string; offenderSinceLine: unknown } };
  assert.deepEqual(ev.line, { file: "auth.log", line: 1 });
  // The evidence names the ban that came before the login, in the other file.
  assert.equal(ev.offender.offenderSince, new Date(T0 + 4000).toISOString());
  assert.deepEqual(ev.offender.offenderSinceLine, { file: "auth.log.1", line: 5 });
});

test("a password login for a user a botnet brute-forced in an older file read later is a compromise (no address offends)", () => {
  const older = Array.from({ length: 40 }, (_, i) => fail(T0 + i * 30_000, `198.51.100.${1 + i}`, "root"));
  const r = files([["auth.log", [accept(T0 + 3 * 3600_000, "192.0.2.10", "root")]], ["auth.log.1", older]]);
  assert.deepEqual(compromises(r), ["root@192.0.2.10"]);
  // A key login from an address that never failed is not the brute force's fruit, in this order either.
  assert.deepEqual(compromises(files([["auth.log", [accept(T0 + 3 * 3600_000, "192.0.2.10", "root", "publickey")]], ["auth.log.1", older]])), []);
  // Nor is a password login more than 24 hours after the attack.
  assert.deepEqual(compromises(files([["auth.log", [accept(T0 + 30 * 3600_000, "192.0.2.10", "root")]], ["auth.log.1", older]])), []);
});

test("overlapping files: a login late in a long file after a brute force in a short one read after it is a compromise", () => {
  // The long file starts first, so sorting files by their first stamp would not help either.
  const long = [accept(T0 - 3600_000, "192.0.2.10", "alice", "publickey"), accept(T0 + 5 * 3600_000, "203.0.113.9", "deploy", "publickey")];
  const short = Array.from({ length: 10 }, (_, i) => fail(T0 + i * 1000, "203.0.113.9", "deploy"));
  assert.deepEqual(compromises(files([["host-a.log", long], ["host-b.log", short]])), ["deploy@203.0.113.9"]);
});

test("a brute force in a file read later but stamped after the login does not make the login suspect", () => {
  const login = [accept(T0 - 60_000, "203.0.113.9", "deploy")];
  const later = Array.from({ length: 10 }, (_, i) => fail(T0 + i * 1000, "203.0.113.9", "deploy"));
  assert.deepEqual(compromises(files([["a.log", login], ["b.log", later]])), []);
});

// Campaigns paced under --find-time, so that fail2ban's window (5 failures within 10 minutes) never fills for an address
// or a user: a list of accounts worked through from one address, or one account guessed from many. `check logins` judges
// the same shapes at any pace; here a password login after them is authlog.success-after-slow-failures. ASVS 6.3.1, 16.3.1.
const slowFindings = (r: AuthLogResult): Finding[] => authLogFindings(r).filter((f) => f.id === "authlog.success-after-slow-failures");
const QUARTER = 15 * 60_000;
/** One failure every 15 minutes from 18:00 the day before T0, for each name of `names`, from `from(i)`. */
const paced = (n: number, from: (i: number) => string, user: (i: number) => string, start = T0 - 10 * 3600_000): string[] =>
  Array.from({ length: n }, (_, i) => fail(start + i * QUARTER, from(i), user(i)));

test("a password login from an address that failed on 20 user names, one every 15 minutes, is high; 19 names or a key login are not", () => {
  const spray = (n: number): string[] => paced(n, () => "203.0.113.9", (i) => `user${i}`);
  const after = T0 - 10 * 3600_000 + 20 * QUARTER;
  const r = run([...spray(20), accept(after, "203.0.113.9", "user7")]);
  assert.deepEqual(authLogFindings(r).map((f) => `${f.id}/${f.severity}`), ["authlog.success-after-slow-failures/high"], "never banned: only the login is reported");
  const ev = slowFindings(r)[0]?.evidence as { user: string; sprayer: { source: string; failures: number; firstReachedLine: unknown }; guessedUser: unknown };
  assert.equal(ev.user, "user7");
  assert.deepEqual([ev.sprayer.source, ev.sprayer.failures, ev.guessedUser], ["203.0.113.9", 20, null]);
  assert.deepEqual(ev.sprayer.firstReachedLine, { file: "auth.log", line: 20 });
  assert.equal(slowFindings(run([...spray(20), accept(after, "203.0.113.9", "user7", "keyboard-interactive/pam")])).length, 1);
  assert.deepEqual(slowFindings(run([...spray(19), accept(after, "203.0.113.9", "user7")])), []);
  // A slow campaign wins by guessing a password; a key login from a shared address (a NAT, a bastion) is left alone.
  assert.deepEqual(slowFindings(run([...spray(20), accept(after, "203.0.113.9", "user7", "publickey")])), []);
});

test("names spread over more than 24 hours, or a login more than 24 hours after the spraying, are not suspect", () => {
  const start = T0 - 48 * 3600_000;
  // One name every 80 minutes: any 20 of them span 25 h 20 min.
  const spread = Array.from({ length: 30 }, (_, i) => fail(start + i * 80 * 60_000, "203.0.113.9", `user${i}`));
  assert.deepEqual(slowFindings(run([...spread, accept(start + 30 * 80 * 60_000, "203.0.113.9", "user7")])), []);
  const spray = paced(20, () => "203.0.113.9", (i) => `user${i}`, start);
  const lastMark = start + 19 * QUARTER;
  assert.equal(slowFindings(run([...spray, accept(lastMark + 23 * 3600_000, "203.0.113.9", "user7")])).length, 1);
  assert.deepEqual(slowFindings(run([...spray, accept(lastMark + 25 * 3600_000, "203.0.113.9", "user7")])), []);
});

test("a botnet guessing one user's password from a new address every 15 minutes, then a password login from elsewhere, is high; the owner's key login is not", () => {
  const guesses = (n: number): string[] => paced(n, (i) => `198.51.100.${i + 1}`, () => "deploy");
  const after = T0 - 10 * 3600_000 + 20 * QUARTER;
  const r = run([...guesses(20), accept(after, "192.0.2.200", "deploy")]);
  const f = slowFindings(r);
  assert.equal(f.length, 1);
  assert.equal(f[0]?.severity, "high");
  assert.match(f[0]?.title ?? "", /deploy logged in by password from 192\.0\.2\.200 after slow password guessing/);
  const ev = f[0]?.evidence as { sprayer: unknown; guessedUser: { failures: number; sources: string[] } };
  assert.deepEqual([ev.sprayer, ev.guessedUser.failures, ev.guessedUser.sources.length], [null, 20, 20]);
  assert.deepEqual(slowFindings(run([...guesses(19), accept(after, "192.0.2.200", "deploy")])), []);
  assert.deepEqual(slowFindings(run([...guesses(20), accept(after, "192.0.2.200", "deploy", "publickey")])), []);
  // Invalid user names are charged to no user (no account to guess): they never make a user "guessed".
  const invalid = paced(20, (i) => `198.51.100.${i + 1}`, () => "invalid user deploy");
  assert.deepEqual(slowFindings(run([...invalid, accept(after, "192.0.2.200", "deploy")])), []);
});

test("an IPv6 client spraying from a new address of its /64 for every name is one sprayer: a login from another address in it is suspect", () => {
  const spray = paced(20, (i) => `2001:db8:1:2::${(i + 1).toString(16)}`, (i) => `user${i}`);
  const f = slowFindings(run([...spray, accept(T0 - 10 * 3600_000 + 20 * QUARTER, "2001:db8:1:2:aaaa::77", "user3")]));
  assert.equal(f.length, 1);
  assert.equal((f[0]?.evidence["sprayer"] as { source: string }).source, "2001:db8:1:2::/64");
  assert.match(f[0]?.detail ?? "", /lies in the IPv6 \/64 2001:db8:1:2::\/64/);
});

test("the same spray at fail2ban's pace stays one critical success-after-failures, not also a slow finding", () => {
  const fast = Array.from({ length: 20 }, (_, i) => fail(T0 + i * 10_000, "203.0.113.9", `user${i}`));
  const findings = authLogFindings(run([...fast, accept(T0 + 300_000, "203.0.113.9", "user7"), accept(T0 + 400_000, "203.0.113.9", "user7")]));
  const critical = findings.filter((f) => f.id === "authlog.success-after-failures");
  assert.deepEqual(critical.map((f) => [f.severity, f.evidence["laterLogins"]]), [["critical", 1]]);
  assert.deepEqual(slowFindings(run(fast)), []);
  assert.equal(findings.filter((f) => f.id === "authlog.success-after-slow-failures").length, 0);
});

test("files in any order: a slow spray in auth.log.1 read after the login makes it suspect, and a brute force read later raises a slow-suspect login to critical, counted once", () => {
  const start = T0 - 10 * 3600_000;
  const spray = paced(20, () => "203.0.113.9", (i) => `user${i}`, start);
  const login = accept(start + 20 * QUARTER, "203.0.113.9", "user7");
  assert.equal(slowFindings(files([["auth.log", [login]], ["auth.log.1", spray]])).length, 1);
  // Stamped after the login, a spray in the other file does not make it suspect.
  assert.deepEqual(slowFindings(files([["auth.log", [accept(start - 60_000, "203.0.113.9", "user7")]], ["auth.log.1", spray]])), []);
  // Slowly guessed when read (suspect, high), then the file read next shows its address banned before it: one
  // critical finding for the pair, whose second login is its only repeat.
  const guessed = paced(20, (i) => `198.51.100.${i + 1}`, () => "deploy", start);
  const newer = [...guessed, accept(start + 20 * QUARTER, "192.0.2.200", "deploy"), accept(start + 21 * QUARTER, "192.0.2.200", "deploy")];
  const older = Array.from({ length: 5 }, (_, i) => fail(start - 3600_000 + i * 1000, "192.0.2.200", "invalid user x"));
  const r = files([["auth.log", newer], ["auth.log.1", older]]);
  assert.deepEqual(slowFindings(r), []);
  const critical = authLogFindings(r).filter((f) => f.id === "authlog.success-after-failures");
  assert.deepEqual(critical.map((f) => [f.evidence["address"], f.evidence["laterLogins"]]), [["192.0.2.200", 1]]);
  assert.match(critical[0]?.detail ?? "", /had already failed 5 times.*password guessing/);
});
