// A link mail that a newer link mail of its account replaced is not sent (Outbox.claim, stillGood; migration 37). A
// containment run spends every open link of an account's reset table (reset, sign-up and containment links) in the
// transaction that queues the account's containment link (invalidate-passwords, spendOpenLinks). While the relay is down
// the older mails wait in the outbox; when it recovers (or the operator runs requeue-dead) they went out too, each with a
// link the store refuses ("this link has expired or was used"). Only the containment link replaces: a reset or sign-up
// request adds a link beside the open ones, each working until one is used, so their mails are all sent.
// Both dialects; the statement count and the query plan on SQLite.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { Kysely } from "kysely";
import { forEachDialect } from "./helpers/dialects.ts";
import { statementsDuring } from "./helpers/statements.ts";
import { createPasswordResetService, createResetMailer, spendResetLinks, type ResetReason } from "../src/accounts/password-reset/index.ts";
import { notifyFixture, type NotifyFixture } from "../src/notify/test-setup.ts";
import { PRIORITY, type NewMessage, type OutboxMessage } from "../src/notify/outbox.ts";
import { systemRandom } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import type { Schema } from "../src/store/schema.ts";

const PUBLIC_URL = "https://bulwark.example";
const TOKEN = /#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
const REPLACED = /a newer link mail for its account replaced it/;

async function setup(database: Database): Promise<{ f: NotifyFixture; issue: (userId: string, reason: ResetReason, jobId?: string) => Promise<string>; resets: ReturnType<typeof createPasswordResetService> }> {
  const f = await notifyFixture(database);
  const now = f.clock.now();
  for (const name of ["ana", "bob"]) {
    await database.db.insertInto("users").values({
      id: `usr_${name}`, email: `${name}@example.org`, email_key: `${name}@example.org`, status: "active", password_must_change: 0, created_at: now, updated_at: now, seeded: 0,
    } as never).execute();
  }
  const resets = createPasswordResetService({ database, clock: f.clock, random: systemRandom });
  const mailer = createResetMailer({ database, resets, outbox: f.outbox, random: systemRandom });
  /** Queues one link mail for `userId`, as its service does; a containment first spends the open links, as its lever does. Returns the message id. */
  const issue = async (userId: string, reason: ResetReason, jobId = "job_1"): Promise<string> => {
    const context = { email: `${userId.slice(4)}@example.org`, publicURL: PUBLIC_URL, serviceName: "Bulwark" };
    const out = await database.transaction(async (trx) => {
      if (reason === "containment") await spendResetLinks(trx as Kysely<Schema>, userId, f.clock.now());
      return mailer.issueInTransaction(trx, userId, reason === "containment" ? { ...context, reason, jobId } : { ...context, reason });
    });
    assert.ok(out.queued);
    f.clock.advance(1000);
    return out.messageId;
  };
  return { f, issue, resets };
}

async function claimAll(f: NotifyFixture, claimer: string): Promise<{ handed: OutboxMessage[]; dead: string[] }> {
  const dead: string[] = [];
  const handed = await f.outbox.claim({ claimer, limit: 50, leaseMs: 60_000, onSetAside: (m) => { if (m.dead) dead.push(m.id); } });
  return { handed, dead };
}

forEachDialect("outbox: link mails a newer one replaced", (fx) => {
  it("attack: a reset link asked before two containment runs, all three mails queued while the relay is down — only the newest containment link mail goes out when it recovers, and its link works; the others are recorded dead, saying a newer link replaced them (ASVS 6.4.1) (was: all three delivered, two with links the store refuses)", async (t) => {
    const { f, issue, resets } = await setup(await fx.fresh());
    t.after(() => f.close());
    const asked = await issue("usr_ana", "reset");
    const first = await issue("usr_ana", "containment", "job_1");
    const second = await issue("usr_ana", "containment", "job_2");
    const { handed, dead } = await claimAll(f, "node-a");
    assert.deepEqual(handed.map((m) => m.id), [second], "only the newest link mail is handed out");
    assert.deepEqual(dead.sort(), [asked, first].sort());
    for (const id of [asked, first]) {
      const row = await f.outbox.get(id);
      assert.equal(row.status, "dead");
      assert.match(row.lastError ?? "", REPLACED);
      assert.doesNotMatch(row.lastError ?? "", /prt_/, "no secret in the reason");
    }
    const token = TOKEN.exec(handed[0]!.text)?.[1];
    assert.ok(token);
    assert.equal((await resets.check(token)).valid, true, "the link of the mail that goes out works");
  });

  it("attack: the same mails died at the relay and the operator requeues them (requeue-dead) — the older ones die again at their claim with the reason, only the newest goes out (ASVS 6.4.1) (was: requeued and delivered, two with links the store refuses)", async (t) => {
    const database = await fx.fresh();
    const { f, issue, resets } = await setup(database);
    t.after(() => f.close());
    const ids = [await issue("usr_ana", "reset"), await issue("usr_ana", "containment", "job_1"), await issue("usr_ana", "containment", "job_2")];
    await database.db.updateTable("outbox_messages").set({ status: "dead", last_error: "550 relay refused" }).where("id", "in", ids).execute();
    assert.equal(await f.outbox.requeueDead(ids), 3, "requeue counts what it put back; the claim says what it then refused");
    const { handed, dead } = await claimAll(f, "node-a");
    assert.deepEqual(handed.map((m) => m.id), [ids[2]]);
    assert.deepEqual(dead.sort(), ids.slice(0, 2).sort());
    for (const id of ids.slice(0, 2)) assert.match((await f.outbox.get(id)).lastError ?? "", REPLACED);
    assert.equal((await resets.check(TOKEN.exec(handed[0]!.text)![1]!)).valid, true);
    // Requeued again, the replaced ones die again; nothing else is handed out.
    assert.equal(await f.outbox.requeueDead(ids.slice(0, 2)), 2);
    const again = await claimAll(f, "node-b");
    assert.deepEqual(again.handed, []);
    assert.deepEqual(again.dead.sort(), ids.slice(0, 2).sort());
  });

  it("a newer link mail of another kind that replaces nothing, or of another account, leaves a link mail alone: three reset requests are all sent, each link working", async (t) => {
    const { f, issue, resets } = await setup(await fx.fresh());
    t.after(() => f.close());
    const contained = await issue("usr_ana", "containment", "job_1");
    const resetsAsked = [await issue("usr_ana", "reset"), await issue("usr_ana", "reset"), await issue("usr_ana", "register")];
    const bobs = await issue("usr_bob", "containment", "job_2");
    const { handed, dead } = await claimAll(f, "node-a");
    assert.deepEqual(dead, []);
    assert.deepEqual(handed.map((m) => m.id).sort(), [contained, ...resetsAsked, bobs].sort());
    for (const m of handed) assert.equal((await resets.check(TOKEN.exec(m.text)![1]!)).valid, true, `${m.kind} ${m.id} works`);
  });

  it("a notice about the account (no link) queued before a containment link is never replaced", async (t) => {
    const { f, issue } = await setup(await fx.fresh());
    t.after(() => f.close());
    const notice = await f.outbox.enqueue({ idempotencyKey: "security.password-changed:evt_1:ana@example.org", to: "ana@example.org", subject: "Your password was changed", text: "Hello", kind: "security.password-changed", priority: PRIORITY.security, accountId: "usr_ana" });
    f.clock.advance(1000);
    const link = await issue("usr_ana", "containment", "job_1");
    const { handed, dead } = await claimAll(f, "node-a");
    assert.deepEqual(dead, []);
    assert.deepEqual(handed.map((m) => m.id).sort(), [notice.id, link].sort());
  });

  // Migration 39: the index held every mail about an account, so each of a containment's notices (one per user per
  // lever) went into it at a random place for no query; only the replacing mail is read from it.
  it("the index the claim reads holds the containment reset links only: notices about the same accounts, other link mail and a campaign are not in it (SQLite: its cells counted)", async (t) => {
    const database = await fx.fresh();
    const { f, issue } = await setup(database);
    t.after(() => f.close());
    if (database.dialect !== "sqlite") {
      t.skip("an index's entries are counted on SQLite (dbstat)");
      return;
    }
    const notices: NewMessage[] = Array.from({ length: 40 }, (_, i) => ({ idempotencyKey: `security.password-changed:evt_${i}:ana@example.org`, to: "ana@example.org", subject: "Your password was changed", text: "Hello", kind: "security.password-changed", priority: PRIORITY.security, accountId: i % 2 ? "usr_ana" : "usr_bob" }));
    await f.outbox.enqueueMany(notices);
    await f.outbox.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ idempotencyKey: `cmp:${i}`, to: `user${i}@example.org`, subject: "Notice", text: "Hello", kind: "campaign.notice", campaignId: "cmp_1", priority: PRIORITY.campaign })));
    await issue("usr_ana", "reset");
    await issue("usr_ana", "containment", "job_1");
    await issue("usr_bob", "containment", "job_2");
    const sqlite = database.sqlite!;
    const indexes = (sqlite.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox_messages'`).all() as Array<{ name: string }>).map((r) => r.name);
    assert.ok(!indexes.includes("outbox_messages_by_account"), `migration 37's index is gone: ${indexes.join(", ")}`);
    const [cells] = sqlite.prepare(`SELECT sum(ncell) AS n FROM dbstat WHERE name = 'outbox_messages_replacing' AND pagetype = 'leaf'`).all() as Array<{ n: number }>;
    assert.equal(cells?.n, 2, "one entry per containment reset link, none for the 40 notices, the reset link or the campaign");
  });

  it("a claim over a 10,000-message campaign asks nothing more; with link mails it asks once, on the index of replacing mail (SQLite: statements and plan)", async (t) => {
    const database = await fx.fresh();
    const { f, issue } = await setup(database);
    t.after(() => f.close());
    if (database.dialect !== "sqlite") {
      t.skip("statement counts and EXPLAIN QUERY PLAN are read on SQLite");
      return;
    }
    const campaign: NewMessage[] = Array.from({ length: 10_000 }, (_, i) => ({ idempotencyKey: `cmp:${i}`, to: `user${i}@example.org`, subject: "Notice", text: "Hello", kind: "campaign.notice", campaignId: "cmp_1", priority: PRIORITY.campaign }));
    await f.outbox.enqueueMany(campaign);
    const asksReplaced = (q: string): boolean => q.includes("max(") && q.includes("account_id");
    const plain = await statementsDuring(() => f.outbox.claim({ claimer: "node-a", limit: 100, leaseMs: 60_000 }));
    assert.deepEqual(plain.filter(asksReplaced), [], "a batch without link mails asks nothing");
    assert.equal(plain.length, 2, `the claim's statements: ${plain.join(" | ")}`);
    await issue("usr_ana", "reset");
    await issue("usr_ana", "containment", "job_1");
    await issue("usr_bob", "containment", "job_2");
    const withLinks = await statementsDuring(() => f.outbox.claim({ claimer: "node-b", limit: 100, leaseMs: 60_000 }));
    const asked = withLinks.filter(asksReplaced);
    assert.equal(asked.length, 1, "one read for every account of the batch");
    const sqlite = database.sqlite!;
    const plan = sqlite.prepare(`EXPLAIN QUERY PLAN ${asked[0]}`).all("usr_ana", "usr_bob") as Array<{ detail: string }>;
    assert.ok(plan.some((p) => /outbox_messages_replacing/.test(p.detail)), plan.map((p) => p.detail).join(" / "));
    assert.ok(!plan.some((p) => /^SCAN outbox_messages\b/.test(p.detail)), plan.map((p) => p.detail).join(" / "));
  });
});
