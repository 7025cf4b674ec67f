// rotate-keys when more than one process holds the keyring, on SQLite and PostgreSQL: the server and the CLI on
// one database (two openApp instances stand in for them), and two workers on one rotate-keys job whose
// keyrings were loaded at different times. Written as the failures that must not happen again: the server
// unable to open TOTP secrets the CLI moved (MFA logins failing mid-incident) or sealing new ones under the
// retired key, and a job reported done with most secrets still under the retired key.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { totpCipherContext } from "../src/accounts/mfa/index.ts";
import { base32Decode, totpCode } from "../src/accounts/mfa/testing/setup.ts";
import { openApp, type OpenedApp } from "../src/app/open-app.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { KEY_FRESHNESS_MS, Keyring } from "../src/crypto/keyring.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { containDeps, createContainJob, jobView, runJob, type ContainDeps } from "../src/contain/index.ts";
import { openCursor, sealCursor } from "../src/http/api/cursor.ts";
import { forEachDialect, type DialectFixture } from "./helpers/dialects.ts";

const NOW = Date.UTC(2026, 10, 20, 12);

/** The current data key as the key table says (not as any process remembers it). */
async function storedCurrentKey(database: Database): Promise<string> {
  const current = (await createKeyStore(database).listKeys()).filter((k) => k.purpose === "data" && k.status === "current");
  assert.equal(current.length, 1);
  return (current[0] as { id: string }).id;
}

/** A server (its own manual clock) and a CLI opened on one data dir, or one PostgreSQL schema. */
async function serverAndCLI(dfx: DialectFixture): Promise<{ server: OpenedApp; cli: OpenedApp; clock: ManualClock; close(): Promise<void> }> {
  await dfx.fresh();
  const { databaseURL } = dfx.lastTarget();
  const root = mkdtempSync(join(tmpdir(), "bulwark-rotate-"));
  const env = {
    BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
    ...(databaseURL ? { BULWARK_DATABASE_URL: databaseURL } : {}),
  };
  const clock = new ManualClock(NOW);
  const server = await openApp({ env, mode: "init", clock, actor: "server" });
  const cli = await openApp({ env, mode: "open", actor: "cli" });
  return {
    server, cli, clock,
    async close() {
      await cli.close();
      await server.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Enrols TOTP for a new user through the server; returns the user id and the base32 secret. */
async function enrolThroughServer(server: OpenedApp, clock: ManualClock, email: string): Promise<{ id: string; secret: string }> {
  const user = await server.accounts.users.create({ email });
  const { secret } = await server.accounts.mfa.totp.begin(user.id, email);
  assert.equal(await server.accounts.mfa.totp.confirm(user.id, totpCode(secret, clock.now())), true);
  return { id: user.id, secret };
}

/** `bulwark contain rotate-keys --all` as the CLI runs it. */
async function rotateThroughCLI(cli: OpenedApp): Promise<void> {
  const deps = containDeps(cli);
  const job = await createContainJob(deps, { levers: ["rotate-keys"], scope: { all: true }, actor: "cli" });
  assert.equal((await runJob(deps, job.id)).status, "done");
}

async function secretKeyIds(database: Database): Promise<Map<string, number>> {
  const byKey = new Map<string, number>();
  for (const r of await database.db.selectFrom("mfa_totp").select("secret_ct").execute()) {
    const id = Keyring.keyIdOf(r.secret_ct) as string;
    byKey.set(id, (byKey.get(id) ?? 0) + 1);
  }
  return byKey;
}

/** Contain deps for one worker: the shared database, job store and audit log, and that worker's own keyring. */
async function workers(database: Database, count: number): Promise<ContainDeps[]> {
  const clock = new ManualClock(NOW);
  assert.equal((await migrate(database, clock, MIGRATIONS)).error, undefined);
  const masterKey = systemRandom.bytes(32);
  const audit = new AuditLog({ database, clock, random: systemRandom });
  const jobs = new JobStore({ database, clock, random: systemRandom });
  const out: ContainDeps[] = [];
  for (let i = 0; i < count; i++) {
    const keyring = await Keyring.open({ masterKey, store: createKeyStore(database), clock, random: systemRandom });
    await keyring.ensureKeys();
    out.push({ database, clock, random: systemRandom, audit, jobs, keyring, notifier: null });
  }
  return out;
}

/** n users, each with a confirmed TOTP secret "secret-<id>" sealed under the current key. */
async function usersWithSecrets(deps: ContainDeps, n: number): Promise<string[]> {
  const db = deps.database.db;
  const ring = deps.keyring as Keyring;
  const ids = Array.from({ length: n }, (_, i) => `usr_${String(i).padStart(5, "0")}`);
  for (let i = 0; i < n; i += 400) {
    const slice = ids.slice(i, i + 400);
    await db.insertInto("users").values(slice.map((id) => ({
      id, email: `${id}@example.org`, email_key: `${id}@example.org`, status: "active", password_hash: "$argon2id$x", password_scheme: "argon2id",
      password_must_change: 0, created_at: NOW, updated_at: NOW, seeded: 1,
    }))).execute();
    await db.insertInto("mfa_totp").values(slice.map((id) => ({
      user_id: id, secret_ct: ring.encrypt(`secret-${id}`, totpCipherContext(id)), created_at: NOW, confirmed_at: NOW, last_step: null,
    }))).execute();
  }
  return ids;
}

async function assertAllUnder(deps: ContainDeps, key: string, ids: string[]): Promise<void> {
  assert.deepEqual([...(await secretKeyIds(deps.database))], [[key, ids.length]]);
  const ring = deps.keyring as Keyring;
  for (const r of await deps.database.db.selectFrom("mfa_totp").select(["user_id", "secret_ct"]).execute()) {
    assert.equal(await ring.unsealString(r.secret_ct, totpCipherContext(r.user_id)), `secret-${r.user_id}`);
  }
}

forEachDialect("rotate-keys across processes", (dfx) => {
  it("a server opens the TOTP secrets the CLI moved to a new key, and then seals under that key, without a restart", async () => {
    const { server, cli, clock, close } = await serverAndCLI(dfx);
    try {
      const ana = await enrolThroughServer(server, clock, "ana@example.org");
      const retired = server.keyring.currentDataKeyId;
      await rotateThroughCLI(cli);
      const current = await storedCurrentKey(server.db);
      assert.notEqual(current, retired);
      assert.deepEqual([...(await secretKeyIds(server.db))], [[current, 1]], "the CLI moved the secret");
      const row = await server.db.db.selectFrom("mfa_totp").select("secret_ct").where("user_id", "=", ana.id).executeTakeFirstOrThrow();
      // Was BULWARK_ERR_UNKNOWN_KEY until the server restarted.
      assert.deepEqual(Buffer.from(await server.keyring.unseal(row.secret_ct, totpCipherContext(ana.id))), base32Decode(ana.secret));
      // Was: sealed under the retired key for as long as the server ran.
      clock.advance(KEY_FRESHNESS_MS);
      assert.equal(Keyring.keyIdOf(await server.keyring.seal("new secret", totpCipherContext("usr_bo"))), current);
      assert.equal(server.keyring.currentDataKeyId, current);
    } finally {
      await close();
    }
  });

  it(
    "the server's TOTP check and enrolment work under the CLI's new key right after the rotation",
    async () => {
      const { server, cli, clock, close } = await serverAndCLI(dfx);
      try {
        const ana = await enrolThroughServer(server, clock, "ana@example.org");
        await rotateThroughCLI(cli);
        clock.advance(30_000); // the next TOTP step: the enrolment code's step is spent
        assert.equal(await server.accounts.mfa.totp.verify(ana.id, totpCode(ana.secret, clock.now())), "ok");
        const bo = await server.accounts.users.create({ email: "bo@example.org" });
        await server.accounts.mfa.totp.begin(bo.id, "bo@example.org");
        const row = await server.db.db.selectFrom("mfa_totp").select("secret_ct").where("user_id", "=", bo.id).executeTakeFirstOrThrow();
        assert.equal(Keyring.keyIdOf(row.secret_ct), await storedCurrentKey(server.db));
      } finally {
        await close();
      }
    },
  );

  it("an API page cursor sealed by one process under the CLI's new key opens in another that has not seen it", async () => {
    const { server, cli, close } = await serverAndCLI(dfx);
    try {
      await rotateThroughCLI(cli);
      const cursor = await sealCursor(cli.keyring, "users", "q=ana", { after: "usr_x" });
      assert.equal(Keyring.keyIdOf(cursor), await storedCurrentKey(cli.db));
      assert.deepEqual(await openCursor(server.keyring, "users", "q=ana", cursor), { after: "usr_x" }, "was: 400, bad cursor, until a restart");
    } finally {
      await close();
    }
  });

  it("a worker whose keyring was loaded before the job created its key finishes the job under that key", async () => {
    const [a, b] = (await workers(await dfx.fresh(), 2)) as [ContainDeps, ContainDeps];
    const ids = await usersWithSecrets(a, 1200);
    const job = await createContainJob(a, { levers: ["rotate-keys"], scope: { all: true }, actor: "t" });
    // Worker A creates the new key and moves the first 500 secrets; worker B, loaded before, carries on.
    assert.equal((await runJob(a, job.id, { stopAfterBatches: 1, worker: "a" })).status, "running");
    const newKey = await storedCurrentKey(a.database);
    assert.equal(a.keyring?.currentDataKeyId, newKey);
    const done = jobView(await runJob(b, job.id, { worker: "b" }));
    assert.equal(done.status, "done");
    assert.deepEqual(done.counts["rotate-keys"], { reencrypted: 1200 });
    // Was: 700 of 1200 secrets left under the retired key, and the job said done.
    await assertAllUnder(b, newKey, ids);
  });

  it("a job whose key another process superseded mid-way ends with every value under the newest key", async () => {
    const [a, other] = (await workers(await dfx.fresh(), 2)) as [ContainDeps, ContainDeps];
    const ids = await usersWithSecrets(a, 1200);
    const job = await createContainJob(a, { levers: ["rotate-keys"], scope: { all: true }, actor: "t" });
    assert.equal((await runJob(a, job.id, { stopAfterBatches: 1 })).status, "running");
    const newest = await (other.keyring as Keyring).rotateDataKey(); // e.g. a second rotate-keys job elsewhere
    assert.equal(jobView(await runJob(a, job.id)).status, "done");
    // Was: every value moved to the job's first key, which the other rotation had already retired.
    await assertAllUnder(a, newest, ids);
  });
});
