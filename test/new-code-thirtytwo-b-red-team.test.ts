// Red team 32b: two outbox changes of the day attacked, on SQLite and PostgreSQL.
//
// 12dcaee (migration 39): the claim's read of "when was each account last queued a containment reset link"
// (Outbox.claim → #replacedAt) moved from migration 37's index of every mail about an account to a partial index of
// the containment reset links alone, the query stating its condition literally. 0d73c56: outbox message ids are
// time-ordered (newOrderedId: 48 bits of ms, 80 random bits), and the id is the mail's Message-ID.
//
// Tried, and held (passing "attack: …" tests):
// - the replaced-link rule in every case the old index served: an account's older reset, sign-up and containment link
//   mails die at their claim when the newer containment link mail was already sent, or died; a link mail queued after
//   the containment link goes out; notices queued before it go out; thirty accounts in one claim, one read;
// - the claim's exact read (captured with its parameters) uses outbox_messages_replacing on both dialects, with no
//   scan of a 20,000-row queue (PostgreSQL: EXPLAIN ANALYZE, rows read counted; SQLite: EXPLAIN QUERY PLAN);
// - a store holding link mails and notices migrated from 38 to 39: the old index is gone, the new one holds exactly the
//   containment links queued before the upgrade, and the rule applies to mail queued on either side of it;
// - two outboxes (two nodes) on one database, queueing 2,000 mails each at one frozen millisecond: every id distinct;
// - a clock stepped back: the dead-letter pages (deadIds, the keyset `requeue-dead` walks) visit every dead mail once,
//   in (created_at, id) order, though the later mail's ids sort before the earlier's;
// - the Message-ID is an RFC 5322 msg-id (dot-atom-text "@" domain) and stays the same on a retry.
// Checked by reading, no test: nothing in the outbox or the CLI orders or pages by the id alone (the claim orders by
//   priority and due time; listDead / deadIds / lastDead by (created_at, id)); no HTTP route takes or returns a message
//   id (src/http, src/app); a collision of ids would fail the insert (its conflict target is the idempotency key only),
//   never drop a mail silently.
// Found (fixed since: ordered ids are written in base32's characters put in byte order): "ids made later sort later" (newOrderedId's contract, ADR 0004, the conformance test's name)
//   is false. The ids are written in RFC 4648's alphabet (a–z then 2–7), whose digits sort BEFORE its letters in
//   byte order (SQLite's BINARY, JavaScript's <, PostgreSQL's collations alike): whenever a 5-bit digit of the time
//   goes from 25 ('z') to 26 ('2'), an id made a millisecond later sorts before every id of the last ~208 ms (digit 8,
//   every 256 ms), ~6.6 s (digit 7, every 8.2 s), and so on up to days and years for the higher digits. Nothing found
//   orders by the id alone, so no mail is lost or reordered; the index locality the change is for mostly holds (new
//   entries still land at one moving place); but the stated property, and any future keyset on the id alone, breaks.
//   Now written with the same 32 characters in byte order ("234567abcdefghijklmnopqrstuvwxyz"): the shape
//   msg_[a-z2-7]{26} stays and every test here passes.
import assert from "node:assert/strict";
import { it } from "node:test";
import { CompiledQuery, type Kysely } from "kysely";
import { spyOn } from "./helpers/compiled-queries.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { createPasswordResetService, createResetMailer, spendResetLinks, type ResetReason } from "../src/accounts/password-reset/index.ts";
import { notifyFixture } from "../src/notify/test-setup.ts";
import { Outbox, PRIORITY, type NewMessage, type OutboxMessage } from "../src/notify/outbox.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import type { Schema } from "../src/store/schema.ts";

const PUBLIC_URL = "https://bulwark.example";
const REPLACED = /a newer link mail for its account replaced it/;
const silent = { warn: () => {} };
/** migration 38's schema: the store as the release before 12dcaee left it. */
const THROUGH_38 = MIGRATIONS.filter((m) => m.version <= 38);

async function addUsers(database: Database, names: readonly string[], at: number): Promise<void> {
  for (const name of names) {
    await database.db.insertInto("users").values({
      id: `usr_${name}`, email: `${name}@example.org`, email_key: `${name}@example.org`, status: "active", password_must_change: 0, created_at: at, updated_at: at, seeded: 0,
    } as never).execute();
  }
}

/**
 * Queues link mails as their services do, through `outbox`: a containment spends the account's open links first, as
 * its lever does. Each call moves the clock a second on, so every mail has its own created_at. Returns the message id.
 */
function issuer(database: Database, outbox: Outbox, clock: ManualClock): (userId: string, reason: ResetReason, jobId?: string) => Promise<string> {
  const resets = createPasswordResetService({ database, clock, random: systemRandom });
  const mailer = createResetMailer({ database, resets, outbox, random: systemRandom });
  return async (userId, reason, jobId = "job_1") => {
    const context = { email: `${userId.slice(4)}@example.org`, publicURL: PUBLIC_URL, serviceName: "Bulwark" };
    const out = await database.transaction(async (trx) => {
      if (reason === "containment") await spendResetLinks(trx as Kysely<Schema>, userId, clock.now());
      return mailer.issueInTransaction(trx, userId, reason === "containment" ? { ...context, reason, jobId } : { ...context, reason });
    });
    assert.ok(out.queued, `${reason} mail for ${userId} queued`);
    clock.advance(1000);
    return out.messageId;
  };
}

function notice(n: number, accountId: string): NewMessage {
  return { idempotencyKey: `security.password-changed:evt_${n}:${accountId}`, to: `${accountId.slice(4)}@example.org`, subject: "Your password was changed", text: "Hello", kind: "security.password-changed", priority: PRIORITY.security, accountId };
}

async function claimAll(outbox: Outbox, claimer: string, limit = 200): Promise<{ handed: OutboxMessage[]; dead: string[] }> {
  const dead: string[] = [];
  const handed = await outbox.claim({ claimer, limit, leaseMs: 60_000, onSetAside: (m) => { if (m.dead) dead.push(m.id); } });
  return { handed, dead };
}


/** The claim's read of the newest replacing mail per account (#replacedAt). */
const asksReplaced = (q: CompiledQuery): boolean => /^select\b/i.test(q.sql) && /max\("created_at"\)/i.test(q.sql) && /"outbox_messages"/.test(q.sql);

interface PgPlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  "Rows Removed by Filter"?: number;
  "Rows Removed by Index Recheck"?: number;
  Plans?: PgPlanNode[];
}

function pgNodes(node: PgPlanNode): PgPlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(pgNodes)];
}

/** Sent rows written straight into the table (a long history), 500 a statement. */
async function history(database: Database, rows: ReadonlyArray<{ id: string; kind: string; accountId: string | null; at: number }>): Promise<void> {
  for (let i = 0; i < rows.length; i += 500) {
    await database.db.insertInto("outbox_messages").values(rows.slice(i, i + 500).map((r) => ({
      id: r.id, idempotency_key: `history:${r.id}`, to_address: "someone@example.org", subject: "Old mail", body_text: "Hello", body_html: null,
      kind: r.kind, priority: PRIORITY.security, status: "sent", attempts: 1, next_attempt_at: r.at, last_error: null, created_at: r.at, sent_at: r.at,
      claimed_by: null, claimed_until: null, provider_message_id: null, campaign_id: r.accountId === null ? "cmp_old" : null, not_after: null,
      account_id: r.accountId, link_id: null,
    }))).execute();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Migration 39: the replaced-link rule, its index, and an upgrade of a store holding mail.
// ---------------------------------------------------------------------------------------------------------------

forEachDialect("red team 32b: the claim's index of replacing mail (migration 39)", (fx) => {
  it("attack: the newer containment link mail was already SENT (ana) or DEAD (bob) when the relay recovers — each account's older reset, sign-up and containment link mails still die at their claim, naming the reason; a link mail queued after it and the notices go out (any status of the replacing mail counts)", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    await addUsers(database, ["ana", "bob"], f.clock.now());
    const issue = issuer(database, f.outbox, f.clock);
    const anaNotice = (await f.outbox.enqueue(notice(1, "usr_ana"))).id;
    const older = [await issue("usr_ana", "reset"), await issue("usr_ana", "register"), await issue("usr_ana", "containment", "job_1"), await issue("usr_bob", "reset")];
    const anaNewest = await issue("usr_ana", "containment", "job_2");
    const bobNewest = await issue("usr_bob", "containment", "job_2");
    // The newest link mails left the queue first: ana's was delivered, bob's refused for good by his server.
    await database.db.updateTable("outbox_messages").set({ status: "sent", sent_at: f.clock.now() }).where("id", "=", anaNewest).execute();
    await database.db.updateTable("outbox_messages").set({ status: "dead", last_error: "550 mailbox unavailable" }).where("id", "=", bobNewest).execute();
    const after = await issue("usr_ana", "reset");
    const bobNotice = (await f.outbox.enqueue(notice(2, "usr_bob"))).id;
    const { handed, dead } = await claimAll(f.outbox, "node-a");
    assert.deepEqual(dead.sort(), [...older].sort(), "every older link mail of both accounts is recorded dead");
    assert.deepEqual(handed.map((m) => m.id).sort(), [anaNotice, after, bobNotice].sort(), "the notices and the link asked for afterwards go out");
    for (const id of older) assert.match((await f.outbox.get(id)).lastError ?? "", REPLACED);
    assert.equal((await f.outbox.get(anaNewest)).status, "sent");
    assert.equal((await f.outbox.get(bobNewest)).status, "dead");
  });

  it("attack: thirty accounts, each with a reset link mail queued before its containment link mail, claimed in one batch — thirty die, thirty go out, after one read of the replacing mail for all of them", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const names = Array.from({ length: 30 }, (_, i) => `user${i}`);
    await addUsers(database, names, f.clock.now());
    const issue = issuer(database, f.outbox, f.clock);
    const resets: string[] = [];
    const containments: string[] = [];
    for (const name of names) resets.push(await issue(`usr_${name}`, "reset"));
    for (const name of names) containments.push(await issue(`usr_${name}`, "containment", "job_9"));
    const spy = spyOn(database);
    const outbox = new Outbox({ database: spy.database, clock: f.clock, random: systemRandom, linkCipher: f.keyring });
    const { handed, dead } = await claimAll(outbox, "node-a");
    assert.deepEqual(dead.sort(), resets.sort());
    assert.deepEqual(handed.map((m) => m.id).sort(), containments.sort());
    assert.equal(spy.compiled.filter(asksReplaced).length, 1, "one read for every account of the batch");
  });

  it("attack: the claim's own read of the replacing mail, with its parameters, goes through outbox_messages_replacing over a 20,000-row history (4,000 accounts with 4 notices and a containment link each, and a campaign) — no scan of outbox_messages (PostgreSQL: EXPLAIN ANALYZE, rows read; SQLite: EXPLAIN QUERY PLAN)", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    await addUsers(database, ["ana", "bob"], f.clock.now());
    const start = f.clock.now() - 86_400_000;
    const rows: Array<{ id: string; kind: string; accountId: string | null; at: number }> = [];
    for (let a = 0; a < 4000; a++) {
      for (let n = 0; n < 4; n++) rows.push({ id: `msg_h${a}n${n}`, kind: "security.sessions-revoked", accountId: `usr_h${a}`, at: start + a * 10 + n });
      rows.push({ id: `msg_h${a}c`, kind: "account.containment-reset-link", accountId: `usr_h${a}`, at: start + a * 10 + 5 });
    }
    for (let c = 0; c < 2000; c++) rows.push({ id: `msg_cmp${c}`, kind: "campaign.notice", accountId: null, at: start + c });
    await history(database, rows);
    if (database.dialect === "postgres") await database.db.executeQuery(CompiledQuery.raw("ANALYZE outbox_messages"));
    else database.sqlite!.exec("ANALYZE");
    const issue = issuer(database, f.outbox, f.clock);
    await issue("usr_ana", "reset");
    await issue("usr_bob", "register");
    await issue("usr_ana", "containment", "job_3");
    const spy = spyOn(database);
    const outbox = new Outbox({ database: spy.database, clock: f.clock, random: systemRandom, linkCipher: f.keyring });
    const { handed, dead } = await claimAll(outbox, "node-a");
    assert.equal(dead.length, 1, "ana's reset link mail was replaced");
    assert.equal(handed.length, 2);
    const asked = spy.compiled.filter(asksReplaced);
    assert.equal(asked.length, 1);
    const q = asked[0]!;
    if (database.dialect === "postgres") {
      const result = await database.db.executeQuery<{ "QUERY PLAN": Array<{ Plan: PgPlanNode }> }>(CompiledQuery.raw(`EXPLAIN (ANALYZE, FORMAT JSON) ${q.sql}`, [...q.parameters]));
      const nodes = pgNodes(result.rows[0]!["QUERY PLAN"][0]!.Plan);
      const described = JSON.stringify(nodes.map((n) => [n["Node Type"], n["Index Name"] ?? n["Relation Name"] ?? ""]));
      assert.ok(nodes.some((n) => n["Index Name"] === "outbox_messages_replacing"), `the plan reads outbox_messages_replacing: ${described}`);
      assert.ok(!nodes.some((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "outbox_messages"), `no sequential scan: ${described}`);
      const read = nodes.filter((n) => n["Relation Name"] === "outbox_messages" || n["Index Name"] === "outbox_messages_replacing")
        .reduce((sum, n) => sum + ((n["Actual Rows"] ?? 0) + (n["Rows Removed by Filter"] ?? 0) + (n["Rows Removed by Index Recheck"] ?? 0)) * (n["Actual Loops"] ?? 1), 0);
      assert.ok(read <= 20, `the read touched ${read} rows of a 20,000-row table: ${described}`);
    } else {
      const plan = database.sqlite!.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...(q.parameters as Array<string | number | null>)) as Array<{ detail: string }>;
      const described = plan.map((p) => p.detail).join(" / ");
      assert.ok(plan.some((p) => /USING (COVERING )?INDEX outbox_messages_replacing\b/.test(p.detail)), described);
      assert.ok(!plan.some((p) => /^SCAN outbox_messages\b/.test(p.detail)), described);
    }
  });

  it("attack: a store at migration 38 holding link mails and notices (ana: reset then containment; bob: containment then reset; notices for both) is migrated to 39 — migration 37's index is gone, the new one holds exactly the two containment links, and the claim after the upgrade kills ana's older reset link mail (and one asked for after the upgrade before a new containment), sending the rest", async (t) => {
    const database = await fx.empty();
    // A minute before the fixture's clock (notifyFixture starts at 2026-11-01): the links are still open after the upgrade.
    const before = new ManualClock(Date.UTC(2026, 10, 1) - 60_000);
    assert.equal((await migrate(database, before, THROUGH_38)).error, undefined);
    await addUsers(database, ["ana", "bob"], before.now());
    const old = new Outbox({ database, clock: before, random: systemRandom });
    const issueOld = issuer(database, old, before);
    const anaReset = await issueOld("usr_ana", "reset");
    const anaContained = await issueOld("usr_ana", "containment", "job_1");
    const bobContained = await issueOld("usr_bob", "containment", "job_1");
    const bobReset = await issueOld("usr_bob", "reset");
    const notices = [(await old.enqueue(notice(1, "usr_ana"))).id, (await old.enqueue(notice(2, "usr_bob"))).id];
    // The upgrade (notifyFixture migrates to the latest version).
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const indexes = database.dialect === "postgres"
      ? (await database.db.executeQuery<{ indexname: string; indexdef: string }>(CompiledQuery.raw("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'outbox_messages' AND schemaname = current_schema()"))).rows
      : (database.sqlite!.prepare(`SELECT name AS indexname, sql AS indexdef FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox_messages'`).all() as Array<{ indexname: string; indexdef: string }>);
    const names = indexes.map((i) => i.indexname);
    assert.ok(!names.includes("outbox_messages_by_account"), `migration 37's index is dropped: ${names.join(", ")}`);
    const replacing = indexes.find((i) => i.indexname === "outbox_messages_replacing");
    assert.ok(replacing, `migration 39's index exists: ${names.join(", ")}`);
    assert.match(replacing.indexdef, /account\.containment-reset-link/, "partial on the replacing kind");
    // What the index holds: counted on SQLite's pages; on PostgreSQL through an index-only scan forced onto it.
    if (database.dialect === "sqlite") {
      const [cells] = database.sqlite!.prepare(`SELECT sum(ncell) AS n FROM dbstat WHERE name = 'outbox_messages_replacing' AND pagetype = 'leaf'`).all() as Array<{ n: number }>;
      assert.equal(cells?.n, 2, "the two containment links queued before the upgrade, and nothing else");
    } else {
      await database.transaction(async (trx) => {
        await trx.executeQuery(CompiledQuery.raw("SET LOCAL enable_seqscan = off"));
        await trx.executeQuery(CompiledQuery.raw("SET LOCAL enable_bitmapscan = off"));
        const plan = await trx.executeQuery<{ "QUERY PLAN": Array<{ Plan: PgPlanNode }> }>(CompiledQuery.raw(`EXPLAIN (ANALYZE, FORMAT JSON) SELECT account_id FROM outbox_messages WHERE "kind" = 'account.containment-reset-link' and "account_id" is not null`));
        const nodes = pgNodes(plan.rows[0]!["QUERY PLAN"][0]!.Plan);
        const scan = nodes.find((n) => n["Index Name"] === "outbox_messages_replacing");
        assert.ok(scan, JSON.stringify(nodes.map((n) => n["Node Type"])));
        assert.equal(scan["Actual Rows"], 2, "the two containment links queued before the upgrade");
      });
    }
    const issue = issuer(database, f.outbox, f.clock);
    const anaAfter = await issue("usr_ana", "reset");
    const anaContainedAfter = await issue("usr_ana", "containment", "job_2");
    const { handed, dead } = await claimAll(f.outbox, "node-a");
    assert.deepEqual(dead.sort(), [anaReset, anaContained, anaAfter].sort(), "older link mails die, whichever side of the upgrade they were queued on");
    assert.deepEqual(handed.map((m) => m.id).sort(), [bobContained, bobReset, anaContainedAfter, ...notices].sort());
    for (const id of [anaReset, anaContained, anaAfter]) assert.match((await f.outbox.get(id)).lastError ?? "", REPLACED);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. Time-ordered message ids (0d73c56).
// ---------------------------------------------------------------------------------------------------------------

function bulk(prefix: string, count: number): NewMessage[] {
  return Array.from({ length: count }, (_, i) => ({ idempotencyKey: `${prefix}:${i}`, to: `u${i}@example.org`, subject: "Notice", text: "Hello", kind: "security.sessions-revoked", priority: PRIORITY.security, accountId: `usr_${prefix}${i}` }));
}

forEachDialect("red team 32b: time-ordered outbox message ids", (fx) => {
  it("attack: two nodes (two Outbox instances on one database) each queue 2,000 notices in the same frozen millisecond — all 4,000 are stored, every id distinct, of the unchanged msg_ shape, sharing the millisecond's prefix", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const other = new Outbox({ database, clock: f.clock, random: systemRandom, linkCipher: f.keyring });
    const [a, b] = await Promise.all([f.outbox.enqueueMany(bulk("a", 2000)), other.enqueueMany(bulk("b", 2000))]);
    assert.equal(a.inserted + b.inserted, 4000);
    const ids = (await database.db.selectFrom("outbox_messages").select("id").execute()).map((r) => r.id);
    assert.equal(ids.length, 4000);
    assert.equal(new Set(ids).size, 4000, "no two ids alike");
    for (const id of ids) assert.match(id, /^msg_[a-z2-7]{26}$/);
    assert.equal(new Set(ids.map((id) => id.slice(0, 4 + 9))).size, 1, "the same millisecond: the same nine time digits");
  });

  it("attack: the clock is stepped back an hour between two sets of mail that die — the dead-letter pages requeue-dead walks (deadIds, 3 a page, up to lastDead) visit each dead mail exactly once, in (created_at, id) order, though the later mail's ids sort before the earlier's (after the step, and across a 'z' → '2' step of the ids' time digit)", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    // .207 and .208 straddle a step of the ids' time digit from 'z' to '2' (the failing test below): there the id order
    // and the queue order disagree, so anything keyed on the id alone would show.
    f.clock.set(Date.UTC(2026, 10, 1) + 207);
    const first = (await f.outbox.enqueueMany(bulk("early", 7))).inserted;
    f.clock.advance(1);
    await f.outbox.enqueueMany(bulk("early2", 4));
    f.clock.set(f.clock.now() - 3_600_000);
    await f.outbox.enqueueMany(bulk("late", 6));
    assert.equal(first, 7);
    await database.db.updateTable("outbox_messages").set({ status: "dead", last_error: "550 refused" }).execute();
    const rows = await database.db.selectFrom("outbox_messages").select(["id", "created_at"]).execute();
    const expected = rows.map((r) => ({ id: r.id, at: Number(r.created_at) })).sort((x, y) => x.at - y.at || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)).map((r) => r.id);
    const through = await f.outbox.lastDead();
    assert.ok(through);
    assert.equal(await f.outbox.countDead({ through }), 17);
    const seen: string[] = [];
    let page = await f.outbox.deadIds({ limit: 3, through });
    while (page.ids.length > 0) {
      seen.push(...page.ids);
      page = await f.outbox.deadIds({ after: page.last!, through, limit: 3 });
    }
    assert.deepEqual(seen, expected, "every dead mail once, in (created_at, id) order");
    assert.deepEqual((await f.outbox.listDead({ limit: 100 })).map((m) => m.id), expected);
  });

  it("attack: the Message-ID of a time-ordered id is an RFC 5322 msg-id (\"<\" dot-atom-text \"@\" domain \">\"), one header, the same on the retry after a 4xx", async (t) => {
    const database = await fx.fresh();
    let calls = 0;
    const f = await notifyFixture(database, () => (calls++ === 0 ? { code: 451, message: "try later" } : null));
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue({ idempotencyKey: "mid:1", to: "ana@example.org", subject: "Hello", text: "Hello", kind: "test.message" });
    const sender = new OutboxSender({ outbox: f.outbox, transport: await f.transport(), clock: f.clock, random: systemRandom, logger: silent }, { name: "node-a" });
    await sender.runOnce();
    f.clock.advance(3_600_000);
    await sender.runOnce();
    assert.equal(f.server.accepted.length, 1);
    const headers = [...f.server.refused, ...f.server.accepted].map((m) => m.headers.get("message-id"));
    const atext = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
    const msgId = new RegExp(`^<${atext}(\\.${atext})*@${atext}(\\.${atext})*>$`);
    for (const h of headers) {
      assert.match(h ?? "", msgId);
      assert.equal(h, `<${id}@bulwark.test>`);
    }
    assert.equal(f.server.accepted[0]!.raw.match(/^message-id:/gim)?.length, 1, "one Message-ID header");
  });

  // Was failing (a defect of newOrderedId's contract, found by red team 32b, fixed since): RFC 4648's alphabet puts its digits 2–7
  // (values 26–31) before its letters in byte order, so at each 'z' → '2' step of a time digit the order breaks.
  // 2026-11-01T00:00:00.207Z → .208Z is such a step (digit 8 of the time): the id of the later mail sorts first.
  it("attack: mail queued a millisecond later sorts after the earlier mail by its id, in the database's ORDER BY id and in JavaScript, at a step of the time's base32 digit from 'z' to '2' (2026-11-01T00:00:00.207Z → .208Z) (newOrderedId: \"ids made later sort later\")", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    f.clock.set(Date.UTC(2026, 10, 1) + 207);
    await f.outbox.enqueueMany(bulk("before", 20));
    f.clock.advance(1);
    await f.outbox.enqueueMany(bulk("after", 20));
    const rows = await database.db.selectFrom("outbox_messages").select(["id", "created_at"]).orderBy("id").execute();
    const times = rows.map((r) => Number(r.created_at));
    const outOfOrder = times.findIndex((at, i) => i > 0 && at < times[i - 1]!);
    assert.equal(outOfOrder, -1, `ORDER BY id lists the mail in the order it was queued: ${rows.map((r) => `${r.id}@${Number(r.created_at) - Date.UTC(2026, 10, 1)}`).slice(Math.max(0, outOfOrder - 2), outOfOrder + 2).join(" ")}`);
    const earlier = rows.filter((r) => Number(r.created_at) === Date.UTC(2026, 10, 1) + 207).map((r) => r.id).sort();
    const later = rows.filter((r) => Number(r.created_at) === Date.UTC(2026, 10, 1) + 208).map((r) => r.id).sort();
    assert.ok(earlier.at(-1)! < later[0]!, `${earlier.at(-1)} (queued first) sorts before ${later[0]}`);
  });
});
