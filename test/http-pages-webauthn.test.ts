// The reset page's passkey button, driven in Debian's Chromium (playwright-core) with a virtual authenticator (Chrome
// DevTools Protocol) against a server on loopback, under the real CSP. The passkey is registered through the real JSON
// routes from the page, the reset link comes from a real mail, and the page runs the assertion ceremony and sends it
// with the new password. The server's public URL is http://localhost:PORT: WebAuthn refuses an IP address as RP ID,
// and http://localhost is a secure context in Chromium. Skipped, loudly, without /usr/bin/chromium.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser as Chromium, BrowserContext, CDPSession, Page } from "playwright-core";
import { totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { chromiumAvailable, CHROMIUM, launchChromium, listeningPagesFixture } from "./helpers/page-browser.ts";

const available = chromiumAvailable("http-pages-webauthn");

const NEW_PASSWORD = "correct horse battery staple in winter light";
const SUCCESS = "Your password was changed, and every session of your account was signed out. Sign in with the new password.";

// The DOM's WebAuthn types, as far as the registration below uses them (the project compiles without the DOM library).
interface RegistrationOptions { challenge: string; user: { id: string; name: string; displayName: string }; excludeCredentials?: { id: string; type: string }[] }
interface CreatedCredential {
  id: string; rawId: ArrayBuffer; type: string; getClientExtensionResults(): unknown;
  response: { clientDataJSON: ArrayBuffer; attestationObject: ArrayBuffer; getTransports(): string[] };
}
type CredentialsContainer = { create(options: { publicKey: unknown }): Promise<CreatedCredential> };

/** A page of its own browser context, with a virtual platform authenticator (user verification on) attached. */
interface KeyedPage {
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
}

describe("the reset page's passkey button in a browser", { skip: !available && `no Chromium at ${CHROMIUM}` }, () => {
  let fx: AuthFixture;
  let origin: string;
  let browser: Chromium;
  const errors: string[] = [];
  const contexts: BrowserContext[] = [];

  before(async () => {
    ({ fx, origin } = await listeningPagesFixture(undefined, { hostname: "localhost" }));
    browser = await launchChromium();
  });
  after(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await fx?.close();
  });

  async function keyedPage(): Promise<KeyedPage> {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    // Any CSP violation or script error on the page fails the test that caused it.
    // (Answers with an error status are logged by Chromium too; those are the expected refusals, not faults.)
    page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text()); });
    page.on("pageerror", (e) => errors.push(e.message));
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable", { enableUI: false });
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    return { context, page, cdp, authenticatorId };
  }

  /**
   * Registers a passkey for `user` the way its owner would: signed in from a page of the site, through
   * /auth/mfa/webauthn/register/options and /auth/mfa/webauthn/register, the page's virtual authenticator answering.
   */
  async function registerPasskey(k: KeyedPage, user: { email: string; password: string }): Promise<void> {
    await k.page.goto(`${origin}/reset-password`); // any page of the origin: the ceremony runs from its script context
    const result = await k.page.evaluate(async ([email, password]) => {
      const bytes = (text: string): ArrayBuffer => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
      const text = (buffer: ArrayBuffer): string => btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      const json = { "content-type": "application/json" };
      const login = await fetch("/auth/login", { method: "POST", headers: json, body: JSON.stringify({ identifier: email, password }), credentials: "same-origin" });
      if (login.status !== 200) return `login answered ${login.status}`;
      const csrf = ((await (await fetch("/auth/csrf", { credentials: "same-origin" })).json()) as { token: string }).token;
      const headers = { ...json, "x-csrf-token": csrf };
      const asked = await fetch("/auth/mfa/webauthn/register/options", { method: "POST", headers, body: "{}", credentials: "same-origin" });
      if (asked.status !== 200) return `register/options answered ${asked.status}: ${await asked.text()}`;
      const o = (await asked.json()) as RegistrationOptions;
      const credentials = (navigator as unknown as { credentials: CredentialsContainer }).credentials;
      const created = await credentials.create({
        publicKey: {
          ...o, challenge: bytes(o.challenge), user: { ...o.user, id: bytes(o.user.id) },
          excludeCredentials: (o.excludeCredentials ?? []).map((c) => ({ ...c, id: bytes(c.id) })),
        },
      });
      const response = created.response;
      const registered = await fetch("/auth/mfa/webauthn/register", {
        method: "POST", headers, credentials: "same-origin",
        body: JSON.stringify({
          name: "laptop",
          response: {
            id: created.id, rawId: text(created.rawId), type: created.type, clientExtensionResults: created.getClientExtensionResults(),
            response: { clientDataJSON: text(response.clientDataJSON), attestationObject: text(response.attestationObject), transports: response.getTransports() },
          },
        }),
      });
      return registered.status === 200 ? "registered" : `register answered ${registered.status}: ${await registered.text()}`;
    }, [user.email, user.password] as const);
    assert.equal(result, "registered");
    const factors = await fx.app.accounts.mfa.factors((await fx.app.accounts.users.findByIdentifier(user.email))?.id ?? "");
    assert.deepEqual([factors.totp, factors.webauthn], [false, 1], "the account's only second factor is the passkey");
  }

  /** Waits for the page to settle on an answer and returns it (class and text), so a failure shows the message. */
  async function outcome(page: Page): Promise<{ kind: string; text: string }> {
    await page.waitForSelector("#status.ok, #status.error");
    return { kind: (await page.getAttribute("#status", "class")) ?? "", text: (await page.textContent("#status")) ?? "" };
  }

  async function requestReset(email: string): Promise<{ link: string; token: string }> {
    const res = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email } });
    assert.equal(res.statusCode, 202);
    await fx.deliver();
    // The newest mail carrying the link: security notices (a passkey added, say) are delivered around it.
    const pattern = new RegExp(`${origin.replaceAll(".", "\\.")}/reset-password#token=([A-Za-z0-9._-]+)`);
    const m = fx.mailTo(email).map((mail) => pattern.exec(mail.body)).filter((found) => found !== null).at(-1);
    assert.ok(m, `no reset link mailed to ${email}`);
    return { link: m[0], token: m[1] as string };
  }

  /** Opens the link, types the new password twice and submits without a factor: the page asks for one. */
  async function askedForFactor(page: Page, link: string): Promise<string> {
    // From another document: a link to the page already open is a fragment change, which runs no script.
    await page.goto("about:blank");
    await page.goto(link);
    assert.equal(page.url(), `${origin}/reset-password`, "the token left the address bar");
    await page.fill("#password", NEW_PASSWORD);
    await page.fill("#confirm", NEW_PASSWORD);
    await page.click("button[type=submit]");
    const asked = await outcome(page);
    assert.equal(await page.isVisible("#factor"), true, `the page asks for a second factor: ${asked.text} ${errors.join("; ")}`);
    assert.equal(asked.kind, "error");
    return asked.text;
  }

  /** Whether a password-only sign-in takes `password` (an MFA account is then held for its factor), as a status. */
  async function passwordSignIn(email: string, password: string): Promise<number> {
    return (await fx.browser().login(email, password)).statusCode;
  }

  it("a user whose only second factor is a passkey resets the password from the mailed link with it (ASVS 6.4.3)", async () => {
    errors.length = 0;
    const user = await fx.user("only-key@example.org");
    const k = await keyedPage();
    await registerPasskey(k, user);
    const { link, token } = await requestReset(user.email);

    const asked = await askedForFactor(k.page, link);
    assert.match(asked, /passkey/, "the page says a passkey will do");
    assert.equal(await k.page.isVisible("#passkey"), true, "the passkey button is offered");
    assert.equal(await passwordSignIn(user.email, NEW_PASSWORD), 401, "the link and the password alone changed nothing");

    await k.page.click("#passkey");
    assert.deepEqual(await outcome(k.page), { kind: "ok", text: SUCCESS });
    assert.equal(await k.page.isHidden("#reset"), true);
    assert.equal(await k.page.inputValue("#password"), "", "the new password does not stay in the page");
    const credentials = await k.cdp.send("WebAuthn.getCredentials", { authenticatorId: k.authenticatorId });
    assert.equal(credentials.credentials[0]?.signCount, 2, "the authenticator signed twice: the registration and the reset");

    const signIn = await fx.browser().login(user.email, NEW_PASSWORD);
    assert.equal(signIn.statusCode, 200, "the new password signs in");
    assert.equal(signIn.json().mfaRequired, true, "and the passkey is still asked for");
    assert.equal(await passwordSignIn(user.email, user.password), 401, "the old password does not");
    const again = await fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token } });
    assert.equal(again.statusCode, 400, "the link is spent");
    assert.equal(again.json().error.code, "BULWARK_ERR_RESET_TOKEN");
    assert.deepEqual(errors, [], "no script error or CSP violation");
  });

  it("attack: an account without a passkey (authenticator app only) is offered no passkey button, only the code", async () => {
    errors.length = 0;
    const user = await fx.user("only-app@example.org");
    const { secret } = await fx.app.accounts.mfa.totp.begin(user.id, user.email);
    assert.equal(await fx.app.accounts.mfa.totp.confirm(user.id, totpCode(secret, fx.clock.now())), true);
    const { link } = await requestReset(user.email);
    const k = await keyedPage();

    const asked = await askedForFactor(k.page, link);
    assert.equal(await k.page.evaluate("typeof window.PublicKeyCredential"), "function", "the browser could run a passkey ceremony");
    assert.equal(await k.page.locator("#passkey").count(), 1, "the page has the button");
    assert.equal(await k.page.isHidden("#passkey-choice"), true, "and keeps it hidden for an account without a passkey");
    assert.equal(await k.page.isVisible("#code"), true);
    assert.doesNotMatch(asked, /passkey/);

    fx.clock.advance(30_000); // the next time step: the code of the enrolment is spent
    await k.page.fill("#code", totpCode(secret, fx.clock.now()));
    await k.page.click("button[type=submit]");
    assert.deepEqual(await outcome(k.page), { kind: "ok", text: SUCCESS }, "the code still completes the reset");
    assert.deepEqual(errors, [], "no script error or CSP violation");
  });

  it("attack: a passkey ceremony that fails in the browser changes nothing; the link and the code field stay usable", async () => {
    errors.length = 0;
    const user = await fx.user("refused-key@example.org");
    const k = await keyedPage();
    await registerPasskey(k, user);
    const codes = await fx.app.accounts.mfa.recovery.generate(user.id);
    const { link, token } = await requestReset(user.email);
    await askedForFactor(k.page, link);
    assert.equal(await k.page.isVisible("#passkey"), true);

    // The authenticator now fails user verification (the user does not touch it, or gives a wrong PIN): the browser
    // ends the ceremony with NotAllowedError, the error a cancel and a timeout give too.
    await k.cdp.send("WebAuthn.setUserVerified", { authenticatorId: k.authenticatorId, isUserVerified: false });
    await k.page.click("#passkey");
    const failed = await outcome(k.page);
    assert.equal(failed.kind, "error");
    assert.match(failed.text, /cancelled or timed out.*nothing was changed/);
    assert.equal(await passwordSignIn(user.email, NEW_PASSWORD), 401, "the password is unchanged");
    assert.equal(await passwordSignIn(user.email, user.password), 200);
    const check = await fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token } });
    assert.equal(check.statusCode, 200, `the link is unspent: ${check.body}`);

    assert.equal(await k.page.isEditable("#code"), true, "the code field stays usable");
    assert.equal(await k.page.isEnabled("button[type=submit]"), true);
    await k.page.fill("#code", codes[0] as string);
    await k.page.click("button[type=submit]");
    assert.deepEqual(await outcome(k.page), { kind: "ok", text: SUCCESS });
    assert.equal(await passwordSignIn(user.email, NEW_PASSWORD), 200, "a recovery code then completes the reset");
    assert.deepEqual(errors, [], "no script error or CSP violation");
  });

  it("attack: an assertion the server refuses (a bogus signature) changes nothing; the page says why, and the link stays unspent", async () => {
    errors.length = 0;
    const user = await fx.user("forged-key@example.org");
    const k = await keyedPage();
    await registerPasskey(k, user);
    const { link, token } = await requestReset(user.email);
    await askedForFactor(k.page, link);
    // The authenticator answers, but with a signature that does not verify: the server's refusal, not the browser's.
    await k.cdp.send("WebAuthn.setResponseOverrideBits", { authenticatorId: k.authenticatorId, isBogusSignature: true });
    await k.page.click("#passkey");
    const refused = await outcome(k.page);
    assert.equal(refused.kind, "error");
    assert.match(refused.text, /not accepted/);
    assert.equal(await k.page.isVisible("#passkey"), true, "the button stays offered");
    assert.equal(await passwordSignIn(user.email, NEW_PASSWORD), 401, "the password is unchanged");
    assert.equal(await passwordSignIn(user.email, user.password), 200);

    // A genuine answer then completes the same link: the refusal spent nothing.
    await k.cdp.send("WebAuthn.setResponseOverrideBits", { authenticatorId: k.authenticatorId, isBogusSignature: false });
    await k.page.click("#passkey");
    assert.deepEqual(await outcome(k.page), { kind: "ok", text: SUCCESS });
    assert.equal(await passwordSignIn(user.email, NEW_PASSWORD), 200);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token } })).statusCode, 400, "now it is spent");
    assert.deepEqual(errors, [], "no script error or CSP violation");
  });
});
