// Red team round: the mailbox thief. The attacker controls the victim's inbox for a while (a phished webmail password, a
// forwarding rule planted in it, or a reader of mail in transit) but holds neither the Bulwark password nor a second
// factor; later the owner takes the mailbox back. Goals: take the account over through mail alone (reset, sign-up and
// email-change links), hide by deleting the notices, keep a foothold (links asked for while in control, to be used after
// the owner regained the inbox), use the mailbox as a second key to the account (a twin account under another spelling
// of the same inbox), and, reading mail in transit, learn anything beyond a single-use link.
// Pinned elsewhere and not repeated: the factor at reset (http-auth-password, chained-takeover-*), the reset counter kept
// apart from the sign-in's, the three-working-links cap across spellings and sign-ups (links-fourth-look), links voided
// by a password change, a reset or an email change (http-factors-links-attacks, http-auth-email, takeback).
// One finding, two tests ("attack: … (was: …)", fixed since): the require-mfa-reenrolment lever removed the factor but
// left the reset links the thief asked for while the factor still stood, so for their 30 minutes they reset the password
// with the mailbox alone and the thief enrolled a factor of its own — also when the lever was paired with lock-accounts
// as docs/containment.md advises, since the unlock revived the links. Now the lever spends the affected accounts' open
// reset and email-change links, as invalidate-passwords does (the third test pins that this pairing closes it too).
// Seen and not counted as findings (documented or not promised): a reset link also survives the owner's sign-out
// everywhere and a help desk's sessions/revoke (email-change links do not), the owner's own removal of the last factor
// (docs/mfa-and-tokens.md names that window), and a lock (docs/http-auth.md); the owner's reset or password change kills it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { containDeps, runJob } from "../src/contain/index.ts";
import { jobRunnerOf } from "../src/http/api/index.ts";
import { authFixture, HOST, totpCode, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { authFlows, EMAIL_LINK, RESET_LINK, STEP } from "./helpers/auth-flows.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

const MINUTE = 60_000;
const THIEFS_PASSWORD = "thief's pick 4417 marsh lantern";

let fx: AuthFixture;
let n = 0;
let adminToken: string;

before(async () => {
  // Sign-up open: one test has the thief name the victim's inbox in sign-ups. Jobs are driven by hand (runJob), so each
  // step of a chain happens at a known moment.
  fx = await authFixture({ BULWARK_REGISTRATION: "open" });
  await jobRunnerOf(fx.server)?.stop();
  const admin = await fx.user("responder@example.org", { roles: ["admin"] });
  await ensureSecondFactor(fx.app, admin.id); // the MFA policy holds an administrator's token while the account has no factor
  adminToken = (await fx.app.accounts.tokens.create(admin.id, { name: "responder", scopes: ["admin"] })).token;
});
after(async () => {
  await fx.close();
});

const { withTOTP, resetToken, tokenIn } = authFlows(() => fx);

function api(method: "GET" | "POST" | "DELETE", url: string, bearer: string, body?: unknown): Promise<LightMyRequestResponse> {
  return fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${bearer}` }, ...(body === undefined ? {} : { payload: body as object }) });
}

function complete(b: Browser, token: string, extra: Record<string, unknown> = {}): Promise<LightMyRequestResponse> {
  return b.request("POST", "/auth/password/reset/complete", { body: { token, newPassword: THIEFS_PASSWORD, ...extra } });
}

/** A containment job over one account, run to the end now. */
async function contain(userId: string, levers: string[]): Promise<void> {
  const posted = await api("POST", "/api/v1/contain/jobs", adminToken, { levers, scope: { ids: [userId] } });
  assert.equal(posted.statusCode, 202, posted.body);
  assert.equal((await runJob(containDeps(fx.app), (posted.json() as { job: { id: string } }).job.id)).status, "done");
}

/**
 * The thief's use of a link kept from its time in the mailbox: complete it, sign in with the password it chose and,
 * when that works, enrol an authenticator app of its own. What each step answered.
 */
async function thiefUsesKeptLink(link: string): Promise<{ reset: number; login: number; aal: number | null; ownApp: boolean }> {
  const thief = fx.browser({ newDevice: true });
  const reset = await complete(thief, link);
  fx.clock.advance(1000);
  const login = await thief.login(await emailOf(link), THIEFS_PASSWORD);
  let aal: number | null = null;
  let ownApp = false;
  if (login.statusCode === 200) {
    const begun = await thief.request("POST", "/auth/mfa/totp", { csrf: true });
    if (begun.statusCode === 200) {
      const confirmed = await thief.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(begun.json().secret as string, fx.clock.now()) } });
      ownApp = confirmed.statusCode === 200;
      aal = ownApp ? (confirmed.json().aal as number) : null;
    }
  }
  return { reset: reset.statusCode, login: login.statusCode, aal, ownApp };
}

/** The address of the account a reset link belongs to (the thief read it in the mail's To: header). */
async function emailOf(link: string): Promise<string> {
  const id = link.slice(0, link.indexOf("."));
  const row = await fx.app.db.db.selectFrom("password_reset_tokens").innerJoin("users", "users.id", "password_reset_tokens.user_id")
    .select("users.email").where("password_reset_tokens.id", "=", id).executeTakeFirstOrThrow();
  return row.email;
}

describe("(3) a foothold kept past the owner's return: links asked for while the factor stood", () => {
  it("attack: a reset link the thief asked for while the account still had its authenticator app is spent by require-mfa-reenrolment with the app, so the thief can neither reset without a factor nor enrol an app of its own (ASVS 6.4.3, 7.4.3) (was: the kept link reset the password with no factor once the lever removed the app)", async () => {
    const owner = await withTOTP(`lever-${++n}@example.org`);
    // While the thief holds the inbox: a link for the account. Harmless then, the app guards it; left unused and unspent.
    const kept = await resetToken(owner.email);
    const tried = await complete(fx.browser({ newDevice: true }), kept);
    assert.equal(tried.statusCode, 401, tried.body);
    assert.equal(tried.json().error.code, "BULWARK_ERR_MFA_REQUIRED");
    // The owner takes the inbox back. Ten minutes later a responder runs require-mfa-reenrolment on the account (the
    // app's seed may have leaked — the lever's documented purpose), without invalidate-passwords: the password did not leak.
    fx.clock.advance(10 * MINUTE);
    await contain(owner.id, ["require-mfa-reenrolment"]);
    fx.clock.advance(MINUTE);
    const outcome = await thiefUsesKeptLink(kept);
    const ownerLogin = await fx.browser({ newDevice: true }).login(owner.email, owner.password);
    // Secure: the lever removes the factors and ends the sessions so that "a stolen session cannot enrol the attacker's own
    // factor in the gap" (require-mfa-reenrolment.ts); a reset link minted while the factor stood is the same kind of
    // half-credential that becomes whole in that gap, and must die with the factor (invalidate-passwords spends them).
    assert.deepEqual(
      { reset: outcome.reset, thiefSignsIn: outcome.login === 200, thiefEnrolsItsApp: outcome.ownApp, ownerPasswordWorks: ownerLogin.statusCode === 200 },
      { reset: 400, thiefSignsIn: false, thiefEnrolsItsApp: false, ownerPasswordWorks: true },
      `the link kept from before the lever: reset answered ${outcome.reset}, the thief's login ${outcome.login}, its own app enrolled: ${outcome.ownApp} (aal ${String(outcome.aal)})`,
    );
  });

  it("attack: paired with lock-accounts, as docs/containment.md advises, the lever leaves no kept reset link for the administrator's unlock to revive (ASVS 6.4.3, 7.4.3) (was: the unlock revived the thief's link, which then reset the password with no factor)", async () => {
    const owner = await withTOTP(`lever-lock-${++n}@example.org`);
    const kept = await resetToken(owner.email);
    assert.equal((await complete(fx.browser({ newDevice: true }), kept)).statusCode, 401, "control: the app guards the link while it stands");
    fx.clock.advance(5 * MINUTE);
    await contain(owner.id, ["require-mfa-reenrolment", "lock-accounts"]);
    assert.equal((await complete(fx.browser({ newDevice: true }), kept)).statusCode, 400, "control: refused (and not spent) while locked");
    // The administrator checks with the owner and lets them back in.
    fx.clock.advance(5 * MINUTE);
    const unlocked = await api("POST", `/api/v1/users/${owner.id}/unlock`, adminToken);
    assert.equal(unlocked.statusCode, 200, unlocked.body);
    fx.clock.advance(MINUTE);
    const outcome = await thiefUsesKeptLink(kept);
    assert.deepEqual(
      { reset: outcome.reset, thiefSignsIn: outcome.login === 200, thiefEnrolsItsApp: outcome.ownApp },
      { reset: 400, thiefSignsIn: false, thiefEnrolsItsApp: false },
      `after the unlock the link kept from before the job: reset answered ${outcome.reset}, the thief's login ${outcome.login}, its own app enrolled: ${outcome.ownApp}`,
    );
  });
});

describe("(3) the pairing that does close it", () => {
  it("attack: require-mfa-reenrolment paired with invalidate-passwords leaves the thief's kept link spent: it resets nothing, and only the containment link mailed to the owner (who has the inbox back) sets the next password (ASVS 6.4.3)", async () => {
    const owner = await withTOTP(`lever-invalidate-${++n}@example.org`);
    const kept = await resetToken(owner.email);
    fx.clock.advance(5 * MINUTE);
    await contain(owner.id, ["require-mfa-reenrolment", "invalidate-passwords"]);
    fx.clock.advance(MINUTE);
    const outcome = await thiefUsesKeptLink(kept);
    assert.deepEqual({ reset: outcome.reset, thiefSignsIn: outcome.login === 200 }, { reset: 400, thiefSignsIn: false });
    // The owner's containment link, from the inbox they hold again, needs no factor now (none is left) and works.
    const mailed = await tokenIn(owner.email, RESET_LINK);
    assert.notEqual(mailed, kept);
    const done = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: mailed, newPassword: "owner after the job 6610 slate" } });
    assert.equal(done.statusCode, 200, done.body);
  });
});

describe("(4) the mailbox as a second key: a twin account under another spelling of the victim's inbox", () => {
  it("attack: the thief's own account moved onto the dot-less spelling of the victim's Gmail inbox (confirmed from the stolen inbox), and sign-ups of its sub-addresses that spend the inbox's hourly budget, take nothing from the victim: the victim's address still signs in and resets only the victim's account, and once the owner has the inbox back their reset link still arrives and still asks for their app (ASVS 6.4.3, 2.4.1)", async () => {
    const k = ++n;
    const victim = await withTOTP(`jane.doe${k}@gmail.com`);
    const twin = `janedoe${k}@gmail.com`;
    // The thief's own account asks to move onto the same inbox under another spelling; the link lands in the stolen inbox.
    const thief = { ...(await fx.user(`thief-${k}@attacker.example`, { password: "the thief's own 3390 gravel kite" })), b: fx.browser({ newDevice: true }) };
    assert.equal((await thief.b.login(thief.email, thief.password)).statusCode, 200);
    const asked = await thief.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: twin } });
    assert.equal(asked.statusCode, 202, asked.body);
    const moved = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token: await tokenIn(twin, EMAIL_LINK) } });
    assert.equal(moved.statusCode, 200, moved.body);
    fx.clock.advance(1000);
    // Then it spends the inbox's hourly budget (3, spellings folded) with sign-ups of its sub-addresses.
    for (const spelling of [`jane.doe${k}+a@gmail.com`, `j.anedoe${k}+b@gmail.com`, `janedoe${k}+c@googlemail.com`]) {
      assert.equal((await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: spelling } })).statusCode, 202);
    }
    const withheld = await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: `jan.edoe${k}+d@gmail.com` } });
    assert.equal(withheld.statusCode, 202);
    await fx.deliver();
    assert.equal(fx.mailTo(`jan.edoe${k}+d@gmail.com`).length, 0, "control: the inbox's budget is spent");
    // The twin's password, on the victim's own address: no folding reaches the twin, nor the victim without its app.
    const twinLogin = await fx.browser({ newDevice: true }).login(victim.email, thief.password);
    assert.equal(twinLogin.statusCode, 401, twinLogin.body);
    const viaTwin = await fx.browser({ newDevice: true }).login(twin, thief.password);
    assert.equal(viaTwin.statusCode, 200, viaTwin.body);
    assert.notEqual(viaTwin.json().userId, victim.id, "the twin's spelling signs in the thief's account, never the victim's");
    // The owner has the inbox back: their reset link arrives despite the spent budget, and asks for their app.
    fx.clock.advance(10 * MINUTE);
    const link = await resetToken(victim.email);
    const noFactor = await complete(fx.browser({ newDevice: true }), link);
    assert.equal(noFactor.statusCode, 401, noFactor.body);
    const done = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", {
      body: { token: link, newPassword: "owner back in 5521 quiet harbour", totp: totpCode(victim.secret, fx.clock.now()) },
    });
    assert.equal(done.statusCode, 200, done.body);
    assert.equal((await fx.app.accounts.users.getById(victim.id))?.email, victim.email, "the victim's address is the victim's");
  });
});

describe("(5) the reader of mail in transit", () => {
  it("attack: a reset link read in transit names no account and buys nothing without the factor: the mail carries the link alone (no address, username, display name or code), and the answers the link buys (the factor refusal, the passkey challenge) carry none of them either; the link stays unspent for its owner (ASVS 6.4.3, 6.3.8)", async () => {
    const k = ++n;
    const owner = await withTOTP(`transit-${k}@example.org`);
    const username = `zephyrquill${k}`;
    const displayName = `Quintus Transitova ${k}`;
    await fx.app.db.db.updateTable("users").set({ username, username_key: username, display_name: displayName }).where("id", "=", owner.id).execute();
    // A passkey as well, so the link buys a passkey challenge too.
    const key = new SoftAuthenticator();
    fx.clock.advance(STEP);
    const reauth = await owner.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(reauth.statusCode, 200, reauth.body);
    const options = await owner.b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    const registered = await owner.b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), "https://bulwark.test"), name: displayName } });
    assert.equal(registered.statusCode, 200, registered.body);
    const link = await resetToken(owner.email);
    const mail = fx.mailTo(owner.email).filter((m) => RESET_LINK.test(m.body)).at(-1);
    assert.ok(mail);
    const reader = fx.browser({ newDevice: true });
    const refusal = await complete(reader, link);
    assert.equal(refusal.statusCode, 401, refusal.body);
    const challenge = await reader.request("POST", "/auth/password/reset/webauthn/options", { body: { token: link } });
    assert.equal(challenge.statusCode, 200, challenge.body);
    const local = owner.email.slice(0, owner.email.indexOf("@"));
    for (const [where, text] of [["the mail's text", mail.body], ["the factor refusal", refusal.body], ["the passkey challenge", challenge.body]] as const) {
      for (const secret of [local, username, displayName, owner.id]) {
        assert.ok(!text.toLowerCase().includes(secret.toLowerCase()), `${where} names the account (${secret})`);
      }
    }
    assert.equal(mail.body.match(/https?:\/\/\S+/g)?.length, 1, "one link and nothing else to follow");
    assert.ok(!/\b\d{6}\b/.test(mail.body.replace(RESET_LINK, "")), "no code beside the link");
    assert.equal(reader.cookie, null, "no session for the reader");
    // The link was not spent by the reader's attempts: the owner completes it with the app.
    fx.clock.advance(STEP);
    const owners = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", {
      body: { token: link, newPassword: "owner's own 7720 copper heron", totp: totpCode(owner.secret, fx.clock.now()) },
    });
    assert.equal(owners.statusCode, 200, owners.body);
  });
});
