// Red-team round "new code twenty-seven": today's changes, attacked as their users and abusers would.
//
// Attacker / situation: an operator's pipeline whose reader goes away (`| head`, `grep -m1`, a log shipper that died)
// while a CLI command is still reading or following — src/cli/main.ts no longer ends a command on a failing stdout (the
// work finishes; EPIPE keeps the command's exit code), so any command that loops on input or time must stop on its own.
//
// Tried: `check authlog --matches -` fed by a stream that never ends (`journalctl -f`, `tail -F`) with its reader gone;
// `audit tail -f` with its reader gone and a new event appended. Also read: users create's split --json (pinned already
// in test/cli-users-admin.test.ts and test/contracts-red-team.test.ts), abandonLogin (sessions.end is a plain delete,
// no audit head: it cannot be blocked by what blocked the login), the census keys (pinned in
// test/census-salt-red-team.test.ts; no over-merging found: PBKDF2's length is fixed by the parser, phpass counts have
// one spelling), targetsKey (job ids hold no "/"; every reader filters by job_id equality).
//
// Held: `audit tail -f` stops once its reader has gone away and the next event is printed.
// Found (fixed since: check-authlog.ts stops the analysis at the first flush after stdout failed, exit 0 for a reader
// that went away, 3 for output lost otherwise): `check authlog --matches -` whose reader went away kept reading its
// never-ending input for ever, printing nowhere (before today, the first EPIPE ended it).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { bulwark, initSite, MAIN, type CLISite } from "./helpers/cli.ts";

/** Resolves with the exit code (or signal) once `child` ends, or with null after `ms` (the child still running). */
function endedWithin(child: ChildProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    const timer = setTimeout(() => resolve(null), ms);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** Resolves once `child` has written something on stdout (the reader has seen output). */
function firstOutput(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.stdout!.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`the command ended before it printed anything (exit ${code})`)));
  });
}

// sshd lines that each count a failure (--matches prints one line for each).
const failures = (from: number, n: number): string => {
  let text = "";
  for (let i = 0; i < n; i++) {
    const k = from + i;
    text += `Mar 14 09:${String(Math.floor(k / 60) % 60).padStart(2, "0")}:${String(k % 60).padStart(2, "0")} web sshd[${1000 + (k % 5000)}]: ` +
      `Failed password for invalid user u${k} from 198.18.${k % 200}.${(k >> 8) % 200} port ${20000 + (k % 30000)} ssh2\n`;
  }
  return text;
};

describe("new code twenty-seven: commands that loop after their reader went away", () => {
  let dir: string;
  let site: CLISite;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-nc27-"));
    site = await initSite(join(dir, "site"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("attack: `journalctl -f | bulwark check authlog --matches - | head` whose head has exited — the command stops on its own once its output goes nowhere, as it did before today (ASVS 16.5.3) (was: it read the followed log for ever, every batch written to a closed pipe)", async () => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, "check", "authlog", "--matches", "--year", "2025", "-"], {
      env: { ...process.env, BULWARK_DATA_DIR: "", BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "" }, stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin!.on("error", () => undefined); // the child may be gone when we write
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      // Enough failures for --matches to flush a batch (64 KiB) at once.
      let k = 0;
      const feed = (): void => {
        if (child.exitCode === null && child.signalCode === null && child.stdin!.writable) child.stdin!.write(failures(k, 4000));
        k += 4000;
      };
      const seen = firstOutput(child);
      feed();
      await seen;
      // `head` has what it wanted and exits: the read end of the pipe closes.
      child.stdout!.destroy();
      // The followed log goes on growing (`journalctl -f` never ends its output): every later batch fails with EPIPE.
      for (let i = 0; i < 6; i++) {
        feed();
        await new Promise((r) => setTimeout(r, 100));
      }
      const ended = await endedWithin(child, 4000);
      assert.notEqual(ended, null,
        "check authlog --matches kept reading its never-ending stdin for 4 s after its reader had gone away, every batch of matches written to a closed pipe: " +
        "src/cli/main.ts now ignores EPIPE while a command runs (it used to exit at once), and check-authlog.ts's flush() writes with ctx.stdout.write and " +
        "never looks at stdout's failure, so the command (whose only product is its output) runs until its input ends — for a followed log, for ever. " +
        `stderr: ${stderr.slice(0, 300)}`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await endedWithin(child, 2000);
    }
  });

  it("attack: `bulwark audit tail -f | grep -m1 login` whose grep has exited — tail -f ends on its own once the next event is printed to nobody, without a stack trace (ASVS 16.5.3)", async () => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, "audit", "tail", "-n", "1", "-f", "--json"], {
      env: { ...process.env, ...site.env, BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "" }, stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      await firstOutput(child);
      child.stdout!.destroy();
      // A new event arrives (another operator's command): tail -f prints them, to a pipe no one reads.
      const made = await bulwark(["users", "create", "--email", "tail-0@example.org", "--generate-password"], { env: site.env });
      assert.equal(made.code, 0, made.stderr);
      const ended = await endedWithin(child, 5000);
      assert.notEqual(ended, null, `audit tail -f kept following after its reader went away and new events were printed to nobody: ${stderr}`);
      assert.doesNotMatch(stderr, /^\s+at .+[:(]/m, "no stack trace");
      assert.equal(ended!.signal, null);
      assert.equal(ended!.code, 0, `a reader that went away is not an error of ours: ${stderr}`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await endedWithin(child, 2000);
    }
  });
});
