// BULWARK_DB_LOCK_TIMEOUT_SECONDS: how long a statement waits for a lock another session (or, on SQLite, another
// process) holds before it fails as busy (503 BULWARK_ERR_DB_BUSY, exit 3; docs/decisions/0021-postgresql-wait-bounds.md).
// Read like every other number of the configuration: a bad value is refused by name, nothing opened; unset, each store
// keeps its default (PostgreSQL 5 s, SQLite 10 s); a good one is the lock_timeout of every pooled PostgreSQL connection,
// the server's and the CLI's alike, and a held row is refused after it (the lock_timeout in force, read on the
// request's own connection, where its statement was refused 55P03), or SQLite's busy_timeout. Loopback and temp
// dirs only; the PostgreSQL part is skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { sql } from "kysely";
import { loadConfig } from "../src/app/config.ts";
import { LOCK_TIMEOUT_MS, SQLITE_BUSY_TIMEOUT_MS } from "../src/store/database.ts";
import { authFixture } from "../src/http/auth/test-client.ts";
import { bulwark } from "./helpers/cli.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { pgSites, within, HOLD_AUDIT_HEAD } from "./helpers/pg-site.ts";
import { watchLockWaits } from "./helpers/lock-waits.ts";
import { lockBoundOf } from "../src/store/sqlite-dialect.ts";

const { unavailable, site } = pgSites("locktime", testMasterKey("db-lock-timeout-config"));
const skip = unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {};

describe("BULWARK_DB_LOCK_TIMEOUT_SECONDS read", () => {
  it("is each store's default when unset or empty (PostgreSQL 5 s, SQLite 10 s), and whole seconds from 1 to 600 otherwise", () => {
    assert.equal(LOCK_TIMEOUT_MS, 5_000);
    assert.equal(SQLITE_BUSY_TIMEOUT_MS, 10_000);
    assert.equal(loadConfig({}).dbLockTimeoutMs, null);
    assert.equal(loadConfig({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: "" }).dbLockTimeoutMs, null);
    assert.equal(loadConfig({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: "  " }).dbLockTimeoutMs, null);
    assert.equal(loadConfig({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: "1" }).dbLockTimeoutMs, 1_000);
    assert.equal(loadConfig({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: " 30 " }).dbLockTimeoutMs, 30_000);
    assert.equal(loadConfig({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: "600" }).dbLockTimeoutMs, 600_000);
  });

  it("attack: a typo'd or unbounded value (0 would wait for ever, as before the bound) — refused naming the variable and its range, not taken as no bound (ASVS 13.1.1, 16.5.3)", () => {
    for (const value of ["0", "601", "-5", "2.5", "5s", "abc", "1e3", "0x10"]) {
      assert.throws(() => loadConfig({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: value }), (error: Error) => {
        assert.match(error.message, /BULWARK_DB_LOCK_TIMEOUT_SECONDS/, `${value}: the message names the variable: ${error.message}`);
        assert.match(error.message, /600/, `${value}: the message gives the range: ${error.message}`);
        return true;
      }, `${value} is refused`);
    }
  });

  it("attack: a bad value given to the CLI — exit 2 naming it, before any database is opened", async () => {
    const run = await bulwark(["audit", "verify"], { env: { BULWARK_DB_LOCK_TIMEOUT_SECONDS: "0", BULWARK_DATABASE_URL: "postgres://nobody@localhost/none?host=/nonexistent-bulwark-socket-dir" } });
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /BULWARK_DB_LOCK_TIMEOUT_SECONDS/);
  });
});

describe("BULWARK_DB_LOCK_TIMEOUT_SECONDS on SQLite", () => {
  const busyTimeout = (fx: Awaited<ReturnType<typeof authFixture>>): number => {
    assert.ok(fx.app.db.sqlite, "the fixture runs on SQLite");
    // The bound a write waits for another process's lock (the connection's busy_timeout itself is a short slice: the
    // rest of the wait is asynchronous, src/store/sqlite-dialect.ts).
    return lockBoundOf(fx.app.db.sqlite);
  };

  it("is the connection's busy_timeout when set, and SQLite's 10 s default when unset", async () => {
    const set = await authFixture({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: "3" });
    try {
      assert.equal(busyTimeout(set), 3_000);
    } finally {
      await set.close();
    }
    const unset = await authFixture();
    try {
      assert.equal(busyTimeout(unset), SQLITE_BUSY_TIMEOUT_MS);
    } finally {
      await unset.close();
    }
  });
});

describe("BULWARK_DB_LOCK_TIMEOUT_SECONDS on PostgreSQL", skip, () => {
  it("is the lock_timeout of the pool's connections, and a request behind a row held past it answers 503 BULWARK_ERR_DB_BUSY after it (ASVS 16.5.3)", async () => {
    const { fx, dba, close } = await site({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: "2" });
    try {
      const setting = await sql<{ lock: string }>`SELECT current_setting('lock_timeout') AS lock`.execute(fx.app.db.db);
      assert.equal(setting.rows[0]?.lock, "2s");
      const user = await fx.user("held-head@example.org");
      // The bound in force where the request meets the held head: each statement of the request that failed as busy is
      // recorded with the lock_timeout of its connection (the pool's start-up setting, or a SET LOCAL of its transaction;
      // test/helpers/lock-waits.ts). The one refused 55P03 says which bound it met; no clock decides it.
      const watch = watchLockWaits({ ignore: [dba] });
      await dba.query("BEGIN");
      await dba.query(HOLD_AUDIT_HEAD);
      let answered: LightMyRequestResponse | null;
      try {
        const pending: Promise<LightMyRequestResponse> = fx.browser().login(user.email, user.password);
        // A safety net only (the DBA holds the head until then): either bound ends the wait on its own.
        answered = await within(pending, 30_000);
      } finally {
        watch.restore();
        await dba.query("ROLLBACK");
      }
      assert.ok(answered !== null, "the request answered while the head was held, not once it was let go");
      assert.equal(answered.statusCode, 503, answered.body);
      assert.equal((answered.json() as { error: { code: string } }).error.code, "BULWARK_ERR_DB_BUSY");
      const refused = watch.waits.filter((w) => w.code === "55P03");
      assert.ok(refused.length > 0, `control: the request's statement on the head failed 55P03 (lock_timeout): ${JSON.stringify(watch.waits)}`);
      assert.deepEqual(refused.map((w) => w.boundMs), refused.map(() => 2_000), `the lock_timeout in force when the request's statement was refused is the configured 2 s, not the default: ${JSON.stringify(watch.waits)}`);
    } finally {
      await close();
    }
  });
});
