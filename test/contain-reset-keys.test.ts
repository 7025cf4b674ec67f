// A containment job's reset links are keyed by the user's number in the job (containmentResetKey with seq), so that a
// batch's mail goes into the outbox's key index in order; a batch queues them in multi-row inserts. Jobs begun before
// that queued them under the key without the number. A job that straddles the change must mail each user once, and
// require-mfa-reenrolment, which leaves the job's own link alone (it reads it back by key, in the batch and in the job's
// closing check), must find it under either key: a link it took for someone else's would leave the owner locked out
// with no way back but the reset form.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { containmentResetKey } from "../src/accounts/password-reset/reset-mail.ts";
import { containDeps, createContainJob, runJob, type ResetNotifier } from "../src/contain/index.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const LINK = /#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;

describe("containment reset links across the numbered key", () => {
  const fx = sharedFixture();

  /** The containment mails queued for `userId`: their keys and the links they carry (opened through the outbox). */
  async function mailsOf(userId: string): Promise<Array<{ key: string; link: string | undefined }>> {
    const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["id", "idempotency_key"]).where("account_id", "=", userId).where("kind", "=", "account.containment-reset-link").execute();
    return Promise.all(rows.map(async (r) => ({ key: r.idempotency_key, link: LINK.exec((await fx.app.accounts.outbox.get(r.id)).text)?.[1] })));
  }

  it("attack: a job whose first batch queued its link under the old key and whose second ran today's code mails each user once, and neither require-mfa-reenrolment's batch nor its closing check spends either link (ASVS 6.4.3)", async () => {
    const users = [await fx.user("keys-a@example.org"), await fx.user("keys-b@example.org")];
    for (const u of users) await ensureSecondFactor(fx.app, u.id);
    const today = containDeps(fx.app);
    const real = today.notifier as ResetNotifier;
    // The release before the numbered key: one link at a time, keyed by job and user only.
    const before: ResetNotifier = {
      enqueueReset: (trx, user, jobId) => real.enqueueReset(trx, user, jobId),
      ...(real.enqueueNotice ? { enqueueNotice: real.enqueueNotice } : {}),
      ...(real.enqueueNotices ? { enqueueNotices: real.enqueueNotices } : {}),
    };
    const job = await createContainJob(today, { levers: ["invalidate-passwords", "require-mfa-reenrolment"], scope: { ids: users.map((u) => u.id) }, actor: "t", batchSize: 1 });
    await runJob({ ...today, notifier: before }, job.id, { stopAfterBatches: 1 });
    const seqs = new Map((await fx.app.db.db.selectFrom("contain_job_users").select(["user_id", "seq"]).where("job_id", "=", job.id).execute()).map((r) => [r.user_id, Number(r.seq)]));
    const [early, late] = [...users].sort((x, y) => (seqs.get(x.id) ?? 0) - (seqs.get(y.id) ?? 0)) as [typeof users[number], typeof users[number]];
    assert.deepEqual((await mailsOf(early.id)).map((m) => m.key), [containmentResetKey(job.id, early.id)], "control: the first batch keyed its link the old way");
    fx.clock.advance(60_000);
    const done = await runJob(today, job.id);
    assert.equal(done.status, "done");

    const mails = { early: await mailsOf(early.id), late: await mailsOf(late.id) };
    assert.deepEqual({ early: mails.early.map((m) => m.key), late: mails.late.map((m) => m.key) },
      { early: [containmentResetKey(job.id, early.id)], late: [containmentResetKey(job.id, late.id, seqs.get(late.id))] }, "one mail each, the second under the numbered key");
    for (const [who, [mail]] of Object.entries(mails)) {
      const check = await fx.app.accounts.passwordReset.check(mail?.link);
      assert.equal(check.valid && check.userId, who === "early" ? early.id : late.id, `the ${who} user's containment link still works: ${JSON.stringify(check)}`);
    }
    const counts = done.counts;
    assert.deepEqual([counts["invalidate-passwords.resetEmailsQueued"], counts["require-mfa-reenrolment.resetLinksSpent"], counts["require-mfa-reenrolment.linksLeftOpenSpent"] ?? 0], [2, 0, 0],
      `the job's own links are not counted as spent: ${JSON.stringify(counts)}`);
  });
});
