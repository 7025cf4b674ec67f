// An administrator's new account yields to nobody's unfinished sign-up: an outsider who knows an organisation is about
// to create an account for an address signs it up (POST /auth/register, open to anyone) and never follows the link;
// `POST /api/v1/users` and `bulwark users create` for that address were refused as taken. Now they take it as set-email
// does (src/accounts/email-change/sign-up-shell.ts, createOverSignUps): the sign-up and its link are deleted in the
// creating transaction, recorded as user.sign-up-removed. Written as attacks that must fail, on SQLite and PostgreSQL:
// a finished sign-up and an invitation keep their address; the squatter's link finishes nothing (ASVS 6.3.7, 6.4.1).
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { sql } from "kysely";
import { SIGN_UP_REMOVED_EVENT } from "../src/accounts/email-change/index.ts";
import { lockAccountLinks } from "../src/accounts/password-reset/link-lock.ts";
import type { AuthFixture } from "../src/http/auth/test-client.ts";
import { auditHead, eventsSince } from "./helpers/audit-events.ts";
import { authFixtureOn, authFlows } from "./helpers/auth-flows.ts";
import { adminCreates } from "./helpers/admin-create.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const LABEL = "admin-create-over-signup";
const NEW_PASSWORD = "amber lanterns drift over quiet harbours";

forEachDialect("an administrator's new account over an unfinished sign-up", (dx) => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  let writer: string;
  let writerId: string;
  let n = 0;
  before(async () => {
    fx = await authFixtureOn(dx, LABEL, { BULWARK_REGISTRATION: "open" });
    writerId = await flows.userWith(["accounts.write", "accounts.read"]);
    writer = await flows.tokenFor(writerId, ["accounts.write", "accounts.read"]);
  });
  after(async () => {
    await fx?.close();
  });

  // An administrator's create, through the API (the writer's token) and `bulwark users create`.
  const { api: create, cli } = adminCreates(() => fx, dx, LABEL, () => writer);

  /** The squatter's link, followed after the administrator created the account: it must finish nothing. */
  async function assertLinkDead(link: string, address: string, ownerId: string): Promise<void> {
    const late = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: NEW_PASSWORD } });
    assert.equal(late.statusCode, 400, `the squatter's link still worked: ${late.body}`);
    const holder = await fx.app.accounts.users.findByIdentifier(address);
    assert.equal(holder?.id, ownerId, "the address is the new account's, no other account appeared");
  }

  it("attack: an outsider's unfinished sign-up for the address an administrator is about to create does not refuse POST /api/v1/users; the sign-up and its link are gone, recorded with the creation (ASVS 6.3.7) (was: 409 BULWARK_ERR_EMAIL_TAKEN)", async () => {
    const address = `new.hire-${++n}@corp.example`;
    const squat = await flows.unfinishedSignUp(address);
    const mark = await auditHead(fx.app.db.db);
    const res = await create({ email: address });
    assert.equal(res.statusCode, 201, `the squat still blocks the administrator: ${res.body}`);
    const made = res.json() as { user: { id: string; email: string; hasPassword: boolean }; signUpRemoved: string | null };
    assert.equal(made.signUpRemoved, squat.id, "the answer names the sign-up deleted");
    assert.notEqual(made.user.id, squat.id);
    assert.equal(await fx.app.accounts.users.getById(squat.id), null, "the sign-up is gone");
    await assertLinkDead(squat.link, address, made.user.id);
    const events = await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT, "user.created"]);
    const removed = events.find((e) => e.type === SIGN_UP_REMOVED_EVENT);
    assert.ok(removed, "the removal is recorded");
    assert.deepEqual({ subject: removed.subject, actor: removed.actor, for: removed.data.for, via: removed.data.via }, { subject: squat.id, actor: writerId, for: made.user.id, via: "api" });
    const created = events.find((e) => e.type === "user.created" && e.subject === made.user.id);
    assert.equal(created?.data.signUpRemoved, squat.id, "user.created names the sign-up it replaced");
    assert.equal((await fx.app.audit.verify()).ok, true, "the chain holds");
    // Control: a create over a free address says so.
    const plain = await create({ email: `plain-${n}@corp.example` });
    assert.equal(plain.statusCode, 201, plain.body);
    assert.equal(plain.json().signUpRemoved, null);
  });

  it("attack: an outsider's unfinished sign-up does not refuse `bulwark users create` either; the sign-up and its link are gone, recorded with via cli (ASVS 6.3.7) (was: exit 2, already exists)", async () => {
    const address = `cli.hire-${++n}@corp.example`;
    const squat = await flows.unfinishedSignUp(address);
    const mark = await auditHead(fx.app.db.db);
    const r = await cli(["--email", address, "--json"]);
    assert.equal(r.code, 0, `the squat still blocks the operator: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { id: string; signUpRemoved: string | null };
    assert.equal(out.signUpRemoved, squat.id);
    assert.equal(await fx.app.accounts.users.getById(squat.id), null, "the sign-up is gone");
    await assertLinkDead(squat.link, address, out.id);
    const events = await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT, "user.created"]);
    const removed = events.find((e) => e.type === SIGN_UP_REMOVED_EVENT);
    assert.ok(removed, "the removal is recorded");
    assert.deepEqual({ subject: removed.subject, for: removed.data.for, via: removed.data.via }, { subject: squat.id, for: out.id, via: "cli" });
    assert.match(removed.actor, /^cli:/, "by the operator");
    assert.equal(events.find((e) => e.type === "user.created")?.data.signUpRemoved, squat.id);
    // The human-readable output says so too.
    const other = `cli.hire-text-${n}@corp.example`;
    const squat2 = await flows.unfinishedSignUp(other);
    const text = await cli(["--email", other]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`the unfinished sign-up ${squat2.id} holding the address was deleted`));
  });

  it("attack: a sign-up finished through its link just before is a real account: the create is still refused as taken, and nothing is deleted", async () => {
    const address = `finished-${++n}@corp.example`;
    const made = await flows.unfinishedSignUp(address);
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: made.link, newPassword: NEW_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);
    const mark = await auditHead(fx.app.db.db);
    const res = await create({ email: address });
    assert.equal(res.statusCode, 409, res.body);
    assert.equal(res.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    const r = await cli(["--email", address]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /already exists/);
    assert.equal((await fx.app.accounts.users.findByIdentifier(address))?.id, made.id, "the finished sign-up keeps its address");
    assert.deepEqual(await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT, "user.created"]), []);
  });

  it("attack: on PostgreSQL, a sign-up finished while the create waits for its link lock keeps its address: the create, which saw it unfinished, answers 409 and deletes nothing", async (t) => {
    if (fx.app.db.dialect !== "postgres") return void t.skip("SQLite runs one write transaction at a time: nothing finishes in between");
    const address = `racing-${++n}@corp.example`;
    const made = await flows.unfinishedSignUp(address);
    const hash = await fx.app.accounts.passwords.hash(NEW_PASSWORD);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let taken!: () => void;
    const lockTaken = new Promise<void>((resolve) => (taken = resolve));
    // The link's completion as it runs: its link lock first, then the password, committed only once released.
    const finishing = fx.app.db.transaction(async (trx) => {
      await lockAccountLinks(fx.app.db, trx, made.id);
      await trx.updateTable("users").set({ password_hash: hash, password_scheme: "argon2id", password_changed_at: fx.clock.now() }).where("id", "=", made.id).execute();
      taken();
      await released;
    });
    await lockTaken;
    const mark = await auditHead(fx.app.db.db);
    const pending = create({ email: address });
    // The create read the sign-up as unfinished (the password is not committed) and now waits for its link lock.
    let waited = false;
    for (let i = 0; i < 100 && !waited; i++) {
      const waiting = await sql<{ n: string | number }>`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and wait_event = 'advisory'`.execute(fx.app.db.db);
      waited = Number(waiting.rows[0]?.n ?? 0) > 0;
      if (!waited) await new Promise((resolve) => setTimeout(resolve, 30));
    }
    release();
    assert.ok(waited, "control: the create saw the sign-up unfinished and waited for its link lock");
    await finishing;
    const res = await pending;
    assert.equal(res.statusCode, 409, `a sign-up finished meanwhile was taken: ${res.body}`);
    assert.equal(res.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    assert.equal((await fx.app.accounts.users.findByIdentifier(address))?.id, made.id, "the finished sign-up keeps its address");
    assert.deepEqual(await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT, "user.created"]), []);
  });

  it("attack: an account an administrator made without a password (an invitation) is not a sign-up: creating it again is refused as taken, the invitation kept", async () => {
    const address = `invited-${++n}@corp.example`;
    const first = await create({ email: address });
    assert.equal(first.statusCode, 201, first.body);
    const again = await create({ email: address });
    assert.equal(again.statusCode, 409, again.body);
    assert.equal(again.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    const r = await cli(["--email", address]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal((await fx.app.accounts.users.findByIdentifier(address))?.id, first.json().user.id);
  });

  it("attack: a create refused for another reason (a taken username) deletes no sign-up: the squat stays until a create succeeds", async () => {
    const address = `refused-${++n}@corp.example`;
    const squat = await flows.unfinishedSignUp(address);
    const holder = await create({ email: `holder-${n}@corp.example`, username: `taken${n}` });
    assert.equal(holder.statusCode, 201, holder.body);
    const mark = await auditHead(fx.app.db.db);
    const res = await create({ email: address, username: `taken${n}` });
    assert.equal(res.statusCode, 409, res.body);
    assert.equal(res.json().error.code, "BULWARK_ERR_USERNAME_TAKEN");
    assert.ok(await fx.app.accounts.users.getById(squat.id), "the refused create rolled the deletion back");
    assert.deepEqual(await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT]), []);
  });

  it("sign-up itself still answers a free and a taken address alike (ASVS 6.3.8)", async () => {
    const taken = await create({ email: `known-${++n}@corp.example` });
    assert.equal(taken.statusCode, 201, taken.body);
    const answers = [];
    for (const email of [`known-${n}@corp.example`, `unknown-${n}@corp.example`]) {
      const res = await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email } });
      answers.push({ status: res.statusCode, body: res.body });
    }
    assert.deepEqual(answers[0], answers[1]);
  });
});
