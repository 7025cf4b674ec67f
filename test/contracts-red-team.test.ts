// Red-team round "contracts": the `bulwark` command's public contracts (DESIGN.md "Interfaces that users and scripts
// rely on", README "Exit codes", src/cli/exit-codes.ts): 0 ok (everything asked for was done and holds); 1 the thing
// checked does not hold; 2 bad usage or bad input, with a message naming it; 3 a runtime failure; `--json` is one JSON
// document on stdout and nothing else, errors on stderr.
// The attacker: nobody malicious at the keyboard — the operator's own script, cron job or runbook, which believes the
// exit code and parses stdout (`set -o pipefail; bulwark … --json | jq`, `… | tee -a incident.log`, `> out.json`),
// and the ordinary accidents around it: a reader that exits first (`grep -q`, a log shipper that dies), a full disk
// under a redirect, a typo in a number, Ctrl-C. What it holds: a shell on the server and the data dir.
// Tried: --json purity across seven commands at BULWARK_LOG_LEVEL=trace (spawned: real fds 1 and 2); the
// --fail-on boundary one step either side; unknown ids and excess arguments on every job command; Ctrl-C on
// `audit tail -f --json`; malformed numbers; stdout that cannot take the output (a closed pipe, /dev/full) for
// commands that act (contain, users create --generate-password).
// Held: --json purity (logs on stderr only, even at trace), failures with an empty stdout and one line on
// stderr, the --fail-on boundary, unknown ids and excess arguments (exit 2 naming them), Ctrl-C on tail -f (exit 0,
// whole JSON lines only).
// Found (fixed since: main.ts no longer ends a running command when stdout fails — its output is dropped, its work
// finishes and the exit code is its own, a lost output other than a gone reader turning 0/1 into 3; `users create`
// hands a generated password to stdout before its COMMIT, as `keys rotate-master --print-key` does, and rolls the
// account back with exit 3 when stdout cannot take it; `audit tail --lines` takes digits only; run.ts reportError
// names a PostgreSQL lock or statement timeout BULWARK_ERR_DB_BUSY): a reader that goes away made the process exit 0 at
// once (main.ts's EPIPE handler, `process.exitCode ?? 0`) in the middle of a command that had not done its work yet — a
// containment job left pending 0/N with exit 0, an account created whose generated password went nowhere with exit 0;
// with a full disk the account was committed before its only password was handed over (exit 3, and the retry was
// refused: the email is taken); `audit tail --lines` took 1e1, 0x2, 0b10, 2.0 and +2 where every other count option
// refuses them; a lock timeout was "internal error: <driver text>".
// Temp dirs only; no network. Each spawned command takes about half a second on an idle machine (the two spawning
// tests run 10–25 s on a loaded one).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { reportError } from "../src/cli/run.ts";
import { bulwark, bulwarkInProcess, initSite, MAIN, TEST_PUBLIC_URL, type CLISite } from "./helpers/cli.ts";

let root: string;
let site: CLISite;

before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-contracts-"));
  site = await initSite(join(root, "site"), { here: true });
  // Twenty synthetic accounts (below contain's confirmation threshold of 100, so no prompt is involved).
  const seeded = await site.runHere(["dev", "seed", "--users", "20", "--json"]);
  assert.equal(seeded.code, 0, seeded.stderr);
});
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * Runs `bulwark ARGS` with stdout a pipe whose reading end is closed before the command starts: the reader of
 * `bulwark … | grep -q X` or `| tee log` that has already exited, a log shipper that died.
 */
function withClosedStdout(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...args], {
      env: { ...process.env, BULWARK_DATABASE_URL: undefined, BULWARK_MASTER_KEY: undefined, BULWARK_PUBLIC_URL: TEST_PUBLIC_URL, ...env },
      stdio: ["pipe", "pipe", "pipe"], timeout: 30_000, killSignal: "SIGKILL",
    });
    child.stdout.destroy();
    child.stdin.end();
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stderr }));
  });
}

/** Lines of stderr that look like a JavaScript stack frame: an operator must never get one for bad input. */
const stackFrames = (stderr: string): string[] => stderr.split("\n").filter((l) => /^\s+at .+[:(]/.test(l));

describe("exit 0 means everything asked for was done", () => {
  it("attack: `contain lock-accounts --all --yes | tee -a incident.log` whose reader has gone away — the job runs to the end, every account locked, and the exit code is its own; exit 0 means the containment was done (ASVS 16.5.3) (was: exit 0 at the first EPIPE, the job left pending 0/N)", async () => {
    const users = Number(site.rows("SELECT count(*) AS n FROM users")[0]!["n"]);
    const r = await withClosedStdout(["contain", "lock-accounts", "--all", "--yes"], site.env);
    assert.equal(r.signal, null, "the command ended on its own");
    const job = site.rows("SELECT id, status, done, total FROM jobs WHERE kind = 'contain' ORDER BY created_at DESC LIMIT 1")[0];
    assert.ok(job, `a containment job was created (exit ${r.code}: ${r.stderr})`);
    // Locked is locked_at set (lock-accounts); `status` is active/disabled, which no lever changes.
    const locked = Number(site.rows("SELECT count(*) AS n FROM users WHERE locked_at IS NOT NULL")[0]!["n"]);
    // The secure outcomes: the job ran to the end (every account locked), or the exit code says it did not.
    assert.ok(
      r.code !== 0 || (job["status"] === "done" && locked === users),
      `exit 0 ("everything asked for was done") while job ${String(job["id"])} is ${String(job["status"])} ${String(job["done"])}/${String(job["total"])} and ` +
        `${locked} of ${users} accounts are locked: the "job created" line hit EPIPE and src/cli/main.ts exited with process.exitCode ?? 0 before the job ran; ` +
        "a runbook under `set -o pipefail` reports the accounts contained",
    );
  });

  it("attack: `users create --generate-password` whose stdout cannot take the password (a reader that has gone away; a full disk under `> admin.txt`) — exits 3 and leaves no account whose only password went nowhere, so the retry works (ASVS 6.4.1, 16.5.3) (was: the account committed first, the password lost, the retry refused as the email was taken; a closed pipe exited 0)", async () => {
    const outcome = async (how: "closed pipe" | "/dev/full"): Promise<{ exitedNonZero: boolean; accountLeftWithLostPassword: boolean; retry: number | null }> => {
      const email = `boot-${how === "/dev/full" ? "full" : "pipe"}@example.org`;
      let code: number | null;
      if (how === "closed pipe") {
        code = (await withClosedStdout(["users", "create", "--email", email, "--role", "admin", "--generate-password"], site.env)).code;
      } else {
        const fd = openSync("/dev/full", "w");
        try {
          code = (await bulwark(["users", "create", "--email", email, "--role", "admin", "--generate-password", "--json"], { env: site.env, stdout: fd, limitMs: 30_000 })).code;
        } finally {
          closeSync(fd);
        }
      }
      const left = site.rows(`SELECT id FROM users WHERE email = '${email}'`).length > 0;
      // What the operator does next: run it again. With the email taken, that is refused.
      const retry = await bulwarkInProcess(["users", "create", "--email", email, "--role", "admin", "--generate-password", "--json"], { ...site.env, BULWARK_LOG_LEVEL: "silent" });
      return { exitedNonZero: code !== 0, accountLeftWithLostPassword: left, retry: retry.code };
    };
    const observed = { closedPipe: await outcome("closed pipe"), devFull: await outcome("/dev/full") };
    const safe = { exitedNonZero: true, accountLeftWithLostPassword: false, retry: 0 };
    assert.deepEqual(observed, { closedPipe: safe, devFull: safe },
      "the account (an administrator) is committed before its generated password is handed to stdout (src/cli/commands/users-admin.ts), the only copy is lost, " +
        "a closed pipe even exits 0 (src/cli/main.ts: process.exitCode ?? 0), and the retry is refused because the email is taken");
  });
});

describe("--json is one JSON document on stdout, and nothing else", () => {
  it("attack: a script pipes `--json` into jq with BULWARK_LOG_LEVEL=trace: stdout of seven commands is exactly one JSON document, every log line on stderr; a failure leaves stdout empty and one line, no stack, on stderr (ASVS 16.5.1)", async () => {
    const config = site.file("sshd_config", "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n");
    const env = { ...site.env, BULWARK_LOG_LEVEL: "trace" };
    const ok: string[][] = [
      ["init", "--json"],
      ["users", "census", "--json"],
      ["contain", "list", "--json"],
      ["contain", "lock-accounts", "--all", "--dry-run", "--json"],
      ["outbox", "--json", "status"],
      ["audit", "verify", "--json"],
      ["check", "ssh", "--config", config, "--include-base", root, "--record", "--json", "--fail-on", "none"],
    ];
    const runs = await Promise.all(ok.map((args) => bulwark(args, { env, limitMs: 30_000 })));
    const problems: string[] = [];
    runs.forEach((r, i) => {
      const name = (ok[i] as string[]).slice(0, 3).join(" ");
      if (r.code !== 0) problems.push(`${name}: exit ${r.code}: ${r.stderr.slice(0, 300)}`);
      try {
        const value: unknown = JSON.parse(r.stdout);
        if (typeof value !== "object" || value === null) problems.push(`${name}: stdout is JSON but not an object or array`);
      } catch {
        problems.push(`${name}: stdout is not one JSON document: ${JSON.stringify(r.stdout.slice(0, 200))}`);
      }
    });
    assert.deepEqual(problems, []);

    const bad: Array<{ args: string[]; code: number; names: RegExp }> = [
      { args: ["contain", "status", "job_doesnotexist", "--json"], code: 2, names: /job_doesnotexist/ },
      { args: ["audit", "verify", "--checkpoints", join(root, "missing.jsonl"), "--json"], code: 2, names: /missing\.jsonl/ },
      { args: ["check", "ssh", "--config", join(root, "no_such_config"), "--json"], code: 2, names: /no_such_config/ },
      { args: ["hash", "identify", "$unknown$abc", "--json"], code: 2, names: /./ },
      { args: ["users", "census", "--json"], code: 2, names: /nowhere/ },
    ];
    // In this process (cheaper): what is checked here is written by the command's own error path.
    const failures: Array<{ code: number; stdout: string; stderr: string }> = [];
    for (const [i, b] of bad.entries()) failures.push(await bulwarkInProcess(b.args, i === 4 ? { ...env, BULWARK_DATA_DIR: join(root, "nowhere", "data") } : env));
    const wrong: string[] = [];
    failures.forEach((r, i) => {
      const b = bad[i]!;
      const name = b.args.slice(0, 3).join(" ");
      if (r.code !== b.code) wrong.push(`${name}: exit ${r.code}, not ${b.code}: ${r.stderr.slice(0, 200)}`);
      if (r.stdout !== "") wrong.push(`${name}: stdout holds ${JSON.stringify(r.stdout.slice(0, 120))}`);
      const said = r.stderr.split("\n").filter((l) => l.startsWith("bulwark: "));
      if (said.length !== 1 || !b.names.test(said[0] as string)) wrong.push(`${name}: stderr does not name what is wrong in one line: ${JSON.stringify(r.stderr.slice(0, 300))}`);
      if (stackFrames(r.stderr).length > 0) wrong.push(`${name}: a stack trace on stderr`);
    });
    assert.deepEqual(wrong, []);
  });
});

describe("exit 1 exactly when the thing checked does not hold", () => {
  it("attack: a cron job gates on `check ssh --fail-on X` one step either side of the worst finding (low): medium and above exit 0, low and info exit 1, none exits 0; --json prints the same document whatever --fail-on says", async () => {
    const config = join(root, "sshd_low");
    writeFileSync(config, "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n");
    const run = (failOn: string) => bulwarkInProcess(["check", "ssh", "--config", config, "--include-base", root, "--json", "--fail-on", failOn]);
    const severities = (JSON.parse((await run("none")).stdout) as { findings: Array<{ severity: string }> }).findings.map((f) => f.severity);
    assert.deepEqual([...new Set(severities)], ["low"], "the fixture's worst finding is low");
    const codes: Record<string, number> = {};
    const documents = new Set<string>();
    for (const failOn of ["critical", "high", "medium", "low", "info", "none", "LOW", "Medium"]) {
      const r = await run(failOn);
      codes[failOn] = r.code;
      documents.add(r.stdout);
    }
    assert.deepEqual(codes, { critical: 0, high: 0, medium: 0, low: 1, info: 1, none: 0, LOW: 1, Medium: 0 });
    assert.equal(documents.size, 1, "--fail-on changes the exit code only, never the document");
  });
});

describe("bad usage is exit 2 naming what is wrong", () => {
  it("attack: a runbook pastes a wrong job id into every job command, or an extra word after a command that takes none: exit 2 naming the id or the word, never 0 (nothing done), 1 (\"does not hold\") or 3 (ASVS 2.2.1)", async () => {
    const env = { ...site.env, BULWARK_LOG_LEVEL: "silent" };
    const cases: Array<{ args: string[]; names: RegExp }> = [
      { args: ["contain", "status", "job_typo"], names: /job_typo/ },
      { args: ["contain", "resume", "job_typo", "--json"], names: /job_typo/ },
      { args: ["contain", "cancel", "job_typo"], names: /job_typo/ },
      { args: ["contain", "undo", "job_typo", "--dry-run"], names: /job_typo/ },
      { args: ["users", "migrate-hashes", "resume", "job_typo"], names: /job_typo/ },
      { args: ["audit", "verify", "extra"], names: /too many arguments|extra/ },
      { args: ["users", "census", "--json", "extra"], names: /too many arguments|extra/ },
      { args: ["check", "ssh", "/etc/ssh/sshd_config"], names: /too many arguments|sshd_config/ },
      { args: ["outbox", "status", "--limit", "1001"], names: /--limit/ },
    ];
    const wrong: string[] = [];
    for (const c of cases) {
      const r = await bulwarkInProcess(c.args, env);
      if (r.code !== 2 || !c.names.test(r.stderr) || r.stdout !== "") wrong.push(`${c.args.join(" ")}: exit ${r.code}, stdout ${JSON.stringify(r.stdout.slice(0, 80))}, stderr ${JSON.stringify(r.stderr.slice(0, 160))}`);
    }
    assert.deepEqual(wrong, []);
  });

  it("attack: `audit tail -n` given a malformed count (1e1, 0x2, 0b10, 2.0, +2) — exits 2 naming --lines, as every other count option of the CLI does (ASVS 2.2.1) (was: Number() took them all and printed events)", async () => {
    const env = { ...site.env, BULWARK_LOG_LEVEL: "silent" };
    const taken: string[] = [];
    for (const value of ["1e1", "0x2", "0b10", "2.0", "+2"]) {
      const r = await bulwarkInProcess(["audit", "tail", "-n", value, "--json"], env);
      if (r.code !== 2 || !/--lines/.test(r.stderr)) taken.push(`-n ${value}: exit ${r.code}, ${r.stdout.split("\n").filter(Boolean).length} event(s) printed`);
    }
    assert.deepEqual(taken, [], "src/cli/commands/audit.ts (tail) reads --lines with Number(), which takes exponents, hex/binary prefixes, a sign and a decimal point; " +
      "contain, outbox, users, check and dev seed refuse them with /^\\d+$/");
  });
});

describe("exit 3 names a runtime failure", () => {
  it("attack: a runbook retries on a busy database only when told so — a PostgreSQL lock or statement timeout (55P03, 57014) that reaches the command's error path is the named BULWARK_ERR_DB_BUSY (exit 3, \"try again\"), never an internal error quoting the driver (ASVS 16.5.1) (was: \"internal error: canceling statement due to lock timeout\")", () => {
    const said: Array<{ code: number; stderr: string }> = [];
    for (const sqlState of ["55P03", "57014"]) {
      const stderr = new PassThrough();
      let text = "";
      stderr.on("data", (d: Buffer) => (text += d.toString()));
      const ctx = { stdin: new PassThrough(), stdout: new PassThrough(), stderr, stderrIsTTY: false, app: () => Promise.reject(new Error("unused")), open: () => Promise.reject(new Error("unused")) };
      // What node-postgres throws: an Error carrying the SQLSTATE as `code`, the server's text as its message.
      const driver = Object.assign(new Error(sqlState === "55P03" ? "canceling statement due to lock timeout" : "canceling statement due to statement timeout"), { code: sqlState });
      said.push({ code: reportError(ctx, driver), stderr: text });
    }
    for (const s of said) {
      assert.equal(s.code, 3);
      assert.match(s.stderr, /^bulwark: the store is busy: .*try again shortly\n$/);
      assert.doesNotMatch(s.stderr, /internal error|canceling statement/);
    }
  });
});

describe("signals", () => {
  it("attack: Ctrl-C on `audit tail -f --json` piped into a parser ends it with exit 0, every stdout line one whole JSON event, and an event appended meanwhile printed once", async () => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, "audit", "tail", "-n", "2", "-f", "--json"], {
      env: { ...process.env, ...site.env, BULWARK_LOG_LEVEL: "silent", BULWARK_PUBLIC_URL: TEST_PUBLIC_URL }, stdio: ["ignore", "pipe", "pipe"], timeout: 20_000, killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    let ended = false;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => {
      ended = true;
      resolve({ code, signal });
    }));
    // Waits for the n-th whole line (or for the child to end: the assertions below then say what was missing).
    const linesSeen = (n: number): Promise<void> => new Promise((resolve) => {
      const tick = (): void => void (ended || stdout.split("\n").length > n ? resolve() : setTimeout(tick, 20));
      tick();
    });
    await linesSeen(2);
    assert.equal(ended, false, `tail -f ended on its own: ${stderr}`);
    // Another operator creates an account meanwhile: one new event (user.created) the follower must print.
    const created = await bulwarkInProcess(["users", "create", "--email", "followed@example.org", "--generate-password", "--json"], { ...site.env, BULWARK_LOG_LEVEL: "silent" });
    assert.equal(created.code, 0, created.stderr);
    await linesSeen(3);
    child.kill("SIGINT");
    const end = await exited;
    assert.deepEqual(end, { code: 0, signal: null }, `Ctrl-C ends the follow with exit 0: ${stderr}`);
    const lines = stdout.split("\n");
    assert.equal(lines.at(-1), "", "the output ends with a whole line");
    const events = lines.filter(Boolean).map((l) => JSON.parse(l) as { seq: number });
    assert.equal(new Set(events.map((e) => e.seq)).size, events.length, "no event printed twice");
    assert.ok(events.length >= 3);
    assert.ok(events.some((e) => (e as { type?: string }).type === "user.created" && (e as { subject?: string }).subject === (JSON.parse(created.stdout) as { id: string }).id), "the event appended meanwhile was printed");
  });
});
