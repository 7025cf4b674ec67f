// PostgreSQL parity of the single-use and counted things, written as attacks that must fail. SQLite runs one write
// transaction at a time, so a check-then-write of one request can never interleave with another's; PostgreSQL runs
// them side by side under READ COMMITTED, over several pool connections. Every test here runs the app's own HTTP
// routes (or its services) on one private PostgreSQL cluster and races requests with Promise.all: single-use factors
// and links spent twice, caps and limits overshot, counters that undercount, revocations that miss a row in flight,
// uniqueness decided by a case, and what depends on the dialect (LIKE escaping, expiry at the same millisecond, NUL).
// Where a race needs both requests past their checks before either writes, a second connection holds
// `LOCK TABLE users IN SHARE MODE` (reads pass, writes wait) until both wait on it: the interleaving is forced,
// not hoped for. Skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import pg from "pg";
import { usableAdmins } from "../src/accounts/roles/index.ts";
import { identifierKey } from "../src/accounts/users/normalise.ts";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { MAX_WEBAUTHN_CREDENTIALS, sessionChallengeContext } from "../src/accounts/mfa/index.ts";
import { authFixture, ORIGIN, totpCode, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, EMAIL_LINK, RESET_LINK, STEP } from "./helpers/auth-flows.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { postgresUnavailable, startPostgres, type PgCluster } from "./helpers/postgres.ts";
import { testMasterKey } from "./helpers/master-key.ts";


type Response = LightMyRequestResponse;
const statuses = (rs: Response[]): number[] => rs.map((r) => r.statusCode).sort((a, b) => a - b);
const bodies = (rs: Response[]): string => rs.map((r) => `${r.statusCode} ${r.body.slice(0, 200)}`).join(" | ");
const codeOf = (r: Response): string | undefined => (r.json() as { error?: { code?: string } }).error?.code;

const unavailable = postgresUnavailable();

describe("single-use and counted things raced on PostgreSQL", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  let cluster: PgCluster;
  let fx: AuthFixture;
  let authURL: string;
  let api: APIFixture;
  let apiURL: string;

  before(async () => {
    const started = await startPostgres();
    assert.ok(started, "PostgreSQL did not start");
    cluster = started;
    authURL = await cluster.createDatabase(`race_auth_${process.pid}`);
    apiURL = await cluster.createDatabase(`race_api_${process.pid}`);
    [fx, api] = await Promise.all([
      authFixture({ BULWARK_DATABASE_URL: authURL, BULWARK_MASTER_KEY: testMasterKey(5), BULWARK_REGISTRATION: "open" }),
      openAPIFixture({ databaseURL: apiURL }),
    ]);
  });
  after(async () => {
    await fx?.close();
    await api?.close();
    await cluster?.stop();
  });

  // ---- helpers over the /auth fixture ----

  const { signedIn, withTOTP, pending, tokenIn, resetToken } = authFlows(() => fx);



  async function liveSessions(userId: string): Promise<number> {
    return (await fx.app.accounts.sessions.list(userId)).length;
  }

  /**
   * Runs `start` while another connection holds `users` in SHARE mode: every SELECT passes, every INSERT or UPDATE of
   * a user waits. Released once `waiters` writes wait on it (or after 3 s, should a fix make them wait elsewhere).
   */
  async function withUserWritesHeld<T>(url: string, waiters: number, start: () => Array<Promise<T>>): Promise<T[]> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    let started: Array<Promise<T>> = [];
    try {
      await client.query("BEGIN");
      await client.query("LOCK TABLE users IN SHARE MODE");
      started = start();
      const deadline = Date.now() + 3000;
      for (;;) {
        const { rows } = await client.query<{ n: string }>("SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = 'users'::regclass");
        if (Number(rows[0]?.n) >= waiters || Date.now() > deadline) break;
        await sleep(20);
      }
    } finally {
      await client.query("COMMIT").catch(() => {});
      await client.end();
    }
    return Promise.all(started);
  }

  // ---- second factors ----

  it("attack: one recovery code raced over two step-ups (two pending sessions) and a reset completion is spent exactly once, never a 500 (ASVS 6.5.1)", async () => {
    const u = await withTOTP("pg-recovery-race@example.org");
    const codes = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const token = await resetToken(u.email);
    const [p1, p2] = [await pending(u), await pending(u)];
    const code = codes[0] as string;
    const rs = await Promise.all([
      p1.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: code } }),
      p2.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: code } }),
      fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "saffron ladder tides at noon", recoveryCode: code } }),
    ]);
    assert.deepEqual(statuses(rs), [200, 401, 401], bodies(rs));
    assert.equal((await fx.app.accounts.mfa.factors(u.id)).recoveryCodes, 9, "one code used, once");
  });

  it("attack: one TOTP code raced over a step-up, a re-authentication and a reset completion is accepted once (ASVS 6.5.1, 6.5.5)", async () => {
    const u = await withTOTP("pg-totp-race@example.org");
    const token = await resetToken(u.email);
    const p = await pending(u);
    const csrf = await u.b.csrf();
    const code = totpCode(u.secret, fx.clock.now());
    const rs = await Promise.all([
      p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } }),
      u.b.request("POST", "/auth/reauthenticate", { csrf, body: { password: u.password, totp: code } }),
      fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "granite orchard ninety lamps", totp: code } }),
    ]);
    assert.deepEqual(statuses(rs), [200, 401, 401], bodies(rs));
    const row = await fx.app.db.db.selectFrom("mfa_totp").select("last_step").where("user_id", "=", u.id).executeTakeFirstOrThrow();
    assert.equal(Number(row.last_step), Math.floor(fx.clock.now() / STEP), "the step is recorded as used");
    fx.clock.advance(STEP);
  });

  it("attack: one TOTP code sent on two pending sessions at once steps up exactly one, and each session stays single (ASVS 6.5.1, 7.2.4)", async () => {
    const u = await withTOTP("pg-totp-two@example.org");
    const [p1, p2] = [await pending(u), await pending(u)];
    const before = await liveSessions(u.id);
    const code = totpCode(u.secret, fx.clock.now());
    const rs = await Promise.all([p1, p2].map((p) => p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } })));
    assert.deepEqual(statuses(rs), [200, 401], bodies(rs));
    const aals = await Promise.all([p1, p2].map(async (p) => (await p.request("GET", "/auth/session")).json().aal as number));
    assert.deepEqual(aals.sort(), [1, 2]);
    assert.equal(await liveSessions(u.id), before, "the step-up replaced its session, it did not add one");
    fx.clock.advance(STEP);
  });

  it("attack: two step-ups raced on one pending session (two recovery codes) leave one session, not two, and spend one code (ASVS 7.2.4, 6.5.1)", async () => {
    const u = await withTOTP("pg-stepup-twice@example.org");
    const codes = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const p = await pending(u);
    const before = await liveSessions(u.id);
    const csrf = await p.csrf();
    const rs = await Promise.all([codes[0], codes[1]].map((recoveryCode) => p.request("POST", "/auth/mfa/verify", { csrf, body: { recoveryCode } })));
    assert.deepEqual(statuses(rs), [200, 401], bodies(rs));
    const loser = rs.find((r) => r.statusCode === 401) as Response;
    assert.equal(codeOf(loser), "BULWARK_ERR_SESSION_REPLACED", loser.body);
    assert.equal(await liveSessions(u.id), before, "one pending session became one aal-2 session");
    assert.equal((await fx.app.accounts.mfa.factors(u.id)).recoveryCodes, 9, "the loser's code was rolled back");
  });

  it("attack: two recovery-code regenerations at once leave ten live codes, not two live sets of ten (ASVS 6.5.1, 6.5.2)", async () => {
    // Two tabs (or the owner and a session thief) ask for new codes at the same moment. generate() deletes the old
    // set and inserts the new one in one transaction, but on PostgreSQL the second DELETE cannot see the first's
    // uncommitted set, so both sets survive; on SQLite the second transaction starts after the first commits.
    const u = await withTOTP("pg-codes-twice@example.org");
    const first = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    assert.equal(first.length, 10);
    const csrf = await u.b.csrf();
    const audit = fx.app.audit;
    const appendIn = audit.appendIn.bind(audit);
    let second: Promise<Response> | undefined;
    // The first regeneration, its new set inserted and not yet committed, when the second arrives (up to 300 ms).
    audit.appendIn = async (executor, input) => {
      if (input.type === "auth.mfa.recovery-codes-generated" && second === undefined) {
        second = u.b.request("POST", "/auth/mfa/recovery-codes", { csrf });
        await Promise.race([second, sleep(300)]);
      }
      return appendIn(executor, input);
    };
    let one: Response;
    try {
      one = await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf });
    } finally {
      audit.appendIn = appendIn;
    }
    const two = await (second as Promise<Response>);
    assert.deepEqual(statuses([one, two]), [200, 200], bodies([one, two]));
    assert.equal(await fx.app.accounts.mfa.recovery.remaining(u.id), 10, "one live set of ten codes");
    const setA = one.json().codes as string[];
    const setB = two.json().codes as string[];
    const works = async (code: string): Promise<boolean> => (await (await pending(u)).request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: code } })).statusCode === 200;
    assert.equal(await works(first[0] as string), false, "the set from before both is dead");
    assert.ok(!((await works(setA[1] as string)) && (await works(setB[1] as string))), "codes of both new sets sign in");
  });

  it("attack: eight passkey registrations raced from eight sessions stop at the cap of 20 (every bound an attacker controls is bounded)", async () => {
    const webauthn = fx.app.accounts.mfa.webauthn;
    const user = await fx.user("pg-passkey-cap@example.org");
    const enrol = { context: sessionChallengeContext("ses_pg_enrol") };
    for (let i = 0; i < MAX_WEBAUTHN_CREDENTIALS - 1; i++) {
      await webauthn.verifyRegistration(user.id, new SoftAuthenticator().register(await webauthn.registrationOptions(user.id, user.email, enrol), ORIGIN), `k${i}`, enrol);
    }
    const flows = Array.from({ length: 8 }, (_, i) => ({ context: sessionChallengeContext(`ses_pg_race_${i}`) }));
    const responses = await Promise.all(flows.map(async (flow) => new SoftAuthenticator().register(await webauthn.registrationOptions(user.id, user.email, flow), ORIGIN)));
    const results = await Promise.allSettled(responses.map((r, i) => webauthn.verifyRegistration(user.id, r, `race${i}`, flows[i]!)));
    const won = results.filter((r) => r.status === "fulfilled").length;
    assert.equal((await webauthn.list(user.id)).length, MAX_WEBAUTHN_CREDENTIALS, `${won} of 8 raced registrations succeeded`);
    assert.equal(won, 1);
  });

  // ---- sessions and the password reset ----

  it("attack: a login with the old password whose session is stored while a password reset commits keeps a live session after the reset (ASVS 7.4.3)", async () => {
    // The attacker knows the old password (that is why the owner resets it) and keeps signing in. One login has
    // verified the old password when the owner's reset transaction begins; its session row is stored while that
    // transaction runs, after its stamp (time and epoch) was taken and its DELETE ran, and commits first.
    const victim = await fx.user("pg-reset-vs-login@example.org");
    const token = await resetToken(victim.email);
    const mfa = fx.app.accounts.mfa;
    const audit = fx.app.audit;
    const hasMfa = mfa.hasMfa.bind(mfa);
    const appendIn = audit.appendIn.bind(audit);
    let reached!: () => void;
    const resetInside = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reset: Promise<Response> | undefined;
    // The reset, held just before its audit event (its stamp raised, its DELETE run, its transaction open).
    audit.appendIn = async (executor, input) => {
      if (input.type === "auth.password.reset") {
        reached();
        // Bounded: once fixed, the login waits for this transaction instead, and the hold must end by itself.
        await Promise.race([released, sleep(1500)]);
      }
      return appendIn(executor, input);
    };
    // The login, held after its password check and before its session is stored, until the reset is inside.
    mfa.hasMfa = async (userId) => {
      if (userId === victim.id && reset === undefined) {
        reset = fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "harbour candle seventy kites" } });
        await Promise.race([resetInside, sleep(3000)]);
        fx.clock.advance(5); // the session is stored a few milliseconds after the reset began
      }
      return hasMfa(userId);
    };
    const attacker = fx.browser();
    let login: Response;
    try {
      login = await attacker.login(victim.email, victim.password);
    } finally {
      release();
      mfa.hasMfa = hasMfa;
    }
    const done = await (reset as Promise<Response>);
    audit.appendIn = appendIn;
    assert.equal(done.statusCode, 200, done.body);
    assert.ok(login.statusCode === 200 || login.statusCode === 401, login.body);
    const session = (await attacker.request("GET", "/auth/session")).json() as { authenticated?: boolean };
    assert.notEqual(session.authenticated, true, `the attacker's login (${login.statusCode}) is still signed in after the password reset`);
    assert.deepEqual((await fx.app.accounts.sessions.list(victim.id)).map((s) => s.id), [], "no session of the account outlives the reset");
  });

  // ---- links ----

  it("attack: one email-change link confirmed three times at once changes the address once, never a 500 (ASVS 6.4.1-style single use)", async () => {
    const u = await signedIn("pg-email-twice@example.org");
    assert.equal((await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "pg-email-twice-new@example.org" } })).statusCode, 202);
    const token = await tokenIn("pg-email-twice-new@example.org", EMAIL_LINK);
    const rs = await Promise.all([0, 1, 2].map(() => fx.browser().request("POST", "/auth/email/confirm", { body: { token } })));
    assert.deepEqual(statuses(rs), [200, 400, 400], bodies(rs));
    assert.equal((await fx.app.accounts.users.getById(u.id))?.email, "pg-email-twice-new@example.org");
    const changed = await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", "auth.email.changed").where("subject", "=", u.id).execute();
    assert.equal(changed.length, 1, "one change, one audit event");
  });

  // ---- flood control ----

  it("attack: twelve wrong passwords at once for one account are each counted: five checked, seven throttled, and the counters say five (ASVS 6.3.1)", async () => {
    const u = await fx.user("pg-flood@example.org");
    const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => fx.browser().login(u.email, `wrong guess number ${i}`)));
    assert.deepEqual(statuses(rs), [401, 401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429], bodies(rs));
    // The streak row's key as FloodControl makes it: the keyring's flood key over "streak\0<identifier>".
    const streakKey = fx.app.keyring.floodKey(["streak", identifierKey(u.email)].join("\u0000"));
    const streak = await fx.app.db.db.selectFrom("flood_streaks").select("failures").where("key", "=", streakKey).executeTakeFirst();
    assert.equal(Number(streak?.failures), 5, "the consecutive-failure streak counts every checked guess");
    // And the right password now waits too: the window is full.
    assert.equal((await fx.browser().login(u.email, u.password)).statusCode, 429);
  });

  it("attack: parallel wrong passwords at /auth/reauthenticate (a cookie thief guessing) share the login's counter and stop at five (ASVS 6.3.1, 7.5.1)", async () => {
    const u = await signedIn("pg-reauth-flood@example.org");
    const csrf = await u.b.csrf();
    const rs = await Promise.all(Array.from({ length: 9 }, (_, i) => u.b.request("POST", "/auth/reauthenticate", { csrf, body: { password: `not it ${i}` } })));
    assert.deepEqual(statuses(rs), [401, 401, 401, 401, 401, 429, 429, 429, 429], bodies(rs));
    // The login shares the full window: even the right password signs nobody in (a full window reached through
    // another spelling lets the attempt through blind — counted, its password not checked, answered as a failure).
    const login = await fx.browser().login(u.email, u.password);
    assert.equal(login.statusCode, 401, login.body);
    assert.equal(login.headers["set-cookie"], undefined, "no session");
    assert.equal((await u.b.request("POST", "/auth/reauthenticate", { csrf, body: { password: u.password } })).statusCode, 429, "nor does the right password re-authenticate");
  });

  // ---- uniqueness by case, decided on PostgreSQL by the unique index ----

  it("attack: sign-ups of 'Race@…' and 'race@…' past their checks at once make one account, and both get the same 202 (ASVS 6.3.8)", async () => {
    const rs = await withUserWritesHeld(authURL, 2, () => ["PG-Race@Example.org", "pg-race@example.org"].map((email) => fx.browser().request("POST", "/auth/register", { body: { email } })));
    assert.deepEqual(statuses(rs), [202, 202], bodies(rs));
    assert.equal(rs[0]?.body, rs[1]?.body, "the same answer for the winner and the loser");
    const rows = await fx.app.db.db.selectFrom("users").select("id").where("email_key", "=", "pg-race@example.org").execute();
    assert.equal(rows.length, 1);
    // The lookup key is the JavaScript lower case, not the database's: a non-ASCII capital finds its account.
    await fx.user("élodie.pg@example.org");
    assert.equal((await fx.browser().login("ÉLODIE.PG@EXAMPLE.ORG", "violet kettle drums at dawn")).statusCode, 200);
  });

  it("attack: an email change confirmed while someone signs up with that address: one account ends up with it, never a 500", async () => {
    const u = await signedIn("pg-move-from@example.org");
    const target = "pg-contested@example.org";
    assert.equal((await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } })).statusCode, 202);
    const token = await tokenIn(target, EMAIL_LINK);
    const [confirm, register] = await withUserWritesHeld(authURL, 2, () => [
      fx.browser().request("POST", "/auth/email/confirm", { body: { token } }),
      fx.browser().request("POST", "/auth/register", { body: { email: target.toUpperCase() } }),
    ]) as [Response, Response];
    assert.ok(confirm.statusCode < 500 && register.statusCode < 500, bodies([confirm, register]));
    assert.equal(register.statusCode, 202, register.body);
    const holders = await fx.app.db.db.selectFrom("users").select("id").where("email_key", "=", target).execute();
    assert.equal(holders.length, 1, "exactly one account holds the address");
    assert.equal((await fx.app.accounts.users.getById(u.id))?.email === target, confirm.statusCode === 200, "the account moved only if its confirmation said so");
  });

  it("attack: two administrators' creations of 'Dup@…' and 'dup@…' past their checks at once: one 201, one 409 email taken", async () => {
    const admin = await api.user(["accounts.write"]);
    const token = await api.token(admin.id, ["accounts.write"]);
    const rs = await withUserWritesHeld(apiURL, 2, () => ["PG-Dup@Example.org", "pg-dup@example.org"].map((email) => api.call("POST", "/api/v1/users", { token, body: { email } })));
    assert.deepEqual(statuses(rs), [201, 409], bodies(rs));
    assert.equal(codeOf(rs.find((r) => r.statusCode === 409) as Response), "BULWARK_ERR_EMAIL_TAKEN");
  });

  it("attack: two account creations racing for one username ('PgRacer', 'pgracer'; different, free emails): the loser is told its username is taken, not its email", async () => {
    const admin = await api.user(["accounts.write"]);
    const token = await api.token(admin.id, ["accounts.write"]);
    const rs = await withUserWritesHeld(apiURL, 2, () => [
      api.call("POST", "/api/v1/users", { token, body: { email: "pg-racer-one@example.org", username: "PgRacer" } }),
      api.call("POST", "/api/v1/users", { token, body: { email: "pg-racer-two@example.org", username: "pgracer" } }),
    ]);
    assert.deepEqual(statuses(rs), [201, 409], bodies(rs));
    const loser = rs.find((r) => r.statusCode === 409) as Response;
    // On SQLite the loser's lookup sees the winner's row and answers USERNAME_TAKEN; on PostgreSQL the unique index
    // decides, and every unique violation was reported as the email, which is free.
    assert.equal(codeOf(loser), "BULWARK_ERR_USERNAME_TAKEN", loser.body);
  });

  // ---- the last administrator ----

  it("attack: an administrator locking the other while that one takes away the first's admin role, raced: a usable administrator is always left", async () => {
    const db = api.app.db.db;
    for (let round = 0; round < 4; round++) {
      const pair: Array<{ id: string; token: string }> = [];
      for (let i = 0; i < 2; i++) {
        const u = await api.user([]);
        await api.app.accounts.roles.grant(u.id, "admin", "test");
        pair.push({ id: u.id, token: await api.token(u.id, ["admin"]) });
      }
      // Only this pair is usable: the administrators of earlier rounds lose the role.
      for (const row of await db.selectFrom("user_roles").select("user_id").where("role", "=", "admin").execute()) {
        if (!pair.some((p) => p.id === row.user_id)) await api.app.accounts.roles.revoke(row.user_id, "admin", "test");
      }
      const [a1, a2] = pair as [{ id: string; token: string }, { id: string; token: string }];
      assert.equal(await usableAdmins(db), 2);
      const rs = await Promise.all([
        api.call("POST", `/api/v1/users/${a2.id}/lock`, { token: a1.token, body: {} }),
        api.call("DELETE", `/api/v1/users/${a1.id}/roles/admin`, { token: a2.token }),
      ]);
      assert.ok(rs.every((r) => r.statusCode < 500), bodies(rs));
      assert.equal(rs.filter((r) => r.statusCode === 200).length, 1, `round ${round}: ${bodies(rs)}`);
      assert.equal(await usableAdmins(db), 1, `round ${round}: ${bodies(rs)}`);
    }
  });

  it("attack: a role granted while another administrator deletes that role answers a clear refusal, not a 500", async () => {
    const admin = await api.user([]);
    await api.app.accounts.roles.grant(admin.id, "admin", "test");
    const token = await api.token(admin.id, ["admin"]);
    const target = await api.user([]);
    await api.app.accounts.roles.create({ name: "pg-doomed", permissions: ["accounts.read"] }, "test");
    // The grant has looked the role up when the deletion runs and commits; then it inserts the grant.
    const roles = api.app.accounts.roles;
    const get = roles.get.bind(roles);
    let deletion: Promise<Response> | undefined;
    roles.get = async (name) => {
      const role = await get(name);
      if (name === "pg-doomed" && deletion === undefined) {
        deletion = api.call("DELETE", "/api/v1/roles/pg-doomed", { token });
        await deletion;
      }
      return role;
    };
    let grant: Response;
    try {
      grant = await api.call("POST", `/api/v1/users/${target.id}/roles/pg-doomed`, { token });
    } finally {
      roles.get = get;
    }
    const deleted = await (deletion as Promise<Response>);
    assert.equal(deleted.statusCode, 204, deleted.body);
    assert.ok(grant.statusCode < 500, `the grant answered ${grant.statusCode}: ${grant.body}`);
    assert.deepEqual(await roles.rolesOf(target.id), []);
  });

  // ---- API tokens: revocation and a mint in flight ----

  it("attack: a token minted by a session while the owner's 'revoke all my tokens' runs is still usable after the revocation answered (ASVS 7.4.1)", async () => {
    const owner = await api.user(["accounts.read"]);
    const minter = await api.session(owner.id);
    const revoker = await api.session(owner.id);
    const old = await api.token(owner.id, ["accounts.read"]);
    // The mint's transaction has inserted its row and is writing its audit event when the revocation arrives: it
    // is let run (up to 500 ms: a revocation that waits for the mint is the fix), then the mint commits.
    const audit = api.app.audit;
    const appendIn = audit.appendIn.bind(audit);
    let revokeAll: Promise<Response> | undefined;
    audit.appendIn = async (executor, input) => {
      if (input.type === "api.token.created" && revokeAll === undefined) {
        revokeAll = api.call("DELETE", "/api/v1/tokens", { session: revoker });
        await Promise.race([revokeAll, sleep(500)]);
      }
      return appendIn(executor, input);
    };
    let minted: Response;
    try {
      minted = await api.call("POST", "/api/v1/tokens", { session: minter, body: { name: "in flight", scopes: ["accounts.read"] } });
    } finally {
      audit.appendIn = appendIn;
    }
    assert.equal(minted.statusCode, 201, minted.body);
    const revoked = await (revokeAll as Promise<Response>);
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.equal((await api.call("GET", "/api/v1/users?limit=1", { token: old })).statusCode, 401, "the token that existed before is refused");
    const fresh = (minted.json() as { token: string }).token;
    const after = await api.call("GET", "/api/v1/users?limit=1", { token: fresh });
    assert.equal(after.statusCode, 401, `a token whose mint was in flight when 'revoke all' ran (answered ${revoked.body}) still works: ${after.statusCode}`);
  });

  it("a revoked API token is refused by the very next request, and a revocation raced by requests lets none through after it answered (ASVS 7.4.1)", async () => {
    const owner = await api.user(["accounts.read"]);
    const session = await api.session(owner.id);
    const made = await api.app.accounts.tokens.create(owner.id, { name: "raced", scopes: ["accounts.read"] });
    let answeredAt = 0;
    const uses = Array.from({ length: 20 }, async (_, i) => {
      await sleep(i * 3);
      const startedAfterRevocation = answeredAt !== 0;
      const res = await api.call("GET", "/api/v1/users?limit=1", { token: made.token });
      return { res, startedAfterRevocation };
    });
    const revocation = (async () => {
      await sleep(15);
      const res = await api.call("DELETE", `/api/v1/tokens/${made.info.id}`, { session });
      answeredAt = Date.now();
      return res;
    })();
    const [revoked, ...results] = await Promise.all([revocation, ...uses]);
    assert.equal(revoked.statusCode, 204, revoked.body);
    for (const { res, startedAfterRevocation } of results) {
      assert.ok(res.statusCode === 200 || res.statusCode === 401, res.body);
      if (startedAfterRevocation) assert.equal(res.statusCode, 401, "a request begun after the revocation answered is refused");
    }
    assert.equal((await api.call("GET", "/api/v1/users?limit=1", { token: made.token })).statusCode, 401);
  });

  // ---- what depends on the dialect ----

  it("a backslash in a user search is literal on PostgreSQL too (LIKE escaping), as % and _ are", async () => {
    const reader = await api.user(["accounts.read"]);
    const token = await api.token(reader.id, ["accounts.read"]);
    const writer = await api.token((await api.user(["accounts.write"])).id, ["accounts.write"]);
    for (const email of ["pg\\slash@example.org", "pgxslash@example.org", "pg\\\\double@example.org"]) {
      assert.equal((await api.call("POST", "/api/v1/users", { token: writer, body: { email } })).statusCode, 201, email);
    }
    const found = async (q: string): Promise<string[]> => {
      const res = await api.call("GET", `/api/v1/users?q=${encodeURIComponent(q)}`, { token });
      assert.equal(res.statusCode, 200, res.body);
      return (res.json() as { users: Array<{ email: string }> }).users.map((u) => u.email).sort();
    };
    assert.deepEqual(await found("pg\\s"), ["pg\\slash@example.org"]);
    assert.deepEqual(await found("pg\\"), ["pg\\\\double@example.org", "pg\\slash@example.org"]);
    assert.deepEqual(await found("pg\\\\"), ["pg\\\\double@example.org"]);
    assert.deepEqual(await found("pg_"), [], "_ is no wildcard");
  });

  it("an email-change link and an API token are refused at their exact expiry millisecond and accepted one before, as on SQLite", async () => {
    const u = await signedIn("pg-expiry@example.org");
    assert.equal((await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "pg-expiry-new@example.org" } })).statusCode, 202);
    const link = await tokenIn("pg-expiry-new@example.org", EMAIL_LINK);
    const check = await fx.app.accounts.emailChanges.check(link);
    assert.ok(check.valid);
    const apiToken = await fx.app.accounts.tokens.create(u.id, { name: "short", scopes: ["accounts.read"], expiresAt: check.expiresAt });
    fx.clock.set(check.expiresAt - 1);
    assert.equal((await fx.app.accounts.tokens.verify(apiToken.token)).valid, true, "alive one millisecond before");
    assert.equal((await fx.app.accounts.emailChanges.check(link)).valid, true, "alive one millisecond before");
    fx.clock.set(check.expiresAt);
    assert.deepEqual(await fx.app.accounts.tokens.verify(apiToken.token), { valid: false, reason: "expired" });
    const confirm = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: link } });
    assert.equal(confirm.statusCode, 400, confirm.body);
    assert.equal((await fx.app.accounts.users.getById(u.id))?.email, "pg-expiry@example.org");
  });

  it("attack: a NUL in any /auth field that reaches PostgreSQL as text is a 400 naming the field, never a 500", async () => {
    const u = await signedIn("pg-nul@example.org");
    const p = await withTOTP("pg-nul-mfa@example.org").then(pending);
    const cases: Array<[Browser, string, Record<string, unknown>, string, boolean]> = [
      [fx.browser(), "/auth/register", { email: "nul\u0000@example.org" }, "body/email", false],
      [fx.browser(), "/auth/email/confirm", { token: "ect_\u0000" }, "body/token", false],
      [fx.browser(), "/auth/password/reset/complete", { token: "prt_\u0000", newPassword: "violet kettle drums at dawn" }, "body/token", false],
      [u.b, "/auth/email/change", { newEmail: "nul\u0000@example.org" }, "body/newEmail", true],
      [p, "/auth/mfa/verify", { recoveryCode: "aaaa\u0000" }, "body/recoveryCode", true],
      [p, "/auth/mfa/verify", { totp: "12\u00003456" }, "body/totp", true],
    ];
    for (const [b, url, body, field, csrf] of cases) {
      const res = await b.request("POST", url, { body, ...(csrf ? { csrf: true } : {}) });
      assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
      assert.match(res.body, new RegExp(`${field.replace("/", "\\/")} must not contain control characters`), res.body);
    }
  });
});
