// Red team round: chained account takeover, second round — TWO footholds at once. The attacker holds two of: the
// password; read access to the victim's mailbox (every mail, and the power to delete notices before the owner reads
// them); one printed recovery code; a stolen half-signed-in (aal 1) cookie; a stolen aal-2 cookie older than the
// re-authentication window; a copy (clone) of the victim's passkey whose signature counter the attacker sets. The
// victims: (i) password + authenticator app + recovery codes; (ii) password + passkey only; (iii) an administrator
// with an app, a passkey and recovery codes. Each test chains Bulwark's own routes (reset links, re-authentication,
// password change, factor changes, email change, /api/v1 through the cookie) towards a full takeover — an aal-2
// session the owner cannot end, the owner's password, address or factors changed, the owner locked out — and checks
// the owner's way back and the evidence left when the mailbox holder deletes the notices.
// Pairs that amount to a full authentication (password + a recovery code, password + the clone, mailbox + the clone,
// a fresh aal-1 cookie + a code or the clone) take the account by design and are not tested as findings; the earlier
// round (test/chained-takeover-red-team.test.ts) and the rounds it names pin every single foothold.
// Each test is an attack that must fail on correct code. Found and fixed (the tests say what was, "was: …"): a stolen
// stale aal-2 cookie with the password changed the password in a loop — each change voided the owner's reset link, so
// the owner's own way back (mailbox + app) never completed while the thief kept the account's only aal-2 session, and
// each change mailed the owner, without limit; a stale session now asks for the factor before a password change. Held: the mailbox with one printed code (a password, never aal 2); the password with
// the mailbox on all three victims; an administrator's stale cookie with the password (stale after its change); a clone
// stepping up a stale half-signed-in cookie (stale, so it enrols no passkey of its own that would outlive the clone's
// detection, as a fresh one could). ASVS 5.0 ids. Temp dirs and loopback only.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const flows = authFlows(() => fx);
const MINUTE = 60_000;
/** The password the owner chooses through their own reset link. */
const OWNER_NEW = "owner's own passphrase by the river 31";
/** Two passwords a thief alternates between (a password change refuses the current one as the new one). */
const THIEF_PASSWORDS = ["copper lantern drifts over harbour 41", "quiet violet engines hum at midnight 72"] as const;
/**
 * What the project allows every other self-service change that mails the owner: recovery-code sets and app
 * replacements, 5 an hour each (src/app/accounts.ts). A notice per change beyond it buries the ones that matter.
 */
const HOURLY_NOTICE_BUDGET = 5;

type SessionState = { authenticated: boolean; sessionId?: string; aal?: number; mfaRequired?: boolean; mfaEnrolmentRequired?: boolean; fresh?: boolean };
type RequestOptions = Parameters<SoftAuthenticator["authenticate"]>[0];

/** What GET /auth/session says of a browser's session. */
async function state(b: Browser): Promise<SessionState> {
  return (await b.request("GET", "/auth/session")).json();
}

/** A request with a fresh CSRF token; a browser whose session has ended gets the 401 it would get, not a thrown error. */
async function send(b: Browser, method: "POST" | "DELETE", url: string, body?: unknown): Promise<{ statusCode: number; body: string }> {
  const csrf = await b.request("GET", "/auth/csrf");
  if (csrf.statusCode !== 200) return { statusCode: csrf.statusCode, body: csrf.body };
  return b.request(method, url, { csrf: csrf.json().token as string, ...(body === undefined ? {} : { body }) });
}

/** A copy of `victim`'s session cookie in a browser of the thief's own (another computer). */
function steal(victim: Browser): Browser {
  const thief = fx.browser({ newDevice: true });
  thief.cookie = victim.cookie;
  return thief;
}

/** The audit events about `subject` of `type`, oldest first. */
async function eventsOf(type: string, subject: string): Promise<Array<Record<string, unknown>>> {
  const rows = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", type).where("subject", "=", subject).orderBy("seq").execute();
  return rows.map((r) => JSON.parse(r.data) as Record<string, unknown>);
}

/** Security notices of `kind` queued to `address` (whether or not delivered yet). */
async function noticesTo(address: string, kind: string): Promise<number> {
  return (await fx.app.db.db.selectFrom("outbox_messages").select("id").where("to_address", "=", address).where("kind", "=", kind).execute()).length;
}

/** Asks `gate` for passkey assertion options and posts what `build` makes of them to /auth/mfa/verify. */
async function stepUpWithKey(gate: Browser, build: (o: RequestOptions) => unknown): Promise<{ statusCode: number; body: string }> {
  const options = await send(gate, "POST", "/auth/mfa/webauthn/authenticate/options");
  if (options.statusCode !== 200) return options;
  return send(gate, "POST", "/auth/mfa/verify", { webauthn: build(JSON.parse(options.body) as RequestOptions) });
}

/** Victim (i): fully signed in (aal 2) with the authenticator app, holding ten fresh recovery codes. */
async function victimWithApp(email: string): Promise<Awaited<ReturnType<typeof flows.withTOTP>> & { codes: string[] }> {
  const owner = await flows.withTOTP(email);
  const made = await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
  assert.equal(made.statusCode, 200, made.body);
  return { ...owner, codes: made.json().codes as string[] };
}

/** Victim (iii): an administrator with a passkey (registered at the enrolment gate), then an app and recovery codes. */
async function victimAdmin(email: string): Promise<Awaited<ReturnType<typeof flows.withPasskey>> & { secret: string; codes: string[] }> {
  const owner = await flows.withPasskey(email, ["admin"]);
  const secret = (await owner.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
  assert.equal((await owner.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
  fx.clock.advance(STEP);
  const codes = (await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
  assert.equal(codes.length, 10);
  return { ...owner, secret, codes };
}

/** A thief's script changing the password from `thief`'s session, alternating two passwords; remembers every answer. */
function passwordLoop(thief: Browser, current: string): { turn(): Promise<number>; answers: number[]; current(): string } {
  const answers: number[] = [];
  let k = 0;
  return {
    answers,
    current: () => current,
    async turn() {
      const next = THIEF_PASSWORDS[k % 2] as string;
      const r = await send(thief, "POST", "/auth/password/change", { currentPassword: current, newPassword: next });
      answers.push(r.statusCode);
      if (r.statusCode === 200) {
        current = next;
        k++;
      }
      return r.statusCode;
    },
  };
}

describe("a stolen stale aal-2 cookie and the password", () => {
  it("attack: a stolen aal-2 cookie past the re-authentication window, with the password, cannot lock the owner out of their way back: for an account with a second factor a stale session re-authenticates with the factor before a password change, so no loop of changes voids the owner's reset links, and the owner's reset ends the thief's session (ASVS 7.5.1, 6.4.3, 7.4.3) (was: the password alone changed the password every few seconds, each change voiding the owner's reset links and keeping the thief's session alive)", async () => {
    // Victim (i): the laptop session, and a phone session stepped up with the app; the thief copied the phone's cookie.
    const owner = await victimWithApp("loop-lockout@example.org");
    const phone = await flows.pending(owner);
    assert.equal((await phone.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    const thief = steal(phone);
    fx.clock.advance(11 * MINUTE);
    const stolen = await state(thief);
    assert.deepEqual({ aal: stolen.aal, fresh: stolen.fresh }, { aal: 2, fresh: false }, "the foothold: aal 2, past the 10-minute window");

    // The thief's script: a password change every 30 seconds (each one also keeps the session from idling out).
    const loop = passwordLoop(thief, owner.password);
    for (let i = 0; i < 20; i++) {
      await loop.turn();
      fx.clock.advance(30_000);
    }
    // Ten minutes on, the owner (signed out of the laptop, the password refused) does what the notices say: a reset
    // link from the mailbox, completed a minute later with the authenticator app. The script runs on meanwhile.
    const laptop = await state(owner.b);
    const link = await flows.resetToken(owner.email);
    for (let i = 0; i < 6; i++) {
      fx.clock.advance(10_000);
      await loop.turn();
    }
    const reset = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: OWNER_NEW, totp: totpCode(owner.secret, fx.clock.now()) } });
    fx.clock.advance(1000);
    const thiefAfter = await state(thief);
    // Today: every change commits (200), ends the owner's sessions and voids the open reset link, so the owner's reset
    // is refused as an invalid link (400 BULWARK_ERR_RESET_TOKEN) however often they ask (3 links an hour), while the
    // thief's session stays at aal 2 for the rest of its 12-hour lifetime; only a help desk's sessions/revoke ends it.
    // Secure: a stale session cannot keep changing the password without the second factor (full re-authentication,
    // as every other change to how the account signs in asks), so the owner's reset completes and ends the thief.
    assert.deepEqual(
      { ownerReset: reset.statusCode, thiefSignedIn: thiefAfter.authenticated },
      { ownerReset: 200, thiefSignedIn: false },
      `the thief's password changes answered ${loop.answers.join(",")}; the owner's laptop was then signed in: ${laptop.authenticated}; ` +
      `the owner's reset answered ${reset.statusCode} ${reset.body}; the thief's session afterwards: ${JSON.stringify(thiefAfter)}`,
    );
    const back = await flows.pending({ email: owner.email, password: OWNER_NEW });
    assert.equal((await back.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now() + STEP) } })).statusCode, 200, "the owner is back in");
  });

  it("attack: a stolen aal-2 cookie past the re-authentication window, with the password, cannot mail the owner without limit by changing the password again and again: the change asks for the factor first (ASVS 2.4.1, 6.3.7) (was: 30 changes in five minutes, 30 notices)", async () => {
    // Victim (ii): password and passkey only; the thief holds a copy of the session the passkey stepped up.
    const owner = await flows.withPasskey("loop-flood@example.org");
    const thief = steal(owner.b);
    fx.clock.advance(11 * MINUTE);
    assert.equal((await state(thief)).fresh, false);
    const loop = passwordLoop(thief, owner.password);
    for (let i = 0; i < 30; i++) {
      await loop.turn();
      fx.clock.advance(10_000);
    }
    const notices = await noticesTo(owner.email, "security.password-changed");
    // Secure: like every other self-service change that mails the owner (recovery codes, app replacements: 5 an hour),
    // password changes of one account are budgeted, or a stale session cannot make them at all.
    assert.ok(notices <= HOURLY_NOTICE_BUDGET, `${notices} "your password was changed" notices in five minutes; the changes answered ${loop.answers.join(",")}`);
  });

  it("attack: an administrator's stolen stale aal-2 cookie with the password changes nothing: not the password (the factor is asked for first), no role granted, no token minted, no address, no factor replaced, added or removed, no codes made, no session ended; the owner's reset (mailbox + app) ends it (ASVS 7.5.1, 7.5.3, 7.4.3) (was: the password change went through on the password alone)", async () => {
    const owner = await victimAdmin("stale-admin@example.org");
    const confederate = await fx.user("stale-admin-friend@example.org");
    const thief = steal(owner.b);
    fx.clock.advance(11 * MINUTE);
    const stolenId = (await state(thief)).sessionId;
    const changed = await send(thief, "POST", "/auth/password/change", { currentPassword: owner.password, newPassword: THIEF_PASSWORDS[0] });
    assert.equal(changed.statusCode, 403, changed.body);
    assert.equal(JSON.parse(changed.body).error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    const s = await state(thief);
    assert.deepEqual({ aal: s.aal, fresh: s.fresh, sessionId: s.sessionId }, { aal: 2, fresh: false, sessionId: stolenId });
    const passkeyId = encodeURIComponent(owner.credentialId);
    const tries: Array<[string, "POST" | "DELETE", string, unknown?]> = [
      ["grant a confederate the admin role", "POST", `/api/v1/users/${confederate.id}/roles/admin`],
      ["mint an API token", "POST", "/api/v1/tokens", { name: "sync", scopes: ["accounts.read"] }],
      ["set its own address through the API", "POST", `/api/v1/users/${owner.id}/email`, { email: "stale-admin-thief@evil.example" }],
      ["ask for an address change", "POST", "/auth/email/change", { newEmail: "stale-admin-thief@evil.example" }],
      ["begin replacing the app", "POST", "/auth/mfa/totp/replace"],
      ["begin registering a passkey", "POST", "/auth/mfa/webauthn/register/options"],
      ["remove the owner's passkey", "DELETE", `/auth/mfa/webauthn/${passkeyId}`],
      ["remove the owner's app", "DELETE", "/auth/mfa/totp"],
      ["make recovery codes", "POST", "/auth/mfa/recovery-codes"],
      ["end every other session", "DELETE", "/auth/sessions"],
    ];
    const passed: string[] = [];
    for (const [what, method, url, body] of tries) {
      const r = await send(thief, method, url, body);
      if (r.statusCode < 400) passed.push(`${what}: ${r.statusCode} ${r.body.slice(0, 120)}`);
    }
    assert.deepEqual(passed, []);
    // Re-authentication wants the factor, which the pair does not hold: the password alone refreshes nothing.
    const reauth = await send(thief, "POST", "/auth/reauthenticate", { password: owner.password });
    assert.equal(JSON.parse(reauth.body).error.code, "BULWARK_ERR_MFA_REQUIRED");
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(confederate.id), []);
    assert.equal((await fx.app.accounts.users.getById(owner.id))?.email, owner.email);
    assert.equal((await eventsOf("auth.password.changed", owner.id)).length, 0, "the password was not changed");
    // The owner's way back: a reset link from the mailbox, with the app; the thief's session ends with it.
    const link = await flows.resetToken(owner.email);
    const reset = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: OWNER_NEW, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(reset.statusCode, 200, reset.body);
    fx.clock.advance(1000);
    assert.equal((await state(thief)).authenticated, false);
  });
});

describe("the mailbox and one printed recovery code", () => {
  it("attack: the mailbox and one printed recovery code buy the password but never an aal-2 session — after the reset the thief's sign-in stays at the gate, the spent code and a second link without a factor are refused; with every notice deleted the log records the reset, its factor and the codes left; the owner's own reset (mailbox + app) ends the thief's session and password (ASVS 6.4.3, 6.5.1, 16.3.1)", async () => {
    const owner = await victimWithApp("printed-code@example.org");
    const printed = owner.codes[4] as string;
    // The thief: a reset link from the mailbox, completed with the printed code.
    const link = await flows.resetToken(owner.email);
    const reset = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: THIEF_PASSWORDS[0], recoveryCode: printed } });
    assert.equal(reset.statusCode, 200, `control: a code with the link resets the password: ${reset.body}`);
    fx.clock.advance(1000);
    const thief = fx.browser({ newDevice: true });
    const login = await thief.login(owner.email, THIEF_PASSWORDS[0]);
    assert.equal(login.json().mfaRequired, true, "the password alone is half a sign-in");
    const reused = await send(thief, "POST", "/auth/mfa/verify", { recoveryCode: printed });
    const reauth = await send(thief, "POST", "/auth/reauthenticate", { password: THIEF_PASSWORDS[0], recoveryCode: printed });
    const codes = await send(thief, "POST", "/auth/mfa/recovery-codes");
    const move = await send(thief, "POST", "/auth/email/change", { newEmail: "printed-thief@evil.example" });
    const second = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: await flows.resetToken(owner.email), newPassword: THIEF_PASSWORDS[1] } });
    assert.deepEqual(
      { reused: reused.statusCode, reauth: reauth.statusCode, codes: codes.statusCode, move: move.statusCode, second: second.json().error.code, aal: (await state(thief)).aal },
      { reused: 401, reauth: 403, codes: 403, move: 403, second: "BULWARK_ERR_MFA_REQUIRED", aal: 1 },
    );
    // The mailbox holder deletes the notices; the log keeps the reset, the factor and what is left of the codes.
    const record = (await eventsOf("auth.password.reset", owner.id)).at(-1);
    assert.deepEqual({ factor: record?.["factor"], left: record?.["recoveryCodesLeft"], ip: typeof record?.["ip"] }, { factor: "recovery-code", left: 9, ip: "string" });
    // The owner's way back: a fresh link, with the app.
    const back = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: await flows.resetToken(owner.email), newPassword: OWNER_NEW, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(back.statusCode, 200, back.body);
    fx.clock.advance(1000);
    assert.equal((await state(thief)).authenticated, false, "the thief's half-signed-in session ended with the owner's reset");
    assert.equal((await fx.browser({ newDevice: true }).login(owner.email, THIEF_PASSWORDS[0])).statusCode, 401, "the thief's password is gone");
    const gate = await flows.pending({ email: owner.email, password: OWNER_NEW });
    assert.equal((await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: owner.codes[5] } })).statusCode, 200, "the owner's other printed codes still work");
  });
});

describe("the password and the mailbox, against each victim", () => {
  it("attack: the password and the mailbox still need the second factor on every victim — the app-and-codes user, the passkey-only user and the administrator are each held at the second-factor gate (never the enrolment gate, where a first factor could be enrolled), their reset links want a factor, and no factor, address or password changes (ASVS 6.4.3, 6.3.3)", async () => {
    const victims: Array<{ label: string; email: string; password: string; id: string; owner: Browser; key?: SoftAuthenticator }> = [];
    const i = await victimWithApp("pm-app@example.org");
    victims.push({ label: "(i) app + codes", email: i.email, password: i.password, id: i.id, owner: i.b });
    const ii = await flows.withPasskey("pm-passkey@example.org");
    victims.push({ label: "(ii) passkey only", email: ii.email, password: ii.password, id: ii.id, owner: ii.b, key: ii.key });
    const iii = await victimAdmin("pm-admin@example.org");
    victims.push({ label: "(iii) administrator", email: iii.email, password: iii.password, id: iii.id, owner: iii.b, key: iii.key });
    const gained: string[] = [];
    for (const v of victims) {
      const factorsBefore = (await v.owner.request("GET", "/auth/mfa")).json();
      const thief = fx.browser({ newDevice: true });
      const login = (await thief.login(v.email, v.password)).json();
      if (login.mfaRequired !== true || login.mfaEnrolmentRequired !== false) gained.push(`${v.label}: login ${JSON.stringify(login)}`);
      for (const [what, method, url, body] of [
        ["begin an app", "POST", "/auth/mfa/totp"],
        ["register a passkey", "POST", "/auth/mfa/webauthn/register/options"],
        ["move the address", "POST", "/auth/email/change", { newEmail: "pm-thief@evil.example" }],
        ["mint a token", "POST", "/api/v1/tokens", { name: "x", scopes: ["accounts.read"] }],
        ["list users", "GET", "/api/v1/users"],
      ] as const) {
        const r = method === "GET" ? await thief.request("GET", url) : await send(thief, method, url, body);
        if (r.statusCode < 400) gained.push(`${v.label}: ${what} ${r.statusCode}`);
      }
      // The reset link: no factor, and (for a passkey holder) an assertion by a key of the thief's own over the link's challenge.
      const token = await flows.resetToken(v.email);
      const bare = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: THIEF_PASSWORDS[1] } });
      if (bare.statusCode === 200) gained.push(`${v.label}: reset without a factor`);
      if (v.key) {
        const options = await fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token } });
        const forged = new SoftAuthenticator().authenticate(options.json() as RequestOptions, ORIGIN, { credentialId: v.key.id });
        const r = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: THIEF_PASSWORDS[1], webauthn: forged } });
        if (r.statusCode === 200) gained.push(`${v.label}: reset with a forged assertion`);
      }
      if ((await state(thief)).aal !== 1) gained.push(`${v.label}: the thief's session left aal 1`);
      if ((await fx.app.accounts.users.getById(v.id))?.email !== v.email) gained.push(`${v.label}: address moved`);
      if ((await fx.browser({ newDevice: true }).login(v.email, v.password)).statusCode !== 200) gained.push(`${v.label}: password changed`);
      assert.deepEqual((await v.owner.request("GET", "/auth/mfa")).json(), factorsBefore, `${v.label}: the factors are as they were`);
    }
    assert.deepEqual(gained, []);
  });
});

describe("a clone of the passkey and a stolen half-signed-in cookie", () => {
  it("attack: a clone stepping up a stolen aal-1 cookie past the window gets a stale aal 2 that cannot enrol a passkey of its own (which would outlive the clone's detection), move the address, mint a token or end sessions; the owner's next genuine sign-in catches the copy, the thief drops to aal 1, and the suspension is recorded naming the passkey and mailed (ASVS 6.3.3, 7.5.1, 6.3.7)", async () => {
    // Victim (ii). The owner's key counts: the owner's sign-in stores 10.
    const owner = await flows.withPasskey("clone-stale-gate@example.org");
    owner.key.counter = 9;
    const warm = await flows.pending(owner);
    assert.equal((await stepUpWithKey(warm, (o) => owner.key.authenticate(o, ORIGIN))).statusCode, 200);
    // A sign-in left at the second-factor gate on a shared computer: the thief copies its cookie, and uses it later.
    const abandoned = await flows.pending(owner);
    const thief = steal(abandoned);
    fx.clock.advance(11 * MINUTE);
    assert.equal((await stepUpWithKey(thief, (o) => owner.key.authenticate(o, ORIGIN, { counter: 500 }))).statusCode, 200, "the clone, ahead, steps the copy up");
    const s = await state(thief);
    assert.deepEqual({ aal: s.aal, fresh: s.fresh }, { aal: 2, fresh: false }, "a factor alone never makes a session fresh");
    const mine = new SoftAuthenticator();
    const passed: string[] = [];
    const options = await send(thief, "POST", "/auth/mfa/webauthn/register/options");
    if (options.statusCode < 400) {
      const reg = await send(thief, "POST", "/auth/mfa/webauthn/register", { response: mine.register(JSON.parse(options.body), ORIGIN), name: "mine" });
      passed.push(`register ${reg.statusCode}`);
    }
    for (const [what, method, url, body] of [
      ["move the address", "POST", "/auth/email/change", { newEmail: "clone-thief@evil.example" }],
      ["mint a token", "POST", "/api/v1/tokens", { name: "x", scopes: ["audit.read"] }],
      ["end the owner's sessions", "DELETE", "/auth/sessions"],
    ] as const) {
      const r = await send(thief, method, url, body);
      if (r.statusCode < 400) passed.push(`${what} ${r.statusCode}`);
    }
    assert.deepEqual(passed, []);
    // The owner signs in with the genuine key (counter 11, behind the clone's 500): the copy is caught.
    const next = await flows.pending(owner);
    assert.equal((await stepUpWithKey(next, (o) => owner.key.authenticate(o, ORIGIN))).statusCode, 401);
    assert.equal((await state(thief)).aal, 1, "the session the clone raised is lowered");
    const suspended = await eventsOf("auth.mfa.suspended", owner.id);
    assert.equal(suspended.length, 1);
    assert.equal(suspended[0]?.["credentialId"], owner.credentialId);
    assert.equal(await noticesTo(owner.email, "security.passkey-suspended"), 1);
    // Its only passkey suspended, the account offers no challenge: the 409 names the way back, and the thief gains none.
    const again = await send(thief, "POST", "/auth/mfa/webauthn/authenticate/options");
    assert.equal(again.statusCode, 409);
    assert.equal(JSON.parse(again.body).error.code, "BULWARK_ERR_MFA_PASSKEY_SUSPENDED");
  });
});
