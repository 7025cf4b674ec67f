// Attacks on the schema and its upgrades (src/store/migrator.ts, src/store/migrations/*, src/app/open-app.ts):
// a version table edited by hand, a Bulwark schema with a table missing, a PostgreSQL schema holding another
// application's tables, a migration killed midway, and migration 21 (identifier keys rewritten in JS) on many rows,
// NULL keys and look-alike chains. Each test asserts the secure behaviour; "FINDING:" tests fail on today's code.
// Temp dirs and a private Unix-socket PostgreSQL cluster only.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { sql, type Kysely } from "kysely";
import { openApp } from "../src/app/index.ts";
import { identifierKey } from "../src/accounts/users/normalise.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { listTables, openPostgres, openSQLite, type Database } from "../src/store/database.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { migrate } from "../src/store/migrator.ts";
import { sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { testMasterKey } from "./helpers/master-key.ts";

const KEY = testMasterKey(7);
const NOW = Date.UTC(2026, 11, 5, 12);
const MIGRATOR = fileURLToPath(new URL("../src/store/migrator.ts", import.meta.url));
const DATABASE = fileURLToPath(new URL("../src/store/database.ts", import.meta.url));
const INDEX = fileURLToPath(new URL("../src/store/migrations/index.ts", import.meta.url));

let root: string;
let clusterUsed = false;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-migrations-attacks-"));
});
after(async () => {
  rmSync(root, { recursive: true, force: true });
  if (clusterUsed) await (await sharedCluster())?.stop();
});

let n = 0;
const env = (dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: dataDir, BULWARK_LOG_LEVEL: "silent", ...extra });

async function pgURL(): Promise<string> {
  clusterUsed = true;
  const cluster = await sharedCluster();
  assert.ok(cluster, "PostgreSQL cluster did not start");
  return cluster.createSchema(`mig_attack_${process.pid}_${++n}`);
}

/** The old (pre-21) key: trim, NFC, lower case. */
const oldKey = (s: string): string => s.trim().normalize("NFC").toLowerCase();

/** Migration 21 on hostile data: more rows than one page, NULL keys, and a chain of three look-alikes. */
async function migration21OnManyRows(database: Database): Promise<void> {
  const clock = new ManualClock(NOW);
  assert.equal((await migrate(database, clock, MIGRATIONS.filter((m) => m.version < 21))).error, undefined);
  const k = database.db as unknown as Kysely<any>;
  const rows: Array<Record<string, unknown>> = [];
  const total = 2_500; // 2.5 pages of 1000: a wrong page cursor leaves rows behind
  for (let i = 0; i < total; i++) {
    const id = `usr_${String(i).padStart(5, "0")}`;
    // "ΟΔΟΣ<i>": stored with a final sigma (old form) in the username key, a J̌ (not NFC after lower-casing) in the email key.
    const username = i % 5 === 0 ? null : `\u039F\u0394\u039F\u03A3${i}`;
    rows.push({
      id, email: `J\u030C${i}@example.org`, email_key: oldKey(`J\u030C${i}@example.org`), username,
      username_key: username === null ? null : oldKey(username).replace(/\u03C3(\d+)$/, "\u03C2$1"), status: "active", created_at: NOW, updated_at: NOW,
    });
  }
  for (let i = 0; i < rows.length; i += 200) await k.insertInto("users").values(rows.slice(i, i + 200)).execute();
  // Three look-alikes of one folded key "ǰοσ" that no row holds yet: decomposed with a final sigma, precomposed with
  // a final sigma, decomposed with a medial sigma. The first by id takes the folded key; the others keep theirs.
  const K = "\u01F0\u03BF\u03C3";
  const alike = (id: string, key: string) => ({ id, email: `${id}@example.org`, email_key: `${id}@example.org`, username: key, username_key: key, status: "active", created_at: NOW, updated_at: NOW });
  await k.insertInto("users").values([
    alike("usr_a_first", "j\u030C\u03BF\u03C2"), alike("usr_b_second", "\u01F0\u03BF\u03C2"), alike("usr_c_third", "j\u030C\u03BF\u03C3"),
  ]).execute();

  const outcome = await migrate(database, clock);
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const after = await k.selectFrom("users").select(["id", "email_key", "username_key"]).orderBy("id").execute();
  assert.equal(after.length, total + 3, "no account merged or lost");
  const byId = new Map(after.map((r) => [r.id as string, r]));
  for (let i = 0; i < total; i++) {
    const r = byId.get(`usr_${String(i).padStart(5, "0")}`)!;
    assert.equal(r.email_key, identifierKey(`J\u030C${i}@example.org`), `row ${i}: email key refolded (page ${Math.floor(i / 1000)})`);
    assert.equal(r.username_key, i % 5 === 0 ? null : identifierKey(`\u039F\u0394\u039F\u03A3${i}`), `row ${i}: username key refolded, NULL left NULL`);
  }
  assert.equal(identifierKey("J\u030C\u039F\u03A3"), K);
  assert.equal(byId.get("usr_a_first")!.username_key, K, "the first look-alike takes the folded key");
  assert.equal(byId.get("usr_b_second")!.username_key, "\u01F0\u03BF\u03C2", "the second keeps its own, not merged");
  assert.equal(byId.get("usr_c_third")!.username_key, "j\u030C\u03BF\u03C3", "the third keeps its own, not merged");
  const keys = after.map((r) => r.username_key).filter((x) => x !== null);
  assert.equal(new Set(keys).size, keys.length, "no two accounts share a key");
  // Run again (a second process, or a restart): nothing left to apply, nothing rewritten twice.
  assert.deepEqual((await migrate(database, clock)).results, []);
}

describe("[sqlite] the version table and the schema edited by hand", () => {
  it("attack: init with the key file gone and the version table emptied does not mint a new master key beside wrapped keys (ASVS 11.1.1, 13.3.1; was: a new master.key, then migration 1 failed)", async () => {
    const data = join(root, `emptied-${++n}`);
    const app = await openApp({ env: env(data), mode: "init" });
    await app.close();
    renameSync(join(data, "master.key"), join(root, `master-${n}.key.bak`));
    const h = new DatabaseSync(join(data, "bulwark.db"));
    h.exec("DELETE FROM bulwark_migrations"); // hand-edited, or a restore of the tables without their version rows
    h.close();
    // Refused as a damaged database (its tables without their versions), before any key is thought of.
    await assert.rejects(openApp({ env: env(data), mode: "init" }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "BULWARK_ERR_DB_DAMAGED", e.message);
      assert.match(e.message, /no record of the migrations that made them; restore it from a backup/);
      return true;
    });
    // A fresh key file beside keys wrapped under the lost one: it decrypts nothing, and blocks restoring the backup.
    assert.equal(existsSync(join(data, "master.key")), false, "no new master.key was created");
  });

  it("attack: a Bulwark database with a table dropped is refused with a named BULWARK_ERR_ error (was: an internal SQLite error)", async () => {
    const data = join(root, `dropped-${++n}`);
    const app = await openApp({ env: env(data, { BULWARK_MASTER_KEY: KEY }), mode: "init" });
    await app.close();
    const h = new DatabaseSync(join(data, "bulwark.db"));
    h.exec("DROP TABLE keyring_keys");
    h.close();
    for (const mode of ["open", "migrate"] as const) {
      await assert.rejects(openApp({ env: env(data, { BULWARK_MASTER_KEY: KEY }), mode }), (e: Error & { code?: string }) => {
        assert.match(String(e.code), /^BULWARK_ERR_/, `${mode}: ${e.code}: ${e.message}`);
        assert.match(e.message, /keyring_keys/);
        return true;
      });
    }
  });

  it("attack: a migration killed midway (SIGKILL inside its transaction) leaves neither its change nor its record (SQLite)", async () => {
    const path = join(root, `killed-${++n}.db`);
    const setup = openSQLite(path, { create: true });
    assert.equal((await migrate(setup, new ManualClock(NOW), MIGRATIONS.slice(0, 20))).error, undefined);
    await setup.sqlite!.exec("INSERT INTO users (id, email, email_key, username, username_key, status, created_at, updated_at) VALUES ('usr_k', 'k@example.org', 'k@example.org', 'ΟΔΟΣ', 'οδος', 'active', 0, 0)");
    await setup.close();
    // The child runs 20 + a migration that changes a table, rewrites a key, then waits to be killed.
    const script = `const { openSQLite } = await import(${JSON.stringify(DATABASE)});
      const { migrate } = await import(${JSON.stringify(MIGRATOR)});
      const { MIGRATIONS } = await import(${JSON.stringify(INDEX)});
      const db = openSQLite(${JSON.stringify(path)}, { create: false });
      const half = { version: 21, name: "half", async up(trx) {
        await trx.schema.createTable("half_done").addColumn("x", "text").execute();
        await trx.updateTable("users").set({ username_key: "changed" }).execute();
        console.log("inside"); await new Promise(() => {});
      } };
      await migrate(db, { now: () => 0 }, [...MIGRATIONS.slice(0, 20), half]);`;
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child never reached the migration: ${err}`)), 10_000);
      child.stdout.on("data", (d: Buffer) => {
        if (d.toString().includes("inside")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill("SIGKILL");
    await new Promise((resolve) => child.on("close", resolve));
    const db = openSQLite(path, { create: false });
    try {
      assert.equal((await listTables(db)).includes("half_done"), false, "the half-made table was rolled back");
      const versions = (await sql<{ version: number }>`SELECT version FROM bulwark_migrations`.execute(db.db)).rows.map((r) => Number(r.version));
      assert.equal(versions.includes(21), false, "the killed migration is not recorded as applied");
      assert.equal((await sql<{ k: string }>`SELECT username_key AS k FROM users WHERE id = 'usr_k'`.execute(db.db)).rows[0]?.k, "οδος");
      // The real migration 21 then applies cleanly.
      assert.equal((await migrate(db, new ManualClock(NOW))).error, undefined);
      assert.equal((await sql<{ k: string }>`SELECT username_key AS k FROM users WHERE id = 'usr_k'`.execute(db.db)).rows[0]?.k, identifierKey("ΟΔΟΣ"));
    } finally {
      await db.close();
    }
  });

  it("attack: migration 21 over 2,500 old-form keys (past two pages), NULL usernames and three look-alikes rewrites each once, merges none (SQLite)", async () => {
    const db = openSQLite(join(root, `m21-${++n}.db`), { create: true });
    try {
      await migration21OnManyRows(db);
    } finally {
      await db.close();
    }
  });
});

describe("[postgres] the schema and its upgrades", { skip: postgresUnavailable() ?? false }, () => {
  it("attack: migration 21 over 2,500 old-form keys (past two pages), NULL usernames and three look-alikes rewrites each once, merges none (PostgreSQL)", async () => {
    const db = await openPostgres(await pgURL());
    try {
      await migration21OnManyRows(db);
    } finally {
      await db.close();
    }
  });

  it("attack: init on a PostgreSQL schema holding another application's `users` table refuses before creating any table in it (was: eight tables committed, then a failure)", async () => {
    const url = await pgURL();
    const foreign = await openPostgres(url);
    try {
      await sql`CREATE TABLE users (id serial PRIMARY KEY, login text)`.execute(foreign.db);
      await assert.rejects(openApp({ env: env(join(root, `pg-foreign-${n}`), { BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: KEY }), mode: "init" }));
      // The other application's schema must be left as it was: not half a Bulwark (migration 1 committed) beside it.
      assert.deepEqual(await listTables(foreign), ["users"]);
    } finally {
      await foreign.close();
    }
  });

  it("attack: a Bulwark PostgreSQL schema with a table dropped is refused with a named BULWARK_ERR_ error (was: a raw driver error)", async () => {
    const url = await pgURL();
    const e0 = env(join(root, `pg-dropped-${++n}`), { BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: KEY });
    const app = await openApp({ env: e0, mode: "init" });
    await app.close();
    const raw = await openPostgres(url);
    await sql`DROP TABLE keyring_keys`.execute(raw.db);
    await raw.close();
    await assert.rejects(openApp({ env: e0, mode: "open" }), (e: Error & { code?: string }) => {
      assert.match(String(e.code), /^BULWARK_ERR_/, `${e.code}: ${e.message}`);
      assert.match(e.message, /keyring_keys/);
      return true;
    });
  });
});
