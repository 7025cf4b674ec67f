// Red team on two features of one day: an administrator setting an account's email address after a hijack
// (POST /api/v1/users/:id/email over set-by-administrator.ts) and passwordUnproven (migration 24: no administrative
// role over the API until a password is set through a reset link mailed to the account's address). This round
// attacked: what the restore leaves the hijacker (the password they set, a login in flight, a reset request or an
// email-change request racing the restore), ways to clear passwordUnproven without the owner ever setting the password
// (moving the address back through the self-service email change instead of set-email), and races on PostgreSQL
// between set-email and a reset completion, a grant, a second set-email and an account creation taking the address.
// The attackers: (a) a help desk holding accounts.write (not admin) that wants to control an account an administrator
// then promotes; (b) a hijacker who held the account (their own mailbox, a password they set through the reset link
// mailed there) when the administrator restores it. Real server, real credentials (authFixture, mailed links through
// SMTP); nothing fakes request.auth. Each test is an attack that must fail on correct code. Two findings were fixed the
// same day (the restore ends the password and mails a reset link; an email confirmation marks the password unproven);
// their tests say "(was: …)".
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { HOST, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { authFixtureOn, authFlows, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";

/** The password a hijacker sets through the reset link mailed to their own mailbox. */
const THIEF_PASSWORD = "thief keeps this lantern 4471";

forEachDialect("red team: an administrator sets an account's address", (dx) => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  /** The help desk: accounts.read + accounts.write, no admin. */
  let desk: string;
  /** An administrator never touched by the tests. */
  let root: string;
  let n = 0;
  before(async () => {
    fx = await authFixtureOn(dx, "admin-set-email-red-team");
    desk = await flows.tokenFor(await flows.userWith(["accounts.write", "accounts.read"]), ["accounts.write", "accounts.read"]);
    root = await flows.tokenFor((await fx.user("root-rt@example.org", { roles: ["admin"] })).id, ["admin"]);
  });
  after(async () => {
    await fx?.close();
  });

  const api = (token: string, method: "GET" | "POST", url: string, body?: unknown): Promise<LightMyRequestResponse> =>
    fx.server.inject({
      method, url, headers: { host: HOST, authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  const setEmail = (id: string, email: string, token = desk): Promise<LightMyRequestResponse> => api(token, "POST", `/api/v1/users/${id}/email`, { email });
  const account = async (id: string) => (await fx.app.accounts.users.getById(id))!;
  const authenticated = async (b: Browser): Promise<boolean> => (await b.request("GET", "/auth/session")).json().authenticated === true;
  /** Every link of kind `link` mailed to `address` so far (the outbox delivered first). */
  const linksTo = async (address: string, link: RegExp): Promise<string[]> => {
    await fx.deliver();
    return fx.mailTo(address).filter((m) => link.test(m.body)).map((m) => link.exec(m.body)![1] as string);
  };
  const completeReset = (token: string, newPassword: string): Promise<LightMyRequestResponse> =>
    fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword } });

  /**
   * The hijack of test/admin-set-email.test.ts taken one step further, as a real hijacker does: with the owner's fresh
   * session the thief moves the account to their mailbox, asks for a reset there and sets a password only they know.
   * `reset: false` stops before the reset, leaving the thief signed in with the owner's password.
   */
  async function hijacked(options: { reset?: boolean } = {}): Promise<{ id: string; owner: string; thiefMail: string; thief: Browser; password: string }> {
    const k = ++n;
    const owner = await flows.signedIn(`rt-owner${k}@example.org`);
    const thiefMail = `rt-thief${k}@evil.example`;
    assert.equal((await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: thiefMail } })).statusCode, 202);
    const moved = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: (await linksTo(thiefMail, EMAIL_LINK)).at(-1) } });
    assert.equal(moved.statusCode, 200, moved.body);
    fx.clock.advance(1_000);
    let password = owner.password;
    if (options.reset !== false) {
      assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: thiefMail } })).statusCode, 202);
      const done = await completeReset((await linksTo(thiefMail, RESET_LINK)).at(-1)!, THIEF_PASSWORD);
      assert.equal(done.statusCode, 200, done.body);
      password = THIEF_PASSWORD;
      fx.clock.advance(1_000);
    }
    const thief = fx.browser({ newDevice: true });
    assert.equal((await thief.login(thiefMail, password)).statusCode, 200);
    assert.ok(await authenticated(thief), "the thief holds the account");
    return { id: owner.id, owner: owner.email, thiefMail, thief, password };
  }

  it("attack: after the administrator restores the owner's address, the hijacker cannot sign in with the password they set through the reset link mailed to their mailbox: the restore ends the password and mails the owner a reset link (ASVS 6.4.3, 7.4.3) (was: the password stood, and the hijacker signed in with the owner's address and moved the account away again)", async () => {
    const h = await hijacked();
    const restored = await setEmail(h.id, h.owner);
    assert.equal(restored.statusCode, 200, restored.body);
    assert.equal(restored.json().changed, true);
    assert.equal(await authenticated(h.thief), false, "the thief's session ended with the restore");
    fx.clock.advance(1_000);

    // The thief knew the owner's address (they signed in with it before moving the account) and holds the password.
    const again = fx.browser({ newDevice: true });
    const login = await again.login(h.owner, THIEF_PASSWORD);
    const back = await authenticated(again);
    if (back) {
      // A login is a fresh session: it may ask for an email change at once, read the link in its mailbox and confirm it,
      // before the owner has read the administrator's notice, let alone asked for a reset.
      const asked = await again.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: `re-${h.thiefMail}` } });
      assert.equal(asked.statusCode, 202, asked.body);
      const link = (await linksTo(`re-${h.thiefMail}`, EMAIL_LINK)).at(-1);
      if (link) await fx.browser().request("POST", "/auth/email/confirm", { body: { token: link } });
    }
    assert.equal((await account(h.id)).email, h.owner, "the hijacker moved the restored account back to a mailbox of theirs");
    assert.equal(back, false, `the hijacker's password still signs in to the restored account (login answered ${login.statusCode})`);
  });

  it("attack: a help desk cannot launder an account's unproven password through the self-service email change (its own mailbox, a reset there, then back to the owner's address on the owner's click): the confirmation leaves the password unproven and the admin grant is refused (ASVS 8.2.2) (was: the confirmation kept the mark cleared and the grant answered 200)", async () => {
    const k = ++n;
    const hireMail = `rt-hire${k}@example.org`;
    const deskMail = `rt-desk${k}@evil.example`;
    const deskPassword = "desk chose this copper kite 6620";
    // The help desk makes the new hire's account with an initial password, as it may.
    const created = await api(desk, "POST", "/api/v1/users", { email: hireMail, password: "initial from the desk 9182" });
    assert.equal(created.statusCode, 201, created.body);
    const hire = created.json().user.id as string;
    assert.equal((await account(hire)).passwordUnproven, true);
    // To its own mailbox (set-email marks the password unproven), a reset link there (clears it: "the account's address").
    assert.equal((await setEmail(hire, deskMail)).statusCode, 200);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: deskMail } })).statusCode, 202);
    assert.equal((await completeReset((await linksTo(deskMail, RESET_LINK)).at(-1)!, deskPassword)).statusCode, 200);
    fx.clock.advance(1_000);
    // Back to the hire's address, not through set-email (which would mark it again) but as the account itself.
    const b = fx.browser({ newDevice: true });
    assert.equal((await b.login(deskMail, deskPassword)).statusCode, 200);
    assert.equal((await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: hireMail } })).statusCode, 202);
    // The hire gets "confirm this address for your account" from the service, and clicks: it is their address.
    const confirmed = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: (await linksTo(hireMail, EMAIL_LINK)).at(-1) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    fx.clock.advance(1_000);
    assert.equal((await account(hire)).email, hireMail);

    // The administrator promotes the hire. The password is the help desk's: no reset link mailed to this address set it.
    const grant = await api(root, "POST", `/api/v1/users/${hire}/roles/admin`);
    if (grant.statusCode === 200) {
      const asAdmin = fx.browser({ newDevice: true });
      assert.equal((await asAdmin.login(hireMail, deskPassword)).statusCode, 200, "the help desk signs in as the administrator it made");
    }
    assert.equal(grant.statusCode, 409, `the administrative grant went through: ${grant.body}`);
    assert.equal(grant.json().error.code, "BULWARK_ERR_ROLE_INITIAL_PASSWORD");
    assert.equal((await account(hire)).passwordUnproven, true, "the password was set through a link mailed to the help desk's address, not this one");
  });

  it("attack: a reset completion of the link mailed to the hijacker, racing the restore, never leaves the password proven: whichever commits first, the account ends with the owner's address and passwordUnproven set", async () => {
    const h = await hijacked({ reset: false });
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: h.thiefMail } })).statusCode, 202);
    const link = (await linksTo(h.thiefMail, RESET_LINK)).at(-1)!;
    const [reset, restored] = await Promise.all([completeReset(link, THIEF_PASSWORD), setEmail(h.id, h.owner)]);
    assert.equal(restored.statusCode, 200, restored.body);
    assert.ok(reset.statusCode === 200 || reset.statusCode === 400, `the reset is done or refused, never a 5xx: ${reset.statusCode} ${reset.body}`);
    const after = await account(h.id);
    assert.equal(after.email, h.owner);
    assert.equal(after.passwordUnproven, true, `the reset (${reset.statusCode}) left the password proven after the restore`);
    // And whatever the order, the reset link mailed to the thief no longer works.
    assert.equal((await completeReset(link, "a second go with the same link 5531")).statusCode, 400);
  });

  it("attack: a reset request for the hijacker's address racing the restore mails no working link to the hijacker", async () => {
    const h = await hijacked({ reset: false });
    const before = (await linksTo(h.thiefMail, RESET_LINK)).length;
    const [asked, restored] = await Promise.all([
      fx.browser().request("POST", "/auth/password/reset/request", { body: { email: h.thiefMail } }),
      setEmail(h.id, h.owner),
    ]);
    assert.equal(asked.statusCode, 202, asked.body);
    assert.equal(restored.statusCode, 200, restored.body);
    for (const link of (await linksTo(h.thiefMail, RESET_LINK)).slice(before)) {
      const used = await completeReset(link, THIEF_PASSWORD);
      assert.equal(used.statusCode, 400, `a reset link mailed to the hijacker during the restore set the password: ${used.body}`);
    }
    assert.equal((await account(h.id)).email, h.owner);
  });

  it("attack: an email-change request from the hijacker's session racing the restore leaves no working link: the account is not moved away again", async () => {
    const h = await hijacked({ reset: false });
    const elsewhere = `away-${h.thiefMail}`;
    // The CSRF token is fetched first: fetched inside the race, a restore that ends the session first answered that
    // GET 401 and the helper threw, where the race is the request's against the restore.
    const token = await h.thief.csrf();
    const [asked, restored] = await Promise.all([
      h.thief.request("POST", "/auth/email/change", { csrf: token, body: { newEmail: elsewhere } }),
      setEmail(h.id, h.owner),
    ]);
    assert.equal(restored.statusCode, 200, restored.body);
    assert.ok(asked.statusCode < 500, `${asked.statusCode} ${asked.body}`);
    for (const link of await linksTo(elsewhere, EMAIL_LINK)) {
      const confirmed = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: link } });
      assert.equal(confirmed.statusCode, 400, `a link asked for during the restore moved the account: ${confirmed.body}`);
    }
    assert.equal((await account(h.id)).email, h.owner);
  });

  it("attack: a login of the hijacker at their address racing the restore (the same millisecond: the clock stands still) leaves them no session", async () => {
    const h = await hijacked({ reset: false });
    const racer = fx.browser({ newDevice: true });
    const [, restored] = await Promise.all([racer.login(h.thiefMail, h.password), setEmail(h.id, h.owner)]);
    assert.equal(restored.statusCode, 200, restored.body);
    assert.equal(await authenticated(racer), false, "a login begun before the restore kept a session after it");
    assert.equal(await authenticated(h.thief), false);
  });

  it("attack: an administrative grant racing a help desk's set-email never both succeed: either the grant comes first and the help desk is outranked, or the address comes first and the grant waits for a mailed reset (ASVS 8.2.2)", async () => {
    const target = await fx.user(`rt-grant${++n}@example.org`);
    const deskMail = `rt-grant-desk${n}@evil.example`;
    const [grant, moved] = await Promise.all([api(root, "POST", `/api/v1/users/${target.id}/roles/admin`), setEmail(target.id, deskMail)]);
    const granted = grant.statusCode === 200 && grant.json().changed === true;
    const changed = moved.statusCode === 200 && moved.json().changed === true;
    assert.ok(!(granted && changed), "the account became an administrator whose address the help desk set to its own mailbox");
    assert.ok(granted || changed, `one of them goes through: grant ${grant.statusCode} ${grant.body}; set-email ${moved.statusCode} ${moved.body}`);
    if (granted) {
      assert.equal(moved.statusCode, 403, moved.body);
      assert.equal((await account(target.id)).email, target.email);
    } else {
      assert.equal(grant.statusCode, 409, grant.body);
      assert.deepEqual(await fx.app.accounts.roles.rolesOf(target.id), []);
    }
  });

  it("attack: two restores at once to different addresses leave one chain: the second moves the address from the first's, the last address holds the account, and each address is told what it should be", async () => {
    const h = await hijacked({ reset: false });
    const a = `rt-a${n}@example.org`;
    const b = `rt-b${n}@example.org`;
    const results = await Promise.all([setEmail(h.id, a), setEmail(h.id, b)]);
    for (const r of results) assert.equal(r.statusCode, 200, r.body);
    const outcomes = results.map((r) => r.json() as { changed: boolean; oldEmail: string; newEmail: string; eventId: string });
    assert.ok(outcomes.every((o) => o.changed));
    const first = outcomes.find((o) => o.oldEmail === h.thiefMail);
    const second = outcomes.find((o) => o.oldEmail !== h.thiefMail);
    assert.ok(first && second, `one moved the address from the thief's, the other from it: ${JSON.stringify(outcomes)}`);
    assert.equal(second.oldEmail, first.newEmail);
    assert.equal((await account(h.id)).email, second.newEmail);
    await fx.deliver();
    const told = (address: string, subject: string): number => fx.mailTo(address).filter((m) => m.subject.includes(subject)).length;
    assert.equal(told(h.thiefMail, "removed from an account"), 1);
    assert.equal(told(first.newEmail, "an administrator set your email address"), 1);
    assert.equal(told(first.newEmail, "removed from an account"), 1);
    assert.equal(told(second.newEmail, "an administrator set your email address"), 1);
    assert.equal(told(second.newEmail, "removed from an account"), 0);
    for (const m of fx.mailTo(h.thiefMail)) assert.doesNotMatch(m.body, new RegExp(`rt-[ab]${n}@`), "the hijacker's old address learns neither new address");
    const events = await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", "user.email-set").where("subject", "=", h.id).execute();
    assert.equal(events.length, 2);
  });

  it("attack: a set-email to an address that an account being created takes at that moment: exactly one of them gets it, the other is refused with a conflict (never a 5xx, never two accounts under one address)", async () => {
    const h = await hijacked({ reset: false });
    const contested = `rt-contested${n}@example.org`;
    const [moved, created] = await Promise.all([setEmail(h.id, contested), api(desk, "POST", "/api/v1/users", { email: contested })]);
    const statuses = [moved.statusCode, created.statusCode].sort();
    assert.ok(
      JSON.stringify(statuses) === JSON.stringify([200, 409]) || JSON.stringify(statuses) === JSON.stringify([201, 409]),
      `one wins, one is a conflict: set-email ${moved.statusCode} ${moved.body}; create ${created.statusCode} ${created.body}`,
    );
    const holders = await fx.app.db.db.selectFrom("users").select("id").where("email_key", "=", contested).execute();
    assert.equal(holders.length, 1);
    assert.equal((await account(h.id)).email, moved.statusCode === 200 ? contested : h.thiefMail);
  });
});
