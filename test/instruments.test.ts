// Self-tests of the test instruments that replaced timing assertions: the write-transaction recorder
// (test/helpers/write-transactions.ts), the SQLite busy meter (test/helpers/busy-meter.ts) and the PostgreSQL
// lock-wait watch (test/helpers/lock-waits.ts). Each is a counted observation a slow host cannot break; these cases
// attack the other side: a defective product that the instrument would not see, so a red-team round built on it
// would pass.
//
// What must hold: a write, a busy failure or a lock wait reaches the record whatever path it takes through the driver,
// and the bound recorded is the one that was in force.
//
// Found (fixed in the helpers, each case below failed before): the recorder missed every write made through exec
// (several statements in one call, or BEGIN … COMMIT in one call), a write whose text starts with a comment, a
// DELETE … RETURNING read with get() or left early by iterate() (counted as one row), rows changed by triggers and
// foreign-key actions, and kept a transaction begun by SAVEPOINT open across later autocommit writes; the busy meter
// counted a retry loop around withoutWaiting's busy_timeout pragmas as first attempts (mostAttempts 1 after 26 tries:
// a 26 × 20 ms retry of the session touch passed test/sqlite-busy-red-team.test.ts) and missed a busy failure met
// while stepping an iterate(); the lock-wait watch missed every failure of a statement sent with a callback (pg-pool's
// Pool.query sends that way), misread a lock_timeout given with a unit ('30s'), through set_config, in a DO block or
// in a multi-statement text, believed a SET LOCAL sent outside a transaction (a no-op in PostgreSQL), and recorded a
// 57014 statement_timeout cancel with the lock_timeout (0, "did not wait") instead of the statement_timeout it waited.
// Not fixed: a statement prepared before the recorder or the meter was installed has no known connection (the
// recorder counts it alone and in `unattributed`; the meter takes the fallback connection it was given); a JS sleep
// after a busy failure is no statement, so no instrument sees it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it, type TestContext } from "node:test";
import pg from "pg";
import { BusyMeter } from "./helpers/busy-meter.ts";
import { watchLockWaits } from "./helpers/lock-waits.ts";
import { testDir } from "./helpers/scratch.ts";
import { largest, recordWriteTransactions, type WriteRecord } from "./helpers/write-transactions.ts";

function recorded(work: () => void): WriteRecord {
  const recorder = recordWriteTransactions();
  try {
    work();
  } catch (error) {
    recorder.stop();
    throw error;
  }
  return recorder.stop();
}

describe("the write-transaction recorder (test/helpers/write-transactions.ts)", () => {
  function site(t: TestContext): DatabaseSync {
    const db = new DatabaseSync(join(testDir(t, "instruments-"), "w.db"));
    t.after(() => db.close());
    db.exec(`PRAGMA foreign_keys = ON;
      CREATE TABLE a (id INTEGER PRIMARY KEY, v);
      CREATE TABLE log (x);
      CREATE TABLE child (pid REFERENCES a(id) ON DELETE CASCADE);
      CREATE TRIGGER a_log AFTER UPDATE ON a BEGIN INSERT INTO log VALUES (NEW.id); END;
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) INSERT INTO a (id, v) SELECT i, 0 FROM n;
      INSERT INTO child SELECT id FROM a;`);
    return db;
  }

  it("attack: writes through exec — several statements in one call, or a whole BEGIN … COMMIT — are counted (ASVS 13.1.3)", (t) => {
    const db = site(t);
    const several = recorded(() => db.exec("DELETE FROM child WHERE pid <= 50; DELETE FROM child WHERE pid > 50"));
    assert.equal(largest(several.transactions).rows, 100, JSON.stringify(several));
    const whole = recorded(() => db.exec("BEGIN; DELETE FROM log; INSERT INTO log SELECT id FROM a; COMMIT"));
    assert.equal(whole.transactions.length, 1, JSON.stringify(whole));
    assert.equal(whole.transactions[0]!.rows, 100);
    assert.equal(whole.transactions[0]!.autocommit, false);
  });

  it("attack: a write whose text starts with a comment, a DELETE … RETURNING through get() and through iterate() left early — all rows counted (ASVS 13.1.3)", (t) => {
    const db = site(t);
    db.exec("INSERT INTO log SELECT id FROM a");
    const commented = recorded(() => db.prepare("/* purge */ DELETE FROM log").run());
    assert.equal(largest(commented.transactions).rows, 100, JSON.stringify(commented));
    db.exec("INSERT INTO log SELECT id FROM a");
    const one = recorded(() => db.prepare("DELETE FROM log RETURNING x").get());
    assert.equal(largest(one.transactions).rows, 100, `get() of a RETURNING write returns one row, deletes all: ${JSON.stringify(one)}`);
    db.exec("INSERT INTO log SELECT id FROM a");
    const early = recorded(() => {
      for (const _row of db.prepare("DELETE FROM log RETURNING x").iterate()) break;
    });
    assert.equal(largest(early.transactions).rows, 100, `an iteration left after one row: ${JSON.stringify(early)}`);
  });

  it("attack: rows a trigger or a foreign-key action changes are counted apart, in indirectRows (ASVS 13.1.3)", (t) => {
    const db = site(t);
    const trigger = recorded(() => db.prepare("UPDATE a SET v = 1").run());
    assert.deepEqual([largest(trigger.transactions).rows, largest(trigger.transactions).indirectRows], [100, 100]);
    const cascade = recorded(() => db.prepare("DELETE FROM a WHERE id <= 10").run());
    assert.deepEqual([largest(cascade.transactions).rows, largest(cascade.transactions).indirectRows], [10, 10]);
  });

  it("a transaction begun by SAVEPOINT ends at its RELEASE: a later autocommit write is a transaction of its own", (t) => {
    const db = site(t);
    const record = recorded(() => {
      db.exec("SAVEPOINT s");
      db.prepare("DELETE FROM child WHERE pid = 1").run();
      db.exec("RELEASE s");
      db.prepare("DELETE FROM child WHERE pid = 2").run();
    });
    assert.deepEqual(record.transactions.map((x) => [x.autocommit, x.end, x.rows]), [[false, "commit", 1], [true, "autocommit", 1]]);
  });

  it("a write statement prepared before the recorder is counted and flagged unattributed (its transaction is unknown)", (t) => {
    const db = site(t);
    const early = db.prepare("DELETE FROM child WHERE pid = ?");
    const record = recorded(() => {
      db.exec("BEGIN");
      for (let i = 1; i <= 5; i++) early.run(i);
      db.exec("COMMIT");
    });
    assert.equal(record.unattributed, 5);
  });
});

describe("the SQLite busy meter (test/helpers/busy-meter.ts)", () => {
  function held(t: TestContext): DatabaseSync {
    const path = join(testDir(t, "instruments-"), "b.db");
    const db = new DatabaseSync(path, { timeout: 5_000 });
    db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1), (2)");
    const holder = new DatabaseSync(path);
    holder.exec("BEGIN IMMEDIATE; INSERT INTO t VALUES (3)");
    t.after(() => {
      holder.exec("ROLLBACK");
      holder.close();
      db.close();
    });
    return db;
  }
  function attempt(db: DatabaseSync, sql: string): void {
    db.exec("PRAGMA busy_timeout = 0");
    try {
      db.prepare(sql).run();
    } catch {
      // busy, as withoutWaiting answers
    } finally {
      db.exec("PRAGMA busy_timeout = 5000");
    }
  }

  it("attack: a retry loop around withoutWaiting's busy_timeout pragmas is counted as attempts in a row, not first attempts (ASVS 16.5.3)", (t) => {
    const db = held(t);
    const meter = new BusyMeter(db).install();
    try {
      for (let i = 0; i < 5; i++) attempt(db, "UPDATE t SET x = 0");
    } finally {
      meter.restore();
    }
    assert.deepEqual(meter.failures.map((f) => [f.busyTimeout, f.attempt]), [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5]]);
    assert.equal(meter.mostAttempts(), 5, meter.summary());
  });

  it("a statement that succeeds on the connection ends the run: two passes of a step are two first attempts", (t) => {
    const db = held(t);
    const meter = new BusyMeter(db).install();
    try {
      attempt(db, "UPDATE t SET x = 0");
      db.prepare("SELECT count(*) FROM t").get();
      attempt(db, "UPDATE t SET x = 0");
    } finally {
      meter.restore();
    }
    assert.equal(meter.mostAttempts(), 1, meter.summary());
  });

  it("attack: a busy failure met while stepping an iterate() is recorded, with the busy_timeout in force (ASVS 16.5.3)", (t) => {
    const db = held(t);
    db.exec("PRAGMA busy_timeout = 0");
    const meter = new BusyMeter(db).install();
    try {
      assert.throws(() => {
        for (const _row of db.prepare("UPDATE t SET x = 1 RETURNING x").iterate()) break;
      }, (e: { errcode?: number }) => (e.errcode! & 0xff) === 5);
    } finally {
      meter.restore();
    }
    assert.deepEqual(meter.failures.map((f) => [f.sql, f.busyTimeout]), [["update t set x = 1 returning x", 0]]);
  });
});

describe("the PostgreSQL lock-wait watch (test/helpers/lock-waits.ts)", () => {
  /** A pg.Client whose server is a fake: every UPDATE fails (57014 when its text says so, else 55P03), as pg reports it. */
  async function watched(work: (client: pg.Client) => Promise<void>): Promise<string[]> {
    const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
    const real = proto.query;
    proto.query = function (...args: unknown[]): unknown {
      const first = args[0] as string | { text: string; callback?: unknown };
      const text = typeof first === "string" ? first : first.text;
      const error = /update/i.test(text) ? Object.assign(new Error("busy"), { code: /statement_cancel/.test(text) ? "57014" : "55P03" }) : null;
      const callback = args.find((a) => typeof a === "function") ?? (typeof first === "object" ? first.callback : undefined);
      if (typeof callback === "function") {
        setImmediate(() => callback(error, error ? undefined : { rows: [] }));
        return undefined;
      }
      return error ? Promise.reject(error) : Promise.resolve({ rows: [] });
    };
    const client = new pg.Client({ lock_timeout: 5_000, statement_timeout: 30_000 } as pg.ClientConfig);
    try {
      const watch = watchLockWaits();
      try {
        const { waits } = await watch.during(async () => {
          await work(client).catch(() => undefined);
          await new Promise((resolve) => setImmediate(resolve));
        });
        return waits.map((w) => `${w.code}@${w.boundMs}`);
      } finally {
        watch.restore();
      }
    } finally {
      proto.query = real;
    }
  }
  const inTransaction = (client: pg.Client, ...texts: string[]) => async (): Promise<void> => {
    await client.query("BEGIN");
    for (const text of texts) await client.query(text).catch(() => undefined);
    await client.query("ROLLBACK");
  };

  it("control: a statement failing 55P03 is recorded with the pool's start-up lock_timeout", async () => {
    assert.deepEqual(await watched((c) => c.query("UPDATE t SET x = 1").then(() => undefined)), ["55P03@5000"]);
  });

  it("attack: a statement sent with a callback (as pg-pool's Pool.query sends it) is watched (ASVS 16.5.3)", async () => {
    assert.deepEqual(await watched((c) => new Promise((resolve) => void c.query("UPDATE t SET x = 1", () => resolve()))), ["55P03@5000"]);
  });

  it("attack: a lock_timeout raised with a unit, through set_config, in a DO block or in the statement's own text is the bound recorded (ASVS 16.5.3)", async () => {
    assert.deepEqual(await watched((c) => inTransaction(c, "SET LOCAL lock_timeout = '30s'", "UPDATE t SET x = 1")()), ["55P03@30000"]);
    assert.deepEqual(await watched((c) => inTransaction(c, "SELECT set_config('lock_timeout', '30000', true)", "UPDATE t SET x = 1")()), ["55P03@30000"]);
    assert.deepEqual(await watched((c) => inTransaction(c, "DO $$ BEGIN SET LOCAL lock_timeout = 30000; END $$", "UPDATE t SET x = 1")()), ["55P03@30000"]);
    assert.deepEqual(await watched((c) => inTransaction(c, "SET LOCAL lock_timeout = 30000; UPDATE t SET x = 1")()), ["55P03@30000"]);
  });

  it("attack: a SET LOCAL outside a transaction (a no-op in PostgreSQL) does not lower the bound recorded (ASVS 16.5.3)", async () => {
    assert.deepEqual(await watched(async (c) => {
      await c.query("SET LOCAL lock_timeout = 200");
      await c.query("UPDATE t SET x = 1");
    }), ["55P03@5000"]);
  });

  it("attack: a 57014 cancel is recorded with the statement_timeout it waited, not a lock_timeout of 0 (ASVS 16.5.3)", async () => {
    assert.deepEqual(await watched((c) => inTransaction(c, "SET LOCAL lock_timeout = 0", "UPDATE t SET x = 1 /* statement_cancel */")()), ["57014@30000"]);
  });
});
