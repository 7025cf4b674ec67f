// `bulwark check logins --state FILE` (src/checks/logins/window-state.ts): daily runs that start where the last
// successful one ended, however late cron starts them; a state that advances only once the report is out; and state
// files that could skip sign-ins (edited, another account's, not a file) refused whole, before anything is judged.
// The runs are the CLI's own, in this process with its clock set where cron would start it, or spawned for a crash.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { newestSeq } from "../src/checks/logins/queries.ts";
import { stateText } from "../src/checks/logins/window-state.ts";
import { bulwark, bulwarkInProcess } from "./helpers/cli.ts";
import { loginFrom } from "./helpers/checks.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The first daily run: 02:00 UTC, 4 November 2026 (the fixture's clock starts on 2 November). */
const R1 = Date.UTC(2026, 10, 4, 2);
/** The second, five minutes late: more than the minute each run judges again before its window. */
const R2 = R1 + DAY + 5 * MINUTE;
const iso = (ms: number): string => new Date(ms).toISOString();
/** The window's end a state file records. */
const untilIn = (path: string): string => (JSON.parse(readFileSync(path, "utf8")) as { until: string }).until;
/** A state of a run that ended at `at`, its log position past every event here: nothing reads as written late. */
const stateAt = (at: number): string => stateText({ until: at, seq: Number.MAX_SAFE_INTEGER });

interface Report {
  window: { since: string; until: string; hours: number };
  state?: { file: string; lastEnd: string | null; sinceIgnored: boolean; longWindow: boolean; judgedFrom: string };
  findings: Array<{ id: string; severity: string; evidence: Record<string, unknown> }>;
}

/** A file's bytes, mode, owner and kind: what "left untouched" means. */
function snapshot(path: string): string {
  const st = lstatSync(path);
  const body = st.isFile() ? readFileSync(path).toString("base64") : st.isSymbolicLink() ? readlinkSync(path) : "";
  return JSON.stringify({ kind: st.isFile() ? "file" : st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : st.isFIFO() ? "fifo" : "other", mode: st.mode, uid: st.uid, ino: st.ino, mtime: st.mtimeMs, body });
}

describe("check logins --state [sqlite]", () => {
  const fx = sharedFixture();
  let root: string;
  let k = 0;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "bulwark-logins-state-"));
    chmodSync(root, 0o700);
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: fx.app.config.dataDir });
  /** A new private directory for one case's files. */
  const place = (): string => {
    const dir = join(root, `case-${++k}`);
    mkdirSync(dir, { mode: 0o700 });
    return dir;
  };
  /** `bulwark check logins ARGS --json` as cron starts it at `at`: this process's clock (Date) set there for the run. */
  async function cronAt(t: TestContext, at: number, args: string[]): Promise<{ code: number; out: Report; stderr: string }> {
    t.mock.timers.enable({ apis: ["Date"], now: at });
    try {
      const r = await bulwarkInProcess(["check", "logins", ...args, "--json"], env());
      return { code: r.code, out: (r.stdout === "" ? null : JSON.parse(r.stdout)) as Report, stderr: r.stderr };
    } finally {
      t.mock.timers.reset();
    }
  }
  const namesSession = (r: Report, session: string): boolean => r.findings.some((f) => JSON.stringify(f.evidence).includes(`"${session}"`));

  it("attack: a guess that worked two minutes after a daily run, the next run started five minutes late — with --state the second run starts where the first ended and reports it, high, naming its session; the state records each run's end (ASVS 6.3.1, 6.3.5, 16.3.1) (was: with --since 24h no run judged the sign-ins between the two windows)", async (t) => {
    const victim = await fx.user("late-cron@example.org");
    // Six wrong passwords from six addresses (under every flood-control window), then the right one from a seventh,
    // in a browser the account never used: two minutes after the first run's end.
    for (let i = 0; i < 6; i++) {
      fx.clock.set(R1 + 2 * MINUTE + i * 1_000);
      assert.equal((await loginFrom(fx, victim.email, `guess ${i}`, `203.0.113.${40 + i}`)).statusCode, 401);
    }
    fx.clock.set(R1 + 2 * MINUTE + 10_000);
    const hit = await loginFrom(fx, victim.email, victim.password, "203.0.113.77");
    assert.equal(hit.statusCode, 200, hit.body);
    const session = hit.json().sessionId as string;

    // Today's cron line, `--since 24h`: the first run ends before the sign-in, the second starts five minutes after
    // the first ended (judging from the minute before that), so the sign-in falls between them.
    const plain1 = await cronAt(t, R1, ["--since", "24h", "--fail-on", "none"]);
    const plain2 = await cronAt(t, R2, ["--since", "24h", "--fail-on", "none"]);
    assert.equal(plain1.code, 0, plain1.stderr);
    assert.equal(plain2.code, 0, plain2.stderr);
    assert.equal(plain1.out.window.until, iso(R1));
    assert.equal(plain2.out.window.since, iso(R1 + 5 * MINUTE), "the late run's window starts five minutes after the first one ended");
    assert.equal(namesSession(plain1.out, session) || namesSession(plain2.out, session), false, "premise: with --since 24h neither run names the sign-in");

    // The same two runs with a state file.
    const dir = place();
    const state = join(dir, "logins.state");
    const first = await cronAt(t, R1, ["--state", state]);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual([first.out.window.since, first.out.window.until], [iso(R1 - DAY), iso(R1)], "no state yet: the window is --since's default, 24 hours");
    assert.deepEqual(first.out.state, { file: state, lastEnd: null, sinceIgnored: false, longWindow: false, judgedFrom: iso(R1 - DAY - MINUTE) });
    assert.equal(untilIn(state), iso(R1), "the state records the run's end");
    assert.equal(statSync(state).mode & 0o777, 0o600);

    const second = await cronAt(t, R2, ["--state", state]);
    assert.equal(second.code, 1, `the guess that worked is high, so the default --fail-on fails the run: ${second.stderr}`);
    assert.deepEqual([second.out.window.since, second.out.window.until], [iso(R1), iso(R2)], "the window starts where the last run ended");
    assert.deepEqual(second.out.state, { file: state, lastEnd: iso(R1), sinceIgnored: false, longWindow: false, judgedFrom: iso(R1 - MINUTE) });
    const after = second.out.findings.find((f) => f.id === "logins.after-failures");
    assert.equal(after?.severity, "high", JSON.stringify(second.out.findings));
    assert.ok(namesSession(second.out, session), "the late run names the sign-in's session");
    assert.equal(untilIn(state), iso(R2), "a run with findings (exit 1) finished: the state moves on");
    assert.deepEqual(readdirSync(dir), ["logins.state"], "no temporary file left beside it");
  });

  it("a run that fails before its report is out leaves the state as it was, so the next run judges that window again; a first run that fails creates no state (ASVS 6.3.1, 16.3.1)", async () => {
    const dir = place();
    const state = join(dir, "logins.state");
    writeFileSync(state, stateAt(R2), { mode: 0o600 });
    const before = snapshot(state);
    const until = iso(R2 + DAY);

    // The report cannot be written (standard output on a full disk): judged, but nothing reported.
    const full = openSync("/dev/full", "w");
    try {
      const crashed = await bulwark(["check", "logins", "--state", state, "--until", until, "--json", "--fail-on", "none"], { env: env(), stdout: full, limitMs: 120_000 });
      assert.equal(crashed.signal, null);
      assert.equal(crashed.code, 3, crashed.stderr);
      assert.match(crashed.stderr, /standard output|cannot write/i);
    } finally {
      closeSync(full);
    }
    assert.equal(snapshot(state), before, "the state did not move past a window no report covered");
    assert.deepEqual(readdirSync(dir), ["logins.state"], "no temporary file left beside it");

    // The --ids-out list cannot be created (a file of that name exists): refused, nothing judged, the state as it was.
    const ids = join(dir, "ids.txt");
    writeFileSync(ids, "someone else's list\n");
    const refused = await bulwarkInProcess(["check", "logins", "--state", state, "--until", until, "--ids-out", ids, "--json"], env());
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(snapshot(state), before);

    // The same run, its output written: the window is the one the failed run had, and the state moves on.
    const retry = await bulwarkInProcess(["check", "logins", "--state", state, "--until", until, "--json", "--fail-on", "none"], env());
    assert.equal(retry.code, 0, retry.stderr);
    assert.equal((JSON.parse(retry.stdout) as Report).window.since, iso(R2));
    assert.equal(untilIn(state), iso(R2 + DAY));

    // A first run that fails writes no state: the next first run starts from --since again.
    const fresh = join(dir, "fresh.state");
    const first = await bulwarkInProcess(["check", "logins", "--state", fresh, "--until", until, "--ids-out", ids], env());
    assert.equal(first.code, 2, first.stderr);
    assert.equal(existsSync(fresh), false);
  });

  it("attack: a state file edited, replaced, dated ahead, not a regular file, or writable by another account is refused with exit 2 naming the file and the problem — nothing judged, the file left as it was (ASVS 2.2.1, 6.3.1) (was: no state to trust)", async () => {
    const good = (at: number): string => stateAt(at);
    const future = Date.now() + HOUR;
    const cases: Array<{ name: string; make: (path: string, dir: string) => void; problem: RegExp; rootOnly?: boolean }> = [
      { name: "not JSON", make: (p) => writeFileSync(p, "yesterday\n", { mode: 0o600 }), problem: /not a state file .*not JSON/ },
      { name: "empty", make: (p) => writeFileSync(p, "", { mode: 0o600 }), problem: /not a state file .*empty/ },
      { name: "not UTF-8", make: (p) => writeFileSync(p, Buffer.from([0xff, 0xfe, 0x7b]), { mode: 0o600 }), problem: /not UTF-8/ },
      { name: "a member more", make: (p) => writeFileSync(p, JSON.stringify({ format: "bulwark-check-logins-state/1", until: iso(R1), note: "x" }), { mode: 0o600 }), problem: /members/ },
      { name: "another format", make: (p) => writeFileSync(p, JSON.stringify({ format: "bulwark-check-logins-state/3", until: iso(R1), seq: 1 }), { mode: 0o600 }), problem: /format/ },
      { name: "format 2 without its position", make: (p) => writeFileSync(p, JSON.stringify({ format: "bulwark-check-logins-state/2", until: iso(R1) }), { mode: 0o600 }), problem: /members/ },
      { name: "a position that is no number", make: (p) => writeFileSync(p, JSON.stringify({ format: "bulwark-check-logins-state/2", until: iso(R1), seq: "12" }), { mode: 0o600 }), problem: /seq .*not a position/ },
      { name: "a negative position", make: (p) => writeFileSync(p, JSON.stringify({ format: "bulwark-check-logins-state/2", until: iso(R1), seq: -1 }), { mode: 0o600 }), problem: /seq .*not a position/ },
      { name: "a day that does not exist", make: (p) => writeFileSync(p, JSON.stringify({ format: "bulwark-check-logins-state/1", until: "2026-11-31T02:00:00.000Z" }), { mode: 0o600 }), problem: /until .*not a UTC time/ },
      { name: "a number for the time", make: (p) => writeFileSync(p, JSON.stringify({ format: "bulwark-check-logins-state/1", until: R1 }), { mode: 0o600 }), problem: /until .*not a UTC time/ },
      { name: "too large", make: (p) => writeFileSync(p, `${" ".repeat(4096)}${good(R1)}`, { mode: 0o600 }), problem: /larger than a state file/ },
      { name: "dated an hour ahead", make: (p) => writeFileSync(p, good(future), { mode: 0o600 }), problem: /ahead of this host's clock .*60 s/ },
      { name: "a directory", make: (p) => mkdirSync(p, { mode: 0o700 }), problem: /is a directory/ },
      { name: "a link to a good state", make: (p, dir) => { writeFileSync(join(dir, "real.state"), good(R1), { mode: 0o600 }); symlinkSync(join(dir, "real.state"), p); }, problem: /symbolic link/ },
      { name: "a named pipe", make: (p) => execFileSync("mkfifo", ["-m", "600", p]), problem: /named pipe/ },
      { name: "writable by others", make: (p) => { writeFileSync(p, good(R1)); chmodSync(p, 0o606); }, problem: /writable by others \(mode 606\)/ },
      { name: "writable by its group", make: (p) => { writeFileSync(p, good(R1)); chmodSync(p, 0o620); }, problem: /writable by group \(mode 620\)/ },
      { name: "another account's", make: (p) => { writeFileSync(p, good(R1), { mode: 0o600 }); chownSync(p, 65534, 65534); }, problem: /owned by uid 65534/, rootOnly: true },
      { name: "in a directory others can write", make: (p, dir) => { writeFileSync(p, good(R1), { mode: 0o600 }); chmodSync(dir, 0o777); }, problem: /its directory .* is writable by others \(mode 777\)/ },
      { name: "in a directory that does not exist", make: () => {}, problem: /its directory .* does not exist/ },
    ];
    const wrong: string[] = [];
    for (const c of cases) {
      if (c.rootOnly && process.geteuid?.() !== 0) continue;
      const dir = place();
      const state = c.name === "in a directory that does not exist" ? join(dir, "missing", "logins.state") : join(dir, "logins.state");
      c.make(state, dir);
      const present = (): boolean => lstatSync(state, { throwIfNoEntry: false }) !== undefined;
      const before = present() ? snapshot(state) : null;
      const ids = join(dir, "ids.txt");
      const r = await bulwarkInProcess(["check", "logins", "--state", state, "--until", iso(R2), "--ids-out", ids, "--json"], env());
      const after = present() ? snapshot(state) : null;
      const problems = [
        ...(r.code !== 2 ? [`exit ${r.code}`] : []),
        ...(!r.stderr.includes(JSON.stringify(state)) ? ["the message does not name the file"] : []),
        ...(!c.problem.test(r.stderr) ? [`the message does not say ${c.problem}`] : []),
        ...(r.stdout !== "" ? ["a report was printed"] : []),
        ...(existsSync(ids) ? ["--ids-out was created: the run went on"] : []),
        ...(after !== before ? ["the file was changed"] : []),
        ...(readdirSync(dir).some((f) => f.endsWith(".tmp")) ? ["a temporary file was left"] : []),
      ];
      if (problems.length > 0) wrong.push(`${c.name}: ${problems.join(", ")} (${r.stderr.trim()})`);
    }
    assert.deepEqual(wrong, []);

    // A sticky directory others can write (/tmp's mode) cannot have the file replaced: accepted.
    const sticky = place();
    chmodSync(sticky, 0o1777);
    const ok = await bulwarkInProcess(["check", "logins", "--state", join(sticky, "logins.state"), "--since", iso(R1), "--until", iso(R2), "--json", "--fail-on", "none"], env());
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(untilIn(join(sticky, "logins.state")), iso(R2));
  });

  it("--since sets the first window only (the state wins once it exists, and the report says --since was ignored); a window from a state weeks old is judged whole and the report says runs were missed; an end not after the last run's is refused", async () => {
    const dir = place();
    const state = join(dir, "logins.state");
    // First run: no state, the window is --since's.
    const first = await bulwarkInProcess(["check", "logins", "--state", state, "--since", iso(R1 - 3 * DAY), "--until", iso(R1), "--json", "--fail-on", "none"], env());
    assert.equal(first.code, 0, first.stderr);
    assert.equal((JSON.parse(first.stdout) as Report).window.since, iso(R1 - 3 * DAY));
    // Then the state wins over --since, and says so.
    const next = await bulwarkInProcess(["check", "logins", "--state", state, "--since", "2h", "--until", iso(R2), "--fail-on", "none"], env());
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stdout, new RegExp(`^${iso(R1).replace(/\./g, "\\.")} to ${iso(R2).replace(/\./g, "\\.")}:`, "m"));
    assert.match(next.stdout, /--since 2h is ignored/);
    assert.equal(untilIn(state), iso(R2));

    // The last run 40 days ago: one window of 40 days, judged whole, and said to be long.
    writeFileSync(state, stateAt(R2 - 40 * DAY), { mode: 0o600 });
    const long = await bulwarkInProcess(["check", "logins", "--state", state, "--until", iso(R2), "--json", "--fail-on", "none"], env());
    assert.equal(long.code, 0, long.stderr);
    const out = JSON.parse(long.stdout) as Report;
    assert.equal(out.window.since, iso(R2 - 40 * DAY));
    assert.equal(out.window.hours, 40 * 24);
    assert.equal(out.state?.longWindow, true);
    assert.equal(untilIn(state), iso(R2));
    writeFileSync(state, stateAt(R2 - 40 * DAY), { mode: 0o600 });
    const human = await bulwarkInProcess(["check", "logins", "--state", state, "--until", iso(R2), "--fail-on", "none"], env());
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /the window is 40 days long.*runs were missed or failed.*judged whole/);

    // An end at or before the last run's: nothing to judge; refused, the state as it was.
    const before = snapshot(state);
    const back = await bulwarkInProcess(["check", "logins", "--state", state, "--until", iso(R2 - HOUR), "--json"], env());
    assert.equal(back.code, 2, back.stderr);
    assert.match(back.stderr, /--state .*last run ended at .* not before this run's end/);
    assert.equal(snapshot(state), before);

    // An --until ahead of the clock: the state records when the log was read, not a time whose sign-ins are not made yet.
    const ahead = await bulwarkInProcess(["check", "logins", "--state", state, "--until", iso(Date.now() + 2 * DAY), "--json", "--fail-on", "none"], env());
    assert.equal(ahead.code, 0, ahead.stderr);
    const recorded = Date.parse((JSON.parse(readFileSync(state, "utf8")) as { until: string }).until);
    assert.ok(recorded <= Date.now() && recorded > Date.now() - 10 * MINUTE, `recorded ${iso(recorded)}`);
  });

  it("a sign-in written after the last run read the log but stamped before its end is judged: within a day from its stamp, further back named but not judged (a clock out of all bounds); a state of format 1 (no position) is still read (ASVS 6.3.5, 16.3.1)", async () => {
    const dir = place();
    const state = join(dir, "logins.state");
    const end = Date.UTC(2026, 10, 30, 2);
    // The last run ended at `end` and read the log to its newest event; then a node whose clock is behind writes a
    // sign-in after six failures stamped two hours before that end, and another three days before it.
    writeFileSync(state, stateText({ until: end, seq: await newestSeq(fx.app.db) }), { mode: 0o600 });
    const won = async (email: string, at: number, net: number): Promise<string> => {
      const victim = await fx.user(email);
      for (let i = 0; i < 6; i++) {
        fx.clock.set(at + i * 1_000);
        assert.equal((await loginFrom(fx, victim.email, `guess ${i}`, `198.18.${net}.${10 + i}`)).statusCode, 401);
      }
      fx.clock.set(at + 10_000);
      const hit = await loginFrom(fx, victim.email, victim.password, `198.18.${net}.99`);
      assert.equal(hit.statusCode, 200, hit.body);
      return hit.json().sessionId as string;
    };
    const hours = await won("stamped-hours-back@example.org", end - 2 * HOUR, 40);
    const r = await bulwarkInProcess(["check", "logins", "--state", state, "--until", iso(end + DAY), "--json", "--fail-on", "none"], env());
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Report;
    assert.equal(out.window.since, iso(end), "the window itself starts where the last run ended");
    assert.equal(out.state?.judgedFrom, iso(end - 2 * HOUR), "sign-ins are judged from the earliest written late");
    assert.ok(namesSession(out, hours), JSON.stringify(out.findings));

    const days = await won("stamped-days-back@example.org", end - 3 * DAY, 41);
    const human = await bulwarkInProcess(["check", "logins", "--state", state, "--until", iso(end + 2 * DAY), "--fail-on", "none"], env());
    assert.equal(human.code, 0, human.stderr);
    // More than a day back: a clock out of all bounds. Judged from a day back only (no window reopened since then),
    // and the earliest stamp is named for the operator to judge that time.
    assert.match(human.stdout, /login event\(s\) written since the last run read the log are stamped before its end .* judged from 2026-11-30T02:00:00\.000Z \(the earliest is stamped 2026-11-27T02:00:00\.000Z, more than a day back/);
    assert.match(human.stdout, /^2026-12-01T02:00:00\.000Z to /m, "the window itself starts where the last run ended");
    assert.doesNotMatch(human.stdout, new RegExp(days), "the sign-in three days back is not judged again here");

    // Format 1 (no position): read, nothing judged as written late, and the state written back as format 2.
    writeFileSync(state, `${JSON.stringify({ format: "bulwark-check-logins-state/1", until: iso(end + 2 * DAY) })}\n`, { mode: 0o600 });
    const legacy = await bulwarkInProcess(["check", "logins", "--state", state, "--until", iso(end + 3 * DAY), "--json", "--fail-on", "none"], env());
    assert.equal(legacy.code, 0, legacy.stderr);
    assert.equal((JSON.parse(legacy.stdout) as Report).window.since, iso(end + 2 * DAY));
    const written = JSON.parse(readFileSync(state, "utf8")) as { format: string; seq: number };
    assert.equal(written.format, "bulwark-check-logins-state/2");
    assert.equal(written.seq, await newestSeq(fx.app.db));
  });
});
