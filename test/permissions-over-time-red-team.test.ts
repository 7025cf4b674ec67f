// Red team round "permissions over time": power that changes while someone is signed in or holds an API token.
// Attackers: (1) a plain user signed in without a second factor (and the API token they minted) who is given, then
// loses, a role carrying an administrative permission; (2) an intruder holding the password of a dormant
// administrator while the team runs demote-inactive-admins to take that account's power away (the Drupal.org lesson);
// (3) a dormant administrator's old admin-scoped token after that demotion. Real server (authFixture: SQLite, manual
// clock), real credentials (logins over HTTP, tokens minted over HTTP or by the token service); containment jobs are
// posted over the API and their batches driven by hand (runJob), so each step happens at a known moment.
// Tried: promotion mid-life of a plain user's session and token (MFA policy `administrative` judged per request), the
// role's deletion lifting that hold again, a dormant administrator's old token after demotion (scopes ∩ current
// permissions, no self-minting back), the audit trail of a demotion, and a sign-in between the demotion job's creation
// and its batch (both ways: an administrator active at the job's time who signs in again keeps the role).
// Not repeated (pinned elsewhere): a session promoted mid-life (mfa-second-round-attacks), a role deleted then
// re-created under a live token (tokens-roles-second-round-attacks), the policy raised over a restart
// (tightened-config-red-team), a revocation applied on the next request (api-routes), an undo handing a role back
// (latest-fixes-red-team, contain-undo-safety).
// Held: a plain user's token is held (BULWARK_ERR_TOKEN_OWNER_MFA_REQUIRED) from the request after an administrative
// grant, and served again once the role is deleted; the session likewise; a demoted administrator's admin token keeps
// only what the owner still holds and cannot mint its way back.
// Found (fixed since: the lever records its targets — holders of an administrative role inactive as of the job's
// time, what the dry run counts — with the job's scope at creation, and its batches act on those only; each grant it
// deletes writes role.revoked on the account, which the undo does not mistake for a later decision):
// - a sign-in with the dormant administrator's password after the demote-inactive-admins job was created and
//   before its batch ran made the account "active" at the batch (the lever re-read last_login_at against the job's
//   cutoff), so the job that the dry run and the team counted on left the intruder an administrator, who then enrolled
//   their own authenticator app and held the admin API;
// - the demotion wrote no role.revoked on the demoted account's trail (only the job's batch counts), though
//   every other path that ends a grant does (revoke, role deletion) and the undo writes role.granted for each one it
//   hands back: the account's own record showed the grant, then a re-grant, never its end nor who ended it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { containDeps, runJob } from "../src/contain/index.ts";
import { jobRunnerOf } from "../src/http/api/index.ts";
import { authFixture, HOST, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

const DAY = 86_400_000;

let fx: AuthFixture;
let n = 0;
let admin: { id: string; email: string; token: string };

before(async () => {
  fx = await authFixture();
  // Containment jobs are driven by hand (runJob): the batch runs exactly when the test says.
  await jobRunnerOf(fx.server)?.stop();
  const a = await fx.user(`pot-admin-${++n}@example.org`, { roles: ["admin"] });
  await ensureSecondFactor(fx.app, a.id);
  admin = { id: a.id, email: a.email, token: (await fx.app.accounts.tokens.create(a.id, { name: "responder", scopes: ["admin"] })).token };
});
after(async () => {
  await fx.close();
});

const { signedIn } = authFlows(() => fx);

function api(method: "GET" | "POST" | "DELETE", url: string, bearer: string, body?: unknown): Promise<LightMyRequestResponse> {
  return fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${bearer}` }, ...(body === undefined ? {} : { payload: body as object }) });
}

function codeOf(res: LightMyRequestResponse): string | undefined {
  try {
    return (res.json() as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** A dormant administrator without a second factor: created and last signed in 200 days ago. */
async function dormantAdmin(): Promise<{ id: string; email: string; password: string }> {
  const d = await fx.user(`dormant-${++n}@example.org`, { roles: ["admin"] });
  const old = fx.clock.now() - 200 * DAY;
  await fx.app.db.db.updateTable("users").set({ created_at: old, last_login_at: old }).where("id", "=", d.id).execute();
  return d;
}

/** Posts demote-inactive-admins over `ids` as the responder (its admin token); the batches wait for runJob. */
async function postDemotion(ids: string[]): Promise<string> {
  const res = await api("POST", "/api/v1/contain/jobs", admin.token, { levers: ["demote-inactive-admins"], scope: { ids }, options: { inactiveDays: 90 } });
  assert.equal(res.statusCode, 202, res.body);
  return (res.json() as { job: { id: string } }).job.id;
}

describe("red team: permissions that change while someone is signed in", () => {
  it("attack: a plain user without a factor mints an accounts.read token, is then given a role carrying accounts.write — the token and the session are held by the MFA policy from the next request (not a read goes through), and served again once that role is deleted (ASVS 6.3.3, 8.3.2)", async () => {
    await fx.app.accounts.roles.create({ name: `pot-reader-${++n}`, permissions: ["accounts.read"] }, "test");
    const reader = `pot-reader-${n}`;
    const u = await signedIn(`plain-${++n}@example.org`);
    await fx.app.accounts.roles.grant(u.id, reader, "test");
    // Fully signed in (a plain role asks no factor under `administrative`) and fresh: the session mints a token.
    const mint = await u.b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "report script", scopes: ["accounts.read"] } });
    assert.equal(mint.statusCode, 201, mint.body);
    const token = (mint.json() as { token: string }).token;
    assert.equal((await api("GET", "/api/v1/users?limit=1", token)).statusCode, 200, "control: the plain user's token reads");
    // An administrator makes the user a help desk: a role carrying an administrative permission, mid-life of both.
    await fx.app.accounts.roles.create({ name: `pot-desk-${++n}`, permissions: ["accounts.read", "accounts.write"] }, "test");
    const desk = `pot-desk-${n}`;
    assert.equal(await fx.app.accounts.roles.grant(u.id, desk, "test"), true);
    const read = await api("GET", "/api/v1/users?limit=1", token);
    const self = await api("GET", "/auth/session", token);
    const sessionRead = await u.b.request("GET", "/api/v1/users?limit=1");
    const sessionMint = await u.b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "wider", scopes: ["accounts.write"] } });
    assert.deepEqual(
      [read.statusCode, codeOf(read), sessionRead.statusCode, codeOf(sessionRead), sessionMint.statusCode],
      [403, "BULWARK_ERR_TOKEN_OWNER_MFA_REQUIRED", 403, "BULWARK_ERR_API_SIGN_IN_INCOMPLETE", 403],
      `a help desk with no second factor acted through credentials from before its promotion: token ${read.statusCode} ${read.body.slice(0, 160)}, session ${sessionRead.statusCode}, mint ${sessionMint.statusCode} ${sessionMint.body.slice(0, 160)}`,
    );
    assert.equal((self.json() as { mfaEnrolmentRequired?: boolean }).mfaEnrolmentRequired, true, `GET /auth/session does not say the token is held: ${self.body}`);
    // The role goes (deleted by an administrator): the hold lifts at once, and only what the reader role gives is left.
    assert.equal((await api("DELETE", `/api/v1/roles/${desk}`, admin.token)).statusCode, 204);
    const again = await api("GET", "/api/v1/users?limit=1", token);
    const sessionAgain = await u.b.request("GET", "/api/v1/users?limit=1");
    const victim = await fx.user(`pot-victim-${++n}@example.org`);
    const lock = await u.b.request("POST", `/api/v1/users/${victim.id}/lock`, { csrf: true, body: {} });
    assert.deepEqual([again.statusCode, sessionAgain.statusCode, lock.statusCode], [200, 200, 403], `after the deletion: token ${again.statusCode}, session ${sessionAgain.statusCode}, lock by the former help desk ${lock.statusCode} ${lock.body.slice(0, 160)}`);
  });

  it("attack: a dormant administrator's old admin-scoped token, after demote-inactive-admins, acts at the next request with only what the owner still holds — no account listed or locked, no admin or accounts.write token minted, no undo of its own demotion (ASVS 8.3.2, 8.3.3)", async () => {
    const dormant = await dormantAdmin();
    await ensureSecondFactor(fx.app, dormant.id); // the factor is not what stops it: the role is
    const old = (await fx.app.accounts.tokens.create(dormant.id, { name: "forgotten cron", scopes: ["admin"] })).token;
    assert.equal((await api("GET", "/api/v1/users?limit=1", old)).statusCode, 200, "control: the old token is an administrator's");
    const auditor = `pot-audit-${++n}`;
    await fx.app.accounts.roles.create({ name: auditor, permissions: ["audit.read"] }, "test");
    await fx.app.accounts.roles.grant(dormant.id, auditor, "test"); // a read-only role the lever leaves
    fx.clock.advance(60_000);
    const job = await postDemotion([dormant.id]);
    fx.clock.advance(1_000);
    assert.equal((await runJob(containDeps(fx.app), job)).status, "done");
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(dormant.id), [auditor], "control: the administrative role was taken");
    const victim = await fx.user(`pot-victim-${++n}@example.org`);
    const listed = await api("GET", "/api/v1/users?limit=1", old);
    const locked = await api("POST", `/api/v1/users/${victim.id}/lock`, old, {});
    const mintAdmin = await api("POST", "/api/v1/tokens", old, { name: "back", scopes: ["admin"] });
    const mintWrite = await api("POST", "/api/v1/tokens", old, { name: "back", scopes: ["accounts.write"] });
    const undo = await api("POST", `/api/v1/contain/jobs/${job}/undo`, old);
    const audit = await api("GET", "/api/v1/audit/events?limit=1", old);
    assert.deepEqual(
      [listed.statusCode, locked.statusCode, mintAdmin.statusCode, mintWrite.statusCode, undo.statusCode, audit.statusCode],
      [403, 403, 403, 403, 403, 200],
      `the demoted administrator's token kept power: list ${listed.statusCode}, lock ${locked.statusCode}, mint admin ${mintAdmin.statusCode}, mint accounts.write ${mintWrite.statusCode}, undo ${undo.statusCode} ${undo.body.slice(0, 160)}, audit.read ${audit.statusCode}`,
    );
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(dormant.id), [auditor], "the demotion was reversed");
  });

  it("attack: demote-inactive-admins takes an administrator's role — the end of the grant is on the account's own trail, a role.revoked naming the role and the job's actor, as revoke, role deletion and the undo's role.granted are (ASVS 16.2.1, 16.3.3) (was: no role.revoked, only the job's batch counts and contain_changes)", async () => {
    const dormant = await dormantAdmin();
    fx.clock.advance(60_000);
    const job = await postDemotion([dormant.id]);
    fx.clock.advance(1_000);
    assert.equal((await runJob(containDeps(fx.app), job)).status, "done");
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(dormant.id), [], "control: the dormant administrator was demoted");
    const batch = await fx.app.db.db.selectFrom("audit_events").select(["actor"]).where("type", "=", "contain.job.batch").where("subject", "=", job).executeTakeFirstOrThrow();
    const trail = await fx.app.db.db.selectFrom("audit_events").select(["type", "actor", "data"]).where("subject", "=", dormant.id).orderBy("seq").execute();
    const ended = trail.filter((e) => e.type === "role.revoked" && (JSON.parse(e.data) as { role?: string }).role === "admin");
    assert.ok(
      ended.length === 1 && ended[0]?.actor === batch.actor,
      `the account's audit trail shows its admin grant but never its end: events about ${dormant.id} are [${trail.map((e) => e.type).join(", ")}], no role.revoked naming "admin" and the job's actor (${batch.actor}). ` +
        "demote-inactive-admins apply() deletes user_roles rows and records them only in contain_changes and the batch's counts; a responder filtering the account's record (or role.revoked) cannot see when or by whom it lost admin",
    );
  });

  it("attack: an intruder holding a dormant administrator's password signs in after the team's demote-inactive-admins job was created and before its batch ran — the job takes the role it was created (and dry-run) to take; a sign-in after the job's time does not make the account \"active\" (ASVS 8.3.2, 6.3.3) (was: the batch re-read last_login_at, left the intruder an administrator, who enrolled its own app and held the admin API)", async () => {
    const dormant = await dormantAdmin();
    fx.clock.advance(60_000);
    // The team checks first: the dry run names the dormant administrator.
    const dry = await api("POST", "/api/v1/contain/jobs", admin.token, { levers: ["demote-inactive-admins"], scope: { ids: [dormant.id] }, options: { inactiveDays: 90 }, dryRun: true });
    assert.equal(dry.statusCode, 200, dry.body);
    assert.equal((dry.json() as { levers: Record<string, { counts: Record<string, number> }> }).levers["demote-inactive-admins"]?.counts["users"], 1, "control: the dry run counts the dormant administrator");
    const job = await postDemotion([dormant.id]);
    // The intruder (the leaked password) signs in while the job waits for its batch (a large scope, a queue, a restart).
    fx.clock.advance(5_000);
    const intruder = fx.browser({ newDevice: true });
    const login = await intruder.login(dormant.email, dormant.password);
    assert.equal(login.statusCode, 200, login.body);
    assert.equal((login.json() as { mfaEnrolmentRequired: boolean }).mfaEnrolmentRequired, true, "control: held at enrolment, an administrator with no factor");
    fx.clock.advance(5_000);
    const run = await runJob(containDeps(fx.app), job);
    assert.equal(run.status, "done");
    const roles = await fx.app.accounts.roles.rolesOf(dormant.id);
    // What the intruder does with it: enrols its own authenticator app from the fresh login, then holds the admin API.
    const begun = await intruder.request("POST", "/auth/mfa/totp", { csrf: true });
    let adminAPI = -1;
    if (begun.statusCode === 200) {
      const secret = (begun.json() as { secret: string }).secret;
      await intruder.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
      fx.clock.advance(STEP);
      adminAPI = (await intruder.request("GET", "/api/v1/users?limit=1")).statusCode;
    }
    assert.ok(
      roles.length === 0 && adminAPI !== 200,
      `the demotion job (created before the sign-in, its dry run counting the account) left the dormant administrator its roles [${roles.join(", ")}] because the intruder signed in before the batch ran; ` +
        `the intruder then enrolled its own app and reached the admin API (GET /api/v1/users ${adminAPI}). demote-inactive-admins apply() re-reads users.last_login_at against ctx.at − inactiveDays, so a login after the job's time counts as activity before it`,
    );
  });

  it("attack: both directions of a sign-in between the job's creation and its batch — the dormant administrator who signs in is demoted, an administrator active at the job's time who signs in again keeps the role (their earlier login overwritten), and the undo hands the demoted role back (the job's own role.revoked is no later decision) (ASVS 8.3.2, 16.2.1)", async () => {
    const dormant = await dormantAdmin();
    const active = await dormantAdmin();
    // Active at the job's time: signed in 10 days ago, inside the 90-day window; created long before.
    await fx.app.db.db.updateTable("users").set({ last_login_at: fx.clock.now() - 10 * DAY }).where("id", "=", active.id).execute();
    fx.clock.advance(60_000);
    const job = await postDemotion([dormant.id, active.id]);
    fx.clock.advance(5_000);
    for (const who of [dormant, active]) assert.equal((await fx.browser({ newDevice: true }).login(who.email, who.password)).statusCode, 200);
    fx.clock.advance(5_000);
    assert.equal((await runJob(containDeps(fx.app), job)).status, "done");
    assert.deepEqual(
      [await fx.app.accounts.roles.rolesOf(dormant.id), await fx.app.accounts.roles.rolesOf(active.id)], [[], ["admin"]],
      "the job judged inactivity at its batch, not as of its creation",
    );
    const undo = await api("POST", `/api/v1/contain/jobs/${job}/undo`, admin.token);
    assert.equal(undo.statusCode, 202, undo.body);
    assert.equal((await runJob(containDeps(fx.app), (undo.json() as { job: { id: string } }).job.id)).status, "done");
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(dormant.id), ["admin"], "the undo took the job's own role.revoked for an administrator's decision and left the role removed");
  });
});
