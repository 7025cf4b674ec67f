// /auth over HTTP: login, sessions and CSRF, written as attacks that must fail — session fixation, a stolen
// sessions row used as a cookie, cross-site POSTs, missing or foreign CSRF tokens, login enumeration, open
// redirects — plus the normal flows they protect.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEVICE_COOKIE, SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { REPLACED_GRACE_MS } from "../src/accounts/sessions/session-manager.ts";
import fc from "fast-check";
import { safeNext } from "../src/http/auth/index.ts";
import { Browser, GOOD_PASSWORD, type DeviceJar } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

describe("POST /auth/login", () => {
  it("signs in with JSON and with a form, setting a __Host- cookie that is not cached (ASVS 7.2.1, 14.3.2)", async () => {
    const ana = await fx.user("ana@example.org");
    const b = fx.browser();
    const res = await b.login(ana.email, ana.password);
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.userId, ana.id);
    assert.equal(body.aal, 1);
    assert.equal(body.mfaRequired, false);
    const [setCookie, deviceCookie] = res.headers["set-cookie"] as string[];
    assert.match(setCookie ?? "", new RegExp(`^${SESSION_COOKIE}=ses_[a-z2-7]{26}\\.[A-Za-z0-9_-]{43}; Path=/; Secure; HttpOnly; SameSite=Lax$`));
    // The known-device cookie: the same attributes, kept a year, and nothing in it names the account.
    assert.match(deviceCookie ?? "", new RegExp(`^${DEVICE_COOKIE}=d2\\.[A-Za-z0-9_-]{22}\\.[0-9a-f]{16}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000$`));
    assert.ok(!(deviceCookie ?? "").includes(ana.id) && !(deviceCookie ?? "").includes("ana"));
    assert.equal(res.headers["cache-control"], "no-store");
    const session = await b.request("GET", "/auth/session");
    assert.equal(session.statusCode, 200);
    assert.equal(session.json().userId, ana.id);
    assert.equal(session.headers["cache-control"], "no-store");

    const form = fx.browser();
    const viaForm = await form.request("POST", "/auth/login", { form: true, body: { identifier: ana.email, password: ana.password } });
    assert.equal(viaForm.statusCode, 200, viaForm.body);
    assert.ok(form.cookie);
  });

  it("attack: enumeration — an unknown account and a wrong password get the same status and byte-identical body (ASVS 6.3.8)", async () => {
    await fx.user("enum@example.org");
    const unknown = await fx.browser().login("nobody@example.org", "whatever password here");
    const wrong = await fx.browser().login("enum@example.org", "whatever password here");
    assert.equal(unknown.statusCode, 401);
    assert.equal(wrong.statusCode, 401);
    assert.equal(unknown.body, wrong.body);
    assert.equal(unknown.headers["content-type"], wrong.headers["content-type"]);
    assert.equal(unknown.headers["set-cookie"], undefined);
    assert.equal(unknown.json().error.code, "BULWARK_ERR_LOGIN_FAILED");
  });

  it("throttles repeated failures with 429 and Retry-After (ASVS 6.3.1)", async () => {
    const target = await fx.user("brute@example.org");
    const b = fx.browser();
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) codes.push((await b.login(target.email, `wrong guess number ${i}`)).statusCode);
    assert.deepEqual(codes.slice(0, 5), [401, 401, 401, 401, 401]);
    const throttled = await b.login(target.email, target.password);
    assert.equal(throttled.statusCode, 429, "even the right password is refused while throttled");
    assert.match(String(throttled.headers["retry-after"]), /^\d+$/);
    assert.ok(Number(throttled.headers["retry-after"]) > 0);
  });

  it("attack: a password guessed after a run of failures (spread over windows, as a patient guesser does) is mailed to the owner; a mistype or two is not (ASVS 6.3.5; was: never mailed)", async () => {
    const guessed = await fx.user("guessed@example.org");
    const careless = await fx.user("careless@example.org");
    const subject = /your password was entered after failed attempts/;
    const mails = async (to: string): Promise<string[]> => (await fx.deliver(), fx.mailTo(to).filter((m) => subject.test(m.subject)).map((m) => m.body));
    // Two mistypes, then the right password: ordinary.
    for (let i = 0; i < 2; i++) assert.equal((await fx.browser().login(careless.email, "not the password")).statusCode, 401);
    assert.equal((await fx.browser().login(careless.email, careless.password)).statusCode, 200);
    assert.deepEqual(await mails(careless.email), []);
    // Four guesses, a wait past the account window (6 hours), four more, then the right one.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 4; i++) assert.equal((await fx.browser().login(guessed.email, `guess ${round} ${i}`)).statusCode, 401);
      fx.clock.advance(6 * 3_600_000 + 1);
    }
    assert.equal((await fx.browser().login(guessed.email, guessed.password)).statusCode, 200);
    const bodies = await mails(guessed.email);
    assert.equal(bodies.length, 1);
    assert.match(bodies[0] ?? "", /after 8 failed attempts in a row/);
    // The success cleared the run: the next sign-in is ordinary again.
    assert.equal((await fx.browser().login(guessed.email, guessed.password)).statusCode, 200);
    assert.equal((await mails(guessed.email)).length, 1);
  });

  it("attack: a sign-in with the stolen password from another computer is mailed to the owner, as is the account's very first sign-in from a browser it does not know (an imported account's reused password); the owner's own browser, once known, is not (ASVS 6.3.5; was: never mailed; then the first sign-in of all was told to nobody)", async () => {
    const victim = await fx.user("new-device@example.org");
    const subject = /a sign-in from a new device or browser/;
    const notices = async (): Promise<string[]> => (await fx.deliver(), fx.mailTo(victim.email).filter((m) => subject.test(m.subject)).map((m) => m.body));
    // One jar per computer; a fresh client per sign-in (a second login from a signed-in page would need a CSRF token).
    const computer = (): ((email: string, password: string) => ReturnType<Browser["login"]>) => {
      const jar: DeviceJar = { cookie: null };
      return (email, password) => new Browser(fx.server, jar).login(email, password);
    };
    const home = computer();
    assert.equal((await home(victim.email, victim.password)).statusCode, 200);
    assert.equal((await home(victim.email, victim.password)).statusCode, 200);
    assert.equal((await notices()).length, 1, "the first sign-in of all, from a browser nothing vouches for, is told; the same browser again is not");

    fx.clock.advance(3_600_000);
    const thief = computer();
    assert.equal((await thief(victim.email, victim.password)).statusCode, 200);
    const told = await notices();
    assert.equal(told.length, 2);
    assert.match(told[1] ?? "", /from a device or browser that had not signed in to it before/);
    // The thief's browser is known from now on (the notice is about the first time, not every time).
    assert.equal((await thief(victim.email, victim.password)).statusCode, 200);
    assert.equal((await notices()).length, 2);

    // A device cookie earned on the attacker's own account proves nothing for the victim's, nor does one whose tag
    // was moved onto another device id, or made up.
    // At most one such notice an hour: a password holder cannot flood the owner by signing in from ever new browsers.
    fx.clock.advance(3_600_000);
    const mallory = await fx.user("mallory-device@example.org");
    const forger = computer();
    assert.equal((await forger(mallory.email, mallory.password)).statusCode, 200);
    assert.equal((await forger(victim.email, victim.password)).statusCode, 200);
    assert.equal((await notices()).length, 3, "a cookie from the attacker's own account");
    const homeCookie = (await home(victim.email, victim.password)).headers["set-cookie"] as string[];
    const homeTag = /\.([0-9a-f]{16});/.exec(homeCookie[1] ?? "")?.[1] ?? "";
    for (const forged of [`d2.${"A".repeat(22)}.${homeTag}`, `d2.${"B".repeat(22)}.${"0".repeat(16)}`, "d2", `d3.${"A".repeat(22)}.${homeTag}`]) {
      fx.clock.advance(3_600_000);
      const res = await fx.browser({ newDevice: true }).request("POST", "/auth/login", { body: { identifier: victim.email, password: victim.password }, headers: { cookie: `${DEVICE_COOKIE}=${forged}` } });
      assert.equal(res.statusCode, 200, res.body);
    }
    assert.equal((await notices()).length, 7, "each forged cookie is a new device");
    // Within one hour, ten new browsers make one notice.
    fx.clock.advance(3_600_000);
    for (let i = 0; i < 10; i++) assert.equal((await computer()(victim.email, victim.password)).statusCode, 200);
    assert.equal((await notices()).length, 8);
  });

  it("attack: session fixation — a cookie planted before login is never promoted (ASVS 7.2.4)", async () => {
    const victim = await fx.user("fixation@example.org");
    // The attacker obtains a real pre-login session and plants its cookie in the victim's browser.
    const planted = await fx.app.accounts.sessions.createSession(null);
    const b = fx.browser();
    b.cookie = planted.token;
    const res = await b.login(victim.email, victim.password);
    assert.equal(res.statusCode, 200);
    assert.ok(b.cookie && b.cookie !== planted.token, "a new token was issued");
    assert.notEqual(b.cookie.split(".")[0], planted.token.split(".")[0], "with a new id, not only a new secret");
    assert.equal((await fx.app.accounts.sessions.validate(planted.token)).valid, false, "the planted token is dead");
    const attacker = fx.browser();
    attacker.cookie = planted.token;
    const probe = await attacker.request("GET", "/auth/session");
    assert.equal(probe.json().authenticated, false);
    // A moment after the rotation the old cookie is refused but left in place: a request racing the login sends
    // it, and clearing it could delete the new cookie if that answer arrived last.
    assert.equal(probe.headers["set-cookie"], undefined);
    fx.clock.advance(REPLACED_GRACE_MS);
    const later = await attacker.request("GET", "/auth/session");
    assert.equal(later.json().authenticated, false);
    assert.match(String(later.headers["set-cookie"]), /Max-Age=0/, "then the dead cookie is cleared");
  });

  it("a request that raced the login with the old cookie does not sign the user out (its answer clears nothing)", async () => {
    const user = await fx.user("racing-poll@example.org");
    const b = fx.browser();
    const anonymous = await fx.app.accounts.sessions.createSession(null);
    b.cookie = anonymous.token; // the pre-login session the sign-in page was served with
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const signedIn = b.cookie;
    assert.ok(signedIn && signedIn !== anonymous.token);
    // The page's poll of /auth/session left before the login's answer set the new cookie, and is answered after it.
    const poll = fx.browser();
    poll.cookie = anonymous.token;
    const late = await poll.request("GET", "/auth/session");
    assert.deepEqual(late.json(), { authenticated: false, sessionReplaced: true }, "the replaced cookie still grants nothing; the page is told to ask again");
    assert.equal(late.headers["set-cookie"], undefined, "and its answer does not delete the cookie the login set");
    const after = await b.request("GET", "/auth/session");
    assert.equal(after.json().authenticated, true);
    // A cookie that never existed (or a guessed secret for a replaced id) is cleared at once, as before.
    const junk = fx.browser();
    junk.cookie = `${anonymous.token.split(".")[0]}.${"A".repeat(43)}`;
    const refused = await junk.request("GET", "/auth/session");
    assert.match(String(refused.headers["set-cookie"]), /Max-Age=0/);
    assert.deepEqual(refused.json(), { authenticated: false }, "no hint for a guessed secret");
  });

  it("attack: a stolen sessions row cannot be replayed as a cookie", async () => {
    const ana = await fx.user("row@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const row = await fx.app.db.db.selectFrom("sessions").selectAll().where("user_id", "=", ana.id).executeTakeFirstOrThrow();
    for (const forged of [`${row.id}.${row.secret_hash}`, `${row.id}.${Buffer.from(row.secret_hash, "hex").toString("base64url")}`]) {
      const thief = fx.browser();
      thief.cookie = forged;
      const res = await thief.request("GET", "/auth/sessions");
      assert.equal(res.statusCode, 401, forged.slice(0, 12));
    }
    assert.equal((await b.request("GET", "/auth/sessions")).statusCode, 200, "the owner's cookie still works");
  });

  it("attack: login CSRF — a cross-site login POST is refused; a client without browser headers is not", async () => {
    const ana = await fx.user("logincsrf@example.org");
    const evil = await fx.browser().request("POST", "/auth/login", { body: { identifier: ana.email, password: ana.password }, headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
    assert.equal(evil.statusCode, 403);
    assert.equal(evil.json().error.code, "BULWARK_ERR_CSRF");
    assert.equal(evil.headers["set-cookie"], undefined);
    const curl = await fx.browser().request("POST", "/auth/login", { bare: true, body: { identifier: ana.email, password: ana.password } });
    assert.equal(curl.statusCode, 200);
  });

  it("attack: open redirect — next accepts only same-origin paths", async () => {
    const ana = await fx.user("redirect@example.org");
    // A control character is refused before any of this, with the whole request (400 naming the field).
    const tab = await fx.browser().request("POST", "/auth/login", { body: { identifier: ana.email, password: ana.password, next: "/\t/evil.example" } });
    assert.equal(tab.statusCode, 400);
    assert.match(tab.body, /body\/next must not contain control characters/);
    for (const next of ["//evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)", "/%2F/evil.example", "/..//evil.example/phish", "/%2e%2e//evil.example"]) {
      const res = await fx.browser().request("POST", "/auth/login", { body: { identifier: ana.email, password: ana.password, next } });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().next, "/", JSON.stringify(next));
    }
    const ok = await fx.browser().request("POST", "/auth/login", { body: { identifier: ana.email, password: ana.password, next: "/account?tab=sessions" } });
    assert.equal(ok.json().next, "/account?tab=sessions");
  });
});

describe("safeNext", () => {
  it("keeps same-origin paths and refuses every off-site form", () => {
    assert.equal(safeNext("/a/b?c=d#e"), "/a/b?c=d#e");
    for (const bad of ["//x.example", "/\\x.example", "\\\\x.example", "http://x.example", "x.example", "/\nx", " /x", "", "/%5c/x.example", "/" + "a".repeat(3000)]) {
      assert.equal(safeNext(bad), "/", JSON.stringify(bad.slice(0, 20)));
    }
    assert.equal(safeNext(undefined, "/home"), "/home");
  });

  it("attack: dot segments that collapse into an off-site form are refused after resolution", () => {
    for (const bad of ["/..//evil.example", "/.//evil.example", "/a/..//evil.example", "/%2e%2e//evil.example", "/%2E//evil.example", "/.%2e//evil.example",
      "/x/..//evil.example/path?q=1#h", "/./%2fevil.example", "/a/../%2f%2fevil.example", "/a/../%5cevil.example"]) {
      assert.equal(safeNext(bad), "/", bad);
    }
    assert.equal(safeNext("/a/../b?x=1"), "/b?x=1", "a harmless dot segment still resolves on site");
  });

  it("never returns anything a browser would resolve off-site, and is stable on its own output (property)", () => {
    const piece = fc.constantFrom("/", "//", "\\", ".", "..", "%2e", "%2E", "%2f", "%5c", "evil.example", "a", "?", "#", "@", ":", "\t", "%09", "https:", "..%2f");
    fc.assert(fc.property(fc.array(piece, { maxLength: 8 }), (parts) => {
      const input = "/" + parts.join("");
      const out = safeNext(input);
      const resolved = new URL(out, "https://bulwark.example");
      assert.equal(resolved.origin, "https://bulwark.example", `${input} -> ${out}`);
      assert.ok(out.startsWith("/") && !out.startsWith("//") && !/^\/(%2f|%5c|\\)/i.test(out), `${input} -> ${out}`);
      assert.equal(safeNext(out), out, `not stable: ${input} -> ${out}`);
    }), { numRuns: 3000 });
  });
});

describe("CSRF on cookie-authenticated requests", () => {
  it("attack: cross-site POSTs are refused by Origin / Sec-Fetch-Site, and fail closed without either", async () => {
    const ana = await fx.user("xsite@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const token = await b.csrf();
    const attempts: Array<Record<string, string>> = [
      { origin: "https://evil.example", "sec-fetch-site": "cross-site" },
      { origin: "https://evil.example" },
      { "sec-fetch-site": "same-site", origin: "https://other.bulwark.test" },
      { origin: "null" },
    ];
    for (const headers of attempts) {
      const res = await b.request("DELETE", "/auth/sessions", { bare: true, headers: { ...headers, "x-csrf-token": token } });
      assert.equal(res.statusCode, 403, JSON.stringify(headers));
      assert.equal(res.json().error.code, "BULWARK_ERR_CSRF");
    }
    const neither = await b.request("DELETE", "/auth/sessions", { bare: true, csrf: token });
    assert.equal(neither.statusCode, 403, "neither header on a cookie-authenticated POST: refused");
    const same = await b.request("DELETE", "/auth/sessions", { csrf: token });
    assert.equal(same.statusCode, 200, same.body);
  });

  it("attack: a POST without a CSRF token, or with another session's, is refused (ASVS 3.5.1)", async () => {
    const ana = await fx.user("token@example.org");
    const mallory = await fx.user("mallory@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const m = fx.browser();
    await m.login(mallory.email, mallory.password);
    const foreign = await m.csrf();
    const none = await b.request("POST", "/auth/logout");
    assert.equal(none.statusCode, 403);
    assert.match(none.json().error.message, /CSRF token/);
    const other = await b.request("POST", "/auth/logout", { csrf: foreign });
    assert.equal(other.statusCode, 403);
    const junk = await b.request("POST", "/auth/logout", { csrf: "A".repeat(64) });
    assert.equal(junk.statusCode, 403);
    assert.equal((await b.request("GET", "/auth/session")).json().authenticated, true, "still signed in after the refusals");
    // The real token works, in the header or as a form field.
    const viaForm = await b.request("POST", "/auth/logout", { form: true, body: { _csrf: await b.csrf(), next: "/bye" } });
    assert.equal(viaForm.statusCode, 200, viaForm.body);
    assert.equal(viaForm.json().next, "/bye");
    assert.equal(b.cookie, null, "logout clears the cookie");
  });

  it("API-token requests are exempt from CSRF; a tampered token is refused outright", async () => {
    const ana = await fx.user("bearer@example.org");
    const { token } = await fx.app.accounts.tokens.create(ana.id, { name: "ci", scopes: ["accounts.read"] });
    const b = fx.browser();
    const who = await b.request("GET", "/auth/session", { bare: true, headers: { authorization: `Bearer ${token}` } });
    assert.equal(who.statusCode, 200);
    assert.equal(who.json().via, "token");
    // Unsafe and header-less, but token-authenticated: CSRF does not apply (this route needs a session instead).
    const post = await b.request("POST", "/auth/logout", { bare: true, headers: { authorization: `Bearer ${token}` } });
    assert.equal(post.statusCode, 401);
    assert.equal(post.json().error.code, "BULWARK_ERR_SESSION_REQUIRED");
    const tampered = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
    const bad = await b.request("GET", "/auth/session", { bare: true, headers: { authorization: `Bearer ${tampered}` } });
    assert.equal(bad.statusCode, 401);
    assert.equal(bad.json().error.code, "BULWARK_ERR_TOKEN_INVALID");
  });
});

describe("session management", () => {
  it("lists sessions with the current one marked, ends one, ends the others (ASVS 7.5.2)", async () => {
    const ana = await fx.user("multi@example.org");
    const laptop = fx.browser();
    const phone = fx.browser();
    const tablet = fx.browser();
    for (const b of [laptop, phone, tablet]) assert.equal((await b.login(ana.email, ana.password)).statusCode, 200);
    const list = await laptop.request("GET", "/auth/sessions");
    const sessions = list.json().sessions as Array<{ id: string; current: boolean; ip: string }>;
    assert.equal(sessions.length, 3);
    assert.equal(sessions.filter((s) => s.current).length, 1);
    const phoneId = (await phone.request("GET", "/auth/session")).json().sessionId as string;
    assert.equal((await laptop.request("DELETE", `/auth/sessions/${phoneId}`, { csrf: true })).statusCode, 200);
    assert.equal((await phone.request("GET", "/auth/session")).json().authenticated, false);
    const others = await laptop.request("DELETE", "/auth/sessions", { csrf: true });
    assert.deepEqual(others.json(), { ended: 1 });
    assert.equal((await tablet.request("GET", "/auth/session")).json().authenticated, false);
    assert.equal((await laptop.request("GET", "/auth/session")).json().authenticated, true);
  });

  it("attack: ending another user's session by id does nothing", async () => {
    const ana = await fx.user("victim2@example.org");
    const eve = await fx.user("eve@example.org");
    const a = fx.browser();
    await a.login(ana.email, ana.password);
    const e = fx.browser();
    await e.login(eve.email, eve.password);
    const anaSession = (await a.request("GET", "/auth/session")).json().sessionId as string;
    const res = await e.request("DELETE", `/auth/sessions/${anaSession}`, { csrf: true });
    assert.equal(res.statusCode, 404);
    assert.equal((await a.request("GET", "/auth/session")).json().authenticated, true);
  });

  it("holds a must-change-password login at the password change (and lets it through after)", async () => {
    const ana = await fx.user("mustchange@example.org");
    await fx.app.db.db.updateTable("users").set({ password_must_change: 1 }).where("id", "=", ana.id).execute();
    const b = fx.browser();
    const res = await b.login(ana.email, ana.password);
    assert.equal(res.json().mustChangePassword, true);
    const blocked = await b.request("GET", "/auth/sessions");
    assert.equal(blocked.statusCode, 403);
    assert.equal(blocked.json().error.code, "BULWARK_ERR_PASSWORD_CHANGE_REQUIRED");
    const changed = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: ana.password, newPassword: `${GOOD_PASSWORD} again` } });
    assert.equal(changed.statusCode, 200, changed.body);
    assert.equal((await b.request("GET", "/auth/sessions")).statusCode, 200);
  });

  it("attack: a logged-out, idle-expired or disabled account's cookie is refused and cleared (ASVS 7.4.1, 7.3.1, 7.4.2)", async () => {
    const ana = await fx.user("ending@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const copy = b.cookie as string;
    await b.request("POST", "/auth/logout", { csrf: true });
    const replay = fx.browser();
    replay.cookie = copy;
    const afterLogout = await replay.request("GET", "/auth/sessions");
    assert.equal(afterLogout.statusCode, 401, "a copied cookie dies with the logout");
    assert.match(String(afterLogout.headers["set-cookie"]), /Max-Age=0/);

    const idle = fx.browser();
    await idle.login(ana.email, ana.password);
    fx.clock.advance(31 * 60_000);
    assert.equal((await idle.request("GET", "/auth/sessions")).statusCode, 401);
    assert.equal(idle.cookie, null, "cleared");

    const active = fx.browser();
    await active.login(ana.email, ana.password);
    await fx.app.db.db.updateTable("users").set({ status: "disabled" }).where("id", "=", ana.id).execute();
    assert.equal((await active.request("GET", "/auth/sessions")).statusCode, 401);
  });

  it("answers anonymous callers of signed-in routes with 401", async () => {
    const res = await fx.browser().request("GET", "/auth/sessions");
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().error.code, "BULWARK_ERR_AUTH_REQUIRED");
  });
});
