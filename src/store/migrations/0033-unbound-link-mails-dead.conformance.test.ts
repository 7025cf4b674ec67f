// Migration 33 on a store with mail waiting, on both dialects: the link mails sealed by the previous release (no
// recipient binding, ADR 0020) and still waiting are dead at once, with the reason `bulwark outbox status` prints; mail
// in flight, sent, already dead, sealed by nobody or of another kind stays as it was; and the code of the previous
// release refuses the migrated store.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { Outbox } from "../../notify/outbox.ts";
import { BulwarkError } from "../../lib/errors.ts";
import { migrate, migrationStatus } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 33);
// Up to this release only: later migrations (34 on) are not this test's, and would be listed as applied with it.
const THROUGH = MIGRATIONS.filter((m) => m.version <= 33);
const NOW = Date.UTC(2026, 11, 10, 12);
const REASON = "sealed before the recipient was bound to it (ADR 0020): ask for a new link";
// What the previous release stored: the marker, then a keyring ciphertext (never opened here: a migration has no key).
const SEALED = "sealed:v1.AAAAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

forEachDialect("migration 33 (unbound link mails dead)", (fx) => {
  it("marks dead, with the reason, every waiting link mail the previous release sealed, and nothing else; the previous release's code refuses the store", async () => {
    const database = await fx.empty();
    const clock = new ManualClock(NOW);
    assert.equal((await migrate(database, clock, BEFORE)).error, undefined);
    const outbox = new Outbox({ database, clock, random: systemRandom });
    const rows: Array<[name: string, kind: string, status: string, body: string]> = [
      ["reset-queued", "account.password-reset-link", "queued", SEALED],
      ["containment-retrying", "account.containment-reset-link", "failed", SEALED],
      ["email-queued", "account.email-change-link", "queued", SEALED],
      ["registration-queued", "account.registration-link", "queued", SEALED],
      // Claimed by a sender of the previous release, which may be delivering it now: its sender's to settle.
      ["reset-sending", "account.password-reset-link", "sending", SEALED],
      ["reset-sent", "account.password-reset-link", "sent", "The content of this message was removed after delivery because it held a single-use link."],
      ["reset-dead", "account.password-reset-link", "dead", SEALED],
      // Stored in clear by a node without a keyring (tests, early setups): nothing sealed, nothing unbound.
      ["reset-clear", "account.password-reset-link", "queued", "open https://bulwark.test/reset-password#token=prt_x.y"],
      // The prefix compared exactly: a clear body that only looks like it in another case is not one.
      ["reset-clear-upper", "account.password-reset-link", "queued", "SEALED: your account, open https://bulwark.test/"],
      // Not a link kind: the outbox never seals it, whatever its text says.
      ["notice", "security.password-changed", "queued", "sealed: nothing, this is a notice"],
    ];
    for (const [name, kind, status, body] of rows) {
      const { id } = await outbox.enqueue({ idempotencyKey: name, to: `${name}@example.org`, subject: name, text: "placeholder", html: "<p>placeholder</p>", kind });
      const claimed = status === "sending" ? { claimed_by: "old-node:1", claimed_until: NOW + 60_000 } : {};
      const html = body.startsWith("sealed:") ? `${body}.html` : `<p>${body}</p>`;
      await database.db.updateTable("outbox_messages").set({ status, body_text: body, body_html: html, ...claimed }).where("id", "=", id).execute();
    }
    const before = new Map((await database.db.selectFrom("outbox_messages").selectAll().execute()).map((r) => [r.idempotency_key, r]));

    assert.deepEqual((await migrate(database, clock, THROUGH)).results.map((r) => [r.version, r.status]), [[33, "applied"]]);
    const after = new Map((await database.db.selectFrom("outbox_messages").selectAll().execute()).map((r) => [r.idempotency_key, r]));
    const killed = ["reset-queued", "containment-retrying", "email-queued", "registration-queued"];
    for (const name of killed) {
      const row = after.get(name);
      assert.deepEqual([row?.status, row?.last_error, row?.claimed_by], ["dead", REASON, null], name);
      // Only the status and the reason: the body stays as sealed (a migration never opens one), the rest as it was.
      assert.deepEqual({ ...row, status: "dead", last_error: null }, { ...before.get(name), status: "dead", last_error: null }, `${name}: nothing else changed`);
    }
    for (const [name] of rows.filter(([n]) => !killed.includes(n))) assert.deepEqual(after.get(name), before.get(name), `${name} is left as it was`);

    // What `bulwark outbox status` reads: the dead mail and its reason, listed now rather than when a sender claims it.
    const dead = await outbox.listDead();
    assert.deepEqual(dead.filter((m) => m.lastError === REASON).map((m) => m.idempotencyKey).sort(), [...killed].sort());
    assert.equal((await outbox.counts()).dead, killed.length + 1, "with the one already dead");
    // A sender claims none of them: only the mail that was not sealed by the previous release goes out.
    const claimed = await outbox.claim({ claimer: "new-node:1", limit: 50, leaseMs: 60_000 });
    assert.deepEqual(claimed.map((m) => m.idempotencyKey).sort(), ["notice", "reset-clear", "reset-clear-upper"]);

    // The code of the previous release (migrations 1 to 32) refuses to run against the migrated store.
    await assert.rejects(migrationStatus(database, BEFORE), (error: unknown) => error instanceof BulwarkError && error.code === "BULWARK_ERR_DB_NEWER" && /schema version 33/.test(error.message));
  });
});
