// Red team: locking the owner out. The attacker here does not want in. They want one particular person (a customer, the
// on-call administrator) unable to sign in, reset, re-authenticate or act, when it matters (during an incident),
// cheaply and again and again, without knowing the password. They know the victim's address, and they can send any
// number of anonymous requests from many client addresses (a botnet, or the /64s of one free IPv6 /48 from a tunnel
// broker). This round spends every per-account and per-mailbox limit an outsider can reach: the 100-failure stop, the
// reset links' hourly budget, and the per-mailbox budget that sign-ups share with email changes. Each test is an attack
// that must fail. The "attack: … (was: …)" tests failed on the day they were written, fixed since: the 100-failure stop
// (flood.ts, counted across every client address) refused the owner's right password from their known browser, undid
// the reset that lifts it, and refused an administrator's re-authentication (now a known browser or a live aal-2 session
// has a window of its own past the stop); and anonymous sign-ups spent the per-mailbox budget an owner's email change
// needs (now each has its own).
// Held (kept as attacks): the owner's reset link survives the outsider's further requests. Read and not tested here
// (already pinned elsewhere, or nothing to pin): the per-account+IP window, the device cookie (no outsider makes a
// browser known), the second-factor counters (no outsider reaches them), no lock held across a hash or a mail, and no
// rule that locks or disables an account by itself. SQLite, in process, with a real SMTP server (authFixture).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { DEFAULT_RESET_POLICY } from "../src/accounts/password-reset/index.ts";
import { authFixture, GOOD_PASSWORD, HOST, ORIGIN, totpCode, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { EMAIL_LINK, loginFrom, RESET_LINK } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const NEW_PASSWORD = "copper meadow whistles softly";
/** The flood policy's defaults (docs/password-policy.md): 5 per account and client per 6 hours, 100 in a row per account. */
const PER_CLIENT = 5;
const STOP = 100;

// Sign-up open: an outsider's other way to make the server mail a mailbox (and spend its per-mailbox budget).
const fx = sharedFixture(() => authFixture({ BULWARK_REGISTRATION: "open" }));

/** A public JSON POST from socket address `ip`, as a same-origin page (or a script posing as one) sends it. */
function post(f: AuthFixture, url: string, body: unknown, ip: string): Promise<LightMyRequestResponse> {
  return f.server.inject({
    method: "POST", url, remoteAddress: ip,
    headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json" },
    payload: JSON.stringify(body),
  });
}

/**
 * The outsider's wave: `STOP` wrong passwords naming `email`, five from each client address `address(i)` (inside every
 * per-client window, so flood control never answers the attacker with a 429). Returns the status codes seen.
 */
async function wave(f: AuthFixture, email: string, address: (client: number) => string, label: string): Promise<Set<number>> {
  const codes = new Set<number>();
  for (let i = 0; i < STOP; i++) codes.add((await loginFrom(f, email, `${label} guess ${i}`, address(Math.floor(i / PER_CLIENT)))).statusCode);
  return codes;
}

/** The newest token of kind `link` mailed to `address` (the outbox delivered first). */
async function newestLink(f: AuthFixture, address: string, link: RegExp): Promise<string | undefined> {
  await f.deliver();
  const hit = f.mailTo(address).filter((m) => link.test(m.body)).at(-1);
  return hit ? (link.exec(hit.body) as RegExpExecArray)[1] : undefined;
}

/** Every `auth.login.succeeded` event of `userId`, oldest first. */
async function successes(f: AuthFixture, userId: string): Promise<Array<Record<string, unknown>>> {
  const rows = await f.app.db.db.selectFrom("audit_events").select(["type", "data"]).where("subject", "=", userId).orderBy("seq").execute();
  return rows.filter((r) => r.type === "auth.login.succeeded").map((r) => (typeof r.data === "string" ? JSON.parse(r.data) : r.data) as Record<string, unknown>);
}

/** The outcomes of `userId`'s email-change requests (auth.email.change-requested), oldest first. */
async function outcomes(f: AuthFixture, userId: string): Promise<unknown[]> {
  const rows = await f.app.db.db.selectFrom("audit_events").select(["type", "data"]).where("subject", "=", userId).where("type", "=", "auth.email.change-requested").orderBy("seq").execute();
  return rows.map((r) => ((typeof r.data === "string" ? JSON.parse(r.data) : r.data) as Record<string, unknown>).outcome);
}

/**
 * An owner without a second factor who has signed in from their own computer before (its own known-device cookie jar),
 * signed out again. Checked: the server names the browser as known (`newDevice: false`) at its second sign-in.
 */
async function ownerWithKnownBrowser(f: AuthFixture, email: string): Promise<{ id: string; email: string; b: Browser }> {
  const u = await f.user(email);
  const b = f.browser({ newDevice: true });
  for (let i = 0; i < 2; i++) {
    const r = await b.login(u.email, u.password);
    assert.equal(r.statusCode, 200, r.body);
    assert.equal((await b.request("POST", "/auth/logout", { csrf: true })).statusCode, 200);
  }
  assert.equal((await successes(f, u.id)).at(-1)?.newDevice, false, "precondition: the owner's browser is a known device of the account");
  return { id: u.id, email: u.email, b };
}

describe("the 100-failure stop as a weapon (an outsider with a list of addresses)", () => {
  it("attack: an outsider's 100 wrong passwords for a victim from 20 addresses (5 each, never once throttled) do not lock the owner out of their own known browser, which has a failure window of its own past the account's stop (NIST SP 800-63B §5.2.2; ASVS 6.3.1) (was: the owner's right password answered 429 'blocked until its password is reset', six hours later too)", async () => {
    const owner = await ownerWithKnownBrowser(fx, "customer-locked@example.org");

    // 100 anonymous requests: 5 from each of 20 addresses, each inside its per-account+IP window and its per-IP hour.
    const codes = await wave(fx, owner.email, (c) => `198.18.10.${c + 1}`, "outsider");
    assert.deepEqual([...codes], [401], "no flood limit ever answered the attacker: every guess was heard");

    // Hours later, the owner signs in as every day: the right password, the known browser, the usual address.
    fx.clock.advance(6 * 60 * MINUTE + MINUTE);
    const owned = await owner.b.login(owner.email, GOOD_PASSWORD);
    // Secure: a browser that proved itself to this account (the known-device cookie the server keys and checks) is not
    // stopped by failures sent from elsewhere; the stop still holds every unknown browser (OWASP's device cookies).
    // Today: 429 with no Retry-After, "blocked until its password is reset by mail or an administrator clears the block".
    assert.equal(owned.statusCode, 200, `the owner's own sign-in answered ${owned.statusCode} ${owned.body}`);
  });

  it("attack: the documented way out of the 100-failure stop (a password reset) is not undone by the outsider's next 100 guesses: the browser that made the reset is known and signs in with the new password (ASVS 6.3.1, 6.4.3) (was: 429 again, the owner's only remedies another reset or an administrator)", async () => {
    const owner = await ownerWithKnownBrowser(fx, "oncall-reset@example.org");
    assert.deepEqual([...await wave(fx, owner.email, (c) => `198.18.20.${c + 1}`, "first")], [401]);
    // The stop stands for every browser the account does not know (documented); the owner's own browser is let through
    // since the first finding's fix, so the check is made from an unknown one (a success would clear the streak).
    assert.equal((await loginFrom(fx, owner.email, GOOD_PASSWORD, "127.0.0.1")).statusCode, 429, "the stop stands for an unknown browser (documented)");

    // While the stop stands, the outsider's probe is refused before anything is counted: it can poll for free.
    const probe = (): Promise<LightMyRequestResponse> => loginFrom(fx, owner.email, "probe", "198.18.21.1");
    for (let i = 0; i < 20; i++) assert.equal((await probe()).statusCode, 429);

    // The owner takes the documented way out: a reset through the mailed link, in their own browser.
    assert.equal((await owner.b.request("POST", "/auth/password/reset/request", { body: { email: owner.email } })).statusCode, 202);
    const token = await newestLink(fx, owner.email, RESET_LINK);
    assert.ok(token, "the reset mail carries a link");
    const reset = await owner.b.request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD } });
    assert.equal(reset.statusCode, 200, reset.body);

    // The next probe is heard (401): the outsider knows the stop is gone, and sends 99 more from fresh /64s of one /48
    // (a tunnel broker's free allocation; 500 failures an hour fit its site window).
    assert.equal((await probe()).statusCode, 401, "the free probe tells the outsider the reset happened");
    const codes = new Set<number>();
    for (let i = 0; i < STOP - 1; i++) codes.add((await loginFrom(fx, owner.email, `again ${i}`, `2001:db8:4b1d:${Math.floor(i / PER_CLIENT) + 1}::7`)).statusCode);
    assert.deepEqual([...codes], [401], "no flood limit answered the second wave either");

    const owned = await owner.b.login(owner.email, NEW_PASSWORD);
    // Secure: the browser that completed the reset (remembered by it, docs/http-auth.md) signs in with the new password.
    // Today: 429 again; the owner's only remedies are another reset (undone the same way) or an administrator.
    assert.equal(owned.statusCode, 200, `after the reset the owner's sign-in answered ${owned.statusCode} ${owned.body}`);
  });

  it("attack: during an incident, the on-call administrator's own signed-in session re-authenticates (right password and a right code) past the 100-failure stop an outsider filled, so containment can be started (ASVS 6.3.1, 7.5.1) (was: 429, the way out a reset that ends the session in use)", async () => {
    const admin = await fx.user("oncall-admin@example.org", { roles: ["admin"] });
    const suspect = await fx.user("compromised-user@example.org");
    const b = fx.browser({ newDevice: true });
    assert.equal((await b.login(admin.email, admin.password)).statusCode, 200);
    const secret = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    assert.equal((await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(11 * MINUTE); // past the 10-minute re-authentication window, inside the 30-minute idle timeout
    const early = await b.request("POST", "/api/v1/contain/jobs", { csrf: true, body: { levers: ["lock-accounts"], scope: { ids: [suspect.id] } } });
    assert.equal(early.statusCode, 403, `precondition: a stale session must re-authenticate first (${early.body})`);

    // The outsider (who knows the on-call rota's addresses) sends its 100 guesses.
    assert.deepEqual([...await wave(fx, admin.email, (c) => `198.18.30.${c + 1}`, "incident")], [401]);

    const reauth = await b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: admin.password, totp: totpCode(secret, fx.clock.now()) } });
    // Secure: a live aal-2 session presenting the right password and a right code re-authenticates: failures sent by
    // others, which never touched this session, do not stop it. Today: 429 "blocked until its password is reset by mail".
    assert.equal(reauth.statusCode, 200, `re-authentication answered ${reauth.statusCode} ${reauth.body}`);
    const job = await b.request("POST", "/api/v1/contain/jobs", { csrf: true, body: { levers: ["lock-accounts"], scope: { ids: [suspect.id] } } });
    assert.equal(job.statusCode, 202, job.body);
  });
});

describe("reset links and the per-mailbox budget (an outsider naming the victim's mailbox)", () => {
  it("attack: the outsider's further reset requests and sign-ups for the victim's address, from many addresses and in several spellings, after the owner asked for a link, do not void or replace the owner's link: the owner completes the reset with it (ASVS 6.4.1)", async () => {
    const owner = await fx.user("Link.Holder@example.org");
    assert.equal((await post(fx, "/auth/password/reset/request", { email: owner.email }, "192.0.2.40")).statusCode, 202);
    const mine = await newestLink(fx, owner.email, RESET_LINK);
    assert.ok(mine, "the owner's own link arrived");

    // Past the account's 3 links: the outsider's requests are refused silently, but each still runs the whole path.
    const spellings = ["link.holder@example.org", "LINK.HOLDER@EXAMPLE.ORG", "Link.Holder@Example.org"];
    for (let i = 0; i < 12; i++) {
      assert.equal((await post(fx, "/auth/password/reset/request", { email: spellings[i % 3] }, `198.18.40.${i + 1}`)).statusCode, 202);
      assert.equal((await post(fx, "/auth/register", { email: spellings[i % 3] }, `198.18.41.${i + 1}`)).statusCode, 202);
    }
    await fx.deliver();
    const links = fx.mailTo(owner.email).filter((m) => RESET_LINK.test(m.body));
    assert.equal(links.length, DEFAULT_RESET_POLICY.maxPerWindow, "the mailbox got the hourly number of links, not one per request");
    fx.clock.advance(20 * MINUTE);

    assert.equal((await fx.app.accounts.passwordReset.check(mine)).valid, true, "the owner's link still works after the flood");
    const done = await post(fx, "/auth/password/reset/complete", { token: mine, newPassword: NEW_PASSWORD }, "192.0.2.40");
    assert.equal(done.statusCode, 200, done.body);
    assert.equal((await loginFrom(fx, owner.email, NEW_PASSWORD, "192.0.2.40")).statusCode, 200);
  });

  it("attack: three anonymous sign-ups an hour naming sub-addresses of the owner's new mailbox (new.mailbox+1@, +2@, +3@) do not keep the owner's email change to it from being mailed: sign-ups have a per-mailbox budget of their own (ASVS 6.3.1, 2.4.1) (was: recipient-limited, no link, every hour)", async () => {
    const owner = await fx.user("moving-owner@example.org");
    const b = fx.browser({ newDevice: true });
    const target = "new.mailbox@example.net";
    let ip = 1;
    let last = "";
    for (let hour = 0; hour < 2; hour++) {
      if (hour > 0) fx.clock.advance(61 * MINUTE);
      // Each hour the outsider spends the mailbox's three slots with sign-ups for sub-addresses of it (folded to one mailbox).
      for (let i = 1; i <= 3; i++) assert.equal((await post(fx, "/auth/register", { email: `new.mailbox+h${hour}n${i}@example.net` }, `198.18.50.${ip++}`)).statusCode, 202);
      // The owner signs in (fresh) and asks to move the account to the mailbox they control.
      assert.equal((await b.login(owner.email, owner.password)).statusCode, 200);
      const asked = await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } });
      assert.equal(asked.statusCode, 202, asked.body);
      const link = await newestLink(fx, target, EMAIL_LINK);
      // Secure: a change asked for by the account's owner from a fresh session is not starved by anonymous sign-ups (a
      // budget of its own per mailbox, or sign-ups counted apart). Today: withheld, the old address told "no link sent".
      const outcome = (await outcomes(fx, owner.id)).at(-1);
      assert.ok(link, `hour ${hour}: no confirmation link reached ${target} (the request's outcome: ${outcome}); the owner cannot move the account there`);
      last = link;
    }
    assert.equal((await post(fx, "/auth/email/confirm", { token: last }, "192.0.2.50")).statusCode, 200);
  });
});
