// GET /healthz asks the store for a write, not only a read (src/http/health.ts, src/store/write-probe.ts): a node whose
// disk is full, whose file system turned read-only or whose PostgreSQL is a standby answered 200 while every login,
// reset and audit event failed, so a load balancer kept sending users to it. The write is probed at most once every
// few seconds however many ask (the route is public), and on SQLite it never waits for another process's lock.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { sql } from "kysely";
import { BUSY_FAILS_AFTER_MS, PROBE_FAILED_MS, PROBE_OK_MS } from "../src/http/health.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { migrate } from "../src/store/migrator.ts";
import { probeWrites, WRITE_PROBE_META } from "../src/store/write-probe.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { countProbeWrites } from "./helpers/probe-writes.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

describe("GET /healthz probes writes [sqlite]", () => {
  const fx = sharedFixture();
  const health = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fx.server.inject({ method: "GET", url: "/healthz" });
    return { status: res.statusCode, body: res.json() };
  };
  const handle = (): DatabaseSync => fx.app.db.sqlite as DatabaseSync;

  it("attack: a store that answers reads but refuses writes (a full disk) is reported unavailable, without the engine's words, and seen again once it recovers", async () => {
    assert.deepEqual(await health(), { status: 200, body: { status: "ok", database: "sqlite", writes: "ok" } });
    fx.clock.advance(PROBE_OK_MS);
    handle().exec(`CREATE TEMP TRIGGER full_disk BEFORE UPDATE ON main.bulwark_meta WHEN NEW.name = '${WRITE_PROBE_META}' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`);
    try {
      const failing = await health();
      assert.equal(failing.status, 503);
      assert.deepEqual(failing.body, { status: "unavailable", database: "sqlite", writes: "failing" }, "the public answer names no cause");
    } finally {
      handle().exec("DROP TRIGGER temp.full_disk");
    }
    assert.equal((await health()).status, 503, "a failed probe stands for a moment");
    fx.clock.advance(PROBE_FAILED_MS);
    assert.deepEqual(await health(), { status: 200, body: { status: "ok", database: "sqlite", writes: "ok" } });
  });

  it("attack: a crowd asking /healthz at once makes one write, and the next only after the probe's interval", async () => {
    fx.clock.advance(PROBE_OK_MS);
    const writes = countProbeWrites(handle());
    const count = writes.count;
    try {
      const answers = await Promise.all(Array.from({ length: 50 }, () => health()));
      assert.ok(answers.every((a) => a.status === 200));
      assert.equal(count(), 1, "fifty callers, one write");
      for (let i = 0; i < 20; i++) await health();
      assert.equal(count(), 1, "asked again inside the interval: still one");
      fx.clock.advance(PROBE_OK_MS);
      await health();
      assert.equal(count(), 2);
    } finally {
      writes.stop();
    }
  });

  it("attack: another process holding the write lock (a CLI batch) is 'busy', not a failure, and the probe leaves the connection's busy timeout as it was", async () => {
    fx.clock.advance(PROBE_OK_MS);
    const before = (handle().prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout;
    assert.ok(before > 0, "the server waits for other writers");
    const other = new DatabaseSync(fx.app.db.where);
    other.exec("BEGIN IMMEDIATE");
    try {
      assert.deepEqual(await health(), { status: 200, body: { status: "ok", database: "sqlite", writes: "busy" } });
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    assert.equal((handle().prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout, before);
    fx.clock.advance(PROBE_OK_MS);
    assert.equal((await health()).body["writes"], "ok");
  });

  it("attack: a write lock another process holds probe after probe for longer than the server's writes can wait (a backup, a stuck process) is reported unavailable, not busy for ever", async () => {
    fx.clock.advance(PROBE_OK_MS);
    const other = new DatabaseSync(fx.app.db.where);
    other.exec("BEGIN IMMEDIATE");
    try {
      assert.equal((await health()).body["writes"], "busy");
      fx.clock.advance(BUSY_FAILS_AFTER_MS / 2);
      assert.equal((await health()).body["writes"], "busy", "held for a while: still only busy");
      fx.clock.advance(BUSY_FAILS_AFTER_MS / 2);
      assert.deepEqual(await health(), { status: 503, body: { status: "unavailable", database: "sqlite", writes: "blocked" } });
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    fx.clock.advance(PROBE_FAILED_MS);
    assert.deepEqual(await health(), { status: 200, body: { status: "ok", database: "sqlite", writes: "ok" } }, "let go: healthy again");
    fx.clock.advance(PROBE_OK_MS);
    const other2 = new DatabaseSync(fx.app.db.where);
    other2.exec("BEGIN IMMEDIATE");
    try {
      assert.equal((await health()).body["writes"], "busy", "a new hold starts its own count");
    } finally {
      other2.exec("ROLLBACK");
      other2.close();
    }
  });
});

forEachDialect("probeWrites", (dialect) => {
  it("commits the probe's row, and throws when the store refuses the write", async () => {
    const database = await dialect.fresh();
    await migrate(database, new ManualClock(Date.UTC(2026, 11, 5)));
    assert.equal(await probeWrites(database, 1234), "ok");
    assert.equal(await probeWrites(database, 5678), "ok");
    const row = await database.db.selectFrom("bulwark_meta").select("value").where("name", "=", WRITE_PROBE_META).executeTakeFirstOrThrow();
    assert.equal(row.value, "5678");
    if (database.dialect === "postgres") {
      // What a full disk answers on PostgreSQL (SQLSTATE 53100).
      await sql`CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$`.execute(database.db);
      await sql`CREATE TRIGGER full_disk BEFORE UPDATE ON bulwark_meta FOR EACH ROW EXECUTE FUNCTION full_disk()`.execute(database.db);
    } else {
      await sql`CREATE TRIGGER full_disk BEFORE UPDATE ON bulwark_meta BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`.execute(database.db);
    }
    await assert.rejects(probeWrites(database, 9999));
    const after = await database.db.selectFrom("bulwark_meta").select("value").where("name", "=", WRITE_PROBE_META).executeTakeFirstOrThrow();
    assert.equal(after.value, "5678", "nothing half-written");
  });
});
