// Red team: this session's features on two Bulwark nodes behind a load balancer, one PostgreSQL database (the private
// cluster). The attacker holds a user's password and a copy of their passkey (a cloned authenticator) and sends each
// request to whichever node suits the race, while the owner's genuine key asserts on the other node at the same moment.
// What was attacked here: passkey suspension (webauthn.ts checkAssertion, migration 29) and the lowering of the sessions
// a cloned passkey raised (second-factor.ts proveFactor), raced by the clone's spend and by the clone's session rotation
// on the other node. Each race is forced: a transaction held open at a known point (a row locked FOR UPDATE) until the
// other node's request waits on it, with bounded polls, so a fix that makes one side wait still ends the test. Each test
// asserts the secure behaviour. The round's two findings are fixed; their tests say what they were ("was: …").
// Loopback and temp dirs only; skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sql } from "kysely";
import type { AuthenticationResponseJSON } from "../src/accounts/mfa/index.ts";
import type { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { ORIGIN, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { holdOpen, until, waitingLocks } from "./helpers/held-transaction.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { twoNodeCluster } from "./helpers/two-nodes.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";

const MASTER = testMasterKey("nodes-this-session");
const unavailable = postgresUnavailable();

type RequestOptions = Parameters<SoftAuthenticator["authenticate"]>[0];

describe("red team: this session's features on two nodes of one PostgreSQL database", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  /** Two HTTP nodes on one fresh schema. */
  const { twoServers } = twoNodeCluster("nodes_ts", MASTER);

  /** A password-only login on `fx`'s node: held at the second-factor gate. */
  async function gateOn(fx: AuthFixture, u: { email: string; password: string }): Promise<Browser> {
    const b = fx.browser();
    const r = await b.login(u.email, u.password);
    assert.equal(r.json().mfaRequired, true, r.body);
    return b;
  }

  /** Assertion options asked for in `gate`'s session (its challenge), and its CSRF token, fetched ahead of a race. */
  async function primed(gate: Browser): Promise<{ options: RequestOptions; csrf: string }> {
    const options = await gate.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal(options.statusCode, 200, options.body);
    return { options: options.json() as RequestOptions, csrf: await gate.csrf() };
  }

  function verify(gate: Browser, csrf: string, webauthn: AuthenticationResponseJSON): ReturnType<Browser["request"]> {
    return gate.request("POST", "/auth/mfa/verify", { csrf, body: { webauthn } });
  }

  async function aalOf(b: Browser): Promise<unknown> {
    return (await b.request("GET", "/auth/session")).json().aal;
  }

  async function passkeyRow(fx: AuthFixture, userId: string): Promise<{ counter: number; suspendedAt: unknown }> {
    const row = await fx.app.db.db.selectFrom("webauthn_credentials").select(["counter", "suspended_at"]).where("user_id", "=", userId).executeTakeFirstOrThrow();
    return { counter: Number(row.counter), suspendedAt: row.suspended_at };
  }

  async function failures(fx: AuthFixture, userId: string): Promise<Array<Record<string, unknown>>> {
    const rows = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.mfa.failed").where("subject", "=", userId).orderBy("seq").execute();
    return rows.map((r) => JSON.parse(r.data) as Record<string, unknown>);
  }

  describe("passkey suspension raced across nodes (WebAuthn L3 §6.1.1, migration 29)", () => {
    it("attack: a clone that jumps its counter ahead and races the owner's genuine key on the other node does not keep its step-up: the owner's lost spend finds a higher counter spent, the passkey is suspended and the clone's session lowered (WebAuthn L3 §6.1.1; ASVS 6.3.3) (was: the loser was recorded as a replay, the clone stayed at aal 2 and the passkey usable)", async () => {
      const { a, b, close } = await twoServers();
      try {
        const flows = authFlows(() => a);
        const u = await flows.withPasskey("race-spend@example.org");
        u.key.counter = 9;
        // The owner signs in once: the stored counter is 10.
        const warm = await gateOn(a, u);
        const w = await primed(warm);
        assert.equal((await verify(warm, w.csrf, u.key.authenticate(w.options, ORIGIN))).statusCode, 200);
        assert.equal((await passkeyRow(a, u.id)).counter, 10);

        // The owner at the gate on node A, the thief (password and a copy of the key) at the gate on node B; both
        // read the stored counter (10) before either spends.
        const owner = await gateOn(a, u);
        const thief = await gateOn(b, u);
        const [po, pt] = [await primed(owner), await primed(thief)];
        const ownerAssertion = u.key.authenticate(po.options, ORIGIN); // 11: genuine, the owner's next
        const cloneAssertion = u.key.authenticate(pt.options, ORIGIN, { counter: 500 }); // the clone, jumped ahead
        const credentialId = ownerAssertion.id;

        // A transaction in flight on the passkey's row (what another spend of it looks like before it commits):
        // both step-ups pass their checks and queue behind it, the clone's first.
        const held = await holdOpen(a.app.db, (trx) => sql`SELECT id FROM webauthn_credentials WHERE id = ${credentialId} FOR UPDATE`.execute(trx));
        let cloneRes: Awaited<ReturnType<Browser["request"]>> | undefined;
        let ownerRes: Awaited<ReturnType<Browser["request"]>> | undefined;
        try {
          const base = await waitingLocks(a);
          const clone = verify(thief, pt.csrf, cloneAssertion);
          await until(async () => (await waitingLocks(a)) >= base + 1, 10_000);
          const genuine = verify(owner, po.csrf, ownerAssertion);
          await until(async () => (await waitingLocks(a)) >= base + 2, 10_000);
          await held.commit();
          [cloneRes, ownerRes] = await Promise.all([clone, genuine]);
        } finally {
          await held.commit().catch(() => {});
        }
        const row = await passkeyRow(a, u.id);
        const thiefAAL = await aalOf(thief);
        const recorded = (await failures(a, u.id)).at(-1);
        const seen = `clone ${cloneRes?.statusCode}, owner ${ownerRes?.statusCode} ${ownerRes?.body}; stored counter ${row.counter}, suspended_at ${String(row.suspendedAt)}; ` +
          `the thief's session is aal ${String(thiefAAL)}; the owner's refusal was recorded as ${JSON.stringify(recorded)}`;
        // Secure: the owner's genuine signature with counter 11 met a stored 500 — a regression, as in the unraced path
        // (which suspends the passkey and lowers every session it raised). Losing the spend to it is the same signal.
        assert.notEqual(row.suspendedAt, null, `the passkey was not suspended: ${seen}`);
        assert.notEqual(thiefAAL, 2, `the clone kept aal 2: ${seen}`);
      } finally {
        await close();
      }
    });

    it("attack: a clone already stepped up on node B that signs out everywhere else (a rotation keeping aal 2) while the owner's genuine key is caught on node A keeps no session at aal 2: the lowering takes the user's session turn, and a suspended passkey holds no rotation up (ASVS 6.3.3, 7.4.3) (was: the lowering skipped the rotated row, which kept aal 2 on the suspended passkey)", async () => {
      const { a, b, close } = await twoServers();
      try {
        const flows = authFlows(() => a);
        const u = await flows.withPasskey("race-rotation@example.org");
        u.key.counter = 9;
        // The thief steps up first on node B with the clone, its counter jumped ahead (stored: 500).
        const thief = await gateOn(b, u);
        const pt = await primed(thief);
        const stepped = await verify(thief, pt.csrf, u.key.authenticate(pt.options, ORIGIN, { counter: 500 }));
        assert.equal(stepped.statusCode, 200, stepped.body);
        assert.equal(await aalOf(thief), 2);

        // The owner at the gate on node A, challenge in hand; and one more session of the user (another browser of
        // the owner's) whose row is held by a transaction in flight.
        const owner = await gateOn(a, u);
        const po = await primed(owner);
        const thiefCSRF = await thief.csrf();
        const other = await a.app.accounts.sessions.createSession(u.id, { aal: 1 });
        const held = await holdOpen(a.app.db, (trx) => sql`SELECT id FROM sessions WHERE id = ${other.session.id} FOR UPDATE`.execute(trx));
        let signOut: Awaited<ReturnType<Browser["request"]>> | undefined;
        let caught: Awaited<ReturnType<Browser["request"]>> | undefined;
        try {
          const base = await waitingLocks(a);
          // Node B: the thief's "sign out everywhere else" has replaced its own session row (deleted, uncommitted) and
          // waits ending the other sessions.
          const out = thief.request("DELETE", "/auth/sessions", { csrf: thiefCSRF });
          await until(async () => (await waitingLocks(a)) >= base + 1, 10_000);
          // Node A: the owner's genuine key (counter 11, behind 500) is caught: the passkey is suspended and the
          // sessions it raised are to be lowered.
          const genuine = verify(owner, po.csrf, u.key.authenticate(po.options, ORIGIN, { counter: 11 }));
          await until(async () => (await waitingLocks(a)) >= base + 2, 10_000);
          await held.commit();
          [signOut, caught] = await Promise.all([out, genuine]);
        } finally {
          await held.commit().catch(() => {});
        }
        const row = await passkeyRow(a, u.id);
        const recorded = (await failures(a, u.id)).at(-1);
        const live = await a.app.db.db.selectFrom("sessions").select(["id", "aal", "factor"]).where("user_id", "=", u.id).execute();
        const thiefAAL = await aalOf(thief);
        const seen = `sign-out ${signOut?.statusCode} ${signOut?.body}; owner ${caught?.statusCode}; refusal recorded as ${JSON.stringify(recorded)}; ` +
          `suspended_at ${String(row.suspendedAt)}; the user's sessions: ${JSON.stringify(live)}`;
        assert.equal(recorded?.["reason"], "counter-regressed", `sanity: the owner's key was caught: ${seen}`);
        assert.notEqual(row.suspendedAt, null, `sanity: the passkey is suspended: ${seen}`);
        // Secure: once the passkey is suspended no session rests on it at aal 2 — the thief's new cookie included.
        assert.notEqual(thiefAAL, 2, `the thief's session kept aal 2 after its passkey was suspended: ${seen}`);
        assert.deepEqual(live.filter((s) => Number(s.aal) === 2), [], seen);
      } finally {
        await close();
      }
    });
  });
});
