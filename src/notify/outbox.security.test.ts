// Header injection against the outbox, written as attacks that must fail: CR/LF in an address or a
// subject never reaches an SMTP server, whether it comes through enqueue or a row written behind its back.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { systemRandom } from "../lib/random.ts";
import type { NewMessage } from "./outbox.ts";
import { OutboxSender } from "./sender.ts";
import { notifySecurityEvent } from "./security-notices.ts";
import { notifyFixture } from "./test-setup.ts";

const base: NewMessage = { idempotencyKey: "k1", to: "ana@example.org", subject: "Hello", text: "Body", kind: "test.message" };

const injectedAddresses = [
  "ana@example.org\r\nBcc: eve@evil.test",
  "ana@example.org\nBcc: eve@evil.test",
  "ana@example.org\rBcc: eve@evil.test",
  "ana@example.org, eve@evil.test",
  "Ana <ana@example.org>",
  "ana@example.org\u0000eve@evil.test",
  "ana@example.org\u2028Bcc: eve@evil.test",
  "\"eve\r\n\"@evil.test",
];
const injectedSubjects = ["Hi\r\nBcc: eve@evil.test", "Hi\nContent-Type: text/html", "Hi\r\n\r\n<script>", "Hi\u0085Bcc: eve@evil.test"];

forEachDialect("email outbox header injection", (fx) => {
  it("refuses recipients and subjects that carry a line break, and stores nothing", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    for (const to of injectedAddresses) {
      await assert.rejects(f.outbox.enqueue({ ...base, to }), { code: "BULWARK_ERR_MAIL_ADDRESS" }, JSON.stringify(to));
    }
    for (const subject of injectedSubjects) {
      await assert.rejects(f.outbox.enqueue({ ...base, subject }), { code: "BULWARK_ERR_MAIL_SUBJECT" }, JSON.stringify(subject));
    }
    // In bulk, one hostile entry stops the whole batch before any row is written, and names its position.
    await assert.rejects(f.outbox.enqueueMany([base, { ...base, idempotencyKey: "k2", to: injectedAddresses[0]! }]), /message 1/);
    assert.deepEqual(await f.outbox.counts(), { queued: 0, sending: 0, sent: 0, failed: 0, dead: 0 });
  });

  it("an email-change notice never carries a header smuggled in an address: a bad new address is refused, a bad old one left out", async (t) => {
    const f = await notifyFixture(await fx.fresh());
    t.after(() => f.close());
    await assert.rejects(
      notifySecurityEvent(f.outbox, { eventId: "evt_1", to: "new@example.org", at: 0, event: { type: "email-changed", oldEmail: "old@example.org", newEmail: "new@example.org\r\nBcc: eve@evil.test" } }, { appName: "Example" }),
      { code: "BULWARK_ERR_MAIL_ADDRESS" },
    );
    // An old address the outbox would refuse is not mailed, and its text is not put in the new address's notice.
    const sent = await notifySecurityEvent(f.outbox, { eventId: "evt_2", to: "new@example.org", at: 0, event: { type: "email-changed", oldEmail: "old@example.org\r\nBcc: eve@evil.test", newEmail: "new@example.org" } }, { appName: "Example" });
    assert.equal(sent.length, 1);
    const only = await f.outbox.get(sent[0]!.id);
    assert.equal(only.to, "new@example.org");
    assert.doesNotMatch(`${only.subject}\n${only.text}`, /Bcc|evil/);

    await assert.rejects(
      notifySecurityEvent(f.outbox, { eventId: "evt_1", to: "new@example.org", at: 0, event: { type: "password-changed" } }, { appName: "Example\r\nBcc: eve@evil.test" }),
      { code: "BULWARK_ERR_MAIL_SUBJECT" },
    );
    assert.equal((await f.outbox.counts()).queued, 1, "only the notice to the new address");
  });

  it("does not deliver a row whose subject was tampered with in the database; it marks it dead", async (t) => {
    const db = await fx.fresh();
    const f = await notifyFixture(db);
    t.after(() => f.close());
    const { id } = await f.outbox.enqueue(base);
    // An attacker (or a bug) with write access to the table bypasses enqueue's checks.
    await (db.db).updateTable("outbox_messages").set({ subject: "Hi\r\nBcc: eve@evil.test" }).where("id", "=", id).execute();
    const report = await new OutboxSender({ outbox: f.outbox, transport: await f.transport(), clock: f.clock, random: systemRandom }, { name: "n" }).runOnce();
    assert.equal(report.dead, 1);
    assert.equal(f.server.accepted.length + f.server.refused.length, 0, "nothing reached the SMTP server");
    assert.match((await f.outbox.get(id)).lastError ?? "", /line break/);
  });
});
