// The dependencies of the containment library over a fresh database, for tests on either dialect: migrated, a
// keyring with its keys, a manual clock, the audit log, the job store and the role store (whose grants and revokes
// are audited, as the undo of demote-inactive-admins reads them).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { currentEpoch } from "../../src/accounts/sessions/revocation.ts";
import { RoleStore } from "../../src/accounts/roles/role-store.ts";
import { AuditLog } from "../../src/audit/audit-log.ts";
import type { ContainDeps, ResetNotifier } from "../../src/contain/index.ts";
import { Keyring } from "../../src/crypto/keyring.ts";
import { JobStore } from "../../src/jobs/job-store.ts";
import { BulwarkError } from "../../src/lib/errors.ts";
import { ManualClock } from "../../src/lib/clock.ts";
import { systemRandom } from "../../src/lib/random.ts";
import { openSQLite, type Database } from "../../src/store/database.ts";
import { createKeyStore } from "../../src/store/key-store.ts";
import { migrate } from "../../src/store/migrator.ts";
import { MIGRATIONS } from "../../src/store/migrations/index.ts";

export interface ContainFixture extends ContainDeps {
  clock: ManualClock;
  roles: RoleStore;
}

/**
 * Migrates `database` and builds the containment dependencies around it, the clock at `now`.
 *
 * @example
 * const fx = await openContainFixture(await dfx.fresh(), { now: Date.UTC(2026, 10, 20) });
 */
export async function openContainFixture(database: Database, options: { now: number; notifier?: ResetNotifier | null }): Promise<ContainFixture> {
  const clock = new ManualClock(options.now);
  const outcome = await migrate(database, clock, MIGRATIONS);
  assert.equal(outcome.error, undefined);
  const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(database), clock, random: systemRandom });
  await keyring.ensureKeys();
  const audit = new AuditLog({ database, clock, random: systemRandom });
  return {
    database, clock, random: systemRandom, keyring, audit, notifier: options.notifier ?? null,
    jobs: new JobStore({ database, clock, random: systemRandom }),
    roles: new RoleStore({ database, clock, audit }),
  };
}

const DAY = 86_400_000;

/**
 * Inserts `n` active users usr_0000… (user0@example.org…), created 400 days before `now`, with an argon2id hash;
 * their last login a day before `now`, or 200 days before with `inactive`. Returns their ids in order.
 */
export async function seedContainUsers(fx: ContainDeps, now: number, n: number, options: { inactive?: boolean } = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `usr_${String(i).padStart(4, "0")}`;
    ids.push(id);
    await fx.database.db.insertInto("users").values({
      id, email: `user${i}@example.org`, email_key: `user${i}@example.org`, status: "active",
      password_hash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", password_scheme: "argon2id",
      password_must_change: 0, created_at: now - 400 * DAY + i, updated_at: now - 400 * DAY,
      last_login_at: now - (options.inactive ? 200 : 1) * DAY, seeded: 1,
    }).execute();
  }
  return ids;
}

/**
 * The code of the Bulwark error `promise` rejects with, or "(no error)" when it settles; any other rejection is
 * thrown on.
 *
 * @example
 * assert.equal(await codeOf(resumeJob(fx, id, { actor: "cli" })), "BULWARK_ERR_JOB_FINISHED");
 */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof BulwarkError) return error.code;
    throw error;
  }
  return "(no error)";
}

/**
 * A contain fixture on `database` with thirty users and a help desk (the thirty-first, usr_0030) holding
 * accounts.read, accounts.write and contain.run through role `desk`: the caller of the creator-rule tests.
 */
export async function withHelpDesk(database: Database, now: number): Promise<{ fx: ContainFixture; desk: string; users: string[] }> {
  const fx = await openContainFixture(database, { now });
  const users = await seedContainUsers(fx, now, 31);
  const desk = users.pop() as string;
  await fx.roles.create({ name: "desk", permissions: ["accounts.read", "accounts.write", "contain.run"] }, "test");
  await fx.roles.grant(desk, "desk", "test");
  return { fx, desk, users };
}

/** An API token row `id` of `userId`, issued now, as the token library writes it (its secret matches nothing). */
export async function apiTokenRow(fx: ContainFixture, userId: string, id: string): Promise<string> {
  await fx.database.db.insertInto("api_tokens").values({
    id, user_id: userId, name: "incident tool", secret_hash: "0".repeat(64), scopes: "[]", created_at: fx.clock.now(), expires_at: null,
    last_used_at: null, last_used_ip: null, revoked_at: null, issued_epoch: currentEpoch(),
  }).execute();
  return id;
}

/** A PostgreSQL lock_timeout failure (SQLSTATE 55P03), as a stage that met a row held past the bound throws it. */
export function lockTimeoutError(): Error {
  return Object.assign(new Error("canceling statement due to lock timeout"), { code: "55P03" });
}

/** The data of the audit events of `type` about `subject`, in the chain's order. */
export async function eventData(fx: Pick<ContainFixture, "database">, subject: string, type: string): Promise<Array<Record<string, unknown>>> {
  const rows = await fx.database.db.selectFrom("audit_events").select("data").where("subject", "=", subject).where("type", "=", type).orderBy("seq").execute();
  return rows.map((r) => JSON.parse(r.data) as Record<string, unknown>);
}

/**
 * Fresh SQLite containment fixtures for the engine's unit tests, in a temp dir made before the describe's tests and
 * removed after them (call inside the describe); `job` makes a bare contain job to run stages on.
 */
export function scratchContainFixtures(prefix: string, now: number): { open(): Promise<ContainFixture>; job(fx: ContainFixture, total?: number): Promise<string> } {
  let dir = "";
  let n = 0;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  return {
    open: () => openContainFixture(openSQLite(join(dir, `db-${++n}.sqlite`), { create: true }), { now }),
    job: async (fx, total = 1) => (await fx.jobs.create({ kind: "contain", spec: {}, total, actor: "cli:test" })).id,
  };
}
