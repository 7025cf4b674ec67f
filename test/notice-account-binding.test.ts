// Security notices about an account are bound to it (the outbox's account_id): queued by a containment lever, by the
// HTTP layer or by a role grant, each names its account, so a notice that waits (dead, requeued, or behind a queue) is
// never delivered to an address the account has left since (src/notify/outbox.ts stillGood). Every such caller passes
// the id it holds: the outbox's former fallback looked the account up by address, one scan of the users table per
// notice (a containment over 200,000 accounts never finished: test/contain-crash.test.ts). ASVS 14.2.3, 6.3.7.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { resetNotifierFor } from "../src/contain/service.ts";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows } from "./helpers/auth-flows.ts";

let fx: AuthFixture;
const flows = authFlows(() => fx);
before(async () => {
  fx = await authFixture();
});
after(() => fx.close());

async function noticeRows(to: string): Promise<Array<{ kind: string; account_id: string | null }>> {
  return (await fx.app.db.db.selectFrom("outbox_messages").select(["kind", "account_id"]).where("to_address", "=", to).execute()) as Array<{ kind: string; account_id: string | null }>;
}

it("attack: a containment's notice that waits is not delivered after the account moved to another address — the lever's notice names its account", async () => {
  const user = await flows.signedIn("bound-notice@example.org");
  await fx.app.db.transaction((trx) => resetNotifierFor(fx.app).enqueueNotice!(trx, { id: user.id, email: user.email }, "job_bound", { type: "password-expired" }));
  const rows = await noticeRows(user.email);
  const notice = rows.find((r) => r.kind.includes("password-expired"));
  assert.ok(notice, `no password-expired notice queued: ${JSON.stringify(rows)}`);
  assert.equal(notice.account_id, user.id);
  // The account moves away before the sender reaches the notice: the claim records it dead, never sent.
  await fx.app.db.db.updateTable("users").set({ email: "moved-away@example.org" }).where("id", "=", user.id).execute();
  const claimed = await fx.app.accounts.outbox.claim({ claimer: "test", limit: 100, leaseMs: 60_000 });
  assert.equal(claimed.some((m) => m.to === user.email && m.kind.includes("password-expired")), false, "the notice went to the address the account left");
});

it("every notice the HTTP layer queues about a signed-in account names it (account_id)", async () => {
  const user = await flows.signedIn("bound-http@example.org");
  const rows = await noticeRows(user.email);
  assert.ok(rows.length > 0, "signing in with a new browser queues a notice");
  for (const r of rows) assert.equal(r.account_id, user.id, `${r.kind} queued without its account`);
});
