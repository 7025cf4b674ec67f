// Third look at roles, permissions and API tokens. This round attacked: the API's rule that an administrative role
// cannot be granted to an account still on an initial password (the help desk's route to a puppet administrator),
// a grant already in flight when its administrator is demoted (PostgreSQL, where transactions run side by side),
// and how a bearer token may be presented (two Authorization headers on a real socket, a token in the query string).
// The attackers: a help-desk account (accounts.read + accounts.write) that wants admin; an administrator being
// demoted as a suspect who wants to leave a puppet administrator behind; a client that presents credentials in
// unusual ways to get more than the token it holds. Real server, real credentials (authFixture, tokens from the
// token service, sessions from the session manager); nothing fakes request.auth. Each test is an attack that must
// fail on correct code. Two findings were fixed the same day (passwordUnproven, migration 24; callerWithin and
// permissionsHeldWithin); their tests are renamed "attack: … (was: …)". Not repeated (covered elsewhere): the initial-password refusal
// itself (users-admin-second-round-attacks), the last-admin races (api-users, postgres-race-attacks), scheme forms
// beside a cookie (tokens-roles-second-round-attacks), token chains (tokens-chain-revocation).
import assert from "node:assert/strict";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { holdGrantsTo } from "../src/accounts/roles/index.ts";
import { authFixture, HOST, totpCode, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { authFixtureOn, authFlows } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { holdOpen } from "./helpers/held-transaction.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

/** A fully signed-in, fresh browser session of `userId` (aal 2, so no MFA gate) on `site`. */
async function sessionOn(site: AuthFixture, userId: string): Promise<Browser> {
  const b = site.browser();
  b.cookie = (await site.app.accounts.sessions.createSession(userId, { aal: 2 })).token;
  return b;
}

function code(res: LightMyRequestResponse): string | undefined {
  return (res.json() as { error?: { code?: string } }).error?.code;
}

describe("red team, third look: roles and tokens", () => {
  const fx = sharedFixture();
  let rootToken: string;
  const { userWith, tokenFor } = authFlows(() => fx);

  before(async () => {
    // An administrator never demoted or locked here, so the last-admin rule never gets in a test's way.
    const root = (await fx.user("root-third@example.org", { roles: ["admin"] })).id;
    rootToken = await tokenFor(root, ["admin"]);
  });

  function api(method: "GET" | "POST" | "DELETE", url: string, bearer: string, body?: unknown): Promise<LightMyRequestResponse> {
    return fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${bearer}` }, ...(body === undefined ? {} : { payload: body as object }) });
  }

  it("attack: a help desk (accounts.write) that creates an account with a password it chose, then replaces that password at the change gate itself, cannot get the account made an administrator: the grant waits for a password set through the mailed reset link (ASVS 8.2.2, 6.4.1) (was: the change at the gate cleared the initial-password rule and the help desk signed in as the administrator)", async () => {
    // roles.ts refuses an administrative grant "while the account signs in with an initial password, which whoever
    // created the account chose — an accounts.write holder who made the account would otherwise sign in as the
    // administrator it became". The rule reads password_initial_expires_at, which ANY holder of the initial password
    // clears by changing it at the gate (/auth/password/change). The help desk is such a holder: it changes the
    // password before the administrator's grant, and the grant sees "a password of the owner's own".
    const helpdesk = await tokenFor(await userWith(["accounts.read", "accounts.write"]), ["accounts.read", "accounts.write"]);
    const initial = "the help desk picked this 5521";
    const kept = "and the help desk keeps this 9043";
    const created = await api("POST", "/api/v1/users", helpdesk, { email: "new-admin-hire@example.org", password: initial });
    assert.equal(created.statusCode, 201, created.body);
    const hire = (created.json() as { user: { id: string } }).user.id;
    // The help desk, not the owner, signs in with the password it chose and replaces it with one it keeps.
    const desk = fx.browser({ newDevice: true });
    assert.equal((await desk.login("new-admin-hire@example.org", initial)).statusCode, 200);
    const changed = await desk.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: initial, newPassword: kept } });
    assert.equal(changed.statusCode, 200, changed.body);
    // Nothing the administrator can see tells this account from one whose owner set their password.
    const view = (await api("GET", `/api/v1/users/${hire}`, rootToken)).json() as { user: { passwordMustChange: boolean; initialPasswordExpiresAt: string | null } };
    assert.deepEqual([view.user.passwordMustChange, view.user.initialPasswordExpiresAt], [false, null]);

    const grant = await api("POST", `/api/v1/users/${hire}/roles/admin`, rootToken);
    if (grant.statusCode === 200) {
      // Show what the grant hands over: the help desk signs in with its password, enrols its own authenticator at the
      // administrator's enrolment gate and acts as an administrator (here: creates a role carrying admin).
      const b = fx.browser({ newDevice: true });
      assert.equal((await b.login("new-admin-hire@example.org", kept)).statusCode, 200);
      const secret = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
      assert.equal((await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
      const role = await b.request("POST", "/api/v1/roles", { csrf: true, body: { name: "helpdesk-owns-this", permissions: ["admin"] } });
      assert.notEqual(role.statusCode, 201, `the help desk, signed in to the account it created, acts as an administrator: ${role.body}`);
    }
    // Secure: an administrative grant waits until someone who controls the account's mailbox set its password (a
    // mailed reset link), not merely someone who knew the password the creator chose.
    assert.equal(grant.statusCode, 409, `granted admin to an account whose only password came from the help desk: ${grant.body}`);
    assert.equal((await fx.app.accounts.roles.rolesOf(hire)).includes("admin"), false);
  });

  it("attack: two Authorization headers on a real socket never upgrade the first (a low token beside an admin one stays low, junk beside a good one is refused), and a token in the query string is no credential (ASVS 8.3.1, 14.2.1)", async () => {
    // Light-my-request cannot send a header twice; a real client can. Node keeps the first Authorization line and drops
    // the rest (http.IncomingMessage): the token a request is judged by is the first one presented, never the widest.
    const admin = await tokenFor(await userWith(["admin"]), ["admin"]);
    const low = await tokenFor(await userWith(["audit.read"]), ["audit.read"]);
    await fx.server.listen({ host: "127.0.0.1", port: 0 });
    const port = (fx.server.server.address() as { port: number }).port;
    const status = async (target: string, authorizations: string[]): Promise<number> => {
      const head = [`GET ${target} HTTP/1.1`, `Host: ${HOST}`, ...authorizations.map((a) => `Authorization: ${a}`), "Connection: close", "", ""].join("\r\n");
      const text = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, "127.0.0.1");
        let out = "";
        socket.on("data", (d: Buffer) => (out += d.toString("latin1")));
        socket.on("end", () => resolve(out));
        socket.on("error", reject);
        socket.write(head);
      });
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      assert.ok(m, `no status line: ${text.slice(0, 80)}`);
      return Number(m[1]);
    };
    assert.equal(await status("/api/v1/roles", [`Bearer ${admin}`]), 200, "the admin token alone works");
    assert.equal(await status("/api/v1/roles", [`Bearer ${low}`, `Bearer ${admin}`]), 403, "a low token first stays a low token");
    assert.equal(await status("/api/v1/roles", ["Bearer bwk_junk", `Bearer ${admin}`]), 401, "junk first is refused, not retried with the second");
    assert.equal(await status("/api/v1/roles", [`bearer ${low}`, `BEARER ${admin}`]), 403, "scheme case does not pick a header either");
    for (const name of ["access_token", "token", "bearer", "authorization"]) {
      assert.equal(await status(`/api/v1/tokens?${name}=${encodeURIComponent(admin)}`, []), 401, `?${name}= is not a credential`);
    }
  });
});

// A grant parked inside its transaction while its administrator is demoted. On PostgreSQL the demotion does not wait
// for it: RoleStore.revoke takes only the last-admin lock, and RoleStore.grant never looks at its actor again after the
// API guard read the actor's permissions at the start of the request. The parking is done as api-users.test.ts does
// it: another transaction holds the puppet's grant lock (holdGrantsTo), as a concurrent grant to the puppet would.
// SQLite runs one write transaction at a time, so a demotion there always waits for the grant queued before it.
forEachDialect("red team, third look: a grant in flight when its administrator is demoted", (dialect) => {
  let fx: AuthFixture | null = null;
  let postgres = false;
  before(async () => {
    // The dialect's fresh database tells which one this is; only PostgreSQL runs transactions side by side.
    await dialect.fresh();
    postgres = dialect.lastTarget().databaseURL !== undefined;
    if (postgres) fx = await authFixtureOn(dialect, "roles-tokens-third-look");
  });
  after(async () => {
    await fx?.close();
  });

  it("attack: an administrator demoted while a grant of theirs is in flight cannot make their puppet an administrator after the demotion answered: the grant reads its actor's roles again where it commits (ASVS 8.3.2, 8.2.2) (was: the grant committed after the demotion)", async (t) => {
    if (!postgres || fx === null) return t.skip("SQLite serialises every write transaction: the demotion waits for the grant queued before it");
    const site = fx;
    const root = (await site.user("root-race@example.org", { roles: ["admin"] })).id;
    const suspect = (await site.user("suspect-race@example.org", { roles: ["admin"] })).id;
    const puppet = (await site.user("puppet-race@example.org")).id;
    const rootSession = await sessionOn(site, root);
    const suspectSession = await sessionOn(site, suspect);
    const csrf = await suspectSession.csrf();

    // Another grant to the puppet in progress: its lock held, not yet committed.
    const blocker = await holdOpen(site.app.db, (trx) => holdGrantsTo(site.app.db, trx, puppet));

    const order: string[] = [];
    // The suspect's grant passes the guard (admin, fresh session) and waits inside RoleStore.grant for the puppet's lock.
    const grant = suspectSession.request("POST", `/api/v1/users/${puppet}/roles/admin`, { csrf }).then((r) => (order.push("grant"), r));
    await sleep(300);
    // The responder demotes the suspect. Not awaited before the release: a fix that makes the demotion wait for the
    // suspect's grant in flight (and then commit after it) must not deadlock this test.
    const demote = rootSession.request("DELETE", `/api/v1/users/${suspect}/roles/admin`, { csrf: true }).then((r) => (order.push("demote"), r));
    await Promise.race([demote, sleep(1_000)]);
    const puppetWhenDemoted = order.includes("demote") ? await site.app.accounts.roles.rolesOf(puppet) : null;
    await blocker.commit();
    const [granted, demoted] = await Promise.all([grant, demote]);

    assert.equal(demoted.statusCode, 200, demoted.body);
    assert.equal((await site.app.accounts.roles.rolesOf(suspect)).includes("admin"), false, "the suspect is demoted");
    if (puppetWhenDemoted !== null) assert.deepEqual(puppetWhenDemoted, [], "when the demotion answered, the puppet held nothing");
    const puppetIsAdmin = (await site.app.accounts.roles.rolesOf(puppet)).includes("admin");
    // Secure: a grant whose administrator lost admin before it committed is refused (403); or the demotion waits for it
    // and answers after it, so whoever demoted the suspect sees the puppet's grant when they look.
    assert.ok(
      !(order[0] === "demote" && puppetIsAdmin),
      `the demotion answered ${demoted.statusCode} first, then the demoted administrator's grant answered ${granted.statusCode} (${granted.body}) and the puppet holds admin`,
    );
    if (order[0] === "demote") {
      assert.equal(granted.statusCode, 403, granted.body);
      assert.equal(code(granted), "BULWARK_ERR_API_FORBIDDEN");
    }
  });

  it("attack: a help desk demoted while its lock of an account waits on that account's grant lock cannot finish the lock after the demotion answered: refused, or the demotion waits for it (ASVS 8.3.2)", async (t) => {
    if (!postgres || fx === null) return t.skip("SQLite serialises every write transaction: the demotion waits for the lock queued before it");
    const site = fx;
    const { userWith, tokenFor } = authFlows(() => site);
    const deskId = await userWith(["accounts.write"]);
    const desk = await tokenFor(deskId, ["accounts.write"]);
    const target = (await site.user("locked-in-flight@example.org")).id;
    const blocker = await holdOpen(site.app.db, (trx) => holdGrantsTo(site.app.db, trx, target));
    const order: string[] = [];
    const lock = site.server.inject({ method: "POST", url: `/api/v1/users/${target}/lock`, headers: { host: HOST, authorization: `Bearer ${desk}` } })
      .then((r) => (order.push("lock"), r));
    await sleep(300);
    // The responder takes the help desk's role while its lock waits (not awaited: a removal takes the last-admin lock,
    // which the waiting lock holds, so it may wait for the lock to finish).
    const roles = await site.app.accounts.roles.rolesOf(deskId);
    const demote = (async () => {
      for (const role of roles) await site.app.accounts.roles.revoke(deskId, role, "responder");
      order.push("demote");
    })();
    await sleep(300);
    await blocker.commit();
    const [res] = await Promise.all([lock, demote]);
    if (res.statusCode === 200) {
      // The answers may cross (the lock's reply follows its commit by a few steps); the commits may not: the lock was
      // committed before the demotion, so when the demotion answered, the lock was there to see.
      const seqOf = async (type: string, subject: string): Promise<number> =>
        Number((await site.app.db.db.selectFrom("audit_events").select("seq").where("type", "=", type).where("subject", "=", subject).orderBy("seq", "desc").executeTakeFirstOrThrow()).seq);
      assert.ok(await seqOf("user.locked", target) < await seqOf("role.revoked", deskId), `the lock committed after the demotion (answers: ${order.join(", ")})`);
    } else {
      assert.equal(res.statusCode, 403, res.body);
      assert.equal(code(res), "BULWARK_ERR_API_FORBIDDEN");
      assert.equal((await site.app.accounts.users.getById(target))!.lockedAt, null, "the account was not locked");
    }
  });
});
