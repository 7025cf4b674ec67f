// Attacks on `bulwark check ssh`: an intruder (or a careless admin) writes an sshd_config that sshd reads one way
// and Bulwark another, so that root password login, password authentication or weak algorithms that sshd really
// enables are reported as fine (seeds 001 and 002: root over SSH with a password), or so that the check stops or
// hangs. Each attack was found as a divergence confirmed against the installed OpenSSH 9.2p1 `sshd -T` and is
// now fixed ("was: …" names the old behaviour); where sshd is installed the test re-checks that premise (a few
// runs only). ASVS 1.5.3 (parsers of the same data must agree) applies to all of them. Temp dirs only; no network.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import {
  SshConfigError,
  SshConfigUnreadableError,
  checkSshConfig,
  evaluate,
  findSshd,
  loadSshdConfig,
  parseSshdConfig,
  runSshdTest,
  type LoadOptions,
  type MatchContext,
} from "../src/checks/ssh/index.ts";

const root = realpathSync(mkdtempSync(join(tmpdir(), "bulwark-ssh-attacks-")));
// The unprivileged-scanner test runs a child as nobody, which must be able to walk down to its case directory.
chmodSync(root, 0o755);
after(() => rmSync(root, { recursive: true, force: true }));

const SSH_INDEX = fileURLToPath(new URL("../src/checks/ssh/index.ts", import.meta.url));
const SSHD = findSshd();
const sshdUsable = SSHD !== null && existsSync("/run/sshd");

let cases = 0;
/** A fresh case directory holding `files` (names relative to it; text may name the directory). Returns it. */
function tree(files: (dir: string) => Record<string, string | Buffer>, dirs: readonly string[] = []): string {
  const dir = join(root, `case${cases++}`);
  mkdirSync(dir, { mode: 0o755 });
  for (const d of dirs) mkdirSync(join(dir, d), { recursive: true });
  for (const [name, text] of Object.entries(files(dir))) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** The effective value of `key` for the configuration, or "refused: …" when Bulwark stops with an input error. */
function outcome(load: () => ReturnType<typeof loadSshdConfig>, key: string, match?: MatchContext): string {
  try {
    return evaluate(load(), match === undefined ? {} : { match }).effective[key] as string;
  } catch (error) {
    if (error instanceof SshConfigError || error instanceof SshConfigUnreadableError) return `refused: ${error.message}`;
    throw error;
  }
}

const loadIn = (dir: string, options: LoadOptions = {}) => () => loadSshdConfig(join(dir, "sshd_config"), { includeBase: dir, ...options });

/** Re-checks, with the installed sshd -T, what the finding relies on: sshd's own value for `key`. */
async function sshdPrints(dir: string, key: string, expected: string, match?: MatchContext): Promise<void> {
  if (!sshdUsable) return;
  const r = await runSshdTest(SSHD as string, join(dir, "sshd_config"), match);
  assert.ok(r.ok, `premise: sshd -T accepts this file (${r.ok ? "" : r.message})`);
  assert.equal(r.values[key], expected, `premise: sshd -T itself prints ${key} ${expected}`);
}

/** Secure outcomes of a file sshd reads as `expected`: the same value, or a clear refusal. Never the milder value. */
function sameOrRefused(got: string, expected: string, insecure: string): void {
  assert.notEqual(got, insecure, `Bulwark evaluates ${insecure} where sshd enforces ${expected}`);
  assert.ok(got === expected || got.startsWith("refused: "), got);
}

// ---------------------------------------------------------------------------------------------------------
// Include: what glob(3) and open(2) find, Bulwark must find
// ---------------------------------------------------------------------------------------------------------

describe("Include resolves files as sshd's glob(3) does", () => {
  // parser.ts globSegments/matchPattern know "*" and "?" only; glob(3) also has bracket expressions. A drop-in
  // naming scheme such as [0-9][0-9]-*.conf includes nothing, so the root login it sets is never seen.
  test("attack: an Include glob with a bracket expression ([0-9]*.conf) is read, so its PermitRootLogin yes is seen (ASVS 6.3.1) (was: brackets matched nothing)", async () => {
    const dir = tree((d) => ({
      sshd_config: `Include ${d}/sshd_config.d/[0-9]*.conf\nPermitRootLogin no\n`,
      "sshd_config.d/10-legacy.conf": "PermitRootLogin yes\nPasswordAuthentication yes\n",
    }));
    await sshdPrints(dir, "permitrootlogin", "yes");
    sameOrRefused(outcome(loadIn(dir), "permitrootlogin"), "yes", "no");
  });

  // glob(3) lets a wildcard match a leading dot when the pattern itself starts with a literal dot; globSegments
  // drops every dot name whatever the pattern, so a "hidden" drop-in is invisible to the check only.
  test("attack: an Include pattern that starts with a dot (.h*) reads the hidden file glob(3) matches (was: dot names always skipped)", async () => {
    const dir = tree((d) => ({
      sshd_config: `Include ${d}/sshd_config.d/.h*\nPermitRootLogin no\n`,
      "sshd_config.d/.hidden.conf": "PermitRootLogin yes\n",
    }));
    await sshdPrints(dir, "permitrootlogin", "yes");
    sameOrRefused(outcome(loadIn(dir), "permitrootlogin"), "yes", "no");
  });

  // "\*" escapes the wildcard for glob(3) (argv_split keeps the backslash): sshd includes the file literally
  // named "a*.conf"; matchPattern reads the backslash as a literal character and matches nothing.
  test("attack: a backslash-escaped wildcard in an Include names the literal file, as glob(3) reads it (was: backslash taken literally, nothing read)", async () => {
    const dir = tree((d) => ({
      sshd_config: `Include ${d}/sshd_config.d/a\\*.conf\nPermitRootLogin no\n`,
      "sshd_config.d/a*.conf": "PermitRootLogin yes\n",
    }));
    await sshdPrints(dir, "permitrootlogin", "yes");
    sameOrRefused(outcome(loadIn(dir), "permitrootlogin"), "yes", "no");
  });

  // The file is read as latin1 (parser.ts read), so "ü" written in UTF-8 becomes "Ã¼" and the path handed to
  // stat/readdir (re-encoded as UTF-8) is another name: the include silently reads nothing. sshd passes the bytes.
  test("attack: an Include naming a non-ASCII file (UTF-8 ü.conf, é*.conf) reads it instead of silently skipping it (ASVS 6.3.1) (was: path re-encoded, silently skipped)", async () => {
    const dir = tree((d) => ({
      sshd_config: Buffer.from(`Include ${d}/sshd_config.d/\u00fc.conf ${d}/sshd_config.d/\u00e9*.conf\nPermitRootLogin no\nPasswordAuthentication no\n`, "utf8"),
      "sshd_config.d/\u00fc.conf": "PermitRootLogin yes\n",
      "sshd_config.d/\u00e9t\u00e9.conf": "PasswordAuthentication yes\n",
    }));
    await sshdPrints(dir, "permitrootlogin", "yes");
    await sshdPrints(dir, "passwordauthentication", "yes");
    sameOrRefused(outcome(loadIn(dir), "permitrootlogin"), "yes", "no");
    sameOrRefused(outcome(loadIn(dir), "passwordauthentication"), "yes", "no");
  });

  // readdirSync decodes names as UTF-8, so a name that is not UTF-8 comes back with U+FFFD and cannot be opened:
  // the check stops with "no such file" for a file that exists and that sshd reads.
  test("attack: a drop-in whose name is not valid UTF-8 is read (or refused for what it is), not reported as 'no such file' (was: 'no such file', exit 2)", () => {
    const dir = tree((d) => ({ sshd_config: `Include ${d}/sshd_config.d/*.conf\n` }), ["sshd_config.d"]);
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/sshd_config.d/`), Buffer.from([0xff]), Buffer.from(".conf")]), "PermitRootLogin yes\n");
    const got = outcome(loadIn(dir), "permitrootlogin");
    assert.doesNotMatch(got, /no such file/, got);
    sameOrRefused(got, "yes", "no");
  });

  // glob(3) sorts in the C locale (byte order); Array.prototype.sort compares UTF-16 code units, which puts a name
  // starting with an astral character (UTF-8 F0 …) before one starting with U+E000 (EE …). First value wins, so
  // the drop-in sshd reads second decides for Bulwark.
  test("attack: included files are taken in glob(3) byte order, so the first PermitRootLogin sshd reads wins (was: UTF-16 order)", async () => {
    const dir = tree((d) => ({
      sshd_config: `Include ${d}/sshd_config.d/*.conf\n`,
      "sshd_config.d/\u{E000}.conf": "PermitRootLogin yes\n",
      "sshd_config.d/\u{1F600}.conf": "PermitRootLogin no\n",
    }));
    await sshdPrints(dir, "permitrootlogin", "yes");
    sameOrRefused(outcome(loadIn(dir), "permitrootlogin"), "yes", "no");
  });

  // "link/../x.conf" is resolved by the kernel through the link (real/x.conf); posix.join drops "link/.." lexically
  // and Bulwark reads the sibling x.conf instead.
  test("attack: '..' after a symlinked directory in an Include path is resolved as the kernel resolves it (was: resolved lexically)", async () => {
    const dir = tree((d) => ({
      sshd_config: `Include ${d}/ssh/../extra.conf\nPermitRootLogin no\n`,
      "real/etc/extra.conf": "PermitRootLogin yes\n",
      "extra.conf": "PermitRootLogin no\n",
    }), ["real/etc/ssh"]);
    symlinkSync(join(dir, "real/etc/ssh"), join(dir, "ssh"));
    await sshdPrints(dir, "permitrootlogin", "yes");
    sameOrRefused(outcome(loadIn(dir), "permitrootlogin"), "yes", "no");
  });

  // servconf.c prefixes SSHDIR only to paths starting with neither "/" nor "~", and globs without GLOB_TILDE: an
  // "Include ~/x.conf" is read relative to sshd's working directory (/ under systemd), not /etc/ssh/~/x.conf.
  // (Checked by running sshd -T from the directory: it reads ./~/evil.conf.)
  test("attack: 'Include ~/evil.conf' is read relative to sshd's working directory, not below the include base (was: below the include base)", () => {
    const dir = tree(() => ({
      sshd_config: "Include ~/evil.conf\nPermitRootLogin no\n",
      "~/evil.conf": "PermitRootLogin yes\n",
      "base/~/evil.conf": "PermitRootLogin no\n",
    }));
    const got = outcome(() => loadSshdConfig(join(dir, "sshd_config"), { includeBase: join(dir, "base"), cwd: dir }), "permitrootlogin");
    sameOrRefused(got, "yes", "no");
  });

  // sshd opens a directory matched by an Include glob and reads nothing from it (getline fails): the server starts.
  // fileSystemSource.read refuses it, so one directory named x.conf in sshd_config.d blinds the check (exit 2).
  test("attack: a directory matched by an Include glob is read as empty, as sshd does, instead of stopping the check (was: exit 2)", async () => {
    const dir = tree((d) => ({
      sshd_config: `Include ${d}/sshd_config.d/*.conf\nPermitRootLogin yes\n`,
      "sshd_config.d/10-a.conf": "PasswordAuthentication no\n",
    }), ["sshd_config.d/20-b.conf"]);
    await sshdPrints(dir, "permitrootlogin", "yes");
    assert.equal(outcome(loadIn(dir), "permitrootlogin"), "yes");
  });

  // Run as an unprivileged user, the scanner cannot list a 0700 drop-in directory, nor stat a file behind one.
  // globSegments swallows those errors as "no match", so the files sshd (root) reads are silently left out and the
  // check reports PasswordAuthentication no / prohibit-password. ASVS 16.5.3: fail closed, not open.
  test("attack: an Include the scanner cannot list or stat (permission denied) is an error, not silently empty (ASVS 16.5.3) (was: silently empty)", { skip: process.getuid?.() === 0 ? false : "needs root to run a child as nobody" }, async () => {
    const dir = tree((d) => ({
      sshd_config: `Include ${d}/sshd_config.d/*.conf ${d}/private/extra.conf\nPasswordAuthentication no\n`,
      "sshd_config.d/10-root.conf": "PermitRootLogin yes\n",
      "private/extra.conf": "PasswordAuthentication yes\n",
    }));
    for (const f of ["sshd_config", "sshd_config.d/10-root.conf", "private/extra.conf"]) chmodSync(join(dir, f), 0o644);
    chmodSync(join(dir, "sshd_config.d"), 0o700);
    chmodSync(join(dir, "private"), 0o700);
    const script = `
      const lib = await import(${JSON.stringify(SSH_INDEX)});
      try {
        const e = lib.evaluate(lib.loadSshdConfig(${JSON.stringify(join(dir, "sshd_config"))})).effective;
        console.log(JSON.stringify({ permitrootlogin: e.permitrootlogin, passwordauthentication: e.passwordauthentication }));
      } catch (error) { console.log(JSON.stringify({ error: error.name + ": " + error.message })); }`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", script], { uid: 65534, gid: 65534, timeout: 10_000 });
      let text = "";
      child.stdout.on("data", (b: Buffer) => (text += b.toString("utf8")));
      child.on("error", reject);
      child.on("close", () => resolve(text));
    });
    const result = JSON.parse(out) as { error?: string; permitrootlogin?: string; passwordauthentication?: string };
    assert.ok(result.error !== undefined, `as nobody, Bulwark evaluated ${out.trim()} while sshd (root) reads PermitRootLogin yes and PasswordAuthentication yes`);
    assert.match(result.error, /permission denied|EACCES/i);
  });

  // Each Include argument is globbed anew (sshd caches a pattern it has globbed), and the 2,000-directory budget
  // is per pattern, not per load: one 16 KiB line repeating a pattern over a big tree costs ~18 s here (sshd -T:
  // 0.1 s), and a 1 MiB file of such lines hangs a scheduled scan for about 20 minutes.
  test("attack: one Include line repeating a directory-walking glob ends within seconds (cache, or a budget for the whole load) (was: ~18 s)", async () => {
    const dir = tree(() => ({}));
    for (let i = 0; i < 1500; i++) mkdirSync(join(dir, "t", `d${i}`), { recursive: true });
    const pattern = `${dir}/t/*/n*`;
    writeFileSync(join(dir, "sshd_config"), `Include ${Array(Math.floor(16_000 / (pattern.length + 1))).fill(pattern).join(" ")}\nPermitRootLogin yes\n`);
    const script = `
      const lib = await import(${JSON.stringify(SSH_INDEX)});
      try { lib.loadSshdConfig(${JSON.stringify(join(dir, "sshd_config"))}); console.log("loaded"); }
      catch (error) { console.log("refused: " + error.message); }`;
    const r = await new Promise<{ signal: NodeJS.Signals | null; out: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", script], { timeout: 4_000, killSignal: "SIGKILL" });
      let out = "";
      child.stdout.on("data", (b: Buffer) => (out += b.toString("utf8")));
      child.on("error", reject);
      child.on("close", (_code, signal) => resolve({ signal, out }));
    });
    assert.equal(r.signal, null, "the load was still globbing after 4 s and had to be killed");
    assert.match(r.out, /loaded|refused/);
  });

  // Pinned: a quoted Include path with blanks, and a backslash-escaped blank, name the same file (argv_split).
  test("attack: an Include path with blanks, quoted or escaped, is still read (the root login in it is seen)", () => {
    const dir = tree((d) => ({
      sshd_config: `Include "${d}/my dir/a b.conf" ${d}/my\\ dir/*.conf\nPermitRootLogin no\n`,
      "my dir/a b.conf": "PermitRootLogin yes\n",
    }));
    const config = loadIn(dir)();
    assert.equal(config.files.filter((f) => f === join(dir, "my dir/a b.conf")).length, 2);
    assert.ok(checkSshConfig(config).some((f) => f.id === "ssh.root-login" && f.severity === "critical"));
  });
});

// ---------------------------------------------------------------------------------------------------------
// Lines and values
// ---------------------------------------------------------------------------------------------------------

describe("lines and values are read as sshd reads them", () => {
  // load_server_config() appends each line with strlen(), so a NUL drops the rest of the line AND its newline:
  // the next line is glued onto it. "AcceptEnv LANG\0" swallows "PermitRootLogin no" (it becomes an AcceptEnv
  // argument), and the later "PermitRootLogin yes" is the first that sshd sees. lexer.ts splitLine cuts at the NUL
  // but keeps the next line, so Bulwark reports "no". A hidden byte in a drop-in turns on seed 001's root login.
  test("attack: a NUL byte joins the next line onto its own as in sshd, so a swallowed 'PermitRootLogin no' does not hide 'yes' (ASVS 6.3.1) (was: next line kept, 'no' won)", async () => {
    const dir = tree(() => ({ sshd_config: Buffer.from("AcceptEnv LANG\0\nPermitRootLogin no\nPermitRootLogin yes\nPasswordAuthentication yes\n", "latin1") }));
    await sshdPrints(dir, "permitrootlogin", "yes");
    const got = outcome(loadIn(dir), "permitrootlogin");
    sameOrRefused(got, "yes", "no");
    if (got === "yes") assert.ok(checkSshConfig(loadIn(dir)()).some((f) => f.id === "ssh.root-login" && f.severity === "critical"));
  });

  // ciphers_valid(), mac_valid() and kex_names_valid() stop at the first empty name (strsep loop "*p != '\0'"), so
  // "aes128-ctr,,3des-cbc" is accepted and kex_assemble_names() enables 3des-cbc. values.ts refuses the line as a
  // "Bad SSH2 cipher spec" sshd would not start with: the check exits 2 with a false claim and never reports the
  // weak algorithms the running server offers. ASVS 11.3.2, 11.6.2.
  test("attack: Ciphers/MACs/KexAlgorithms with an empty entry (aes128-ctr,,3des-cbc) are accepted as sshd does and their weak algorithms reported (was: refused as a bad spec)", async () => {
    const dir = tree(() => ({
      sshd_config: "Ciphers aes128-ctr,,3des-cbc\nMACs hmac-sha2-256,,hmac-md5\nKexAlgorithms curve25519-sha256,,diffie-hellman-group1-sha1\n",
    }));
    await sshdPrints(dir, "ciphers", "aes128-ctr,3des-cbc");
    let findings;
    try {
      findings = checkSshConfig(loadIn(dir)());
    } catch (error) {
      assert.fail(`refused a file sshd runs with 3des-cbc, hmac-md5 and diffie-hellman-group1-sha1: ${(error as Error).message}`);
    }
    const weak = findings.find((f) => f.id === "ssh.weak-algorithms");
    assert.ok(weak !== undefined);
    for (const name of ["3des-cbc", "hmac-md5", "diffie-hellman-group1-sha1"]) assert.match(weak.title, new RegExp(name));
  });
});

// ---------------------------------------------------------------------------------------------------------
// Match Address
// ---------------------------------------------------------------------------------------------------------

describe("Match Address is read as sshd's addr_match_list reads it", () => {
  // addr_pton() is getaddrinfo(AI_NUMERICHOST), which takes every inet_aton form: "012.0.0.1" (octal) and "10.1"
  // are 10.0.0.1. patterns.ts uses node:net isIPv4, treats them as wildcard patterns and they match nothing, so
  // `--match addr=10.0.0.1` reports no root login where sshd -T -C grants it.
  test("attack: --match: Match Address in inet_aton form (012.0.0.1, 10.1) matches 10.0.0.1 as sshd does (ASVS 6.3.1) (was: taken as a pattern, no match)", async () => {
    const match: MatchContext = { user: "root", host: "h", addr: "10.0.0.1" };
    for (const written of ["012.0.0.1", "10.1"]) {
      const dir = tree(() => ({ sshd_config: `PermitRootLogin no\nMatch Address ${written}\n PermitRootLogin yes\n` }));
      if (written === "012.0.0.1") await sshdPrints(dir, "permitrootlogin", "yes", match);
      sameOrRefused(outcome(loadIn(dir), "permitrootlogin", match), "yes", "no");
    }
  });

  // addr_match_list() returns -2 on an empty entry ("10.0.0.0/8,,x", a trailing comma) and addr_pton_cidr() on a
  // mask longer than the family allows: sshd stops with "Invalid Match address argument". addressMatchList stops
  // at the empty entry, parseCidr treats /33 as a pattern: Bulwark reports a file sshd will not start with.
  test("attack: Match Address with an empty list entry is refused as sshd refuses it (was: list cut at the empty entry)", () => {
    for (const list of ["10.0.0.0/8,,192.0.2.1", "10.0.0.0/8,"]) {
      assert.throws(() => parseSshdConfig(`PermitRootLogin no\nMatch Address ${list}\n PermitRootLogin yes\n`, join(root, "sshd_config")), (e: unknown) => e instanceof SshConfigError && e.line === 2, list);
    }
  });
  test("attack: Match Address with a mask longer than the address (10.0.0.0/33) is refused as sshd refuses it (was: taken as a pattern)", () => {
    assert.throws(() => parseSshdConfig("Match Address 10.0.0.0/33\n PermitRootLogin yes\n", join(root, "sshd_config")), (e: unknown) => e instanceof SshConfigError && e.line === 1);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------------------------------------

describe("a maximal file of Match blocks", () => {
  // Pinned: 14,000 blocks (0.5 MB) each allowing root for one user, plus one network block allowing passwords,
  // under a keys-only global policy. Only a user block together with the network block gives a root password
  // login: past the exact-search budget the over-approximation must still find it (no timing assertion: a test pins the verdict only).
  test("attack: root password login needing one of 14,000 user blocks plus a network block is still reported critical", () => {
    const blocks = Array.from({ length: 14_000 }, (_, i) => `Match User u${i}\n PermitRootLogin yes\n`).join("");
    const text = `PermitRootLogin no\nAuthenticationMethods publickey\n${blocks}Match Address 203.0.113.0/24\n AuthenticationMethods password\n`;
    const findings = checkSshConfig(parseSshdConfig(text, join(root, "sshd_config")));
    assert.ok(findings.some((f) => f.id === "ssh.root-login" && f.severity === "critical" && /Address 203\.0\.113\.0\/24/.test(f.title)));
  });
});
