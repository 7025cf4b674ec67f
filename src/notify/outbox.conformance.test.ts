// The outbox and its sender on SQLite and PostgreSQL, delivering to a real SMTP server in this process:
// delivery, idempotency, retries, dead letters, crash recovery through leases, concurrent senders, volume.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { systemRandom } from "../lib/random.ts";
import { sql } from "kysely";
import { OUTBOX_COLUMN_TYPES, PRIORITY, type NewMessage } from "./outbox.ts";
import { OutboxSender } from "./sender.ts";
import { FROM, notifyFixture } from "./test-setup.ts";
import type { MailTransport } from "./transport.ts";
import type { Outbox } from "./outbox.ts";
import type { ManualClock } from "../lib/clock.ts";

const HOUR = 3_600_000;
const silent = { warn: () => {} };

function message(n: number, extra: Partial<NewMessage> = {}): NewMessage {
  return { idempotencyKey: `test:${n}`, to: `user${n}@example.org`, subject: `Message ${n}`, text: `Body of message ${n}\n`, kind: "test.message", ...extra };
}

function sender(f: { outbox: Outbox; clock: ManualClock }, transport: MailTransport, name = "node-a", extra: Partial<ConstructorParameters<typeof OutboxSender>[1]> = {}): OutboxSender {
  return new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger: silent }, { name, ...extra });
}

forEachDialect("email outbox", (fx) => {
  it("delivers a queued message over SMTP with its outbox id as the Message-ID", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1, { html: "<p>Body</p>" }));
    const report = await sender(f, await f.transport()).runOnce();
    assert.deepEqual(report, { claimed: 1, sent: 1, retried: 0, dead: 0, released: 0, lostClaims: 0 });
    assert.equal(f.server.accepted.length, 1);
    const mail = f.server.accepted[0]!;
    assert.equal(mail.envelopeFrom, FROM);
    assert.deepEqual(mail.envelopeTo, ["user1@example.org"]);
    assert.equal(mail.headers.get("message-id"), `<${id}@bulwark.test>`);
    assert.equal(mail.headers.get("subject"), "Message 1");
    assert.equal(mail.headers.get("auto-submitted"), "auto-generated");
    assert.match(mail.raw, /Body of message 1/);
    const row = await f.outbox.get(id);
    assert.equal(row.status, "sent");
    assert.equal(row.attempts, 1);
    assert.equal(row.sentAt, f.clock.now());
    assert.equal(row.providerMessageId, "Q1");
    assert.equal(row.claimedBy, null);
    assert.deepEqual(await sender(f, await f.transport()).runOnce(), { claimed: 0, sent: 0, retried: 0, dead: 0, released: 0, lostClaims: 0 });
  });

  // A containment queues a notice per account in batches of a thousand: random ids put each row's id-index entry at a
  // random place (one more page dirtied per message at every commit); time-ordered ids append at the index's end.
  it("message ids are time-ordered (later mail sorts later, in one multi-row insert too) and stay unique, with 80 random bits each", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    // The ids of one multi-row insert, in the order of the batch.
    const queue = async (from: number): Promise<string[]> => {
      const batch = Array.from({ length: 200 }, (_, i) => message(from + i));
      assert.equal((await f.outbox.enqueueMany(batch)).inserted, 200);
      const rows = await db.db.selectFrom("outbox_messages").select(["id", "idempotency_key"]).where("idempotency_key", "in", batch.map((m) => m.idempotencyKey)).execute();
      const byKey = new Map(rows.map((r) => [r.idempotency_key, r.id]));
      return batch.map((m) => byKey.get(m.idempotencyKey)!);
    };
    const first = await queue(0);
    f.clock.advance(1);
    const later = await queue(1000);
    assert.equal(new Set([...first, ...later]).size, 400, "every id unique");
    for (const id of [...first, ...later]) assert.match(id, /^msg_[a-z2-7]{26}$/, "the id's shape is unchanged");
    const newestFirst = [...first].sort().at(-1)!;
    const oldestLater = [...later].sort()[0]!;
    assert.ok(newestFirst < oldestLater, `mail queued a millisecond later sorts after: ${newestFirst} !< ${oldestLater}`);
    // Within one millisecond the random part orders them: not the order of the batch (nothing to guess from it).
    assert.notDeepEqual(first, [...first].sort(), "ids within a millisecond are not numbered in batch order");
  });

  it("purgeSent deletes delivered mail sent at or before the cut-off, in batches, and keeps queued, newer and other rows (ASVS 14.2.7)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    for (let i = 1; i <= 5; i++) await f.outbox.enqueue(message(i));
    await sender(f, await f.transport()).runOnce();
    const cutoff = f.clock.now();
    f.clock.advance(HOUR);
    const newer = await f.outbox.enqueue(message(6));
    await sender(f, await f.transport()).runOnce();
    const waiting = await f.outbox.enqueue(message(7, { notBefore: f.clock.now() + HOUR }));
    assert.equal(await f.outbox.purgeSent(cutoff, { batch: 2, maxBatches: 2 }), 4, "two batches of two, then the next call goes on");
    assert.equal(await f.outbox.purgeSent(cutoff, { batch: 2 }), 1);
    assert.equal(await f.outbox.purgeSent(cutoff), 0);
    assert.equal((await f.outbox.get(newer.id)).status, "sent", "delivered after the cut-off: kept");
    assert.equal((await f.outbox.get(waiting.id)).status, "queued");
  });

  it("keeps one row when the same idempotency key is enqueued twice, singly or in bulk", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const first = await f.outbox.enqueue(message(1));
    const again = await f.outbox.enqueue(message(1, { subject: "A different subject" }));
    assert.deepEqual(again, { id: first.id, created: false });
    assert.equal((await f.outbox.get(first.id)).subject, "Message 1", "the first enqueue wins");
    const bulk = await f.outbox.enqueueMany([message(1), message(2), message(2), message(3)]);
    assert.deepEqual(bulk, { inserted: 2, duplicates: 2 });
    assert.equal((await f.outbox.counts()).queued, 3);
    await sender(f, await f.transport()).drain();
    assert.equal(f.server.accepted.length, 3, "one delivery per key");
  });

  it("stores in bulk exactly what it is given: quotes, backslashes, braces, commas, the word NULL, line ends and other scripts, an absent HTML part and optional columns", async (t) => {
    // On PostgreSQL the batch travels as one array per column (unnest): every character an array literal treats
    // specially must arrive as sent, and an absent value as null, not as the text "NULL".
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const odd = `He said "hi", then \\ {a,b} NULL; \u00e9t\u00e9 \u4f60\u597d\nline 2\r\nend`;
    const batch: NewMessage[] = [
      message(1, { text: odd, html: `<p>${odd}</p>`, subject: `S "1" {x}, NULL` }),
      message(2, { text: "NULL", accountId: "usr_2", campaignId: "cmp_{1}", priority: PRIORITY.campaign }),
      message(3),
    ];
    assert.deepEqual(await f.outbox.enqueueMany(batch), { inserted: 3, duplicates: 0 });
    const one = await f.outbox.getByKey("test:1");
    assert.equal(one?.text, odd);
    assert.equal(one?.html, `<p>${odd}</p>`);
    assert.equal(one?.subject, `S "1" {x}, NULL`);
    const two = await f.outbox.getByKey("test:2");
    assert.equal(two?.text, "NULL");
    assert.equal(two?.html, null);
    assert.equal(two?.campaignId, "cmp_{1}");
    assert.equal(two?.priority, PRIORITY.campaign);
    const row = await database.db.selectFrom("outbox_messages").select(["account_id", "body_html", "not_after", "link_id"]).where("idempotency_key", "=", "test:2").executeTakeFirstOrThrow();
    assert.deepEqual({ ...row }, { account_id: "usr_2", body_html: null, not_after: null, link_id: null });
    const three = await f.outbox.getByKey("test:3");
    assert.equal(three?.text, "Body of message 3\n");
    assert.equal(three?.status, "queued");
  });

  // On PostgreSQL a batch goes as one INSERT … SELECT: the columns its rows differ in as arrays, the ones they share as one
  // parameter each (bulkInsertPostgres). Whatever the batch looks like, each row must hold what one enqueue of the same
  // message stores (on SQLite too, where the batch is a VALUES list).
  it("stores in bulk, column for column, what one enqueue of each message stores: rows alike, rows unlike in every optional column, a batch of one, one row per batch", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const unlike: NewMessage[] = [
      message(1),
      message(2, { html: "<p>2</p>", accountId: "usr_2", priority: PRIORITY.campaign, campaignId: "cmp_2" }),
      message(3, { notBefore: f.clock.now() + HOUR, linkLifetimeMs: HOUR, accountId: "usr_3" }),
      message(4, { html: "<p>4</p>", subject: "Other subject", kind: "test.other", to: "user1@example.org" }),
      // A lone surrogate: stored as one enqueue stores it.
      message(5, { text: "half a pair: \ud83d, then the rest\n", html: "<p>\ude00</p>" }),
    ];
    // Alike in every column but the key: everything else travels as one parameter for the whole batch.
    const alike = Array.from({ length: 5 }, (_, i) => ({ ...message(0, { html: "<p>same</p>", accountId: "usr_same", priority: 7, campaignId: "cmp_same" }), idempotencyKey: `test:alike${i}` }));
    const scenarios: Array<{ name: string; messages: NewMessage[]; batchSize?: number }> = [
      { name: "unlike", messages: unlike },
      { name: "alike", messages: alike },
      { name: "one", messages: [unlike[1]!] },
      { name: "single-row batches", messages: unlike, batchSize: 1 },
    ];
    const stored = async (key: string): Promise<Record<string, unknown>> => {
      const row = await database.db.selectFrom("outbox_messages").selectAll().where("idempotency_key", "=", key).executeTakeFirstOrThrow();
      const { id: _id, idempotency_key: _key, ...rest } = row;
      return rest;
    };
    for (const [n, scenario] of scenarios.entries()) {
      const keyed = (prefix: string): NewMessage[] => scenario.messages.map((m) => ({ ...m, idempotencyKey: `${prefix}${n}:${m.idempotencyKey}` }));
      for (const m of keyed("single")) await f.outbox.enqueue(m);
      const bulk = keyed("bulk");
      assert.deepEqual(await f.outbox.enqueueMany(bulk, scenario.batchSize === undefined ? {} : { batchSize: scenario.batchSize }), { inserted: bulk.length, duplicates: 0 }, scenario.name);
      for (const m of scenario.messages) {
        assert.deepEqual(await stored(`bulk${n}:${m.idempotencyKey}`), await stored(`single${n}:${m.idempotencyKey}`), `${scenario.name}: ${m.idempotencyKey}`);
      }
      // Again: every key is there, nothing is added, and the count says so.
      assert.deepEqual(await f.outbox.enqueueMany(bulk, scenario.batchSize === undefined ? {} : { batchSize: scenario.batchSize }), { inserted: 0, duplicates: bulk.length }, scenario.name);
    }
  });

  it("names every column of outbox_messages with its type in OUTBOX_COLUMN_TYPES, as the database has it (the bulk insert casts by it)", async () => {
    const database = await fx.fresh();
    const actual = database.dialect === "postgres"
      ? (await sql<{ name: string; type: string }>`select column_name as name, data_type as type from information_schema.columns where table_name = 'outbox_messages' and table_schema = current_schema()`.execute(database.db)).rows
      : (await sql<{ name: string; type: string }>`select name, lower(type) as type from pragma_table_info('outbox_messages')`.execute(database.db)).rows;
    assert.ok(actual.length > 0, "no columns read");
    assert.deepEqual(Object.fromEntries(actual.map((c) => [c.name, c.type]).sort()), Object.fromEntries(Object.entries(OUTBOX_COLUMN_TYPES).sort()));
  });

  it("retries after a 4xx with backoff, then delivers once with the same Message-ID", async (t) => {
    const f = await notifyFixture(await fx.fresh(), (_mail, i) => (i === 0 ? { code: 451, message: "Try again later" } : null));
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1));
    const s = sender(f, await f.transport(), "node-a", { retry: { maxAttempts: 5, baseDelayMs: 60_000, maxDelayMs: HOUR } });
    assert.equal((await s.runOnce()).retried, 1);
    const waiting = await f.outbox.get(id);
    assert.equal(waiting.status, "failed");
    assert.match(waiting.lastError ?? "", /451/);
    assert.ok(waiting.nextAttemptAt >= f.clock.now() + 30_000 && waiting.nextAttemptAt <= f.clock.now() + 60_000, "first delay is between half and all of the base");
    assert.equal((await s.runOnce()).claimed, 0, "not retried before its time");
    f.clock.advance(60_000);
    assert.equal((await s.runOnce()).sent, 1);
    assert.equal(f.server.refused.length, 1);
    assert.equal(f.server.accepted.length, 1);
    assert.equal(f.server.accepted[0]!.headers.get("message-id"), f.server.refused[0]!.headers.get("message-id"), "receivers can de-duplicate");
    const done = await f.outbox.get(id);
    assert.equal(done.status, "sent");
    assert.equal(done.attempts, 2);
  });

  it("marks a message dead after the last allowed attempt when the server keeps deferring it", async (t) => {
    const f = await notifyFixture(await fx.fresh(), () => ({ code: 452, message: "Mailbox busy" }));
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1));
    const s = sender(f, await f.transport(), "node-a", { retry: { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 10_000 } });
    for (let i = 0; i < 5; i++) {
      await s.runOnce();
      f.clock.advance(10_000);
    }
    const row = await f.outbox.get(id);
    assert.equal(row.status, "dead");
    assert.equal(row.attempts, 3);
    assert.match(row.lastError ?? "", /452/);
    assert.equal(f.server.refused.length, 3, "exactly maxAttempts deliveries were tried");
    assert.equal(await f.outbox.requeueDead([id]), 1, "an operator can put it back");
    assert.equal((await f.outbox.get(id)).status, "queued");
  });

  it("marks a message dead at once when the server rejects it permanently (5xx)", async (t) => {
    const f = await notifyFixture(await fx.fresh(), () => ({ code: 550, message: "No such user" }));
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1));
    const report = await sender(f, await f.transport()).runOnce();
    assert.equal(report.dead, 1);
    const row = await f.outbox.get(id);
    assert.equal(row.status, "dead");
    assert.equal(row.attempts, 1);
    assert.match(row.lastError ?? "", /550/);
    f.clock.advance(24 * HOUR);
    assert.equal((await sender(f, await f.transport()).runOnce()).claimed, 0, "a dead message is never retried by itself");
  });

  it("retries a message claimed by a sender that crashed, once its lease expires, and fences the dead sender out", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1));
    // The crashed sender: it claimed the message, started delivering it and then never reported (killed mid-delivery).
    const claimed = await f.outbox.claim({ claimer: "crashed/clm_1", limit: 10, leaseMs: 60_000 });
    assert.equal(claimed.length, 1);
    assert.equal(await f.outbox.startAttempt({ id, claimer: "crashed/clm_1" }), 1);
    const s = sender(f, await f.transport(), "node-b", { leaseMs: 60_000 });
    assert.equal((await s.runOnce()).claimed, 0, "a live lease is respected");
    f.clock.advance(60_000);
    assert.equal((await s.runOnce()).sent, 1);
    assert.equal(f.server.accepted.length, 1);
    const row = await f.outbox.get(id);
    assert.equal(row.status, "sent");
    assert.equal(row.attempts, 2);
    assert.equal(await f.outbox.markRetry({ id, claimer: "crashed/clm_1", error: "late", nextAttemptAt: 0 }), false, "a stale claim cannot change the outcome");
    assert.equal(await f.outbox.markSent({ id, claimer: "crashed/clm_1", providerMessageId: null }), false);
    assert.equal((await f.outbox.get(id)).status, "sent");
  });

  it("gives up on a message that keeps killing its senders instead of retrying it forever", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1));
    for (let i = 0; i < 3; i++) {
      assert.equal((await f.outbox.claim({ claimer: `crashed/${i}`, limit: 1, leaseMs: 1_000 })).length, 1);
      assert.equal(await f.outbox.startAttempt({ id, claimer: `crashed/${i}` }), i + 1, "each sender died while delivering it");
      f.clock.advance(1_000);
    }
    const report = await sender(f, await f.transport(), "node-b", { retry: { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 1_000 } }).runOnce();
    assert.equal(report.dead, 1);
    const row = await f.outbox.get(id);
    assert.equal(row.status, "dead");
    assert.match(row.lastError ?? "", /given up after 3 attempts/);
    assert.equal(f.server.accepted.length, 0);
  });

  it("attack: senders that die before delivering a batch cost its messages no attempt, so none of them goes dead unsent", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    await f.outbox.enqueueMany(Array.from({ length: 20 }, (_, i) => message(i)));
    // A crash loop: 31 senders in turn claim the whole batch and die before sending anything (more claims than
    // the budget has attempts).
    for (let i = 0; i < 31; i++) {
      assert.equal((await f.outbox.claim({ claimer: `crashed/${i}`, limit: 100, leaseMs: 1_000 })).length, 20);
      f.clock.advance(1_000);
    }
    const report = await sender(f, await f.transport(), "node-b", { retry: { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 1_000 } }).drain();
    assert.equal(report.dead, 0);
    assert.equal(report.sent, 20);
    assert.equal(f.server.accepted.length, 20);
    assert.deepEqual(await f.outbox.counts(), { queued: 0, sending: 0, sent: 20, failed: 0, dead: 0 });
  });

  it("counts no attempt for a sender whose claim was taken over before it started", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(message(1));
    assert.equal((await f.outbox.claim({ claimer: "slow/1", limit: 1, leaseMs: 1_000 })).length, 1);
    f.clock.advance(1_000);
    assert.equal((await f.outbox.claim({ claimer: "fast/1", limit: 1, leaseMs: 60_000 })).length, 1);
    assert.equal(await f.outbox.startAttempt({ id, claimer: "slow/1" }), null, "the first claim is gone");
    assert.equal(await f.outbox.startAttempt({ id, claimer: "fast/1" }), 1);
  });

  it("never sends a message twice when two senders drain the same queue concurrently", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const total = 300;
    await f.outbox.enqueueMany(Array.from({ length: total }, (_, i) => message(i)));
    const a = sender(f, await f.transport(), "node-a", { batchSize: 20, concurrency: 3 });
    const b = sender(f, await f.transport(), "node-b", { batchSize: 20, concurrency: 3 });
    const [ra, rb] = await Promise.all([a.drain(), b.drain()]);
    assert.equal(ra.sent + rb.sent, total);
    assert.ok(ra.sent > 0 && rb.sent > 0, `both senders worked (${ra.sent} + ${rb.sent})`);
    assert.equal(ra.lostClaims + rb.lostClaims, 0);
    const ids = f.server.accepted.map((m) => m.headers.get("message-id"));
    assert.equal(ids.length, total);
    assert.equal(new Set(ids).size, total, "every Message-ID arrived exactly once");
    assert.deepEqual(await f.outbox.counts(), { queued: 0, sending: 0, sent: total, failed: 0, dead: 0 });
  });

  it("enqueues 10,000 campaign messages in batches, idempotently, and lets a security notice overtake them", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const campaign = Array.from({ length: 10_000 }, (_, i) => message(i, { kind: "campaign.notice", campaignId: "cmp_1", priority: PRIORITY.campaign }));
    const started = performance.now();
    const first = await f.outbox.enqueueMany(campaign);
    t.diagnostic(`10,000 messages enqueued in ${Math.round(performance.now() - started)} ms`);
    assert.deepEqual(first, { inserted: 10_000, duplicates: 0 });
    // After a crash mid-way the campaign enqueues the same list again: nothing is duplicated.
    assert.deepEqual(await f.outbox.enqueueMany(campaign), { inserted: 0, duplicates: 10_000 });
    assert.equal((await f.outbox.counts({ campaignId: "cmp_1" })).queued, 10_000);
    f.clock.advance(1);
    const { id } = await f.outbox.enqueue(message(99_999, { kind: "security.password-changed", priority: PRIORITY.security }));
    const claimed = await f.outbox.claim({ claimer: "node-a/clm", limit: 1, leaseMs: 60_000 });
    assert.deepEqual(claimed.map((m) => m.id), [id], "the security notice is claimed before the older campaign");
  });

  it("pages dead message ids by (created_at, id), up to a given last one, and never hands a requeued message out twice", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    // Two per millisecond: the id breaks ties between messages created at the same time.
    for (let i = 0; i < 7; i++) {
      await f.outbox.enqueueMany([message(2 * i), message(2 * i + 1)]);
      f.clock.advance(1);
    }
    const claimed = await f.outbox.claim({ claimer: "node-a/clm", limit: 100, leaseMs: 60_000 });
    for (const m of claimed) assert.ok(await f.outbox.markDead({ id: m.id, claimer: "node-a/clm", error: "550 no such user" }));
    const order = (await f.outbox.listDead({ limit: 100 })).map((m) => m.id);
    assert.equal(order.length, 14);
    const through = await f.outbox.lastDead();
    assert.equal(through?.id, order.at(-1));
    assert.equal(await f.outbox.countDead({ through: through! }), 14);
    // A message that dies after the run began, later in the order, is past `through`.
    const late = await f.outbox.enqueue(message(100));
    const [lateClaim] = await f.outbox.claim({ claimer: "node-a/late", limit: 1, leaseMs: 60_000 });
    assert.equal(lateClaim?.id, late.id);
    assert.ok(await f.outbox.markDead({ id: late.id, claimer: "node-a/late", error: "550" }));
    const seen: string[] = [];
    let page = await f.outbox.deadIds({ through: through!, limit: 3 });
    while (page.last !== null) {
      assert.ok(page.ids.length <= 3);
      seen.push(...page.ids);
      // Requeued, then dead again at once (a live sender, the same refusal): behind the cursor, not read again.
      assert.equal(await f.outbox.requeueDead(page.ids), page.ids.length);
      const again = await f.outbox.claim({ claimer: "node-a/again", limit: 100, leaseMs: 60_000 });
      for (const m of again) await f.outbox.markDead({ id: m.id, claimer: "node-a/again", error: "550 again" });
      page = await f.outbox.deadIds({ after: page.last, through: through!, limit: 3 });
    }
    assert.deepEqual(seen, order, "every message dead at the start, once each, in order; the late one left out");
    await assert.rejects(f.outbox.deadIds({ limit: 1001 }), { code: "BULWARK_ERR_MAIL_MESSAGE" });
  });

  it("queueOrRevise queues a gathering notice, rewrites it in place while no sender has taken it (keeping its first due time), leaves it once taken or under another recipient, and refuses link kinds", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const due = f.clock.now() + 60_000;
    const first = message(1, { kind: "security.digest", subject: "S1", text: "one\n", notBefore: due });
    const created = await f.outbox.queueOrRevise(first);
    assert.equal(created.outcome, "created");
    // A later writer's due time does not move the first one's: the hour it gathers ends when it ends.
    assert.deepEqual(await f.outbox.queueOrRevise({ ...first, subject: "S2", text: "two\n", notBefore: due + HOUR }), { id: created.id, outcome: "revised" });
    const revised = await f.outbox.get(created.id);
    assert.deepEqual([revised.subject, revised.text, revised.nextAttemptAt], ["S2", "two\n", due]);
    await db.transaction(async (trx) => assert.equal((await f.outbox.queueOrRevise({ ...first, text: "three\n" }, trx)).outcome, "revised"));
    assert.equal((await f.outbox.get(created.id)).text, "three\n");
    // The same key for another mailbox rewrites nothing (a key is never a way to redirect a notice).
    assert.equal((await f.outbox.queueOrRevise({ ...first, to: "other@example.org", text: "x\n" })).outcome, "kept");
    assert.equal((await f.outbox.get(created.id)).to, first.to);
    assert.equal((await sender(f, await f.transport()).runOnce()).claimed, 0, "not due before its time");
    f.clock.advance(61_000);
    assert.equal((await sender(f, await f.transport()).runOnce()).sent, 1);
    assert.match(f.server.accepted[0]!.raw, /three/);
    // Sent: a late writer is told so and changes nothing.
    assert.deepEqual(await f.outbox.queueOrRevise({ ...first, text: "four\n" }), { id: created.id, outcome: "kept" });
    assert.equal((await f.outbox.get(created.id)).text, "three\n");
    await assert.rejects(f.outbox.queueOrRevise(message(2, { kind: "account.password-reset-link" })), { code: "BULWARK_ERR_MAIL_MESSAGE" });
  });

  it("a claim records dead, unsent and with the reason, mail no longer good to send (a lapsed link, an address its account left or an account gone), sends the rest, and requeued mail goes behind mail queued the usual way (test/dead-mail-red-team.test.ts)", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const now = f.clock.now();
    await database.db.insertInto("users").values({
      id: "usr_ana", email: "Ana@example.org", email_key: "ana@example.org", status: "active", password_must_change: 0, created_at: now, updated_at: now, seeded: 0,
    } as never).execute();
    const lapsing = await f.outbox.enqueue(message(1, { linkLifetimeMs: 60_000 }));
    const fresh = await f.outbox.enqueue(message(2, { linkLifetimeMs: HOUR, accountId: "usr_ana", to: "ana@example.org" }));
    const left = await f.outbox.enqueue(message(3, { accountId: "usr_ana", priority: PRIORITY.security }));
    const gone = await f.outbox.enqueue(message(4, { accountId: "usr_gone" }));
    const plain = await f.outbox.enqueue(message(5));
    f.clock.advance(60_000);
    const setAside: string[] = [];
    const claimed = await f.outbox.claim({ claimer: "a", limit: 10, leaseMs: 60_000, onSetAside: (m) => setAside.push(`${m.id}:${m.dead}`) });
    assert.deepEqual(claimed.map((m) => m.id).sort(), [fresh.id, plain.id].sort(), "the account's address compared in any case; mail without an account or a link goes");
    assert.deepEqual(setAside.sort(), [`${lapsing.id}:true`, `${left.id}:true`, `${gone.id}:true`].sort());
    assert.match((await f.outbox.get(lapsing.id)).lastError ?? "", /link stopped working at .*its owner can ask for a new one/);
    for (const id of [left.id, gone.id]) assert.match((await f.outbox.get(id)).lastError ?? "", /no longer has this address/);
    // Requeued, a dead notice goes behind a campaign message queued after it, and stays there when requeued again.
    await database.db.updateTable("outbox_messages").set({ status: "dead" }).where("id", "in", [fresh.id, plain.id]).execute();
    await database.db.updateTable("users").set({ email: "ana@example.org" }).execute();
    await database.db.updateTable("outbox_messages").set({ to_address: "ana@example.org" }).where("id", "=", left.id).execute();
    assert.equal(await f.outbox.requeueDead([left.id]), 1);
    const campaign = await f.outbox.enqueue(message(6, { priority: PRIORITY.campaign }));
    const next = await f.outbox.claim({ claimer: "b", limit: 1, leaseMs: 60_000, belowPriority: 100 });
    assert.deepEqual(next.map((m) => m.id), [campaign.id]);
    assert.equal((await f.outbox.get(left.id)).priority, PRIORITY.security + 20);
    assert.deepEqual((await f.outbox.claim({ claimer: "b", limit: 1, leaseMs: 60_000, belowPriority: 100 })).map((m) => m.id), [left.id], "its address is the account's again");
  });

  it("after a step back of the clock, dueAtOnceAhead makes due the mail queued due at once and dated ahead, and moves no retry, gathering notice or lease; it counts mail waiting beyond the longest wait (test/clock-jumps-b-red-team.test.ts)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const queuedAt = f.clock.now();
    const leased = await f.outbox.enqueue(message(1));
    assert.equal((await f.outbox.claim({ claimer: "other-node/clm_1", limit: 1, leaseMs: 15 * 60_000 })).length, 1);
    const retried = await f.outbox.enqueue(message(2));
    assert.equal((await f.outbox.claim({ claimer: "a/clm_2", limit: 1, leaseMs: 60_000 })).length, 1);
    assert.equal(await f.outbox.markRetry({ id: retried.id, claimer: "a/clm_2", error: "421 later", nextAttemptAt: queuedAt + 10 * 60_000 }), true);
    const gathering = await f.outbox.enqueue(message(3, { notBefore: queuedAt + 30 * 60_000 }));
    const atOnce = await f.outbox.enqueue(message(4));
    f.clock.jump(-HOUR);
    const now = f.clock.now();
    assert.deepEqual(await f.outbox.dueAtOnceAhead({ longestWaitMs: 2 * HOUR }),
      { madeDue: 1, left: 0, heldAhead: 2, heldUntil: queuedAt + 30 * 60_000, beyondLongestWait: 0, latest: null }, "the retry and the gathering notice are counted as held");
    assert.equal((await f.outbox.get(atOnce.id)).nextAttemptAt, now, "due at once when queued: due now");
    assert.equal((await f.outbox.get(retried.id)).nextAttemptAt, queuedAt + 10 * 60_000, "a retry keeps its backoff");
    assert.equal((await f.outbox.get(gathering.id)).nextAttemptAt, queuedAt + 30 * 60_000, "a gathering notice keeps its due time");
    assert.equal((await f.outbox.get(leased.id)).claimedUntil, queuedAt + 15 * 60_000, "another node's lease is its own");
    assert.deepEqual((await f.outbox.claim({ claimer: "b/clm_3", limit: 10, leaseMs: 60_000 })).map((m) => m.id), [atOnce.id]);
    // Three hours further back: the retry and the gathering notice now wait beyond the 2 hours (queued and failed mail only).
    f.clock.jump(-3 * HOUR);
    assert.deepEqual(await f.outbox.dueAtOnceAhead({ longestWaitMs: 2 * HOUR }),
      { madeDue: 0, left: 0, heldAhead: 2, heldUntil: queuedAt + 30 * 60_000, beyondLongestWait: 2, latest: queuedAt + 30 * 60_000 });
  });

  it("mail handed back at a stop with no attempt (release) and mail requeued (requeueDead) are due at their queue time, so dueAtOnceAhead frees them after a step back; mail handed back after a failed attempt keeps a retry's due time (test/outbox-twentysix-red-team.test.ts)", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    const queuedAt = f.clock.now();
    const unstarted = await f.outbox.enqueue(message(1));
    const retried = await f.outbox.enqueue(message(2));
    const dead = await f.outbox.enqueue(message(3));
    f.clock.advance(5 * 60_000);
    assert.equal((await f.outbox.claim({ claimer: "a/clm_1", limit: 10, leaseMs: 60_000 })).length, 3);
    assert.equal(await f.outbox.startAttempt({ id: retried.id, claimer: "a/clm_1" }), 1);
    assert.equal(await f.outbox.markRetry({ id: retried.id, claimer: "a/clm_1", error: "421 later", nextAttemptAt: f.clock.now() }), true);
    assert.equal(await f.outbox.markDead({ id: dead.id, claimer: "a/clm_1", error: "550 no" }), true);
    assert.equal((await f.outbox.claim({ claimer: "a/clm_2", limit: 10, leaseMs: 60_000, notIn: [unstarted.id] })).length, 1);
    assert.equal(await f.outbox.startAttempt({ id: retried.id, claimer: "a/clm_2" }), 2);
    // The stop: the unstarted message handed back as it is, the cut delivery of the retried one with its attempt taken back.
    assert.equal(await f.outbox.release({ claimer: "a/clm_1", ids: [unstarted.id] }), 1);
    assert.equal(await f.outbox.release({ claimer: "a/clm_2", ids: [retried.id], uncountAttempt: true }), 1);
    assert.equal(await f.outbox.requeueDead([dead.id]), 1);
    const rows = await Promise.all([unstarted.id, retried.id, dead.id].map((id) => f.outbox.get(id)));
    assert.deepEqual(rows.map((r) => [r.status, r.attempts, r.nextAttemptAt]),
      [["queued", 0, queuedAt], ["failed", 1, f.clock.now()], ["queued", 0, queuedAt]]);
    f.clock.jump(-HOUR);
    const ahead = await f.outbox.dueAtOnceAhead({ longestWaitMs: 2 * HOUR });
    assert.deepEqual([ahead.madeDue, ahead.heldAhead, ahead.heldUntil], [2, 1, queuedAt + 5 * 60_000], "the retry is held, and counted");
    assert.deepEqual((await f.outbox.claim({ claimer: "b/clm_3", limit: 10, leaseMs: 60_000 })).map((m) => m.id).sort(), [unstarted.id, dead.id].sort());
  });
});
