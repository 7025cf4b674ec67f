// End-to-end: `bulwark hash identify|verify|new` as a user runs them (no database): each subcommand once in a spawned
// CLI, the other cases in this process (runCLI, the same program), which costs a fraction of a spawn.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, test } from "node:test";
import { bulwark as spawnCLI, bulwarkHere, type CLIResult } from "./helpers/cli.ts";

/** Runs `bulwark hash ARGS` in a child, `stdin` written then closed. */
const spawned = (args: string[], stdin: string | Buffer = "", env: NodeJS.ProcessEnv = {}): Promise<CLIResult> =>
  spawnCLI(["hash", ...args], { env, input: stdin });

/** The same run in this process (bulwarkHere): `stdin` written then closed, the environment a spawned run gets. */
const bulwark = (args: string[], stdin: string | Buffer = "", env: NodeJS.ProcessEnv = {}): Promise<CLIResult> => bulwarkHere(["hash", ...args], { env, input: stdin });

// Independent vectors (src/accounts/passwords/vectors/): md5-crypt from passlib, bcrypt from mkpasswd.
const MD5_CRYPT = "$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/"; // "password"
const BCRYPT = "$2b$05$Wr1uKte7wWrAEQeLuLiudOCRQytXFLj4fHrPjeiA8QhkIo4d2kIFm"; // "password"

describe("bulwark hash", () => {
  test("identify prints the scheme id", async () => {
    const run = await spawned(["identify", MD5_CRYPT]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "md5-crypt\n");
  });

  test("identify --json prints scheme and parameters", async () => {
    const run = await bulwark(["identify", "--json", BCRYPT]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { scheme: "bcrypt", params: "cost=5" });
  });

  test("identify exits 2 with the reason for unknown, malformed and out-of-bounds hashes", async () => {
    const unknown = await bulwark(["identify", "nonsense"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unsupported password hash: the format is not one we recognise/);
    const hostile = await bulwark(["identify", "$2b$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"]);
    assert.equal(hostile.code, 2);
    assert.match(hostile.stderr, /bcrypt cost 31 is above the limit of 15/);
    assert.equal(hostile.stdout, "");
    const malformed = await bulwark(["identify", "$1$toolongsalt$abc"]);
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /md5-crypt/);
  });

  test("verify exits 0 on a match, stripping exactly one trailing newline", async () => {
    assert.equal((await spawned(["verify", MD5_CRYPT], "password\n")).code, 0);
    assert.equal((await bulwark(["verify", MD5_CRYPT], "password\r\n")).code, 0);
    assert.equal((await bulwark(["verify", BCRYPT], "password")).code, 0);
  });

  test("verify exits 1 on a mismatch, including a second newline that is part of the password", async () => {
    const run = await bulwark(["verify", MD5_CRYPT], "wrong\n");
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "mismatch\n");
    assert.equal((await bulwark(["verify", MD5_CRYPT], "password\n\n")).code, 1);
    assert.equal((await bulwark(["verify", MD5_CRYPT], "password \n")).code, 1);
  });

  test("verify exits 2 for an unsupported or out-of-bounds hash", async () => {
    const run = await bulwark(["verify", "$S$Zabcdefgh" + "x".repeat(43)], "password\n");
    assert.equal(run.code, 2);
    assert.match(run.stderr, /log2 iteration count 37 is above the limit of 20/);
  });

  test("new prints a default-scheme argon2id hash that verify accepts", async () => {
    const created = await spawned(["new"], "correct horse battery staple\n");
    assert.equal(created.code, 0, created.stderr);
    const stored = created.stdout.trim();
    assert.match(stored, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.equal((await bulwark(["verify", "--json", stored], "correct horse battery staple\n")).stdout, '{\n  "match": true\n}\n');
    assert.equal((await bulwark(["verify", stored], "correct horse battery staple\n\n")).code, 1);
  });

  test("new takes the configured argon2id parameters, as users create does, and names a bad one (was: always the defaults, a bad value ignored)", async () => {
    const created = await bulwark(["new"], "correct horse battery staple\n", { BULWARK_ARGON2_TIME: "3", BULWARK_ARGON2_MEMORY_KIB: "8192" });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^\$argon2id\$v=19\$m=8192,t=3,p=1\$/);
    const bad = await bulwark(["new"], "correct horse battery staple\n", { BULWARK_ARGON2_TIME: "abc" });
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, /BULWARK_ARGON2_TIME must be an integer from 1 to 10/);
  });

  test("new refuses an empty password with exit 2, as users create does, and prints no hash", async () => {
    // Was: exit 0 and a hash of "" — stored, it lets anyone in with no password at all.
    for (const stdin of ["", "\n", "\r\n"]) {
      const run = await bulwark(["new"], stdin);
      assert.equal(run.code, 2, `${JSON.stringify(stdin)}: ${run.stdout}${run.stderr}`);
      assert.equal(run.stdout, "", "no hash is printed");
      assert.match(run.stderr, /^bulwark: no password on stdin/);
    }
  });

  test("verify refuses an empty password with exit 2 and the message of new (was: \"mismatch\", exit 1)", async () => {
    for (const stdin of ["", "\n", "\r\n"]) {
      const verify = await bulwark(["verify", MD5_CRYPT], stdin);
      const created = await bulwark(["new"], stdin);
      assert.equal(verify.code, 2, `${JSON.stringify(stdin)}: ${verify.stdout}${verify.stderr}`);
      assert.equal(verify.stdout, "");
      assert.match(verify.stderr, /^bulwark: no password on stdin \(it is empty\); pipe one in/);
      assert.equal(verify.stderr.split(";")[0], created.stderr.split(";")[0], "the same refusal as hash new");
    }
  });

  test("verify refuses a password over the size limit with exit 2, as new does (was: \"mismatch\", exit 1)", async () => {
    const long = "a".repeat(10_000);
    const verify = await bulwark(["verify", MD5_CRYPT], long);
    const created = await bulwark(["new"], long);
    assert.equal(created.code, 2);
    assert.equal(verify.code, 2, verify.stdout);
    assert.equal(verify.stderr, created.stderr);
    assert.equal(verify.stderr, "bulwark: the password is longer than 4096 bytes\n");
  });

  test("verify refuses a password longer than the hash's scheme is checked for with exit 2, naming both lengths (was: \"mismatch\", exit 1)", async () => {
    // sha512-crypt of "Hello world!" (Drepper's specification, rounds=5000 example). Its loop costs rounds × length,
    // so verify never compares a password over 512 bytes: "mismatch" would claim a comparison that never ran.
    const SHA512_CRYPT = "$6$rounds=5000$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const over = await bulwark(["verify", SHA512_CRYPT], "a".repeat(513));
    assert.equal(over.code, 2, over.stdout + over.stderr);
    assert.equal(over.stdout, "");
    assert.match(over.stderr, /^bulwark: the password is 513 bytes, and sha512-crypt hashes are checked only up to 512 bytes .*nothing was compared\n$/);
    assert.equal((await bulwark(["verify", SHA512_CRYPT], "a".repeat(512))).code, 1, "at the bound it is compared: a plain mismatch");
    assert.equal((await bulwark(["verify", SHA512_CRYPT], "Hello world!")).code, 0);
    assert.equal((await bulwark(["verify", MD5_CRYPT], "a".repeat(513))).code, 1, "md5-crypt's bound is the general 4096 bytes");
  });

  test("attack: an endless stdin is refused once past the size limit, not read to its end (was: held whole in memory)", async () => {
    const { runCLI } = await import("../src/cli/program.ts");
    for (const args of [["hash", "new"], ["hash", "verify", MD5_CRYPT]]) {
      let produced = 0;
      // 64 KiB chunks for ever: the old reader never returned; one that stops at the limit reads a chunk or two.
      const endless = new Readable({ read() { produced += 65_536; this.push(Buffer.alloc(65_536, 0x61)); } });
      const [out, err] = [new PassThrough(), new PassThrough()];
      let stderr = "";
      err.on("data", (d: Buffer) => (stderr += d.toString()));
      const code = await runCLI(args, { stdout: out, stderr: err, stdin: endless });
      process.exitCode = undefined;
      endless.destroy();
      assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
      assert.ok(produced <= 4 * 65_536, `${args.join(" ")}: read ${produced} bytes before refusing`);
      assert.match(stderr, /the password is longer than 4096 bytes/);
    }
  });

  test("attack: password bytes that are not UTF-8 are refused, never replaced by U+FFFD (was: another byte string matched)", async () => {
    // ASVS 6.2.8: verified exactly as received. \xff\xfe and \xc0\xc1 both decoded to two U+FFFD before.
    const created = await bulwark(["new"], Buffer.from("S3cret-\xff\xfe-passphrase-long", "latin1"));
    assert.equal(created.code, 2, created.stdout);
    assert.equal(created.stdout, "", "no hash is printed");
    assert.match(created.stderr, /^bulwark: the password on stdin is not valid UTF-8/);
    const stored = (await bulwark(["new"], "S3cret-\ufffd\ufffd-passphrase-long")).stdout.trim();
    const verify = await bulwark(["verify", stored], Buffer.from("S3cret-\xc0\xc1-passphrase-long", "latin1"));
    assert.equal(verify.code, 2, verify.stdout);
    assert.match(verify.stderr, /^bulwark: the password on stdin is not valid UTF-8/);
    // A NUL cannot be stored as typed (hash new refuses it): verify says so too, instead of "mismatch".
    const nul = await bulwark(["verify", MD5_CRYPT], "pass\0word");
    assert.equal(nul.code, 2);
    assert.equal(nul.stderr, (await bulwark(["new"], "pass\0word")).stderr);
  });

  test("attack: the stored hash can stay out of the process list (ps, /proc/PID/cmdline: CWE-214): --hash-file reads it from one line of a file, or stdin for identify; both forms at once, neither, a second line or an unreadable file are refused, never quoting the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-hash-file-"));
    try {
      const file = join(dir, "stored");
      writeFileSync(file, `${MD5_CRYPT}\n`, { mode: 0o600 });
      const identified = await bulwark(["identify", "--hash-file", file]);
      assert.equal(identified.code, 0, identified.stderr);
      assert.equal(identified.stdout, "md5-crypt\n");
      const fromStdin = await bulwark(["identify", "--hash-file", "-"], `${BCRYPT}\n`);
      assert.equal(fromStdin.stdout, "bcrypt\n", fromStdin.stderr);
      assert.equal((await bulwark(["verify", "--hash-file", file], "password\n")).code, 0, "match");
      assert.equal((await bulwark(["verify", "--hash-file", file], "Password\n")).code, 1, "mismatch");
      const both = await bulwark(["verify", MD5_CRYPT, "--hash-file", file], "password\n");
      assert.equal(both.code, 2);
      assert.match(both.stderr, /either as an argument or with --hash-file/);
      const neither = await bulwark(["identify"]);
      assert.equal(neither.code, 2);
      const stdinForVerify = await bulwark(["verify", "--hash-file", "-"], "password\n");
      assert.equal(stdinForVerify.code, 2);
      assert.match(stdinForVerify.stderr, /reads the password on stdin/);
      const two = join(dir, "two");
      writeFileSync(two, `${MD5_CRYPT}\n${BCRYPT}\n`);
      const twoLines = await bulwark(["identify", "--hash-file", two]);
      assert.equal(twoLines.code, 2);
      assert.match(twoLines.stderr, /more than one line/);
      assert.ok(!twoLines.stderr.includes("sO8MPH5T") && !twoLines.stderr.includes("Wr1uKte7"), "the file's hashes are not quoted");
      const missing = await bulwark(["verify", "--hash-file", join(dir, "absent")], "password\n");
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /cannot be read \(ENOENT\)/);
      // A named pipe with no writer would hold a plain open() for ever: refused at once, as the checks' inputs are.
      const fifo = join(dir, "fifo");
      execFileSync("mkfifo", [fifo]);
      // Spawned: were the open to block, it would hold a thread of this process's pool for ever.
      const piped = await spawned(["identify", "--hash-file", fifo]);
      assert.equal(piped.code, 2);
      assert.match(piped.stderr, /named pipe/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
