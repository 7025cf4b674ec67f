// Red team, seventh look: a second look at the fixes of the last hour, as an adversary. (1) Links aged into the
// security notices' priority (c20b226, Outbox.claim): the attacker is anonymous, with many client addresses (a botnet),
// and floods sign-ups for strangers' addresses to bury an owner's "your password was changed". (2) The per-mailbox count
// of email changes (d587816, mailboxKey, withinLimit, the withheld notice): the attacker holds one or a few cheap
// accounts and wants to mail one stranger's inbox past its bound, or to block a stranger's own move to a new address
// without spending its accounts' limits. (3) The password-work gate counting a client by its site (dd3bfc8, ipSite):
// the attacker is one IPv4 client among many reaching the server through an IPv4-to-IPv6 translator. (4) The audit
// events of refused genuine links (7479ebc, 1bde75d, recordLinkRefusal): the attacker reads the owner's mail (or holds
// only a link's id) and wants an attempt to leave no trace, or to write events against an account.
// Each test is an attack that must fail; those named "(was: …)" were this round's findings, fixed the same day, the
// others pin a defence that holds. Found: aged links beat fresh notices (8c40602 undone under a sustained flood), and an orphaned 'sending' link
// is never aged; the mailbox count is spent by requests refused as invalid and by concurrent requests past the
// account's limit, and does not fold Gmail's dots; the gate's site of a NAT64 address is every IPv4 client; the
// in-progress refusal of a reset completion is not audited. Held: a forged secret writes no event on either reset
// route, and replays across both routes are sampled as one link with nothing lost. Temp dirs and loopback only.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { ipSite } from "../src/accounts/flood/ip-bucket.ts";
import { BUSY_CODE } from "../src/http/auth/password-work.ts";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { systemRandom } from "../src/lib/random.ts";
import { AGED_AFTER_MS, PRIORITY } from "../src/notify/outbox.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { authFixtureOn, authFlows, loginFrom } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { latchDummyVerify, until } from "./helpers/latch.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
/** A wrong password long enough to be checked. */
const GUESS = "a guess that is long enough";


/** The outcomes of `userId`'s email-change requests, oldest first, as the audit log records them. */
async function changeOutcomes(fx: AuthFixture, userId: string): Promise<string[]> {
  return (await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.email.change-requested").where("subject", "=", userId).orderBy("seq").execute())
    .map((e) => String((JSON.parse(e.data) as { outcome?: unknown }).outcome));
}

/** Email-change requests `userId` has on record this window (what its own hourly limit counts). */
async function changeRequests(fx: AuthFixture, userId: string): Promise<number> {
  return Number((await fx.app.db.db.selectFrom("email_change_tokens").select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", userId).executeTakeFirstOrThrow()).n);
}

// ---------------------------------------------------------------------------------------------------------------
// c20b226: a link due for AGED_AFTER_MS is promoted to the security notices' priority at each claim
// ---------------------------------------------------------------------------------------------------------------

describe("an anonymous sign-up flood left to age in the queue", () => {
  let fx: AuthFixture;
  before(async () => {
    // The fixture lifts the per-client mail budget: the attacker is many clients (a botnet), each inside its own budget.
    fx = await authFixture({ BULWARK_REGISTRATION: "open" });
  });
  after(async () => {
    await fx.close();
  });
  const flows = authFlows(() => fx);

  it("attack: an anonymous sign-up flood older than AGED_AFTER_MS is not delivered ahead of an owner's fresh 'your password was changed': aged links get a quarter of each claim, the rest goes by priority (ASVS 6.3.7, 2.4.1) (was: aged links promoted to the notices' priority went first)", async () => {
    const owner = await flows.signedIn("aged-flood-owner@example.org");
    // Whatever was queued before (a sign-in notice) goes out first, so only the flood and the notice are left.
    await new OutboxSender({ outbox: fx.app.accounts.outbox, transport: recordingTransport(), clock: fx.clock, random: systemRandom }, { name: "pre" }).drain();

    const FLOOD = 60;
    for (let i = 0; i < FLOOD; i++) {
      const r = await fx.browser().request("POST", "/auth/register", { body: { email: `aged-stranger${i}@spam-target.example` } });
      assert.equal(r.statusCode, 202, r.body);
    }
    // Under a sustained flood the sender is behind: the backlog's head is always more than a minute old. Here: two minutes.
    fx.clock.advance(AGED_AFTER_MS + MINUTE);
    // The hijacked owner's password is changed: the one mail that matters, queued now.
    const change = await owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: "an entirely new passphrase 42" } });
    assert.equal(change.statusCode, 200, change.body);

    const BATCH = 20;
    const transport = recordingTransport();
    const sender = new OutboxSender({ outbox: fx.app.accounts.outbox, transport, clock: fx.clock, random: systemRandom }, { name: "flooded", batchSize: BATCH, concurrency: 1 });
    await sender.drain();
    const notice = transport.sent.findIndex((m) => m.kind === "security.password-changed" && m.to === owner.email);
    assert.ok(notice >= 0, "the notice was delivered at all");
    const aheadOfIt = transport.sent.slice(0, notice).filter((m) => m.kind === "account.registration-link").length;
    // Secure: anonymous links never push a real change's notice out of the first batch the sender claims (8c40602). Aged
    // links may earn a share of each claim (so a notice flood cannot starve them, c20b226's point), but not the head of
    // the queue. Today every link due for a minute becomes priority 0 and, being older, is claimed before the notice.
    assert.ok(aheadOfIt < BATCH, `${aheadOfIt} of ${FLOOD} anonymous sign-up mails were delivered before the owner's password-changed notice`);
  });

  it("attack: a reset link whose sender died mid-delivery (its lease ran out, the row left 'sending') gets its aged share of the next claims like any other (was: never aged, behind every notice)", async () => {
    const outbox = fx.app.accounts.outbox;
    // Whatever the suite queued before goes out first.
    await new OutboxSender({ outbox, transport: recordingTransport(), clock: fx.clock, random: systemRandom }, { name: "pre-orphan" }).drain();
    const link = await outbox.enqueue({ idempotencyKey: "seventh-look:orphaned-link", to: "orphaned-owner@example.org", subject: "Reset your password", text: "a link", kind: "account.password-reset-link", priority: PRIORITY.link });
    // A node claims it and dies (a deploy, an OOM kill) before recording anything: the row stays 'sending' until its
    // lease ends, then any sender may take it again.
    const taken = await outbox.claim({ claimer: "node-that-died", limit: 1, leaseMs: 30_000 });
    assert.deepEqual(taken.map((m) => m.id), [link.id]);
    const claimableFrom = fx.clock.now() + 30_000;
    // The attacker's account keeps queuing notices (each regeneration of its recovery codes is one), a minute and more.
    for (let minute = 0; minute < 3; minute++) {
      fx.clock.advance(MINUTE);
      for (let i = 0; i < 5; i++) {
        await outbox.enqueue({ idempotencyKey: `seventh-look:notice:${minute}:${i}`, to: "mallory@attacker.example", subject: "Your recovery codes were regenerated", text: "notice", kind: "security.recovery-codes-regenerated", priority: PRIORITY.security });
      }
      fx.clock.advance(1_000);
    }
    const orphan = await outbox.get(link.id);
    assert.ok(orphan.status === "sending" && orphan.nextAttemptAt <= fx.clock.now() - AGED_AFTER_MS, `the orphan is claimable again, for over AGED_AFTER_MS: ${orphan.status}`);
    // The link has been claimable for well over AGED_AFTER_MS; a live sender claims one message at a time.
    // Secure: aged mail gets its share of the claims (one in four for one-message claims) whichever state it was left in
    // ('queued', 'failed', or a 'sending' whose lease ran out), not only behind every notice the attacker queues.
    const kinds: string[] = [];
    for (let i = 0; i < 4 && !kinds.includes("account.password-reset-link"); i++) {
      kinds.push(...(await outbox.claim({ claimer: `node-alive-${i}`, limit: 1, leaseMs: 30_000 })).map((m) => m.kind));
    }
    assert.ok(kinds.includes("account.password-reset-link"), `claimed ${kinds.join(", ")} ahead of a reset link claimable for ${(fx.clock.now() - claimableFrom) / 1000} s`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// d587816: the per-mailbox count of email changes (mailboxKey), counted only within the account's own limit
// ---------------------------------------------------------------------------------------------------------------

describe("the per-mailbox count of email changes, spent by someone else", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);
  const outcomes = (userId: string): Promise<string[]> => changeOutcomes(fx, userId);
  const recorded = (userId: string): Promise<number> => changeRequests(fx, userId);

  it("attack: one account cannot block a stranger's move to a new address with requests refused as invalid (400): a mailbox is counted only once a mail to it was queued (ASVS 2.4.1) (was: each refused request spent the mailbox's count)", async () => {
    const limit = fx.app.accounts.emailChanges.policy.maxPerWindow;
    const owner = await flows.signedIn("mover@old-employer.example");
    const target = "mover@new-employer.example"; // a predictable new address (a company moving to a new domain)
    const mallory = await flows.signedIn("invalid-blocker@attacker.example");
    // The address as mailboxKey folds it (the sub-address dropped), but too long for validateEmail (254): refused with a
    // 400 after the mailbox's count was taken, before anything is recorded against the account.
    const invalid = target.replace("@", `+${"x".repeat(260)}@`);
    for (let i = 0; i < limit; i++) {
      const r = await mallory.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: invalid } });
      assert.equal(r.statusCode, 400, r.body);
    }
    assert.equal(await recorded(mallory.id), 0, "nothing was recorded against the attacker's account: its own limit is untouched");

    await fx.deliver();
    const asked = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } });
    assert.equal(asked.statusCode, 202, asked.body);
    await fx.deliver();
    // Secure: a request that is refused (an address that does not validate) spends no mailbox's count: the count is
    // taken after the address is validated and after the account's own limit (d587816's own promise: "an account past
    // it mails nothing, and must not spend the mailbox's count for others"). Today three 400s withhold the owner's link.
    assert.deepEqual((await outcomes(owner.id)).slice(-1), ["queued"], "the owner's own request to move was withheld by three invalid requests of another account");
  });

  it("attack: one Gmail inbox named by many accounts under its dotted spellings (in.box@, i.nbox@, …, @googlemail.com) gets no more change mails than its bound: mailboxKey folds them (ASVS 2.4.1) (was: each spelling counted apart)", async () => {
    const bound = fx.app.accounts.emailChanges.policy.maxPerWindow;
    const local = "bombedinbox";
    // Gmail ignores dots in the local part and delivers googlemail.com to the same inbox: one mailbox, many keys.
    const spellings = [`${local}@googlemail.com`, ...Array.from({ length: bound + 3 }, (_, i) => `${local.slice(0, i + 1)}.${local.slice(i + 1)}@gmail.com`)];
    for (const [i, spelling] of spellings.entries()) {
      const sock = await flows.signedIn(`dot-sock${i}@attacker.example`);
      const r = await sock.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: spelling } });
      assert.equal(r.statusCode, 202, r.body);
    }
    const mailed = await fx.app.db.db.selectFrom("outbox_messages").select("to_address")
      .where("kind", "=", "account.email-change-link").where("to_address", "in", spellings).execute();
    // Secure: the mailbox key folds what the largest host documents as one inbox (dots in a gmail.com local part, and
    // googlemail.com), as it folds "+tag"; a flood key, so folding more only counts more. Today each spelling is a
    // mailbox of its own, and one inbox gets a link per account, within the minute.
    assert.ok(mailed.length <= bound, `${mailed.length} email-change links queued to one Gmail inbox within a minute (bound ${bound}): ${mailed.map((m) => m.to_address).join(", ")}`);
  });
});

forEachDialect("the per-mailbox count of email changes, raced", (dx) => {
  let fx: AuthFixture;
  before(async () => {
    fx = await authFixtureOn(dx, "seventh-look-race");
  });
  after(async () => {
    await fx.close();
  });
  const flows = authFlows(() => fx);
  const outcomes = (userId: string): Promise<string[]> => changeOutcomes(fx, userId);
  const recorded = (userId: string): Promise<number> => changeRequests(fx, userId);

  it("attack: one account's concurrent requests spend no more mailbox counts than its own limit lets through, however they are timed: the count is taken after the mail is queued (ASVS 2.4.1) (was: read before the transaction, every concurrent request spent a count)", async () => {
    const limit = fx.app.accounts.emailChanges.policy.maxPerWindow;
    const targets = ["racer-a@new.example", "racer-b@new.example", "racer-c@new.example"];
    const owners = await Promise.all(targets.map((t, i) => flows.signedIn(t.replace("@new.example", `-owner${i}@old.example`))));
    const mallory = await flows.signedIn("race-blocker@attacker.example");
    // All at once, `limit` requests per mailbox. (When written, a barrier held each request after its read of the
    // account's count, a separate read the fix removed: the mailbox's slot is now taken atomically, FloodControl.takeFor.)
    const answers = await Promise.all(targets.flatMap((t) => Array.from({ length: limit }, () =>
      mallory.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: t } }))));
    for (const r of answers) assert.equal(r.statusCode, 202, r.body);
    assert.equal(await recorded(mallory.id), limit, "the account's own limit let exactly its hourly count through");

    let withheld = 0;
    for (const [i, owner] of owners.entries()) {
      assert.equal((await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: targets[i] } })).statusCode, 202);
      if ((await outcomes(owner.id)).at(-1) === "recipient-limited") withheld++;
    }
    // Secure: an account spends at most as many mailbox counts as its own limit lets requests through (`limit` an hour:
    // one mailbox's worth), however its requests are timed: the mailbox is counted inside the request's transaction,
    // after the account's count, under the account's lock. Today withinLimit is a read before the transaction, and every
    // concurrent request passes it.
    assert.ok(withheld <= 1, `one account with a limit of ${limit} requests an hour withheld ${withheld} strangers' moves at once`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// dd3bfc8: the password-work gate counts a client by its site (ipSite: IPv4 address, IPv6 /48)
// ---------------------------------------------------------------------------------------------------------------

describe("the password-work gate behind an IPv4-to-IPv6 translator", () => {
  let fx: AuthFixture;
  before(async () => {
    // Capacity 4: a client's share is one request at a time.
    fx = await authFixture({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4" });
  });
  after(async () => {
    await fx.close();
  });

  // The well-known prefix (RFC 6052) and the local-use one as translators use it (RFC 8215, a /96 under 64:ff9b:1::/48).
  for (const prefix of ["64:ff9b::", "64:ff9b:1::"]) it(`attack: one IPv4 client reaching an IPv6-only server through a NAT64/SIIT translator (${prefix}/96) holds only its own share of the password-work gate: the embedded IPv4 address is the client, for flood control too (ASVS 2.4.1) (was: every IPv4 user of the translator one site)`, async () => {
    // Every dummy verify (an unknown account's login) waits until the latch opens: "while the attacker's check runs".
    const { waiting, open, restore } = latchDummyVerify(fx.app);
    try {
      // 192.0.2.1 and 203.0.113.9 as a translator presents them (RFC 6052 §2.2, the /96 well-known prefix).
      const attacker = `${prefix}c000:201`;
      const victimAddress = `${prefix}cb00:7109`;
      const held = loginFrom(fx, `nobody-nat64-${prefix.length}@example.org`, GUESS, attacker);
      await until(() => waiting() === 1, "the attacker's login holding its slot");
      // Another IPv4 user behind the translator, and (the control: the gate is not simply full) a third IPv4 client
      // reaching the server without it. Each is admitted (its check then waits) or answered at once.
      let settled = 0;
      const victimP = loginFrom(fx, `someone-else-${prefix.length}@example.org`, GUESS, victimAddress).finally(() => settled++);
      const plainP = loginFrom(fx, `someone-plain-${prefix.length}@example.org`, GUESS, "198.51.100.77").finally(() => settled++);
      await until(() => waiting() - 1 + settled === 2, "both logins admitted or refused");
      open();
      const [victim, plain] = await Promise.all([victimP, plainP]);
      await held;
      const busy = (res: LightMyRequestResponse): boolean => res.statusCode === 503 && (res.json() as { error?: { code?: string } }).error?.code === BUSY_CODE;
      assert.equal(busy(plain), false, `the control login from a plain IPv4 address was refused: ${plain.statusCode} ${plain.body}`);
      // Secure: an IPv4-embedded address of the well-known prefixes (64:ff9b::/96, and RFC 8215's 64:ff9b:1::/48) is
      // counted as the IPv4 client it embeds, as ::ffff:a.b.c.d already is; behind such a translator every IPv4 user of
      // the Internet is otherwise one site, whose share one of them keeps full by re-sending.
      assert.equal(busy(victim), false, `another IPv4 client behind the translator was refused: ${victim.statusCode} (ipSite gives both "${ipSite(attacker)}")`);
    } finally {
      open();
      restore();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 7479ebc + 1bde75d: refused uses of genuine links, audited (recordLinkRefusal)
// ---------------------------------------------------------------------------------------------------------------

describe("refused uses of genuine reset links and the audit log", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);
  const refusals = async (subject: string): Promise<Array<{ reason?: string; link?: string; unrecordedBefore?: number }>> =>
    (await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.password.reset-refused").where("subject", "=", subject).orderBy("seq").execute())
      .map((e) => JSON.parse(e.data) as { reason?: string; link?: string; unrecordedBefore?: number });

  it("attack: a genuine reset link used by a second party while the owner's completion of it is running is refused and recorded against the account, reason in-progress (ASVS 16.3.1, 16.3.3) (was: refused without a trace)", async () => {
    const owner = await fx.user("raced-reset@example.org");
    const link = await flows.resetToken(owner.email);
    // The owner and whoever reads the owner's mail (a mail-scanning intruder that follows every link at once) complete
    // the same genuine link together: one runs, the other arrives while it is hashing.
    const [a, b] = await Promise.all([
      fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "the owner's own new passphrase" } }),
      fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "a password of the intruder's choosing" } }),
    ]);
    const statuses = [a.statusCode, b.statusCode].sort();
    assert.deepEqual(statuses, [200, 409], `one completion went through, the other was refused: ${a.body} / ${b.body}`);
    const refused = a.statusCode === 409 ? a : b;
    assert.equal((refused.json() as { error?: { code?: string } }).error?.code, "BULWARK_ERR_RESET_BUSY", "refused as a link in use (not for its password)");
    // Secure: the refused one used a genuine link of this account (its secret matched) and is recorded against it, as a
    // replay after the commit is (auth.password.reset-refused, reason "used" or "in-progress"), sampled per link. Today
    // the in-process guard `completing` throws resetErrors.refused() before recordLinkRefusal is reached.
    const events = await refusals(owner.id);
    assert.ok(events.length >= 1, "the refused, concurrent use of the genuine link left no audit event");
  });

  it("attack: a holder of only a reset link's id (a forged secret) writes no event against the account on either route, and replays of the used link alternating /reset/webauthn/options and /reset/complete are sampled as one link: one event a minute, the rest counted on the next (audit flooding and forged events are refused)", async () => {
    const owner = await fx.user("sampled-reset@example.org");
    const link = await flows.resetToken(owner.email);
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "the owner's own new passphrase" } });
    assert.equal(done.statusCode, 200, done.body);
    fx.clock.advance(MINUTE);

    const [id] = link.split(".");
    const forged = `${id}.${"A".repeat(43)}`;
    const before = (await refusals(owner.id)).length;
    for (let i = 0; i < 5; i++) {
      assert.equal((await fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token: forged } })).statusCode, 400);
      assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: forged, newPassword: "a password of the intruder's choosing" } })).statusCode, 400);
    }
    assert.equal((await refusals(owner.id)).length, before, "a forged secret names no account: nothing recorded against it");

    const ROUNDS = 20;
    for (let i = 0; i < ROUNDS; i++) {
      assert.equal((await fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token: link } })).statusCode, 400);
      assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "a password of the intruder's choosing" } })).statusCode, 400);
    }
    const burst = (await refusals(owner.id)).slice(before);
    assert.equal(burst.length, 1, `${burst.length} events for ${2 * ROUNDS} replays of one link within a minute`);
    assert.equal(burst[0]?.link, id, "the event names the link by its id");
    // A minute on, the next replay is recorded and carries the count of those sampled away (none lost).
    fx.clock.advance(MINUTE);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token: link } })).statusCode, 400);
    const next = (await refusals(owner.id)).slice(before + 1);
    assert.equal(next.length, 1);
    assert.equal(next[0]?.unrecordedBefore, 2 * ROUNDS - 1, `the next event counts the unrecorded replays: ${JSON.stringify(next[0])}`);
  });
});
