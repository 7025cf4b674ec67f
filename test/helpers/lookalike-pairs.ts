// Accounts stored as they were before look-alikes were refused (migration 23), and CSV imports over them: for the
// tests that attack a stored look-alike pair (confusables-red-team, second-look-red-team), and the help-desk site those
// files attack POST /api/v1/users from.
import assert from "node:assert/strict";
import { after, before } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import type { Kysely } from "kysely";
import { checkHeader, resolveMap } from "../../src/accounts/import/mapping.ts";
import { importUsers, type ImportDeps, type ImportOptions, type ImportReport } from "../../src/accounts/import/importer.ts";
import { createPasswordContext } from "../../src/accounts/passwords/index.ts";
import { identifierKey } from "../../src/accounts/users/normalise.ts";
import { createUserStore, type UserStore } from "../../src/accounts/users/user-store.ts";
import { AuditLog } from "../../src/audit/audit-log.ts";
import { JobStore } from "../../src/jobs/job-store.ts";
import { ManualClock } from "../../src/lib/clock.ts";
import { systemRandom } from "../../src/lib/random.ts";
import type { Database } from "../../src/store/database.ts";
import { migrate } from "../../src/store/migrator.ts";
import { authFixture, HOST, type AuthFixture } from "../../src/http/auth/test-client.ts";
import { authFlows } from "./auth-flows.ts";
import { MIGRATIONS } from "../../src/store/migrations/index.ts";

const NOW = Date.UTC(2026, 11, 4, 12);
const BEFORE_23 = MIGRATIONS.filter((m) => m.version < 23);
const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });

export interface Stored {
  database: Database;
  clock: ManualClock;
  users: UserStore;
  deps: ImportDeps;
}

/**
 * An empty database (DialectFixture.empty()) migrated to 22 with `rows` stored as they were before any look-alike check, then migrated to the end
 * (migration 23: the plain account of a look-alike pair under the unique index, the other marked).
 */
export async function storedBeforeLookalikeRule(database: Database, rows: Array<{ id: string; email: string; username: string | null }>): Promise<Stored> {
  const clock = new ManualClock(NOW);
  assert.equal((await migrate(database, clock, BEFORE_23)).error, undefined);
  const k = database.db as unknown as Kysely<any>;
  if (rows.length) await k.insertInto("users").values(rows.map((r) => ({
    id: r.id, email: r.email, email_key: identifierKey(r.email), username: r.username, username_key: r.username === null ? null : identifierKey(r.username),
    status: "active", created_at: NOW, updated_at: NOW,
  }))).execute();
  assert.equal((await migrate(database, clock)).error, undefined);
  const users = createUserStore({ database, clock, random: systemRandom });
  const deps: ImportDeps = {
    database, clock, passwords, users, audit: new AuditLog({ database, clock, random: systemRandom }), jobs: new JobStore({ database, clock, random: systemRandom }), notices: null,
  };
  return { database, clock, users, deps };
}

/** Imports `csv` (header and rows) with the default mapping; --on-conflict skip unless `extra` says otherwise. */
export function importCSV(deps: ImportDeps, csv: string, extra: Partial<Omit<ImportOptions, "rules" | "open">> = {}): Promise<ImportReport> {
  const map = resolveMap({ preset: null, map: {} });
  return importUsers(deps, {
    format: "csv", onConflict: "skip", batchSize: 500, dryRun: false, skipBad: false, actor: "red-team", file: "people.csv",
    onHeader: (h: string[]) => checkHeader(h, map, {}), ...extra,
    rules: { map, preset: null, source: "people.csv", salted: null },
    open: async function* () {
      yield csv;
    },
  });
}

/**
 * A site whose attacker is a help-desk account (accounts.read + accounts.write: may create accounts and nothing more),
 * started before the suite's tests and closed after them: `createUser` posts to /api/v1/users with its token, `spare`
 * gives a fresh address for an impostor's other identifier.
 */
export function helpDeskSite(sparePrefix: string): { site: () => AuthFixture; createUser: (body: { email: string; username?: string }) => Promise<LightMyRequestResponse>; spare: () => string } {
  let fx: AuthFixture;
  let helpdesk: string;
  let stamp = 0;
  before(async () => {
    fx = await authFixture();
    const { userWith, tokenFor } = authFlows(() => fx);
    helpdesk = await tokenFor(await userWith(["accounts.read", "accounts.write"]), ["accounts.read", "accounts.write"]);
  });
  after(async () => {
    await fx.close();
  });
  return {
    site: () => fx,
    createUser: (body) => fx.server.inject({ method: "POST", url: "/api/v1/users", headers: { host: HOST, authorization: `Bearer ${helpdesk}` }, payload: body }),
    spare: () => `${sparePrefix}-${++stamp}@example.org`,
  };
}
