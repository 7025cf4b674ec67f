// Several processes starting on one database with pending migrations (two nodes rolling out an upgrade, or `serve`
// and a CLI command) all start: each migration is applied once, by one of them, and the others wait for it instead
// of re-running it. migrate() used to read the pending list once, with no lock: the losers failed with PostgreSQL
// 23505 / "column already exists", or SQLite "table already exists", and did not start.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { sql } from "kysely";
import { openApp } from "../src/app/index.ts";
import { systemClock } from "../src/lib/clock.ts";
import { openPostgres, openSQLite, type Database } from "../src/store/database.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { migrate, type MigrateOutcome } from "../src/store/migrator.ts";
import { sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { testMasterKey } from "./helpers/master-key.ts";

const KEY = testMasterKey(9);
const APP = fileURLToPath(new URL("../src/app/index.ts", import.meta.url));

let root: string;
let clusterStarted = false;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-concurrent-migrate-"));
});
after(async () => {
  rmSync(root, { recursive: true, force: true });
  if (clusterStarted) await (await sharedCluster())?.stop();
});

function describeOutcome(outcome: MigrateOutcome): string {
  return outcome.error ? `${outcome.error.message}` : "ok";
}

/** Every migration recorded exactly once, and each applied by exactly one of the runs. */
async function assertAppliedOnce(database: Database, outcomes: MigrateOutcome[], expected: number[]): Promise<void> {
  const rows = await sql<{ version: number }>`SELECT version FROM bulwark_migrations ORDER BY version`.execute(database.db);
  assert.deepEqual(rows.rows.map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
  const applied = outcomes.flatMap((o) => o.results.filter((r) => r.status === "applied").map((r) => r.version)).sort((a, b) => a - b);
  assert.deepEqual(applied, expected, "each pending migration is reported applied by exactly one run");
}

describe("[sqlite] migrations applied by several processes at once", () => {
  it("attack: a run whose pending list went stale (another process migrated meanwhile) skips what was done instead of failing", async () => {
    const path = join(root, "stale.db");
    const mine = openSQLite(path, { create: true });
    const theirs = openSQLite(path, { create: false });
    try {
      let theirOutcome: MigrateOutcome | undefined;
      // Ours reads the pending list, then, just before its first migration, the other process runs all of them.
      const racing: Database = {
        ...mine,
        transaction: async (fn) => {
          theirOutcome ??= await migrate(theirs, systemClock);
          return mine.transaction(fn);
        },
      };
      const outcome = await migrate(racing, systemClock);
      assert.equal(describeOutcome(outcome), "ok");
      assert.ok(theirOutcome);
      await assertAppliedOnce(mine, [outcome, theirOutcome], MIGRATIONS.map((m) => m.version));
    } finally {
      await theirs.close();
      await mine.close();
    }
  });

  it("attack: four processes running init (`bulwark start`) on one fresh data dir all start", async () => {
    // Real processes: node:sqlite is synchronous, so two connections in one process cannot wait for each other.
    const script = `const { openApp } = await import(${JSON.stringify(APP)});
      try { const a = await openApp({ env: process.env, mode: "init" }); await a.close(); console.log("ok"); }
      catch (e) { console.log("FAIL " + e.code + ": " + e.message); }`;
    const run = (dataDir: string) =>
      new Promise<string>((resolve) => {
        const env: NodeJS.ProcessEnv = { ...process.env, BULWARK_DATA_DIR: dataDir, BULWARK_MASTER_KEY: KEY, BULWARK_LOG_LEVEL: "silent" };
        delete env["BULWARK_DATABASE_URL"];
        const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", script], { env });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (out += d.toString()));
        child.on("close", () => resolve(out.trim()));
      });
    // The race depends on timing: a few rounds, each on a fresh data dir.
    const failures: string[] = [];
    for (let round = 0; round < 5 && failures.length === 0; round++) {
      const dataDir = join(root, `processes-${round}`);
      const outs = await Promise.all([run(dataDir), run(dataDir), run(dataDir), run(dataDir)]);
      failures.push(...outs.filter((o) => o !== "ok"));
      // One first key of each purpose, whoever stored it: a signing key per process left checkpoints signed by keys
      // retired at once, which the current key could not sign after (each init signs the log's first checkpoint).
      const db = new DatabaseSync(join(dataDir, "bulwark.db"));
      try {
        const keys = db.prepare("SELECT purpose, count(*) AS n FROM keyring_keys GROUP BY purpose ORDER BY purpose").all() as Array<{ purpose: string; n: number }>;
        assert.deepEqual(keys.map((k) => [k.purpose, Number(k.n)]), [["data", 1], ["signing", 1]], `round ${round}`);
      } finally {
        db.close();
      }
    }
    assert.deepEqual(failures, []);
  });
});

describe("[postgres] migrations applied by several nodes at once", { skip: postgresUnavailable() ?? false }, () => {
  let counter = 0;
  async function freshURL(): Promise<string> {
    clusterStarted = true;
    const cluster = await sharedCluster();
    assert.ok(cluster, "PostgreSQL cluster did not start");
    return cluster.createSchema(`migrate_${process.pid}_${++counter}`);
  }

  it("attack: two nodes upgrading at once (one pending migration) both succeed, and it is applied once", async () => {
    const url = await freshURL();
    const setup = await openPostgres(url);
    assert.equal(describeOutcome(await migrate(setup, systemClock, MIGRATIONS.slice(0, -1))), "ok");
    const [a, b] = [await openPostgres(url), await openPostgres(url)];
    try {
      const outcomes = await Promise.all([migrate(a, systemClock), migrate(b, systemClock)]);
      assert.deepEqual(outcomes.map(describeOutcome), ["ok", "ok"]);
      await assertAppliedOnce(setup, outcomes, [MIGRATIONS.at(-1)!.version]);
    } finally {
      await Promise.all([a.close(), b.close(), setup.close()]);
    }
  });

  it("a migration runs with no lock or statement bound (a node starting while another migrates waits for it; an index build is not cut), and the connection goes back to the pool bounded (was: the pool's lock_timeout 5 s gave up on the migration lock)", async () => {
    const url = await freshURL();
    const node = await openPostgres(url, { maxConnections: 1 }); // one connection: the one that migrated is the one read after
    try {
      const seen: Array<{ lock: string; statement: string }> = [];
      const probe = {
        version: MIGRATIONS.at(-1)!.version + 1,
        name: "probe bounds",
        up: async (trx: Parameters<(typeof MIGRATIONS)[number]["up"]>[0]) => {
          seen.push((await sql<{ lock: string; statement: string }>`SELECT current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS statement`.execute(trx)).rows[0]!);
        },
      };
      assert.equal(describeOutcome(await migrate(node, systemClock, [...MIGRATIONS, probe])), "ok");
      assert.deepEqual(seen, [{ lock: "0", statement: "0" }], "the migration ran unbounded");
      const after = (await sql<{ lock: string; statement: string }>`SELECT current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS statement`.execute(node.db)).rows[0]!;
      assert.notEqual(after.lock, "0", "the pooled connection's lock bound is back");
      assert.notEqual(after.statement, "0", "the pooled connection's statement bound is back");
    } finally {
      await node.close();
    }
  });

  it("attack: three nodes migrating a fresh schema at once all succeed, each migration applied once", async () => {
    const url = await freshURL();
    const nodes = [await openPostgres(url), await openPostgres(url), await openPostgres(url)];
    try {
      const outcomes = await Promise.all(nodes.map((n) => migrate(n, systemClock)));
      assert.deepEqual(outcomes.map(describeOutcome), ["ok", "ok", "ok"]);
      await assertAppliedOnce(nodes[0]!, outcomes, MIGRATIONS.map((m) => m.version));
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  });

  it("works with a pool of one connection (the lock must not need a second one)", async () => {
    const url = await freshURL();
    const single = await openPostgres(url, { maxConnections: 1 });
    try {
      const outcome = await Promise.race([migrate(single, systemClock), new Promise<never>((_, reject) => setTimeout(() => reject(new Error("migrate hung")), 20_000))]);
      assert.equal(describeOutcome(outcome), "ok");
    } finally {
      await single.close();
    }
  });

  it("attack: two nodes running init on a fresh schema at once both start", async () => {
    const url = await freshURL();
    const env = (n: number) => ({ BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: KEY, BULWARK_DATA_DIR: join(root, `pg-${n}`), BULWARK_LOG_LEVEL: "silent" });
    const results = await Promise.allSettled([openApp({ env: env(1), mode: "init" }), openApp({ env: env(2), mode: "init" })]);
    for (const r of results) if (r.status === "fulfilled") await r.value.close();
    const failures = results.flatMap((r) => (r.status === "rejected" ? [`${(r.reason as { code?: string }).code}: ${(r.reason as Error).message}`] : []));
    assert.deepEqual(failures, []);
  });
});
