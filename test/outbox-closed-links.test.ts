// A link mail goes out only while its link still works (Outbox.claim, stillGood; migration 38). Mail carrying a
// single-use link (a reset, a sign-up, a containment, an email-change confirmation) can wait in the outbox: the relay is
// down, a retry is due later, an operator requeues dead mail. Meanwhile its link may stop working before its lifetime:
// its owner used it or another link of the account (which spends the others), a password change spent the account's
// open links, a newer email-change request superseded the older one. Such mail went out all the same, with a link the
// store refuses. Now every link mail records the link it carries (link_id), and the claim asks the link stores, once
// per claim, whether each is still open: one that is not is recorded dead, with the reason, unsent.
// The relay being down is the mail left queued (the fixture's sender runs only on deliver()). Both dialects; the
// statement count on SQLite.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { PRIORITY } from "../src/notify/outbox.ts";
import { authFixtureOn, authFlows, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { statementsDuring } from "./helpers/statements.ts";

const CLOSED = /its link was used or withdrawn .*before it could be sent/;
const NEW_PASSWORD = "copper kettles sing at dawn";

forEachDialect("outbox: a link mail whose link closed is not sent", (dx) => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  before(async () => {
    fx = await authFixtureOn(dx, "outbox-closed-links");
  });
  after(() => fx.close());

  /** The queued (not yet delivered) mail rows to `address` of `kind`, oldest first. */
  async function rowsTo(address: string, kind: string): Promise<Array<{ id: string; status: string; last_error: string | null }>> {
    return fx.app.db.db.selectFrom("outbox_messages").select(["id", "status", "last_error"])
      .where("to_address", "=", address).where("kind", "=", kind).orderBy("created_at").orderBy("id").execute();
  }

  function resetRequest(address: string): Promise<void> {
    return fx.browser().request("POST", "/auth/password/reset/request", { body: { email: address } }).then((r) => assert.equal(r.statusCode, 202, r.body));
  }

  it("attack: a second reset link mail waits while the relay is down and its owner completes the reset with the first link — the waiting mail is recorded dead with the reason, never sent (ASVS 6.4.1) (was: delivered after the relay recovered, its link already spent)", async () => {
    const ana = await fx.user("closed-reset@example.org");
    const first = await flows.resetToken(ana.email); // delivered: the owner has this one
    fx.clock.advance(1000);
    await resetRequest(ana.email); // queued: the relay is down
    const waiting = (await rowsTo(ana.email, "account.password-reset-link")).filter((r) => r.status === "queued");
    assert.equal(waiting.length, 1, "control: the second link mail waits");
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: first, newPassword: NEW_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);
    const before = fx.mailTo(ana.email).filter((m) => RESET_LINK.test(m.body)).length;
    await fx.deliver(); // the relay recovered
    assert.equal(fx.mailTo(ana.email).filter((m) => RESET_LINK.test(m.body)).length, before, "no second link mail was sent");
    const [row] = await rowsTo(ana.email, "account.password-reset-link").then((rows) => rows.filter((r) => r.id === waiting[0]!.id));
    assert.equal(row?.status, "dead");
    assert.match(row?.last_error ?? "", CLOSED);
    assert.doesNotMatch(row?.last_error ?? "", /prt_/, "no secret in the reason");
  });

  it("attack: a password change spends the account's open links while their mails wait (a reset link, an email-change link) — both are recorded dead, the password-changed notice goes (ASVS 6.4.1) (was: both delivered with spent links)", async () => {
    const bob = await flows.signedIn("closed-change@example.org");
    const moved = "closed-change-new@example.org";
    const asked = await bob.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: moved } });
    assert.equal(asked.statusCode, 202, asked.body);
    await resetRequest(bob.email);
    const changed = await bob.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: bob.password, newPassword: NEW_PASSWORD } });
    assert.equal(changed.statusCode, 200, changed.body);
    await fx.deliver();
    assert.equal(fx.mailTo(bob.email).filter((m) => RESET_LINK.test(m.body)).length, 0, "no reset link sent");
    assert.equal(fx.mailTo(moved).filter((m) => EMAIL_LINK.test(m.body)).length, 0, "no email-change link sent");
    for (const [to, kind] of [[bob.email, "account.password-reset-link"], [moved, "account.email-change-link"]] as const) {
      const rows = await rowsTo(to, kind);
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.status, "dead", `${kind} is dead`);
      assert.match(rows[0]!.last_error ?? "", CLOSED);
    }
    // Notices are never judged by a link: the request's and the change's notices both went.
    assert.equal(fx.mailTo(bob.email).filter((m) => /a change of your email address was requested/.test(m.subject)).length, 1);
    assert.equal(fx.mailTo(bob.email).filter((m) => /your password was changed/.test(m.subject)).length, 1);
  });

  it("attack: two email-change requests while the relay is down — only the newer link mail goes out, and its link confirms; the older is recorded dead (ASVS 6.4.1) (was: both delivered, the older one's link superseded)", async () => {
    const cat = await flows.signedIn("closed-twice@example.org");
    const first = "closed-twice-a@example.org";
    const second = "closed-twice-b@example.org";
    for (const newEmail of [first, second]) {
      const r = await cat.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail } });
      assert.equal(r.statusCode, 202, r.body);
      fx.clock.advance(1000);
    }
    await fx.deliver();
    assert.equal(fx.mailTo(first).length, 0, "nothing sent for the superseded request");
    const [older] = await rowsTo(first, "account.email-change-link");
    assert.equal(older?.status, "dead");
    assert.match(older?.last_error ?? "", CLOSED);
    assert.doesNotMatch(older?.last_error ?? "", /ect_/, "no secret in the reason");
    const newer = fx.mailTo(second).filter((m) => EMAIL_LINK.test(m.body));
    assert.equal(newer.length, 1, "the newer link mail is sent");
    // The notices to the old address are never judged by a link: one per request.
    assert.equal(fx.mailTo(cat.email).filter((m) => /a change of your email address was requested/.test(m.subject)).length, 2);
    const token = EMAIL_LINK.exec(newer[0]!.body)![1]!;
    const confirmed = await fx.browser().request("POST", "/auth/email/confirm", { body: { token } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    assert.equal((await fx.app.accounts.users.getById(cat.id))?.email, second);
  });

  it("a link mail whose link is still open is sent, and its link works; requeued after it died at the relay, a closed one dies again at its claim", async () => {
    const dan = await fx.user("closed-open@example.org");
    await resetRequest(dan.email);
    fx.clock.advance(1000);
    await resetRequest(dan.email);
    await fx.deliver();
    const links = fx.mailTo(dan.email).map((m) => RESET_LINK.exec(m.body)?.[1]).filter((t): t is string => t !== undefined);
    assert.equal(links.length, 2, "both open links are sent (a request adds a link beside the open ones)");
    for (const token of links) assert.equal((await fx.app.accounts.passwordReset.check(token)).valid, true);
    // Both died at the relay (recorded dead by hand), then the first link is used: requeued, the second dies again.
    const rows = await rowsTo(dan.email, "account.password-reset-link");
    await fx.app.db.db.updateTable("outbox_messages").set({ status: "dead", last_error: "550 relay refused" }).where("id", "in", rows.map((r) => r.id)).execute();
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: links[0]!, newPassword: NEW_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);
    assert.equal(await fx.app.accounts.outbox.requeueDead(rows.map((r) => r.id)), 2);
    const sent = fx.mailTo(dan.email).length;
    await fx.deliver();
    assert.equal(fx.mailTo(dan.email).filter((m) => RESET_LINK.test(m.body)).length, 2, "no link mail sent again");
    assert.ok(fx.mailTo(dan.email).length >= sent);
    for (const row of await rowsTo(dan.email, "account.password-reset-link")) {
      assert.equal(row.status, "dead");
      assert.match(row.last_error ?? "", CLOSED);
    }
  });

  it("a link id on mail carrying no link is refused, naming the field; a link mail queued without one (a row from before migration 38) is judged as before, and sent", async () => {
    const outbox = fx.app.accounts.outbox;
    await assert.rejects(
      outbox.enqueue({ idempotencyKey: "closed-notice:1", to: "closed-notice@example.org", subject: "Hi", text: "Hello", kind: "security.password-changed", linkId: "prt_aaaaaaaaaaaaaaaaaaaaaaaaaa" }),
      (error: Error) => /linkId is for mail carrying a single-use link/.test(error.message),
    );
    await assert.rejects(
      outbox.enqueue({ idempotencyKey: "closed-empty:1", to: "closed-empty@example.org", subject: "Hi", text: "Hello", kind: "account.password-reset-link", linkId: "" }),
      (error: Error) => /linkId is empty/.test(error.message),
    );
    assert.equal(await outbox.getByKey("closed-notice:1"), null, "nothing stored");
    const old = await outbox.enqueue({ idempotencyKey: "closed-old:1", to: "closed-old@example.org", subject: "Reset", text: `${ORIGIN}/reset-password#token=old`, kind: "account.password-reset-link", priority: PRIORITY.link });
    await fx.deliver();
    assert.equal((await outbox.get(old.id)).status, "sent");
  });

  it("a claim over campaign mail asks nothing more of the link stores; one over link mail asks them once (SQLite: statements)", async (t) => {
    if (fx.app.db.dialect !== "sqlite") {
      t.skip("statement counts are read on SQLite");
      return;
    }
    const outbox = fx.app.accounts.outbox;
    await outbox.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ idempotencyKey: `closed-cmp:${i}`, to: `reader${i}@example.org`, subject: "News", text: "Hello", kind: "campaign.notice", campaignId: "cmp_closed", priority: PRIORITY.campaign })));
    const plain = await statementsDuring(() => outbox.claim({ claimer: "stmt-a", limit: 20, leaseMs: 60_000 }));
    assert.equal(plain.length, 2, `the claim's statements: ${plain.join(" | ")}`);
    assert.equal(plain.filter((s) => /password_reset_tokens|email_change_tokens/.test(s)).length, 0);
    const eve = await fx.user("closed-stmt@example.org");
    await resetRequest(eve.email);
    const withLinks = await statementsDuring(() => outbox.claim({ claimer: "stmt-b", limit: 20, leaseMs: 60_000 }));
    assert.equal(withLinks.filter((s) => /password_reset_tokens/.test(s)).length, 1, `the claim's statements: ${withLinks.join(" | ")}`);
    assert.equal(withLinks.filter((s) => /email_change_tokens/.test(s)).length, 0, "no email-change link in the batch: that store is not asked");
  });
});
