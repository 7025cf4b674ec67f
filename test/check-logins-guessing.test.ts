// `bulwark check logins`' rule for slow guessing of one account, `logins.guessed-account` (src/checks/logins/guessed.ts):
// the opposite shape of a spraying address, one account tried from many addresses (a botnet trying one password per
// address per hour), each address under every limit flood control keeps, and the owner's own sign-ins resetting its
// 100-in-a-row stop and the `failuresBefore` that `logins.after-failures` reads. Written as attacks that must fail: over
// real HTTP logins end to end (SQLite), and on both dialects from audit rows written as the login path writes them.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { checkLogins, DEFAULT_LOGINS_OPTIONS, type GuessedAccount, type LoginsCheckOptions, type LoginsReport, type SignIn } from "../src/checks/logins/index.ts";
import type { Finding } from "../src/checks/finding.ts";
import type { Database } from "../src/store/database.ts";
import { rawAuditStore, type AuditRow } from "./helpers/audit-rows.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";
import { loginFrom } from "./helpers/checks.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Midnight UTC, 10 December 2026: after sign-in events carried sessionId, newDevice and failuresBefore. */
const T0 = Date.UTC(2026, 11, 10);

const guessedFindings = (findings: readonly Finding[]): Finding[] => findings.filter((f) => f.id === "logins.guessed-account");
const sessionsOf = (finding: Finding | undefined): unknown[] => ((finding?.evidence["signIns"] as SignIn[] | undefined) ?? []).map((s) => s.sessionId);

describe("check logins --guess-min, over real sign-ins [sqlite]", () => {
  const fx = sharedFixture();

  const login = (identifier: string, password: string, address: string) => loginFrom(fx, identifier, password, address);

  it("attack: a botnet guesses one account slowly (30 failures from 30 addresses over 20 hours, the owner signing in from a known browser three times in between), then signs in from a new browser: reported high, naming the account and the session to end, and --ids-out holds the account; logins.after-failures alone does not name it (ASVS 6.3.1, 6.3.5, 16.3.1)", async () => {
    const owner = await fx.user("slowly-guessed@example.org");
    const home = fx.browser();
    const start = Math.floor(fx.clock.now() / HOUR) * HOUR + HOUR;
    fx.clock.set(start + MINUTE);
    assert.equal((await home.login(owner.email, owner.password)).statusCode, 200, "the owner's browser is known from here on (a new browser, but before any guess)");
    const ownerSessions: string[] = [];
    for (let i = 0; i < 30; i++) {
      fx.clock.set(start + 10 * MINUTE + i * 40 * MINUTE);
      const res = await login(owner.email, `guess number ${i}`, `198.51.100.${10 + i}`);
      assert.equal(res.statusCode, 401, `guess ${i}: one per address, under every window flood control keeps: ${res.body}`);
      if (i === 7 || i === 15 || i === 26) {
        fx.clock.set(start + 30 * MINUTE + i * 40 * MINUTE);
        const own = await home.login(owner.email, owner.password);
        assert.equal(own.statusCode, 200, own.body);
        ownerSessions.push(own.json().sessionId as string);
      }
    }
    // Guess 31 was the password, from a browser the account never used.
    fx.clock.set(start + 20 * HOUR + 30 * MINUTE);
    const hit = await login(owner.email, owner.password, "203.0.113.77");
    assert.equal(hit.statusCode, 200, hit.body);
    const session = hit.json().sessionId as string;
    fx.clock.set(start + 22 * HOUR);

    const since = new Date(start).toISOString();
    const until = new Date(start + 22 * HOUR).toISOString();
    const env = { BULWARK_DATA_DIR: fx.app.config.dataDir };
    const ids = join(fx.app.config.dataDir, "..", "guessed-ids.txt");
    const run = await bulwarkInProcess(["check", "logins", "--since", since, "--until", until, "--json", "--ids-out", ids], env);
    assert.equal(run.code, 1, run.stderr);
    const out = JSON.parse(run.stdout) as { failed: number; findings: Finding[]; guessedAccounts: GuessedAccount[]; sprayingAddresses: unknown[] };
    assert.equal(out.failed, 30);
    assert.deepEqual(out.sprayingAddresses, [], "one account per address: no spraying address");
    const [finding, ...others] = guessedFindings(out.findings);
    assert.ok(finding, `no logins.guessed-account finding: ${JSON.stringify(out.findings)}`);
    assert.equal(others.length, 0);
    assert.equal(finding.severity, "high");
    assert.deepEqual(finding.evidence["account"], { userId: owner.id, email: owner.email });
    assert.deepEqual([finding.evidence["failed"], finding.evidence["clients"], finding.evidence["addresses"], finding.evidence["knownBrowserSignIns"]], [30, 30, 30, 3]);
    assert.equal(finding.evidence["firstFailure"], new Date(start + 10 * MINUTE).toISOString());
    assert.equal(finding.evidence["lastFailure"], new Date(start + 10 * MINUTE + 29 * 40 * MINUTE).toISOString());
    // Only the new browser's sign-in is listed: not the owner's three, nor the owner's first (new, but before any guess).
    const listed = finding.evidence["signIns"] as SignIn[];
    assert.deepEqual(listed.map((s) => [s.userId, s.email, s.ip, s.sessionId, s.newDevice, s.failuresBefore]), [[owner.id, owner.email, "203.0.113.77", session, true, 3]]);
    assert.deepEqual(out.guessedAccounts.map((a) => [a.userId, a.failed, a.clients, a.newDeviceSignIns]), [[owner.id, 30, 30, 1]], "--json lists it beside sprayingAddresses");
    assert.equal(readFileSync(ids, "utf8"), `${owner.id}\n`);

    // Why the rule: the owner's sign-ins reset the streak, so the guess that worked came after 3 failures in a row, under
    // --streak 5. The sign-in-after-failures rule names the owner's own three sign-ins (each after 8 or more failures
    // in a row) and not the attacker's: it alone would send the responder to the wrong sessions.
    const after = out.findings.find((f) => f.id === "logins.after-failures");
    assert.ok(!sessionsOf(after).includes(session), `logins.after-failures named it after all: ${JSON.stringify(after)}`);
    assert.deepEqual(sessionsOf(after), ownerSessions);

    // Human output names the account and the session; at --guess-min 31 (above its failures) the account is not reported,
    // and the attacker's session is named nowhere.
    const human = await bulwarkInProcess(["check", "logins", "--since", since, "--until", until, "--fail-on", "none"], env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /\[HIGH\] logins\.guessed-account/);
    assert.ok(human.stdout.includes(owner.email) && human.stdout.includes(session), human.stdout);
    const above = await bulwarkInProcess(["check", "logins", "--since", since, "--until", until, "--json", "--fail-on", "none", "--guess-min", "31"], env);
    assert.equal(above.code, 0, above.stderr);
    const aboveOut = JSON.parse(above.stdout) as { findings: Finding[]; guessedAccounts: GuessedAccount[] };
    assert.deepEqual([guessedFindings(aboveOut.findings), aboveOut.guessedAccounts], [[], []]);
    assert.ok(!above.stdout.includes(session), "without the rule the guess that worked is named nowhere");
  });

  it("bad --guess-min values (0, -1, abc, 1e9) are refused naming the option, before any store is read (exit 2)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-guess-min-"));
    try {
      const store = join(dir, "no-store-here");
      for (const value of ["0", "-1", "abc", "1e9", "", "20.5"]) {
        const run = await bulwarkInProcess(["check", "logins", "--guess-min", value], { BULWARK_DATA_DIR: store });
        assert.equal(run.code, 2, `--guess-min ${JSON.stringify(value)}: ${run.stderr}`);
        assert.match(run.stderr, /--guess-min/, run.stderr);
        assert.ok(!existsSync(store), "no store was looked for, let alone made");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A failed login on `subject` (an account id, or `id:<tag>` for an identifier that names none) from `ip`. */
const failed = (subject: string, at: number, ip: string): AuditRow => ({
  type: "auth.login.failed", subject, at, data: { ip, reason: subject.startsWith("id:") ? "unknown-account" : "wrong-password", userAgent: "Mozilla/5.0" },
});

/** A sign-in to `userId` as the login route records it. */
const signedIn = (userId: string, at: number, ip: string, newDevice: boolean, failuresBefore = 0): AuditRow => ({
  type: "auth.login.succeeded", subject: userId, at,
  data: { ip, userAgent: "Mozilla/5.0", rehashed: false, fromScheme: "argon2id", mustChangePassword: false, failuresBefore, sessionId: `ses_${userId}_${at}`, newDevice },
});

/** `n` failures on `userId` over 20 hours from T0 + 1h, from `address(i)`; the owner's sign-ins from a known browser after failures 8, 16 and 27. */
function campaign(userId: string, n: number, address: (i: number) => string): AuditRow[] {
  const rows: AuditRow[] = [];
  for (let i = 0; i < n; i++) {
    const at = T0 + HOUR + Math.floor((i * 20 * HOUR) / n);
    rows.push(failed(userId, at, address(i)));
    if (i === 7 || i === 15 || i === 26) rows.push(signedIn(userId, at + MINUTE, "192.0.2.44", false, 0));
  }
  return rows;
}

const day = (database: Database, options: Partial<LoginsCheckOptions> = {}): Promise<LoginsReport> =>
  checkLogins(database, { since: T0, until: T0 + DAY, ...DEFAULT_LOGINS_OPTIONS, pageSize: 50, ...options });

forEachDialect("check logins, guessed accounts", (dialect) => {
  it("attack: the same botnet from one IPv6 host rotating through 30 addresses of its /64 is one client, and its sign-in from a fourth address is reported high; an IPv4 client's spellings are one client too", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "g6");
    await insert(campaign("usr_v6", 30, (i) => `2001:db8:66:1::${(0x100 + i).toString(16)}`));
    await insert([signedIn("usr_v6", T0 + 21 * HOUR + 30 * MINUTE, "2001:db8:66:1::beef", true, 3)]);
    // 25 failures from one IPv4 client under three spellings: as written, as a dual-stack socket reports it, with a port.
    await insert(Array.from({ length: 25 }, (_, i) => failed("usr_v4", T0 + 2 * HOUR + i * 30 * MINUTE, ["198.51.100.7", "::ffff:198.51.100.7", "198.51.100.7:4444"][i % 3]!)));
    const report = await day(database);
    assert.deepEqual(report.guessedAccounts.map((a) => [a.userId, a.failed, a.clients, a.clientsComplete, a.addresses, a.newDeviceSignIns, a.knownBrowserSignIns]), [
      ["usr_v6", 30, 1, true, 30, 1, 3],
      ["usr_v4", 25, 1, true, 3, 0, 0],
    ]);
    const [v6, v4] = guessedFindings(report.findings);
    assert.equal(v6?.severity, "high");
    assert.deepEqual(sessionsOf(v6), [`ses_usr_v6_${T0 + 21 * HOUR + 30 * MINUTE}`]);
    assert.equal(v4?.severity, "medium", "no sign-in after the guessing: its password held");
    assert.deepEqual(report.reportedAccounts, ["usr_v6"]);
    assert.equal(report.findings.find((f) => f.id === "logins.after-failures"), undefined, "3 failures in a row before the sign-in: under --streak");
  });

  it("a normal user's three typos are not reported; an account at exactly --guess-min is (medium: a new browser signed in before its first failure, a known one after), one under it is not", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "gb");
    const rows: AuditRow[] = [];
    for (let i = 0; i < 3; i++) rows.push(failed("usr_typos", T0 + 8 * HOUR + i * MINUTE, "192.0.2.5"));
    rows.push(signedIn("usr_typos", T0 + 8 * HOUR + 4 * MINUTE, "192.0.2.5", true, 3));
    rows.push(signedIn("usr_at", T0 + 30 * MINUTE, "203.0.113.30", true, 0));
    for (let i = 0; i < 20; i++) rows.push(failed("usr_at", T0 + HOUR + i * 45 * MINUTE, `198.51.100.${100 + i}`));
    rows.push(signedIn("usr_at", T0 + 23 * HOUR, "192.0.2.6", false, 0));
    for (let i = 0; i < 19; i++) rows.push(failed("usr_below", T0 + HOUR + i * 45 * MINUTE, `198.51.100.${150 + i}`));
    rows.sort((a, b) => a.at - b.at);
    await insert(rows);
    const report = await day(database);
    assert.deepEqual(report.guessedAccounts.map((a) => [a.userId, a.failed, a.newDeviceSignIns, a.knownBrowserSignIns]), [["usr_at", 20, 0, 1]]);
    const findings = guessedFindings(report.findings);
    assert.deepEqual(findings.map((f) => [f.severity, (f.evidence["account"] as { userId: string }).userId, f.evidence["signInsCount"]]), [["medium", "usr_at", 0]]);
    assert.deepEqual(report.reportedAccounts, []);
    // The bar is the option: at 21 nothing, at 3 the typing user too (medium: the new browser signed in after them).
    assert.deepEqual(guessedFindings((await day(database, { guessMin: 21 })).findings), []);
    const low = await day(database, { guessMin: 3 });
    assert.deepEqual(low.guessedAccounts.map((a) => [a.userId, a.newDeviceSignIns]), [["usr_typos", 1], ["usr_at", 0], ["usr_below", 0]]);
  });

  it("attack: 50 failures from 50 addresses on an identifier that names no account are not a guessed account (nothing to take over); they still count, and an account is judged apart", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "gu");
    await insert(Array.from({ length: 50 }, (_, i) => failed("id:k7c2tagofanidentifier", T0 + HOUR + i * 20 * MINUTE, `198.51.100.${i + 1}`)));
    await insert([signedIn("usr_someone", T0 + 20 * HOUR, "203.0.113.9", true, 0)]);
    const report = await day(database);
    assert.equal(report.failed, 50);
    assert.deepEqual(report.guessedAccounts, []);
    assert.deepEqual(guessedFindings(report.findings), []);
    assert.deepEqual(report.findings, [], "slow, one identifier per address: no wave, no spraying address either");
  });

  it("attack: 24 accounts guessed harder than the victim do not push it out of the findings: the 20 most severe are one finding each, those a new browser signed in to first, the rest one finding", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "gr");
    const rows: AuditRow[] = [];
    for (let a = 0; a < 24; a++) for (let i = 0; i < 40 + a; i++) rows.push(failed(`usr_noise${String(a).padStart(2, "0")}`, T0 + HOUR + a * MINUTE + i * 20 * MINUTE, `198.51.100.${(i % 200) + 1}`));
    rows.push(...campaign("usr_victim", 20, (i) => `203.0.113.${i + 1}`));
    rows.sort((a, b) => a.at - b.at);
    await insert(rows);
    await insert([signedIn("usr_victim", T0 + 22 * HOUR, "192.0.2.200", true, 1)]);
    const report = await day(database);
    const findings = guessedFindings(report.findings);
    assert.equal(findings.length, 21);
    assert.deepEqual([findings[0]!.severity, (findings[0]!.evidence["account"] as { userId: string }).userId], ["high", "usr_victim"]);
    assert.deepEqual((findings[1]!.evidence["account"] as { userId: string }).userId, "usr_noise23", "then the most failures");
    const summary = findings[20]!;
    assert.equal(summary.severity, "medium");
    assert.match(summary.title, /^5 more account\(s\)/);
    assert.deepEqual((summary.evidence["accounts"] as GuessedAccount[]).map((a) => a.userId), ["usr_noise04", "usr_noise03", "usr_noise02", "usr_noise01", "usr_noise00"]);
    assert.equal(report.guessedAccounts.length, 25);
    assert.deepEqual(report.reportedAccounts, ["usr_victim"]);
  });

  it("attack: 10,001 accounts failing more often than the victim push it past the accounts kept (10,000), and its sign-in from a new browser is still reported high, the accounts past the bound counted in the summary", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "gk");
    const rows: AuditRow[] = [];
    for (let a = 0; a < 10_001; a++) for (let i = 0; i < 2; i++) rows.push(failed(`usr_d${a}`, T0 + HOUR + a * 2_000 + i * 1_000, "198.51.100.1"));
    rows.push(failed("usr_victim", T0 + 12 * HOUR, "203.0.113.5"));
    await insert(rows);
    // The owner's sign-in from a known browser before the attacker's (counted, not listed), and one to a decoy.
    await insert([signedIn("usr_victim", T0 + 12 * HOUR + 30 * MINUTE, "192.0.2.7", false, 1), signedIn("usr_victim", T0 + 13 * HOUR, "203.0.113.6", true, 0), signedIn("usr_d5", T0 + 13 * HOUR, "192.0.2.8", false, 0)]);
    const report = await day(database, { guessMin: 1, sprayMin: 20_000 });
    const findings = guessedFindings(report.findings);
    assert.deepEqual([findings[0]?.severity, (findings[0]?.evidence["account"] as { userId: string } | undefined)?.userId], ["high", "usr_victim"], JSON.stringify(findings[0]));
    assert.deepEqual([findings[0]?.evidence["knownBrowserSignIns"], sessionsOf(findings[0])], [1, [`ses_usr_victim_${T0 + 13 * HOUR}`]]);
    assert.ok(report.reportedAccounts.includes("usr_victim"));
    const summary = findings.at(-1)!;
    assert.equal(summary.evidence["accountsCountedOnly"], 1, "10,002 at the bar: 10,000 kept, the victim read on its own, one counted only");
    assert.match(summary.title, /^9982 more account\(s\)/);
    assert.equal(report.findings.find((f) => f.id === "logins.analysis-incomplete"), undefined, "every sign-in was judged");
  });

  it("attack: past the accounts kept, more accounts signed in to from new browsers than are held to judge them (10,001) make the report say the analysis was incomplete, high, rather than pass for complete", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "gi");
    const rows: AuditRow[] = [];
    for (let a = 0; a < 10_000; a++) for (let i = 0; i < 2; i++) rows.push(failed(`usr_d${a}`, T0 + HOUR + a * 1_000 + i * 500, "198.51.100.1"));
    for (let a = 0; a < 10_001; a++) rows.push(failed(`usr_s${a}`, T0 + 5 * HOUR + a * 1_000, "198.51.100.2"));
    await insert(rows);
    await insert(Array.from({ length: 10_001 }, (_, a) => signedIn(`usr_s${a}`, T0 + 10 * HOUR + a * 1_000, "203.0.113.6", true, 1)));
    const report = await day(database, { guessMin: 1, sprayMin: 20_000, pageSize: 5_000 });
    const incomplete = report.findings.find((f) => f.id === "logins.analysis-incomplete");
    assert.equal(incomplete?.severity, "high", `a guessed account's sign-in may be missing and the report did not say so: ${JSON.stringify(report.findings.map((f) => [f.id, f.severity, f.title]))}`);
    assert.deepEqual([incomplete.evidence["guessedAccounts"], incomplete.evidence["guessedAccountsKept"], incomplete.evidence["guessedSignInsCut"]], [20_001, 20_000, true]);
    assert.match(incomplete.title, /guessed accounts/);
    assert.equal(report.reportedAccounts.length, 10_000, "the 10,000 held were judged");
  });

  it("attack: a campaign split between two daily runs (15 guesses on the day before, 15 in the window, the bar at 20) is judged whole in the second run: the account is reported with 30 failures, 15 of them in the window, and its new browser's sign-in high (was: 15 in each window, under the bar in both) (ASVS 6.3.1, 16.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "gs");
    const rows: AuditRow[] = [];
    for (let i = 0; i < 15; i++) rows.push(failed("usr_split", T0 - 20 * HOUR + i * HOUR, `198.51.100.${i + 1}`));
    for (let i = 0; i < 15; i++) rows.push(failed("usr_split", T0 + HOUR + i * HOUR, `198.51.100.${i + 101}`));
    rows.push(signedIn("usr_split", T0 + 17 * HOUR, "203.0.113.40", true, 1));
    await insert(rows);
    const previous = await checkLogins(database, { since: T0 - DAY, until: T0, ...DEFAULT_LOGINS_OPTIONS, pageSize: 50 });
    assert.deepEqual(previous.guessedAccounts, [], "the day before alone is under the bar (this test's premise)");
    const report = await day(database);
    assert.deepEqual(report.guessedAccounts.map((a) => [a.userId, a.failed, a.failedInWindow, a.clients, a.newDeviceSignIns, a.firstFailure]),
      [["usr_split", 30, 15, 30, 1, new Date(T0 - 20 * HOUR).toISOString()]], `the split campaign was not judged whole: ${JSON.stringify(report.guessedAccounts)}`);
    const [finding] = guessedFindings(report.findings);
    assert.equal(finding?.severity, "high");
    assert.deepEqual(sessionsOf(finding), [`ses_usr_split_${T0 + 17 * HOUR}`]);
    assert.match(finding?.detail ?? "", /15 of them in the window and the rest in the 24 hours before it/);
    assert.deepEqual(report.reportedAccounts, ["usr_split"]);
  });

  it("attack: the guess that worked came the evening before the window, after 15 failures, and the guessing went on in it (15 more): the second run reports the account high with that sign-in, which the first run could not judge (was: sign-ins before the window were not read for it)", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "ge");
    const rows: AuditRow[] = [];
    for (let i = 0; i < 15; i++) rows.push(failed("usr_evening", T0 - 16 * HOUR + i * HOUR, `198.51.100.${i + 1}`));
    rows.push(signedIn("usr_evening", T0 - 30 * MINUTE, "203.0.113.41", true, 0));
    rows.push(signedIn("usr_evening", T0 - 20 * HOUR, "192.0.2.41", true, 0), signedIn("usr_evening", T0 - 10 * HOUR, "192.0.2.41", false, 0));
    for (let i = 0; i < 15; i++) rows.push(failed("usr_evening", T0 + HOUR + i * HOUR, `198.51.100.${i + 101}`));
    rows.sort((a, b) => a.at - b.at);
    await insert(rows);
    const report = await day(database);
    const [finding, ...others] = guessedFindings(report.findings);
    assert.equal(others.length, 0);
    assert.equal(finding?.severity, "high", `the new browser's sign-in after the first failures was not judged: ${JSON.stringify(report.guessedAccounts)}`);
    assert.deepEqual(sessionsOf(finding), [`ses_usr_evening_${T0 - 30 * MINUTE}`], "the owner's new phone before the guessing began is not listed");
    assert.deepEqual(report.guessedAccounts.map((a) => [a.failed, a.failedInWindow, a.newDeviceSignIns, a.knownBrowserSignIns]), [[30, 15, 1, 1]]);
    assert.deepEqual(report.reportedAccounts, ["usr_evening"]);
  });

  it("the look-back has edges: an account guessed 25 times the day before and not since is the run before's to report, unless a browser new to it signs in in the window (the guess that worked, after the daily edge: the run before never saw it); failures more than 24 hours before the window do not count toward the day's bar (the week's reports that account, 30 failures from 30 clients, medium); a spraying address split 12 + 12 accounts over the two days is reported, one seen only the day before is not, nor a sign-in from it by a browser its account knew (was: the split sprayer was under the bar in both runs; the account guessed the day before and got into from a new browser in the window was reported by neither run)", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "gl");
    const rows: AuditRow[] = [];
    for (let i = 0; i < 25; i++) rows.push(failed("usr_yesterday", T0 - 20 * HOUR + i * 30 * MINUTE, `198.51.100.${i + 1}`));
    rows.push(signedIn("usr_yesterday", T0 + 2 * HOUR, "203.0.113.42", true, 0));
    // Guessed as often the day before; in the window only its owner's known browser, and a new one before the window (the run before's).
    for (let i = 0; i < 25; i++) rows.push(failed("usr_held", T0 - 20 * HOUR + i * 30 * MINUTE, `198.51.100.${i + 101}`));
    rows.push(signedIn("usr_held", T0 - 2 * HOUR, "203.0.113.43", true, 0), signedIn("usr_held", T0 + 3 * HOUR, "192.0.2.43", false, 0));
    for (let i = 0; i < 15; i++) rows.push(failed("usr_old", T0 - 30 * HOUR + i * MINUTE, `198.51.100.${i + 51}`));
    for (let i = 0; i < 15; i++) rows.push(failed("usr_old", T0 + 3 * HOUR + i * HOUR, `198.51.100.${i + 151}`));
    for (let i = 0; i < 12; i++) rows.push(failed(`id:spraytaga${i}`, T0 - 6 * HOUR + i * MINUTE, "192.0.2.90"));
    for (let i = 0; i < 12; i++) rows.push(failed(`id:spraytagb${i}`, T0 + 6 * HOUR + i * MINUTE, "192.0.2.90"));
    for (let i = 0; i < 30; i++) rows.push(failed(`id:spraytagc${i}`, T0 - 6 * HOUR + i * MINUTE, "192.0.2.91"));
    // From the address that stopped before the window, only a browser its account knew signs in (a shared NAT's user).
    rows.push(signedIn("usr_nat", T0 + 4 * HOUR, "192.0.2.91", false, 0));
    rows.sort((a, b) => a.at - b.at);
    await insert(rows);
    const report = await day(database);
    // usr_old is under the bar within the day before and the window (15 + 15, half of them 30 hours back); over the
    // week before the window it took 30 from 30 clients: the longer horizon reports it, medium (nothing got in).
    assert.deepEqual(report.guessedAccounts.map((a) => [a.userId, a.failed, a.failedInWindow, a.newDeviceSignIns]), [["usr_yesterday", 25, 0, 1], ["usr_old", 30, 15, 0]],
      `only the account a new browser got into in the window, and the one over the week; not one only its owner signed in to since: ${JSON.stringify(report.guessedAccounts)}`);
    assert.deepEqual(guessedFindings(report.findings).map((f) => f.severity), ["high", "medium"]);
    assert.match(guessedFindings(report.findings)[1]?.detail ?? "", /over the window and the 7 days before it, from at least 3 clients, typos each corrected at once by the owner.s sign-in left out/);
    assert.deepEqual(report.sprayingAddresses.map((a) => [a.ip, a.accounts, a.failed]), [["192.0.2.90", 24, 24]], "the split sprayer whole, the one that stopped before the window not");
    assert.deepEqual(report.reportedAccounts, ["usr_yesterday"]);
  });

  it("an account guessed from 2,500 addresses has its clients counted from 2,000 of them, and says it is a lower bound", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "gw");
    await insert(Array.from({ length: 2_500 }, (_, i) => failed("usr_wide", T0 + HOUR + i * 20_000, `100.64.${Math.floor(i / 250)}.${(i % 250) + 1}`)));
    const report = await day(database);
    assert.deepEqual(report.guessedAccounts.map((a) => [a.userId, a.failed, a.clients, a.addresses, a.clientsComplete]), [["usr_wide", 2_500, 2_000, 2_000, false]]);
    const [finding] = guessedFindings(report.findings);
    assert.match(finding?.title ?? "", /2500 failed logins from 2000 or more client\(s\)/);
  });
});
