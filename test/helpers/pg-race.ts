// The site of a PostgreSQL race test: a server over a schema of the shared private cluster, users with API tokens,
// and the two waits a forced interleaving needs (how many lock requests PostgreSQL has queued, a bounded poll).
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { sql } from "kysely";
import { authFixture, HOST, type AuthFixture } from "../../src/http/auth/test-client.ts";
import { authFlows } from "./auth-flows.ts";
import { sharedCluster } from "./dialects.ts";
import { testMasterKey } from "./master-key.ts";

export interface RaceSite {
  /** The server (valid from `before` on). */
  readonly fx: AuthFixture;
  /** A user holding `roles`, with an API token scoped to `scopes`. */
  actor(label: string, roles: string[], scopes: string[]): Promise<{ id: string; token: string }>;
  /** A request with `token` as its bearer. */
  api(token: string, method: "GET" | "POST" | "DELETE", url: string, body?: unknown): Promise<LightMyRequestResponse>;
  /** How many lock requests of these kinds PostgreSQL has waiting now (the cluster's schema serves one file). */
  waiting(kinds: string[]): Promise<number>;
  /** Polls until `done()` holds; gives up quietly after about 15 s (a fix may make a party wait elsewhere). */
  until(done: () => Promise<boolean> | boolean): Promise<void>;
}

/**
 * Registers, in the calling describe, a server over schema `${schema}_<pid>` of the shared cluster (master key from
 * `label`) with one administrator nobody touches (the last-admin rule is never what refuses a change), and returns
 * the site.
 *
 * @example
 * describe("…", () => { const site = raceSite("pgrace5", "postgres-race-fifth-look"); it("…", async () => { await site.api(…); }); });
 */
export function raceSite(schema: string, label: string): RaceSite {
  let fx: AuthFixture | null = null;
  let made = 0;
  const { tokenFor } = authFlows(() => fx as AuthFixture);
  before(async () => {
    const cluster = await sharedCluster();
    assert.ok(cluster, "PostgreSQL did not start");
    const url = await cluster.createSchema(`${schema}_${process.pid}`);
    fx = await authFixture({ BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: testMasterKey(label) });
    await fx.user(`root-${schema}@example.org`, { roles: ["admin"] });
  });
  after(async () => {
    await fx?.close();
    await (await sharedCluster())?.stop();
  });
  const site: RaceSite = {
    get fx(): AuthFixture {
      assert.ok(fx, "the race site is opened in before()");
      return fx;
    },
    async actor(label, roles, scopes) {
      const id = (await site.fx.user(`${label}-${++made}@example.org`, { roles })).id;
      return { id, token: await tokenFor(id, scopes) };
    },
    api(token, method, url, body) {
      return site.fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
    },
    async waiting(kinds) {
      const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND locktype IN (${sql.join(kinds)})`.execute(site.fx.app.db.db);
      return Number(rows[0]?.n ?? 0);
    },
    async until(done) {
      for (let i = 0; i < 600; i++) {
        if (await done()) return;
        await sleep(25);
      }
    },
  };
  return site;
}
