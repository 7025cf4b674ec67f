// Red team, the race attacker: requests fired at the same instant to spend a single-use or budgeted thing twice, to
// pass a limit by concurrency, or to keep using a session across the moment it is revoked. Two Bulwark nodes behind a
// load balancer on one PostgreSQL schema of the private cluster (READ COMMITTED), each with its own app, HTTP server
// and clock (kept in step). The attackers: a thief holding a victim's session cookie (and, for a re-authentication,
// the password) who acts while a help desk or a containment job revokes that session; the holder of a reset link
// sending it to both nodes with two different passwords; a session bursting the per-account hourly budgets (app
// replacements, recovery-code sets) over both nodes; a cookie thief guessing the current password at
// /auth/password/change in parallel on both nodes. Races are sent with Promise.all; where the order matters it is
// forced, not hoped for: the revoking transaction is held open at a known point (its audit append) while the thief's
// request runs, with bounded waits so that a fix that makes the request wait still ends the test.
// What earlier rounds pinned is not repeated (test/postgres-race-attacks.test.ts: a recovery code or TOTP step raced
// over step-ups and a reset, an email link confirmed three times, twelve parallel logins, parallel re-authentications;
// test/contain-interleave-red-team.test.ts: credentials minted while a job's stamps are raised; nodes-* files).
// Each test asserts the secure behaviour. Three findings, fixed: an email change and a re-authentication did not wait
// for a revocation of their session in flight (email-change-service.ts request(), session-manager.ts rotate()).
// Loopback and temp dirs only; skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { Browser, HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows, EMAIL_LINK } from "./helpers/auth-flows.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { heldAt, until } from "./helpers/held-transaction.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { on, twoNodeCluster } from "./helpers/two-nodes.ts";

type Res = LightMyRequestResponse;
const show = (r: Res | null | undefined): string => (r ? `${r.statusCode} ${r.body.slice(0, 200)}` : "no answer");
const MASTER = testMasterKey("race-red-team");
const unavailable = postgresUnavailable();

/** Whether `b`'s cookie still signs anyone in. */
async function signedIn(b: Browser): Promise<boolean> {
  const r = await b.request("GET", "/auth/session");
  return r.statusCode === 200 && (r.json() as { authenticated?: boolean }).authenticated === true;
}

/**
 * The thief opens its mailbox and follows the confirmation link `change` (its email-change request) sent there, if one
 * was; the account's address afterwards (read on node `a`), and the confirmation's answer (null: no link to follow).
 */
async function thiefConfirms(a: AuthFixture, b: AuthFixture, mailbox: string, change: Res, userId: string): Promise<{ email: string | undefined; confirmed: Res | null }> {
  const link = change.statusCode === 202 ? await authFlows(() => b).tokenIn(mailbox, EMAIL_LINK).catch(() => null) : null;
  const confirmed = link === null ? null : await b.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token: link } });
  return { email: (await a.app.accounts.users.getById(userId))?.email, confirmed };
}

async function eventsOf(fx: AuthFixture, type: string, subject: string): Promise<number> {
  return (await fx.app.db.db.selectFrom("audit_events").select("seq").where("type", "=", type).where("subject", "=", subject).execute()).length;
}

async function noticesTo(fx: AuthFixture, address: string, kind: string): Promise<number> {
  return (await fx.app.db.db.selectFrom("outbox_messages").select("id").where("to_address", "=", address).where("kind", "=", kind).execute()).length;
}

const statuses = (rs: Res[]): number[] => rs.map((r) => r.statusCode).sort((x, y) => x - y);

describe("the race attacker on two nodes of one PostgreSQL database", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  const { twoServers } = twoNodeCluster("race_rt", MASTER);
  let made = 0;

  describe("a session revoked while a request on it is in flight (ASVS 7.4.1)", () => {
    // POST /auth/email/change checks the requesting session again inside its transaction, under the account's link lock
    // (email-change-service.ts, request), with a plain read: it neither takes the user's session turn that
    // endUserSessions holds nor waits for a containment holding the account's row (holdSessionForNewCredential does both,
    // for tokens and factors). On PostgreSQL a revocation that has raised the user's stamp and deleted the sessions but
    // not committed is invisible to it, and the link it inserts records the revocation counter's value, already the
    // revocation's epoch (a sequence), and a creation time after the stamp's: the stamp does not refuse it at
    // confirmation, and the thief moves the account to a mailbox it reads.
    it("attack: a cookie thief's email change in flight while a help desk ends the account's sessions (POST /api/v1/users/:id/sessions/revoke) waits for the revocation and is refused with a revoked session's 401: no link, no move of the address (ASVS 7.4.1, 7.4.5, 6.3.7) (was: the link committed beside the uncommitted revocation and moved the address to the thief's mailbox after it answered)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const n = ++made;
        const victim = await a.user(`revoke-race-${n}@example.org`);
        const helpdesk = await a.user(`helpdesk-${n}@example.org`, { roles: ["admin"] });
        const helpdeskToken = await authFlows(() => a).tokenFor(helpdesk.id, ["admin"]);
        const thiefMailbox = `thief-${n}@evil.example`;
        // The thief's session: a fresh sign-in (a phished password, or the cookie of one), served by node B.
        const thief = b.browser({ newDevice: true });
        assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
        const links = async (): Promise<number> => (await a.app.db.db.selectFrom("email_change_tokens").select("id").where("user_id", "=", victim.id).execute()).length;
        const { revoked, request } = await heldAt(a, "user.sessions-revoked",
          () => {
            advance(5); // the request runs a few milliseconds after the revocation's time
            return thief.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: thiefMailbox } });
          },
          () => a.server.inject({ method: "POST", url: `/api/v1/users/${victim.id}/sessions/revoke`, headers: { host: HOST, authorization: `Bearer ${helpdeskToken}` } }),
          (change) => Promise.race([change.catch(() => undefined), until(async () => (await links()) > 0)]));
        assert.equal(revoked.statusCode, 200, revoked.body);
        const change = await request;
        assert.equal(await signedIn(thief), false, "the thief's session is over");
        // After the revocation answered: the thief opens its mail and confirms.
        advance(60_000);
        const { email, confirmed } = await thiefConfirms(a, b, thiefMailbox, change, victim.id);
        assert.equal(email, victim.email,
          `the email change the revoked session asked for (${show(change)}) was confirmed after the help desk ended its sessions (${show(confirmed)}): the account now answers to ${email}`);
      } finally {
        await close();
      }
    });

    it("attack: a cookie thief's email change in flight while a revoke-sessions containment job is created waits for the job's creation and is refused: no link survives the job (ASVS 7.4.1, 7.4.5) (was: a working confirmation link after the job reported done, and the address moved)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const n = ++made;
        const victim = await a.user(`job-race-${n}@example.org`);
        const thiefMailbox = `thief-job-${n}@evil.example`;
        const thief = b.browser({ newDevice: true });
        assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
        const links = async (): Promise<number> => (await a.app.db.db.selectFrom("email_change_tokens").select("id").where("user_id", "=", victim.id).execute()).length;
        const { revoked: job, request } = await heldAt(a, "contain.revocation.raised",
          () => {
            advance(5);
            return thief.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: thiefMailbox } });
          },
          () => createContainJob(containDeps(a.app), { levers: ["revoke-sessions"], scope: { ids: [victim.id] }, actor: "responder" }),
          (change) => Promise.race([change.catch(() => undefined), until(async () => (await links()) > 0)]));
        const change = await request;
        const done = await runJob(containDeps(a.app), job.id);
        assert.equal(done.status, "done");
        assert.equal(await signedIn(thief), false, "the thief's session is over");
        advance(60_000);
        const { email, confirmed } = await thiefConfirms(a, b, thiefMailbox, change, victim.id);
        assert.equal(email, victim.email,
          `the email change the revoked session asked for (${show(change)}) was confirmed after revoke-sessions reported done (${show(confirmed)}): the account now answers to ${email}`);
      } finally {
        await close();
      }
    });

    // sessions.rotate (session-manager.ts) validates the old token before its transaction, then, in the user's turn,
    // deletes the old row and inserts the new session. A revoke-sessions job only raises the stamps when it is created
    // (its batch deletes the rows later), holding the accounts' rows FOR NO KEY UPDATE meanwhile: the rotation's turn
    // waits for that lock, but once the job commits nothing reads the old session again: its row is still there, the
    // DELETE wins it, and the new session (created now, with the job's epoch) is refused neither by the stamp nor by the
    // batch, which deletes only rows issued before the job. A re-authentication keeps no lifetime, so it escapes.
    it("attack: a session re-authenticating while a revoke-sessions job is being created is refused once the job commits, so no new session escapes the job's stamp and batch (ASVS 7.4.1, 7.2.4) (was: a new, fresh session dated after the job that both missed)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const n = ++made;
        const victim = await a.user(`reauth-race-${n}@example.org`);
        const thief = b.browser({ newDevice: true });
        assert.equal((await thief.login(victim.email, victim.password)).statusCode, 200);
        // Held until the re-authentication waits on the job's lock (its rotation reached the user's turn), or has answered.
        const { revoked: job, request, waited } = await heldAt(a, "contain.revocation.raised",
          () => {
            advance(5);
            return thief.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: victim.password } });
          },
          () => createContainJob(containDeps(a.app), { levers: ["revoke-sessions"], scope: { ids: [victim.id] }, actor: "responder" }));
        const reauth = await request;
        assert.ok(waited, "the re-authentication was in flight while the job's stamps were raised");
        const done = await runJob(containDeps(a.app), job.id);
        assert.equal(done.status, "done");
        const rows = await a.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", victim.id).execute();
        assert.equal(await signedIn(thief) || (await signedIn(on(a, thief))), false,
          `the thief's session, revoked by the job's stamp while its re-authentication ran (${show(reauth)}), lives on after revoke-sessions reported done (${rows.length} session row(s) left)`);
      } finally {
        await close();
      }
    });
  });

  describe("single-use and budgeted things spent on both nodes at once", () => {
    // The reset completion's guard against parallel completions of one link (`completing` in password-routes.ts) is per
    // process; across nodes only the redeem's compare-and-set under the account's link lock stands between the two.
    it("attack: one reset link completed on both nodes at once with two different new passwords is spent once: one reset, one auth.password.reset, one notice, only the winner's password works, and the sessions end (ASVS 6.4.1, 7.4.3, 6.3.7)", async () => {
      const { a, b, close } = await twoServers();
      try {
        const flows = authFlows(() => a);
        for (let round = 0; round < 3; round++) {
          const victim = await flows.signedIn(`ana${++made}@example.org`);
          const token = await flows.resetToken(victim.email);
          const passwords = [`lantern orchard whistle ${made} violet`, `copper meadow lighthouse ${made} amber`];
          const answers = await Promise.all([
            a.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword: passwords[0] } }),
            b.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword: passwords[1] } }),
          ]);
          assert.deepEqual(statuses(answers), [200, 400], answers.map(show).join(" | "));
          const loser = answers.find((r) => r.statusCode === 400) as Res;
          assert.equal((loser.json() as { error: { code: string } }).error.code, "BULWARK_ERR_RESET_TOKEN", "the loser gets the refusal of a spent link");
          assert.equal(await eventsOf(a, "auth.password.reset", victim.id), 1, "one reset recorded");
          assert.equal(await noticesTo(a, victim.email, "security.password-reset"), 1, "one notice queued");
          const winner = answers.findIndex((r) => r.statusCode === 200);
          const logins = await Promise.all(passwords.map((p) => a.browser({ newDevice: true }).login(victim.email, p)));
          assert.deepEqual(logins.map((r) => r.statusCode), passwords.map((_, i) => (i === winner ? 200 : 401)), "only the winner's password signs in");
          assert.equal(await signedIn(victim.b), false, "the session from before the reset is over");
        }
      } finally {
        await close();
      }
    });

    // Each begin of an app replacement and each new set of recovery codes mails the owner, so an account gets 5 of each
    // an hour (APP_REPLACEMENTS_PER_HOUR, RECOVERY_CODE_SETS_PER_HOUR), taken atomically as they start (FloodControl.takeFor)
    // and given back when the work fails. Sent twelve at a time, half to each node, from one session.
    it("attack: twelve app-replacement begins and twelve recovery-code regenerations fired at once over two nodes spend the hourly budget exactly: 5 of each begun, recorded and mailed, 7 refused with 429, and one set of ten codes live (ASVS 2.4.1, 6.3.7, 6.5.1)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const owner = await authFlows(() => a).withTOTP(`budget-${++made}@example.org`);
        advance(0);
        const browsers = [owner.b, on(b, owner.b)];
        const burst = (url: string): Promise<Res[]> => Promise.all(Array.from({ length: 12 }, (_, i) => (browsers[i % 2] as Browser).request("POST", url, { csrf: true })));
        const begins = await burst("/auth/mfa/totp/replace");
        assert.deepEqual(statuses(begins), [...Array(5).fill(200), ...Array(7).fill(429)], begins.map(show).join(" | "));
        assert.equal(await eventsOf(a, "auth.mfa.replacement-begun", owner.id), 5);
        assert.equal(await noticesTo(a, owner.email, "security.mfa-replacement-begun"), 5);
        const sets = await burst("/auth/mfa/recovery-codes");
        assert.deepEqual(statuses(sets), [...Array(5).fill(200), ...Array(7).fill(429)], sets.map(show).join(" | "));
        assert.equal(await eventsOf(a, "auth.mfa.recovery-codes-generated", owner.id), 5);
        assert.equal(await noticesTo(a, owner.email, "security.recovery-codes-regenerated"), 5);
        assert.equal(await a.app.accounts.mfa.recovery.remaining(owner.id), 10, "one set of ten codes is live, not several");
      } finally {
        await close();
      }
    });

    // POST /auth/password/change checks the current password on the login's counters (account+IP), counted as each
    // attempt starts (FloodControl.begin), serialised per key on PostgreSQL across nodes.
    it("attack: twelve wrong current passwords fired at once at /auth/password/change over two nodes from a stolen fresh cookie get five argon2 verifies, not twelve, and then the right password is refused too (ASVS 6.3.1)", async () => {
      const { a, b, close } = await twoServers();
      try {
        const victim = await authFlows(() => a).signedIn(`change-guess-${++made}@example.org`);
        let verifies = 0;
        for (const fx of [a, b]) {
          const passwords = fx.app.accounts.passwords as { verify: (password: string, hash: string) => Promise<boolean> };
          const verify = passwords.verify.bind(passwords);
          passwords.verify = async (password, hash) => {
            verifies++;
            return verify(password, hash);
          };
        }
        const browsers = [victim.b, on(b, victim.b)];
        const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) =>
          (browsers[i % 2] as Browser).request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: `wrong guess number ${i} of twelve`, newPassword: `a brand new password ${i} kettle` } })));
        assert.deepEqual(statuses(guesses), [...Array(5).fill(401), ...Array(7).fill(429)], guesses.map(show).join(" | "));
        assert.equal(verifies, 5, "five current passwords checked against the hash");
        const right = await victim.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: victim.password, newPassword: "a brand new password after the burst" } });
        assert.equal(right.statusCode, 429, show(right));
        assert.equal(verifies, 5, "the throttled right password is not checked either");
      } finally {
        await close();
      }
    });
  });
});
