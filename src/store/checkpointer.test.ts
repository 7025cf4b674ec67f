// The WAL checkpointer: the server's connection hands checkpoints to a worker, which copies committed pages
// into the database file without ever waiting for (or blocking) readers and writers; stopping it, or a
// worker that cannot work, leaves SQLite's own checkpointing in charge.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import pino from "pino";
import { DEFAULT_AUTOCHECKPOINT_PAGES, startCheckpointer } from "./checkpointer.ts";
import { openSQLite, type Database } from "./database.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function fresh(): { database: Database; path: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-checkpointer-"));
  dirs.push(dir);
  const path = join(dir, "bulwark.db");
  const database = openSQLite(path, { create: true });
  database.sqlite!.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  return { database, path, dir };
}

const threshold = (db: Database): number => Number((db.sqlite!.prepare("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint);
// Each row spills over two overflow pages, so 200 rows are ~600 WAL pages: under the backstop, over nothing else.
const write = (db: Database, from: number, count: number): void => {
  const insert = db.sqlite!.prepare("INSERT INTO notes (id, body) VALUES (?, ?)");
  for (let i = from; i < from + count; i++) insert.run(i, `${i} `.padEnd(8000, "x"));
};

describe("WAL checkpointer", () => {
  it("copies committed pages into the database file from its worker; the server's connection only keeps a backstop", async () => {
    const { database, path } = fresh();
    const checkpointer = startCheckpointer(database, { intervalMs: 60_000 })!;
    try {
      assert.equal(threshold(database), 4000, "the server connection checkpoints only past the backstop");
      const sizeBefore = statSync(path).size;
      write(database, 0, 200);
      assert.equal(statSync(path).size, sizeBefore, "nothing reached the database file yet: the server did not checkpoint");
      const stats = await checkpointer.runOnce();
      assert.equal(stats.lastError, null);
      assert.ok(stats.pagesCopied >= 400, `pages copied: ${stats.pagesCopied}`);
      assert.ok(statSync(path).size >= 200 * 8000, "the rows are in the database file now");
      const again = await checkpointer.runOnce();
      assert.equal(again.pagesCopied, stats.pagesCopied, "a run with nothing new copies nothing");
    } finally {
      await checkpointer.stop();
      await database.close();
    }
  });

  it("never waits for a reader holding an old snapshot: the run is partial, writers go on, the rest follows later", async () => {
    const { database, path } = fresh();
    const checkpointer = startCheckpointer(database, { intervalMs: 60_000 })!;
    const reader = new DatabaseSync(path);
    try {
      write(database, 0, 10);
      reader.exec("BEGIN");
      assert.equal((reader.prepare("SELECT count(*) AS n FROM notes").get() as { n: number }).n, 10);
      write(database, 10, 100);
      const partial = await checkpointer.runOnce();
      assert.ok(partial.partial >= 1, "the pages the reader may still need stay in the WAL");
      write(database, 110, 10);
      assert.equal((database.sqlite!.prepare("SELECT count(*) AS n FROM notes").get() as { n: number }).n, 120, "the writer was never blocked");
      assert.equal((reader.prepare("SELECT count(*) AS n FROM notes").get() as { n: number }).n, 10, "the reader keeps its snapshot");
      reader.exec("COMMIT");
      const whole = await checkpointer.runOnce();
      assert.ok(whole.pagesCopied > partial.pagesCopied, "once the reader is gone the rest is copied");
    } finally {
      reader.close();
      await checkpointer.stop();
      await database.close();
    }
  });

  it("stops with a last checkpoint, restores SQLite's default, and leaves a database that reopens whole", async () => {
    const { database, path } = fresh();
    const checkpointer = startCheckpointer(database, { intervalMs: 60_000 })!;
    write(database, 0, 50);
    await checkpointer.stop();
    await checkpointer.stop();
    assert.equal(checkpointer.stats().running, false);
    assert.ok(checkpointer.stats().pagesCopied > 0, "the last checkpoint ran at stop");
    assert.equal(threshold(database), DEFAULT_AUTOCHECKPOINT_PAGES);
    const after = await checkpointer.runOnce();
    assert.equal(after.running, false, "a stopped checkpointer answers without a worker");
    await database.close();
    assert.equal(existsSync(`${path}-wal`), false, "the last connection to close removed the WAL: nothing was left open");
    const reopened = new DatabaseSync(path);
    assert.equal((reopened.prepare("SELECT count(*) AS n FROM notes").get() as { n: number }).n, 50);
    assert.equal((reopened.prepare("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check, "ok");
    reopened.close();
  });

  it("reports a worker that cannot checkpoint, keeps retrying, and the backstop bounds the WAL meanwhile", async () => {
    const { database, dir } = fresh();
    const garbage = join(dir, "not-a-database");
    writeFileSync(garbage, "this is not SQLite ".repeat(300));
    const warnings: string[] = [];
    const logger = { info: () => {}, warn: (o: { err: string }) => void warnings.push(o.err), error: () => {} };
    const checkpointer = startCheckpointer({ ...database, where: garbage }, { intervalMs: 60_000, logger })!;
    try {
      const first = await checkpointer.runOnce();
      assert.match(first.lastError ?? "", /not a database/);
      assert.equal(first.running, true, "a failing run does not stop the worker");
      await checkpointer.runOnce();
      assert.equal(warnings.length, 1, "the same error is logged once, not at every interval");
      assert.equal(threshold(database), 4000, "the server's own checkpoint at the backstop still bounds the WAL");
    } finally {
      await checkpointer.stop();
      await database.close();
    }
  });

  it("warns once when a reader pins the WAL past the backstop, and says once when it is back (ASVS 16.3.4)", async () => {
    const { database, path } = fresh();
    const lines: Array<{ level: number; msg: string; walPages?: number }> = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const checkpointer = startCheckpointer(database, { intervalMs: 60_000, backstopPages: 1000, logger })!;
    const reader = new DatabaseSync(path);
    try {
      write(database, 0, 10);
      reader.exec("BEGIN");
      reader.prepare("SELECT count(*) FROM notes").get();
      write(database, 10, 200);
      assert.equal((await checkpointer.runOnce()).partialInARow, 1);
      assert.equal(lines.length, 0, "one partial run under the backstop is ordinary");
      write(database, 210, 200);
      const pinned = await checkpointer.runOnce();
      assert.ok(pinned.walPages > 1000, `the WAL is past the backstop: ${pinned.walPages} pages`);
      for (let i = 0; i < 3; i++) await checkpointer.runOnce();
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.equal(lines[0]!.level, 40);
      assert.match(lines[0]!.msg, /long read transaction in another process/);
      assert.equal(lines[0]!.walPages, pinned.walPages);
      reader.exec("COMMIT");
      assert.equal((await checkpointer.runOnce()).partialInARow, 0, "the reader let go: the run copies every page");
      write(database, 410, 1); // the next commit restarts the WAL
      await checkpointer.runOnce();
      await checkpointer.runOnce();
      assert.deepEqual(lines.map((l) => l.level), [40, 30], "recovery is said once, at info");
    } finally {
      reader.close();
      await checkpointer.stop();
      await database.close();
    }
  });

  it("warns when runs stay partial for ~30 s in a row though the WAL is under the backstop", async () => {
    const { database, path } = fresh();
    const warnings: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) });
    // At a 10 s interval, 30 s are 3 runs.
    const checkpointer = startCheckpointer(database, { intervalMs: 10_000, logger })!;
    const reader = new DatabaseSync(path);
    try {
      write(database, 0, 10);
      reader.exec("BEGIN");
      reader.prepare("SELECT count(*) FROM notes").get();
      for (let i = 0; i < 2; i++) {
        write(database, 10 + i, 1);
        await checkpointer.runOnce();
      }
      assert.equal(warnings.length, 0, "two partial runs are not yet 30 s");
      write(database, 20, 1);
      assert.equal((await checkpointer.runOnce()).partialInARow, 3);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /WAL checkpoints are blocked/);
    } finally {
      reader.exec("COMMIT");
      reader.close();
      await checkpointer.stop();
      await database.close();
    }
  });

  it("is not started on PostgreSQL, which manages its own WAL", () => {
    const fake = { dialect: "postgres", sqlite: null } as unknown as Database;
    assert.equal(startCheckpointer(fake), null);
  });
});

describe("closing a SQLite database", () => {
  it("closes the file even when every statement went straight to the handle (no Kysely query ever ran)", async () => {
    const { database, path } = fresh();
    write(database, 0, 3);
    await database.close();
    assert.equal(database.sqlite!.isOpen, false);
    assert.equal(existsSync(`${path}-wal`), false, "the connection checkpointed and removed its WAL on close");
    await database.close();
  });
});
