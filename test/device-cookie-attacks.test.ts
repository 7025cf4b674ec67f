// Attacks on the known-device cookie (`__Host-bulwark-device`, src/accounts/sessions/device-cookie.ts) and the
// "sign-in from a new device or browser" notice it drives (POST /auth/login, suspiciousSignIn.newDevice; ASVS 6.3.5):
// getting an attacker's browser treated as known without the owner ever being told of it, forging or stretching the
// cookie, and telling accounts apart through it (ASVS 6.3.8). Notices are read from the outbox table (what is queued
// is what will be sent). Tests named "FINDING:" assert the secure behaviour and fail on today's code.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { DEVICE_COOKIE, deviceCookieFor, knownDevice, MAX_DEVICE_ACCOUNTS, readDeviceCookie, type DeviceAccount, type DeviceCookie } from "../src/accounts/sessions/device-cookie.ts";
import { Browser, GOOD_PASSWORD, totpCode, type DeviceJar } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NEW_DEVICE = "security.new-device-sign-in";

const fx = sharedFixture();

/** How many new-device notices are queued to `address`. */
async function newDeviceNotices(address: string): Promise<number> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address"]).where("kind", "=", NEW_DEVICE).execute();
  return rows.filter((r) => r.to_address.toLowerCase() === address.toLowerCase()).length;
}

/** One computer: its own known-device jar; each call makes a fresh client on it (a fresh tab, no session cookie). */
function computer(): { jar: DeviceJar; tab: () => Browser; login: (email: string, password: string) => ReturnType<Browser["login"]> } {
  const jar: DeviceJar = { cookie: null };
  return { jar, tab: () => new Browser(fx.server, jar), login: (email, password) => new Browser(fx.server, jar).login(email, password) };
}

/** Moves the manual clock to the start of the next clock hour plus `minutes`. */
function nextHourPlus(minutes: number): void {
  const now = fx.clock.now();
  fx.clock.advance(HOUR - (now % HOUR) + minutes * 60_000);
}

describe("a browser made 'known' without the owner ever hearing of it (ASVS 6.3.5)", () => {
  it("attack: a thief's sign-in whose new-device notice was swallowed by the one-an-hour limit leaves the thief's browser known for good: its later sign-ins, days after, are never reported (ASVS 6.3.5)", async () => {
    const victim = await fx.user("swallowed-device@example.org");
    const home = computer();
    assert.equal((await home.login(victim.email, victim.password)).statusCode, 200); // the first sign-in of all: told too
    // 10:05 — the owner signs in from a new laptop: one notice, about the owner's own laptop (the owner shrugs it off).
    nextHourPlus(5);
    const laptop = computer();
    assert.equal((await laptop.login(victim.email, victim.password)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), 2);
    // 10:40 — the thief, holding the password, signs in from a browser that never signed in: the hour's notice is spent
    // (documented: at most one an hour), so nothing is sent for it...
    fx.clock.advance(35 * 60_000);
    const thief = computer();
    assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), 2);
    // ...and yet the response marked the thief's browser as one that signed in before. Two days later the thief
    // signs in again: the owner has still never been told of this browser, so this sign-in must be reported.
    fx.clock.advance(2 * DAY);
    assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), 3, "a browser whose notice was never sent is not 'known': the owner was never told of it");
  });

  it("attack: the password change the notice advises does not forget the thief's browser: once the thief has the new password too, its sign-ins are silent (ASVS 6.3.5, 6.3.7)", async () => {
    const victim = await fx.user("reset-forgets@example.org");
    const home = computer();
    assert.equal((await home.login(victim.email, victim.password)).statusCode, 200);
    nextHourPlus(1);
    const thief = computer();
    assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), 2, "the owner hears of the thief's browser once (after the first sign-in of all, home's)");
    // The owner follows the notice ("reset your password now") from the home browser.
    const owner = home.tab();
    assert.equal((await owner.login(victim.email, victim.password)).statusCode, 200);
    const newPassword = "amber lanterns over quiet harbours";
    const changed = await owner.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: victim.password, newPassword } });
    assert.equal(changed.statusCode, 200, changed.body);
    // The thief phishes the new password as well, and signs in from the same browser a day later.
    fx.clock.advance(DAY);
    assert.equal((await thief.login(victim.email, newPassword)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), 3, "after the owner replaced the password, the thief's browser must count as new again");
  });

  it("attack: the right password alone, with the second factor never passed, marks the browser known: the thief's later full sign-in (password + phished code) is not reported (ASVS 6.3.5)", async () => {
    const victim = await fx.user("pending-mfa-device@example.org");
    const home = computer();
    const owner = home.tab();
    assert.equal((await owner.login(victim.email, victim.password)).statusCode, 200);
    const { secret } = (await owner.request("POST", "/auth/mfa/totp", { csrf: true })).json() as { secret: string };
    const confirm = await owner.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(confirm.statusCode, 200, confirm.body);
    // The thief has the password only: the login stops at the second-factor gate (and the thief tries no code).
    nextHourPlus(1);
    const thief = computer();
    const pending = await thief.login(victim.email, victim.password);
    assert.equal(pending.statusCode, 200, pending.body);
    assert.equal(pending.json().mfaRequired, true);
    const before = await newDeviceNotices(victim.email);
    // Days later, with a code phished in real time, the thief signs in for real: this browser never completed a
    // sign-in to the account, so this is the first time it is in, and the owner must hear of it.
    fx.clock.advance(3 * DAY);
    const tab = thief.tab();
    assert.equal((await tab.login(victim.email, victim.password)).statusCode, 200);
    const verified = await tab.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } });
    assert.equal(verified.statusCode, 200, verified.body);
    assert.equal(await newDeviceNotices(victim.email), before + 1, "a browser that only ever reached the second-factor gate is not a device the account signed in from");
  });

  it("attack: wrong passwords and a throttled right password from the attacker's browser never set or renew the device cookie, so the later success from it is still reported (ASVS 6.3.5, 6.3.1)", async () => {
    const victim = await fx.user("prereg-device@example.org");
    const mallory = await fx.user("prereg-mallory@example.org");
    assert.equal((await computer().login(victim.email, victim.password)).statusCode, 200); // the owner's first sign-in (told)
    nextHourPlus(1);
    const attacker = computer();
    // The attacker's browser holds a genuine cookie from the attacker's own account.
    assert.equal((await attacker.login(mallory.email, mallory.password)).statusCode, 200);
    const earned = attacker.jar.cookie;
    assert.ok(earned);
    for (let i = 0; i < 5; i++) {
      const wrong = await attacker.login(victim.email, `not the password ${i} at all`);
      assert.equal(wrong.statusCode, 401);
      assert.equal(wrong.headers["set-cookie"], undefined, "a failed login sets no cookie");
    }
    const throttled = await attacker.login(victim.email, victim.password);
    assert.equal(throttled.statusCode, 429, throttled.body);
    assert.equal(throttled.headers["set-cookie"], undefined, "a throttled login sets no cookie, even with the right password");
    const unknown = await attacker.login("prereg-nobody@example.org", "whatever password here");
    assert.equal(unknown.statusCode, 401);
    assert.equal(unknown.headers["set-cookie"], undefined);
    assert.equal(attacker.jar.cookie, earned, "the cookie is unchanged by every failed attempt");
    assert.equal(await newDeviceNotices(victim.email), 1, "only the owner's first sign-in");
    // After the account window, the right password from that browser: still a new device for the victim.
    fx.clock.advance(7 * HOUR);
    assert.equal((await attacker.login(victim.email, victim.password)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), 2);
  });
});

describe("the key the cookie's tags are made under (ASVS 6.3.5)", () => {
  /** The audit subject the server wrote for `text` typed as a login name that names no account: `id:<identifierTag>`. */
  async function tagTypedAsLoginName(text: string): Promise<string> {
    assert.equal((await fx.browser({ newDevice: true }).login(text, "not the password of anyone")).statusCode, 401);
    const rows = await fx.app.db.db.selectFrom("audit_events").select(["subject", "seq"]).where("type", "=", "auth.login.failed").orderBy("seq", "desc").limit(1).execute();
    return /^id:([0-9a-f]{16})$/.exec(String(rows[0]?.subject))?.[1] ?? "";
  }

  it("attack: the tag the audit log holds for a login name typed as the cookie's text is no device tag: a d2 cookie forged from it is a new browser, told to the owner", async () => {
    const victim = await fx.user("device-oracle@example.org");
    assert.equal((await computer().login(victim.email, victim.password)).statusCode, 200);
    nextHourPlus(1);
    const stored = await fx.app.accounts.users.getById(victim.id);
    const deviceId = "oracle".padEnd(22, "o");
    const text = `known-device:${deviceId}:${victim.id}:${stored?.passwordChangedAt ?? 0}`;
    const tag = await tagTypedAsLoginName(text);
    assert.match(tag, /^[0-9a-f]{16}$/, "the log holds a keyed tag of the typed text");
    assert.notEqual(tag, fx.app.keyring.deviceTag(text), "the device key is not the identifier key");
    const told = await newDeviceNotices(victim.email);
    const res = await new Browser(fx.server, { cookie: `d2.${deviceId}.${tag}` }).login(victim.email, victim.password);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(await newDeviceNotices(victim.email), told + 1, "the owner is told of the forged cookie's browser");
  });

  it("a d1 cookie, even one the server made before the upgrade (identifierTag), counts as new once: the owner is told, and the browser is remembered under d2 from then on", async () => {
    const victim = await fx.user("device-upgrade@example.org");
    assert.equal((await computer().login(victim.email, victim.password)).statusCode, 200);
    nextHourPlus(1);
    const stored = await fx.app.accounts.users.getById(victim.id);
    const deviceId = "upgraded".padEnd(22, "u");
    const oldTag = fx.app.keyring.identifierTag(`known-device:${deviceId}:${victim.id}:${stored?.passwordChangedAt ?? 0}`);
    const jar: DeviceJar = { cookie: `d1.${deviceId}.${oldTag}` };
    const told = await newDeviceNotices(victim.email);
    assert.equal((await new Browser(fx.server, jar).login(victim.email, victim.password)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), told + 1, "told once");
    assert.match(jar.cookie ?? "", /^d2\.[A-Za-z0-9_-]{22}\.[0-9a-f]{16}$/, "re-issued in the new format");
    nextHourPlus(1);
    assert.equal((await new Browser(fx.server, jar).login(victim.email, victim.password)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), told + 1, "and known from then on");
  });
});

describe("telling accounts apart through the device cookie (ASVS 6.3.8)", () => {
  it("attack: an unknown account and a wrong password get byte-identical answers and headers whether the request carries a genuine device cookie, a forged one, two, or none", async () => {
    const known = await fx.user("device-enum@example.org");
    const b = computer();
    assert.equal((await b.login(known.email, known.password)).statusCode, 200);
    const genuine = b.jar.cookie as string;
    const cookies = [undefined, `${DEVICE_COOKIE}=${genuine}`, `${DEVICE_COOKIE}=d2.${"A".repeat(22)}.${"0".repeat(16)}`, `${DEVICE_COOKIE}=${genuine}; ${DEVICE_COOKIE}=d2`];
    const answers: string[] = [];
    for (const cookie of cookies) {
      for (const identifier of ["device-enum-nobody@example.org", known.email]) {
        const res = await fx.browser({ newDevice: true }).request("POST", "/auth/login", { body: { identifier, password: "a wrong password, long enough" }, headers: cookie ? { cookie } : {} });
        assert.equal(res.statusCode, 401);
        const { date: _date, "x-request-id": _id, ...headers } = res.headers;
        answers.push(JSON.stringify({ body: res.body, headers }));
      }
      fx.clock.advance(7 * HOUR); // out of the account window before the next round
    }
    assert.equal(new Set(answers).size, 1, answers.join("\n"));
  });
});

describe("the cookie's format and bounds (device-cookie.ts)", () => {
  const acct = (id: string): DeviceAccount => ({ id, passwordChangedAt: null });
  const tagger = (text: string): string => fx.app.keyring.deviceTag(text);
  const id = (c: string): string => "d".repeat(21) + c;
  const valueOf = (setCookie: string): string => (/^__Host-bulwark-device=([^;]*);/.exec(setCookie)?.[1] ?? "");

  it("attack: upper-case hex, truncated or over-long tags, a wrong version, more than 10 entries, junk entries and two different cookies are all refused as a whole (no known account survives a tampered cookie)", () => {
    const good = readDeviceCookie(`${DEVICE_COOKIE}=${valueOf(deviceCookieFor(null, acct("usr_a"), tagger, () => id("a")))}`) as DeviceCookie;
    assert.ok(good && knownDevice(good, acct("usr_a"), tagger));
    const tag = good.tags[0] as string;
    const base = `d2.${good.deviceId}`;
    for (const bad of [
      `${base}.${tag.toUpperCase()}`, `${base}.${tag.slice(0, 15)}`, `${base}.${tag}0`, `D2.${good.deviceId}.${tag}`, `d1.${good.deviceId}.${tag}`, `${base}.${tag}.`,
      `${base}.${tag}.zzzzzzzzzzzzzzzz`, `${base}.${Array.from({ length: MAX_DEVICE_ACCOUNTS + 1 }, () => tag).join(".")}`,
      `d2.${good.deviceId}x.${tag}`, `d2.${good.deviceId.slice(1)}.${tag}`, `${base}.${tag}%0d%0aSet-Cookie:x=1`,
    ]) {
      assert.equal(readDeviceCookie(`${DEVICE_COOKIE}=${bad}`), null, bad);
    }
    // Two different values (one planted through a parent domain by an old browser, say): ambiguous, refused.
    assert.equal(readDeviceCookie(`${DEVICE_COOKIE}=${base}.${tag}; ${DEVICE_COOKIE}=d2.${id("b")}`), null);
    // The name is matched exactly: a look-alike without the __Host- prefix's protection is not read.
    assert.equal(readDeviceCookie(`__host-bulwark-device=${base}.${tag}`), null);
    assert.equal(readDeviceCookie(`bulwark-device=${base}.${tag}`), null);
  });

  it("attack: one browser shared by eleven accounts never reveals one account's tag as another's, keeps at most 10, latest first, and the eleventh sign-in makes the oldest account's browser new again", () => {
    let cookie: DeviceCookie | null = null;
    const users = Array.from({ length: MAX_DEVICE_ACCOUNTS + 1 }, (_, i) => `usr_shared_${i}`);
    for (const user of users) {
      const set = deviceCookieFor(cookie, acct(user), tagger, () => id("s"));
      assert.ok(set.length < 300, `bounded Set-Cookie (${set.length})`);
      cookie = readDeviceCookie(`${DEVICE_COOKIE}=${valueOf(set)}`);
      assert.ok(cookie);
    }
    const c = cookie as DeviceCookie;
    assert.equal(c.tags.length, MAX_DEVICE_ACCOUNTS);
    assert.equal(new Set(c.tags).size, MAX_DEVICE_ACCOUNTS);
    assert.equal(knownDevice(c, acct(users[0] as string), tagger), false, "the oldest was dropped");
    for (const user of users.slice(1)) assert.ok(knownDevice(c, acct(user), tagger), user);
    assert.equal(c.tags[0], deviceCookieFor(c, acct(users[10] as string), tagger, () => id("x")).split(".")[2]?.slice(0, 16), "latest first");
    assert.equal(knownDevice(c, acct("usr_never_here"), tagger), false);
    // Signing in again to an account already held moves it to the front, never duplicating it.
    const again = readDeviceCookie(`${DEVICE_COOKIE}=${valueOf(deviceCookieFor(c, acct(users[5] as string), tagger, () => id("x")))}`) as DeviceCookie;
    assert.equal(again.tags.length, MAX_DEVICE_ACCOUNTS);
    assert.equal(new Set(again.tags).size, MAX_DEVICE_ACCOUNTS);
  });

  it("attack: whatever Cookie header arrives, the renewed Set-Cookie is one bounded line of the fixed format (no injection, no growth), and a malformed device id is never echoed", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 600 }), fc.array(fc.constantFrom("0123456789abcdef", "ffffffffffffffff", "0000000000000000"), { maxLength: 14 }), (junk, tags) => {
        for (const header of [junk, `${DEVICE_COOKIE}=${junk}`, `${DEVICE_COOKIE}=d2.${id("q")}.${tags.join(".")}${junk}`]) {
          const cookie = readDeviceCookie(header);
          const set = deviceCookieFor(cookie, acct("usr_prop"), tagger, () => id("n"));
          assert.match(set, new RegExp(`^${DEVICE_COOKIE}=d2\\.[A-Za-z0-9_-]{22}(\\.[0-9a-f]{16}){1,${MAX_DEVICE_ACCOUNTS}}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000$`));
          assert.ok(knownDevice(readDeviceCookie(`${DEVICE_COOKIE}=${valueOf(set)}`), acct("usr_prop"), tagger));
        }
      }),
      { numRuns: 200 },
    );
    assert.throws(() => deviceCookieFor(null, acct("usr_x"), tagger, () => "short"));
    assert.throws(() => deviceCookieFor(null, acct("usr_x"), tagger, () => `${id("a").slice(1)};`));
  });

  it("attack: a Cookie header padded with 200 junk pairs hides a genuine device cookie from the server, which then treats the browser as new (a notice, never silence)", async () => {
    const victim = await fx.user("padded-device@example.org");
    const home = computer();
    assert.equal((await home.login(victim.email, victim.password)).statusCode, 200);
    nextHourPlus(1);
    const padded = `${Array.from({ length: 200 }, (_, i) => `j${i}=1`).join("; ")}; ${DEVICE_COOKIE}=${home.jar.cookie as string}`;
    const res = await fx.browser({ newDevice: true }).request("POST", "/auth/login", { body: { identifier: victim.email, password: GOOD_PASSWORD }, headers: { cookie: padded } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(await newDeviceNotices(victim.email), 2, "home's first sign-in, then the padded one");
    assert.equal(res.headers["cache-control"], "no-store", "the response that sets the device cookie is not cached (ASVS 14.3.2)");
  });
});

describe("what a responder reads of a sign-in in the audit log (ASVS 16.3.1, 6.3.5)", () => {
  it("attack: a guesser's sign-in after a run of failures, from a new browser, is recorded naming the session it made, the browser as new and the failures before it, so ending that one session locks the guesser out and leaves the owner's (was: the event came before the session, naming neither it nor the browser)", async () => {
    const victim = await fx.user("responder-reads@example.org");
    const home = computer();
    const own = await home.login(victim.email, victim.password);
    assert.equal(own.statusCode, 200);
    nextHourPlus(2);
    const ownTab = home.tab();
    const again = await ownTab.login(victim.email, victim.password);
    assert.equal(again.statusCode, 200);
    const guesser = computer();
    for (let i = 0; i < 3; i++) assert.equal((await guesser.login(victim.email, `wrong guess ${i} of many`)).statusCode, 401);
    const tab = guesser.tab();
    const hit = await tab.login(victim.email, victim.password);
    assert.equal(hit.statusCode, 200, hit.body);

    const events = (await fx.app.audit.tail(50)).filter((e) => e.type === "auth.login.succeeded" && e.subject === victim.id);
    assert.deepEqual(
      events.map((e) => ({ sessionId: e.data["sessionId"], newDevice: e.data["newDevice"], failuresBefore: e.data["failuresBefore"] })),
      [
        { sessionId: own.json().sessionId, newDevice: true, failuresBefore: 0 },
        { sessionId: again.json().sessionId, newDevice: false, failuresBefore: 0 },
        { sessionId: hit.json().sessionId, newDevice: true, failuresBefore: 3 },
      ],
    );
    // The responder ends the session the event names: the guesser's cookie is refused, the owner's still works.
    const named = events[2]!.data["sessionId"] as string;
    await fx.app.accounts.sessions.end(named, victim.id);
    assert.equal((await tab.request("GET", "/auth/session")).json().authenticated, false, "the guesser's session ended");
    assert.equal((await ownTab.request("GET", "/auth/session")).json().authenticated, true, "the owner's session stands");
  });
});
