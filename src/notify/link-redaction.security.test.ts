// Single-use links at rest in the outbox, written as attacks that must fail, on SQLite and PostgreSQL. The reset
// and email-change services store only a hash of a link's secret "so a leaked table resets nobody's password",
// but the mail carrying the link is a row too: once delivered it must no longer hold the link, or a read of the
// database (a backup, a replica, a read-only SQL injection) yields a working link for as long as it lives
// (30 minutes; 24 hours for a containment link). ASVS 14.2.7: sensitive data deleted once no longer needed.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { queueResetLink } from "../../test/helpers/reset-link.ts";
import { composeAttemptMail, composeConfirmMail, composeRequestedNotice } from "../accounts/email-change/email-change-mail.ts";
import { composeResetMail, type ResetReason } from "../accounts/password-reset/reset-mail.ts";
import { systemRandom } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { carriesSingleUseLink, DELIVERED_LINK_HTML, DELIVERED_LINK_TEXT, SEALED_BODY_MARKER, SINGLE_USE_LINK_KINDS } from "./link-kinds.ts";
import { PRIORITY, type NewMessage } from "./outbox.ts";
import { securityMessages } from "./security-notices.ts";
import { OutboxSender } from "./sender.ts";
import { notifyFixture, type NotifyFixture } from "./test-setup.ts";
import type { DeliveryOutcome, MailTransport } from "./transport.ts";

const CONTEXT = { publicURL: "https://bulwark.test", serviceName: "Bulwark" };
const TOKEN = /(?:prt|ect)_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}/;
const REASONS: ResetReason[] = ["reset", "register", "containment"];

/** Every mail Bulwark composes that carries a single-use link, one per kind, with a token-shaped secret. */
function linkMails(): NewMessage[] {
  const token = (prefix: string, n: number): string => `${prefix}_${"a".repeat(25)}${"bcdef"[n]}.${"B".repeat(43)}`;
  return [
    ...REASONS.map((reason, i) => ({ idempotencyKey: `link:${reason}`, ...composeResetMail(token("prt", i), { ...CONTEXT, email: `${reason}@example.org` }, reason, 30 * 60_000) })),
    composeConfirmMail("new@example.org", token("ect", 4), CONTEXT, 30 * 60_000, "link:email-change"),
  ];
}

/** Every mail Bulwark composes without a single-use link that a reader could mistake for one. */
function plainMails(): NewMessage[] {
  return [
    composeAttemptMail("taken@example.org", CONTEXT, "plain:attempt"),
    composeRequestedNotice("old@example.org", "new@example.org", { ...CONTEXT, at: 0 }, "plain:requested"),
    ...securityMessages({ eventId: "evt_1", to: "ana@example.org", at: 0, event: { type: "password-changed" } }, { appName: "Bulwark" }),
  ];
}

function sender(f: NotifyFixture, transport: MailTransport): OutboxSender {
  return new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom }, { name: "n" });
}

async function rawBodies(database: Database, id: string): Promise<{ status: string; body_text: string; body_html: string | null }> {
  return database.db.selectFrom("outbox_messages").select(["status", "body_text", "body_html"]).where("id", "=", id).executeTakeFirstOrThrow();
}

forEachDialect("outbox single-use links at rest", (fx) => {
  it("attack: a read of the database after a reset mail was delivered yields no working link (ASVS 14.2.7)", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const { resets } = await queueResetLink(database, f);
    assert.equal((await sender(f, await f.transport()).drain()).sent, 1);

    const rows = await database.db.selectFrom("outbox_messages").select(["status", "body_text", "body_html"]).execute();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.status, "sent");
    assert.doesNotMatch(`${rows[0]?.body_text}\n${rows[0]?.body_html}`, TOKEN, "the sent row still holds the link's secret");
    assert.equal(rows[0]?.body_text, DELIVERED_LINK_TEXT);
    // The owner got the link, and it works: only the copy at rest is gone.
    const delivered = TOKEN.exec(f.server.accepted[0]?.body.replace(/=\r\n/g, "") ?? "")?.[0];
    assert.ok(delivered, "the mail that went out carries the link");
    f.clock.advance(10 * 60_000);
    assert.equal((await resets.check(delivered)).valid, true);
  });

  it("attack: every kind of single-use link mail is emptied once sent, text and HTML alike; other mail keeps its body", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const links = linkMails().map((m, i) => (i === 0 ? { ...m, html: `<p><a href="https://bulwark.test/reset-password#token=${TOKEN.exec(m.text)?.[0]}">reset</a></p>` } : m));
    const ids = [];
    for (const m of links) ids.push((await f.outbox.enqueue(m)).id);
    const plain = plainMails();
    const plainIds = [];
    for (const m of plain) plainIds.push((await f.outbox.enqueue(m)).id);
    assert.equal((await sender(f, await f.transport()).drain()).sent, links.length + plain.length);
    for (const [i, id] of ids.entries()) {
      const row = await rawBodies(database, id);
      assert.equal(row.status, "sent");
      assert.equal(row.body_text, DELIVERED_LINK_TEXT, links[i]?.kind);
      assert.equal(row.body_html, i === 0 ? DELIVERED_LINK_HTML : null, `${links[i]?.kind}: a missing HTML body stays missing`);
    }
    for (const [i, id] of plainIds.entries()) {
      assert.equal((await rawBodies(database, id)).body_text, plain[i]?.text, `${plain[i]?.kind} keeps its body for review`);
    }
  });

  it("attack: a sealed link body altered in the database is never sent, not even garbled: it goes dead, and the rest of the batch is delivered", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const [link] = linkMails();
    const { id } = await f.outbox.enqueue({ ...(link as NewMessage), priority: PRIORITY.security });
    const other = await f.outbox.enqueue((plainMails()[0] as NewMessage));
    const raw = await rawBodies(database, id);
    const flipped = raw.body_text.slice(0, -5) + (raw.body_text.at(-5) === "A" ? "B" : "A") + raw.body_text.slice(-4);
    await database.db.updateTable("outbox_messages").set({ body_text: flipped }).where("id", "=", id).execute();
    const report = await sender(f, await f.transport()).drain();
    assert.equal(report.sent, 1, "the other message went out");
    assert.equal(f.server.accepted.length, 1);
    assert.doesNotMatch(f.server.accepted[0]?.body ?? "", /sealed:|bwk1\./, "no ciphertext was mailed");
    const dead = await rawBodies(database, id);
    assert.equal(dead.status, "dead");
    assert.match((await database.db.selectFrom("outbox_messages").select("last_error").where("id", "=", id).executeTakeFirstOrThrow()).last_error ?? "", /sealed body cannot be opened/);
  });

  // ADR 0020: the keyring binds a sealed body to (outbox_messages, column, id) only; what the body was sealed for (its
  // recipient, kind and subject) is sealed with it, so an intruder who can write the database but not read the key
  // cannot send the owner's link elsewhere, nor under another pretext (ASVS 11.3.3, 6.4.3).
  it("attack: a sealed link mail whose recipient, kind or subject was changed in the database is never sent: it goes dead naming the column, and nothing of it reaches anyone", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const [link] = linkMails();
    const changes = [
      { column: "to_address", set: { to_address: "thief@evil.example" } },
      { column: "kind", set: { kind: "account.email-change-link" } },
      { column: "subject", set: { subject: "Your account was locked: sign in again" } },
    ] as const;
    const ids: string[] = [];
    for (const change of changes) {
      // With an HTML body too: each body is sealed with what it is for.
      const { id } = await f.outbox.enqueue({ ...(link as NewMessage), html: "<p>reset</p>", idempotencyKey: `link:${change.column}`, priority: PRIORITY.security });
      await database.db.updateTable("outbox_messages").set(change.set).where("id", "=", id).execute();
      ids.push(id);
    }
    const other = await f.outbox.enqueue(plainMails()[0] as NewMessage);
    const report = await sender(f, await f.transport()).drain();
    assert.equal(report.dead, changes.length);
    assert.deepEqual(f.server.accepted.map((m) => m.envelopeTo), [[(plainMails()[0] as NewMessage).to]], "only the other message went out");
    assert.equal((await f.outbox.get(other.id)).status, "sent");
    for (const [i, change] of changes.entries()) {
      const row = await database.db.selectFrom("outbox_messages").select(["status", "last_error"]).where("id", "=", ids[i] as string).executeTakeFirstOrThrow();
      assert.equal(row.status, "dead", change.column);
      assert.match(row.last_error ?? "", new RegExp(`its ${change.column} changed since its body_(text|html) was sealed`), change.column);
      assert.doesNotMatch(row.last_error ?? "", /@/, "no address in the recorded reason");
    }
  });

  it("a link body sealed before its recipient was bound (ADR 0020) is not sent: it goes dead saying why, since a changed recipient could not be told", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const link = linkMails()[0] as NewMessage;
    const { id } = await f.outbox.enqueue({ ...link, html: undefined, priority: PRIORITY.security });
    // Sealed the way the outbox sealed before ADR 0020: the body alone, under the same (table, column, id).
    const legacy = `${SEALED_BODY_MARKER}${await f.keyring.seal(link.text, { table: "outbox_messages", column: "body_text", row: id })}`;
    await database.db.updateTable("outbox_messages").set({ body_text: legacy }).where("id", "=", id).execute();
    assert.equal((await sender(f, await f.transport()).drain()).dead, 1);
    assert.equal(f.server.accepted.length, 0);
    const row = await database.db.selectFrom("outbox_messages").select(["status", "last_error"]).where("id", "=", id).executeTakeFirstOrThrow();
    assert.equal(row.status, "dead");
    assert.match(row.last_error ?? "", /sealed before the recipient was bound to it/);
  });

  it("a link mail that failed keeps its body: a retry, and a dead message requeued by an operator, still send the link", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const mail = linkMails()[0] as NewMessage;
    // A link living two days: requeued within its lifetime (a lapsed one dies at its claim, outbox.conformance.test.ts).
    const { id } = await f.outbox.enqueue({ ...mail, priority: PRIORITY.security, linkLifetimeMs: 2 * 24 * 3_600_000 });
    const failing = (permanent: boolean): MailTransport => ({ send: async (): Promise<DeliveryOutcome> => ({ ok: false, permanent, error: "451 try later" }), close: async () => {} });
    assert.equal((await sender(f, failing(false)).runOnce()).retried, 1);
    assert.equal((await f.outbox.get(id)).text, mail.text, "waiting for a retry");
    f.clock.advance(24 * 3_600_000);
    assert.equal((await sender(f, failing(true)).runOnce()).dead, 1);
    assert.equal((await f.outbox.get(id)).text, mail.text, "dead, for an operator to requeue");
    // Kept sealed at rest all along: the row never holds the link in clear (ASVS 14.2.7).
    const raw = await rawBodies(database, id);
    assert.match(raw.body_text, /^sealed:bwk1\./);
    assert.doesNotMatch(raw.body_text, TOKEN);
    assert.equal(await f.outbox.requeueDead([id]), 1);
    assert.equal((await sender(f, await f.transport()).drain()).sent, 1);
    assert.match(f.server.accepted.at(-1)?.body.replace(/=\r\n/g, "") ?? "", TOKEN, "the requeued mail went out with its link");
    assert.equal((await rawBodies(database, id)).body_text, DELIVERED_LINK_TEXT);
  });
});

describe("the list of kinds that carry a single-use link", () => {
  it("names the kind of every link mail Bulwark composes, and of none without a link", () => {
    for (const m of linkMails()) {
      assert.match(m.text, TOKEN, `${m.kind} is expected to carry a link`);
      assert.ok(carriesSingleUseLink(m.kind), `${m.kind} carries a single-use link but is missing from SINGLE_USE_LINK_KINDS (src/notify/link-kinds.ts)`);
    }
    for (const m of plainMails()) assert.equal(carriesSingleUseLink(m.kind), false, m.kind);
  });

  it("names every message kind in the source that speaks of a link (a new link mail cannot be forgotten)", () => {
    // A kind is a quoted `area.name` string; one that mentions a link must be in the list, or the list must say why not.
    const root = join(import.meta.dirname, "..");
    const files = readdirSync(root, { recursive: true, encoding: "utf8" }).filter((p) => p.endsWith(".ts") && !p.endsWith(".test.ts"));
    const found = new Set<string>();
    for (const file of files) {
      for (const m of readFileSync(join(root, file), "utf8").matchAll(/"((?:account|security|campaign)\.[a-z0-9-]*link[a-z0-9-]*)"/g)) found.add(m[1] as string);
    }
    assert.ok(found.size >= 4, `the scan found too few kinds to be working: ${[...found].join(", ")}`);
    for (const kind of found) assert.ok(carriesSingleUseLink(kind), `${kind} (in src) is missing from SINGLE_USE_LINK_KINDS`);
    assert.deepEqual([...SINGLE_USE_LINK_KINDS].sort(), [...found].sort(), "every listed kind is still sent somewhere");
  });
});
