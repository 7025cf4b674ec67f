// A Bulwark server over a fresh schema of a private PostgreSQL cluster, and a second, superuser client on the same
// schema that does the damage (holds a row past the wait bound, kills backends): the fixture of the rounds that attack
// the store's failures and wait bounds (test/pg-failures-red-team.test.ts, test/bounded-waits*-red-team.test.ts).
// Loopback and temp dirs only.
import assert from "node:assert/strict";
import { after, before } from "node:test";
import pg from "pg";
import { authFixture, type AuthFixture } from "../../src/http/auth/test-client.ts";
import { LOCK_TIMEOUT_MS } from "../../src/store/database.ts";
import { postgresUnavailable, startPostgres, type PgCluster } from "./postgres.ts";

/** Taken by the DBA's client inside a transaction: every audited write of Bulwark's waits on it. */
export const HOLD_AUDIT_HEAD = "SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE";

export interface PgSite {
  fx: AuthFixture;
  /** The superuser client on the same schema: its open transaction is rolled back at close. */
  dba: pg.Client;
  url: string;
  close(): Promise<void>;
}

export interface PgSites {
  /** Why PostgreSQL cannot be used here, or null: a describe's `skip`. */
  unavailable: string | null;
  /** The lock bound the sites run with, in ms (BULWARK_DB_LOCK_TIMEOUT_SECONDS; the product's 5 s unless given). */
  lockBoundMs: number;
  /** The environment that sets that bound, for a CLI run or a second node on a schema of this file. */
  lockEnv: Record<string, string>;
  /** A fresh schema of the file's cluster, its URL (for a second node or a CLI run on it). */
  schemaURL(): Promise<string>;
  /** A server (the fixture, `env` added to its environment) and the DBA's client over a fresh schema. */
  site(env?: Record<string, string>): Promise<PgSite>;
}

/**
 * Starts the file's private cluster before its tests and stops it after them (nothing when PostgreSQL is
 * unavailable); call once at the top level of a test file. Schemas are named `<prefix>_<pid>_<n>`.
 *
 * @example
 * const { unavailable, site } = pgSites("bwait", testMasterKey("bounded-waits-red-team"));
 * // A round that waits out the bound many times: its sites (and lockEnv's CLI runs) refuse a held row after 2 s.
 * const { site, lockBoundMs, lockEnv } = pgSites("bwait", testMasterKey("…"), { lockTimeoutSeconds: 2 });
 */
export function pgSites(prefix: string, masterKey: string, options: { lockTimeoutSeconds?: number } = {}): PgSites {
  const lockEnv: Record<string, string> = options.lockTimeoutSeconds === undefined ? {} : { BULWARK_DB_LOCK_TIMEOUT_SECONDS: String(options.lockTimeoutSeconds) };
  const lockBoundMs = options.lockTimeoutSeconds === undefined ? LOCK_TIMEOUT_MS : options.lockTimeoutSeconds * 1000;
  const unavailable = postgresUnavailable();
  let cluster: PgCluster | null = null;
  let schemas = 0;
  before(async () => {
    if (unavailable) return;
    cluster = await startPostgres();
  });
  after(async () => {
    await cluster?.stop();
  });
  const schemaURL = async (): Promise<string> => {
    assert.ok(cluster, "PostgreSQL did not start");
    return cluster.createSchema(`${prefix}_${process.pid}_${++schemas}`);
  };
  return {
    unavailable,
    lockBoundMs,
    lockEnv,
    schemaURL,
    async site(env = {}) {
      const url = await schemaURL();
      const fx = await authFixture({ BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: masterKey, ...lockEnv, ...env });
      const dba = new pg.Client({ connectionString: url });
      await dba.connect();
      return {
        fx, dba, url,
        async close() {
          await dba.query("ROLLBACK").catch(() => {});
          await dba.end().catch(() => {});
          await fx.close();
        },
      };
    },
  };
}

/** How many lock requests wait now, read on the DBA's own connection (Bulwark's pool may be full). */
export async function waiting(dba: pg.Client): Promise<number> {
  return Number((await dba.query<{ n: string }>("SELECT count(*) AS n FROM pg_locks WHERE NOT granted")).rows[0]?.n ?? 0);
}

/** Polls `done` every 20 ms (real time) for at most `ms`: whether it came true. */
export async function until(done: () => Promise<boolean>, ms = 4000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `work` settled within `ms` of real time: its value, or null while it still waits. */
export async function within<T>(work: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The DBA holds `lock` (rows must match) in an open transaction; the returned function lets it go. */
export async function holdRows(dba: pg.Client, lock: string, params: unknown[] = []): Promise<() => Promise<void>> {
  await dba.query("BEGIN");
  const held = await dba.query(lock, params);
  assert.ok((held.rowCount ?? 0) > 0, `control: the DBA holds a row (${lock})`);
  return async () => {
    await dba.query("ROLLBACK");
  };
}
