// Red team, session nineteen: this session's new code attacked as new code. (1) Replacing the authenticator app in one
// step (POST /auth/mfa/totp/replace, /replace/confirm; totp.beginReplacement / confirmReplacement; migration 30); (2) a
// passkey's suspension recorded and mailed, suspended passkeys left out of the options (409 when none is left), the
// assertion's user handle compared; (3) API-token uses the hourly sample left out, written as api.token.uses.unrecorded;
// (4) reset-link factor guesses on a counter of their own; (5) the API refusing the caller's own account.
// The attackers: a thief holding the password and a copy (clone) of the owner's passkey; a thief with a stolen fresh
// aal-2 cookie, or a stale one; the holder of the owner's mailbox (reset links); a leaked API token of a help desk
// (accounts.read + accounts.write) whose holder may know the password too; a client spreading a token's use over
// IPv6 addresses. Each test asserts the secure behaviour. ASVS 5.0 ids. Temp dirs and loopback only.
// Found and fixed (the tests say what was, "was: …"): parallel clone assertions recorded and mailed one passkey's
// suspension once per racing request; a leaked help-desk token could require a password change of its own account,
// holding its owner at the change gate in a loop. Held: the swap's compare-and-set (restart, removal, old-app proofs in flight, a second confirm; both dialects),
// which sessions the swap lowers, a thief's pending replacement after the owner's reset, reset-link recovery-code guesses
// on their own counter with a passkey reset unaffected, and the /64 parsed out of a token-use summary's key.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { HOST, ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { mfaFixture, totpCode as codeAt } from "../src/accounts/mfa/testing/setup.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const flows = authFlows(() => fx);

/** The audit events of `type` about `subject`, oldest first. */
async function eventsOf(type: string, subject: string): Promise<Array<{ id: string; data: Record<string, unknown> }>> {
  const rows = await fx.app.db.db.selectFrom("audit_events").select(["id", "data"]).where("type", "=", type).where("subject", "=", subject).orderBy("seq").execute();
  return rows.map((r) => ({ id: String(r.id), data: JSON.parse(r.data) as Record<string, unknown> }));
}

/** An /api/v1 call with a bearer token from an outside address. */
function api(method: "POST" | "DELETE" | "GET", url: string, bearer: string, address = "203.0.113.66"): Promise<LightMyRequestResponse> {
  return fx.server.inject({ method, url, remoteAddress: address, headers: { host: HOST, authorization: `Bearer ${bearer}` } });
}

/** The assertion options a browser gets (what SoftAuthenticator.authenticate takes). */
type RequestOptions = Parameters<SoftAuthenticator["authenticate"]>[0];

describe("a clone of the owner's passkey and the owner's mailbox", () => {
  /**
   * The owner steps up once (the stored counter is then 10); the thief, with the password and a copy of the key, logs
   * in N times (each a session held at the gate, each with its own challenge) and sends N clone assertions at once,
   * each with counter `counter`. Returns the answers, the auth.mfa.suspended events and the "passkey suspended" mails.
   */
  async function cloneBurst(email: string, counter: number, n: number): Promise<{ answers: number[]; records: number; notices: number }> {
    const u = await flows.withPasskey(email);
    u.key.counter = 9;
    const owner = await flows.pending(u);
    const ownerOptions = await owner.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal((await owner.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: u.key.authenticate(ownerOptions.json() as RequestOptions, ORIGIN) } })).statusCode, 200);
    await fx.deliver();
    const before = fx.mailTo(u.email).length;
    const gates: Array<{ b: Browser; csrf: string; options: RequestOptions }> = [];
    for (let i = 0; i < n; i++) {
      const b = await flows.pending(u);
      const csrf = await b.csrf();
      const o = await b.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf });
      assert.equal(o.statusCode, 200, o.body);
      gates.push({ b, csrf, options: o.json() as RequestOptions });
    }
    const answers = await Promise.all(gates.map((g) => g.b.request("POST", "/auth/mfa/verify", { csrf: g.csrf, body: { webauthn: u.key.authenticate(g.options, ORIGIN, { counter }) } })));
    const records = (await eventsOf("auth.mfa.suspended", u.id)).length;
    await fx.deliver();
    const notices = fx.mailTo(u.email).slice(before).filter((m) => /passkeys was suspended/.test(m.subject)).length;
    return { answers: answers.map((a) => a.statusCode), records, notices };
  }

  it("attack: a clone's holder with the password sending its assertions in parallel gets the passkey's one suspension recorded and mailed once, whatever the number of racing requests (a counter behind or ahead); the others are refused as credential-suspended or replayed (ASVS 6.3.7, 16.3.3) (was: one auth.mfa.suspended and one notice per racing request, so N logins filled the owner's mailbox)", async () => {
    const N = 8;
    // A counter behind the stored one: every request reads the passkey unsuspended before any has suspended it.
    const behind = await cloneBurst("clone-burst@example.org", 5, N);
    assert.ok(behind.answers.every((s) => s === 401), behind.answers.join(","));
    // A counter ahead of the stored one: one request steps up, the others lose its spend and find the counter outrun.
    const ahead = await cloneBurst("clone-outrun@example.org", 50, N);
    assert.equal(ahead.answers.filter((s) => s === 200).length, 1, ahead.answers.join(","));
    assert.deepEqual({ behind: { records: behind.records, notices: behind.notices }, ahead: { records: ahead.records, notices: ahead.notices } },
      { behind: { records: 1, notices: 1 }, ahead: { records: 1, notices: 1 } },
      `one suspension per passkey, yet ${N} parallel clone assertions left ${behind.records} events and ${behind.notices} mails (counter behind) and ${ahead.records} events and ${ahead.notices} mails (counter ahead)`);
  });
});

describe("a leaked help-desk token turned on its own owner", () => {
  it("attack: a leaked help-desk token cannot force its own owner into password changes in a loop — require-password-change refuses the caller's own account (403), so the owner reaches DELETE /api/v1/tokens (ASVS 7.5.2, 6.3.7) (was: allowed, and every session of the owner was held at the change gate while the thief's script ran)", async () => {
    await fx.app.accounts.roles.create({ name: "helpdesk-rpc", permissions: ["accounts.read", "accounts.write"] }, "test");
    const owner = await fx.user("desk-rpc@example.org", { roles: ["helpdesk-rpc"] });
    // An administrative permission: the owner has an authenticator app (BULWARK_REQUIRE_MFA; a token of an owner without
    // one is held), enrolled in the session that will try to end the token, which is then aal 2.
    const b = fx.browser();
    assert.equal((await b.login(owner.email, owner.password)).statusCode, 200);
    const secret = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    assert.equal((await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
    // The owner's token leaks; the owner learns of it and, signed in, tries to end it while the thief's script
    // re-requires a password change in a loop.
    const leaked = await flows.tokenFor(owner.id, ["accounts.read", "accounts.write"]);
    // Each round: the script flags the owner's password; the owner tries to end the token, is held at the change gate,
    // changes the password (the only way on), and tries again.
    let password = owner.password;
    const statuses: number[] = [];
    let roundsHeld = 0;
    for (const next of ["copper meadow whistles softly", "amber harbour lanterns drifting", "silver orchard ravens humming"]) {
      statuses.push((await api("POST", `/api/v1/users/${owner.id}/require-password-change`, leaked)).statusCode);
      const revoke = await b.request("DELETE", "/api/v1/tokens", { csrf: true });
      if (revoke.statusCode === 200) break;
      roundsHeld++;
      const changed = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: password, newPassword: next } });
      assert.equal(changed.statusCode, 200, changed.body);
      password = next;
    }
    const tokenAlive = (await api("GET", "/api/v1/users?limit=1", leaked)).statusCode === 200;
    assert.deepEqual({ selfRequire: statuses[0], roundsHeld, tokenAlive }, { selfRequire: 403, roundsHeld: 0, tokenAlive: false },
      `require-password-change on the token's own account answered ${statuses.join(", ")}; the owner was held at the change gate in ${roundsHeld} rounds out of 3 and the token ${tokenAlive ? "still works" : "was ended"}`);
  });
});

forEachDialect("replacing the authenticator app, raced (totp.confirmReplacement)", (dx) => {
  it("attack: the old app's code proven just before the swap loses its spend after it; a replacement restarted or removed while the new app's code was checked is not swapped in; a second confirm finds nothing (ASVS 6.5.1, 6.3.3)", async () => {
    const f = await mfaFixture(await dx.fresh());
    const user = await f.users.create({ email: "replace-race@example.org" });
    const { secret: old } = await f.mfa.totp.begin(user.id, user.email);
    assert.equal(await f.mfa.totp.confirm(user.id, codeAt(old, f.clock.now())), true);
    f.clock.advance(STEP);
    // A step-up with the old app (the lost phone's holder) proven, its spend still in flight.
    const inFlight = await f.mfa.totp.prove(user.id, codeAt(old, f.clock.now()));
    assert.equal(inFlight.ok, true);
    f.clock.advance(1_000);
    // (a) The owner's replacement is restarted (another tab, or a thief's fresh cookie) after the first one's code was read.
    const { secret: first } = await f.mfa.totp.beginReplacement(user.id, user.email, { sessionId: "tab" });
    f.clock.advance(1_000);
    let ran = false;
    const restarted = await f.mfa.totp.confirmReplacement(user.id, codeAt(first, f.clock.now()), {
      sessionId: "tab",
      first: async (trx) => {
        // What a concurrent beginReplacement commits: a new pending secret, begun later.
        const sealed = await f.keyring.seal(Buffer.from("0123456789abcdefghij"), { table: "mfa_totp", column: "pending_secret_ct", row: user.id });
        await trx.updateTable("mfa_totp").set({ pending_secret_ct: sealed, pending_created_at: f.clock.now() + 1 }).where("user_id", "=", user.id).execute();
        ran = true;
      },
    });
    assert.equal(ran, true);
    assert.equal(restarted, false, "the first replacement's code swapped in a replacement restarted meanwhile");
    f.clock.advance(STEP);
    assert.equal(await f.mfa.totp.verify(user.id, codeAt(first, f.clock.now())), "invalid", "the first replacement's secret is not the app");
    // (b) The app removed (DELETE /auth/mfa/totp in another tab) while the new app's code was checked: nothing comes back.
    const { secret: third } = await f.mfa.totp.beginReplacement(user.id, user.email, { sessionId: "tab" });
    f.clock.advance(1_000);
    const removed = await f.mfa.totp.confirmReplacement(user.id, codeAt(third, f.clock.now()), {
      sessionId: "tab",
      first: async (trx) => void (await trx.deleteFrom("mfa_totp").where("user_id", "=", user.id).execute()),
    });
    assert.equal(removed, false);
    assert.deepEqual(await f.database.db.selectFrom("mfa_totp").selectAll().where("user_id", "=", user.id).execute(), [], "a removed app came back as the replacement");
    // (c) Enrolled again and replaced for real: the old app's proof in flight loses, a second confirm finds nothing.
    f.clock.advance(STEP);
    const { secret: again } = await f.mfa.totp.begin(user.id, user.email);
    assert.equal(await f.mfa.totp.confirm(user.id, codeAt(again, f.clock.now())), true);
    f.clock.advance(STEP);
    const againInFlight = await f.mfa.totp.prove(user.id, codeAt(again, f.clock.now()));
    assert.equal(againInFlight.ok, true);
    f.clock.advance(1_000);
    const { secret: fresh } = await f.mfa.totp.beginReplacement(user.id, user.email, { sessionId: "tab" });
    f.clock.advance(STEP);
    assert.equal(await f.mfa.totp.confirmReplacement(user.id, codeAt(fresh, f.clock.now()), { sessionId: "tab" }), true);
    if (!againInFlight.ok || !inFlight.ok) throw new Error("unreachable");
    assert.equal(await againInFlight.proof.spend(f.database.db), false, "the replaced app's code, proven before the swap, spent after it");
    assert.equal(await inFlight.proof.spend(f.database.db), false, "a code of an app removed long ago spent");
    await assert.rejects(f.mfa.totp.confirmReplacement(user.id, codeAt(fresh, f.clock.now()), { sessionId: "tab" }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" });
    f.clock.advance(STEP);
    assert.equal(await f.mfa.totp.verify(user.id, codeAt(fresh, f.clock.now())), "ok");
  });
});

describe("replacing the authenticator app: whose sessions fall", () => {
  it("attack: the swap lowers exactly the sessions the old app raised — at login and at re-authentication — while one raised by a passkey or a recovery code keeps aal 2, and a thief's fresh session that began a replacement of its own cannot confirm it once the owner's password reset ended it (ASVS 7.4.3, 6.3.3)", async () => {
    const owner = await flows.withTOTP("replace-who@example.org");
    const codes = (await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const key = new SoftAuthenticator();
    const reg = await owner.b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    assert.equal((await owner.b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(reg.json(), ORIGIN), name: "key" } })).statusCode, 200);
    fx.clock.advance(STEP);
    const byApp = await flows.pending(owner);
    assert.equal((await byApp.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
    const byKey = await flows.pending(owner);
    const o = await byKey.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal((await byKey.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: key.authenticate(o.json() as RequestOptions, ORIGIN) } })).statusCode, 200);
    const byCode = await flows.pending(owner);
    assert.equal((await byCode.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } })).statusCode, 200);
    // A session gone stale, re-authenticated with the app (its factor is the app again).
    fx.clock.advance(11 * 60_000);
    const stale = await flows.pending(owner);
    assert.equal((await stale.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(11 * 60_000);
    assert.equal((await stale.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
    // The replacing session: re-authenticated with the passkey.
    const replacer = await flows.pending(owner);
    const ro = await replacer.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal((await replacer.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: key.authenticate(ro.json() as RequestOptions, ORIGIN) } })).statusCode, 200);
    const begun = await replacer.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const newSecret = begun.json().secret as string;
    fx.clock.advance(STEP);
    const swapped = await replacer.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(newSecret, fx.clock.now()) } });
    assert.equal(swapped.statusCode, 200, swapped.body);
    const aal = async (b: Browser): Promise<number | undefined> => (await b.request("GET", "/auth/session")).json().aal as number | undefined;
    assert.deepEqual(
      { byApp: await aal(byApp), reauthedWithApp: await aal(stale), byKey: await aal(byKey), byCode: await aal(byCode), replacer: await aal(replacer) },
      { byApp: 1, reauthedWithApp: 1, byKey: 2, byCode: 2, replacer: 2 },
    );
    // A thief's fresh aal-2 session (what a stolen copy of a fresh cookie is) begins a replacement of its own and keeps its
    // secret; the owner takes the account back with a password reset (link + the new app) before the thief confirms.
    fx.clock.advance(STEP);
    const thief = await flows.pending(owner);
    assert.equal((await thief.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(newSecret, fx.clock.now()) } })).statusCode, 200);
    const thiefBegun = await thief.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(thiefBegun.statusCode, 200, thiefBegun.body);
    const thiefSecret = thiefBegun.json().secret as string;
    const thiefCsrf = await thief.csrf();
    fx.clock.advance(STEP);
    const link = await flows.resetToken(owner.email);
    const reset = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "copper meadow whistles softly", totp: totpCode(newSecret, fx.clock.now()) } });
    assert.equal(reset.statusCode, 200, reset.body);
    fx.clock.advance(1_000);
    const late = await thief.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: thiefCsrf, body: { code: totpCode(thiefSecret, fx.clock.now()) } });
    assert.equal(late.statusCode, 401, late.body);
    fx.clock.advance(STEP);
    const next = await flows.pending({ email: owner.email, password: "copper meadow whistles softly" });
    assert.equal((await next.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(newSecret, fx.clock.now()) } })).statusCode, 200, "the owner's new app is still the factor");
    assert.equal((await eventsOf("auth.mfa.replaced", owner.id)).length, 1, "one replacement recorded");
  });
});

describe("reset-link factor guesses on a counter of their own", () => {
  it("attack: the mailbox holder's wrong recovery codes sent with reset links count on the reset counter only — the owner's recovery code still signs in, and the owner's passkey still completes a reset (an assertion is not guessed, no counter stops it) (ASVS 6.3.1, 6.4.3)", async () => {
    const u = await flows.withPasskey("reset-rc@example.org");
    const codes = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    assert.equal(codes.length, 10);
    const wrongCode = "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa";
    const link = await flows.resetToken(u.email);
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "stolen lantern rivers at noon", recoveryCode: wrongCode } });
      answers.push(r.statusCode);
    }
    assert.deepEqual(answers, [401, 401, 401, 401, 401, 429], "five guesses, then the reset counter's window is full");
    const rightButThrottled = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "stolen lantern rivers at noon", recoveryCode: codes[1] } });
    assert.equal(rightButThrottled.statusCode, 429, "a right code after the window filled is not even looked at");
    // The owner at sign-in: the sign-in counter saw none of them.
    const p = await flows.pending(u);
    const viaCode = await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[2] } });
    assert.equal(viaCode.statusCode, 200, viaCode.body);
    // The owner's own reset, with the passkey, while the reset counter is still full.
    const ownLink = await flows.resetToken(u.email);
    const b = fx.browser();
    const o = await b.request("POST", "/auth/password/reset/webauthn/options", { body: { token: ownLink } });
    assert.equal(o.statusCode, 200, o.body);
    const reset = await b.request("POST", "/auth/password/reset/complete", { body: { token: ownLink, newPassword: "copper meadow whistles softly", webauthn: u.key.authenticate(o.json() as RequestOptions, ORIGIN) } });
    assert.equal(reset.statusCode, 200, reset.body);
    // Both wrong-code bursts are on record, against the account.
    assert.ok((await eventsOf("auth.password.reset-factor-failed", u.id)).length >= 1);
  });
});

describe("API-token uses left out of the hourly sample", () => {
  it("attack: a token holder rotating through the interface ids of one IPv6 /64 writes one use event and one summary for the hour, and the summary's ip is the whole /64 with the token id intact (the key splits at the first colon only) (ASVS 16.3.1, 16.2.1)", async () => {
    const holder = await flows.userWith(["accounts.read"]);
    const t = await fx.app.accounts.tokens.create(holder, { name: "v6-script", scopes: ["accounts.read"] });
    const HOUR = 60 * 60_000;
    fx.clock.advance(HOUR - (fx.clock.now() % HOUR));
    for (let i = 1; i <= 12; i++) {
      const r = await fx.server.inject({ method: "GET", url: "/auth/session", remoteAddress: `2001:db8:7:9::${i.toString(16)}`, headers: { host: HOST, authorization: `Bearer ${t.token}` } });
      assert.equal(r.statusCode, 200, r.body);
    }
    const tail = async (): Promise<Array<{ type: string; data: Record<string, unknown> }>> =>
      (await fx.app.audit.tail(400)).filter((e) => e.data["tokenId"] === t.info.id).map((e) => ({ type: e.type, data: e.data }));
    assert.equal((await tail()).filter((e) => e.type === "api.token.used").length, 1, "one use event for the /64's hour");
    const maintenance = startMaintenance(fx.app, { intervalMs: HOUR, firstPassDelayMs: HOUR });
    try {
      fx.clock.advance(HOUR);
      await maintenance.runOnce();
    } finally {
      await maintenance.stop();
    }
    const summaries = (await tail()).filter((e) => e.type === "api.token.uses.unrecorded").map((e) => e.data);
    assert.deepEqual(summaries, [{ tokenId: t.info.id, ip: "2001:db8:7:9::/64", unrecorded: 11 }]);
  });
});

