// openSQLite tells a damaged file from a damaged environment: only a file that is not SQLite, or that SQLite finds
// corrupt, is called corrupt ("move it aside"); a healthy database SQLite cannot open here (its WAL side file
// cannot be created) and a directory where the file belongs get their own message naming the path and the fix.
import assert from "node:assert/strict";
import fs, { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it, mock } from "node:test";
import { openSQLite } from "./database.ts";

let root: string;
let healthy: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-open-sqlite-"));
  healthy = join(root, "healthy.db");
  const db = new DatabaseSync(healthy);
  db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1)");
  db.close(); // the last connection removes -wal and -shm: a clean, healthy WAL-mode file
  chmodSync(healthy, 0o600); // private, as Bulwark makes it (the copies keep the mode)
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A directory `name` holding a copy of the healthy database as bulwark.db. */
function site(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  copyFileSync(healthy, join(dir, "bulwark.db"));
  return join(dir, "bulwark.db");
}

interface Raised extends Error {
  code?: string;
  kind?: string;
}

describe("openSQLite: a healthy database it cannot open here", () => {
  it("is not called corrupt when SQLite cannot create its -wal file: it names the side file, exit 3 (runtime)", () => {
    const path = site("wal-taken");
    mkdirSync(`${path}-wal`); // SQLite's "unable to open database file", as on a read-only file system
    const before = readFileSync(path);
    assert.throws(() => openSQLite(path, { create: false }), (error: Raised) => {
      assert.equal(error.code, "BULWARK_ERR_DB_OPEN");
      assert.equal(error.kind, "runtime");
      assert.ok(error.message.includes(path), error.message);
      assert.ok(error.message.includes(`${path}-wal is a directory`), error.message);
      assert.doesNotMatch(error.message, /corrupt|move it aside|not a SQLite database/);
      return true;
    });
    assert.deepEqual(readFileSync(path), before, "the database was not touched");
  });
});

describe("openSQLite: a file that is not a usable database", () => {
  it("calls a file with a SQLite header but a damaged body corrupt (input, exit 2)", () => {
    const path = join(root, "damaged.db");
    const bytes = Buffer.alloc(8192, 0xa5);
    bytes.write("SQLite format 3\0", 0, "latin1");
    writeFileSync(path, bytes, { mode: 0o600 }); // private, as Bulwark makes it: one others may read is refused first
    assert.throws(() => openSQLite(path, { create: false }), { code: "BULWARK_ERR_DB_CORRUPT", kind: "input", message: /is not a SQLite database or is corrupt/ });
  });

  it("names a directory where the database file belongs, without calling it corrupt (was: EISDIR, internal error)", () => {
    const dir = join(root, "db-is-dir");
    mkdirSync(join(dir, "bulwark.db"), { recursive: true });
    const path = join(dir, "bulwark.db");
    assert.throws(() => openSQLite(path, { create: false }), (error: Raised) => {
      assert.equal(error.code, "BULWARK_ERR_DB_NOT_A_FILE");
      assert.equal(error.kind, "input");
      assert.ok(error.message.includes(`${path} is a directory`), error.message);
      assert.doesNotMatch(error.message, /corrupt|EISDIR/);
      return true;
    });
  });
});

describe("openSQLite: another process creates the file between our look and our create", () => {
  /**
   * Runs `fn` while the first lstat of `path` reports it missing and, just before, creates it as another
   * `bulwark start` on the same data dir would (or as `plant` says). The named imports of node:fs in database.ts
   * follow the patched function through syncBuiltinESMExports.
   */
  function withRacingCreator<T>(path: string, plant: () => void, fn: () => T): T {
    const real = fs.lstatSync;
    let raced = false;
    const patched = mock.method(fs, "lstatSync", (target: fs.PathLike, options?: fs.StatSyncOptions) => {
      if (!raced && target === path) {
        raced = true;
        plant();
        throw Object.assign(new Error(`ENOENT: no such file or directory, lstat '${path}'`), { code: "ENOENT" });
      }
      return real(target, options);
    });
    syncBuiltinESMExports();
    try {
      return fn();
    } finally {
      patched.mock.restore();
      syncBuiltinESMExports();
      assert.ok(raced, "the race was staged");
    }
  }

  it("opens the file the other process created (was: EEXIST, BULWARK_ERR_DB_OPEN, and `bulwark start` failed)", async () => {
    const dir = join(root, "race-private");
    mkdirSync(dir);
    const path = join(dir, "bulwark.db");
    const database = withRacingCreator(path, () => writeFileSync(path, "", { mode: 0o600 }), () => openSQLite(path, { create: true }));
    try {
      await database.db.selectNoFrom((eb) => eb.lit(1).as("one")).execute();
    } finally {
      await database.close();
    }
    assert.equal(statSync(path).mode & 0o777, 0o600, "the file stays private");
  });

  it("attack: a file others may read, planted in that moment, is still refused (ASVS 13.3.2)", () => {
    const dir = join(root, "race-planted");
    mkdirSync(dir);
    const path = join(dir, "bulwark.db");
    const planted = () => {
      copyFileSync(healthy, path);
      chmodSync(path, 0o644);
    };
    assert.throws(() => withRacingCreator(path, planted, () => openSQLite(path, { create: true })), (error: Raised) => {
      assert.equal(error.code, "BULWARK_ERR_DB_UNTRUSTED");
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /chmod 600/);
      return true;
    });
    assert.equal(statSync(path).mode & 0o777, 0o644, "the mode is not changed behind the operator's back");
  });
});
