// Attacks on the security notices of suspicious sign-ins (ASVS 6.3.5: a recovery code used, the right password with a
// refused second factor, a success after a run of failures) and on the API token renewal reminders (ASVS 6.4.5).
// The owner must hear of every authentication that proves a guessed password, a taken password or a spent recovery
// code, whichever route it goes through; a reminder must concern a token that still works. Notices are read from the
// outbox table (what is queued is what will be sent), so nothing here waits for SMTP.
// Tests named "FINDING:" assert the secure behaviour and fail on today's code.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { remindExpiringTokens } from "../src/accounts/tokens/expiry-reminders.ts";
import { tokenUserScope } from "../src/accounts/tokens/index.ts";
import { raiseStamp, revokedBefore } from "../src/accounts/sessions/revocation.ts";
import { HOST, ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const fx = sharedFixture();

/** The kinds of every message queued to `address`, oldest first. */
async function queuedKinds(address: string): Promise<string[]> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address", "kind", "created_at"]).orderBy("created_at").execute();
  return rows.filter((r) => r.to_address.toLowerCase() === address.toLowerCase()).map((r) => r.kind);
}

/** The bodies of the messages of `kind` queued to `address`. */
async function queued(address: string, kind: string): Promise<string[]> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address", "body_text"]).where("kind", "=", kind).execute();
  return rows.filter((r) => r.to_address.toLowerCase() === address.toLowerCase()).map((r) => r.body_text);
}

/** A JSON login from `address` (the socket's remote address; the fixture trusts no proxy). */
function loginFrom(identifier: string, password: string, address: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method: "POST", url: "/auth/login", remoteAddress: address,
    headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json", ...headers },
    payload: JSON.stringify({ identifier, password }),
  });
}

/** A wrong TOTP code at `at` (never the current one). */
function wrongCode(secret: string, at: number): string {
  return totpCode(secret, at) === "000000" ? "111111" : "000000";
}

/** Signs in and enrols TOTP, with recovery codes; returns the owner's aal-2 browser, the secret and the codes. */
async function enrolled(email: string): Promise<{ b: Browser; secret: string; password: string; id: string; codes: string[] }> {
  const user = await fx.user(email);
  const b = fx.browser();
  assert.equal((await b.login(user.email, user.password)).statusCode, 200);
  const { secret } = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json() as { secret: string };
  const confirm = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
  assert.equal(confirm.statusCode, 200, confirm.body);
  const gen = await b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
  assert.equal(gen.statusCode, 200, gen.body);
  fx.clock.advance(30_000); // the enrolment's time step is spent
  return { b, secret, password: user.password, id: user.id, codes: (gen.json() as { codes: string[] }).codes };
}

describe("sign-in after a run of failures (ASVS 6.3.5)", () => {
  it("attack: a password guessed through POST /auth/reauthenticate after a run of failures is reported (ASVS 6.3.5; was: the success there cleared the streak silently, so not even the next login told the owner)", async () => {
    const owner = await fx.user("reauth-guess@example.org");
    // A cookie thief: a session of the owner's (taken before the guessing starts), no password.
    const thief = fx.browser();
    assert.equal((await thief.login(owner.email, owner.password)).statusCode, 200);
    // Guesses at the login from two other addresses, then at the re-authentication form with the stolen cookie.
    for (const ip of ["198.51.100.11", "198.51.100.12"]) assert.equal((await loginFrom(owner.email, "a wrong guess", ip)).statusCode, 401);
    for (let i = 0; i < 4; i++) {
      const r = await thief.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: `reauth guess ${i}` } });
      assert.equal(r.statusCode, 401, r.body);
    }
    // Six failures in a row; the seventh guess is right.
    const right = await thief.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password } });
    assert.equal(right.statusCode, 200, right.body);
    // With the password now known, a sign-in anywhere.
    assert.equal((await loginFrom(owner.email, owner.password, "198.51.100.13")).statusCode, 200);
    const told = await queued(owner.email, "security.sign-in-after-failures");
    assert.ok(told.length >= 1, `six failures then the right password must reach the owner (at the re-authentication or the next sign-in); queued: ${JSON.stringify(await queuedKinds(owner.email))}`);
  });

  it("attack: a current password guessed at the password-change form after a run of failures is reported, whatever the form answers next (ASVS 6.3.5; was: the streak cleared with no notice, 400 'unchanged' proving the guess)", async () => {
    const owner = await fx.user("change-guess@example.org");
    const thief = fx.browser();
    assert.equal((await thief.login(owner.email, owner.password)).statusCode, 200);
    for (const ip of ["198.51.100.21", "198.51.100.22"]) assert.equal((await loginFrom(owner.email, "a wrong guess", ip)).statusCode, 401);
    for (let i = 0; i < 4; i++) {
      const guess = `change form guess ${i}`;
      const r = await thief.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: guess, newPassword: guess } });
      assert.equal(r.statusCode, 401, r.body);
    }
    // The right guess, offered as the new password too: nothing changes, so no "password changed" notice either.
    const right = await thief.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: owner.password } });
    assert.equal(right.statusCode, 400, right.body);
    assert.equal(right.json().error.code, "BULWARK_ERR_PASSWORD_UNCHANGED");
    assert.equal((await loginFrom(owner.email, owner.password, "198.51.100.23")).statusCode, 200);
    const kinds = await queuedKinds(owner.email);
    assert.ok(kinds.includes("security.sign-in-after-failures"), `six failures then a proven password must reach the owner; queued: ${JSON.stringify(kinds)}`);
  });

  it("attack: the right password refused with 429 while the window is full does not wipe the run: the success after the window still reports every failure (ASVS 6.3.5, 6.3.1)", async () => {
    const owner = await fx.user("throttled-run@example.org");
    for (let i = 0; i < 5; i++) assert.equal((await loginFrom(owner.email, `guess ${i}`, "198.51.100.31")).statusCode, 401);
    // The attacker tries the right password while throttled: refused, and counted as nothing (not a reset of the run).
    assert.equal((await loginFrom(owner.email, owner.password, "198.51.100.31")).statusCode, 429);
    fx.clock.advance(6 * HOUR + 1);
    assert.equal((await loginFrom(owner.email, owner.password, "198.51.100.31")).statusCode, 200);
    const told = await queued(owner.email, "security.sign-in-after-failures");
    assert.equal(told.length, 1);
    assert.match(told[0] ?? "", /after 5 failed attempts in a row/);
  });

  it("attack: failures spread over the username and the email of one account count as one run, and the notice goes to that account's address (ASVS 6.3.5)", async () => {
    const app = fx.app;
    const user = await app.accounts.users.create({ email: "two-names@example.org", username: "twonames", passwordHash: await app.accounts.passwords.hash("violet kettle drums at dawn"), passwordScheme: "argon2id" });
    const bystander = await fx.user("twonames@example.net");
    for (let i = 0; i < 3; i++) assert.equal((await loginFrom("twonames", `by name ${i}`, `198.51.100.4${i}`)).statusCode, 401);
    for (let i = 0; i < 2; i++) assert.equal((await loginFrom("TWO-NAMES@example.org", `by mail ${i}`, `198.51.100.5${i}`)).statusCode, 401);
    assert.equal((await loginFrom(" twonames ", "violet kettle drums at dawn", "198.51.100.60")).statusCode, 200);
    const told = await queued(user.email, "security.sign-in-after-failures");
    assert.equal(told.length, 1, JSON.stringify(await queuedKinds(user.email)));
    assert.match(told[0] ?? "", /after 5 failed attempts in a row/);
    assert.deepEqual(await queuedKinds(bystander.email), [], "nothing to another account");
  });

  it("attack: an account whose address the outbox refuses still signs in after a run of failures (200, not 500); the missed notice is audited", async () => {
    const owner = await fx.user("ops@lan");
    for (let i = 0; i < 5; i++) assert.equal((await loginFrom(owner.email, `guess ${i}`, `198.51.100.9${i}`)).statusCode, 401);
    const ok = await loginFrom(owner.email, owner.password, "198.51.100.99");
    assert.equal(ok.statusCode, 200, ok.body);
    const refused = (await fx.app.audit.tail(20)).filter((e) => e.type === "auth.notice.refused" && e.subject === owner.id && e.data["notice"] === "signed-in-after-failures");
    assert.equal(refused.length, 1);
  });
});

describe("sign-in from a new device or browser (ASVS 6.3.5)", () => {
  it("attack: an attacker holding the password cannot flood the owner's mailbox with 'new device' notices: one an hour, like the refused-factor notice (ASVS 6.3.5; was: one per sign-in)", async () => {
    const owner = await fx.user("device-flood@example.org");
    // The owner's own first sign-in, from their browser (told, as a first sign-in of all from a browser nothing vouches
    // for is); the attacker's come the next hour.
    assert.equal((await fx.browser({ newDevice: true }).login(owner.email, owner.password)).statusCode, 200);
    fx.clock.advance(3_600_000);
    // The attacker signs in twelve times within a minute, never keeping the device cookie.
    for (let i = 0; i < 12; i++) {
      assert.equal((await loginFrom(owner.email, owner.password, "198.51.100.110")).statusCode, 200);
      fx.clock.advance(1000);
    }
    const told = (await queued(owner.email, "security.new-device-sign-in")).length - 1; // the owner's own first sign-in
    assert.ok(told >= 1, "the owner is told of the new device");
    assert.ok(told <= 1, `at most one such notice an hour per account, as for a refused second factor; queued ${told} within a minute`);
  });
});

describe("second factor refused, recovery code used (ASVS 6.3.5)", () => {
  it("attack: the right password with a refused second factor at POST /auth/reauthenticate is told to the owner (ASVS 6.3.5: a partly successful authentication; was: nothing)", async () => {
    const { b: owner, secret, password } = await enrolled("reauth-refused@example.org");
    fx.clock.advance(11 * 60_000); // no longer fresh
    const thief = fx.browser();
    thief.cookie = owner.cookie;
    const r = await thief.request("POST", "/auth/reauthenticate", { csrf: true, body: { password, totp: wrongCode(secret, fx.clock.now()) } });
    assert.equal(r.statusCode, 401, r.body);
    const kinds = await queuedKinds("reauth-refused@example.org");
    assert.ok(kinds.includes("security.second-factor-refused"), `whoever sent that knows the password: the owner must be told; queued: ${JSON.stringify(kinds)}`);
  });

  it("attack: a recovery code spent at POST /auth/reauthenticate is reported, as at /auth/mfa/verify (ASVS 6.3.5; was: never)", async () => {
    const { b: owner, password, id, codes } = await enrolled("reauth-recovery@example.org");
    fx.clock.advance(11 * 60_000);
    const thief = fx.browser();
    thief.cookie = owner.cookie;
    const r = await thief.request("POST", "/auth/reauthenticate", { csrf: true, body: { password, recoveryCode: codes[0] } });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(await fx.app.accounts.mfa.recovery.remaining(id), 9, "precondition: the code was spent");
    const kinds = await queuedKinds("reauth-recovery@example.org");
    assert.ok(kinds.includes("security.recovery-code-sign-in"), `a spent recovery code must reach the owner; queued: ${JSON.stringify(kinds)}`);
  });

  it("attack: refused factors from several pending sessions across an hour boundary and a throttled gate still mail at most one notice per clock hour, each to the owner only (ASVS 6.3.5)", async () => {
    const { secret, password } = await enrolled("refused-hours@example.org");
    const other = await fx.user("refused-bystander@example.org");
    // Just before the hour turns: three sessions of the attacker's own fail the factor.
    fx.clock.advance((Math.floor(fx.clock.now() / HOUR) + 2) * HOUR - 1000 - fx.clock.now());
    for (let s = 0; s < 3; s++) {
      const attacker = fx.browser();
      assert.equal((await attacker.login("refused-hours@example.org", password)).statusCode, 200);
      assert.equal((await attacker.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrongCode(secret, fx.clock.now()) } })).statusCode, 401);
    }
    assert.equal((await queued("refused-hours@example.org", "security.second-factor-refused")).length, 1);
    // The new hour: a second notice (the owner is told again), and the factor's throttle answering 429 adds none.
    fx.clock.advance(2000);
    const attacker = fx.browser();
    assert.equal((await attacker.login("refused-hours@example.org", password)).statusCode, 200);
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await attacker.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrongCode(secret, fx.clock.now()) } })).statusCode);
    assert.ok(statuses.includes(429), `precondition: the factor's throttle answered: ${statuses.join(",")}`);
    assert.equal((await queued("refused-hours@example.org", "security.second-factor-refused")).length, 2, "one per clock hour, not one per session or per attempt");
    assert.deepEqual(await queuedKinds(other.email), []);
  });
});

describe("API token renewal reminders (ASVS 6.4.5)", () => {
  const logger = { warn: () => {} };
  const remind = (): Promise<number> => remindExpiringTokens({ db: fx.app.db.db, outbox: fx.app.accounts.outbox, appName: fx.app.config.serviceName, now: fx.clock.now(), logger, usable: (id) => fx.app.accounts.tokens.usable(id) });

  it("attack: a locked account (containment: it may be in hostile hands) is not reminded to renew a token that no longer works for it (ASVS 6.4.5; was: reminded)", async () => {
    const owner = await fx.user("locked-owner@example.org");
    const { token } = await fx.app.accounts.tokens.create(owner.id, { name: "ci", scopes: ["accounts.read"], expiresAt: fx.clock.now() + 10 * DAY });
    await fx.app.db.db.updateTable("users").set({ locked_at: fx.clock.now() }).where("id", "=", owner.id).execute();
    const verdict = await fx.app.accounts.tokens.verify(token, null);
    assert.equal(verdict.valid, false, "precondition: the token no longer works for a locked account");
    fx.clock.advance(4 * DAY);
    await remind();
    assert.deepEqual(await queued(owner.email, "security.api-token-expiring"), [], "no reminder to keep alive a token the account cannot use");
  });

  it("attack: a token already refused by a revocation stamp (revoke-tokens lever begun, rows not yet marked) gets no reminder saying it works until its expiry (ASVS 6.4.5; was: reminded)", async () => {
    const owner = await fx.user("stamped-owner@example.org");
    const { token } = await fx.app.accounts.tokens.create(owner.id, { name: "ci", scopes: ["accounts.read"], expiresAt: fx.clock.now() + 10 * DAY });
    fx.clock.advance(1);
    // What the revoke-tokens lever's first step does (src/contain/levers/stamps.ts): the stamp, before any row is marked.
    await raiseStamp(fx.app.db.db, tokenUserScope(owner.id), revokedBefore(fx.clock.now()), fx.clock.now());
    const verdict = await fx.app.accounts.tokens.verify(token, null);
    assert.equal(verdict.valid, false, "precondition: the stamp refuses the token");
    fx.clock.advance(4 * DAY);
    await remind();
    assert.deepEqual(await queued(owner.email, "security.api-token-expiring"), [], "no reminder for a revoked token");
  });

  it("attack: two nodes running the pass at once, then a restart, queue one reminder per token (a token minted by a token included), keyed by the token, naming no token (ASVS 6.4.5)", async () => {
    const owner = await fx.user("two-nodes@example.org");
    const tokens = fx.app.accounts.tokens;
    const parent = await tokens.create(owner.id, { name: "Click here to keep access", scopes: ["accounts.read"], expiresAt: fx.clock.now() + 10 * DAY });
    const child = await tokens.create(owner.id, { name: "child of the bot", scopes: ["accounts.read"], parent: { id: parent.info.id, expiresAt: parent.info.expiresAt } });
    fx.clock.advance(4 * DAY);
    const [a, b] = await Promise.all([remind(), remind()]);
    assert.equal(a + b, 2, "each token once, whichever node queued it");
    assert.equal(await remind(), 0, "a later pass (a restart) queues nothing");
    const rows = (await fx.app.db.db.selectFrom("outbox_messages").select(["to_address", "idempotency_key", "body_text"]).where("kind", "=", "security.api-token-expiring").execute())
      .filter((r) => r.to_address === owner.email);
    assert.deepEqual(rows.map((r) => r.idempotency_key.split(":")[2]).sort(), [parent.info.id, child.info.id].sort());
    for (const r of rows) assert.doesNotMatch(r.body_text, /Click here|keep access|child of the bot|If it was not you/);
  });
});
