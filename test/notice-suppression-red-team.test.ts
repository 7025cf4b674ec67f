// Red team round: silencing the owner's security notices by spending their budgets. The attacker holds the victim's
// password (and, where a test says so, a phished code or recovery code, or the owner's own fresh session at an unlocked
// computer) and wants the ONE notice that matters — their own sign-in from a new browser, their factor enrolment, the
// email change they asked for — never to reach the owner, to reach them late and buried, or to name the wrong thing.
// The budgets read from the code: the new-device notice, one per account per clock hour (`new-device:<user>:<hour>`,
// the account's first sign-in keyed apart); the refused-factor notice, one per account per clock hour; the
// per-account link budgets (3 reset links, 3 email-change requests an hour, silently); the per-mailbox budget shared by
// sign-ups and email changes (3 an hour, spellings folded); the per-client mail-request budget; the per-account hourly
// budgets of the self-service changes that mail the owner (recovery-code sets and app replacements 5, token mints 60);
// the outbox's idempotency keys (kind, event, recipient) and its claim order (priority, then due time, no per-recipient
// ordering). Not repeated: the relay's browser remembered at /auth/mfa/verify in a spent hour
// (test/phishing-relay-red-team.test.ts), the known-device cookie's own attacks (test/device-cookie-attacks.test.ts),
// the flood limits on app replacements, recovery codes and token mints (latest-fixes, http-auth-mfa, tokens-fourth-look).
// Found: factor changes (a passkey added and removed, the app removed and enrolled again) mail the owner each time with
// no hourly bound, so a fresh session buries the notice that matters; the hour's one new-device notice names whichever
// sign-in came first, so a throwaway from an address of the attacker's choosing stands in for its real browser, which is
// never named. Held: the mailbox's and the account's link budgets do not touch notices; the hour keys coalesce only
// their own two kinds.
// "attack: … (was: …)" tests failed on the day they were written (both fixed since: an hourly enrolment budget per
// account, and the hour's new-device follow-up); the other "attack: …" tests pin defences that hold.
// SQLite in a temp dir, requests injected from chosen socket addresses, notices read from the outbox table (what is
// queued is what will be sent). ASVS 5.0 ids.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { authFixture, ORIGIN, totpCode } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { AddressedBrowser, nextHourPlus } from "./helpers/addressed-browser.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/**
 * What the project allows every other self-service change that mails the owner: recovery-code sets and app
 * replacements, 5 an hour each (src/app/accounts.ts, as test/chained-takeover-second-red-team.test.ts states it).
 */
const HOURLY_NOTICE_BUDGET = 5;
/** Where the attacker's throwaway requests come from: an address it picked near the owner's (a residential proxy). */
const THROWAWAY_IP = "203.0.113.7";
/** Where the attacker's real browser sends from. */
const REAL_IP = "198.51.100.66";
describe("red team: spending, coalescing and burying the owner's security notices (ASVS 6.3.5, 6.3.7, 2.4.1)", () => {
  // Sign-ups open: one attack spends the victim's per-mailbox budget with them.
  const fx = sharedFixture(() => authFixture({ BULWARK_REGISTRATION: "open" }));
  const flows = authFlows(() => fx);
  let made = 0;
  const unique = (label: string): string => `${label}-${++made}-${Date.now()}@example.org`;


  /** The messages queued to `address`, oldest first, with their kind and text (security notices are never sealed). */
  async function queuedTo(address: string): Promise<Array<{ id: string; kind: string; text: string; createdAt: number }>> {
    const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["id", "kind", "body_text", "created_at", "to_address"])
      .orderBy("created_at").orderBy("id").execute();
    return rows.filter((r) => r.to_address.toLowerCase() === address.toLowerCase())
      .map((r) => ({ id: r.id, kind: r.kind, text: r.body_text, createdAt: Number(r.created_at) }));
  }

  /** A six-digit code the authenticator app of `secret` does not show now. */
  function wrongCode(secret: string): string {
    return totpCode(secret, fx.clock.now()) === "000000" ? "111111" : "000000";
  }

  /** The notices of `kind` queued to `address`. */
  async function noticesOf(address: string, kind: string): Promise<Array<{ id: string; kind: string; text: string; createdAt: number }>> {
    return (await queuedTo(address)).filter((m) => m.kind === kind);
  }

  it("attack: a fresh session cannot bury the notice that matters — adding and removing a passkey (or the authenticator app) in a loop meets the account's hourly enrolment budget (429), so the factor notices stay bounded and the email-change notice is not one among dozens (ASVS 2.4.1, 6.3.7) (was: one notice per change with no hourly bound, 61 in a minute)", async () => {
    // The intruder sits at the owner's unlocked computer: a session signed in moments ago (fresh), with the app.
    const owner = await flows.withTOTP(unique("bury"));
    const b = owner.b;
    const cycles = 15;
    const refusedAt: string[] = [];
    // Each registration steps the session up and keeps its creation time; the 10-minute window holds for the loop.
    for (let i = 0; i < cycles; i++) {
      fx.clock.advance(2_000);
      const key = new SoftAuthenticator();
      const options = await b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
      if (options.statusCode !== 200) {
        refusedAt.push(`passkey ${i}: options ${options.statusCode}`);
        break;
      }
      const registered = await b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: `k${i}` } });
      if (registered.statusCode !== 200) {
        refusedAt.push(`passkey ${i}: register ${registered.statusCode}`);
        break;
      }
      const removed = await b.request("DELETE", `/auth/mfa/webauthn/${encodeURIComponent(registered.json().credentialId as string)}`, { csrf: true });
      if (removed.statusCode !== 200) {
        refusedAt.push(`passkey ${i}: remove ${removed.statusCode}`);
        break;
      }
    }
    // The same with the authenticator app: removed (with no other factor left the account simply has none for a moment),
    // begun again and confirmed with the code of the new secret the intruder was shown.
    for (let i = 0; i < cycles; i++) {
      fx.clock.advance(2_000);
      const removed = await b.request("DELETE", "/auth/mfa/totp", { csrf: true });
      if (removed.statusCode !== 200) {
        refusedAt.push(`app ${i}: remove ${removed.statusCode}`);
        break;
      }
      const begun = await b.request("POST", "/auth/mfa/totp", { csrf: true });
      if (begun.statusCode !== 200) {
        refusedAt.push(`app ${i}: begin ${begun.statusCode}`);
        break;
      }
      const confirmed = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(begun.json().secret as string, fx.clock.now()) } });
      if (confirmed.statusCode !== 200) {
        refusedAt.push(`app ${i}: confirm ${confirmed.statusCode}`);
        break;
      }
    }
    // Then the act that matters: the account asked to move to the intruder's mailbox (the link goes there).
    fx.clock.advance(2_000);
    const change = await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "collector@evil.test" } });
    assert.equal(change.statusCode, 202, change.body);
    const mail = await queuedTo(owner.email);
    const requested = mail.findIndex((m) => m.kind === "security.email-change-requested");
    assert.ok(requested >= 0, "control: the owner's address is told of the request");
    assert.match(mail[requested]?.text ?? "", /collector@evil\.test/);
    const factorNotices = mail.filter((m) => m.kind === "security.mfa-added" || m.kind === "security.mfa-removed").length;
    // Where a sender's claim (priority, then due time; no order per recipient) finds the one that matters: every
    // message due and claimable before it, the flood of the owner's own factor notices among them.
    const due = await fx.app.db.db.selectFrom("outbox_messages").select(["id"]).where("status", "in", ["queued", "failed"])
      .orderBy("priority").orderBy("next_attempt_at").orderBy("id").execute();
    const ahead = due.findIndex((r) => r.id === mail[requested]?.id);
    // Secure: as for recovery-code sets, app replacements (5 an hour) and token mints (60 an hour, a mint-and-revoke loop
    // stayed under the live cap as add-and-remove stays under 20 passkeys), the changes that mail the owner each time
    // are bounded per account and hour: each loop is refused (429, as every other such budget answers) long before it
    // buries the notices that matter. Bounded generously here (an addition budget per kind of factor, each removal
    // removing what was added or the one app held before), so any per-account hourly bound passes.
    const gaps: string[] = [];
    if (!refusedAt.some((r) => r.startsWith("passkey") && r.endsWith(" 429"))) gaps.push(`${cycles} passkey add-and-remove cycles, none refused`);
    if (!refusedAt.some((r) => r.startsWith("app") && r.endsWith(" 429"))) gaps.push(`${cycles} app remove-and-enrol cycles, none refused`);
    if (factorNotices > 4 * HOURLY_NOTICE_BUDGET + 2) gaps.push(`${factorNotices} 'factor added/removed' notices queued to the owner within two minutes`);
    assert.deepEqual(gaps, [], `one fresh session mails the owner without bound (refused: ${JSON.stringify(refusedAt)}); a sender claims ${ahead} messages before the email-change notice`);
  });

  it("attack: a throwaway sign-in that spends the hour's new-device notice does not hide the real browser signing in minutes later — the hour's one follow-up names it, day after day (ASVS 6.3.5; docs/http-auth.md) (was: the real browser was never named to the owner, not that hour, not the next, not the next day)", async () => {
    const owner = await fx.user(unique("named"));
    // The owner's own first sign-in of all, from home (keyed apart, told).
    const home = new AddressedBrowser(() => fx, "192.0.2.10");
    assert.equal((await home.login(owner.email, owner.password)).statusCode, 200);
    const real = new AddressedBrowser(() => fx, REAL_IP);
    const realSessions: string[] = [];
    for (let day = 0; day < 2; day++) {
      if (day > 0) fx.clock.advance(DAY);
      nextHourPlus(fx, 1);
      // A throwaway sign-in from the address the attacker wants the notice to name; it goes no further.
      const throwaway = new AddressedBrowser(() => fx, THROWAWAY_IP);
      assert.equal((await throwaway.login(owner.email, owner.password)).statusCode, 200);
      // Two minutes later the real browser signs in: the hour's notice is spent, so nothing is queued for it.
      fx.clock.advance(2 * MINUTE);
      const signedIn = await real.login(owner.email, owner.password);
      assert.equal(signedIn.statusCode, 200, signedIn.body);
      realSessions.push(signedIn.json().sessionId as string);
      // It keeps its session busy (never idle for 30 minutes) well past the next clock hour: no second sign-in needed.
      for (let k = 0; k < 7; k++) {
        fx.clock.advance(20 * MINUTE);
        const state = await real.request("GET", "/auth/session");
        assert.equal(state.json().authenticated, true, "control: the real browser's session lives on");
      }
    }
    // Control: the responder's evidence exists — each of the real browser's sign-ins is recorded as a new browser.
    const events = await fx.app.db.db.selectFrom("audit_events").select(["data"]).where("type", "=", "auth.login.succeeded").where("subject", "=", owner.id).execute();
    const recorded = events.map((e) => JSON.parse(e.data) as Record<string, unknown>).filter((d) => realSessions.includes(d["sessionId"] as string));
    assert.equal(recorded.length, 2);
    assert.ok(recorded.every((d) => d["newDevice"] === true && d["ip"] === REAL_IP), "control: recorded as new, with the real address");
    const told = await noticesOf(owner.email, "security.new-device-sign-in");
    const named = (ip: string): number => told.filter((m) => m.text.includes(`from the IP address ${ip}.`)).length;
    assert.equal(named(THROWAWAY_IP), 2, "control: each day's notice names the throwaway's address");
    // Secure: a sign-in from a new browser reaches its owner's mailbox, at the latest in a notice of the following hour
    // (one per hour still: e.g. a follow-up at the top of the next hour naming the new browsers the spent notice left
    // out), so the notice of a cheap throwaway cannot stand in for the sign-in that matters. Today the hourly key
    // drops it for good; only a sign-in of the same browser in a later hour would be told.
    const everNamed = (await queuedTo(owner.email)).filter((m) => m.kind.startsWith("security.") && m.text.includes(REAL_IP)).length;
    assert.ok(everNamed >= 1, `the owner was told of ${told.length} new-device sign-ins, naming ${JSON.stringify(told.map((m) => /IP address ([0-9a-f.:]+[0-9a-f])/.exec(m.text)?.[1]))}; never the real browser's ${REAL_IP}, which signed in twice`);
  });

  it("attack: the budgets of the owner's mailbox are not the notices' — reset requests and sign-ups of its sub-addresses that spend the per-account link budget and the per-mailbox budget leave the email-change and password-change notices of the intruder's acts queued to the owner, naming its address (ASVS 6.3.7, 2.4.1)", async () => {
    const owner = await flows.signedIn(unique("mailbox"));
    const [local, domain] = owner.email.split("@") as [string, string];
    // Anonymous, from many addresses: six reset requests for the owner's address (three working links an hour) and
    // five sign-ups of its sub-addresses (three a mailbox an hour, spellings folded).
    for (let i = 0; i < 6; i++) {
      const r = await new AddressedBrowser(() => fx, `192.0.2.${100 + i}`).request("POST", "/auth/password/reset/request", { body: { email: owner.email } });
      assert.equal(r.statusCode, 202, r.body);
    }
    for (let i = 0; i < 5; i++) {
      const r = await new AddressedBrowser(() => fx, `192.0.2.${120 + i}`).request("POST", "/auth/register", { body: { email: `${local}+s${i}@${domain}` } });
      assert.equal(r.statusCode, 202, r.body);
    }
    const links = (await fx.app.db.db.selectFrom("outbox_messages").select(["kind", "to_address"]).execute())
      .filter((m) => m.to_address.toLowerCase().startsWith(`${local.toLowerCase()}`) && m.to_address.toLowerCase().endsWith(`@${domain}`));
    assert.equal(links.filter((m) => m.kind === "account.password-reset-link").length, 3, "control: the account's hourly reset links are spent");
    assert.equal(links.filter((m) => m.kind === "account.registration-link").length, 3, "control: the mailbox's hourly budget is spent");
    // Now the intruder at the owner's computer (the password known) asks to move the account and changes the password.
    const moved = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "collector-mailbox@evil.test" } });
    assert.equal(moved.statusCode, 202, moved.body);
    const changed = await owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: "amber lanterns over a quiet harbour 88" } });
    assert.equal(changed.statusCode, 200, changed.body);
    const requested = await noticesOf(owner.email, "security.email-change-requested");
    assert.equal(requested.length, 1, "the request is told to the owner's address whatever its mailbox budget");
    assert.match(requested[0]?.text ?? "", /change its email address to collector-mailbox@evil\.test/);
    assert.match(requested[0]?.text ?? "", /The change happens only if the link sent to that address is opened/);
    assert.equal((await noticesOf(owner.email, "security.password-changed")).length, 1, "and so is the password change");
    // And the link went out to the intruder's mailbox: the request was real, not one withheld by a budget.
    assert.equal((await queuedTo("collector-mailbox@evil.test")).filter((m) => m.kind === "account.email-change-link").length, 1);
  });

  it("attack: the hour's refused-factor and new-device notices, spent by a throwaway sign-in with a wrong code, absorb nothing else — the real sign-in's recovery-code use, its passkey enrolment and its email change each get their own notice in the same hour, naming the real browser's address, not the throwaway's (ASVS 6.3.5, 6.3.7)", async () => {
    const owner = await flows.withTOTP(unique("own-keys"));
    const codes = (await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    assert.ok(codes.length > 0, "control: the owner holds recovery codes");
    nextHourPlus(fx, 5);
    const hourStart = fx.clock.now() - 5 * MINUTE;
    // The throwaway: the password, then a wrong code — the hour's new-device and refused-factor notices, both naming it.
    const throwaway = new AddressedBrowser(() => fx, THROWAWAY_IP);
    assert.equal((await throwaway.login(owner.email, owner.password)).json().mfaRequired, true);
    assert.equal((await throwaway.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrongCode(owner.secret) } })).statusCode, 401);
    // The real browser, minutes later: the password and a phished recovery code, then a passkey and a move of the address.
    fx.clock.advance(2 * MINUTE);
    const real = new AddressedBrowser(() => fx, REAL_IP);
    assert.equal((await real.login(owner.email, owner.password)).json().mfaRequired, true);
    const stepped = await real.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } });
    assert.equal(stepped.statusCode, 200, stepped.body);
    const key = new SoftAuthenticator();
    const options = await real.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    const registered = await real.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: "key" } });
    assert.equal(registered.statusCode, 200, registered.body);
    assert.equal((await real.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "collector2@evil.test" } })).statusCode, 202);
    // A wrong code from the real browser too (re-authentication): the hour's refused-factor notice is spent already.
    fx.clock.advance(STEP);
    assert.equal((await real.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, totp: wrongCode(owner.secret) } })).statusCode, 401);
    assert.ok(fx.clock.now() - hourStart < HOUR, "control: all of it within one clock hour");
    const of = async (kind: string): Promise<Array<{ text: string }>> => (await noticesOf(owner.email, kind)).filter((m) => m.createdAt >= hourStart);
    // Documented coalescing: one of each an hour, naming the first (the throwaway).
    for (const kind of ["security.new-device-sign-in", "security.second-factor-refused"]) {
      const hour = await of(kind);
      assert.equal(hour.length, 1, `${kind}: one an hour`);
      assert.match(hour[0]?.text ?? "", new RegExp(`from the IP address ${THROWAWAY_IP.replaceAll(".", "\\.")}\\.`));
    }
    // The significant acts are keyed by their own events: each told once, naming the address that did it.
    const recovery = await of("security.recovery-code-sign-in");
    assert.equal(recovery.length, 1);
    assert.match(recovery[0]?.text ?? "", new RegExp(`from the IP address ${REAL_IP.replaceAll(".", "\\.")}\\.`));
    const added = (await of("security.mfa-added")).filter((m) => /a passkey or security key was added/.test(m.text));
    assert.equal(added.length, 1);
    assert.match(added[0]?.text ?? "", new RegExp(`from the IP address ${REAL_IP.replaceAll(".", "\\.")}\\.`));
    const requested = (await of("security.email-change-requested")).filter((m) => /collector2@evil\.test/.test(m.text));
    assert.equal(requested.length, 1);
  });
});
