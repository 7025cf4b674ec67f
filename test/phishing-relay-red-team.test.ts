// Red team round: a real-time phishing relay (adversary in the middle, Evilginx-style). The attacker runs a look-alike
// site (https://bulwark-login.example) that relays every request of the victim to the real service and every answer
// back, rewriting Host, Origin, Referer and cookie domains as a reverse proxy does. It sees the password, the TOTP and
// recovery codes the victim types, every cookie (session, CSRF, known-device d2) and every JSON answer. It cannot make
// the victim's authenticator sign for the real origin (WebAuthn binds origin and RP ID) and it sends from its own
// addresses and browsers, never the victim's. It wants one relayed password + TOTP sign-in to leave it something the
// owner is never told of, and a passkey ceremony that passes from a page of its own.
// Steps pinned by earlier rounds are not repeated: phishing-origin assertions at the gate and at re-authentication
// (http-auth-mfa, http-auth-reauth), sibling/http/port/parent-RP-ID ceremonies (webauthn-second-look), code replay
// (http-auth-mfa), persistence planted by a fresh session and the owner's take-back (planted-persistence, takeback,
// stolen-session), evidence naming the acting session and address (responder-evidence, headers), the known-device
// cookie's own attacks (device-cookie-attacks).
// "attack: … (was: …)" tests failed on the day they were written (two findings, fixed since: the factor step remembers
// a browser only when the owner was told of it, migration 34; passkey origins are BULWARK_PUBLIC_URL's alone); the
// other pins a defence that holds.
// SQLite in a temp dir, requests injected from chosen socket addresses, cheap argon2. ASVS 5.0 ids.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, totpCode } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { AddressedBrowser, nextHourPlus } from "./helpers/addressed-browser.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** The relying party: the host of BULWARK_PUBLIC_URL in the fixture. */
const RP = "bulwark.test";
const NEW_DEVICE_SUBJECT = /a sign-in from a new device or browser/;
const RELAY_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0 Safari/537.36";

describe("red team: a phishing relay and the known-device cookie (ASVS 6.3.5)", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);

  /** New-device notices delivered to `address` (the outbox drained first). */
  async function newDeviceNotices(address: string): Promise<Array<{ subject: string; body: string }>> {
    await fx.deliver();
    return fx.mailTo(address).filter((m) => NEW_DEVICE_SUBJECT.test(m.subject));
  }

  /** The `newDevice` flag of the auth.login.succeeded event that made session `sessionId`. */
  async function loginRecordedNew(sessionId: string): Promise<unknown> {
    const rows = await fx.app.db.db.selectFrom("audit_events").select(["data"]).where("type", "=", "auth.login.succeeded").execute();
    const hit = rows.map((r) => JSON.parse(r.data) as Record<string, unknown>).find((d) => d["sessionId"] === sessionId);
    assert.ok(hit, `no auth.login.succeeded names session ${sessionId}`);
    return hit["newDevice"];
  }

  it("attack: a relay browser that passes the second factor in an hour whose new-device notice already went out (to a throwaway sign-in of the relay's, at another address) stays new, since the owner was never told of it, so its later relayed sign-ins are told and recorded as new (ASVS 6.3.5, 16.3.1) (was: remembered as known at the factor step, its later sign-ins silent and recorded as known)", async () => {
    const owner = await flows.withTOTP(`relay-known-${Date.now()}@example.org`);
    nextHourPlus(fx, 5);
    // The victim types the password into the look-alike page. Before relaying it, the relay signs in once with it from
    // a throwaway browser at one address: the hour's one new-device notice goes out, naming that address; that browser
    // is held at the second-factor gate and goes no further.
    const throwaway = new AddressedBrowser(() => fx, "203.0.113.10", RELAY_UA);
    const held = await throwaway.login(owner.email, owner.password);
    assert.equal(held.statusCode, 200, held.body);
    assert.equal(held.json().mfaRequired, true);
    const toldFirst = await newDeviceNotices(owner.email);
    // Then the relay's real browser, at another address, carries the victim's sign-in: the password, then the code the
    // victim types a moment later.
    const relay = new AddressedBrowser(() => fx, "198.51.100.200", RELAY_UA);
    const relayed = await relay.login(owner.email, owner.password);
    assert.equal(relayed.statusCode, 200, relayed.body);
    assert.equal(relayed.json().mfaRequired, true);
    const stepped = await relay.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(stepped.statusCode, 200, stepped.body);
    // Control: documented, at most one new-device notice an hour; the relayed sign-in itself was told of to no one.
    assert.equal((await newDeviceNotices(owner.email)).length, toldFirst.length, "control: the hour's notice was spent by the throwaway sign-in");
    assert.ok(relay.device, "control: the relay's browser holds a known-device cookie");
    // Three days later the relay phishes the same victim again (a new lure, the same relay browser and cookie jar).
    fx.clock.advance(3 * DAY);
    const again = await relay.login(owner.email, owner.password);
    assert.equal(again.statusCode, 200, again.body);
    const again2 = await relay.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(again2.statusCode, 200, again2.body);
    const told = await newDeviceNotices(owner.email);
    const gaps: string[] = [];
    if (!told.some((m) => m.body.includes(relay.address))) {
      gaps.push(`no new-device notice ever named the relay browser's address ${relay.address} (notices: ${JSON.stringify(told.map((m) => /IP address ([0-9a-f.:]*[0-9a-f])/.exec(m.body)?.[1]))})`);
    }
    if ((await loginRecordedNew(again.json().sessionId as string)) !== true) gaps.push("the later relayed sign-in is recorded as newDevice: false, so `check logins` and a responder read it as a returning browser");
    // Secure (docs/http-auth.md, "The known-device cookie"): a browser becomes known to an account only once the owner
    // was told of it, and for an account with a second factor only once that factor is passed — both, not either.
    // Today POST /auth/mfa/verify remembers every browser that passes the factor (rememberThisDevice), whether or not
    // the login's new-device notice was sent.
    assert.deepEqual(gaps, [], "a browser the owner was never told of became known at the second factor");
  });

  it("attack: one captured code buys the relay one session — the victim's TOTP code sent at once from two of its held sessions steps up exactly one, the other is refused and recorded as `replayed` naming its session and address, the owner is told of the refused factor; a captured recovery code likewise works once, told to the owner with the relay's address (ASVS 6.5.1, 6.3.5, 16.3.1)", async () => {
    const owner = await flows.withTOTP(`relay-once-${Date.now()}@example.org`);
    const codes = await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    assert.equal(codes.statusCode, 200, codes.body);
    const recovery = (codes.json().codes as string[])[0] as string;
    fx.clock.advance(STEP);
    await fx.deliver();
    const mailed = fx.mailTo(owner.email).length;
    // Two sessions held at the gate (one for the relay to keep, one to give the victim's page a plausible answer).
    const keep = new AddressedBrowser(() => fx, "203.0.113.30", RELAY_UA);
    const decoy = new AddressedBrowser(() => fx, "203.0.113.31", RELAY_UA);
    for (const b of [keep, decoy]) assert.equal((await b.login(owner.email, owner.password)).json().mfaRequired, true);
    const held = new Map<AddressedBrowser, string>();
    for (const b of [keep, decoy]) held.set(b, (await b.request("GET", "/auth/session")).json().sessionId as string);
    const mark = Number((await fx.app.db.db.selectFrom("audit_events").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst())?.seq ?? 0);
    const code = totpCode(owner.secret, fx.clock.now());
    const [a, b] = await Promise.all([keep, decoy].map((r) => r.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } })));
    const statuses = [a?.statusCode, b?.statusCode].sort();
    assert.deepEqual(statuses, [200, 401], `exactly one session steps up with one code: ${a?.body} / ${b?.body}`);
    const [won, lost] = a?.statusCode === 200 ? [keep, decoy] : [decoy, keep];
    const refusal = (a?.statusCode === 401 ? a : b) as LightMyRequestResponse;
    assert.equal(refusal.json().error.code, "BULWARK_ERR_MFA_INVALID");
    const failed = (await fx.app.db.db.selectFrom("audit_events").select(["type", "data"]).where("seq", ">", mark).where("type", "=", "auth.mfa.failed").execute())
      .map((r) => JSON.parse(r.data) as Record<string, unknown>);
    assert.equal(failed.length, 1, JSON.stringify(failed));
    assert.equal(failed[0]?.["reason"], "replayed", "the loser is recorded as a replay of a spent code, the sign of a relay, not as a mistyped code");
    assert.equal(failed[0]?.["ip"], lost.address);
    assert.equal(failed[0]?.["sessionId"], held.get(lost), "the refusal names the session held at the gate, the one a responder ends");
    assert.equal((await lost.request("GET", "/auth/sessions")).statusCode, 403, "the losing session stays at the gate");
    assert.equal((await won.request("GET", "/auth/sessions")).statusCode, 200);
    // A recovery code the victim types: the relay's first use passes, a second anywhere does not.
    const third = new AddressedBrowser(() => fx, "203.0.113.32", RELAY_UA);
    assert.equal((await third.login(owner.email, owner.password)).json().mfaRequired, true);
    assert.equal((await third.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: recovery } })).statusCode, 200);
    assert.equal((await lost.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: recovery } })).statusCode, 401, "a recovery code works once");
    await fx.deliver();
    const told = fx.mailTo(owner.email).slice(mailed);
    assert.ok(told.some((m) => /second factor was refused/.test(m.subject)), `the owner is told of the refused factor: ${JSON.stringify(told.map((m) => m.subject))}`);
    assert.ok(told.some((m) => /recovery code/i.test(m.subject) && m.body.includes(third.address)), `the owner is told a recovery code signed in, from the relay's address: ${JSON.stringify(told.map((m) => m.subject))}`);
  });
});

describe("red team: a relay page on an origin the operator trusts for form posts (ASVS 6.3.3)", () => {
  // The operator lists a site under the service's own host as a trusted origin — documented as "extra origins allowed
  // to POST with a cookie" (a marketing site's sign-in form, say). The relay serves its page there (a subdomain taken
  // over, or any page it can put content on): browsers let a page under the RP ID run ceremonies for it.
  const TRUSTED_CHILD = "https://www.bulwark.test";
  const fx = sharedFixture(() => authFixture({ BULWARK_TRUSTED_ORIGINS: TRUSTED_CHILD }));
  const flows = authFlows(() => fx);

  it("attack: a passkey assertion made on a page of a BULWARK_TRUSTED_ORIGINS origin under the RP ID is refused at the second-factor gate: a CSRF setting makes no origin a WebAuthn origin (ASVS 6.3.3; WebAuthn L3 §7.2 step 9, the origin check) (was: it passed the gate for a relay holding only the password)", async () => {
    const owner = await flows.withPasskey(`trusted-origin-${Date.now()}@example.org`);
    const relay = new AddressedBrowser(() => fx, "203.0.113.20", RELAY_UA);
    const held = await relay.login(owner.email, owner.password);
    assert.equal(held.json().mfaRequired, true, held.body);
    // Control: a page on another subdomain under the RP ID, not listed, is refused on this very server (the sibling rule
    // pinned in webauthn-second-look-red-team): the only difference below is the CSRF setting.
    const first = await relay.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal(first.statusCode, 200, first.body);
    const unlisted = await relay.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: owner.key.authenticate(first.json(), "https://shop.bulwark.test", { rpID: RP }) } });
    assert.equal(unlisted.statusCode, 401, `control: an unlisted sibling page is refused (${unlisted.body})`);
    const options = await relay.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal(options.statusCode, 200, options.body);
    // The relay's page on the trusted child calls navigator.credentials.get({ rpId: "bulwark.test", challenge }) with the
    // challenge the relay's own session got: the victim's authenticator signs, the browser writes the child's origin.
    const assertion = owner.key.authenticate(options.json(), TRUSTED_CHILD, { rpID: RP });
    const stepped = await relay.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: assertion } });
    // Secure: WebAuthn origins are BULWARK_PUBLIC_URL's (the documented RP), or a list configured for WebAuthn on
    // purpose — not every origin trusted to post a form. Today the assertion steps the relay up to aal 2.
    assert.equal(stepped.statusCode, 401, `a passkey assertion from ${TRUSTED_CHILD} stepped the relay's session up: ${stepped.body}`);
  });
});
