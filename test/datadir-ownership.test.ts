// An existing data dir is trusted only when nobody but this account (or root) could have put its contents there:
// the dir, master.key, bulwark.db and its -wal / -shm side files must not be symbolic links, must be owned by this
// process's user (or root), and must not be writable by group or others, nor readable by others. Otherwise whoever prepared the dir plants
// a master key they know (every data key is then wrapped under it), or a database file they can read or swap.
// The cases that need a file owned by another uid run only as root; the mode and symlink cases run as anyone.
import assert from "node:assert/strict";
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { masterKeyId } from "../src/crypto/keyring.ts";
import { testMasterKey } from "./helpers/master-key.ts";

const ROOT = process.getuid?.() === 0;
const NOBODY = 65534; // "another account": the attacker
const NEEDS_ROOT = ROOT ? false : "needs root: only root can give a file to another uid";
const ENV = { BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-datadir-owner-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

interface Raised extends Error {
  code?: string;
}

async function open(dataDir: string, mode: "init" | "open", extra: Record<string, string> = {}): Promise<void> {
  const app = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: dataDir, ...extra }, mode });
  await app.close();
}

/** A data dir initialised by this process, as `bulwark init` leaves it. */
async function initialised(name: string): Promise<string> {
  const dir = join(root, name);
  await open(dir, "init");
  return dir;
}

/** Asserts a refusal whose message names `path` and each of `words`. */
function refusal(code: string, path: string, ...words: RegExp[]): (error: Raised) => boolean {
  return (error) => {
    assert.equal(error.code, code, error.message);
    assert.ok(error.message.includes(path), `the message names ${path}: ${error.message}`);
    for (const word of words) assert.match(error.message, word);
    return true;
  };
}

describe("an existing data dir that others could write", () => {
  for (const mode of [0o777, 0o770, 0o1777]) {
    it(`attack: init refuses a data dir of mode ${mode.toString(8)} and creates nothing in it`, async () => {
      const dir = join(root, `open-${mode.toString(8)}`);
      mkdirSync(dir);
      chmodSync(dir, mode);
      await assert.rejects(open(dir, "init"), refusal("BULWARK_ERR_DATA_DIR", dir, new RegExp(`mode ${mode.toString(8)}`), /writable by (group|others)/, /chmod 700/));
      assert.equal(existsSync(join(dir, "master.key")), false);
      assert.equal(existsSync(join(dir, "bulwark.db")), false);
    });
  }

  it("attack: every command refuses it, not only init (an initialised dir later opened to others)", async () => {
    const dir = await initialised("loosened");
    chmodSync(dir, 0o777);
    await assert.rejects(open(dir, "open"), refusal("BULWARK_ERR_DATA_DIR", dir, /mode 777/, /chmod 700/));
    await assert.rejects(open(dir, "open", { BULWARK_MASTER_KEY: testMasterKey(1) }), refusal("BULWARK_ERR_DATA_DIR", dir, /chmod 700/));
  });

  it("accepts a data dir only its owner can write (0755), as an operator may have made it", async () => {
    const dir = join(root, "operator-made");
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    await open(dir, "init");
    await open(dir, "open");
  });
});

describe("symbolic links where the data dir's files belong", () => {
  it("attack: refuses a data dir that is a symbolic link (whoever can write its parent can swap it)", async () => {
    const real = await initialised("real-dir");
    const link = join(root, "linked-dir");
    symlinkSync(real, link);
    await assert.rejects(open(link, "open"), refusal("BULWARK_ERR_DATA_DIR", link, /symbolic link/));
    await assert.rejects(open(link, "init"), refusal("BULWARK_ERR_DATA_DIR", link, /symbolic link/));
  });

  it("attack: refuses a master.key that is a symbolic link to a key elsewhere", async () => {
    const dir = await initialised("key-link");
    const elsewhere = join(root, "planted.key");
    renameSync(join(dir, "master.key"), elsewhere);
    symlinkSync(elsewhere, join(dir, "master.key"));
    await assert.rejects(open(dir, "open"), refusal("BULWARK_ERR_MASTER_KEY_INVALID", join(dir, "master.key"), /symbolic link/));
  });

  it("attack: refuses a bulwark.db that is a symbolic link", async () => {
    const dir = await initialised("db-link");
    const elsewhere = join(root, "db-elsewhere.db");
    renameSync(join(dir, "bulwark.db"), elsewhere);
    symlinkSync(elsewhere, join(dir, "bulwark.db"));
    await assert.rejects(open(dir, "open"), refusal("BULWARK_ERR_DB_UNTRUSTED", join(dir, "bulwark.db"), /symbolic link/));
  });

  for (const side of ["-wal", "-shm"]) {
    it(`attack: refuses a bulwark.db${side} that is a symbolic link, and leaves its target alone`, async () => {
      const dir = await initialised(`side-link${side}`);
      const target = join(root, `victim${side}.conf`);
      writeFileSync(target, "IMPORTANT CONTENT\n");
      symlinkSync(target, join(dir, `bulwark.db${side}`));
      await assert.rejects(open(dir, "open"), refusal("BULWARK_ERR_DB_UNTRUSTED", join(dir, `bulwark.db${side}`), /symbolic link/));
      assert.equal(readFileSync(target, "utf8"), "IMPORTANT CONTENT\n");
    });
  }
});

describe("database files others could write", () => {
  for (const name of ["bulwark.db", "bulwark.db-wal", "bulwark.db-shm"]) {
    it(`attack: refuses ${name} writable by others (0666)`, async () => {
      const dir = await initialised(`loose-${name}`);
      const path = join(dir, name);
      if (!existsSync(path)) closeSync(openSync(path, "w", 0o600)); // an empty side file is what SQLite leaves after a crash
      chmodSync(path, 0o666);
      await assert.rejects(open(dir, "open"), refusal("BULWARK_ERR_DB_UNTRUSTED", path, /mode 666/, /chmod 600/));
    });
  }

  it("adopts a pre-created empty bulwark.db only as a private file", async () => {
    const dir = join(root, "empty-db");
    mkdirSync(dir, { mode: 0o700 });
    closeSync(openSync(join(dir, "bulwark.db"), "w", 0o644));
    chmodSync(join(dir, "bulwark.db"), 0o644);
    await open(dir, "init");
    assert.equal(statSync(join(dir, "bulwark.db")).mode & 0o077, 0, "password hashes and wrapped keys went into a file others can read");
  });
});

describe("database files every account may read (ASVS 13.3.2: least privilege on hashes and wrapped keys)", () => {
  for (const mode of [0o644, 0o604]) {
    it(`attack: refuses a bulwark.db every account may read (mode ${mode.toString(8)}) and leaves it as it was`, async () => {
      const dir = await initialised(`db-readable-${mode.toString(8)}`);
      const db = join(dir, "bulwark.db");
      chmodSync(db, mode);
      const before = readFileSync(db);
      await assert.rejects(open(dir, "open"), refusal("BULWARK_ERR_DB_UNTRUSTED", db, new RegExp(`mode ${mode.toString(8)}`), /every account/, /chmod 600/));
      assert.deepEqual(readFileSync(db), before, "nothing was written");
      assert.equal(statSync(db).mode & 0o777, mode, "the refusal does not change the mode behind the operator's back");
    });
  }

  it("attack: refuses a bulwark.db-wal every account may read (it holds copies of the newest pages)", async () => {
    const dir = await initialised("wal-readable");
    const wal = join(dir, "bulwark.db-wal");
    if (!existsSync(wal)) closeSync(openSync(wal, "w", 0o600));
    chmodSync(wal, 0o644);
    await assert.rejects(open(dir, "open"), refusal("BULWARK_ERR_DB_UNTRUSTED", wal, /mode 644/, /chmod 600/));
  });

  it("accepts a bulwark.db its group may read (0640, a backup account) and keeps that mode", async () => {
    const dir = await initialised("db-group-readable");
    const db = join(dir, "bulwark.db");
    chmodSync(db, 0o640);
    await open(dir, "open");
    assert.equal(statSync(db).mode & 0o777, 0o640);
  });
});

describe("a fresh install", () => {
  it("creates a 0700 data dir, a 0600 key file and a 0600 database even with umask 022", async () => {
    const previous = process.umask(0o022);
    try {
      const dir = join(root, "fresh", "nested", "data");
      await open(dir, "init");
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.equal(statSync(join(dir, "master.key")).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, "bulwark.db")).mode & 0o777, 0o600);
      await open(dir, "open");
    } finally {
      process.umask(previous);
    }
  });
});

describe("files owned by another account", { skip: NEEDS_ROOT }, () => {
  /** A directory `name` the attacker prepared: theirs, and open to everyone as a deploy script might leave it. */
  function attackerDir(name: string, mode = 0o777): string {
    const dir = join(root, name);
    mkdirSync(dir);
    chmodSync(dir, mode);
    chownSync(dir, NOBODY, NOBODY);
    return dir;
  }

  it("attack: refuses a data dir owned by another account, even one only its owner can write", async () => {
    const dir = attackerDir("theirs", 0o700);
    await assert.rejects(open(dir, "init"), refusal("BULWARK_ERR_DATA_DIR", dir, new RegExp(`uid ${NOBODY}`), /chown/));
    assert.equal(existsSync(join(dir, "bulwark.db")), false);
  });

  it("attack: does not adopt a master key planted in a data dir another account prepared", async () => {
    const dir = attackerDir("planted-key");
    const attackerKey = Buffer.alloc(32, 0x41);
    writeFileSync(join(dir, "master.key"), `${attackerKey.toString("base64")}\n`, { mode: 0o600 });
    chownSync(join(dir, "master.key"), NOBODY, NOBODY);
    const app = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: dir }, mode: "init" }).catch(() => null);
    if (app) {
      const id = app.keyring.masterKeyId;
      await app.close();
      assert.notEqual(id, masterKeyId(attackerKey), "every data key is now wrapped under the attacker's master key");
    }
    assert.equal(existsSync(join(dir, "bulwark.db")), false, "nothing was created in it");
  });

  it("attack: refuses a master.key owned by another account in our own data dir", async () => {
    const dir = await initialised("their-key");
    chownSync(join(dir, "master.key"), NOBODY, NOBODY);
    await assert.rejects(open(dir, "open"), refusal("BULWARK_ERR_MASTER_KEY_INVALID", join(dir, "master.key"), new RegExp(`uid ${NOBODY}`), /chown/));
  });

  for (const name of ["bulwark.db", "bulwark.db-wal"]) {
    it(`attack: refuses a ${name} owned by another account in our own data dir`, async () => {
      const dir = await initialised(`their-${name}`);
      const path = join(dir, name);
      if (!existsSync(path)) closeSync(openSync(path, "w", 0o600));
      chownSync(path, NOBODY, NOBODY);
      await assert.rejects(open(dir, "open", { BULWARK_MASTER_KEY: readFileSync(join(dir, "master.key"), "utf8").trim() }), refusal("BULWARK_ERR_DB_UNTRUSTED", path, new RegExp(`uid ${NOBODY}`), /chown/));
    });
  }

  it("attack: does not write the database into an empty file another account planted, readable by everyone", async () => {
    const dir = join(root, "their-empty-db");
    mkdirSync(dir, { mode: 0o700 });
    const db = join(dir, "bulwark.db");
    closeSync(openSync(db, "w", 0o666));
    chmodSync(db, 0o666);
    chownSync(db, NOBODY, NOBODY);
    await assert.rejects(open(dir, "init"), refusal("BULWARK_ERR_DB_UNTRUSTED", db, new RegExp(`uid ${NOBODY}`)));
    assert.equal(statSync(db).size, 0, "nothing was written into it");
  });
});
