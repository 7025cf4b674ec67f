// End-to-end: a bad environment is named, with the exit code of the contract (DESIGN.md), never "internal error":
// a directory where a file belongs is bad input (2), as is a database file others may read (not private); a data dir this user may not read or write is a runtime failure
// of the environment (3), and a healthy database there is never called corrupt. `serve` with a bad
// BULWARK_MAIL_FROM refuses to start (2) instead of listening half-dead.
//
// Permissions mean nothing to root, and test containers run as root: then the permission cases run the CLI as
// `nobody` (uid 65534) over files root made, which is the situation operators meet. Otherwise chmod does it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { diskTmpdir } from "./helpers/scratch.ts";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MAIN, type CLIResult } from "./helpers/cli.ts";

const ROOT = process.getuid?.() === 0;
const NOBODY = 65534;

let root: string;
/** An initialised data dir, copied for each case. */
let pristine: string;
let masterKey: string;

/** Runs the CLI (as `nobody` when `asOther` and we are root); killed after `timeoutMs` so a hang fails instead of stalling. */
function run(args: string[], env: NodeJS.ProcessEnv, options: { asOther?: boolean; timeoutMs?: number } = {}): Promise<CLIResult> {
  return new Promise((resolve, reject) => {
    const e: NodeJS.ProcessEnv = { ...process.env, BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", ...env };
    for (const key of ["BULWARK_DATABASE_URL", "BULWARK_MASTER_KEY", "BULWARK_SMTP_URL", "BULWARK_MAIL_FROM", "HOST", "PORT"]) if (!(key in env)) delete e[key];
    const other = options.asOther === true && ROOT;
    if (other) e["HOME"] = root;
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...args], {
      env: e,
      stdio: ["pipe", "pipe", "pipe"],
      ...(other ? { uid: NOBODY, gid: NOBODY } : {}),
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end();
  });
}

/** A copy of the initialised data dir named `name`. */
function dataDir(name: string): string {
  const dir = join(root, name);
  cpSync(pristine, dir, { recursive: true });
  return dir;
}

/** What every message of this file must not say. */
function assertNamed(r: CLIResult): void {
  assert.doesNotMatch(r.stderr, /internal error|EISDIR|EACCES|\n\s+at /, r.stderr);
}

before(async () => {
  root = mkdtempSync(join(diskTmpdir(), "bulwark-env-errors-"));
  chmodSync(root, 0o755); // nobody must reach the data dirs below
  pristine = join(root, "pristine");
  const init = await run(["init"], { BULWARK_DATA_DIR: pristine });
  assert.equal(init.code, 0, init.stderr);
  masterKey = readFileSync(join(pristine, "master.key"), "utf8").trim();
});
after(() => {
  // As a non-root runner, the cases below took permissions away from ourselves: give them back to delete.
  if (!ROOT) for (const name of ["not-writable", "not-readable"]) try { chmodSync(join(root, name), 0o700); chmodSync(join(root, name, "bulwark.db"), 0o600); chmodSync(join(root, name, "master.key"), 0o600); } catch {}
  rmSync(root, { recursive: true, force: true });
});

describe("a directory where a file belongs: bad input, exit 2", () => {
  it("bulwark.db is a directory", async () => {
    const dir = join(root, "db-dir");
    mkdirSync(join(dir, "bulwark.db"), { recursive: true, mode: 0o700 });
    cpSync(join(pristine, "master.key"), join(dir, "master.key"));
    const r = await run(["roles", "list"], { BULWARK_DATA_DIR: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`${join(dir, "bulwark.db")} is a directory`), r.stderr);
    assert.doesNotMatch(r.stderr, /corrupt/);
    assertNamed(r);
  });

  it("master.key is a directory", async () => {
    const dir = dataDir("key-dir");
    rmSync(join(dir, "master.key"));
    mkdirSync(join(dir, "master.key"), { mode: 0o700 });
    const r = await run(["roles", "list"], { BULWARK_DATA_DIR: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`${join(dir, "master.key")} is a directory`), r.stderr);
    assertNamed(r);
  });

  it("check downloads given a directory instead of the checksum file", async () => {
    const dir = join(root, "release");
    mkdirSync(dir);
    writeFileSync(join(dir, "SHA256SUMS"), "");
    const r = await run(["check", "downloads", dir], {});
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`${dir} is a directory`), r.stderr);
    assertNamed(r);
  });
});

describe("a data dir made by another account: runtime failure of the environment, exit 3", () => {
  /**
   * As root, files stay root's and nobody runs, reaching them through the group (dir 0750, a readable database 0640,
   * both in nobody's group: a database every account may read is refused before anything else); otherwise the runner
   * takes the rights from itself.
   */
  function restrict(dir: string, modes: { dir: number; db: number; key: number }): void {
    if (ROOT) {
      chownSync(dir, 0, NOBODY);
      chownSync(join(dir, "bulwark.db"), 0, NOBODY);
    }
    chmodSync(dir, ROOT ? 0o750 : modes.dir);
    chmodSync(join(dir, "bulwark.db"), ROOT ? (modes.db & 0o444 ? 0o640 : 0o600) : modes.db);
    chmodSync(join(dir, "master.key"), ROOT ? 0o600 : modes.key);
  }

  it("a healthy database in a directory this user cannot write is not called corrupt (was: \"move it aside\")", async () => {
    const dir = dataDir("not-writable");
    restrict(dir, { dir: 0o555, db: 0o444, key: 0o400 });
    const r = await run(["audit", "verify"], { BULWARK_DATA_DIR: dir, BULWARK_MASTER_KEY: masterKey }, { asOther: true });
    assert.equal(r.code, 3, r.stderr);
    assert.ok(r.stderr.includes(join(dir, "bulwark.db")), r.stderr);
    assert.match(r.stderr, /not writable by this user/);
    assert.doesNotMatch(r.stderr, /corrupt|move it aside|not a SQLite database/);
    assertNamed(r);
  });

  it("a master key file this user may not read (was: EACCES, internal error)", async () => {
    const dir = dataDir("not-readable");
    restrict(dir, { dir: 0o755, db: 0o000, key: 0o000 });
    const r = await run(["roles", "list"], { BULWARK_DATA_DIR: dir }, { asOther: true });
    assert.equal(r.code, 3, r.stderr);
    assert.ok(r.stderr.includes(join(dir, "master.key")), r.stderr);
    assert.match(r.stderr, /permission denied for this user/);
    assertNamed(r);
  });

  it("a database this user may not read, with BULWARK_MASTER_KEY set (was: EACCES, internal error)", async () => {
    const dir = join(root, "not-readable"); // made by the case above
    const r = await run(["roles", "list"], { BULWARK_DATA_DIR: dir, BULWARK_MASTER_KEY: masterKey }, { asOther: true });
    assert.equal(r.code, 3, r.stderr);
    assert.ok(r.stderr.includes(join(dir, "bulwark.db")), r.stderr);
    assert.match(r.stderr, /permission denied for this user/);
    assert.doesNotMatch(r.stderr, /corrupt|move it aside/);
    assertNamed(r);
  });
});

describe("a database file that is not private: bad input, exit 2, as a data dir or key file refused", () => {
  for (const name of ["bulwark.db", "bulwark.db-wal"]) {
    it(`${name} every account may read exits 2, naming the file and the chmod (was: exit 3, BULWARK_ERR_DB_OPEN, a runtime failure)`, async () => {
      const dir = dataDir(`open-${name}`);
      const path = join(dir, name);
      writeFileSync(path, "", { flag: "a" }); // an empty side file is what SQLite leaves after a crash
      chmodSync(path, 0o644);
      const before = readFileSync(join(dir, "bulwark.db"));
      const r = await run(["roles", "list"], { BULWARK_DATA_DIR: dir });
      assert.equal(r.code, 2, r.stderr);
      assert.ok(r.stderr.includes(path), r.stderr);
      assert.match(r.stderr, /mode 644/);
      assert.match(r.stderr, /chmod 600/);
      assert.deepEqual(readFileSync(join(dir, "bulwark.db")), before, "the refused database was left as it was");
      assertNamed(r);
    });
  }
});

describe("serve with a bad BULWARK_MAIL_FROM", () => {
  it("refuses to start, naming the variable, exit 2 (was: listened, then stayed up half-dead)", async () => {
    const dir = dataDir("serve");
    const r = await run(["serve", "--host", "127.0.0.1", "--port", "0"], { BULWARK_DATA_DIR: dir, BULWARK_LOG_LEVEL: "info", BULWARK_SMTP_URL: "smtp://localhost:2525", BULWARK_MAIL_FROM: "not an email" }, { timeoutMs: 20_000 });
    assert.equal(r.code, 2, `exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, /BULWARK_MAIL_FROM is not an acceptable email address/);
    assert.doesNotMatch(r.stdout, /Server listening/, "it never listened");
    const audit = await run(["audit", "tail", "-n", "3"], { BULWARK_DATA_DIR: dir });
    assert.doesNotMatch(audit.stdout, /server\.start/);
  });
});
