// Reset links by mail on SQLite and PostgreSQL: a link issued inside another module's transaction (the
// containment lever invalidate-passwords) commits or rolls back with it, is idempotent per (job, user), and
// the public request path leaves nothing behind for an unknown address.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { Outbox } from "../../notify/outbox.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { MIGRATIONS } from "../../store/migrations/index.ts";
import { createUserStore } from "../users/user-store.ts";
import { CONTAINMENT_LINK_LIFETIME_MS, containmentResetKey, containmentResetKeys, createResetMailer, type ResetMailer } from "./reset-mail.ts";
import { createPasswordResetService, type PasswordResetService } from "./reset-service.ts";

const CONTEXT = { publicURL: "https://bulwark.test", serviceName: "Bulwark" };
const LINK = /https:\/\/bulwark\.test\/reset-password#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;

interface Setup {
  database: Database;
  clock: ManualClock;
  resets: PasswordResetService;
  outbox: Outbox;
  mailer: ResetMailer;
  user: { id: string; email: string };
}

async function setup(database: Database): Promise<Setup> {
  const clock = new ManualClock(Date.UTC(2026, 10, 3, 9));
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  const users = createUserStore({ database, clock, random: systemRandom });
  const created = await users.create({ email: "ana@example.org" });
  const resets = createPasswordResetService({ database, clock, random: systemRandom });
  const outbox = new Outbox({ database, clock, random: systemRandom });
  return { database, clock, resets, outbox, mailer: createResetMailer({ database, resets, outbox, random: systemRandom }), user: { id: created.id, email: created.email } };
}

async function rows(database: Database): Promise<{ tokens: number; messages: number }> {
  const tokens = await database.db.selectFrom("password_reset_tokens").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  const messages = await database.db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  return { tokens: Number(tokens.n), messages: Number(messages.n) };
}

forEachDialect("reset links issued in a caller's transaction", (fx) => {
  it("commits one token and one message with the caller's change; the mailed link works for 24 hours", async () => {
    const { database, clock, resets, outbox, mailer, user } = await setup(await fx.fresh());
    const result = await database.transaction(async (trx) => {
      await trx.updateTable("users").set({ password_invalidated_at: clock.now() }).where("id", "=", user.id).execute();
      return mailer.issueInTransaction(trx, user.id, { ...CONTEXT, email: user.email, reason: "containment", jobId: "job_a" });
    });
    assert.equal(result.queued, true);
    assert.deepEqual(await rows(database), { tokens: 1, messages: 1 });
    const message = await outbox.getByKey(containmentResetKey("job_a", user.id));
    assert.ok(message);
    assert.equal(message.to, "ana@example.org");
    assert.equal(message.kind, "account.containment-reset-link");
    assert.match(message.text, /within 24 hours/);
    const token = LINK.exec(message.text)?.[1];
    assert.ok(token, "the message carries the link");
    const check = await resets.check(token);
    assert.equal(check.valid, true);
    assert.equal(check.valid && check.expiresAt, clock.now() + CONTAINMENT_LINK_LIFETIME_MS);
    assert.ok(!JSON.stringify(await database.db.selectFrom("password_reset_tokens").selectAll().execute()).includes(token.split(".")[1] as string), "only the secret's hash is stored");
  });

  it("rolls back with the caller: neither the token nor the message survives", async () => {
    const { database, mailer, user } = await setup(await fx.fresh());
    await assert.rejects(
      database.transaction(async (trx) => {
        await mailer.issueInTransaction(trx, user.id, { ...CONTEXT, email: user.email, reason: "containment", jobId: "job_b" });
        throw new Error("the batch failed after queuing");
      }),
      /the batch failed/,
    );
    assert.deepEqual(await rows(database), { tokens: 0, messages: 0 });
  });

  it("a resumed batch (same job, same user) queues one message and keeps the first link valid", async () => {
    const { database, resets, outbox, mailer, user } = await setup(await fx.fresh());
    const run = (jobId: string): Promise<unknown> =>
      database.transaction((trx) => mailer.issueInTransaction(trx, user.id, { ...CONTEXT, email: user.email, reason: "containment", jobId }));
    const first = await run("job_c");
    const second = await run("job_c");
    assert.equal((first as { queued: boolean }).queued, true);
    assert.deepEqual(second, { queued: false, reason: "already-queued", messageId: (first as { messageId: string }).messageId });
    assert.deepEqual(await rows(database), { tokens: 1, messages: 1 });
    const token = LINK.exec((await outbox.getByKey(containmentResetKey("job_c", user.id)))?.text ?? "")?.[1];
    assert.equal((await resets.check(token)).valid, true, "the link in the one queued mail is the live one");
    await run("job_d");
    assert.deepEqual(await rows(database), { tokens: 2, messages: 2 }, "another job is another mail");
  });

  it("refuses a containment link without a job id (it could not be made idempotent)", async () => {
    const { database, mailer, user } = await setup(await fx.fresh());
    await assert.rejects(
      database.transaction((trx) => mailer.issueInTransaction(trx, user.id, { ...CONTEXT, email: user.email, reason: "containment", jobId: "" })),
      (error: Error & { code?: string }) => error.code === "BULWARK_ERR_RESET_JOB",
    );
    assert.deepEqual(await rows(database), { tokens: 0, messages: 0 });
  });

  it("a containment batch's links at once: one message per user under its numbered key, and a token row behind each; the links work for 24 hours, each for its own account", async () => {
    const { database, clock, resets, outbox, mailer, user } = await setup(await fx.fresh());
    const users = createUserStore({ database, clock, random: systemRandom });
    const others = [];
    for (let i = 0; i < 3; i++) others.push(await users.create({ email: `batch${i}@example.org` }));
    // Handed over in no particular order; one without a number (as for a job recorded before users were numbered).
    const batch = [{ id: others[0]!.id, email: others[0]!.email, seq: 12 }, { id: user.id, email: user.email, seq: 3 }, { id: others[1]!.id, email: others[1]!.email, seq: 7 }, { id: others[2]!.id, email: others[2]!.email }];
    const result = await database.transaction((trx) => mailer.issueContainmentLinks(trx, batch, { ...CONTEXT, jobId: "job_m" }));
    assert.deepEqual(result, { queued: 4, alreadyQueued: 0 });
    assert.deepEqual(await rows(database), { tokens: 4, messages: 4 });
    for (const u of batch) {
      const key = containmentResetKey("job_m", u.id, u.seq);
      assert.equal(key, u.seq === undefined ? `account.containment-reset:job_m:${u.id}` : `account.containment-reset:job_m.${String(u.seq).padStart(10, "0")}:${u.id}`);
      const message = await outbox.getByKey(key);
      assert.equal(message?.to, u.email, `the mail to ${u.email} is under ${key}`);
      assert.equal(message?.kind, "account.containment-reset-link");
      const token = LINK.exec(message?.text ?? "")?.[1];
      const check = await resets.check(token);
      assert.deepEqual(check.valid && { userId: check.userId, expiresAt: check.expiresAt }, { userId: u.id, expiresAt: clock.now() + CONTAINMENT_LINK_LIFETIME_MS }, "the link resets its own account, for 24 hours");
    }
    // The batch's token ids are time-ordered, made in one millisecond: they share their time part (the first nine
    // characters after the prefix), so the rows go into the primary key side by side.
    const ids = (await database.db.selectFrom("password_reset_tokens").select("id").execute()).map((r) => r.id.slice(4, 13));
    assert.equal(new Set(ids).size, 1, `the ids' time parts: ${ids.join(", ")}`);
  });

  it("a containment batch run again (a resume), whole or in part, queues no second mail and no second token; the first links stay live", async () => {
    const { database, clock, resets, outbox, mailer } = await setup(await fx.fresh());
    const users = createUserStore({ database, clock, random: systemRandom });
    // 1200 users: past the rows per token insert (500) and the keys per read (1000).
    const recipients: Array<{ id: string; email: string; seq: number }> = [];
    for (let i = 0; i < 1200; i++) {
      const created = await users.create({ email: `many${i}@example.org` });
      recipients.push({ id: created.id, email: created.email, seq: i + 1 });
    }
    // Half of them queued first, the odd ones, some one at a time (as a notifier without the batch method does).
    const odd = recipients.filter((u) => u.seq % 2 === 1);
    assert.deepEqual(await database.transaction((trx) => mailer.issueContainmentLinks(trx, odd.slice(10), { ...CONTEXT, jobId: "job_r" })), { queued: odd.length - 10, alreadyQueued: 0 });
    for (const u of odd.slice(0, 10)) await database.transaction((trx) => mailer.issueInTransaction(trx, u.id, { ...CONTEXT, email: u.email, reason: "containment", jobId: "job_r", seq: u.seq }));
    const firstLinks = new Map(await Promise.all(odd.map(async (u) => [u.id, LINK.exec((await outbox.getByKey(containmentResetKey("job_r", u.id, u.seq)))?.text ?? "")?.[1]] as const)));
    // The whole batch again: only the even ones are new.
    const again = await database.transaction((trx) => mailer.issueContainmentLinks(trx, recipients, { ...CONTEXT, jobId: "job_r" }));
    assert.deepEqual(again, { queued: 600, alreadyQueued: 600 });
    assert.deepEqual(await rows(database), { tokens: 1200, messages: 1200 }, "one token row behind each message, no orphan");
    for (const u of odd.slice(0, 20)) assert.equal((await resets.check(firstLinks.get(u.id))).valid, true, "the first link of a user mailed before stays the live one");
    const even = recipients.find((u) => u.seq === 600)!;
    const check = await resets.check(LINK.exec((await outbox.getByKey(containmentResetKey("job_r", even.id, even.seq)))?.text ?? "")?.[1]);
    assert.equal(check.valid && check.userId, even.id, "a user mailed by the second run has a live link of their own");
    assert.deepEqual(await database.transaction((trx) => mailer.issueContainmentLinks(trx, recipients, { ...CONTEXT, jobId: "job_r" })), { queued: 0, alreadyQueued: 1200 });
    assert.deepEqual(await rows(database), { tokens: 1200, messages: 1200 });
  });

  it("a containment batch rolls back with its caller, and refuses a batch without a job id or with a user twice", async () => {
    const { database, mailer, user } = await setup(await fx.fresh());
    await assert.rejects(database.transaction(async (trx) => {
      await mailer.issueContainmentLinks(trx, [{ ...user, seq: 1 }], { ...CONTEXT, jobId: "job_x" });
      throw new Error("the batch failed after queuing");
    }), /the batch failed/);
    assert.deepEqual(await rows(database), { tokens: 0, messages: 0 });
    for (const [jobId, batch] of [["", [{ ...user, seq: 1 }]], ["job_y", [{ ...user, seq: 1 }, { ...user, seq: 2 }]]] as const) {
      await assert.rejects(database.transaction((trx) => mailer.issueContainmentLinks(trx, batch, { ...CONTEXT, jobId })), (error: Error & { code?: string }) => error.code === "BULWARK_ERR_RESET_JOB");
    }
    assert.deepEqual(await rows(database), { tokens: 0, messages: 0 });
    assert.deepEqual(containmentResetKeys("job_z", user.id, 5), [containmentResetKey("job_z", user.id, 5), containmentResetKey("job_z", user.id)], "a reader looks under both keys");
  });

  it("attack: enumeration — a request for no account leaves no row behind and answers with the same outcome type (ASVS 6.3.8)", async () => {
    const { database, mailer, user } = await setup(await fx.fresh());
    assert.equal(await mailer.request(null, CONTEXT, "reset"), "no-account");
    assert.deepEqual(await rows(database), { tokens: 0, messages: 0 }, "the throw-away message is gone");
    assert.equal(await mailer.request(user, CONTEXT, "reset"), "queued");
    assert.deepEqual(await rows(database), { tokens: 1, messages: 1 });
    assert.equal(await mailer.request(user, CONTEXT, "reset"), "queued");
    assert.equal(await mailer.request(user, CONTEXT, "reset"), "queued");
    assert.equal(await mailer.request(user, CONTEXT, "reset"), "rate-limited", "the hourly limit still applies");
    assert.deepEqual(await rows(database), { tokens: 3, messages: 3 });
    const kinds = await database.db.selectFrom("outbox_messages").select(["to_address", "kind"]).execute();
    assert.ok(kinds.every((m) => m.to_address === "ana@example.org" && m.kind === "account.password-reset-link"));
  });

  it("attack: ten requests at once for one account mail three links, the hourly limit (no mail cannon)", async () => {
    const { database, mailer, user } = await setup(await fx.fresh());
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => mailer.request(user, CONTEXT, "reset")));
    assert.equal(outcomes.filter((o) => o === "queued").length, 3, JSON.stringify(outcomes));
    assert.deepEqual(await rows(database), { tokens: 3, messages: 3 });
  });
});
