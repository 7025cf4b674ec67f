// Red team, CLI secrets round: what the `bulwark` command does with the secrets it handles — passwords piped to
// `users create` and `hash verify|new`, password hashes in `users import` files, the master key (`init`,
// `keys rotate-master`, BULWARK_MASTER_KEY, master.key) and the credentials in its environment (BULWARK_SMTP_URL,
// BULWARK_DATABASE_URL). The attackers: another local account on the host (reads ps and /proc/PID/cmdline, and any
// file the umask leaves open), a support engineer handed a pasted error message or `--json` output, and a log
// collector reading the command's stderr (cron, CI, systemd). Each test is an attack that must fail. The four leaks
// this round found (an import's hash quoted by JSON.parse, `--password=…` echoed, the printed master key lost to a
// failed stdout, an SMTP password's tail quoted) are fixed; the tests pin the fixes.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { bulwark, bulwarkHere, bulwarkInProcess, initSite, MAIN, TEST_PUBLIC_URL, type CLISite } from "./helpers/cli.ts";

let root: string;
let seq = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-cli-secrets-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

function site(): Promise<CLISite> {
  return initSite(join(root, `site-${++seq}`), { here: true });
}

function piped(text: string | Buffer): PassThrough {
  const stdin = new PassThrough();
  stdin.end(text);
  return stdin;
}

/** The first `width`-character stretch of `secret` that `text` quotes, or null: a prefix is enough to look a hash up. */
function quoted(text: string, secret: string, width = 8): string | null {
  for (let i = 0; i + width <= secret.length; i++) if (text.includes(secret.slice(i, i + width))) return secret.slice(i, i + width);
  return null;
}

/** A random master key as `openssl rand -base64 32` prints it. */
function newKey(): string {
  return randomBytes(32).toString("base64");
}

const CHEAP_ARGON2 = { BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };

describe("users import: a file's password hashes stay out of reports and errors", () => {
  it("attack: a support engineer handed `users import --dry-run` output (or its --json, or the refusal on stderr) reads nothing of an unsalted MD5 hash from a JSONL row exported without quotes, nor of a number-shaped one (ASVS 16.2.5, 16.5.1) (was: JSON.parse's excerpt gave ten hex digits, enough to name the password 123456; a number-shaped MD5 was quoted whole)", async () => {
    const s = await site();
    // SourceLair's table (seed 001): unsalted MD5, here exported by a tool that forgot to quote the hash column.
    const hashes = {
      1: "e10adc3949ba59abbe56e057f20f883e", // md5("123456"), starts with a letter: JSON.parse stops on it and quotes it
      2: "e99a18c428cb38d5f260853678922e03", // md5("abc123"), a dump of bare hashes, one per line
      3: "0e462097431906509019562988736854", // md5("240610708"): JSON reads it as a number, and the row's reason quotes it
    };
    const file = s.file("legacy.jsonl", [
      `{"email":"ana@example.org","password_hash":${hashes[1]}}`,
      hashes[2],
      `{"email":"raj@example.org","password_hash":${hashes[3]}}`,
    ].join("\n") + "\n");

    const human = await s.run(["users", "import", file, "--dry-run"]);
    const json = await s.run(["users", "import", file, "--dry-run", "--json"]);
    const real = await s.run(["users", "import", file]);
    // The rows are refused, each with its line: what is wrong is said, only the quoting is the defect.
    assert.equal(human.code, 1, human.stderr);
    assert.deepEqual((JSON.parse(json.stdout) as { bad: Array<{ line: number }> }).bad.map((b) => b.line), [1, 2, 3]);
    assert.equal(real.code, 2, real.stderr);

    const leaks: string[] = [];
    for (const [name, r] of [["--dry-run", human], ["--dry-run --json", json], ["real run", real]] as const) {
      for (const [line, hash] of Object.entries(hashes)) {
        const q = quoted(r.stdout + r.stderr, hash);
        if (q !== null) leaks.push(`${name}, line ${line}: quotes ${q}… of ${hash}`);
      }
    }
    assert.deepEqual(leaks, [], `hash material in the output:\n${human.stdout}${real.stderr}`);
  });
});

describe("passwords typed where they do not belong", () => {
  it("attack: an operator's `--password=SECRET` (or any `--option=SECRET`) is refused naming the option without its value, so a log collector reading stderr gets no password (ASVS 16.2.5) (was: 'unknown option' echoed the whole argument)", async () => {
    const s = await site();
    const secret = "a long and unusual passphrase 42";
    const hash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
    const leaks: string[] = [];
    for (const args of [
      ["users", "create", "--email", "argv@example.org", `--password=${secret}`],
      ["hash", "verify", hash, `--password=${secret}`],
      ["hash", "new", `--pass=${secret}`],
    ]) {
      const r = await bulwarkInProcess(args, s.env, piped(""));
      // Refused, as it should be, and the option is named so the operator sees the mistake.
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /unknown option '--pass/);
      if (quoted(r.stdout + r.stderr, secret, 10) !== null) leaks.push(`${args.slice(0, 2).join(" ")}: ${r.stderr.split("\n")[0]}`);
    }
    assert.deepEqual(leaks, []);
    assert.deepEqual(s.rows("SELECT email FROM users WHERE email = 'argv@example.org'"), []);
  });

  it("attack: a password piped to `users create`, `hash new` or `hash verify` that is refused — by the policy (too short, built from the email), over 4096 bytes, not UTF-8, holding a NUL — is never quoted, in part or whole, on stderr or in --json", async () => {
    const s = await site();
    const core = "Qz7vKp2mWx9L";
    const cases: Array<{ args: string[]; input: string | Buffer; secret: string }> = [
      { args: ["users", "create", "--email", "p1@example.org", "--json"], input: `${core}\n`, secret: core },
      { args: ["users", "create", "--email", "p2@example.org"], input: `p2@example.org${core}\n`, secret: core },
      { args: ["users", "create", "--email", "p3@example.org", "--json"], input: `${core.repeat(400)}\n`, secret: core },
      { args: ["users", "create", "--email", "p4@example.org"], input: Buffer.concat([Buffer.from(`${core}-`), Buffer.from([0xff, 0xfe]), Buffer.from(`-${core}\n`)]), secret: core },
      { args: ["hash", "new"], input: `${core}\0${core}\n`, secret: core },
      { args: ["hash", "verify", "$1$PDZ8NT/j$9.SBBj3DoNtxW1BsvTV.01", "--json"], input: `${core.repeat(400)}\n`, secret: core },
    ];
    for (const c of cases) {
      const r = await bulwarkInProcess(c.args, s.env, piped(c.input));
      assert.equal(r.code, 2, `${c.args.join(" ")}: ${r.stderr}`);
      assert.equal(quoted(r.stdout + r.stderr, c.secret, 6), null, `${c.args.join(" ")} quoted the password: ${r.stdout}${r.stderr}`);
    }
    assert.deepEqual(s.rows("SELECT email FROM users WHERE email LIKE 'p_@example.org'"), []);
  });
});

describe("the master key", () => {
  /** Runs `bulwark ARGS` with stdout a pipe whose reading end is closed at once (`… | head -0`, a consumer that died). */
  function withClosedStdout(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, ...args], {
        env: { ...process.env, BULWARK_DATABASE_URL: undefined, BULWARK_PUBLIC_URL: TEST_PUBLIC_URL, ...env }, stdio: ["pipe", "pipe", "pipe"], timeout: 30_000, killSignal: "SIGKILL",
      });
      child.stdout.destroy();
      child.stdin.end();
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stderr }));
    });
  }

  it("attack: `keys rotate-master --print-key` with BULWARK_MASTER_KEY whose stdout cannot take the key (a full disk under `> key.txt`, a secret-store client that exits first) exits non-zero and leaves the old key in use (ASVS 13.3.1, 11.1.1) (was: committed first, the only copy of the new key lost; a closed pipe even exited 0)", async () => {
    const outcome = async (how: "/dev/full" | "closed pipe"): Promise<{ exitedNonZero: boolean; oldKeyStillOpensTheStore: boolean }> => {
      const env = { BULWARK_DATA_DIR: join(root, `rotate-${++seq}`, "data"), BULWARK_MASTER_KEY: newKey(), ...CHEAP_ARGON2 };
      const init = await bulwarkHere(["init"], { env });
      assert.equal(init.code, 0, init.stderr);
      let code: number | null;
      if (how === "/dev/full") {
        const fd = openSync("/dev/full", "w");
        try {
          code = (await bulwark(["keys", "rotate-master", "--print-key", "--yes", "--json"], { env, stdout: fd, limitMs: 30_000 })).code;
        } finally {
          closeSync(fd);
        }
      } else {
        code = (await withClosedStdout(["keys", "rotate-master", "--print-key", "--yes"], env)).code;
      }
      // The key the operator still holds must still open the store: no new key was handed over.
      const after = await bulwarkHere(["users", "census", "--json"], { env });
      return { exitedNonZero: code !== 0, oldKeyStillOpensTheStore: after.code === 0 };
    };
    const safe = { exitedNonZero: true, oldKeyStillOpensTheStore: true };
    assert.deepEqual({ devFull: await outcome("/dev/full"), closedPipe: await outcome("closed pipe") }, { devFull: safe, closedPipe: safe });
  });

  it("attack: a malformed BULWARK_MASTER_KEY (quoted, doubled, cut, prefixed, a phrase) or a master.key holding the real key plus junk is never echoed, even with BULWARK_DEBUG=1 and trace logging", async () => {
    const s = await site();
    const keyFile = join(s.env.BULWARK_DATA_DIR as string, "master.key");
    const real = readFileSync(keyFile, "utf8").trim();
    const key = newKey();
    const loud = { ...s.env, BULWARK_DEBUG: "1", BULWARK_LOG_LEVEL: "trace" };
    for (const value of [`"${key}"`, `${key}${key}`, key.slice(0, 40), `base64:${key}`, `${key} ${key}`, Buffer.from("my-super-secret-master-key-1234!").toString("base64")]) {
      const r = await bulwarkInProcess(["users", "census", "--json"], { ...loud, BULWARK_MASTER_KEY: value }, piped(""));
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /BULWARK_MASTER_KEY/);
      assert.equal(quoted(r.stdout + r.stderr, value, 10), null, `echoed: ${r.stderr}`);
    }
    try {
      for (const content of [`${real}x\n`, `KEY=${real}\n`, `${real}${real}\n`, `"${real}"\n`]) {
        writeFileSync(keyFile, content);
        chmodSync(keyFile, 0o600);
        const r = await bulwarkInProcess(["users", "census", "--json"], loud, piped(""));
        assert.equal(r.code, 2, r.stderr);
        assert.equal(quoted(r.stdout + r.stderr, real, 10), null, `echoed the key file: ${r.stderr}`);
      }
    } finally {
      writeFileSync(keyFile, `${real}\n`);
      chmodSync(keyFile, 0o600);
    }
  });

  it("attack: under umask 000, `init`, `users create` and `keys rotate-master` (key file) leave nothing in the data dir another account can read or write, no stray key copy (.new, .pending), and the new key printed nowhere (human or --json)", async () => {
    const previous = process.umask(0);
    try {
      const dir = join(root, `umask-${++seq}`, "data");
      const env = { BULWARK_DATA_DIR: dir, ...CHEAP_ARGON2 };
      const init = await bulwark(["init"], { env });
      assert.equal(init.code, 0, init.stderr);
      const created = await bulwark(["users", "create", "--email", "root@example.org"], { env, input: "a long and unusual passphrase 42\n" });
      assert.equal(created.code, 0, created.stderr);
      const outputs: string[] = [];
      for (const extra of [[], ["--json"]]) {
        const r = await bulwark(["keys", "rotate-master", "--yes", ...extra], { env });
        assert.equal(r.code, 0, r.stderr);
        const key = readFileSync(join(dir, "master.key"), "utf8").trim();
        assert.equal(quoted(r.stdout + r.stderr, key, 10), null, "the new key file's content was printed");
        outputs.push(r.stdout);
      }
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      const open = readdirSync(dir).filter((f) => (statSync(join(dir, f)).mode & 0o077) !== 0);
      assert.deepEqual(open, [], "files another account can read or write");
      assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith("master.key") && f !== "master.key"), [], "stray key copies");
    } finally {
      process.umask(previous);
    }
  });
});

describe("credentials in the environment", () => {
  it("attack: a BULWARK_SMTP_URL whose password holds an un-encoded \"@\" and \"?\" is refused without quoting any of it, as the database URL is (ASVS 16.5.1, 13.3.1) (was: every command's error quoted the password's tail as an unknown parameter)", async () => {
    const tail = "vL7zRtq";
    const password = `Xk9@mQ2?${tail}`; // a generated password, pasted into the URL without percent-encoding
    const env = { BULWARK_DATA_DIR: join(root, "env-only"), BULWARK_MAIL_FROM: "security@example.org" };
    // The defence that holds, for comparison: the database URL parser sees the "@" after the host and shows nothing.
    const db = await bulwarkInProcess(["users", "census"], { ...env, BULWARK_DATABASE_URL: `postgres://bulwark:${password}@db.example.org:5432/bulwark?sslmode=require` }, piped(""));
    assert.equal(db.code, 2, db.stderr);
    assert.equal(db.stderr.includes(tail), false, db.stderr);
    const leaks: string[] = [];
    for (const url of [`smtp://mailer:${password}@relay.example.org:587`, `smtps://mailer:Xk9@mQ2?requireTLS=${tail}@relay.example.org`]) {
      const r = await bulwarkInProcess(["users", "census"], { ...env, BULWARK_SMTP_URL: url }, piped(""));
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /BULWARK_SMTP_URL/);
      if (r.stderr.includes(tail)) leaks.push(r.stderr.trim());
    }
    assert.deepEqual(leaks, []);
  });
});
