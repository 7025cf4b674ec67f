// Two Bulwark nodes behind one load balancer: two apps with their own HTTP servers (authFixture) on one PostgreSQL
// database, for the tests that race a request on one node against another on the other.
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { authFixture, Browser, type AuthFixture } from "../../src/http/auth/test-client.ts";
import { startPostgres, type PgCluster } from "./postgres.ts";

export interface TwoNodes {
  a: AuthFixture;
  b: AuthFixture;
  close(): Promise<void>;
}

/**
 * Two HTTP nodes on the database at `url` (a fresh schema of the private cluster), sharing `masterKey`; `close` stops
 * both, the second first.
 *
 * @example
 * const { a, b, close } = await twoNodes(await cluster.createSchema("mine_1"), MASTER);
 */
export async function twoNodes(url: string, masterKey: string): Promise<TwoNodes> {
  const env = { BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: masterKey };
  const a = await authFixture(env);
  const b = await authFixture(env);
  return {
    a, b,
    async close() {
      await b.close();
      await a.close();
    },
  };
}

/**
 * Registers, in the enclosing describe(), a private PostgreSQL cluster started before its tests and stopped after
 * them, and returns what the tests open on it: `freshSchema()` (a new schema named `<prefix>_<pid>_<n>`) and
 * `twoServers()` (two nodes on a fresh schema, with `advance(ms)` moving both clocks to the later of the two, then on by
 * `ms`). Call it inside a describe() that is skipped when PostgreSQL is unavailable.
 *
 * @example
 * describe("…", unavailable ? { skip: unavailable } : {}, () => {
 *   const pg = twoNodeCluster("nodes_x", MASTER);
 *   it("…", async () => { const { a, b, close } = await pg.twoServers(); … });
 * });
 */
export function twoNodeCluster(prefix: string, masterKey: string): {
  cluster(): PgCluster;
  freshSchema(): Promise<string>;
  twoServers(): Promise<TwoNodes & { url: string; advance(ms: number): void }>;
} {
  let started: PgCluster | undefined;
  let schemas = 0;
  before(async () => {
    const cluster = await startPostgres();
    assert.ok(cluster, "PostgreSQL did not start");
    started = cluster;
  });
  after(async () => {
    await started?.stop();
  });
  const cluster = (): PgCluster => {
    assert.ok(started, "the cluster is read before its suite's before() started it");
    return started;
  };
  const freshSchema = (): Promise<string> => cluster().createSchema(`${prefix}_${process.pid}_${++schemas}`);
  return {
    cluster,
    freshSchema,
    async twoServers() {
      const url = await freshSchema();
      const nodes = await twoNodes(url, masterKey);
      const advance = (ms: number): void => {
        const now = Math.max(nodes.a.clock.now(), nodes.b.clock.now()) + ms;
        nodes.a.clock.set(now);
        nodes.b.clock.set(now);
      };
      return { ...nodes, url, advance };
    },
  };
}

/** The same session (its cookie) sent to `fx`'s node, as a load balancer sends the next request. */
export function on(fx: AuthFixture, from: Browser): Browser {
  const moved = new Browser(fx.server);
  moved.cookie = from.cookie;
  return moved;
}
