// A link mail's origin is BULWARK_PUBLIC_URL as configured when the mail is sent, written as attacks that must fail: a
// reset link queued before the operator corrected the URL (the relay was down) must not go out to the origin they left.
// Both dialects; link bodies sealed as the server seals them.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { systemRandom } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { PUBLIC_URL_SLOT, SEALED_BODY_MARKER } from "./link-kinds.ts";
import { Outbox, PRIORITY, type NewMessage } from "./outbox.ts";
import { OutboxSender } from "./sender.ts";
import { decodeQuotedPrintable } from "./smtp-test-server.ts";
import { notifyFixture, type NotifyFixture } from "./test-setup.ts";

const OLD = "https://acounts.example.org"; // the typo the operator corrected
const NEW = "https://accounts.example.org";
const TOKEN = `prt_${"a".repeat(26)}.${"B".repeat(43)}`;

function resetMail(origin: string, key = "account.reset:1"): NewMessage {
  return {
    idempotencyKey: key, to: "ana@example.org", subject: "Example: reset your password", kind: "account.password-reset-link", priority: PRIORITY.link,
    text: `Hello,\n\nOpen this link within 30 minutes to choose a new password; it works once:\n\n${origin}/reset-password#token=${TOKEN}\n`,
  };
}

/** An outbox of a process configured with `publicURL` (none: one that predates this rule), sealing as the server does. */
function outboxOf(f: NotifyFixture, database: Database, publicURL?: string): Outbox {
  return new Outbox({ database, clock: f.clock, random: systemRandom, linkCipher: f.keyring, ...(publicURL === undefined ? {} : { publicURL }) });
}

function recordingLogger(): { warn(obj: object, msg: string): void; lines: Array<{ obj: Record<string, unknown>; msg: string }> } {
  const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  return { lines, warn: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg }) };
}

forEachDialect("link mails take the public URL configured when they are sent", (fx) => {
  it("attack: a reset link queued under a mistyped BULWARK_PUBLIC_URL is sent after the operator corrected it — it points at the corrected origin, and the stored body names none (ASVS 13.2.4)", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const { id } = await outboxOf(f, db, OLD).enqueue(resetMail(OLD));
    const row = await db.db.selectFrom("outbox_messages").select("body_text").where("id", "=", id).executeTakeFirstOrThrow();
    assert.ok(row.body_text.startsWith(SEALED_BODY_MARKER), "still sealed at rest");
    const plain = await f.keyring.unsealString(row.body_text.slice(SEALED_BODY_MARKER.length), { table: "outbox_messages", column: "body_text", row: id });
    assert.ok(plain.includes(`${PUBLIC_URL_SLOT}/reset-password#token=${TOKEN}`) && !plain.includes(OLD), "the stored link has no origin of its own");

    // The restart: the same database, the corrected URL.
    const report = await new OutboxSender({ outbox: outboxOf(f, db, NEW), transport: await f.transport(), clock: f.clock, random: systemRandom }, { name: "n" }).runOnce();
    assert.equal(report.sent, 1);
    const body = decodeQuotedPrintable(f.server.accepted[0]!.body);
    assert.ok(body.includes(`${NEW}/reset-password#token=${TOKEN}`), body);
    assert.ok(!body.includes(OLD) && !body.includes(PUBLIC_URL_SLOT), body);
  });

  it("attack: a link mail stored with another origin in it (queued before this rule, or by a process with another public URL) is not sent: dead, the origin and the way out named, logged (ASVS 13.2.4)", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const legacy = outboxOf(f, db);
    const { id } = await legacy.enqueue(resetMail(OLD));
    // Control: one on the origin configured now still goes out.
    const { id: current } = await legacy.enqueue(resetMail(NEW, "account.reset:2"));
    const logger = recordingLogger();
    const outbox = outboxOf(f, db, NEW);
    const report = await new OutboxSender({ outbox, transport: await f.transport(), clock: f.clock, random: systemRandom, logger }, { name: "n" }).runOnce();
    assert.deepEqual([report.sent, report.dead], [1, 1]);
    assert.equal(f.server.accepted.length, 1);
    assert.ok(decodeQuotedPrintable(f.server.accepted[0]!.body).includes(`${NEW}/reset-password#token=`), "the control went out");
    assert.ok(f.server.accepted.every((m) => !decodeQuotedPrintable(m.body).includes(OLD)), "nothing reached the relay with the old origin");
    const dead = await db.db.selectFrom("outbox_messages").select(["status", "last_error"]).where("id", "=", id).executeTakeFirstOrThrow();
    assert.equal(dead.status, "dead");
    assert.match(dead.last_error ?? "", new RegExp(`${OLD.replaceAll(".", "\\.")}.*BULWARK_PUBLIC_URL.*new link`));
    assert.ok(!(dead.last_error ?? "").includes(TOKEN), "the error holds no token");
    assert.equal((await outbox.get(current)).status, "sent");
    const line = logger.lines.find((l) => l.obj["messageId"] === id);
    assert.ok(line !== undefined && /BULWARK_PUBLIC_URL/.test(String(line.obj["lastError"])), JSON.stringify(logger.lines));
  });

  it("leaves mail that carries no single-use link as it was composed", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const text = `Your password was changed. Help: ${OLD}/help\n`;
    const { id } = await outboxOf(f, db, NEW).enqueue({ idempotencyKey: "notice:1", to: "ana@example.org", subject: "Password changed", text, kind: "security.password-changed", priority: PRIORITY.security });
    assert.equal((await outboxOf(f, db, NEW).get(id)).text, text);
  });

  it("refuses a public URL that is not an origin, which no link would match", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    for (const publicURL of [`${NEW}/`, `${NEW}/base`, "accounts.example.org", "HTTPS://accounts.example.org"]) {
      assert.throws(() => outboxOf(f, db, publicURL), { code: "BULWARK_ERR_MAIL_CONFIG" }, publicURL);
    }
  });
});
