// A node whose clock is far from the database server's does not serve (BULWARK_MAX_CLOCK_SKEW_SECONDS, default 30).
// Nodes on one PostgreSQL decide session and link lifetimes, flood windows and hourly budgets on their own clocks: the
// clock-skew red team (test/clock-skew-red-team.test.ts) alternated two nodes minutes apart for twice the guesses and
// 50-minute links. NTP keeps hosts within milliseconds; past the limit the node refuses to start, and a running node's
// /healthz answers 503 so that its load balancer stops sending it clients. Private PostgreSQL cluster; loopback only.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../src/app/config.ts";
import { openApp } from "../src/app/index.ts";
import { authFixture } from "../src/http/auth/test-client.ts";
import { runServer } from "../src/http/run-server.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { isBulwarkError } from "../src/lib/errors.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { CHEAP_ARGON2, scratchRoot } from "./helpers/scratch.ts";
import { twoNodeCluster } from "./helpers/two-nodes.ts";

const MINUTE = 60_000;
const MASTER = testMasterKey("clock-skew-limit");
const unavailable = postgresUnavailable();
const { dataDir } = scratchRoot("bulwark-clock-skew-limit-");

describe("BULWARK_MAX_CLOCK_SKEW_SECONDS", () => {
  it("defaults to 30 s, takes 0 (warn only) to 3600, and refuses anything else naming the variable", () => {
    const base = { BULWARK_DATA_DIR: dataDir() };
    assert.equal(loadConfig(base).maxClockSkewMs, 30_000);
    assert.equal(loadConfig({ ...base, BULWARK_MAX_CLOCK_SKEW_SECONDS: "0" }).maxClockSkewMs, 0);
    assert.equal(loadConfig({ ...base, BULWARK_MAX_CLOCK_SKEW_SECONDS: "3600" }).maxClockSkewMs, 3_600_000);
    for (const bad of ["3601", "-1", "30s", "1e3"]) {
      assert.throws(() => loadConfig({ ...base, BULWARK_MAX_CLOCK_SKEW_SECONDS: bad }), /BULWARK_MAX_CLOCK_SKEW_SECONDS/, `"${bad}"`);
    }
  });
});

describe("a node whose clock is beyond the limit does not serve (PostgreSQL)", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  const pg = twoNodeCluster("clock_limit", MASTER);

  it("attack: a node started with its clock ten minutes off refuses to start (BULWARK_ERR_CLOCK_SKEW, naming the setting), so no client is served by it", async () => {
    const url = await pg.freshSchema();
    const env = { BULWARK_DATA_DIR: dataDir(), BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: MASTER, BULWARK_LOG_LEVEL: "silent", HOST: "127.0.0.1", PORT: "0", BULWARK_PUBLIC_URL: "http://127.0.0.1:8080", ...CHEAP_ARGON2 };
    const app = await openApp({ env, mode: "init", clock: new ManualClock(Date.now() - 10 * MINUTE) });
    let started: Awaited<ReturnType<typeof runServer>> | null = null;
    try {
      started = await runServer(app, { mailIdleMs: 60_000 });
    } catch (error) {
      assert.ok(isBulwarkError(error) && error.code === "BULWARK_ERR_CLOCK_SKEW", String(error));
      assert.match((error as Error).message, /behind the database server's, beyond BULWARK_MAX_CLOCK_SKEW_SECONDS \(30 s\)/);
    } finally {
      await started?.close();
      await app.close().catch(() => {});
    }
    assert.equal(started, null, "the skewed node started");
    // The same node with its clock right starts.
    const right = await openApp({ env, mode: "open", clock: new ManualClock(Date.now()) });
    const running = await runServer(right, { mailIdleMs: 60_000 }).catch(async (error: unknown) => {
      await right.close();
      throw error;
    });
    await running.close();
  });

  it("attack: a running node whose clock drifts six minutes ahead answers /healthz 503 (clock: skewed) until it is back within the limit, so its load balancer drains it", async () => {
    const url = await pg.freshSchema();
    const fx = await authFixture({ BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: MASTER, BULWARK_MAX_CLOCK_SKEW_SECONDS: "30" });
    try {
      const health = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
        const res = await fx.server.inject({ method: "GET", url: "/healthz" });
        return { status: res.statusCode, body: res.json() as Record<string, unknown> };
      };
      fx.clock.set(Date.now());
      assert.deepEqual(await health(), { status: 200, body: { status: "ok", database: "postgres", writes: "ok" } });
      fx.clock.set(Date.now() + 6 * MINUTE);
      const skewed = await health();
      assert.equal(skewed.status, 503);
      assert.equal(skewed.body["clock"], "skewed");
      fx.clock.set(Date.now());
      assert.equal((await health()).status, 200, "back within the limit: healthy again");
    } finally {
      await fx.close();
    }
  });
});
