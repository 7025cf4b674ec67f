// One rule for "this session is still open": containment's dry runs and its levers' real counts count the sessions
// that sessions.list and validate find open under the session policy in force (stored expiry, the absolute lifetime in
// force, the idle timeout in force), not every stored row. On SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { it } from "node:test";
import { createSessionManager, type SessionManager } from "../src/accounts/sessions/session-manager.ts";
import { createContainJob, dryRunContain, jobView, runJob, type ContainDeps } from "../src/contain/index.ts";
import { openContainFixture, seedContainUsers, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect, type DialectFixture } from "./helpers/dialects.ts";

const NOW = Date.UTC(2026, 10, 20);
const MIN = 60_000;
const HOUR = 60 * MIN;

// The policy in force: the absolute lifetime shortened from 12 hours to 2 after a breach
// (BULWARK_SESSION_ABSOLUTE_MINUTES=120), the idle timeout 30 minutes.
const IN_FORCE = { absoluteTimeoutMs: 2 * HOUR, idleTimeoutMs: 30 * MIN };

interface Seeded {
  fx: ContainFixture;
  deps: ContainDeps;
  sessions: SessionManager;
  ids: string[];
  tokens: string[];
}

/**
 * Five users; their sessions issued under the old 12-hour lifetime, then dated: usr_0000's over by the idle timeout,
 * usr_0001's by the shortened absolute lifetime (its stored expiry still hours away), usr_0002's by its stored
 * expiry (created under a 1-hour lifetime); usr_0003 holds one open session and one over by the idle timeout;
 * usr_0004 none. One session is open, of one user.
 */
async function seed(dfx: DialectFixture): Promise<Seeded> {
  const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
  const ids = await seedContainUsers(fx, NOW, 5);
  const issuer = createSessionManager({ database: fx.database, clock: fx.clock, random: fx.random });
  const dated = [
    { user: 0, createdAt: NOW - 60 * MIN, lastSeenAt: NOW - 31 * MIN, expiresAt: NOW - 60 * MIN + 12 * HOUR },
    { user: 1, createdAt: NOW - 3 * HOUR, lastSeenAt: NOW - MIN, expiresAt: NOW - 3 * HOUR + 12 * HOUR },
    { user: 2, createdAt: NOW - 90 * MIN, lastSeenAt: NOW - MIN, expiresAt: NOW - 30 * MIN },
    { user: 3, createdAt: NOW - 10 * MIN, lastSeenAt: NOW - MIN, expiresAt: NOW - 10 * MIN + 12 * HOUR },
    { user: 3, createdAt: NOW - 100 * MIN, lastSeenAt: NOW - 40 * MIN, expiresAt: NOW - 100 * MIN + 12 * HOUR },
  ];
  const tokens: string[] = [];
  for (const d of dated) {
    const { token, session } = await issuer.createSession(ids[d.user] as string, { aal: 1 });
    await fx.database.db.updateTable("sessions").set({ created_at: d.createdAt, last_seen_at: d.lastSeenAt, expires_at: d.expiresAt }).where("id", "=", session.id).execute();
    tokens.push(token);
  }
  fx.clock.advance(1);
  const sessions = createSessionManager({ database: fx.database, clock: fx.clock, random: fx.random, policy: IN_FORCE });
  return { fx, deps: { ...fx, sessionPolicy: sessions.policy }, sessions, ids, tokens };
}

/** What sessions.list finds open: how many sessions, and of how many users. */
async function listedOpen(s: Seeded): Promise<{ users: number; sessions: number }> {
  const lists = await Promise.all(s.ids.map((id) => s.sessions.list(id)));
  return { users: lists.filter((l) => l.length > 0).length, sessions: lists.reduce((n, l) => n + l.length, 0) };
}

forEachDialect("one rule for an open session", (dfx) => {
  // By ids (batches over the users) and --all (one whole-table step): both count by the rule.
  for (const [label, scope] of [["by ids", "ids"], ["--all (one whole-table step)", "all"]] as const) {
    it(`revoke-sessions ${label}: the dry run and the job count the sessions sessions.list finds open, not the ones over by idle timeout, shortened lifetime or stored expiry (was: every stored row, 5 sessions of 4 users)`, async () => {
      const s = await seed(dfx);
      assert.deepEqual(await listedOpen(s), { users: 1, sessions: 1 });
      const request = { levers: ["revoke-sessions"], scope: scope === "ids" ? { ids: s.ids } : { all: true as const }, actor: "t" };
      const report = await dryRunContain(s.deps, request);
      const counts = report.levers["revoke-sessions"]?.counts;
      assert.deepEqual({ users: counts?.["users"], sessions: counts?.["sessions"] }, await listedOpen(s));
      const job = await createContainJob(s.deps, request);
      const view = jobView(await runJob(s.deps, job.id));
      assert.equal(view.status, "done");
      assert.deepEqual(view.counts["revoke-sessions"], { users: 1, sessions: 1 });
      // Every row is gone all the same: the ones over were dead already, and are not left behind.
      assert.equal((await s.fx.database.db.selectFrom("sessions").select("id").execute()).length, 0);
    });
  }

  it("invalidate-passwords: the sessions its dry run promises to end and the ones its job reports ended are the open ones (was: 5)", async () => {
    const s = await seed(dfx);
    const request = { levers: ["invalidate-passwords"], scope: { ids: s.ids }, actor: "t" };
    const report = await dryRunContain(s.deps, request);
    assert.equal(report.levers["invalidate-passwords"]?.counts["sessions"], (await listedOpen(s)).sessions);
    const job = await createContainJob(s.deps, request);
    const view = jobView(await runJob(s.deps, job.id));
    assert.equal(view.status, "done");
    assert.equal(view.counts["invalidate-passwords"]?.["sessions"], 1);
  });

  it("require-mfa-reenrolment: the sessions of factor holders it counts, dry and real, are the open ones (was: 5)", async () => {
    const s = await seed(dfx);
    for (const id of s.ids) {
      await s.fx.database.db.insertInto("mfa_recovery_codes").values({ id: `rc_${id}`, user_id: id, code_hash: "x".repeat(64), created_at: NOW - HOUR, used_at: null }).execute();
    }
    const request = { levers: ["require-mfa-reenrolment"], scope: { ids: s.ids }, actor: "t" };
    const report = await dryRunContain(s.deps, request);
    assert.equal(report.levers["require-mfa-reenrolment"]?.counts["sessions"], (await listedOpen(s)).sessions);
    const job = await createContainJob(s.deps, request);
    const view = jobView(await runJob(s.deps, job.id));
    assert.equal(view.status, "done");
    assert.equal(view.counts["require-mfa-reenrolment"]?.["sessions"], 1);
  });

  it("a dry run counts as open exactly the sessions validate accepts, and counts the same after validate ended the others (was: 5 counted, 1 accepted)", async () => {
    const s = await seed(dfx);
    const request = { levers: ["revoke-sessions"], scope: { ids: s.ids }, actor: "t" };
    const before = (await dryRunContain(s.deps, request)).levers["revoke-sessions"]?.counts["sessions"];
    const verdicts = await Promise.all(s.tokens.map((t) => s.sessions.validate(t)));
    assert.deepEqual(verdicts.map((v) => (v.valid ? "open" : v.reason)), ["idle-expired", "absolute-expired", "absolute-expired", "open", "idle-expired"]);
    assert.equal(before, verdicts.filter((v) => v.valid).length);
    assert.equal((await dryRunContain(s.deps, request)).levers["revoke-sessions"]?.counts["sessions"], before);
  });

  it("a contain deps without a session policy judges by the app's defaults (12 hours, 30 minutes idle): the shortened lifetime is the one thing it cannot know", async () => {
    const s = await seed(dfx);
    const request = { levers: ["revoke-sessions"], scope: { ids: s.ids }, actor: "t" };
    const { sessionPolicy: _inForce, ...defaults } = s.deps;
    const counts = (await dryRunContain(defaults, request)).levers["revoke-sessions"]?.counts;
    // usr_0001's session, over only by the shortened lifetime, counts under the default one; the open one counts too.
    assert.deepEqual({ users: counts?.["users"], sessions: counts?.["sessions"] }, { users: 2, sessions: 2 });
  });
});
