// Red team, fourth look at the mail fixes of 2026-12-04: links at PRIORITY.link behind security notices (8c40602); the
// email-change form counted per client and per mailbox (6009500, FloodControl.countRequestFor, namespace "mail-to");
// the maintenance pass deleting delivered mail after BULWARK_OUTBOX_RETENTION_DAYS (ed2243f, Outbox.purgeSent); and
// auth.email.confirm-refused for refused genuine email-change links (1bde75d), with the same gap looked for on
// POST /auth/password/reset/complete. Attackers: (1) an ordinary signed-in user of their own account (self-enrolled
// TOTP, nothing more) who triggers security notices at will to hold back everyone else's links; (2) a holder of many
// cheap accounts mailing one stranger's mailbox, or blocking an owner's own move to a new address; (3) whoever reads
// the owner's mail (or a mail gateway's copy) and replays a link; and the queue's own housekeeping, which must not make
// a notice go out twice. Each test is an attack that must fail; those named "(was: …)" were this round's findings,
// fixed the same day, the others pin a defence that holds. Temp dirs and loopback only.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DEFAULT_EMAIL_CHANGE_POLICY } from "../src/accounts/email-change/index.ts";
import { authFixture, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { systemRandom } from "../src/lib/random.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { authFlows, EMAIL_LINK, STEP } from "./helpers/auth-flows.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NEW_PASSWORD = "quiet orchard lanterns under snow";


/** Outbox rows (any status) of `kind` whose address is `mailbox` once a "+tag" and case are ignored (RFC 5233). */
async function rowsToMailbox(fx: AuthFixture, mailbox: string, kind: string): Promise<string[]> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address"]).where("kind", "=", kind).execute();
  const fold = (a: string): string => a.toLowerCase().replace(/\+[^@]*@/, "@");
  return rows.map((r) => r.to_address).filter((to) => fold(to) === fold(mailbox));
}

// ---------------------------------------------------------------------------------------------------------------
// 8c40602: links behind notices. Who can cause a notice, and how often?
// ---------------------------------------------------------------------------------------------------------------

describe("security notices caused at will, ahead of everyone's links", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);

  it("attack: one ordinary account regenerating its own recovery codes, each a priority-0 notice, cannot hold back other users' reset links: a link due for a minute joins the notices, first by when it became due (ASVS 2.4.1, 6.3.7) (was: held back for as long as the flood went on)", async () => {
    // The attacker: any signed-in user with an authenticator app of their own (self-service, nothing granted).
    const mallory = await flows.withTOTP("notice-flooder@attacker.example");
    const owner = await fx.user("locked-out-owner@example.org");
    // Whatever was queued before (sign-in and factor notices) goes out first: only the link and the flood are left.
    await new OutboxSender({ outbox: fx.app.accounts.outbox, transport: recordingTransport(), clock: fx.clock, random: systemRandom }, { name: "pre" }).drain();

    // The owner, locked out, asks for a reset link: queued at PRIORITY.link (1), before any of the flood.
    const asked = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: owner.email } });
    assert.equal(asked.statusCode, 202, asked.body);

    // One sender, five deliveries a round (a relay's pace); the attacker regenerates codes five times a round, a request
    // that costs ten SHA-256 hashes, is not rate-limited, and queues "your recovery codes were replaced" at priority 0.
    const transport = recordingTransport();
    const sender = new OutboxSender({ outbox: fx.app.accounts.outbox, transport, clock: fx.clock, random: systemRandom }, { name: "paced", batchSize: 5, concurrency: 1 });
    const ROUNDS = 30; // 30 rounds of 30 s: a quarter of an hour
    let deliveredInRound = -1;
    for (let round = 0; round < ROUNDS && deliveredInRound < 0; round++) {
      fx.clock.advance(STEP);
      if (round % 15 === 14) {
        // The reauthentication window (10 minutes) is renewed with the attacker's own password and app.
        const re = await mallory.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: mallory.password, totp: totpCode(mallory.secret, fx.clock.now()) } });
        assert.equal(re.statusCode, 200, re.body);
      }
      for (let i = 0; i < 5; i++) {
        const r = await mallory.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
        // Past the account's budget (5 sets an hour) the flood is refused, not queued: that bounds it as well.
        if (r.statusCode === 429) assert.equal(r.json().error.code, "BULWARK_ERR_RECOVERY_CODES_RATE");
        else assert.equal(r.statusCode, 200, r.body);
      }
      await sender.runOnce();
      if (transport.sent.some((m) => m.to === owner.email && m.kind === "account.password-reset-link")) deliveredInRound = round;
    }
    const floodDelivered = transport.sent.filter((m) => m.to === mallory.email).length;
    // The link was queued all along: once the attacker stops, it goes out.
    await sender.drain();
    assert.ok(transport.sent.some((m) => m.to === owner.email && m.kind === "account.password-reset-link"), "the owner's link was queued");
    // Secure: a link queued before a flood that one account causes at will is not held back by it without bound (the
    // repeatable notice coalesced per account and hour, as new-device and refused-factor notices already are, or links
    // aged up the queue). Before 8c40602 the link shared priority 0 and went out first (oldest first); today every
    // notice the attacker queues, later or not, is claimed ahead of it, for as long as the attacker keeps pace.
    assert.ok(deliveredInRound >= 0, `after ${ROUNDS} rounds (${ROUNDS * STEP / MINUTE} minutes) the owner's reset link is still queued; ${floodDelivered} of one account's self-made notices went out ahead of it`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 6009500: the per-mailbox count on POST /auth/email/change
// ---------------------------------------------------------------------------------------------------------------

describe("the per-mailbox count of email-change mails", () => {
  let fx: AuthFixture;
  before(async () => {
    // The fixture lifts the per-client budget (one test client is 127.0.0.1): the attacker here is many clients.
    fx = await authFixture();
  });
  after(async () => {
    await fx.close();
  });
  const flows = authFlows(() => fx);

  it("attack: one stranger's mailbox named by many accounts as inbox+1@, inbox+2@, … gets no more email-change mails an hour than its bound: the count folds sub-addresses (ASVS 2.4.1) (was: one mail per account, each sub-address counted apart)", async () => {
    const mailbox = "bombed-inbox@victim.example";
    const bound = DEFAULT_EMAIL_CHANGE_POLICY.maxPerWindow;
    const ACCOUNTS = bound + 4;
    for (let i = 0; i < ACCOUNTS; i++) {
      const sock = await flows.signedIn(`sub-sock${i}@attacker.example`);
      const r = await sock.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: mailbox.replace("@", `+${i}@`) } });
      assert.equal(r.statusCode, 202, r.body);
    }
    const mailed = await rowsToMailbox(fx, mailbox, "account.email-change-link");
    // Secure: the recipient's count folds what one mailbox receives under several spellings, the sub-address at least
    // ("+tag", RFC 5233: Gmail, Outlook, Fastmail, Proton and most hosts deliver it to the same inbox). The key is a flood
    // key, not an account's identity: folding too much only counts more. Today the key is identifierKey(newEmail).
    assert.ok(mailed.length <= bound, `${mailed.length} email-change mails queued to one mailbox within a minute (bound ${bound}): ${mailed.join(", ")}`);
  });

  it("attack: a stranger cannot silently block an owner's move to a new address: requests refused by their own account's limit do not spend the mailbox's count, and when real ones did, the owner's current address is told that no link was sent, and why (ASVS 6.3.7) (was: 202 'your current address has been told', and nothing went anywhere)", async () => {
    const owner = await flows.signedIn("moving-owner@old-employer.example");
    const target = "moving-owner@new-employer.example"; // a predictable new address (a company's move to a new domain)
    // The attacker spends its own account's hourly limit elsewhere first: its later requests mail nothing at all.
    const mallory = await flows.signedIn("blocker@attacker.example");
    for (let i = 0; i < DEFAULT_EMAIL_CHANGE_POLICY.maxPerWindow; i++) {
      assert.equal((await mallory.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: `decoy${i}@attacker.example` } })).statusCode, 202);
    }
    for (let i = 0; i < DEFAULT_EMAIL_CHANGE_POLICY.maxPerWindow; i++) {
      assert.equal((await mallory.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } })).statusCode, 202);
    }
    assert.equal((await rowsToMailbox(fx, target, "account.email-change-link")).length, 0, "the attacker's requests mailed nothing to the target (its account was over its own limit)");
    const outcomes = async (userId: string): Promise<string[]> =>
      (await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.email.change-requested").where("subject", "=", userId).orderBy("seq").execute())
        .map((e) => String((JSON.parse(e.data) as { outcome?: unknown }).outcome));
    assert.deepEqual((await outcomes(mallory.id)).slice(-3), ["rate-limited", "rate-limited", "rate-limited"], "refused by the attacker's own limit, yet each counted against the target mailbox");

    fx.clock.advance(MINUTE);
    await fx.deliver();
    const before = fx.mailTo(owner.email).length;
    const asked = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } });
    assert.equal(asked.statusCode, 202, asked.body);
    assert.match(asked.json().message as string, /Your current address has been told of the request/);
    await fx.deliver();
    const linked = fx.mailTo(target).some((m) => EMAIL_LINK.test(m.body));
    const told = fx.mailTo(owner.email).length > before;
    // An account past its own limit no longer spends the mailbox's count: the owner's request goes through.
    assert.deepEqual((await outcomes(owner.id)).slice(-1), ["queued"], "the attacker's refused requests did not count against the mailbox");
    // Secure: the owner's own request either gets its link (a mailbox's count does not let a third party silently veto an
    // account's move), or the owner hears why it did not (the notice the answer promises, saying the address had too
    // many requests this hour). Today the mailbox's count, spent by another account whose requests were themselves
    // refused, drops the owner's request without a word, while the answer says the current address was told.
    assert.ok(linked || told, "the owner's request to move to its own new address went nowhere: no link to the new address, no notice to the current one");

    // Three accounts within their own limits do spend the mailbox's count: then the owner's next request sends no link,
    // and the owner's current address is told so, and why.
    const target2 = "moving-owner@second-employer.example";
    for (let i = 0; i < DEFAULT_EMAIL_CHANGE_POLICY.maxPerWindow; i++) {
      const sock = await flows.signedIn(`spender${i}@attacker.example`);
      assert.equal((await sock.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target2 } })).statusCode, 202);
    }
    await fx.deliver();
    const before2 = fx.mailTo(owner.email).length;
    assert.equal((await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target2 } })).statusCode, 202);
    await fx.deliver();
    assert.deepEqual((await outcomes(owner.id)).slice(-1), ["recipient-limited"]);
    const notices = fx.mailTo(owner.email).slice(before2);
    assert.ok(notices.some((m) => /No link was sent to that address: it was named in too many such requests in the last hour/.test(m.body)), "the owner is told why no link came");
    assert.ok(fx.mailTo(target2).filter((m) => EMAIL_LINK.test(m.body)).length <= DEFAULT_EMAIL_CHANGE_POLICY.maxPerWindow, "the mailbox got no more links than its count");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// ed2243f: deleting delivered mail, and idempotency keys enqueued again afterwards
// ---------------------------------------------------------------------------------------------------------------

describe("delivered mail deleted while its key is still looked for", () => {
  let fx: AuthFixture;
  before(async () => {
    // The shortest retention an operator may choose (a week or less was accepted, and kept too little for the reminder).
    fx = await authFixture({ BULWARK_OUTBOX_RETENTION_DAYS: "14" });
  });
  after(async () => {
    await fx.close();
  });

  it("attack: a token's 'expires soon' reminder goes out once, whatever retention is accepted: BULWARK_OUTBOX_RETENTION_DAYS is at least 14 days, longer than the reminder's 7-day lead (ASVS 6.4.5) (was: with a 2-day retention, mailed again after each purge)", async () => {
    const owner = await fx.app.accounts.users.create({ email: "reminded-owner@example.org" });
    await fx.app.accounts.tokens.create(owner.id, { name: "deploy bot", scopes: ["accounts.read"], expiresAt: fx.clock.now() + 8 * DAY });
    const maintenance = startMaintenance(fx.app, { intervalMs: DAY, firstPassDelayMs: DAY });
    try {
      fx.clock.advance(1 * DAY + HOUR); // the token now expires in under 7 days: the reminder is due
      for (let day = 0; day < 20; day++) {
        const removed = await maintenance.runOnce();
        assert.ok(!Object.values(removed).includes(-1), `a maintenance step failed: ${JSON.stringify(removed)}`);
        await fx.deliver();
        fx.clock.advance(DAY);
      }
    } finally {
      await maintenance.stop();
    }
    const reminders = fx.mailTo(owner.email).filter((m) => /an API token expires soon/.test(m.subject));
    // Secure: one reminder per token, whatever the retention (the reminder pass keeps its own record, or purgeSent keeps
    // a delivered row's key while a pass may look for it, or the retention cannot be set below the reminder's lead).
    assert.equal(reminders.length, 1, `the owner got ${reminders.length} reminders for one token`);
    // A retention shorter than two weeks (a reminder's row must outlive the week it is looked for) is refused at start-up.
    await assert.rejects(authFixture({ BULWARK_OUTBOX_RETENTION_DAYS: "2" }), /BULWARK_OUTBOX_RETENTION_DAYS must be an integer from 14 to 3650/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 1bde75d: refused genuine links, audited; and the reset link's path
// ---------------------------------------------------------------------------------------------------------------

describe("refused genuine links and the audit log", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);
  const eventsOf = (subject: string): Promise<Array<{ type: string; data: string }>> =>
    fx.app.db.db.selectFrom("audit_events").select(["type", "data"]).where("subject", "=", subject).orderBy("seq").execute();

  it("attack: someone replaying the owner's genuine, already-used password-reset link is refused and recorded against the account, auth.password.reset-refused (ASVS 16.3.1, 16.3.3) (was: refused without a trace)", async () => {
    const owner = await fx.user("reset-replayed@example.org");
    const link = await flows.resetToken(owner.email);
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: NEW_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);

    fx.clock.advance(MINUTE);
    const seen = (await eventsOf(owner.id)).length;
    const replay = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "a password of the intruder's choosing" } });
    assert.equal(replay.statusCode, 400, replay.body);
    assert.ok((await fx.app.accounts.users.getById(owner.id))?.passwordChangedAt !== null, "the defence itself holds");
    const after = (await eventsOf(owner.id)).slice(seen).map((e) => e.type);
    // Secure: like auth.email.confirm-refused, a refusal of a link whose secret matched (used, expired, superseded, the
    // account locked) is recorded against the account, sampled per link; junk and guessed links are not. Whoever holds
    // it reads the owner's mail, and the responder scoping the incident needs to see the attempt. Today the check's
    // refusal carries no owner (ResetCheck), and the route throws resetErrors.refused() with nothing recorded.
    assert.ok(after.length > 0, "a refused use of a genuine reset link of this account left no audit event");
  });

  it("attack: replaying a refused genuine email-change link many times a minute writes at most one audit event per link and minute, and a link with the right id and a forged secret writes none (the audit log cannot be flooded, nor events forged against an account, through /auth/email/confirm)", async () => {
    const owner = await flows.signedIn("confirm-replayed@example.org");
    assert.equal((await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "first-move@example.net" } })).statusCode, 202);
    const first = await flows.tokenIn("first-move@example.net", EMAIL_LINK);
    fx.clock.advance(MINUTE);
    // A second request supersedes the first link: it is now a genuine, used link.
    assert.equal((await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "second-move@example.net" } })).statusCode, 202);

    fx.clock.advance(MINUTE);
    const refusals = async (): Promise<number> => (await eventsOf(owner.id)).filter((e) => e.type === "auth.email.confirm-refused").length;
    const seen = await refusals();
    for (let i = 0; i < 40; i++) {
      const r = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: first } });
      assert.equal(r.statusCode, 400, r.body);
    }
    assert.equal(await refusals() - seen, 1, "40 replays within one minute: one event (the rest counted on the next)");

    // The link's id with a secret of the attacker's own (the id alone is what an audit reader or a log may see).
    const [id] = first.split(".");
    const forged = `${id}.${"A".repeat(43)}`;
    fx.clock.advance(2 * MINUTE);
    const beforeForged = await refusals();
    for (let i = 0; i < 5; i++) assert.equal((await fx.browser().request("POST", "/auth/email/confirm", { body: { token: forged } })).statusCode, 400);
    assert.equal(await refusals(), beforeForged, "a forged secret names no account: nothing recorded against it");
    assert.equal((await fx.app.accounts.users.getById(owner.id))?.email, owner.email);
  });
});
