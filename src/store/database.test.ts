// openSQLite tells a damaged file from a damaged environment: only a file that is not SQLite, or that SQLite finds
// corrupt, is called corrupt ("move it aside"); a healthy database SQLite cannot open here (its WAL side file
// cannot be created) and a directory where the file belongs get their own message naming the path and the fix.
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
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
