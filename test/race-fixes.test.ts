// What the fixes of test/race-red-team.test.ts promise beyond its findings: a request that makes a credential from a
// session (an email-change link, a re-authentication's new session) while a revocation of that session is open waits
// for it, then is refused with the 401 of a revoked session, with nothing written; the same for a revoke-sessions job
// over ALL users (it raises the global stamp and locks no account row); and, on both dialects, a rotation that finds
// the old session stamped after its token was validated is refused, while a login presenting it is not.
// Two-node tests as in the race file: the revoking transaction is held open at its audit append while the thief's
// request runs, with bounded waits. Loopback and temp dirs only; PostgreSQL parts skipped (loudly) when not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { Browser, HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { raiseStamp, revokedBefore, userScope } from "../src/accounts/sessions/revocation.ts";
import { createSessionManager } from "../src/accounts/sessions/session-manager.ts";
import { createUserStore } from "../src/accounts/users/user-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { heldAt } from "./helpers/held-transaction.ts";
import { twoNodeCluster } from "./helpers/two-nodes.ts";

type Res = LightMyRequestResponse;
const show = (r: Res | null | undefined): string => (r ? `${r.statusCode} ${r.body.slice(0, 200)}` : "no answer");
const codeOf = (r: Res): string | undefined => (r.json() as { error?: { code?: string } }).error?.code;
const MASTER = testMasterKey("race-fixes");
const unavailable = postgresUnavailable();

async function signedIn(b: Browser): Promise<boolean> {
  const r = await b.request("GET", "/auth/session");
  return r.statusCode === 200 && (r.json() as { authenticated?: boolean }).authenticated === true;
}

describe("requests in flight wait for a revocation of their session, then are refused (two PostgreSQL nodes)", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  const { twoServers } = twoNodeCluster("race_fix", MASTER);
  let made = 0;

  /** The victim's link rows and the mails to the thief's mailbox: none may exist after a refused request. */
  async function leftBehind(fx: AuthFixture, userId: string, mailbox: string): Promise<{ links: number; mails: number }> {
    const links = await fx.app.db.db.selectFrom("email_change_tokens").select("id").where("user_id", "=", userId).execute();
    const mails = await fx.app.db.db.selectFrom("outbox_messages").select("id").where("to_address", "=", mailbox).execute();
    return { links: links.length, mails: mails.length };
  }

  it("an email change in flight while a help desk ends the account's sessions waits for it and answers 401 (session revoked), no link written, nothing mailed, no deadlock (ASVS 7.4.1, 7.4.5)", async () => {
    const { a, b, advance, close } = await twoServers();
    try {
      const n = ++made;
      const victim = await a.user(`fix-helpdesk-${n}@example.org`);
      const helpdesk = await a.user(`fix-desk-${n}@example.org`, { roles: ["admin"] });
      const helpdeskToken = await authFlows(() => a).tokenFor(helpdesk.id, ["admin"]);
      const mailbox = `fix-thief-${n}@evil.example`;
      const thief = b.browser({ newDevice: true });
      assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
      const { revoked, request, waited } = await heldAt(a, "user.sessions-revoked",
        () => {
          advance(5);
          return thief.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: mailbox } });
        },
        () => a.server.inject({ method: "POST", url: `/api/v1/users/${victim.id}/sessions/revoke`, headers: { host: HOST, authorization: `Bearer ${helpdeskToken}` } }));
      assert.equal(revoked.statusCode, 200, revoked.body);
      const change = await request;
      assert.ok(waited, `the email change waited for the revocation (${show(change)})`);
      assert.equal(change.statusCode, 401, show(change));
      assert.equal(codeOf(change), "BULWARK_ERR_SESSION_REVOKED", show(change));
      assert.deepEqual(await leftBehind(a, victim.id, mailbox), { links: 0, mails: 0 });
    } finally {
      await close();
    }
  });

  it("an email change in flight while a revoke-sessions job over ALL users is created waits for the global stamp and answers 401, no link written (ASVS 7.4.1, 7.4.5)", async () => {
    const { a, b, advance, close } = await twoServers();
    try {
      const n = ++made;
      const victim = await a.user(`fix-all-email-${n}@example.org`);
      const mailbox = `fix-thief-all-${n}@evil.example`;
      const thief = b.browser({ newDevice: true });
      assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
      const { revoked: job, request, waited } = await heldAt(a, "contain.revocation.raised",
        () => {
          advance(5);
          return thief.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: mailbox } });
        },
        () => createContainJob(containDeps(a.app), { levers: ["revoke-sessions"], scope: { all: true }, actor: "responder" }));
      const change = await request;
      assert.ok(waited, `the email change waited for the job's creation (${show(change)})`);
      assert.equal(change.statusCode, 401, show(change));
      assert.equal(codeOf(change), "BULWARK_ERR_SESSION_REVOKED", show(change));
      assert.equal((await runJob(containDeps(a.app), job.id)).status, "done");
      assert.deepEqual(await leftBehind(a, victim.id, mailbox), { links: 0, mails: 0 });
    } finally {
      await close();
    }
  });

  it("a re-authentication in flight while a revoke-sessions job over ALL users is created waits for the global stamp, answers 401 (session revoked), and leaves no session behind (ASVS 7.4.1, 7.2.4)", async () => {
    const { a, b, advance, close } = await twoServers();
    try {
      const n = ++made;
      const victim = await a.user(`fix-all-reauth-${n}@example.org`);
      const thief = b.browser({ newDevice: true });
      assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
      const { revoked: job, request, waited } = await heldAt(a, "contain.revocation.raised",
        () => {
          advance(5);
          return thief.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: victim.password } });
        },
        () => createContainJob(containDeps(a.app), { levers: ["revoke-sessions"], scope: { all: true }, actor: "responder" }));
      const reauth = await request;
      assert.ok(waited, `the re-authentication waited for the job's creation (${show(reauth)})`);
      assert.equal(reauth.statusCode, 401, show(reauth));
      assert.equal(codeOf(reauth), "BULWARK_ERR_SESSION_REVOKED", show(reauth));
      assert.equal((await runJob(containDeps(a.app), job.id)).status, "done");
      assert.equal(await signedIn(thief), false, "the thief's session is over");
      const rows = await a.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", victim.id).execute();
      assert.equal(rows.length, 0, "no session of the victim is left after the job");
    } finally {
      await close();
    }
  });
});

forEachDialect("a rotation re-reads the stamps in force for the session it replaces", (fx) => {
  async function setup(): Promise<{ clock: ManualClock; userId: string; sessions: ReturnType<typeof createSessionManager> }> {
    const database = await fx.fresh();
    const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
    const outcome = await migrate(database, clock, MIGRATIONS);
    if (outcome.error) throw outcome.error;
    const user = await createUserStore({ database, clock, random: systemRandom }).create({ email: "rotating@example.org" });
    return { clock, userId: user.id, sessions: createSessionManager({ database, clock, random: systemRandom }) };
  }

  // The stamp is raised after the old token was validated: here inside the rotation's own transaction, through `first`,
  // so that the order is fixed on both dialects (the two-node tests above hold a real revocation open instead).
  it("a re-authentication or step-up whose session was stamped after its token was validated is refused as revoked, and the old session is not replaced (ASVS 7.4.1)", async () => {
    const { clock, userId, sessions } = await setup();
    const old = await sessions.createSession(userId);
    clock.advance(1000);
    for (const options of [{ aal: "kept" as const }, { aal: 2 as const, keepLifetime: true, factor: "totp" }]) {
      await assert.rejects(
        sessions.rotate(old.token, { ...options, first: async (t) => void (await raiseStamp(t, userScope(userId), revokedBefore(clock.now()), clock.now())) }),
        { code: "BULWARK_ERR_SESSION_REVOKED" }, `rotation to aal ${String(options.aal)}`);
      // Rolled back with the rotation (stamp included): the old session stands as it was, not replaced.
      assert.equal((await sessions.validate(old.token)).valid, true);
    }
  });

  it("a login presenting a cookie stamped meanwhile is not refused: it stands on the password it just proved", async () => {
    const { clock, userId, sessions } = await setup();
    const old = await sessions.createSession(userId);
    clock.advance(1000);
    const issued = await sessions.rotate(old.token, {
      userId, aal: 1,
      first: async (t) => {
        await raiseStamp(t, userScope(userId), revokedBefore(clock.now()), clock.now());
        clock.advance(1); // the login's session is dated after the stamp, as one that comes after a revocation
      },
    });
    assert.equal((await sessions.validate(issued.token)).valid, true, "the login's new session");
    assert.equal((await sessions.validate(old.token)).valid, false, "the cookie it presented");
  });
});
