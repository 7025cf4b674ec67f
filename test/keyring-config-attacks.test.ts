// Attacks on key management and start-up configuration: the data dir named so that its symbolic-link check is
// skipped, master key text that could be truncated or padded, key rows tampered with in the database (wrapped
// material swapped, purpose relabelled, a retired key made current again), a database from a newer Bulwark,
// numbers in odd forms, and proxy ranges that hold the IPv4-mapped block. Each test is an attack that must fail
// on correct code; "(was: …)" names what the code did before its fix. Temp dirs only; loopback only (Fastify inject).
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { openApp } from "../src/app/index.ts";
import { loadConfig } from "../src/app/config.ts";
import { parseTrustProxy } from "../src/app/http-config.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { runSshdTest } from "../src/checks/ssh/cross-check.ts";
import { parseMasterKey, readMasterKeyFile } from "../src/crypto/master-key.ts";
import { tamper } from "./helpers/tamper.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { assertConfigRefuses } from "./helpers/config-refusal.ts";

const ENV = { BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
const ROW = { table: "mfa_totp", column: "secret_ct", row: "usr_redteam" };

interface Raised extends Error {
  code?: string;
}

let root: string;
/** A data dir `bulwark init` left, with a second data key made current (the first one retired). */
let pristine: string;
let retiredDataKey: string;
let currentDataKey: string;

before(async () => {
  root = realpathSync(mkdtempSync(join(tmpdir(), "bulwark-redteam-keyring-")));
  pristine = join(root, "pristine");
  const app = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: pristine }, mode: "init" });
  try {
    retiredDataKey = app.keyring.currentDataKeyId as string;
    currentDataKey = await app.keyring.rotateDataKey();
  } finally {
    await app.close();
  }
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A copy of the pristine data dir named `name`. */
function dataDir(name: string): string {
  const dir = join(root, name);
  cpSync(pristine, dir, { recursive: true });
  return dir;
}

async function open(dir: string, mode: "open" | "migrate" | "init" = "open", extra: Record<string, string> = {}): Promise<void> {
  const app = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: dir, ...extra }, mode });
  await app.close();
}

describe("the data dir named with a trailing slash (ADR 0008, ASVS 13.3.2)", () => {
  // lstat("link/") and lstat("link/.") resolve the link, so dataDirStats sees the target directory. loadConfig keeps an
  // absolute BULWARK_DATA_DIR as given (only a relative one goes through path.resolve, which drops the slash).
  for (const suffix of ["/", "/."]) {
    it(`attack: refuses a data dir that is a symbolic link when BULWARK_DATA_DIR ends in "${suffix}" (whoever can write the link's directory picks the dir; was: accepted)`, async () => {
      const name = suffix === "/" ? "slash" : "dot";
      const target = dataDir(`link-target-${name}`); // an initialised dir of ours: the ownership and mode checks pass
      const link = join(root, `linked-${name}`);
      symlinkSync(target, link);
      const named = `${link}${suffix}`;
      for (const mode of ["open", "init"] as const) {
        await assert.rejects(open(named, mode), (error: Raised) => {
          assert.equal(error.code, "BULWARK_ERR_DATA_DIR", `${mode}: ${error.message}`);
          assert.match(error.message, /symbolic link/);
          return true;
        }, `${mode} adopted ${named}, a link to ${target}`);
      }
    });
  }
});

describe("master key text: refused, never truncated or padded to 32 bytes (ASVS 11.2.3)", () => {
  // Random-looking bytes (a counter is refused as a placeholder now) whose base64 holds "+" and "/" (so the base64url
  // form differs) and gives the echo check text to look for.
  const key = Buffer.from(testMasterKey("text forms 1"), "base64");
  const forms: Array<[string, string]> = [
    ["33 bytes (one byte too many, not cut to 32)", Buffer.alloc(33, 0x5a).toString("base64")],
    ["31 bytes (not padded)", Buffer.alloc(31, 0x5a).toString("base64")],
    ["the base64url alphabet", key.toString("base64url")],
    ["64 hexadecimal digits", key.toString("hex")],
    ["a key broken across two lines", `${key.toString("base64").slice(0, 20)}\n${key.toString("base64").slice(20)}`],
    ["a key with a space inside", `${key.toString("base64").slice(0, 20)} ${key.toString("base64").slice(20)}`],
    ["two keys one after the other", `${key.toString("base64")}\n${testMasterKey(1)}`],
    ["a key followed by a NUL and more text", `${key.toString("base64")}\0AAAA`],
    ["a padded key with text after the padding", `${key.toString("base64")}AAAA`],
  ];
  for (const [what, text] of forms) {
    it(`attack: refuses ${what}, without echoing it`, () => {
      assert.throws(() => parseMasterKey(text, "BULWARK_MASTER_KEY"), (error: Raised) => {
        assert.equal(error.code, "BULWARK_ERR_MASTER_KEY_INVALID");
        assert.match(error.message, /^BULWARK_MASTER_KEY /);
        const sample = text.replace(/[^A-Za-z0-9]/g, "").slice(4, 16);
        assert.equal(sample.length, 12);
        assert.ok(!error.message.includes(sample), `the message echoes the key text: ${error.message}`);
        return true;
      });
    });
  }

  it("takes surrounding blanks and a final newline off, and nothing else: the same 32 bytes", () => {
    assert.deepEqual(parseMasterKey(` \t${key.toString("base64")}\r\n`, "BULWARK_MASTER_KEY"), new Uint8Array(key));
    assert.deepEqual(parseMasterKey(key.toString("base64").replace(/=+$/, ""), "BULWARK_MASTER_KEY"), new Uint8Array(key));
  });

  it("attack: a master.key holding two keys (appended to) is refused, not read as its first line", () => {
    const dir = join(root, "two-keys");
    mkdirSync(dir, { mode: 0o700 });
    const path = join(dir, "master.key");
    writeFileSync(path, `${key.toString("base64")}\n${testMasterKey(2)}\n`, { mode: 0o600 });
    assert.throws(() => readMasterKeyFile(path), (error: Raised) => error.code === "BULWARK_ERR_MASTER_KEY_INVALID");
  });
});

describe("key rows tampered with by someone who can write the database but lacks the master key (ASVS 11.3.3)", () => {
  it("attack: the wrapped material of two data keys swapped between their rows does not unwrap (the key id is bound)", async () => {
    const dir = dataDir("swapped");
    const db = new DatabaseSync(join(dir, "bulwark.db"));
    const rows = db.prepare("SELECT id, wrapped FROM keyring_keys WHERE purpose = 'data' ORDER BY id").all() as Array<{ id: string; wrapped: string }>;
    db.close();
    assert.equal(rows.length, 2);
    const [a, b] = rows as [{ id: string; wrapped: string }, { id: string; wrapped: string }];
    tamper(dir, ["UPDATE keyring_keys SET wrapped = ? WHERE id = ?", b.wrapped, a.id], ["UPDATE keyring_keys SET wrapped = ? WHERE id = ?", a.wrapped, b.id]);
    await assert.rejects(open(dir), (error: Raised) => error.code === "BULWARK_ERR_DECRYPT" && /does not unwrap/.test(error.message));
  });

  it("attack: a signing key relabelled as a data key (and a data key as a signing key) does not unwrap (the purpose is bound)", async () => {
    const signing = dataDir("signing-as-data");
    tamper(signing, ["UPDATE keyring_keys SET purpose = 'data', status = 'retired' WHERE purpose = 'signing'"]);
    await assert.rejects(open(signing), (error: Raised) => error.code === "BULWARK_ERR_DECRYPT" && /does not unwrap/.test(error.message));
    const data = dataDir("data-as-signing");
    tamper(data, ["UPDATE keyring_keys SET purpose = 'signing', status = 'retired' WHERE id = ?", retiredDataKey]);
    await assert.rejects(open(data), (error: Raised) => error.code === "BULWARK_ERR_DECRYPT" && /does not unwrap/.test(error.message));
  });

  // A key is retired because it may be known (contain rotate-keys after a breach). Its row's status and created_at
  // are not covered by the wrap's associated data (only id and purpose are), so a database writer can make it current
  // again, and every process then seals new TOTP secrets and link mails under it, without a word.
  it("attack: a retired data key marked current again in its row (status, created_at) is not used for new seals (was: used)", async () => {
    const dir = dataDir("status-flipped");
    tamper(
      dir,
      ["UPDATE keyring_keys SET status = 'retired' WHERE id = ?", currentDataKey],
      ["UPDATE keyring_keys SET status = 'current', created_at = (SELECT max(created_at) + 1 FROM keyring_keys) WHERE id = ?", retiredDataKey],
    );
    let sealedUnder: string | null = null;
    let refused: Raised | null = null;
    try {
      const app = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: dir }, mode: "open" });
      try {
        sealedUnder = Keyring.keyIdOf(await app.keyring.seal("JBSWY3DPEHPK3PXP", ROW));
      } finally {
        await app.close();
      }
    } catch (error) {
      refused = error as Raised;
    }
    if (refused !== null) {
      assert.match(refused.code ?? "", /^BULWARK_ERR_/, refused.message); // refusing to start on a tampered key table is secure too
    } else {
      assert.notEqual(sealedUnder, retiredDataKey, `a new secret was sealed under the retired key ${retiredDataKey}; ${currentDataKey} had replaced it`);
    }
  });
});

describe("a database written by a newer Bulwark", () => {
  it("attack: every mode refuses it by name before any change: the file is byte-for-byte the same and no master key is made", async () => {
    const dir = dataDir("newer");
    const key = readFileSync(join(dir, "master.key"), "utf8").trim();
    rmSync(join(dir, "master.key")); // init would otherwise be free to make a new one
    tamper(dir, ["INSERT INTO bulwark_migrations (version, name, applied_at) VALUES (?, ?, ?)", 9999, "from-the-future", 0]);
    const before = readFileSync(join(dir, "bulwark.db"));
    for (const mode of ["open", "migrate", "init"] as const) {
      for (const extra of [{}, { BULWARK_MASTER_KEY: key }] as Array<Record<string, string>>) {
        await assert.rejects(open(dir, mode, extra), (error: Raised) => {
          assert.equal(error.code, "BULWARK_ERR_DB_NEWER", `${mode}: ${error.message}`);
          assert.match(error.message, /9999/);
          return true;
        });
      }
    }
    assert.deepEqual(readFileSync(join(dir, "bulwark.db")), before, "the newer database was written to");
    assert.equal(existsSync(join(dir, "master.key")), false, "a master key was created for a database this code cannot read");
  });
});

describe("numbers from the environment in odd forms: the bounds hold whatever the spelling", () => {
  const cases: Array<[string, string[]]> = [
    // NIST SP 800-63B never allows fewer than 8 characters.
    ["BULWARK_PASSWORD_MIN_LENGTH", ["7", "0x7", "7e0", "0b111", "-8", "8e-1", "7.5", "Infinity", "-Infinity", "NaN", "1e400", "65", "9007199254740993"]],
    ["BULWARK_ARGON2_MEMORY_KIB", ["1023", "0x3ff", "1e3", "-19456", "Infinity", "1e400", "1048577"]],
    ["BULWARK_ARGON2_TIME", ["0", "0x0", "0e5", "-1", "11", "Infinity"]],
    ["BULWARK_SESSION_IDLE_MINUTES", ["1", "0x1", "1e0", "-30", "Infinity", "1441"]],
    ["BULWARK_SESSION_ABSOLUTE_MINUTES", ["4", "4e0", "43201", "1e9", "Infinity"]],
    ["BULWARK_REAUTH_MINUTES", ["0", "0e0", "121", "Infinity", "-10"]],
    ["PORT", ["0x50", "8e1", "-1", "65536", "80.0", "Infinity", "+80"]],
  ];
  for (const [name, values] of cases) {
    it(`attack: refuses ${name} outside its range in any spelling (${values.join(" ")})`, () => {
      assertConfigRefuses(root, name, values);
    });
  }
});

describe("BULWARK_TRUST_PROXY: IPv6 ranges that hold the IPv4-mapped block (::ffff:0:0/96)", () => {
  /** The address the server sees for a client at `remoteAddress` that claims `forwarded`, with `trust` as configured. */
  async function clientAddress(trust: string, remoteAddress: string, forwarded: string): Promise<string> {
    const server = Fastify({ trustProxy: parseTrustProxy(trust) });
    server.get("/", async (request) => ({ ip: request.ip }));
    try {
      const res = await server.inject({ method: "GET", url: "/", remoteAddress, headers: { "x-forwarded-for": forwarded } });
      return (res.json() as { ip: string }).ip;
    } finally {
      await server.close();
    }
  }

  // parseTrustProxy accepts these (/16 or narrower), and each contains every IPv4-mapped address: only the proxy
  // library's cross-family rule keeps an IPv4 client (or its mapped form on a dual-stack socket) from being trusted.
  for (const range of ["::/16", "::/80", "::ffff:0:0/95", "::/95"]) {
    it(`attack: ${range} does not let an IPv4 client on the Internet write its own address into X-Forwarded-For`, async () => {
      assert.ok(parseTrustProxy(range), "accepted by the parser");
      for (const remote of ["203.0.113.9", "::ffff:203.0.113.9"]) {
        const seen = await clientAddress(range, remote, "198.51.100.66");
        assert.notEqual(seen, "198.51.100.66", `${range}: a client at ${remote} chose its own address`);
      }
    });
  }

  it("believes X-Forwarded-For from a listed proxy (so the attacks above can fail)", async () => {
    assert.equal(await clientAddress("203.0.113.0/24", "203.0.113.9", "198.51.100.66"), "198.51.100.66");
  });
});

describe("programs Bulwark runs", () => {
  // `check ssh --cross-check` runs sshd -T (and `id`) as the operator: they inherited Bulwark's environment, master
  // key included, which a child's user can read in /proc/PID/environ and a program may log (ASVS 13.3.1).
  it("attack: sshd run by the cross-check gets no BULWARK_* variable, the master key least of all (was: inherited)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-redteam-childenv-"));
    const previous = process.env["BULWARK_MASTER_KEY"];
    try {
      // A stand-in for sshd that prints its environment as "keyword value" lines, as sshd -T prints settings.
      const fake = join(dir, "sshd");
      writeFileSync(fake, "#!/bin/sh\nenv | sed 's/=/ /'\n", { mode: 0o755 });
      process.env["BULWARK_MASTER_KEY"] = "redteam-master-key-value";
      const result = await runSshdTest(fake, join(dir, "sshd_config"));
      assert.equal(result.ok, true);
      const names = Object.keys(result.ok ? result.values : {});
      assert.ok(names.includes("PATH"), "the rest of the environment is passed on");
      assert.deepEqual(names.filter((n) => n.startsWith("BULWARK_")), []);
      assert.doesNotMatch(JSON.stringify(result), /redteam-master-key-value/);
    } finally {
      if (previous === undefined) delete process.env["BULWARK_MASTER_KEY"];
      else process.env["BULWARK_MASTER_KEY"] = previous;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
