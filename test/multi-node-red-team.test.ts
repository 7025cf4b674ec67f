// Red team: several Bulwark nodes on one PostgreSQL database behind a load balancer (docs/ARCHITECTURE.md, "several
// can serve HTTP and run jobs against one PostgreSQL"). Each node is a separate openApp (its own keyring, audit log,
// job runner and clock) on one schema; HTTP nodes are real servers (authFixture → buildServer). The attacker is someone
// whose access was just taken away on one node — an administrator demoted, an API token revoked, an account locked, a
// user's sessions ended by containment, a key rotated because it leaked — and who sends the next request to another
// node; or two operators (or a rolling deploy) acting on one containment job from two nodes at once. What was attacked:
// per-node caches of permissions, stamps and tokens; flood-control counts split across nodes; the audit chain and its
// checkpoints appended from two nodes at once; the signer a node keeps for appends inside transactions; and a
// rotate-keys job run by two workers at once. Each test is an attack that must fail on correct code; "attack: …
// (was: …)" failed on the day it was written, before its fix. Loopback and temp dirs only; skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { totpCode } from "../src/accounts/mfa/testing/setup.ts";
import { openApp, type OpenedApp } from "../src/app/open-app.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { rotateSigningKey } from "../src/audit/rotate-signing-key.ts";
import { containDeps, createContainJob, runJob, type ContainDeps } from "../src/contain/index.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { authFixture, HOST, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { twoNodeCluster } from "./helpers/two-nodes.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

const NOW = Date.UTC(2026, 11, 10, 9);
const HOUR = 3_600_000;
const QUIET = { BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
const MASTER = testMasterKey("multi-node");

const unavailable = postgresUnavailable();

describe("several nodes on one PostgreSQL database", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  const { freshSchema, twoServers } = twoNodeCluster("multinode", MASTER);
  let root: string;
  let pairs = 0;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "bulwark-multi-node-"));
  });
  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Two library nodes (no HTTP) on one fresh schema: `a` initialised it, `b` joined; each has its own clock. */
  async function twoApps(): Promise<{ a: OpenedApp; b: OpenedApp; clockA: ManualClock; clockB: ManualClock; close(): Promise<void> }> {
    const url = await freshSchema();
    const n = ++pairs;
    const env = (name: string): Record<string, string> => ({ ...QUIET, BULWARK_DATA_DIR: join(root, `${name}-${n}`), BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: MASTER });
    const clockA = new ManualClock(NOW);
    const clockB = new ManualClock(NOW);
    const a = await openApp({ env: env("a"), mode: "init", clock: clockA, actor: "server:a" });
    const b = await openApp({ env: env("b"), mode: "open", clock: clockB, actor: "server:b" });
    return {
      a, b, clockA, clockB,
      async close() {
        await b.close();
        await a.close();
      },
    };
  }

  function api(node: AuthFixture, method: "GET" | "POST" | "DELETE", url: string, auth: { token?: string; cookie?: string }, body?: unknown): Promise<LightMyRequestResponse> {
    return node.server.inject({
      method, url,
      headers: { host: HOST, ...(auth.token ? { authorization: `Bearer ${auth.token}` } : {}), ...(auth.cookie ? { cookie: `${SESSION_COOKIE}=${auth.cookie}` } : {}) },
      ...(body === undefined ? {} : { payload: body as object }),
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Findings
  // ---------------------------------------------------------------------------------------------------------------

  it("attack: a rotate-keys job run by two nodes at once (a retried POST answered by another node, or a rolling deploy resuming it) leaves no data key unnamed: the worker whose preparation lost the race records the key it made (`contain.job.prepared`, raced), and that newer key is the one every secret moves to (ASVS 16.3.3, 16.2.1, 11.2.2) (was: the key in use was recorded by no event; the job's prepared event named the other one)", async () => {
    const { a, b, clockA, close } = await twoApps();
    try {
      // A TOTP secret enrolled through node A: the value the rotation must move.
      const ana = await a.accounts.users.create({ email: "ana@example.org" });
      const { secret } = await a.accounts.mfa.totp.begin(ana.id, "ana@example.org");
      assert.equal(await a.accounts.mfa.totp.confirm(ana.id, totpCode(secret, clockA.now())), true);
      const job = await createContainJob(containDeps(a), { levers: ["rotate-keys"], scope: { all: true }, actor: "usr_incident_lead" });

      // Both nodes pick the job up while it is still pending: A (which took the POST) and B (the client's retry with the
      // same Idempotency-Key landed there and "started the pending job", src/http/api/contain.ts replayed(); or B came up
      // in a rolling deploy and resumed it, src/http/run-server.ts resumeContainment). The interleaving forced here is
      // one a real pair of nodes can produce: A creates its key, B creates its key, A records the preparation first.
      let bRotated!: () => void;
      const bHasRotated = new Promise<void>((resolve) => (bRotated = resolve));
      let aFinished!: () => void;
      const aHasFinished = new Promise<void>((resolve) => (aFinished = resolve));
      const runs: { b?: Promise<{ status: string }> } = {};
      const created: string[] = [];
      const depsB: ContainDeps = {
        ...containDeps(b),
        keyring: withRotation(b.keyring, async (rotate) => {
          const id = await rotate();
          created.push(id);
          bRotated();
          await aHasFinished; // B is slower to reach its commit: A locks the job row first
          return id;
        }),
      };
      const depsA: ContainDeps = {
        ...containDeps(a),
        keyring: withRotation(a.keyring, async (rotate) => {
          const id = await rotate();
          created.push(id);
          runs.b = runJob(depsB, job.id, { worker: "server:b" });
          await bHasRotated;
          return id;
        }),
      };
      const endedA = await runJob(depsA, job.id, { worker: "server:a" });
      aFinished();
      assert.ok(runs.b, "node B picked the job up");
      const endedB = await runs.b;
      assert.equal(endedA.status, "done");
      assert.equal(endedB.status, "done");
      assert.equal(created.length, 2, "both workers created a data key");

      const keys = await a.db.db.selectFrom("keyring_keys").select(["id", "status", "created_at"]).where("purpose", "=", "data").orderBy("created_at").execute();
      const current = keys.filter((k) => k.status === "current").map((k) => k.id);
      const totp = await a.db.db.selectFrom("mfa_totp").select("secret_ct").where("user_id", "=", ana.id).executeTakeFirstOrThrow();
      const underKey = Keyring.keyIdOf(totp.secret_ct);
      // The data keys the audit log records the creation of: `keyring.key-created` (init) and each rotate-keys
      // preparation's `newDataKey`.
      const events = await a.db.db.selectFrom("audit_events").select(["type", "subject", "data"]).orderBy("seq").execute();
      const recorded = new Set<string>();
      for (const e of events) {
        if (e.type === "keyring.key-created") recorded.add(e.subject);
        if (e.type === "contain.job.prepared") {
          const key = (JSON.parse(e.data) as { newDataKey?: unknown }).newDataKey;
          if (typeof key === "string") recorded.add(key);
        }
      }
      const prepared = events.filter((e) => e.type === "contain.job.prepared").map((e) => e.data);
      assert.deepEqual(current, [underKey], "sanity: the secret sits under the current key");
      const unrecorded = keys.map((k) => k.id).filter((id) => !recorded.has(id));
      assert.deepEqual(unrecorded, [],
        `data key(s) ${unrecorded.join(", ")} exist (the current key is ${current.join(", ")}, which every secret is sealed under) but no audit event ` +
          `records their creation; the job's preparation events say: ${prepared.join(" | ")}`);
    } finally {
      await close();
    }
  });

  it("attack: after the audit signing key is rotated on node A (it leaked), node B's containment worker signs the audit log's checkpoints with the new key, although it appends only inside transactions: the signer is fetched again, through the caller's transaction, once older than the keyring's freshness window (ASVS 11.2.2, 16.4.2) (was: signed with the retired key an hour later)", async () => {
    const { a, b, clockA, clockB, close } = await twoApps();
    try {
      // Node B's audit log, as openApp builds it, on a short checkpoint schedule so a small job reaches it (the
      // default, every 1000 events, gives the same result on a job of a few thousand users).
      const auditB = new AuditLog({ database: b.db, clock: clockB, random: b.random, signer: () => b.keyring.signer(), checkpointEvery: 10 });
      await auditB.append({ type: "server.start", actor: "system", data: { node: "b" } }); // an ordinary append: B fetches its signer
      for (let i = 0; i < 30; i++) await b.accounts.users.create({ email: `u${i}@example.org` });

      const leaked = (await a.keyring.signer()).keyId;
      // Rotated as `audit rotate-signing-key` does: the key, its event and its first checkpoint in one commit.
      const rotation = await rotateSigningKey({ database: a.db, keyring: a.keyring, audit: a.audit }, "cli:test");
      const rotated = rotation.to?.keyId as string;
      assert.notEqual(rotated, leaked);
      clockA.advance(HOUR);
      clockB.advance(HOUR);
      const rotatedBy = clockA.now();

      // An hour later, node B runs a containment job (every batch appends its event inside the batch's transaction):
      // lock every account, one per batch.
      const deps: ContainDeps = { ...containDeps(b), audit: auditB };
      const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { all: true }, actor: "usr_incident_lead", batchSize: 1 });
      assert.equal((await runJob(deps, job.id, { worker: "server:b" })).status, "done");

      const since = await b.db.db.selectFrom("audit_checkpoints").select(["seq", "key_id", "at"]).where("at", ">=", rotatedBy).orderBy("seq").execute();
      assert.ok(since.length >= 2, `the job's events reached the checkpoint schedule (${since.length} checkpoints)`);
      assert.equal((await b.keyring.signer()).keyId, rotated, "node B's keyring itself has learned of the rotation: the stale signer is the audit log's");
      const stale = since.filter((c) => c.key_id !== rotated);
      assert.deepEqual(stale.map((c) => `#${c.seq}:${c.key_id}`), [],
        `checkpoints signed an hour after ${leaked} was retired (current: ${rotated}) still use it: ${stale.map((c) => `#${c.seq} by ${c.key_id}`).join(", ")}`);
    } finally {
      await close();
    }
  });

  // ---------------------------------------------------------------------------------------------------------------
  // Defences that hold (pinned: each is a per-node cache waiting to happen)
  // ---------------------------------------------------------------------------------------------------------------

  it("attack: what node A takes away — an admin role, an API token, an account (locked), a user's sessions (containment) — is refused by node B's very next request, after B had just served the same credential (ASVS 7.4.1, 8.3.1)", async () => {
    const { a, b, close } = await twoServers();
    try {
      const app = a.app;
      const rootUser = await a.user("root@example.org", { roles: ["admin"] });
      await ensureSecondFactor(app, rootUser.id); // the MFA policy holds an administrator's token while the account has no factor
      const rootToken = (await app.accounts.tokens.create(rootUser.id, { name: "root", scopes: ["admin"] })).token;
      await app.accounts.roles.create({ name: "ops-admin", permissions: ["admin"] }, "test");
      await app.accounts.roles.create({ name: "reader", permissions: ["accounts.read"] }, "test");

      // 1. A demoted administrator: token and browser session both served by B first, then refused by B.
      const demoted = await a.user("demoted@example.org", { roles: ["ops-admin"] });
      await ensureSecondFactor(app, demoted.id);
      const demotedToken = (await app.accounts.tokens.create(demoted.id, { name: "d", scopes: ["admin"] })).token;
      const demotedSession = (await b.app.accounts.sessions.createSession(demoted.id, { aal: 2 })).token;
      assert.equal((await api(b, "GET", "/api/v1/roles", { token: demotedToken })).statusCode, 200);
      assert.equal((await api(b, "GET", "/api/v1/roles", { cookie: demotedSession })).statusCode, 200);
      const rootSession = (await a.app.accounts.sessions.createSession(rootUser.id, { aal: 2 })).token;
      const csrf = (await a.server.inject({ method: "GET", url: "/auth/csrf", headers: { host: HOST, cookie: `${SESSION_COOKIE}=${rootSession}` } })).json() as { token: string };
      const demote = await a.server.inject({
        method: "DELETE", url: `/api/v1/users/${demoted.id}/roles/ops-admin`,
        headers: { host: HOST, cookie: `${SESSION_COOKIE}=${rootSession}`, "x-csrf-token": csrf.token, origin: ORIGIN },
      });
      assert.equal(demote.statusCode, 200, demote.body);
      assert.equal((await api(b, "GET", "/api/v1/roles", { token: demotedToken })).statusCode, 403);
      assert.equal((await api(b, "GET", "/api/v1/roles", { cookie: demotedSession })).statusCode, 403);

      // 2. A revoked API token.
      const reader = await a.user("reader@example.org", { roles: ["reader"] });
      const readerToken = await app.accounts.tokens.create(reader.id, { name: "r", scopes: ["accounts.read"] });
      assert.equal((await api(b, "GET", "/api/v1/roles", { token: readerToken.token })).statusCode, 200);
      assert.equal((await api(a, "DELETE", `/api/v1/tokens/${readerToken.info.id}`, { token: readerToken.token })).statusCode, 204);
      assert.equal((await api(b, "GET", "/api/v1/roles", { token: readerToken.token })).statusCode, 401);

      // 3. A locked account: its other token and its session.
      const locked = await a.user("locked@example.org", { roles: ["reader"] });
      const lockedToken = (await app.accounts.tokens.create(locked.id, { name: "l", scopes: ["accounts.read"] })).token;
      const lockedSession = (await b.app.accounts.sessions.createSession(locked.id, { aal: 2 })).token;
      assert.equal((await api(b, "GET", "/api/v1/roles", { token: lockedToken })).statusCode, 200);
      assert.equal((await api(b, "GET", "/api/v1/roles", { cookie: lockedSession })).statusCode, 200);
      const lock = await api(a, "POST", `/api/v1/users/${locked.id}/lock`, { token: rootToken }, { reason: "compromised" });
      assert.equal(lock.statusCode, 200, lock.body);
      assert.equal((await api(b, "GET", "/api/v1/roles", { token: lockedToken })).statusCode, 401);
      assert.equal((await api(b, "GET", "/api/v1/roles", { cookie: lockedSession })).statusCode, 401);

      // 4. Sessions ended by a containment job created on A: refused on B as soon as A answered 202, before any batch.
      const stolen = await a.user("stolen@example.org", { roles: ["reader"] });
      const stolenSession = (await b.app.accounts.sessions.createSession(stolen.id, { aal: 2 })).token;
      assert.equal((await api(b, "GET", "/api/v1/roles", { cookie: stolenSession })).statusCode, 200);
      const contain = await api(a, "POST", "/api/v1/contain/jobs", { token: rootToken }, { levers: ["revoke-sessions"], scope: { ids: [stolen.id] } });
      assert.equal(contain.statusCode, 202, contain.body);
      assert.equal((await api(b, "GET", "/api/v1/roles", { cookie: stolenSession })).statusCode, 401);
    } finally {
      await close();
    }
  });

  it("attack: wrong passwords spread over two nodes share one account window: five are checked in all, not five per node, and then the right password is refused on both (ASVS 6.3.1)", async () => {
    const { a, b, close } = await twoServers();
    try {
      const victim = await a.user("victim@example.org");
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) {
        const node = i % 2 === 0 ? a : b;
        statuses.push((await node.browser().login(victim.email, `wrong guess ${i} of many`)).statusCode);
      }
      assert.deepEqual(statuses.filter((s) => s !== 429).length, 5, `answers: ${statuses.join(", ")}`);
      assert.equal((await a.browser().login(victim.email, victim.password)).statusCode, 429);
      assert.equal((await b.browser().login(victim.email, victim.password)).statusCode, 429);
    } finally {
      await close();
    }
  });

  it("attack: two nodes appending to the audit log at once — plain appends and appends inside transactions, each node signing scheduled checkpoints with its own keyring — leave one chain that verifies on both nodes, checkpoints on schedule (ASVS 16.4.2)", async () => {
    const { a, b, clockA, clockB, close } = await twoApps();
    try {
      // openApp's own log (every 1000) wrote init's events (one per migration, so more with each) before its first
      // checkpoint: the schedule here keeps that first run inside verify's allowance (1.5 × every), at least 20.
      const initEvents = Number((await a.db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow()).seq);
      const every = Math.max(20, Math.ceil(initEvents / 1.5) + 1);
      const node = (app: OpenedApp, clock: ManualClock): AuditLog =>
        new AuditLog({ database: app.db, clock, random: app.random, signer: () => app.keyring.signer(), checkpointEvery: every });
      const auditA = node(a, clockA);
      const auditB = node(b, clockB);
      assert.ok(await auditA.checkpoint());
      const writer = async (audit: AuditLog, app: OpenedApp, label: string): Promise<void> => {
        for (let i = 0; i < 60; i++) {
          if (i % 3 === 0) await app.db.transaction((trx) => audit.appendIn(trx, { type: "multi-node.test", actor: label, data: { i } }));
          else await audit.append({ type: "multi-node.test", actor: label, data: { i } });
        }
      };
      await Promise.all([writer(auditA, a, "a"), writer(auditB, b, "b"), writer(auditA, a, "a2"), writer(auditB, b, "b2")]);
      const count = await a.db.db.selectFrom("audit_events").select((eb) => eb.fn.countAll<string>().as("n")).where("type", "=", "multi-node.test").executeTakeFirstOrThrow();
      assert.equal(Number(count.n), 240, "no event lost");
      for (const [name, audit] of [["a", auditA], ["b", auditB]] as const) {
        const report = await audit.verify();
        assert.equal(report.ok, true, `verify on node ${name}: ${JSON.stringify(report.problem)}`);
        assert.ok(report.checkpointsChecked >= Math.floor(240 / every), `node ${name} checked ${report.checkpointsChecked} signed checkpoints (one every ${every})`);
      }
    } finally {
      await close();
    }
  });
});

/** `ring` with rotateDataKey replaced by `wrap(original)`; every other member is the real keyring's. */
function withRotation(ring: Keyring, wrap: (rotate: () => Promise<string>) => Promise<string>): Keyring {
  return new Proxy(ring, {
    get(target, prop) {
      if (prop === "rotateDataKey") return () => wrap(() => target.rotateDataKey());
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
