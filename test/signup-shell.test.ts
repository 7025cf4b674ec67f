// An unfinished sign-up (POST /auth/register: an account with no password, its link never followed) holds no address
// against a proven owner: the administrator's set-email and the owner's confirmed email change take it, deleting the
// sign-up and its link in the same transaction, recorded as user.sign-up-removed (src/accounts/email-change/sign-up-shell.ts;
// the finding: test/half-done-red-team.test.ts). Written as attacks that must fail: a finished sign-up, an account an
// administrator made without a password, a sign-up given a role, and a dry run all keep what they hold, on SQLite and
// PostgreSQL (ASVS 2.3.1, 6.3.7, 6.4.1).
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { createEmailChangeService, SIGN_UP_REMOVED_EVENT } from "../src/accounts/email-change/index.ts";
import { HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { auditHead, eventsSince } from "./helpers/audit-events.ts";
import { authFixtureOn, authFlows, EMAIL_LINK } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const NEW_PASSWORD = "amber lanterns drift over quiet harbours";

forEachDialect("an unfinished sign-up holds no address against its proven owner", (dx) => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  let writer: string;
  let writerId: string;
  let n = 0;
  before(async () => {
    fx = await authFixtureOn(dx, "signup-shell", { BULWARK_REGISTRATION: "open" });
    writerId = await flows.userWith(["accounts.write", "accounts.read"]);
    writer = await flows.tokenFor(writerId, ["accounts.write", "accounts.read"]);
  });
  after(async () => {
    await fx?.close();
  });

  const setEmail = (id: string, body: Record<string, unknown>): Promise<LightMyRequestResponse> =>
    fx.server.inject({ method: "POST", url: `/api/v1/users/${id}/email`, headers: { host: HOST, authorization: `Bearer ${writer}`, "content-type": "application/json" }, payload: JSON.stringify(body) });

  const signUp = (address: string): Promise<{ id: string; link: string }> => flows.unfinishedSignUp(address);

  /** An account with a password at `address`, moved away from it (as a hijacker moves one): `address` is free again. */
  async function movedAway(address: string): Promise<{ id: string }> {
    const u = await flows.signedIn(address);
    const elsewhere = `elsewhere-${++n}@evil.test`;
    assert.equal((await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: elsewhere } })).statusCode, 202);
    const confirmed = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: await flows.tokenIn(elsewhere, EMAIL_LINK) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    fx.clock.advance(1_000);
    return { id: u.id };
  }

  it("attack: a hijacker's unfinished sign-up for the address the account left does not stop the administrator's set-email back to it; the sign-up and its link are gone, recorded with the change (ASVS 6.3.7)", async () => {
    const owner = `restored-${++n}@example.org`;
    const account = await movedAway(owner);
    const squat = await signUp(owner);
    const dry = await setEmail(account.id, { email: owner, dryRun: true });
    assert.equal(dry.statusCode, 200, dry.body);
    assert.equal(dry.json().removesSignUp, squat.id, "the dry run names the sign-up the change would delete");
    assert.ok(await fx.app.accounts.users.getById(squat.id), "the dry run deleted nothing");
    const mark = await auditHead(fx.app.db.db);
    const res = await setEmail(account.id, { email: owner });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().changed, true);
    assert.equal(res.json().signUpRemoved, squat.id);
    assert.equal((await fx.app.accounts.users.findByIdentifier(owner))?.id, account.id, "the address is the account's again");
    assert.equal(await fx.app.accounts.users.getById(squat.id), null, "the sign-up is gone");
    // Its link finishes nothing: no second account appears at the owner's address.
    const late = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: squat.link, newPassword: NEW_PASSWORD } });
    assert.equal(late.statusCode, 400, late.body);
    const events = await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT, "user.email-set"]);
    const removed = events.find((e) => e.type === SIGN_UP_REMOVED_EVENT);
    assert.ok(removed, "the removal is recorded");
    assert.equal(removed.subject, squat.id);
    assert.equal(removed.actor, writerId, "by the administrator who asked");
    assert.equal(removed.data.for, account.id);
    assert.equal(removed.data.via, "api");
    assert.equal(events.find((e) => e.type === "user.email-set")?.data.signUpRemoved, squat.id);
  });

  it("attack: a sign-up finished through its link is a real account, and set-email to its address is still refused as taken (ASVS 6.4.1)", async () => {
    const address = `finished-${++n}@example.org`;
    const other = await movedAway(`other-${n}@example.org`);
    const made = await signUp(address);
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: made.link, newPassword: NEW_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);
    for (const dryRun of [true, false]) {
      const res = await setEmail(other.id, { email: address, dryRun });
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(res.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    }
    assert.equal((await fx.app.accounts.users.findByIdentifier(address))?.id, made.id);
  });

  it("attack: neither an account an administrator made without a password (an invitation) nor a sign-up granted a role counts as an unfinished sign-up: set-email to either address is refused as taken", async () => {
    const other = await movedAway(`other-${++n}@example.org`);
    const invited = `invited-${n}@example.org`;
    const created = await fx.server.inject({ method: "POST", url: "/api/v1/users", headers: { host: HOST, authorization: `Bearer ${writer}`, "content-type": "application/json" }, payload: JSON.stringify({ email: invited }) });
    assert.equal(created.statusCode, 201, created.body);
    const withRole = `with-role-${n}@example.org`;
    const made = await signUp(withRole);
    await fx.app.accounts.roles.create({ name: `signup-role-${n}`, permissions: ["accounts.read"] }, "test");
    await fx.app.accounts.roles.grant(made.id, `signup-role-${n}`, "test");
    for (const address of [invited, withRole]) {
      const res = await setEmail(other.id, { email: address });
      assert.equal(res.statusCode, 409, `${address}: ${res.body}`);
      assert.equal(res.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
      assert.ok(await fx.app.accounts.users.findByIdentifier(address), `${address} keeps its account`);
    }
  });

  it("attack: an outsider's sign-up started after the owner's email-change link was mailed does not refuse the owner's confirmation; the sign-up is deleted and recorded (ASVS 6.3.7)", async () => {
    // The service as the app builds it, given the audit log its confirmation records the removal in.
    const changes = createEmailChangeService({ database: fx.app.db, clock: fx.clock, random: fx.app.random, outbox: fx.app.accounts.outbox, audit: fx.app.audit });
    const u = await fx.user(`changing-${++n}@example.org`);
    const target = `target-${n}@example.org`;
    assert.equal(await changes.request(u, target, { publicURL: fx.app.config.http.publicURL, serviceName: fx.app.config.serviceName }), "queued");
    const token = await flows.tokenIn(target, EMAIL_LINK);
    const squat = await signUp(target);
    const mark = await auditHead(fx.app.db.db);
    const changed = await changes.confirm(token);
    assert.equal(changed.newEmail, target);
    assert.equal(changed.signUpRemoved, squat.id);
    assert.equal((await fx.app.accounts.users.findByIdentifier(target))?.id, u.id);
    assert.equal(await fx.app.accounts.users.getById(squat.id), null);
    const [removed] = await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT]);
    assert.ok(removed, "the removal is recorded");
    assert.equal(removed.subject, squat.id);
    assert.equal(removed.actor, u.id);
    assert.deepEqual({ for: removed.data.for, via: removed.data.via }, { for: u.id, via: "email-confirm" });
  });

  it("attack: over HTTP, as the app is built, the owner's confirmed email change takes an address an outsider signed up after the link was mailed: 200, the address the owner's, the sign-up deleted and recorded (ASVS 6.3.7) (was: 409 BULWARK_ERR_EMAIL_TAKEN)", async () => {
    const u = await flows.signedIn(`changing-http-${++n}@example.org`);
    const target = `target-http-${n}@example.org`;
    assert.equal((await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } })).statusCode, 202);
    const token = await flows.tokenIn(target, EMAIL_LINK);
    const squat = await signUp(target);
    const mark = await auditHead(fx.app.db.db);
    const confirmed = await fx.browser().request("POST", "/auth/email/confirm", { body: { token } });
    assert.equal(confirmed.statusCode, 200, `the owner's proven address was refused because of an outsider's unfinished sign-up: ${confirmed.body}`);
    assert.equal((await fx.app.accounts.users.findByIdentifier(target))?.id, u.id);
    assert.equal(await fx.app.accounts.users.getById(squat.id), null);
    const [removed] = await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT]);
    assert.deepEqual({ subject: removed?.subject, for: removed?.data.for, via: removed?.data.via }, { subject: squat.id, for: u.id, via: "email-confirm" });
  });

  it("attack: at confirmation, a sign-up finished meanwhile keeps the address: the owner's link is answered taken and nothing changes", async () => {
    const changes = createEmailChangeService({ database: fx.app.db, clock: fx.clock, random: fx.app.random, outbox: fx.app.accounts.outbox, audit: fx.app.audit });
    const u = await fx.user(`changing-${++n}@example.org`);
    const target = `target-${n}@example.org`;
    await changes.request(u, target, { publicURL: fx.app.config.http.publicURL, serviceName: fx.app.config.serviceName });
    const token = await flows.tokenIn(target, EMAIL_LINK);
    const made = await signUp(target);
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: made.link, newPassword: NEW_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);
    await assert.rejects(changes.confirm(token), (e: { code?: string }) => e.code === "BULWARK_ERR_EMAIL_TAKEN");
    assert.equal((await fx.app.accounts.users.findByIdentifier(target))?.id, made.id);
    assert.equal((await fx.app.accounts.users.getById(u.id))?.email, u.email);
  });
});
