// Red-team round "bounded waits d": the PostgreSQL wait bounds (every pooled connection starts with lock_timeout
// BULWARK_DB_LOCK_TIMEOUT_SECONDS, LOCK_TIMEOUT_MS = 5 s by default, 2 s in this file; past it a request answers 503
// BULWARK_ERR_DB_BUSY, a CLI exits 3; a maintenance step has its own STEP_LOCK_TIMEOUT_MS), part four. The attacker
// is the environment at the worst moment, or anyone who can hold a row
// past the bound (a frozen node inside a transaction, a DBA's open session): a second, superuser pg client on the same
// schema holds the audit head or a row while Bulwark's work waits on it. Not repeated: login, reset completion,
// containment, settings leaks (round one); the outbox's sent mark, the TOTP step-up, last-seen/last-used touches,
// rotate-master (round two); password change, sign out others, sign-up, email change, role revocation, recovery codes,
// token mint (round three).
// What must hold: nothing half-done, failures named and retryable, no request waiting twice the bound for bookkeeping.
// Tried: a fresh API token's first change of the hour behind a held audit head (api.token.used, swallowed, then the
// change's own record); a fresh token's reads behind a held head, one after the other; a browser presenting a session
// that has idled out while a frozen node holds its row; the maintenance pass with one expired session row held.
// Held: the maintenance pass (every other step runs; since fix 4 the sessions step skips the held row, fails no more).
// Found (fixed since: (1)+(2) authenticate's api.token.used append waits at most 200 ms on PostgreSQL, its own
// transaction's lock_timeout, and after a busy failure the next tries do not wait at all until one is written;
// (3) check deletes a closed session best effort, skipping a locked row, and answers signed out; (4) purgeExpired
// deletes the expired rows it can lock (FOR UPDATE SKIP LOCKED), a held one goes in a later pass): (1) a token's first change of the hour behind a held head answers 503 only after about twice the bound: the
// swallowed api.token.used append waits the full bound, then the change's own record waits the bound again; (2) while the head
// is held every read of that token waits the full bound on the same bookkeeping (a failed record is given back, so the
// next call tries again and waits again): a script polling with it gets every answer a bound late; (3) a session that has
// idled out, presented while its row is held, answers 503 "could not finish; try again" after the bound instead of the
// plain "signed out" its dates already decided: validate awaits the row's DELETE before it answers; (4) one held expired
// session row makes the maintenance pass purge no expired session at all (the step is one DELETE of every expired row):
// for as long as a frozen node holds one row, every pass fails the step and the table grows.
// Measured without a stopwatch: while the DBA's client holds the head or row for the whole of a request, a statement
// of that request that waited on it is one that failed lock_timeout (55P03), having waited the lock_timeout in force on
// its connection (test/helpers/lock-waits.ts records each, with that bound): "a bound, not two" is one statement
// meeting the pool's bound, "no read waits the bound" is none meeting it.
// Loopback and temp dirs only; skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { watchLockWaits, type LockWait } from "./helpers/lock-waits.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { HOLD_AUDIT_HEAD, pgSites, holdRows } from "./helpers/pg-site.ts";

const MASTER = testMasterKey("bounded-waits-d-red-team");
// The first attack waits out the bound: a 2 s bound for the file's sites.
const { unavailable, site, lockBoundMs } = pgSites("bwaitd", MASTER, { lockTimeoutSeconds: 2 });
const skip = unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {};
const MINUTE = 60_000;

/** The statements `waits` names, with the lock_timeout each waited out, for a message. */
const named = (waits: readonly LockWait[]): string => JSON.stringify(waits.map((w) => `${w.code} after ${w.boundMs} ms: ${w.sql}`));

const codeOf = (r: LightMyRequestResponse): string | undefined => (r.json() as { error?: { code?: string } }).error?.code;

async function eventsOf(fx: AuthFixture, type: string, subject: string): Promise<number> {
  return (await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", type).where("subject", "=", subject).execute()).length;
}

describe("an API token's first calls of the hour behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: an administrator's fresh token revokes a role (its first call of the hour) while the audit head is held past the bound — the 503 comes after one bound, the api.token.used append waiting only briefly; the retry revokes it (ASVS 16.5.3, 15.4.4) (was: 503 only after about 10 s, the swallowed api.token.used append waiting the full bound first)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const admin = (await fx.user("token-admin@example.org", { roles: ["admin"] })).id;
      const adminToken = await flows.tokenFor(admin, ["admin"]);
      const target = (await fx.user("role-holder@example.org")).id;
      await fx.app.accounts.roles.create({ name: "auditors", permissions: ["accounts.read"] }, "test");
      await fx.app.accounts.roles.grant(target, "auditors", "test");
      const revoke = (): Promise<LightMyRequestResponse> => fx.server.inject({ method: "DELETE", url: `/api/v1/users/${target}/roles/auditors`, headers: { host: HOST, authorization: `Bearer ${adminToken}` } });
      const release = await holdRows(dba, HOLD_AUDIT_HEAD);
      const watch = watchLockWaits({ ignore: [dba] });
      let answer: { value: LightMyRequestResponse; waits: LockWait[] };
      try {
        answer = await watch.during(revoke);
      } finally {
        watch.restore();
        await release();
      }
      assert.equal(answer.value.statusCode, 503, `control: refused as busy: ${answer.value.body}`);
      assert.equal(codeOf(answer.value), "BULWARK_ERR_DB_BUSY", answer.value.body);
      assert.equal((await fx.app.accounts.roles.rolesOf(target)).includes("auditors"), true, "control: nothing half-done, the role still held");
      const retry = await revoke();
      assert.equal(retry.statusCode, 200, `control: the retry answers: ${retry.body}`);
      assert.equal(await eventsOf(fx, "role.revoked", target), 1, "control: role.revoked recorded once");
      // The head was held throughout: each statement that waited on it failed 55P03 after its lock_timeout. The change's
      // own record waits the pool's bound once; the api.token.used append, its own short wait (TOKEN_USE_LOCK_WAIT_MS).
      const fullBound = answer.waits.filter((w) => w.boundMs >= lockBoundMs);
      assert.equal(fullBound.length, 1,
        `DELETE /api/v1/users/:id/roles/:role with a fresh token waited the full ${lockBoundMs} ms bound ${fullBound.length} time(s) before its 503 ` +
        `(statements that met lock_timeout: ${named(answer.waits)}): ` +
        "authenticate (src/http/auth/authenticate.ts) awaits the sampled api.token.used append (recordSampled, its failure swallowed) before the route runs; " +
        "behind the held head that bookkeeping waits the full lock_timeout and fails, then the revocation's own role.revoked append waits the bound again: " +
        "every first call of a token's hour waits twice the bound for a 503, and a client timeout under twice the bound sees no answer at all");
    } finally {
      await close();
    }
  });

  it("attack: a script polls with a fresh read token while the audit head is held past the bound — the reads answer 200, and the token's use record (a failed one is given back) makes no call wait the full bound; the use is recorded once the head is free (ASVS 16.5.3, 16.3.2) (was: every read waited the full 5 s bound)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const reader = (await fx.user("token-reader@example.org", { roles: ["admin"] })).id;
      const token = await flows.tokenFor(reader, ["accounts.read"]);
      const read = (): Promise<LightMyRequestResponse> => fx.server.inject({ method: "GET", url: "/api/v1/roles", headers: { host: HOST, authorization: `Bearer ${token}` } });
      const release = await holdRows(dba, HOLD_AUDIT_HEAD);
      const watch = watchLockWaits({ ignore: [dba] });
      const calls: Array<{ value: LightMyRequestResponse; waits: LockWait[] }> = [];
      try {
        calls.push(await watch.during(read));
        fx.clock.advance(1_000);
        calls.push(await watch.during(read));
      } finally {
        watch.restore();
        await release();
      }
      for (const [i, c] of calls.entries()) assert.equal(c.value.statusCode, 200, `control: read ${i + 1} answers: ${c.value.body}`);
      // The head was held throughout: a statement that waited on it failed 55P03 after the lock_timeout in force.
      const fullBound = calls.map((c) => c.waits.filter((w) => w.boundMs >= lockBoundMs).length);
      assert.deepEqual(fullBound, calls.map(() => 0),
        `reads with the token waited the full ${lockBoundMs} ms bound while the head was held (statements of each read that met the pool's ` +
        `lock_timeout: ${fullBound.join(", ")}; all that met one: ${calls.map((c) => named(c.waits)).join(" / ")}): authenticate awaits the ` +
        "api.token.used append on each sampled call; when it fails the sample is given back (tokenUses.giveBack), so the next call is sampled again and waits " +
        "lock_timeout again: bookkeeping whose failure is swallowed turns a held head into a delay of the full bound on every token request, reads included");
      // Nothing was half-done: the use is still recorded once the head is free.
      const free = await read();
      assert.equal(free.statusCode, 200, free.body);
      assert.ok(await eventsOf(fx, "api.token.used", reader) >= 1, "the token's use is recorded once the head is free");
    } finally {
      await close();
    }
  });
});

describe("an idled-out session presented while its row is held (PostgreSQL)", skip, () => {
  it("attack: a browser presents a session that has idled out while a frozen node holds its row — it is told at once that it is signed out, not 503 \"try again\" after the bound for the delete of a row its dates already ended (ASVS 7.3.1, 16.5.3) (was: 503 after the bound, validate awaiting the held row's DELETE)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const owner = await flows.signedIn("idle-owner@example.org");
      const idle = fx.app.accounts.sessions.policy.idleTimeoutMs;
      fx.clock.advance(idle + MINUTE);
      const release = await holdRows(dba, "SELECT id FROM sessions WHERE user_id = $1 FOR UPDATE", [owner.id]);
      const watch = watchLockWaits({ ignore: [dba] });
      let answer: { value: LightMyRequestResponse; waits: LockWait[] };
      try {
        answer = await watch.during(() => owner.b.request("GET", "/auth/session"));
      } finally {
        watch.restore();
        await release();
      }
      const authenticated = answer.value.statusCode === 200 && (answer.value.json() as { authenticated?: boolean }).authenticated === true;
      assert.equal(authenticated, false, `control: the idled-out session is not honoured: ${answer.value.body}`);
      // The row was held throughout: a statement that waited on it failed 55P03; none may have.
      assert.ok(answer.value.statusCode !== 503 && answer.waits.length === 0,
        `GET /auth/session with an idled-out session answered ${answer.value.statusCode} (${answer.value.body.slice(0, 200)}), its statements ` +
        `that waited out lock_timeout on the held row: ${named(answer.waits)}: ` +
        "sessions.validate (session-manager.ts check) awaits deleteSession for a session sessionClosedBy already judged over; behind the held row that " +
        "DELETE waits lock_timeout and its 55P03 becomes 503 BULWARK_ERR_DB_BUSY \"try again\", where the answer (signed out, cookie cleared) needed no write: " +
        "the maintenance pass deletes expired rows anyway");
    } finally {
      await close();
    }
  });
});

describe("the maintenance pass with one expired session row held (PostgreSQL)", skip, () => {
  it("attack: a frozen node holds one expired session's row through a maintenance pass — the sessions step skips the held row and purges the other within the step bound, and every other step of the pass runs (ASVS 16.5.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const held = await flows.signedIn("held-expired@example.org");
      await flows.signedIn("other-expired@example.org");
      fx.clock.advance(fx.app.accounts.sessions.policy.idleTimeoutMs + MINUTE);
      // Started after the clock moved: the pass sees no jump, and judges the rows by the time it shows.
      const maintenance = startMaintenance(fx.app, { intervalMs: 600_000, firstPassDelayMs: 600_000 });
      const release = await holdRows(dba, "SELECT id FROM sessions WHERE user_id = $1 FOR UPDATE", [held.id]);
      const watch = watchLockWaits({ ignore: [dba] });
      let pass: { value: Record<string, number>; waits: LockWait[] };
      try {
        pass = await watch.during(() => maintenance.runOnce());
      } finally {
        watch.restore();
        await release();
        await maintenance.stop();
      }
      // Since purgeExpired skips a locked row (was: the step failed whole, -1): the other expired session goes now.
      assert.equal(pass.value["sessions"], 1, `control: the sessions step skipped the held row and purged the other: ${JSON.stringify(pass.value)}`);
      const failed = Object.entries(pass.value).filter(([, n]) => n === -1);
      assert.deepEqual(failed, [], `only the sessions step fails: ${JSON.stringify(pass.value)}`);
      assert.ok(Object.keys(pass.value).length > 5, `the pass went on past the failing step: ${JSON.stringify(pass.value)}`);
      // The row was held through the pass: a statement that waited on it failed 55P03 (after STEP_LOCK_TIMEOUT_MS or the
      // pool's bound); none of the pass's may have.
      assert.deepEqual(pass.waits, [], `the pass waited on the one held row (statements that met lock_timeout: ${named(pass.waits)})`);
      // The next pass, the row free, purges it.
      const again = startMaintenance(fx.app, { intervalMs: 600_000, firstPassDelayMs: 600_000 });
      try {
        const next = await again.runOnce();
        assert.equal(next["sessions"], 1, `the next pass purges the row once held: ${JSON.stringify(next)}`);
      } finally {
        await again.stop();
      }
    } finally {
      await close();
    }
  });

  it("attack: a frozen node holds one expired session's row through a maintenance pass — the other expired sessions are purged all the same, so one held row does not fail the step every pass for as long as it is held (ASVS 7.3.1, 16.5.3) (was: the step failed every pass and purged nothing)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const held = await flows.signedIn("frozen-row@example.org");
      const others = await Promise.all(["gone-a@example.org", "gone-b@example.org"].map((e) => flows.signedIn(e)));
      fx.clock.advance(fx.app.accounts.sessions.policy.idleTimeoutMs + MINUTE);
      const release = await holdRows(dba, "SELECT id FROM sessions WHERE user_id = $1 FOR UPDATE", [held.id]);
      const results: Array<number | undefined> = [];
      try {
        for (let i = 0; i < 2; i++) {
          const maintenance = startMaintenance(fx.app, { intervalMs: 600_000, firstPassDelayMs: 600_000 });
          try {
            results.push((await maintenance.runOnce())["sessions"]);
          } finally {
            await maintenance.stop();
          }
          fx.clock.advance(MINUTE);
        }
      } finally {
        await release();
      }
      const left = await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "in", others.map((o) => o.id)).execute();
      assert.deepEqual({ stillStored: left.length, failedPasses: results.filter((n) => n === -1).length }, { stillStored: 0, failedPasses: 0 },
        `with one expired row held, ${left.length} other expired session(s) stayed stored and the sessions step reported ${JSON.stringify(results)} over two passes: ` +
        "purgeExpired (session-manager.ts) is one DELETE of every row not open; it waits on the held row, STEP_LOCK_TIMEOUT_MS rolls it back whole, and " +
        "every pass fails the same way for as long as the row is held (a frozen node: hours), purging nothing (no SKIP LOCKED, no batches)");
    } finally {
      await close();
    }
  });
});
