// Whether each security notice reached its mail relay, read from the audit log alone: `notify.security-notice.sent`
// and `notify.security-notice.dead`, appended in the transaction that records the outcome (src/notify/sender.ts,
// #recorded). After an account takeover a responder must be able to say "the owner was told at 10:42" or "the notice
// never left: the relay refused it", tied to the change by the event the notice is about. Delivered through real SMTP
// to a relay in process; the server's wiring (src/http/mail-runner.ts, noticeDeliveryAudit) on the app's own audit log.
// The attacks: an audit append that fails after the relay accepted (nothing recorded without its event), and a relay
// whose refusal quotes the mailbox and a link (neither reaches the log). ASVS 6.3.7 (the owner is told), 16.3.3 (the
// security events the documentation defines are logged), 16.2.5 (no address, no link in the log).
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { addressTag } from "../src/accounts/email-change/address-tag.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { authFixture, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { noticeDeliveryAudit } from "../src/http/mail-runner.ts";
import { systemRandom } from "../src/lib/random.ts";
import { SINGLE_USE_LINK_KINDS } from "../src/notify/link-kinds.ts";
import { PRIORITY, type OutboxMessage } from "../src/notify/outbox.ts";
import { securityNoticeKey } from "../src/notify/security-notices.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { isSecurityNotice, NOTICE_DEAD, NOTICE_SENT, noticeEventId, type NoticeDeliveryAudit } from "../src/notify/delivery-audit.ts";
import { notifyFixture } from "../src/notify/test-setup.ts";
import { createSMTPTransport, type MailTransport } from "../src/notify/transport.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { auditHead, eventsSince, type AuditEventRow } from "./helpers/audit-events.ts";

const DELIVERY = [NOTICE_SENT, NOTICE_DEAD];
const NEW_PASSWORD = "amber lanterns over quiet harbours";
/** The sender's default lease: a claim left by a failed recording is taken again after it. */
const LEASE_MS = 15 * 60_000;
/** A link token's shape (src/crypto/link-token.ts), as a relay's refusal might quote one. */
const TOKEN = `prt_${"q".repeat(26)}.${"Secr3t-_".repeat(5)}abc`;

interface Owner {
  email: string;
  password: string;
  browser: Browser;
}

interface Audited {
  fx: AuthFixture;
  /** A sender on the app's outbox, with the server's audit wiring unless another one is given. */
  sender(audit?: NoticeDeliveryAudit): OutboxSender;
  /** Signs `email` in, delivers what that queued, and returns the audit position after it. */
  signedIn(email: string): Promise<{ b: Owner; mark: number }>;
  /** Changes the password of `b` and returns the notice's row and the id of its auth.password.changed event. */
  changePassword(b: Owner, mark: number): Promise<{ notice: OutboxMessage; changedId: string }>;
  delivery(mark: number): Promise<AuditEventRow[]>;
}

async function audited(t: TestContext): Promise<Audited> {
  const fx = await authFixture();
  const transport: MailTransport = await createSMTPTransport(fx.app.config.http.mail!);
  t.after(async () => {
    await transport.close();
    await fx.close();
  });
  const sender = (audit: NoticeDeliveryAudit = noticeDeliveryAudit(fx.app)): OutboxSender =>
    new OutboxSender({ outbox: fx.app.accounts.outbox, transport, clock: fx.clock, random: systemRandom, audit }, { name: "audited" });
  return {
    fx,
    sender,
    async signedIn(email) {
      const user = await fx.user(email);
      const browser = fx.browser();
      assert.equal((await browser.login(email, user.password)).statusCode, 200);
      await sender().drain();
      return { b: { email, password: user.password, browser }, mark: await auditHead(fx.app.db.db) };
    },
    async changePassword(b, mark) {
      const res = await b.browser.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: b.password, newPassword: NEW_PASSWORD } });
      assert.equal(res.statusCode, 200, res.body);
      const [changed] = await eventsSince(fx.app.db.db, mark, ["auth.password.changed"]);
      assert.ok(changed, "the change is audited");
      const changedId = await eventId(fx, changed.seq);
      const notice = await fx.app.accounts.outbox.getByKey(securityNoticeKey("password-changed", changedId, b.email));
      assert.ok(notice, "the change's notice is queued");
      return { notice, changedId };
    },
    delivery: (mark) => eventsSince(fx.app.db.db, mark, DELIVERY),
  };
}

/** The id of the audit event at `seq` (eventsSince leaves it out). */
async function eventId(fx: AuthFixture, seq: number): Promise<string> {
  return (await fx.app.db.db.selectFrom("audit_events").select("id").where("seq", "=", seq).executeTakeFirstOrThrow()).id;
}

describe("security notice delivery in the audit log", () => {
  it("a password change's notice delivered: one notify.security-notice.sent naming the message, its kind and the auth.password.changed event; the chain verifies", async (t) => {
    const { fx, sender, signedIn, changePassword, delivery } = await audited(t);
    const { b, mark } = await signedIn("told@example.org");
    const { notice, changedId } = await changePassword(b, mark);
    const deliveredAt = fx.clock.now();
    const sentIds = async (): Promise<Array<{ id: string; kind: string }>> => fx.app.db.db.selectFrom("outbox_messages").select(["id", "kind"]).where("status", "=", "sent").execute();
    const sentBefore = new Set((await sentIds()).map((m) => m.id));
    const report = await sender().drain();
    assert.ok(report.sent >= 1, JSON.stringify(report));
    assert.equal((await fx.app.accounts.outbox.get(notice.id)).status, "sent");
    assert.equal(fx.mailTo(b.email).filter((m) => /password was changed/.test(m.subject)).length, 1, "the owner got it");

    const events = await delivery(mark);
    const mine = events.filter((e) => e.data["messageId"] === notice.id);
    assert.equal(mine.length, 1, JSON.stringify(events));
    const [sent] = mine;
    assert.equal(sent!.type, NOTICE_SENT);
    assert.equal(sent!.actor, "system");
    assert.equal(sent!.subject, notice.id);
    assert.deepEqual(
      { kind: sent!.data["kind"], eventId: sent!.data["eventId"], attempt: sent!.data["attempt"], recipient: sent!.data["recipient"] },
      { kind: "security.password-changed", eventId: changedId, attempt: 1, recipient: addressTag(fx.app.keyring, b.email) },
    );
    assert.equal(typeof sent!.data["providerMessageId"], "string", "the relay's queue id, to find it in the relay's log");
    const stored = await fx.app.db.db.selectFrom("audit_events").select(["at", "id"]).where("seq", "=", sent!.seq).executeTakeFirstOrThrow();
    assert.equal(Number(stored.at), deliveredAt, "the event's time is when the relay took it");
    assert.doesNotMatch(sent!.raw, /told@/i, "the recipient only as a keyed tag");
    // Every security notice this run recorded sent has its event, and nothing else has one.
    const sentNow = (await sentIds()).filter((m) => !sentBefore.has(m.id));
    assert.deepEqual(events.map((e) => e.data["messageId"]).sort(), sentNow.filter((m) => isSecurityNotice(m.kind)).map((m) => m.id).sort());
    assert.equal((await fx.app.audit.verify()).ok, true, "the audit chain still verifies");
  });

  it("attack: a relay that refuses for good, quoting the mailbox and a link: notify.security-notice.dead with the error cleaned, no address, no token (ASVS 16.2.5)", async (t) => {
    const { fx, sender, signedIn, changePassword, delivery } = await audited(t);
    const { b, mark } = await signedIn("Refused.Owner@example.org");
    const { notice, changedId } = await changePassword(b, mark);
    fx.smtp.respond = (mail) => ({ code: 550, message: `5.7.1 <${mail.envelopeTo[0]}> refused: URL https://bulwark.test/auth/reset#token=${TOKEN} is listed (also ${TOKEN})` });
    const report = await sender().drain();
    assert.ok(report.dead >= 1, JSON.stringify(report));
    const row = await fx.app.accounts.outbox.get(notice.id);
    assert.equal(row.status, "dead");

    const events = await delivery(mark);
    assert.deepEqual(events.map((e) => e.type), [NOTICE_DEAD], "one event, of the notice, none sent");
    const [dead] = events;
    assert.equal(dead!.subject, notice.id);
    assert.equal(dead!.data["eventId"], changedId);
    assert.equal(dead!.data["attempt"], 1);
    assert.equal(dead!.data["recipient"], addressTag(fx.app.keyring, b.email));
    const error = String(dead!.data["error"]);
    assert.match(error, /550/, "the relay's answer stays readable");
    assert.match(error, /…@example\.org/, "the mailbox reduced to its domain");
    assert.match(error, /#token=…/, "the link's token taken out");
    for (const leak of [/refused\.owner@/i, /owner@/i, /Secr3t/, /q{26}/]) assert.doesNotMatch(dead!.raw, leak, "the event holds no address or token");
    assert.ok(row.lastError !== null && !row.lastError.includes("Secr3t"), "last_error had the token out too");
    assert.equal((await fx.app.audit.verify()).ok, true);
  });

  it("a retryable refusal (4xx), then success: no dead event, one sent event, attempt 2", async (t) => {
    const { fx, sender, signedIn, changePassword, delivery } = await audited(t);
    const { b, mark } = await signedIn("later@example.org");
    const { notice } = await changePassword(b, mark);
    let refusals = 0;
    fx.smtp.respond = () => (refusals++ === 0 ? { code: 451, message: "4.3.0 try again later" } : null);
    const first = await sender().drain();
    assert.equal(first.retried, 1, JSON.stringify(first));
    assert.equal((await fx.app.accounts.outbox.get(notice.id)).status, "failed");
    assert.deepEqual(await delivery(mark), [], "a retry is not an outcome");
    fx.clock.set((await fx.app.accounts.outbox.get(notice.id)).nextAttemptAt);
    const second = await sender().drain();
    assert.equal(second.sent, 1, JSON.stringify(second));
    const events = await delivery(mark);
    assert.deepEqual(events.map((e) => [e.type, e.data["messageId"], e.data["attempt"]]), [[NOTICE_SENT, notice.id, 2]]);
  });

  it("a reset link and other mail that is no security notice are delivered without a delivery event", async (t) => {
    const { fx, sender, delivery } = await audited(t);
    await fx.user("links@example.org");
    const mark = await auditHead(fx.app.db.db);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "links@example.org" } })).statusCode, 202);
    const campaign = await fx.app.accounts.outbox.enqueue({
      idempotencyKey: "cmp_1:links", to: "links@example.org", subject: "Our new terms", text: "…", kind: "campaign.notice", campaignId: "cmp_1", priority: PRIORITY.campaign,
    });
    const report = await sender().drain();
    assert.equal(report.sent, 2, JSON.stringify(report));
    const kinds = (await fx.app.db.db.selectFrom("outbox_messages").select("kind").where("status", "=", "sent").execute()).map((r) => r.kind).sort();
    assert.deepEqual(kinds, ["account.password-reset-link", "campaign.notice"]);
    assert.equal((await fx.app.accounts.outbox.get(campaign.id)).status, "sent");
    assert.deepEqual(await delivery(mark), []);
  });

  it("attack: the audit append fails after the relay accepted: the notice is not recorded sent without its event; a later run records both", async (t) => {
    const { fx, sender, signedIn, changePassword, delivery } = await audited(t);
    const { b, mark } = await signedIn("atomic@example.org");
    const { notice } = await changePassword(b, mark);
    const working = noticeDeliveryAudit(fx.app);
    // Worse than an append that throws at once: one that wrote its event in the transaction, then failed.
    const broken: NoticeDeliveryAudit = {
      recipientTag: working.recipientTag,
      appendIn: async (trx, event) => {
        await working.appendIn(trx, event);
        throw new Error("the audit store is unavailable");
      },
    };
    await assert.rejects(sender(broken).runOnce(), /the audit store is unavailable/);
    const held = await fx.app.accounts.outbox.get(notice.id);
    assert.equal(held.status, "sending", "still claimed, not recorded sent");
    assert.equal(held.sentAt, null);
    assert.deepEqual(await delivery(mark), [], "no event either: it rolled back with the outcome");
    const copies = (): number => fx.mailTo(b.email).filter((m) => /password was changed/.test(m.subject)).length;
    assert.equal(copies(), 1, "the relay had accepted it");

    // Within the lease nothing takes it again; once the lease ends, a sender with a working audit log delivers it again
    // (the chosen cost: the owner may read the notice twice) and records both.
    assert.equal((await sender().drain()).claimed, 0);
    fx.clock.advance(LEASE_MS + 1_000);
    const report = await sender().drain();
    assert.equal(report.sent, 1, JSON.stringify(report));
    assert.equal((await fx.app.accounts.outbox.get(notice.id)).status, "sent");
    assert.deepEqual((await delivery(mark)).map((e) => [e.type, e.data["messageId"], e.data["attempt"]]), [[NOTICE_SENT, notice.id, 2]]);
    assert.equal(copies(), 2, "delivered twice, under one Message-ID");
    assert.equal((await fx.app.audit.verify()).ok, true, "the rolled-back event left no gap in the chain");
  });
});

forEachDialect("security notice delivery audit (sender)", (dialect) => {
  async function setup(t: TestContext, respond?: Parameters<typeof notifyFixture>[1]) {
    const database = await dialect.fresh();
    const f = await notifyFixture(database, respond);
    t.after(() => f.close());
    const log = new AuditLog({ database, clock: f.clock, random: systemRandom });
    const transport = await f.transport();
    const audit: NoticeDeliveryAudit = { appendIn: (trx, event) => log.appendIn(trx, event), recipientTag: (a) => addressTag(f.keyring, a) };
    const sender = (with_: NoticeDeliveryAudit = audit): OutboxSender =>
      new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, audit: with_, logger: { warn: () => {} } }, { name: "node-a", retry: { maxAttempts: 2, baseDelayMs: 1000, maxDelayMs: 1000 } });
    const events = async (): Promise<AuditEventRow[]> => eventsSince(database.db, 0, DELIVERY);
    return { f, log, audit, sender, events };
  }

  const notice = (n: number) => ({
    idempotencyKey: `security.password-changed:evt_${n}:${"ab".repeat(16)}`, to: `owner${n}@example.org`, subject: "Bulwark: your password was changed",
    text: "Your password was changed.\n", kind: "security.password-changed", priority: PRIORITY.security,
  });

  it("sent and dead, each with its event in the outcome's transaction; out of attempts is dead too", async (t) => {
    let calls = 0;
    // owner1 accepted; owner2 refused for good; owner3 deferred on both of its two attempts.
    const { f, sender, events, log } = await setup(t, (mail) => {
      calls++;
      if (mail.envelopeTo[0] === "owner2@example.org") return { code: 554, message: "5.7.1 rejected" };
      if (mail.envelopeTo[0] === "owner3@example.org") return { code: 452, message: "4.2.2 mailbox full" };
      return null;
    });
    const ids: string[] = [];
    for (const n of [1, 2, 3]) ids.push((await f.outbox.enqueue(notice(n))).id);
    await sender().drain();
    f.clock.advance(2_000);
    await sender().drain();
    assert.equal(calls, 4);
    const got = (await events()).map((e) => [e.type, e.subject, e.data["eventId"], e.data["attempt"]]);
    assert.deepEqual(got.sort(), [
      [NOTICE_DEAD, ids[1], "evt_2", 1],
      [NOTICE_DEAD, ids[2], "evt_3", 2],
      [NOTICE_SENT, ids[0], "evt_1", 1],
    ].sort());
    assert.equal((await log.verify()).ok, true);
  });

  it("attack: an audit append that throws leaves the notice claimed with no event, on either database; the retry records both", async (t) => {
    const { f, audit, sender, events, log } = await setup(t);
    const { id } = await f.outbox.enqueue(notice(1));
    const broken: NoticeDeliveryAudit = { recipientTag: audit.recipientTag, appendIn: async () => { throw new Error("audit down"); } };
    await assert.rejects(sender(broken).runOnce(), /audit down/);
    assert.equal((await f.outbox.get(id)).status, "sending");
    assert.deepEqual(await events(), []);
    f.clock.advance(LEASE_MS + 1_000);
    await sender().drain();
    assert.equal((await f.outbox.get(id)).status, "sent");
    assert.deepEqual((await events()).map((e) => [e.type, e.subject, e.data["attempt"]]), [[NOTICE_SENT, id, 2]]);
    assert.equal(f.server.accepted.length, 2, "the relay got it twice: the price of never recording it without its event");
    assert.equal((await log.verify()).ok, true);
  });

  it("a sender that lost its claim mid-delivery appends nothing: one event, by the sender that took the notice over", async (t) => {
    const { f, audit, events } = await setup(t);
    const { id } = await f.outbox.enqueue(notice(1));
    const ok = (): Promise<{ ok: true; providerMessageId: string }> => Promise.resolve({ ok: true, providerMessageId: "Q-b" });
    const other = new OutboxSender({ outbox: f.outbox, transport: { send: ok, close: async () => {} }, clock: f.clock, random: systemRandom, audit }, { name: "node-b" });
    // node-a's relay answers only after its lease ran out and node-b took the notice over and delivered it.
    const slow: MailTransport = {
      send: async () => {
        f.clock.advance(LEASE_MS + 1_000);
        assert.equal((await other.runOnce()).sent, 1);
        return { ok: true, providerMessageId: "Q-a" };
      },
      close: async () => {},
    };
    const report = await new OutboxSender({ outbox: f.outbox, transport: slow, clock: f.clock, random: systemRandom, audit, logger: { warn: () => {} } }, { name: "node-a" }).runOnce();
    assert.equal(report.lostClaims, 1);
    assert.deepEqual((await events()).map((e) => [e.type, e.subject, e.data["providerMessageId"], e.data["attempt"]]), [[NOTICE_SENT, id, "Q-b", 2]]);
  });

  it("a sender without an audit dependency records outcomes as before, appending nothing", async (t) => {
    const { f, events } = await setup(t);
    const { id } = await f.outbox.enqueue(notice(1));
    await new OutboxSender({ outbox: f.outbox, transport: await f.transport(), clock: f.clock, random: systemRandom }, { name: "plain" }).drain();
    assert.equal((await f.outbox.get(id)).status, "sent");
    assert.deepEqual(await events(), []);
  });
});

describe("what a delivery event names", () => {
  const m = (idempotencyKey: string, kind = "security.password-changed") => ({ kind, idempotencyKey, to: "ana@example.org" });
  const digest = "0123456789abcdef".repeat(2);

  it("reads the event a notice is about from its idempotency key, or null", () => {
    assert.equal(noticeEventId(m(`security.password-changed:evt_01abc:${digest}`)), "evt_01abc");
    assert.equal(noticeEventId(m(`security.api-token-expiring:token-expiry:tok_1:${digest}`, "security.api-token-expiring")), "token-expiry:tok_1");
    assert.equal(noticeEventId(m(`security.password-changed:job_1.42.usr_9:${digest}`)), "job_1.42.usr_9");
    // The email change requested is keyed by its request alone.
    assert.equal(noticeEventId(m("security.email-change-requested:ecr_1", "security.email-change-requested")), "ecr_1");
    // Another kind's key, no cause, free text, a mailbox, a link's token: nothing of it reaches the log.
    for (const key of [`security.mfa-added:evt_1:${digest}`, `security.password-changed::${digest}`, "security.password-changed:", `security.password-changed:see https://x.test:${digest}`,
      `security.password-changed:ana@example.org:${digest}`, `security.password-changed:${TOKEN}:${digest}`]) {
      assert.equal(noticeEventId(m(key)), null, key);
    }
  });

  it("no security notice carries a sealed link, so none is ever set aside dead at its claim (that path is not audited)", () => {
    // The claim opens, and may mark dead, only bodies of SINGLE_USE_LINK_KINDS (src/notify/outbox.ts, toMessage). Should
    // a security kind ever join them, its death at the claim would need an event of its own.
    assert.deepEqual(SINGLE_USE_LINK_KINDS.filter(isSecurityNotice), []);
  });
});
