// Red-team round "bounded waits c": the PostgreSQL wait bounds (every pooled connection starts with lock_timeout
// LOCK_TIMEOUT_MS = 5 s; past it a request answers 503 BULWARK_ERR_DB_BUSY "could not finish; try again"), part three:
// the multi-step routes the first two rounds left alone. The attacker is the environment at the worst moment, or anyone
// who can hold a row past the bound (a frozen node inside a transaction, a DBA's open session): a second, superuser pg
// client on the same schema holds the audit log's head (or takes it between two of a request's commits) while
// Bulwark's work waits on it. Not repeated: login, reset completion, containment, settings leaks (round one); the
// outbox's sent mark, the TOTP step-up, last-seen/last-used touches, rotate-master (round two).
// What must hold: a 503 leaves no half-done security change the answer misleads about (the change whole with its
// event, or not made), no secret shown-never-stored or stored-never-shown, and a retry works.
// Tried: a password change whose replaced-session record meets the held head after its commit; "sign out everywhere
// else" behind a held head; a sign-up (POST /auth/register) behind a held head; an email-change request behind a held
// head; an administrator's role revocation over the API, a recovery-code regeneration, an API token mint and an
// email-change confirmation behind a held head (each one transaction).
// Held: an administrator's role revocation (roles.revoke records role.revoked in its own transaction: 503, the role
// still held, the retry revokes it, recorded once), recovery codes (503, the old set still works, no new set stored, the
// retry makes one), the token mint (503, no token stored, the retry mints one recorded once), the email confirmation
// (503, the address and the sessions as they were, the same link works on the retry). Seen on the way: a token's first
// call of the hour waits the full bound on its api.token.used record (swallowed) before its own work waits again, so a
// fresh token's change behind a held head answers only after about twice the bound.
// Found (fixed since: each record now commits in the transaction that makes its change, so a failure rolls the change
// back whole and the retry works): (1) a password change answered 503 after its commit: the new password in force, every
// other session ended, and the asking browser's own cookie rotated away with the new one never sent, so "could not
// finish; try again" was false and the retry it asked for was refused (fixed since: auth.session.replaced is written in
// the rotation's transaction, RotateOptions.record, after auth.password.changed; a node reaching for the head then gets
// it at that commit; the test's frozen node now also reaches for it inside a transaction); (2) "sign out everywhere else"
// answered 503 after its commit: the other sessions ended with no auth.session.ended-others event and the caller's own
// cookie dead too (fixed since: the event is written in the rotation's transaction); (3) a sign-up answered 503 after
// the account committed: an account stood that no user.created event recorded, so it was no "unfinished sign-up" to the
// purge and the address rules (fixed since: user.created is written in the account's own transaction); (4) an
// email-change request answered 503 after its link was queued and mailed: a live link to move the account went out with
// no auth.email.change-requested event naming who asked, and the retry the answer asked for mailed a second (fixed
// since: the event is written in the request's transaction, EmailChangeRequestOptions.record).
// Loopback and temp dirs only; skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import type { LightMyRequestResponse } from "fastify";
import { HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { isUnfinishedSignUp } from "../src/accounts/email-change/sign-up-shell.ts";
import { authFlows, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { pgSites, within, HOLD_AUDIT_HEAD } from "./helpers/pg-site.ts";

const MASTER = testMasterKey("bounded-waits-c-red-team");
// Every test waits out the bound: its sites refuse a held row after 2 s, not the product's 5 s.
const { unavailable, site, lockBoundMs } = pgSites("bwaitc", MASTER, { lockTimeoutSeconds: 2 });
/** Real time a wait past the bound takes to be refused, with room. */
const PAST_BOUND_MS = lockBoundMs + 3_000;
const skip = unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {};
const NEW_PASSWORD = "amber lanterns over quiet harbours";


type Site = { fx: AuthFixture; dba: pg.Client; close: () => Promise<void> };

/** Runs `request` while the DBA holds the audit head in an open transaction; the lock is let go after. */
async function behindHeldHead(dba: pg.Client, request: () => Promise<LightMyRequestResponse>): Promise<LightMyRequestResponse> {
  await dba.query("BEGIN");
  await dba.query(HOLD_AUDIT_HEAD);
  const pending = request();
  const answered = await within(pending, PAST_BOUND_MS);
  await dba.query("ROLLBACK");
  assert.ok(answered !== null, "control: the request answered within the bound");
  return answered;
}

/**
 * Runs `request`; as it appends its first audit event of type `type`, the DBA takes the audit head (a frozen node taking
 * it at the worst moment) and holds it past the bound. Outside a transaction (the request's changes committed already),
 * the record then waits on the held head. Inside one, the head may be that transaction's own already (an earlier event
 * of the same change): the DBA then queues for it and takes it the moment the change lets go of it, the earliest any
 * other writer can. The lock is let go after.
 */
async function headTakenBefore(fx: AuthFixture, dba: pg.Client, type: string, request: () => Promise<LightMyRequestResponse>): Promise<{ res: LightMyRequestResponse; taken: boolean }> {
  const audit = fx.app.audit;
  const original = audit.appendIn.bind(audit);
  let taken = false;
  let holding: Promise<unknown> = Promise.resolve();
  Object.defineProperty(audit, "appendIn", {
    configurable: true, writable: true,
    value: async (executor: Parameters<typeof original>[0], input: Parameters<typeof original>[1]) => {
      if (!taken && input.type === type) {
        taken = true;
        holding = dba.query("BEGIN").then(() => dba.query(HOLD_AUDIT_HEAD));
        if (executor === fx.app.db.db) await holding;
      }
      return original(executor, input);
    },
  });
  try {
    const pending = request();
    const answered = await within(pending, PAST_BOUND_MS + 2_000);
    await holding;
    await dba.query("ROLLBACK");
    assert.ok(answered !== null, "control: the request answered within the bound");
    return { res: answered, taken };
  } finally {
    delete (audit as unknown as Record<string, unknown>)["appendIn"];
  }
}

/**
 * A token's first call of the hour from an address is recorded (api.token.used, sampled; a failed write is swallowed
 * after its own wait): made once before the head is held, so the request under test meets only its own waits.
 */
async function warm(fx: AuthFixture, token: string): Promise<void> {
  await fx.server.inject({ method: "GET", url: "/api/v1/roles", headers: { host: HOST, authorization: `Bearer ${token}` } });
}

const codeOf = (r: LightMyRequestResponse): string | undefined => (r.json() as { error?: { code?: string } }).error?.code;

async function eventsOf(fx: AuthFixture, type: string, subject: string): Promise<Array<Record<string, unknown>>> {
  const rows = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", type).where("subject", "=", subject).execute();
  return rows.map((r) => JSON.parse(r.data) as Record<string, unknown>);
}

async function liveSessions(fx: AuthFixture, userId: string): Promise<string[]> {
  return (await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", userId).execute()).map((s) => s.id);
}

async function signedInAs(b: { request: (m: "GET", u: string) => Promise<LightMyRequestResponse> }): Promise<boolean> {
  const r = await b.request("GET", "/auth/session");
  return r.statusCode === 200 && (r.json() as { authenticated?: boolean }).authenticated === true;
}

describe("a password change whose second record meets a held audit head (PostgreSQL)", skip, () => {
  it("attack: a frozen node takes the audit head as a password change records auth.session.replaced — the change and both its records commit together (the node gets the head at that commit), so no \"could not finish; try again\" is said about a password that was changed and the asking browser holds the session left standing (ASVS 6.3.7, 7.4.3, 16.5.3) (was: the change committed, then its auth.session.replaced append met the held head: 503, the browser signed out, the retry refused as replaced)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const owner = await flows.signedIn("pw-change-busy@example.org");
      const laptop = fx.browser({ newDevice: true });
      assert.equal((await laptop.login(owner.email, owner.password)).statusCode, 200);
      const { res, taken } = await headTakenBefore(fx, dba, "auth.session.replaced",
        () => owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: NEW_PASSWORD } }));
      assert.ok(taken, "control: the change reached its auth.session.replaced record");
      const user = await fx.app.accounts.users.getById(owner.id);
      const changed = user?.passwordHash ? await fx.app.accounts.passwords.verify(NEW_PASSWORD, user.passwordHash) : false;
      const browserIn = await signedInAs(owner.b);
      const laptopIn = await signedInAs(laptop);
      const events = await eventsOf(fx, "auth.password.changed", owner.id);
      const replaced = await eventsOf(fx, "auth.session.replaced", owner.id);
      const problems: string[] = [];
      if (res.statusCode === 503) {
        assert.equal(codeOf(res), "BULWARK_ERR_DB_BUSY", `refused as busy: ${res.body}`);
        // The owner does what the answer says: tries again, from the same browser.
        const retry = await owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: NEW_PASSWORD } })
          .then((r) => `${r.statusCode} ${r.body}`, (error: unknown) => `its CSRF read failed: ${(error as Error).message}`);
        if (changed) problems.push(`the new password is in force (auth.password.changed recorded ${events.length}x, the notice queued, the laptop's session ${laptopIn ? "still live" : "ended"})`);
        if (!browserIn) problems.push("the asking browser is signed out: sessions.rotate replaced its session in the committed change and the new cookie was never sent");
        if (!retry.startsWith("200")) problems.push(`the retry the answer asks for fails (${retry.slice(0, 200)})`);
      } else {
        // Answered as done: then it is done whole, recorded whole, and this browser holds the session left standing.
        assert.equal(res.statusCode, 200, `changed: ${res.body}`);
        const current = await owner.b.request("GET", "/auth/session");
        const standing = (current.json() as { sessionId?: string }).sessionId;
        if (!changed) problems.push("answered 200 but the new password is not in force");
        if (!browserIn) problems.push("answered 200 but the asking browser is signed out");
        if (laptopIn) problems.push("the laptop's session outlived the password change");
        if (events.length !== 1) problems.push(`auth.password.changed recorded ${events.length}x`);
        if (replaced.length !== 1 || replaced[0]?.["newSessionId"] !== standing || replaced[0]?.["reason"] !== "password-changed") {
          problems.push(`auth.session.replaced does not name the session left standing once (${JSON.stringify(replaced)}, standing ${standing})`);
        }
      }
      assert.deepEqual(problems, [],
        `POST /auth/password/change answered ${res.statusCode} with its auth.session.replaced record meeting a frozen node at the audit head: ${problems.join("; ")}. ` +
        "The password route committed the change, then appended auth.session.replaced (recordReplacedSession) outside it; that append waited on the held head and failed, " +
        "so the client was told of a failure that did not happen and lost its session to a rotation it never received");
    } finally {
      await close();
    }
  });
});

describe("signing out everywhere else behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: the owner signs out every other session while the audit head is held past the bound — the 503 leaves the other sessions and this one as they were (auth.session.ended-others commits with the rotation), and the retry ends them, recorded once (ASVS 7.4.3, 7.5.2, 16.3.3, 16.5.3) (was: the other sessions ended that no event named, and the caller signed out by its own request)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const owner = await flows.signedIn("sign-out-others@example.org");
      const thief = fx.browser({ newDevice: true });
      assert.equal((await thief.login(owner.email, owner.password)).statusCode, 200);
      const before = await liveSessions(fx, owner.id);
      assert.equal(before.length, 2, "control: two sessions");
      const res = await behindHeldHead(dba, () => owner.b.request("DELETE", "/auth/sessions", { csrf: true }));
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      const thiefIn = await signedInAs(thief);
      const ownerIn = await signedInAs(owner.b);
      const recorded = await eventsOf(fx, "auth.session.ended-others", owner.id);
      const problems: string[] = [];
      if (!thiefIn && recorded.length === 0) problems.push("the other session was ended and no auth.session.ended-others event records it (who ended it, from where, which session stands)");
      if (!ownerIn) problems.push("the caller's own browser is signed out: its session was replaced in the committed rotation and the new cookie never sent");
      assert.deepEqual(problems, [],
        `DELETE /auth/sessions answered 503 "could not finish; try again", yet: ${problems.join("; ")}. The route commits sessions.rotate (others ended, this one replaced) ` +
        "and only then appends auth.session.ended-others outside that transaction; the append met the held head and failed");
      // The owner does what the answer says: tries again, from the same browser.
      const retry = await owner.b.request("DELETE", "/auth/sessions", { csrf: true });
      assert.equal(retry.statusCode, 200, `the retry ends them: ${retry.body}`);
      assert.equal(await signedInAs(thief), false, "the other session is ended");
      assert.equal(await signedInAs(owner.b), true, "this browser holds the session left standing");
      const ends = await eventsOf(fx, "auth.session.ended-others", owner.id);
      assert.equal(ends.length, 1, "auth.session.ended-others recorded once");
      assert.deepEqual(await liveSessions(fx, owner.id), [ends[0]?.["newSessionId"]], "it names the one session left standing");
    } finally {
      await close();
    }
  });
});

describe("an administrator's role revocation behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: an administrator revokes a role over the API while the audit head is held past the bound — 503 with the role still held (the revocation and its role.revoked event are one transaction); the retry revokes it, recorded once (ASVS 8.2.2, 16.3.2, 16.3.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const admin = (await fx.user("role-admin@example.org", { roles: ["admin"] })).id;
      const adminToken = await flows.tokenFor(admin, ["admin"]);
      const target = (await fx.user("role-holder@example.org")).id;
      await fx.app.accounts.roles.create({ name: "auditors", permissions: ["accounts.read"] }, "test");
      await fx.app.accounts.roles.grant(target, "auditors", "test");
      const revoke = (): Promise<LightMyRequestResponse> => fx.server.inject({ method: "DELETE", url: `/api/v1/users/${target}/roles/auditors`, headers: { host: HOST, authorization: `Bearer ${adminToken}` } });
      await warm(fx, adminToken);
      const res = await behindHeldHead(dba, revoke);
      assert.equal(res.statusCode, 503, `refused as busy: ${res.body}`);
      assert.equal((await fx.app.accounts.roles.rolesOf(target)).includes("auditors"), true, "the role is still held after the 503");
      assert.equal((await eventsOf(fx, "role.revoked", target)).length, 0, "nothing recorded as revoked");
      const retry = await revoke();
      assert.equal(retry.statusCode, 200, `the retry answers: ${retry.body}`);
      assert.equal((retry.json() as { changed?: boolean }).changed, true, "the retry revokes");
      assert.equal((await fx.app.accounts.roles.rolesOf(target)).includes("auditors"), false, "the role is gone");
      assert.equal((await eventsOf(fx, "role.revoked", target)).length, 1, "role.revoked recorded once");
      assert.equal((await eventsOf(fx, "api.role.revoked", target)).length, 1, "api.role.revoked recorded once");
    } finally {
      await close();
    }
  });
});

describe("a sign-up behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: someone signs up (POST /auth/register, registration open) while the audit head is held past the bound — the 503 leaves no account (user.created commits with it); the retry makes an unfinished sign-up and gets the link (ASVS 6.3.8, 16.3.3, 16.5.3) (was: an account committed that no user.created event recorded, never an unfinished sign-up to the purge and the address rules)", async () => {
    const { fx, dba, close } = await site({ BULWARK_REGISTRATION: "open" });
    try {
      const flows = authFlows(() => fx);
      const address = "new-member@example.org";
      const register = (): Promise<LightMyRequestResponse> => fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: address } });
      const res = await behindHeldHead(dba, register);
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      const made = await fx.app.accounts.users.findByIdentifier(address);
      const createdEvents = made ? await eventsOf(fx, "user.created", made.id) : [];
      const retry = await register();
      assert.equal(retry.statusCode, 202, `control: the retry is accepted: ${retry.body}`);
      const link = await flows.tokenIn(address, RESET_LINK).then(() => true, () => false);
      const account = await fx.app.accounts.users.findByIdentifier(address);
      assert.ok(account, "control: an account stands after the retry");
      const signUp = await isUnfinishedSignUp(fx.app.db.db, account.id);
      const problems: string[] = [];
      if (made && createdEvents.length === 0) problems.push(`the 503'd sign-up left account ${made.id} committed with no user.created event`);
      if (!signUp) problems.push("after the retry the account is not an unfinished sign-up (no user.created via register): the abandoned-sign-up purge and the rule that lets the address's real owner take it over never apply, the squat is kept like an administrator's invitation");
      if (!link) problems.push("no link reached the address");
      assert.deepEqual(problems, [],
        `POST /auth/register answered 503 "could not finish", yet: ${problems.join("; ")}. register-routes creates the account in its own transaction, then appends ` +
        "user.created outside it; behind the held head that append failed after the account had committed, and the retry, finding the address taken, takes the existing-account path");
    } finally {
      await close();
    }
  });
});

describe("an email-change request behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: the owner asks to move the account to a new address while the audit head is held past the bound — the 503 leaves no link stored or mailed (auth.email.change-requested commits with the link and its mails); the retry mails one, recorded once (ASVS 16.3.3, 6.3.7, 16.5.3) (was: a live link mailed that no event recorded, and the retry mailed a second)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const owner = await flows.signedIn("mover@example.org");
      const to = "moved-here@example.org";
      const res = await behindHeldHead(dba, () => owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: to } }));
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      await fx.deliver();
      const links = fx.mailTo(to).filter((m) => EMAIL_LINK.test(m.body)).length;
      const recorded = await eventsOf(fx, "auth.email.change-requested", owner.id);
      const pending = await fx.app.db.db.selectFrom("email_change_tokens").select("id").where("user_id", "=", owner.id).execute();
      assert.equal(links, recorded.length,
        `${links} link(s) to move the account to a new address were mailed (${pending.length} stored) while auth.email.change-requested is recorded ${recorded.length}x: ` +
        "emailChanges.request committed the link and its mail, then the route appended the event outside that transaction, met the held head and answered 503; " +
        "the owner, told to try again, gets a second link, and the log never names the session that asked for the first");
      const retry = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: to } });
      assert.equal(retry.statusCode, 202, `the retry is accepted: ${retry.body}`);
      await fx.deliver();
      assert.equal(fx.mailTo(to).filter((m) => EMAIL_LINK.test(m.body)).length, links + 1, "the retry mails one link");
      const afterRetry = await eventsOf(fx, "auth.email.change-requested", owner.id);
      assert.equal(afterRetry.length, recorded.length + 1, "recorded once more");
      assert.equal(afterRetry.at(-1)?.["outcome"], "queued", "as queued");
    } finally {
      await close();
    }
  });
});

describe("one-transaction changes behind a held audit head (PostgreSQL)", skip, () => {
  it("attack: recovery codes regenerated while the audit head is held past the bound — 503, the old set still works and no new set (never shown) is stored; the retry makes one and the old set dies then (ASVS 6.5.2, 16.5.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("codes-busy@example.org");
      const first = await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
      assert.equal(first.statusCode, 200, first.body);
      const old = (first.json() as { codes: string[] }).codes;
      const res = await behindHeldHead(dba, () => u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true }));
      assert.equal(res.statusCode, 503, `refused as busy: ${res.body}`);
      assert.equal((res.json() as { codes?: unknown }).codes, undefined, "no codes in the busy answer");
      assert.equal(await fx.app.accounts.mfa.recovery.remaining(u.id), old.length, "the old set stands whole");
      assert.equal(await fx.app.accounts.mfa.recovery.consume(u.id, old[0] as string), true, "an old code still works");
      const retry = await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
      assert.equal(retry.statusCode, 200, `the retry makes a set: ${retry.body}`);
      const fresh = (retry.json() as { codes: string[] }).codes;
      assert.equal(await fx.app.accounts.mfa.recovery.consume(u.id, old[1] as string), false, "the old set died with the retry");
      assert.equal(await fx.app.accounts.mfa.recovery.consume(u.id, fresh[0] as string), true, "the new set works");
      assert.equal((await eventsOf(fx, "auth.mfa.recovery-codes-generated", u.id)).length, 2, "two sets made, two recorded");
    } finally {
      await close();
    }
  });

  it("attack: a script mints an API token while the audit head is held past the bound — 503, no token stored that was never shown; the retry mints one, recorded once (ASVS 6.3.7, 16.3.3, 16.5.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const owner = await flows.userWith(["accounts.read"]);
      const parent = await flows.tokenFor(owner, ["accounts.read"]);
      const count = async (): Promise<number> => (await fx.app.db.db.selectFrom("api_tokens").select("id").where("user_id", "=", owner).execute()).length;
      await warm(fx, parent);
      const before = await count();
      const mint = (): Promise<LightMyRequestResponse> => fx.server.inject({
        method: "POST", url: "/api/v1/tokens", headers: { host: HOST, authorization: `Bearer ${parent}` }, payload: { name: "nightly", scopes: ["accounts.read"] },
      });
      const res = await behindHeldHead(dba, mint);
      assert.equal(res.statusCode, 503, `refused as busy: ${res.body}`);
      assert.equal(await count(), before, "no token row stored by the busy mint");
      const retry = await mint();
      assert.equal(retry.statusCode, 201, `the retry mints: ${retry.body}`);
      const minted = retry.json() as { token: string; info: { id: string } };
      assert.equal(await count(), before + 1, "one token more");
      assert.equal((await eventsOf(fx, "api.token.created", minted.info.id)).length, 1, "recorded once");
      const used = await fx.server.inject({ method: "GET", url: "/api/v1/roles", headers: { host: HOST, authorization: `Bearer ${minted.token}` } });
      assert.equal(used.statusCode, 200, "the minted token works");
    } finally {
      await close();
    }
  });

  it("attack: the owner opens an email-change link while the audit head is held past the bound — 503, the address and every session as they were; the same link then works (ASVS 6.3.7, 7.4.3, 16.5.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const owner = await flows.signedIn("confirm-busy@example.org");
      const to = "confirmed-here@example.org";
      const asked = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: to } });
      assert.equal(asked.statusCode, 202, asked.body);
      const token = await flows.tokenIn(to, EMAIL_LINK);
      const confirm = (): Promise<LightMyRequestResponse> => fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } });
      const res = await behindHeldHead(dba, confirm);
      assert.equal(res.statusCode, 503, `refused as busy: ${res.body}`);
      assert.equal((await fx.app.accounts.users.getById(owner.id))?.email, owner.email, "the address is unchanged");
      assert.equal(await signedInAs(owner.b), true, "the owner's session stands");
      assert.equal((await eventsOf(fx, "auth.email.changed", owner.id)).length, 0, "nothing recorded as changed");
      const retry = await confirm();
      assert.equal(retry.statusCode, 200, `the same link works on the retry: ${retry.body}`);
      assert.equal((await fx.app.accounts.users.getById(owner.id))?.email, to, "the address moved");
      assert.equal(await signedInAs(owner.b), false, "every session ended with the change");
      assert.equal((await eventsOf(fx, "auth.email.changed", owner.id)).length, 1, "recorded once");
    } finally {
      await close();
    }
  });
});
