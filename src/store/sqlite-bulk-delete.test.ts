// The SQLite table rebuild behind whole-base containment: it must delete exactly what DELETE … WHERE would,
// keep every other row byte for byte (rowid included), give the table back exactly its schema, fall back to a
// plain DELETE where a rebuild would change meaning, and leave nothing changed when it fails half-way.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { Kysely, sql } from "kysely";
import { NodeSqliteDialect } from "./sqlite-dialect.ts";
import { bulkDeleteSQLite } from "./sqlite-bulk-delete.ts";

const dir = mkdtempSync(join(tmpdir(), "bulwark-bulk-delete-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function open(): { path: string; handle: DatabaseSync; db: Kysely<any> } {
  const path = join(dir, `db${n++}.sqlite`);
  const handle = new DatabaseSync(path);
  handle.exec("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON");
  handle.exec(`
    CREATE TABLE owners (id text primary key);
    CREATE TABLE items (id text primary key, owner text references owners (id) on delete cascade, made integer not null, note text, twice integer generated always as (made * 2) virtual);
    CREATE INDEX items_owner ON items (owner, made);
    CREATE UNIQUE INDEX items_note ON items (note) WHERE note IS NOT NULL;
    CREATE TABLE item_log (item text, what text);
    CREATE TRIGGER items_logged AFTER INSERT ON items BEGIN INSERT INTO item_log VALUES (NEW.id, 'insert'); END;`);
  const insert = handle.prepare("INSERT INTO items (id, owner, made, note) VALUES (?, ?, ?, ?)");
  handle.exec("BEGIN");
  for (let i = 0; i < 50; i++) handle.prepare("INSERT INTO owners VALUES (?)").run(`o${i}`);
  for (let i = 0; i < 1000; i++) insert.run(`i${String(i).padStart(4, "0")}`, i % 7 === 0 ? null : `o${i % 50}`, i, i % 3 === 0 ? `note ${i}` : null);
  // Holes in the rowid sequence: the rebuild must keep rowids, not renumber.
  handle.exec("DELETE FROM items WHERE made % 10 = 5; DELETE FROM item_log; COMMIT");
  return { path, handle, db: new Kysely<any>({ dialect: new NodeSqliteDialect(handle) }) };
}

const schema = (h: DatabaseSync): unknown => h.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").all();
const rows = (h: DatabaseSync, where = "1"): unknown => h.prepare(`SELECT rowid, id, owner, made, note, twice FROM items WHERE ${where} ORDER BY rowid`).all();

describe("bulk delete on SQLite (table rebuild)", () => {
  it("deletes exactly the rows DELETE … WHERE would, keeps the others with their rowids, and restores the schema", async () => {
    const a = open();
    const b = open();
    const before = schema(a.handle);
    const condition = sql`owner is not null and made < ${900}`;
    const result = await a.db.transaction().execute((trx) => bulkDeleteSQLite(trx, "items", condition));
    b.handle.exec("DELETE FROM items WHERE owner is not null and made < 900");
    assert.equal(result.method, "rebuild");
    assert.equal(result.deleted, (b.handle.prepare("SELECT changes() AS n").get() as { n: number }).n);
    assert.deepEqual(rows(a.handle), rows(b.handle), "the same rows remain, rowids and generated columns included");
    assert.deepEqual(schema(a.handle), before, "table, indexes and trigger are back, exactly as they were stored");
    assert.equal((a.handle.prepare("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check, "ok");
    // The recreated objects work: the partial unique index still refuses a duplicate, the trigger still fires.
    assert.throws(() => a.handle.prepare("INSERT INTO items (id, owner, made, note) VALUES ('x', 'o1', 1, 'note 999')").run(), /UNIQUE/);
    a.handle.prepare("INSERT INTO items (id, owner, made, note) VALUES ('y', 'o1', 1, null)").run();
    assert.deepEqual(a.handle.prepare("SELECT item, what FROM item_log").all().map((r) => ({ ...r })), [{ item: "y", what: "insert" }]);
    // Foreign keys still hold on the rebuilt table.
    assert.throws(() => a.handle.prepare("INSERT INTO items (id, owner, made) VALUES ('z', 'nobody', 1)").run(), /FOREIGN KEY/);
  });

  it("keeps a row whose condition is null, as DELETE … WHERE does", async () => {
    const a = open();
    const result = await a.db.transaction().execute((trx) => bulkDeleteSQLite(trx, "items", sql`owner <> 'o1'`));
    assert.equal(result.method, "rebuild");
    const left = a.handle.prepare("SELECT count(*) AS n FROM items WHERE owner IS NULL").get() as { n: number };
    assert.ok(left.n > 0, "rows with a null owner stay");
    assert.equal((a.handle.prepare("SELECT count(*) AS n FROM items WHERE owner <> 'o1'").get() as { n: number }).n, 0);
  });

  it("does nothing when no row matches", async () => {
    const a = open();
    const before = rows(a.handle);
    assert.deepEqual(await a.db.transaction().execute((trx) => bulkDeleteSQLite(trx, "items", sql`made > ${10_000}`)), { deleted: 0, method: "delete" });
    assert.deepEqual(rows(a.handle), before);
  });

  it("falls back to DELETE for a table other tables reference, so their foreign key actions still run", async () => {
    const a = open();
    const result = await a.db.transaction().execute((trx) => bulkDeleteSQLite(trx, "owners", sql`id in ('o1', 'o2')`));
    assert.deepEqual(result, { deleted: 2, method: "delete" });
    assert.equal((a.handle.prepare("SELECT count(*) AS n FROM items WHERE owner IN ('o1', 'o2')").get() as { n: number }).n, 0, "the cascade ran");
  });

  it("falls back to DELETE for AUTOINCREMENT and WITHOUT ROWID tables", async () => {
    const a = open();
    a.handle.exec("CREATE TABLE counters (id integer primary key autoincrement, v integer); INSERT INTO counters (v) VALUES (1), (2), (3)");
    a.handle.exec("CREATE TABLE pairs (k text primary key, v integer) WITHOUT ROWID; INSERT INTO pairs VALUES ('a', 1), ('b', 2)");
    assert.deepEqual(await a.db.transaction().execute((trx) => bulkDeleteSQLite(trx, "counters", sql`v < 3`)), { deleted: 2, method: "delete" });
    assert.deepEqual(await a.db.transaction().execute((trx) => bulkDeleteSQLite(trx, "pairs", sql`v = 1`)), { deleted: 1, method: "delete" });
    a.handle.prepare("INSERT INTO counters (v) VALUES (4)").run();
    assert.deepEqual(a.handle.prepare("SELECT id FROM counters ORDER BY id").all().map((r) => r["id"]), [3, 4], "the AUTOINCREMENT counter was kept");
  });

  it("rolls back with the caller's transaction: a step that fails after the rebuild leaves table, rows and schema as before", async () => {
    const a = open();
    const before = { rows: rows(a.handle), schema: schema(a.handle) };
    await assert.rejects(a.db.transaction().execute(async (trx) => {
      const r = await bulkDeleteSQLite(trx, "items", sql`made < ${800}`);
      assert.equal(r.method, "rebuild");
      throw new Error("the job step failed later");
    }), /failed later/);
    assert.deepEqual(rows(a.handle), before.rows);
    assert.deepEqual(schema(a.handle), before.schema);
    assert.equal((a.handle.prepare("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check, "ok");
  });

  it("another connection keeps reading its snapshot during the rebuild and sees the result after, with statements prepared before", async () => {
    const a = open();
    const reader = new DatabaseSync(a.path);
    const count = reader.prepare("SELECT count(*) AS n FROM items WHERE owner = ?");
    const before = (count.get("o3") as { n: number }).n;
    assert.ok(before > 0);
    await a.db.transaction().execute(async (trx) => {
      await bulkDeleteSQLite(trx, "items", sql`owner = 'o3'`);
      assert.equal((count.get("o3") as { n: number }).n, before, "not committed yet: the reader sees the old table");
    });
    assert.equal((count.get("o3") as { n: number }).n, 0, "the statement prepared before the rebuild reads the new table");
    reader.close();
  });
});
