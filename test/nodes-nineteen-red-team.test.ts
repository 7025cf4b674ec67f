// Red team, round nineteen on two nodes: this session's new code on two Bulwark nodes behind a load balancer, one
// PostgreSQL schema (the private cluster), each node with its own app, keyring, HTTP server and clock (kept in step).
// What was attacked: (1) the one-step authenticator-app replacement (POST /auth/mfa/totp/replace and /replace/confirm;
// totp.beginReplacement / confirmReplacement; migrations 30 and 32), its confirmation on node A racing, at the same
// instant on node B, the old app's step-up, a password reset (with the old app's code or a recovery code), a
// require-mfa-reenrolment batch, and the same confirmation sent twice; (2) keyed flood control (Keyring.floodKey) counted
// by a node started before another rotated the master key and by one started after; (5) administrative role grants
// and their notices (63ac88c) raced on two nodes: two administrators granting at once, and a grant racing the undo of
// demote-inactive-admins, which hands the same role back. Passkey suspension races and a job creator demoted mid-batch
// were not attacked here (earlier rounds pin them: test/nodes-this-session-red-team.test.ts, insider-red-team.test.ts).
// The attackers: a thief holding the password and the owner's lost phone (the old app), sending each request to
// whichever node suits the race; the owner's own requests racing each other across the load balancer (a double
// submit); an intruder at an administrator's unlocked computer (or holding its token) making a grant while a responder
// restores administrators after a containment. Races are sent with Promise.all; where the order matters it is forced
// with a transaction held open at a known point (an audit append in flight) until both parties wait on it, with bounded
// polls. Each test asserts the secure behaviour; the one finding is fixed (its test says what was, "was: …"). Loopback and temp dirs only; skipped (loudly)
// when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { containDeps, createContainJob, createUndoJob, runJob } from "../src/contain/index.ts";
import { authFixture, Browser, HOST, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { rotateMasterKey } from "../src/store/key-store.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { holdOpen, until, waitingLocks } from "./helpers/held-transaction.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { on, twoNodeCluster } from "./helpers/two-nodes.ts";

const MASTER = testMasterKey("nodes-nineteen");
const unavailable = postgresUnavailable();
type Res = LightMyRequestResponse;

describe("red team nineteen: this session's new code on two nodes of one PostgreSQL schema", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  /** Two HTTP nodes on one fresh schema; `advance` moves both clocks (helpers such as withTOTP move node A's only). */
  const { twoServers } = twoNodeCluster("nodes_nt", MASTER);

  /** The assurance level of `b`'s session, or "signed out" when its cookie no longer signs anyone in. */
  async function aalOf(b: Browser): Promise<unknown> {
    const r = (await b.request("GET", "/auth/session")).json() as { authenticated: boolean; aal?: number };
    return r.authenticated ? r.aal : "signed out";
  }

  async function appRow(fx: AuthFixture, userId: string): Promise<{ confirmed: boolean; pending: boolean } | null> {
    const row = await fx.app.db.db.selectFrom("mfa_totp").select(["confirmed_at", "pending_created_at"]).where("user_id", "=", userId).executeTakeFirst();
    return row ? { confirmed: row.confirmed_at !== null, pending: row.pending_created_at !== null } : null;
  }

  async function eventsOf(fx: AuthFixture, type: string, subject: string): Promise<number> {
    const rows = await fx.app.db.db.selectFrom("audit_events").select("seq").where("type", "=", type).where("subject", "=", subject).execute();
    return rows.length;
  }

  const no5xx = (what: string, ...rs: Res[]): void => {
    for (const r of rs) assert.ok(r.statusCode < 500, `${what}: answered ${r.statusCode} ${r.body}`);
  };

  describe("replacing the authenticator app on node A while node B acts on the same account (migrations 30, 32)", () => {
    it("attack: the lost phone's holder stepping up with the old app on node B at the instant the owner swaps in the new app on node A never keeps an aal-2 session — whichever commits first, the step-up is lowered by the swap or loses its spend to it (ASVS 6.3.3, 7.4.3, 6.5.1)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const flows = authFlows(() => a);
        const owner = await flows.withTOTP("swap-stepup@example.org");
        advance(0);
        let current = owner.secret;
        const seen: string[] = [];
        // Five rounds: the hour's budget of replacements begun per account (both orders, three and two times).
        for (let round = 0; round < 5; round++) {
          // The thief (password + the old app) at the gate on node B; the owner's replacement begun on node A.
          const thief = b.browser({ newDevice: true });
          assert.equal((await thief.login(owner.email, owner.password)).json().mfaRequired, true);
          const begun = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
          assert.equal(begun.statusCode, 200, begun.body);
          const fresh = begun.json().secret as string;
          advance(STEP);
          const [tc, oc] = [await thief.csrf(), await owner.b.csrf()];
          const stepUp = (): Promise<Res> => thief.request("POST", "/auth/mfa/verify", { csrf: tc, body: { totp: totpCode(current, b.clock.now()) } });
          const swap = (): Promise<Res> => owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: oc, body: { code: totpCode(fresh, a.clock.now()) } });
          // Sent together; every other round the step-up leaves first.
          const [stepped, swapped] = round % 2 === 0 ? await Promise.all([stepUp(), swap()]) : await Promise.all([stepUp(), new Promise<Res>((r) => setImmediate(() => r(swap())))]);
          no5xx(`round ${round}`, stepped, swapped);
          const thiefAAL = await aalOf(thief);
          seen.push(`round ${round}: step-up ${stepped.statusCode}, swap ${swapped.statusCode}, thief at aal ${String(thiefAAL)}`);
          if (swapped.statusCode === 200) {
            current = fresh;
            assert.notEqual(thiefAAL, 2, `the old app's step-up kept aal 2 after the swap: ${seen.join("; ")}`);
          }
          advance(STEP);
        }
        assert.notEqual(current, owner.secret, `no swap went through: ${seen.join("; ")}`);
      } finally {
        await close();
      }
    });

    it("attack: a password reset completed on node B at the instant the owner's (or an intruder's) replacement is confirmed on node A leaves no replacement waiting, and a reset proven with the old app's code never stands beside a swap: one of the two is refused (ASVS 6.3.7, 7.4.3, 6.5.1)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const flows = authFlows(() => a);
        for (let round = 0; round < 4; round++) {
          const owner = await flows.withTOTP(`swap-reset${round}@example.org`);
          advance(0);
          const codes = (await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
          const begun = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
          assert.equal(begun.statusCode, 200, begun.body);
          const fresh = begun.json().secret as string;
          advance(STEP);
          const link = await flows.resetToken(owner.email);
          const oc = await owner.b.csrf();
          const withOldApp = round % 2 === 1;
          const factor = withOldApp ? { totp: totpCode(owner.secret, b.clock.now()) } : { recoveryCode: codes[0] };
          const [swapped, reset] = await Promise.all([
            owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: oc, body: { code: totpCode(fresh, a.clock.now()) } }),
            b.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: `copper meadow whistles softly ${round}`, ...factor } }),
          ]);
          no5xx(`round ${round}`, swapped, reset);
          const row = await appRow(a, owner.id);
          const seen = `round ${round} (${withOldApp ? "old app's code" : "recovery code"}): swap ${swapped.statusCode} ${swapped.body}; reset ${reset.statusCode} ${reset.body}; app ${JSON.stringify(row)}`;
          assert.ok(row?.confirmed, `the account was left with no app: ${seen}`);
          if (reset.statusCode === 200) {
            assert.equal(row?.pending, false, `a replacement outlived the reset: ${seen}`);
            assert.equal(await aalOf(owner.b), "signed out", `the replacing session outlived the reset: ${seen}`);
          }
          if (withOldApp) assert.ok(!(swapped.statusCode === 200 && reset.statusCode === 200), `the old app's code reset the password beside the swap that retired it: ${seen}`);
          advance(STEP);
        }
      } finally {
        await close();
      }
    });

    it("attack: a require-mfa-reenrolment batch run by node B while the replacement is confirmed on node A leaves no app, no waiting replacement and no session, and nothing deadlocks (ASVS 7.4.3, 6.3.7)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const flows = authFlows(() => a);
        for (let round = 0; round < 3; round++) {
          const owner = await flows.withTOTP(`swap-job${round}@example.org`);
          advance(0);
          const begun = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
          assert.equal(begun.statusCode, 200, begun.body);
          const fresh = begun.json().secret as string;
          advance(STEP);
          const deps = containDeps(b.app);
          const job = await createContainJob(deps, { levers: ["require-mfa-reenrolment"], scope: { ids: [owner.id] }, actor: "cli:responder" });
          const oc = await owner.b.csrf();
          const swap = (): Promise<Res> => owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: oc, body: { code: totpCode(fresh, a.clock.now()) } });
          const [swapped, ran] = await Promise.all([
            round === 1 ? new Promise<Res>((r) => setImmediate(() => r(swap()))) : swap(),
            runJob(deps, job.id, { worker: "server:b" }).then((j) => j.status as string, (e: unknown) => `failed: ${String(e)}`),
          ]);
          no5xx(`round ${round}`, swapped);
          const seen = `round ${round}: swap ${swapped.statusCode} ${swapped.body}; job ${ran}; app ${JSON.stringify(await appRow(a, owner.id))}`;
          assert.equal(ran, "done", seen);
          assert.equal(await appRow(a, owner.id), null, `an app (or its replacement) outlived the job: ${seen}`);
          assert.equal(await aalOf(owner.b), "signed out", `the replacing session outlived the job: ${seen}`);
          advance(STEP);
        }
      } finally {
        await close();
      }
    });

    it("attack: the same confirmation sent to both nodes at once (a double submit across the load balancer, codes of two steps) swaps once: one 200 (the other refused), one auth.mfa.replaced, one 'was replaced' notice (ASVS 6.3.7)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const flows = authFlows(() => a);
        for (let round = 0; round < 3; round++) {
          const owner = await flows.withTOTP(`swap-twice${round}@example.org`);
          advance(0);
          const begun = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
          const fresh = begun.json().secret as string;
          advance(STEP);
          const other = on(b, owner.b);
          const [oc, bc] = [await owner.b.csrf(), await other.csrf()];
          const [x, y] = await Promise.all([
            owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: oc, body: { code: totpCode(fresh, a.clock.now()) } }),
            other.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: bc, body: { code: totpCode(fresh, b.clock.now() - STEP) } }),
          ]);
          no5xx(`round ${round}`, x, y);
          await a.deliver();
          const seen = `round ${round}: node A ${x.statusCode} ${x.body}, node B ${y.statusCode} ${y.body}`;
          // The loser is refused: a wrong code for the swap it lost (401), or no replacement left to confirm (409).
          const statuses = [x.statusCode, y.statusCode];
          assert.equal(statuses.filter((st) => st === 200).length, 1, seen);
          assert.ok(statuses.every((st) => st === 200 || st === 401 || st === 409), seen);
          assert.equal(await eventsOf(a, "auth.mfa.replaced", owner.id), 1, seen);
          assert.equal(a.mailTo(owner.email).filter((m) => /authenticator app was replaced/.test(m.subject)).length, 1, seen);
          advance(STEP);
        }
      } finally {
        await close();
      }
    });
  });

  describe("keyed flood control counted by every node (Keyring.floodKey, 3be2a9f)", () => {
    it("attack: wrong authenticator codes spread over a node started before the master key was rotated and a node started after it count in one window: the sixth is refused on either node, and the owner's right code too until the window passes (ASVS 6.3.1, 2.4.1)", async () => {
      const { a, b, url, advance, close } = await twoServers();
      let c: AuthFixture | undefined;
      try {
        const flows = authFlows(() => a);
        const owner = await flows.withTOTP("flood-rotated@example.org");
        advance(0);
        // Node B rotates the master key (keys rotate-master); node A keeps running with the old one; node C starts with the new one.
        const next = Buffer.from(testMasterKey("nodes-nineteen rotated"), "base64");
        await rotateMasterKey(b.app.db, b.app.keyring, new Uint8Array(next));
        c = await authFixture({ BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: next.toString("base64") });
        c.clock.set(a.clock.now());
        const wrong = (code: string): string => String((Number(code) + 1) % 1_000_000).padStart(6, "0");
        const right = totpCode(owner.secret, a.clock.now());
        const gates = [await flows.pending(owner), await (async () => {
          const g = c.browser({ newDevice: true });
          assert.equal((await g.login(owner.email, owner.password)).json().mfaRequired, true);
          return g;
        })()];
        const answers: number[] = [];
        for (let i = 0; i < 6; i++) {
          const gate = gates[i % 2] as Browser;
          answers.push((await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrong(right) } })).statusCode);
        }
        const last = await (gates[1] as Browser).request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: right } });
        const seen = `answers ${JSON.stringify(answers)}, then the right code on node C ${last.statusCode}`;
        assert.deepEqual(answers, [401, 401, 401, 401, 401, 429], seen);
        assert.equal(last.statusCode, 429, seen);
      } finally {
        await c?.close();
        await close();
      }
    });
  });

  describe("administrative role grants raced on two nodes (63ac88c)", () => {
    /**
     * An administrator's API token on node A, used once (the token's hourly use sample is spent outside any race). The
     * administrator gets an authenticator app first: the MFA policy holds the token of one without a factor.
     */
    async function adminToken(fx: AuthFixture, adminId: string, name: string, probe: string): Promise<string> {
      await ensureSecondFactor(fx.app, adminId);
      const token = (await fx.app.accounts.tokens.create(adminId, { name, scopes: ["admin"] })).token;
      const warm = await fx.server.inject({ method: "GET", url: `/api/v1/users/${probe}`, headers: { host: HOST, authorization: `Bearer ${token}` } });
      assert.equal(warm.statusCode, 200, warm.body);
      return token;
    }

    function grant(fx: AuthFixture, token: string, userId: string, role: string): Promise<Res> {
      return fx.server.inject({ method: "POST", url: `/api/v1/users/${userId}/roles/${role}`, headers: { host: HOST, authorization: `Bearer ${token}` } });
    }

    async function noticesTo(fx: AuthFixture, address: string, kind: string): Promise<number> {
      return (await fx.app.db.db.selectFrom("outbox_messages").select("id").where("kind", "=", kind).where("to_address", "=", address).execute()).length;
    }

    it("attack: an administrator's API grant of a role the undo of demote-inactive-admins is handing back on the other node neither deadlocks with it nor records or mails a grant it did not make: the grant's event and notices commit after its row, only when it inserted it (ASVS 8.2.2, 16.3.1) (was: recorded and mailed before its insert, so the two took the role row and the audit log in opposite orders: a deadlock, or a changed:false grant credited to the administrator in the log and both mailboxes)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const chief = await a.user("chief@example.org", { roles: ["admin"] });
        const deputy = await a.user("deputy@example.org", { roles: ["admin"] });
        // The deputy, idle for 100 days, was demoted by a containment job; the responder now undoes it on node B.
        advance(100 * 86_400_000);
        const deps = containDeps(b.app);
        const job = await createContainJob(deps, { levers: ["demote-inactive-admins"], scope: { ids: [deputy.id] }, actor: "cli:responder" });
        assert.equal((await runJob(deps, job.id)).status, "done");
        assert.deepEqual(await a.app.accounts.roles.rolesOf(deputy.id), [], "sanity: the deputy was demoted");
        const undo = await createUndoJob(deps, job.id, "cli:responder");
        const token = await adminToken(a, chief.id, "chief", deputy.id);

        // What an append in flight looks like (another request's event, not yet committed): the undo on node B has
        // handed the role back (its row inserted, uncommitted) and waits to append its batch event; the grant on node A
        // has found the role not held (the undo's row is not committed) and waits to append api.role.granted.
        const held = await holdOpen(a.app.db, (trx) => a.app.audit.appendIn(trx, { type: "redteam.held", actor: "test" }));
        let granted: Res | undefined;
        let undone = "";
        try {
          const base = await waitingLocks(a);
          const undoing = runJob(deps, undo.id, { worker: "server:b" }).then((j) => `${j.status}`, (e: unknown) => `failed: ${(e as Error).message}`);
          await until(async () => (await waitingLocks(a)) >= base + 1, 10_000);
          const granting = grant(a, token, deputy.id, "admin");
          await until(async () => (await waitingLocks(a)) >= base + 2, 10_000);
          await held.commit();
          [granted, undone] = await Promise.all([granting, undoing]);
        } finally {
          await held.commit().catch(() => {});
        }
        const changed = granted?.statusCode === 200 ? (granted.json() as { changed: boolean }).changed : null;
        const recorded = await eventsOf(a, "api.role.granted", deputy.id);
        const told = { given: await noticesTo(a, chief.email, "security.admin-role-given"), received: await noticesTo(a, deputy.email, "security.admin-role-received") };
        const seen = `grant ${granted?.statusCode} ${granted?.body}; undo ${undone}; api.role.granted ${recorded}; notices ${JSON.stringify(told)}; deputy's roles ${JSON.stringify(await a.app.accounts.roles.rolesOf(deputy.id))}`;
        // Secure: no deadlock on either side, and the grant's record and notices only for the grant that inserted the row.
        assert.ok(granted !== undefined && granted.statusCode < 500, `the grant failed: ${seen}`);
        assert.equal(undone, "done", `the undo failed: ${seen}`);
        const expected = changed === true ? 1 : 0;
        // The deputy is told once whichever handed the role back: the grant that inserted it, or the undo (a CLI-made
        // undo tells only the account that holds the role again).
        assert.deepEqual({ recorded, ...told }, { recorded: expected, given: expected, received: 1 }, `the grant's record and notices do not match what it changed (changed: ${String(changed)}): ${seen}`);
      } finally {
        await close();
      }
    });

    it("attack: two administrators granting one account the same administrative role at the same instant on two nodes make one grant: one changed:true, one api.role.granted, one notice to its administrator and one to the account (ASVS 6.3.7, 16.2.1)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const first = await a.user("first-admin@example.org", { roles: ["admin"] });
        const second = await a.user("second-admin@example.org", { roles: ["admin"] });
        advance(0);
        for (let round = 0; round < 4; round++) {
          const mate = await a.user(`mate${round}@example.org`);
          const [ta, tb] = [await adminToken(a, first.id, `a${round}`, mate.id), await adminToken(b, second.id, `b${round}`, mate.id)];
          const [x, y] = await Promise.all([grant(a, ta, mate.id, "admin"), grant(b, tb, mate.id, "admin")]);
          no5xx(`round ${round}`, x, y);
          const changed = [x, y].map((r) => (r.json() as { changed: boolean }).changed);
          const given = (await noticesTo(a, first.email, "security.admin-role-given")) + (await noticesTo(a, second.email, "security.admin-role-given"));
          const seen = `round ${round}: changed ${JSON.stringify(changed)}; api.role.granted ${await eventsOf(a, "api.role.granted", mate.id)}; notices to the mate ${await noticesTo(a, mate.email, "security.admin-role-received")}; to the administrators ${given} in all`;
          assert.deepEqual(changed.filter(Boolean).length, 1, seen);
          assert.equal(await eventsOf(a, "api.role.granted", mate.id), 1, seen);
          assert.equal(await noticesTo(a, mate.email, "security.admin-role-received"), 1, seen);
          assert.equal(given, round + 1, seen);
        }
      } finally {
        await close();
      }
    });
  });
});
