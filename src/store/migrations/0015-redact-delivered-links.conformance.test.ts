// Migration 15 empties the bodies of link mails delivered before the outbox did so itself, on both dialects: a sent
// reset, registration, containment or email-change link mail keeps no link; mail not yet sent (queued, dead) and
// other kinds keep theirs.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { DELIVERED_LINK_HTML, DELIVERED_LINK_TEXT } from "../../notify/link-kinds.ts";
import { Outbox } from "../../notify/outbox.ts";
import { migrate } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 15);
const LINK = "https://bulwark.test/reset-password#token=prt_aaaaaaaaaaaaaaaaaaaaaaaaaa.secret";

forEachDialect("migration 15 (delivered link mails emptied)", (fx) => {
  it("attack: a link delivered before the upgrade cannot be read back from the outbox after it; undelivered mail stays deliverable", async () => {
    const database = await fx.empty();
    const clock = new ManualClock(Date.UTC(2026, 10, 20));
    assert.equal((await migrate(database, clock, BEFORE)).error, undefined);
    const outbox = new Outbox({ database, clock, random: systemRandom });
    const rows: Array<[string, string, string, boolean]> = [
      // name, kind, status, with an HTML body
      ["reset", "account.password-reset-link", "sent", true],
      ["containment", "account.containment-reset-link", "sent", false],
      ["email", "account.email-change-link", "sent", true],
      ["registration", "account.registration-link", "sent", true],
      ["queued", "account.password-reset-link", "queued", true],
      ["dead", "account.containment-reset-link", "dead", true],
      ["notice", "security.password-changed", "sent", true],
    ];
    for (const [name, kind, , html] of rows) {
      await outbox.enqueue({ idempotencyKey: name, to: `${name}@example.org`, subject: name, text: `open ${LINK}`, ...(html ? { html: `<a href="${LINK}">open</a>` } : {}), kind });
    }
    for (const [name, , status] of rows) await database.db.updateTable("outbox_messages").set({ status }).where("idempotency_key", "=", name).execute();

    assert.equal((await migrate(database, clock)).error, undefined);
    const after = new Map((await database.db.selectFrom("outbox_messages").select(["idempotency_key", "body_text", "body_html"]).execute()).map((r) => [r.idempotency_key, r]));
    for (const name of ["reset", "email", "registration"]) {
      assert.deepEqual([after.get(name)?.body_text, after.get(name)?.body_html], [DELIVERED_LINK_TEXT, DELIVERED_LINK_HTML], name);
    }
    assert.deepEqual([after.get("containment")?.body_text, after.get("containment")?.body_html], [DELIVERED_LINK_TEXT, null], "no HTML body is made up");
    for (const name of ["queued", "dead", "notice"]) assert.match(after.get(name)?.body_text ?? "", /prt_/, `${name} keeps its body`);
  });
});
