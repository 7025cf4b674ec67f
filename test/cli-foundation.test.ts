// End-to-end tests of `bulwark init`, `audit …` and every bad-input case of the foundation: each stops
// with one clear message naming the problem, exits 2 (or 3 for a runtime failure), and creates nothing.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { bulwark, bulwarkHere } from "./helpers/cli.ts";
import { testMasterKey } from "./helpers/master-key.ts";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-cli-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

function dir(name: string): string {
  return join(root, name);
}


describe("bulwark init", () => {
  it("creates the data dir, a 0600 key file and the database, and is idempotent", async () => {
    const d = dir("init");
    const first = await bulwark(["init", "--json"], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(first.code, 0, first.stderr);
    const report = JSON.parse(first.stdout);
    assert.equal(report.createdMasterKeyFile, true);
    assert.deepEqual(report.migrationsApplied, MIGRATIONS.map((m) => m.version));
    assert.equal(statSync(join(d, "master.key")).mode & 0o777, 0o600);
    assert.equal(statSync(join(d, "bulwark.db")).mode & 0o077, 0, "the database is not readable by others");
    const key = readFileSync(join(d, "master.key"), "utf8");
    const second = await bulwarkHere(["init", "--json"], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(JSON.parse(second.stdout).createdMasterKeyFile, false);
    assert.equal(readFileSync(join(d, "master.key"), "utf8"), key, "the key is never overwritten");
    const verify = await bulwarkHere(["audit", "verify"], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /intact/);
  });

  it("records init, key creation and migrations in the audit log", async () => {
    const d = dir("events");
    await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d } });
    const tail = await bulwarkHere(["audit", "tail", "--json"], { env: { BULWARK_DATA_DIR: d } });
    const types = tail.stdout.trim().split("\n").map((l) => JSON.parse(l).type);
    for (const t of ["store.migrated", "keyring.key-created", "keyring.master-key-created", "bulwark.init"]) assert.ok(types.includes(t), t);
  });

  it("takes the master key from BULWARK_MASTER_KEY and writes no key file", async () => {
    const d = dir("envkey");
    const key = testMasterKey(7);
    const r = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d, BULWARK_MASTER_KEY: key } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(join(d, "master.key")), false);
    const wrong = await bulwarkHere(["audit", "verify"], { env: { BULWARK_DATA_DIR: d, BULWARK_MASTER_KEY: testMasterKey(8) } });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /wrapped by master key/);
  });
});

describe("audit verify after tampering", () => {
  it("exits 1 and names the altered event; export and offline verify agree", async () => {
    const d = dir("tamper");
    await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d } });
    const exportFile = join(root, "tamper-export.jsonl");
    const ex = await bulwarkHere(["audit", "export", "--output", exportFile], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(ex.code, 0, ex.stderr);
    const offline = await bulwarkHere(["audit", "verify", "--file", exportFile]);
    assert.equal(offline.code, 0, offline.stderr);
    const db = new DatabaseSync(join(d, "bulwark.db"));
    db.exec("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2");
    db.close();
    const r = await bulwark(["audit", "verify"], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /BROKEN at event #2 \(evt_[a-z0-9]+\)/);
    // The exported copy still verifies offline: the tampering is provable.
    assert.equal((await bulwarkHere(["audit", "verify", "--file", exportFile])).code, 0);
  });

  it("catches a rewritten log against exported checkpoints", async () => {
    const d = dir("checkpoint");
    await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d } });
    const cpFile = join(root, "checkpoints.jsonl");
    const cp = await bulwarkHere(["audit", "checkpoint", "--export", cpFile], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(cp.code, 0, cp.stderr);
    assert.equal((await bulwarkHere(["audit", "verify", "--checkpoints", cpFile], { env: { BULWARK_DATA_DIR: d } })).code, 0);
    const db = new DatabaseSync(join(d, "bulwark.db"));
    db.exec("DELETE FROM audit_checkpoints");
    db.exec("DELETE FROM audit_events");
    db.exec("UPDATE audit_head SET seq = 0, hash = '" + "0".repeat(64) + "'");
    db.close();
    const r = await bulwarkHere(["audit", "verify", "--checkpoints", cpFile], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /checkpoint/);
  });
});

describe("bad input: a clear message, exit 2, nothing created", () => {
  it("a data dir that is a file", async () => {
    const f = dir("a-file");
    writeFileSync(f, "x");
    const r = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: f } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a directory/);
  });

  it("a data dir under a file (cannot be created)", async () => {
    const f = dir("parent-file");
    writeFileSync(f, "x");
    const r = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: join(f, "data") } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /data dir/);
  });

  it("a corrupt SQLite file", async () => {
    const d = dir("corrupt");
    mkdirSync(d);
    writeFileSync(join(d, "bulwark.db"), Buffer.alloc(4096, 0x5a));
    const r = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a SQLite database or is corrupt/);
    assert.equal(existsSync(join(d, "master.key")), false, "no key file was created");
    assert.equal(readFileSync(join(d, "bulwark.db")).every((b) => b === 0x5a), true, "the file was not touched");
  });

  it("a foreign SQLite file", async () => {
    const d = dir("foreign");
    mkdirSync(d);
    const db = new DatabaseSync(join(d, "bulwark.db"));
    db.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5)");
    db.close();
    chmodSync(join(d, "bulwark.db"), 0o600); // one every account may read is refused before its tables are looked at
    const r = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tables Bulwark did not create \(invoices\)/);
    assert.equal(existsSync(join(d, "master.key")), false);
    const check = new DatabaseSync(join(d, "bulwark.db"));
    assert.deepEqual(check.prepare("SELECT name FROM sqlite_master WHERE type='table'").all().map((r) => r["name"]), ["invoices"]);
    check.close();
  });

  it("a malformed BULWARK_DATABASE_URL", async () => {
    for (const url of ["not a url", "mysql://u@h/db", "postgres://u@h"]) {
      const r = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: dir("mal"), BULWARK_DATABASE_URL: url } });
      assert.equal(r.code, 2, url);
      assert.match(r.stderr, /BULWARK_DATABASE_URL/, url);
    }
    assert.equal(existsSync(dir("mal")), false);
  });

  it("an unreachable PostgreSQL (exit 3, password redacted)", async () => {
    const r = await bulwark(["init"], { env: { BULWARK_DATA_DIR: dir("unreach"), BULWARK_DATABASE_URL: `postgres://u:hunter2@localhost/db?host=${encodeURIComponent(join(root, "no-such-socket-dir"))}` } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /cannot connect to PostgreSQL/);
    assert.doesNotMatch(r.stderr, /hunter2/);
    assert.equal(existsSync(dir("unreach")), false);
  });

  it("a master key of the wrong length or not base64", async () => {
    for (const key of [Buffer.alloc(16).toString("base64"), "!!!not-base64!!!"]) {
      const r = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: dir("badkey"), BULWARK_MASTER_KEY: key } });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /BULWARK_MASTER_KEY/);
      assert.doesNotMatch(r.stderr, new RegExp(key.replace(/[^a-z0-9]/gi, "").slice(0, 8) || "zzzz"), "the key is not echoed");
    }
    assert.equal(existsSync(dir("badkey")), false);
  });

  it("a database holding encrypted data whose key file is gone", async () => {
    const d = dir("lostkey");
    await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d } });
    rmSync(join(d, "master.key"));
    const r = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no master key/);
    assert.equal(existsSync(join(d, "master.key")), false, "init did not invent a new key");
  });

  it("a key file readable by others", async () => {
    const d = dir("loosekey");
    await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: d } });
    chmodSync(join(d, "master.key"), 0o644);
    const r = await bulwarkHere(["audit", "verify"], { env: { BULWARK_DATA_DIR: d } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /chmod 600/);
  });

  it("a command before init", async () => {
    const r = await bulwarkHere(["audit", "verify"], { env: { BULWARK_DATA_DIR: dir("never") } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bulwark init/);
    assert.equal(existsSync(dir("never")), false);
  });

  it("bad configuration values", async () => {
    const port = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: dir("cfg"), PORT: "http" } });
    assert.equal(port.code, 2);
    assert.match(port.stderr, /PORT must be an integer/);
    const level = await bulwarkHere(["init", "--log-level", "loud"], { env: { BULWARK_DATA_DIR: dir("cfg") } });
    assert.equal(level.code, 2);
    assert.match(level.stderr, /--log-level.*'loud' is invalid/);
  });
});

describe("the command line itself", () => {
  it("prints the version and help", async () => {
    const v = await bulwark(["--version"]);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
    const h = await bulwarkHere(["audit", "verify", "--help"]);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--checkpoints/);
  });

  it("exits 2 on an unknown command or option", async () => {
    const u = await bulwarkHere(["no-such-command"]);
    assert.equal(u.code, 2);
    const o = await bulwarkHere(["init", "--no-such-option"]);
    assert.equal(o.code, 2);
    assert.match(o.stderr, /unknown option/);
  });

  it("attack: commander's own error lines show controls from argv as \\xNN (a planted file name a glob hands over), newlines included; its suggestion stays on its own line (ASVS 16.4.1)", async () => {
    const option = await bulwarkHere(["init", "--x\u001b]52;c;eA\u0007\nbulwark: all good\u001b[2K"]);
    assert.equal(option.code, 2);
    assert.equal(option.stderr.split("\n")[0], "error: unknown option '--x\\x1b]52;c;eA\\x07\\x0abulwark: all good\\x1b[2K'");
    const command = await bulwarkHere(["in\u009bit"]);
    assert.equal(command.code, 2);
    assert.match(command.stderr, /^error: unknown command 'in\\x9bit'\n/);
    const argument = await bulwarkHere(["--log-level", "lou\u202ed", "init"]);
    assert.equal(argument.code, 2);
    assert.match(argument.stderr, /argument 'lou\\u202ed' is invalid/);
    const typo = await bulwarkHere(["--data-dri", "x", "init"]);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /^error: unknown option '--data-dri'\n\(Did you mean --data-dir\?\)\n/);
  });
});
