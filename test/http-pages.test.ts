// The pages an emailed link opens, driven in Debian's Chromium (playwright-core) against a server on loopback,
// under the real CSP: the reset link from a real mail sets a new password (asking for the second factor when the
// account has one), the token leaves the address bar at once, a policy refusal is shown with its reason, a used
// link is refused, and an email-change link confirms only on a click. Skipped, loudly, without /usr/bin/chromium.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser as Chromium, Page } from "playwright-core";
import { totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { chromiumAvailable, CHROMIUM, launchChromium, listeningPagesFixture } from "./helpers/page-browser.ts";
import { CONTENT_SECURITY_POLICY } from "../src/http/security-headers.ts";

const available = chromiumAvailable("http-pages");

const NEW_PASSWORD = "correct horse battery staple in winter light";

describe("link pages in a browser", { skip: !available && `no Chromium at ${CHROMIUM}` }, () => {
  let fx: AuthFixture;
  let origin: string;
  let browser: Chromium;
  const errors: string[] = [];

  before(async () => {
    ({ fx, origin } = await listeningPagesFixture());
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await fx?.close();
  });

  async function open(url: string): Promise<Page> {
    const page = await browser.newPage();
    // Any CSP violation or script error on the page fails the test that caused it.
    // (Answers with an error status are logged by Chromium too; those are the expected refusals, not faults.)
    page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text()); });
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    return page;
  }

  /** Waits for the page to settle on an answer and returns it (class and text), so a failure shows the message. */
  async function outcome(page: Page): Promise<{ kind: string; text: string }> {
    await page.waitForSelector("#status.ok, #status.error");
    return { kind: (await page.getAttribute("#status", "class")) ?? "", text: (await page.textContent("#status")) ?? "" };
  }

  async function linkFrom(address: string, path: string): Promise<string> {
    await fx.deliver();
    const mails = fx.mailTo(address);
    assert.ok(mails.length > 0, `no mail to ${address}`);
    // The newest mail carrying the link: security notices (a first sign-in, say) may be delivered around it.
    const link = new RegExp(`${origin.replaceAll(".", "\\.")}${path}#token=[A-Za-z0-9._-]+`);
    const m = mails.map((mail) => link.exec(mail.body)).filter((found) => found !== null).at(-1);
    assert.ok(m, `no ${path} link in: ${mails.map((mail) => mail.subject).join(", ")}`);
    return m[0];
  }

  async function requestReset(email: string): Promise<string> {
    const res = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email } });
    assert.equal(res.statusCode, 202);
    return linkFrom(email, "/reset-password");
  }

  it("the reset link from the mail sets a new password; the token leaves the address bar; the link is then dead (ASVS 6.4.1)", async () => {
    errors.length = 0;
    const user = await fx.user("pages-reset@example.org");
    const link = await requestReset(user.email);
    const page = await open(link);
    assert.equal(page.url(), `${origin}/reset-password`, "the fragment with the token is gone from the address bar");
    const response = await page.request.get(`${origin}/reset-password`);
    assert.equal(response.headers()["content-security-policy"], CONTENT_SECURITY_POLICY);
    assert.equal(response.headers()["cache-control"], "no-store");

    // A refusal by the password policy is shown with its reason, and nothing changes.
    await page.fill("#password", "short");
    await page.fill("#confirm", "short");
    await page.evaluate("document.getElementById('password').removeAttribute('minlength')");
    await page.click("button[type=submit]");
    const refused = await outcome(page);
    assert.equal(refused.kind, "error");
    assert.match(refused.text, /refused.*(characters|short)/i);

    await page.fill("#password", NEW_PASSWORD);
    await page.fill("#confirm", NEW_PASSWORD);
    await page.click("button[type=submit]");
    assert.deepEqual(await outcome(page), { kind: "ok", text: "Your password was changed, and every session of your account was signed out. Sign in with the new password." });
    assert.equal(await page.isHidden("#reset"), true);
    assert.equal((await fx.browser().login(user.email, NEW_PASSWORD)).statusCode, 200, "the new password signs in");
    assert.equal((await fx.browser().login(user.email, user.password)).statusCode, 401, "the old one does not");

    // The same link a second time: refused, with a message.
    const again = await open(link);
    await again.fill("#password", `${NEW_PASSWORD} again`);
    await again.fill("#confirm", `${NEW_PASSWORD} again`);
    await again.click("button[type=submit]");
    assert.equal((await outcome(again)).kind, "error");
    assert.equal((await fx.browser().login(user.email, NEW_PASSWORD)).statusCode, 200, "the used link changed nothing");
    assert.deepEqual(errors, [], "no script error or CSP violation");
  });

  it("attack: a reset link alone does not get past the second factor; the page asks for it (ASVS 6.4.3)", async () => {
    errors.length = 0;
    const user = await fx.user("pages-mfa@example.org");
    const { secret } = await fx.app.accounts.mfa.totp.begin(user.id, user.email);
    assert.equal(await fx.app.accounts.mfa.totp.confirm(user.id, totpCode(secret, fx.clock.now())), true);
    const codes = await fx.app.accounts.mfa.recovery.generate(user.id);
    const link = await requestReset(user.email);
    const page = await open(link);
    await page.fill("#password", NEW_PASSWORD);
    await page.fill("#confirm", NEW_PASSWORD);
    await page.click("button[type=submit]");
    await page.waitForSelector("#factor:not([hidden])");
    assert.equal((await fx.browser().login(user.email, NEW_PASSWORD)).statusCode, 401, "no factor, no change");
    await page.fill("#code", codes[0] as string);
    await page.click("button[type=submit]");
    assert.equal((await outcome(page)).kind, "ok");
    assert.equal((await fx.browser().login(user.email, NEW_PASSWORD)).statusCode, 200);
    assert.deepEqual(errors, []);
  });

  it("a link without its token says so and shows no form", async () => {
    const page = await open(`${origin}/reset-password`);
    assert.equal((await outcome(page)).kind, "error");
    assert.equal(await page.isHidden("#reset"), true);
    assert.match(await page.textContent("#status") ?? "", /incomplete/);
  });

  it("an email-change link confirms the new address on a click, not on opening", async () => {
    errors.length = 0;
    const user = await fx.user("pages-old@example.org");
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const asked = await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "pages-new@example.org" } });
    assert.equal(asked.statusCode, 202, asked.body);
    const link = await linkFrom("pages-new@example.org", "/confirm-email");
    const page = await open(link);
    assert.equal(page.url(), `${origin}/confirm-email`);
    assert.equal((await fx.app.accounts.users.getById(user.id))?.email, user.email, "opening the link changes nothing");
    await page.click("button[type=submit]");
    assert.equal((await outcome(page)).kind, "ok");
    assert.equal((await fx.app.accounts.users.getById(user.id))?.email, "pages-new@example.org");
    assert.deepEqual(errors, []);
  });

  it("the links work in a browser that is signed in: the link's request carries its token, not the session", async () => {
    errors.length = 0;
    const user = await fx.user("pages-signed-in@example.org");
    const context = await browser.newContext();
    try {
      const home = await context.newPage();
      home.on("pageerror", (e) => errors.push(e.message));
      await home.goto(`${origin}/confirm-email`);
      // Signed in the way a browser is: a same-origin fetch from a page of the site, keeping the session cookie.
      const status = await home.evaluate(async ([email, password]) => {
        const res = await fetch("/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ identifier: email, password }), credentials: "same-origin" });
        return res.status;
      }, [user.email, user.password] as const);
      assert.equal(status, 200);
      assert.ok((await context.cookies(origin)).some((c) => c.name.includes("session")), "the browser holds a session cookie");

      const b = fx.browser();
      assert.equal((await b.login(user.email, user.password)).statusCode, 200);
      assert.equal((await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "pages-signed-in-new@example.org" } })).statusCode, 202);
      const confirm = await context.newPage();
      confirm.on("pageerror", (e) => errors.push(e.message));
      await confirm.goto(await linkFrom("pages-signed-in-new@example.org", "/confirm-email"));
      await confirm.click("button[type=submit]");
      assert.deepEqual(await outcome(confirm), { kind: "ok", text: "Your new email address is confirmed. Every session of your account was signed out; sign in with the new address." });
      assert.equal((await fx.app.accounts.users.getById(user.id))?.email, "pages-signed-in-new@example.org");

      await fx.deliver(); // the change notices first, so the next mail to the address is the reset link
      const reset = await context.newPage();
      await reset.goto(await requestReset("pages-signed-in-new@example.org"));
      await reset.fill("#password", NEW_PASSWORD);
      await reset.fill("#confirm", NEW_PASSWORD);
      await reset.click("button[type=submit]");
      assert.equal((await outcome(reset)).kind, "ok");
      assert.equal((await fx.browser().login("pages-signed-in-new@example.org", NEW_PASSWORD)).statusCode, 200);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
