// Red-team round "docs claims, thirty-six": what the docs changed since 7d0de57 promise an operator or a security
// reviewer, each taken as a claim and checked against the real code (library calls, the CLI in process, HTTP through
// the server). Sources: docs/containment.md (notice keys in the job's order, a re-run queues nothing, countAll checked
// by the step), ADR 0005's amendment (revoke-tokens in one step for --all; notices keyed `kind:job.<seq>.user:…`),
// docs/http-auth.md "Reset links for containment" (the numbered key, the un-numbered one of set-email, a batch queued
// at once with time-ordered token ids, no second message or token for a batch run again, 24-hour links outside the
// hourly limit, the reset clears password_invalidated_at) and the webauthn/options row (a disabled account's link is
// refused like an invalid one, unspent), ADR 0002 and ADR 0004 (time-ordered ids in byte order, across the "z" → "2"
// step; the Message-ID; the narrowed partial index of migration 39; PostgreSQL's unnest insert storing what enqueue
// stores), docs/checks.md (check downloads: which checksum files need --dir), docs/api.md and
// docs/password-migration.md (display names whose first visible character joins the one before it).
// Benchmark timings are not claims checked here.
// Held: every claim but one. Found, and fixed: revoke-sessions' --all step trusted the count made before it when the
// number of rows it deletes matched, so a write in between that removes one row and adds another (a sign-out, and a
// session dated before the job by a node whose clock is behind, for a user who had none) left the job reporting the
// users counted, not those whose sessions it ended (ADR 0005's amendment; docs/containment.md, "countAll");
// revoke-tokens' step likewise. Both now compare the rows' fingerprint too (ROWS_FINGERPRINT, src/contain/levers/common.ts).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import { CONTAINMENT_LINK_LIFETIME_MS, containmentResetKey } from "../src/accounts/password-reset/reset-mail.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { revokeSessions, revokeTokens } from "../src/contain/levers/index.ts";
import { notifyFixture } from "../src/notify/test-setup.ts";
import type { NewMessage } from "../src/notify/outbox.ts";
import { authFlows, RESET_LINK } from "./helpers/auth-flows.ts";
import { bulwark, bulwarkInProcess, initSite } from "./helpers/cli.ts";
import { spyOn } from "./helpers/compiled-queries.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { scratchRoot } from "./helpers/scratch.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";
import { statementsDuring } from "./helpers/statements.ts";

const HOUR = 3_600_000;
/** base32's characters in byte order (src/crypto/tokens.ts SORTED32), as ADR 0002's amendment describes them. */
const SORTED32 = "234567abcdefghijklmnopqrstuvwxyz";
const seq10 = (n: number | string): string => String(n).padStart(10, "0");

/** The 48-bit millisecond time a time-ordered id (`pfx_` + 26 characters of SORTED32) carries in its first bits. */
function timeOf(id: string): number {
  const body = id.slice(id.indexOf("_") + 1);
  let bits = "";
  for (const c of body) {
    const v = SORTED32.indexOf(c);
    assert.ok(v >= 0, `${id}: ${c} is not one of base32's characters`);
    bits += v.toString(2).padStart(5, "0");
  }
  return parseInt(bits.slice(0, 48), 2);
}

/** Byte order, as SQLite and PostgreSQL's C collation compare ids. */
const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe("red team, docs claims thirty-six: containment's keys, links and steps; ordered ids; display names", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);
  let made = 0;
  const mailsOf = (userId: string, kind: string) => fx.app.db.db.selectFrom("outbox_messages").select(["id", "idempotency_key", "created_at", "link_id"])
    .where("account_id", "=", userId).where("kind", "=", kind).execute();
  const seqsOf = async (jobId: string): Promise<Map<string, number>> =>
    new Map((await fx.app.db.db.selectFrom("contain_job_users").select(["user_id", "seq"]).where("job_id", "=", jobId).execute()).map((r) => [r.user_id, Number(r.seq)]));

  it("docs/containment.md + ADR 0005: a batch's security notices are keyed `security.<kind>:<job>.<ten-digit seq>.<user>[.<factor>]:…`, the mail quotes that reference, and a job stopped after its first batch and resumed mails each user once per notice", async () => {
    const users: Array<{ id: string; email: string; password: string }> = [];
    for (let i = 0; i < 3; i++) {
      const u = await fx.user(`notice-keys-${++made}@example.org`);
      await ensureSecondFactor(fx.app, u.id);
      users.push(u);
    }
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["expire-passwords", "require-mfa-reenrolment"], scope: { ids: users.map((u) => u.id) }, actor: "responder", batchSize: 2 });
    await runJob(deps, job.id, { stopAfterBatches: 1 });
    fx.clock.advance(1000);
    const done = await runJob(deps, job.id);
    assert.equal(done.status, "done");
    const seqs = await seqsOf(job.id);
    for (const u of users) {
      const seq = seqs.get(u.id);
      assert.ok(seq !== undefined && seq >= 1);
      const expired = await mailsOf(u.id, "security.password-expired");
      assert.equal(expired.length, 1, `one password-expired notice for ${u.email}: ${JSON.stringify(expired)}`);
      const reference = `${job.id}.${seq10(seq)}.${u.id}`;
      assert.ok(expired[0]!.idempotency_key.startsWith(`security.password-expired:${reference}:`), expired[0]!.idempotency_key);
      assert.match((await fx.app.accounts.outbox.get(expired[0]!.id)).text, new RegExp(reference.replace(/\./g, "\\.")), "the mail quotes the reference job_….0000000042.usr_…");
      const removed = await fx.app.db.db.selectFrom("outbox_messages").select("idempotency_key").where("account_id", "=", u.id).where("kind", "like", "security.mfa%").execute();
      assert.equal(removed.length, 1, `one factor-removed notice for ${u.email}: ${JSON.stringify(removed)}`);
      assert.ok(removed[0]!.idempotency_key.includes(`:${reference}.totp:`), `the factor follows the user id: ${removed[0]!.idempotency_key}`);
    }
  });

  it("docs/containment.md: a re-run of require-mfa-reenrolment and expire-passwords over the same accounts deletes nothing and queues nothing", async () => {
    const users: Array<{ id: string; email: string; password: string }> = [];
    for (let i = 0; i < 2; i++) {
      const u = await fx.user(`rerun-${++made}@example.org`);
      await ensureSecondFactor(fx.app, u.id);
      users.push(u);
    }
    const deps = containDeps(fx.app);
    const spec = { levers: ["expire-passwords", "require-mfa-reenrolment"], scope: { ids: users.map((u) => u.id) }, actor: "responder" };
    const first = await runJob(deps, (await createContainJob(deps, spec)).id);
    assert.equal(first.status, "done");
    const count = async (): Promise<number> => Number((await fx.app.db.db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n")).where("account_id", "in", users.map((u) => u.id)).executeTakeFirstOrThrow()).n);
    const queued = await count();
    assert.ok(queued >= 4, `control: the first run queued the notices (${queued})`);
    fx.clock.advance(60_000);
    const again = await runJob(deps, (await createContainJob(deps, spec)).id);
    assert.equal(again.status, "done");
    const counts = again.counts as Record<string, number>;
    assert.equal(await count(), queued, `the re-run queued ${await count() - queued} more mail(s): ${JSON.stringify(counts)}`);
    for (const [k, v] of Object.entries(counts)) if (/noticesQueued|factorsRemoved|totp|webauthn|recovery/i.test(k)) assert.equal(v, 0, `${k} = ${v} on the re-run: ${JSON.stringify(counts)}`);
  });

  it("docs/http-auth.md: invalidate-passwords keys each link `account.containment-reset:<job>.<ten-digit seq>:<user>`; a job stopped and resumed mails each user one 24-hour link, one token row behind it, and the link works", async () => {
    const users: Array<{ id: string; email: string; password: string }> = [];
    for (let i = 0; i < 3; i++) users.push(await fx.user(`reset-keys-${++made}@example.org`));
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: users.map((u) => u.id) }, actor: "responder", batchSize: 2 });
    await runJob(deps, job.id, { stopAfterBatches: 1 });
    fx.clock.advance(1000);
    assert.equal((await runJob(deps, job.id)).status, "done");
    const seqs = await seqsOf(job.id);
    for (const u of users) {
      const mails = await mailsOf(u.id, "account.containment-reset-link");
      assert.deepEqual(mails.map((m) => m.idempotency_key), [`account.containment-reset:${job.id}.${seq10(seqs.get(u.id)!)}:${u.id}`]);
      assert.equal(mails[0]!.idempotency_key, containmentResetKey(job.id, u.id, seqs.get(u.id)));
      const tokens = await fx.app.db.db.selectFrom("password_reset_tokens").selectAll().where("user_id", "=", u.id).execute();
      assert.equal(tokens.length, 1, "one token row per user");
      assert.equal(tokens[0]!.id, mails[0]!.link_id, "the token row is the one the mail carries");
      assert.equal(tokens[0]!.expires_at - tokens[0]!.created_at, 24 * HOUR, "a containment link lives 24 hours");
      const link = RESET_LINK.exec((await fx.app.accounts.outbox.get(mails[0]!.id)).text)?.[1];
      const check = await fx.app.accounts.passwordReset.check(link);
      assert.equal(check.valid && check.userId, u.id, JSON.stringify(check));
    }
  });

  it("docs/http-auth.md: a batch queues its users' links at once — the messages in a multi-row insert, then the token rows behind them — in the batch's transaction with password_invalidated_at", async () => {
    const users: Array<{ id: string; email: string; password: string }> = [];
    for (let i = 0; i < 5; i++) users.push(await fx.user(`batch-insert-${++made}@example.org`));
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: users.map((u) => u.id) }, actor: "responder", batchSize: 5 });
    let status = "";
    const statements = await statementsDuring(async () => {
      status = (await runJob(deps, job.id)).status;
    });
    assert.equal(status, "done");
    let depth = 0;
    let txn = 0;
    const seen: Array<[string, number]> = [];
    for (const s of statements) {
      if (s.startsWith("begin")) {
        depth++;
        if (depth === 1) txn++;
      } else if (s === "commit" || s === "rollback") depth--;
      else if (s.startsWith("insert into \"outbox_messages\"")) seen.push(["messages", depth > 0 ? txn : -1]);
      else if (s.startsWith("insert into \"password_reset_tokens\"")) seen.push(["tokens", depth > 0 ? txn : -1]);
      else if (s.startsWith("update \"users\"") && s.includes("password_invalidated_at")) seen.push(["users", depth > 0 ? txn : -1]);
    }
    const links = seen.filter(([what]) => what !== "users");
    assert.deepEqual(links.map(([what]) => what), ["messages", "tokens"], `one insert of the five messages, then one of their token rows: ${JSON.stringify(seen)}`);
    const txns = new Set(seen.map(([, t]) => t));
    assert.equal(txns.size, 1, `the links and the invalidation commit together: ${JSON.stringify(seen)}`);
    assert.ok(!txns.has(-1), "inside a transaction");
  });

  it("docs/http-auth.md: issueContainmentLinks run again for the same batch writes neither a second message nor a second token, and the first link stays valid; a batch's token ids are time-ordered (same shape, a shared time part, a later batch sorts after) with a 256-bit secret", async () => {
    const a = await fx.user(`batch-a-${++made}@example.org`);
    const b = await fx.user(`batch-b-${made}@example.org`);
    const c = await fx.user(`batch-c-${made}@example.org`);
    const mailer = fx.app.accounts.resetMailer;
    const options = { publicURL: fx.app.config.http.publicURL, serviceName: fx.app.config.serviceName, jobId: `job_docs36batch${made}` };
    const first = await fx.app.db.transaction((trx) => mailer.issueContainmentLinks(trx, [{ id: a.id, email: a.email, seq: 2 }, { id: b.id, email: b.email, seq: 1 }], options));
    assert.deepEqual(first, { queued: 2, alreadyQueued: 0 });
    const linkOf = async (userId: string): Promise<string> => {
      const [m] = await mailsOf(userId, "account.containment-reset-link");
      return RESET_LINK.exec((await fx.app.accounts.outbox.get(m!.id)).text)![1]!;
    };
    const before = { a: await linkOf(a.id), b: await linkOf(b.id) };
    const tokenRows = async () => fx.app.db.db.selectFrom("password_reset_tokens").select(["id", "user_id"]).where("user_id", "in", [a.id, b.id, c.id]).orderBy("id").execute();
    const rowsBefore = await tokenRows();
    assert.equal(rowsBefore.length, 2);
    // The batch runs again (resumed after a crash): the keys are found.
    const again = await fx.app.db.transaction((trx) => mailer.issueContainmentLinks(trx, [{ id: a.id, email: a.email, seq: 2 }, { id: b.id, email: b.email, seq: 1 }], options));
    assert.deepEqual(again, { queued: 0, alreadyQueued: 2 });
    assert.deepEqual(await tokenRows(), rowsBefore, "no second token row");
    assert.equal((await mailsOf(a.id, "account.containment-reset-link")).length, 1, "no second message");
    for (const [who, link] of Object.entries(before)) assert.equal((await fx.app.accounts.passwordReset.check(link)).valid, true, `${who}'s first link still works`);
    // Shape: prt_ + 26 characters of base32 in byte order, then 43 base64url characters (256 bits) of secret.
    for (const link of Object.values(before)) assert.match(link, /^prt_[2-7a-z]{26}\.[A-Za-z0-9_-]{43}$/);
    const ids = rowsBefore.map((r) => r.id);
    assert.equal(timeOf(ids[0]!), timeOf(ids[1]!), `a batch's links share their time part: ${ids.join(" ")}`);
    assert.ok(Math.abs(timeOf(ids[0]!) - Date.now()) < 60_000, "the time part is the wall clock's");
    await new Promise((r) => setTimeout(r, 5));
    await fx.app.db.transaction((trx) => mailer.issueContainmentLinks(trx, [{ id: c.id, email: c.email, seq: 3 }], options));
    const [later] = await fx.app.db.db.selectFrom("password_reset_tokens").select("id").where("user_id", "=", c.id).execute();
    for (const id of ids) assert.ok(byBytes(id, later!.id) < 0, `a later batch's token id sorts after an earlier one's: ${id} vs ${later!.id}`);
  });

  it("docs/http-auth.md: an administrator's set-email queues the owner's link under `account.containment-reset:<event>:<user>`, with no number", async () => {
    const admin = await flows.userWith([], "admin");
    const token = await flows.tokenFor(admin, ["admin"]);
    const target = await fx.user(`set-email-${++made}@example.org`);
    const res = await fx.server.inject({ method: "POST", url: `/api/v1/users/${target.id}/email`, headers: { authorization: `Bearer ${token}` }, payload: { email: `moved-${made}@example.org` } });
    assert.equal(res.statusCode, 200, res.body);
    const event = await fx.app.db.db.selectFrom("audit_events").select("id").where("subject", "=", target.id).where("type", "like", "user.email%").orderBy("seq", "desc").executeTakeFirstOrThrow();
    const mails = await mailsOf(target.id, "account.containment-reset-link");
    assert.deepEqual(mails.map((m) => m.idempotency_key), [`account.containment-reset:${event.id}:${target.id}`]);
  });

  it("docs/http-auth.md: a containment link is not subject to the user's hourly limit, works until its 24 hours are up, and completing the reset clears password_invalidated_at", async () => {
    const u = await fx.user(`limit-${++made}@example.org`);
    for (let i = 0; i < 4; i++) {
      const r = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: u.email } });
      assert.equal(r.statusCode, 202);
    }
    const own = await fx.app.db.db.selectFrom("password_reset_tokens").select("id").where("user_id", "=", u.id).execute();
    assert.equal(own.length, fx.app.accounts.passwordReset.policy.maxPerWindow, "control: the user's hourly limit is spent");
    const deps = containDeps(fx.app);
    const done = await runJob(deps, (await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [u.id] }, actor: "responder" })).id);
    assert.equal(done.status, "done");
    const [mail] = await mailsOf(u.id, "account.containment-reset-link");
    assert.ok(mail, "the containment mailed a link past the hourly limit");
    const link = RESET_LINK.exec((await fx.app.accounts.outbox.get(mail.id)).text)![1]!;
    const invalidated = (await fx.app.db.db.selectFrom("users").select("password_invalidated_at").where("id", "=", u.id).executeTakeFirstOrThrow()).password_invalidated_at;
    assert.notEqual(invalidated, null);
    fx.clock.advance(24 * HOUR - 60_000);
    assert.equal((await fx.app.accounts.passwordReset.check(link)).valid, true, "valid at 23 h 59 min");
    const complete = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "amber lantern drifts northward" } });
    assert.equal(complete.statusCode, 200, complete.body);
    assert.equal((await fx.app.db.db.selectFrom("users").select("password_invalidated_at").where("id", "=", u.id).executeTakeFirstOrThrow()).password_invalidated_at, null);
    assert.equal((await fx.browser().login(u.email, "amber lantern drifts northward")).statusCode, 200);
    // The other side of the 24 hours, on a second containment's link.
    const second = await runJob(deps, (await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [u.id] }, actor: "responder" })).id);
    assert.equal(second.status, "done");
    const mails = (await mailsOf(u.id, "account.containment-reset-link")).sort((x, y) => x.created_at - y.created_at);
    const link2 = RESET_LINK.exec((await fx.app.accounts.outbox.get(mails.at(-1)!.id)).text)![1]!;
    fx.clock.advance(CONTAINMENT_LINK_LIFETIME_MS + 1000);
    assert.equal((await fx.app.accounts.passwordReset.check(link2)).valid, false, "refused past 24 hours");
  });

  it("docs/http-auth.md: /auth/password/reset/webauthn/options answers a disabled account's link with the 400 BULWARK_ERR_RESET_TOKEN of an invalid link, no passkey id, the link unspent", async () => {
    const u = await flows.withPasskey(`options-disabled-${++made}@example.org`);
    const link = await flows.resetToken(u.email);
    const options = (t: string) => fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token: t } });
    const ok = await options(link);
    assert.equal(ok.statusCode, 200, `control: an active account's link gets its passkey: ${ok.body}`);
    await fx.app.db.db.updateTable("users").set({ status: "disabled" }).where("id", "=", u.id).execute();
    const refused = await options(link);
    const invalid = await options(link.slice(0, -1) + (link.endsWith("A") ? "B" : "A"));
    assert.equal(refused.statusCode, 400, refused.body);
    const { code, message } = refused.json().error as { code: string; message: string };
    assert.deepEqual({ code, message }, { code: invalid.json().error.code, message: invalid.json().error.message }, "word for word an invalid link's refusal");
    assert.equal(refused.json().error.code, "BULWARK_ERR_RESET_TOKEN");
    assert.doesNotMatch(refused.body, /allowCredentials|challenge|credential/i);
    assert.equal((await fx.app.accounts.passwordReset.check(link)).valid, true, "the refusal did not spend the link");
  });

  it("ADR 0002 (amended): audit event ids are 48-bit ms + 80 random bits in byte-ordered base32, so ids sort as their times across every 'z' → '2' step", async () => {
    const start = Math.ceil(fx.clock.now() / 256) * 256 + 256 - 40;
    fx.clock.set(start);
    const ids: Array<{ id: string; at: number }> = [];
    for (let i = 0; i < 160; i++) {
      const e = await fx.app.audit.append({ type: "docs36.probe", actor: "test", subject: `probe-${i}` });
      ids.push({ id: e.id, at: fx.clock.now() });
      fx.clock.advance(7);
    }
    for (const { id, at } of ids) {
      assert.match(id, /^evt_[2-7a-z]{26}$/);
      assert.equal(timeOf(id), at, `${id} carries its time`);
    }
    const sorted = [...ids].sort((x, y) => byBytes(x.id, y.id)).map((x) => x.at);
    assert.deepEqual(sorted, ids.map((x) => x.at), "sorted by id = sorted by time");
    // The database's own order (the unique index's) agrees.
    const rows = await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", "docs36.probe").orderBy("id").execute();
    assert.deepEqual(rows.map((r) => r.id), ids.map((x) => x.id));
  });

  it("ADR 0004 (amended): outbox ids are `msg_` + 48 bits of ms + 80 random bits in byte order (later mail sorts later across carries), and the id is the Message-ID", async () => {
    const start = Math.ceil(fx.clock.now() / 256) * 256 + 256 - 30;
    fx.clock.set(start);
    const queued: Array<{ id: string; at: number }> = [];
    for (let i = 0; i < 80; i++) {
      const r = await fx.app.accounts.outbox.enqueue({ idempotencyKey: `docs36:${made}:${i}`, to: `order-${made}@example.org`, subject: "s", text: "t\n", kind: "docs36.probe" });
      queued.push({ id: r.id, at: fx.clock.now() });
      fx.clock.advance(9);
    }
    for (const { id, at } of queued) {
      assert.match(id, /^msg_[2-7a-z]{26}$/);
      assert.equal(timeOf(id), at);
    }
    assert.deepEqual([...queued].sort((x, y) => byBytes(x.id, y.id)).map((x) => x.id), queued.map((x) => x.id));
    await fx.deliver();
    const mail = fx.mailTo(`order-${made}@example.org`);
    assert.equal(mail.length, 80);
    const ids = new Set(queued.map((q) => q.id));
    for (const m of mail) {
      const header = m.mail.headers.get("message-id") ?? "";
      const id = /^<(msg_[2-7a-z]{26})@/.exec(header)?.[1];
      assert.ok(id && ids.has(id), `Message-ID ${header} is an outbox id`);
    }
  });

  it("docs/containment.md + ADR 0005: revoke-sessions' countAll runs before the step, and a session deleted in between makes the step count again: the job reports the sessions it ended, not the ones counted", async () => {
    const users: Array<{ id: string; email: string; password: string }> = [];
    for (let i = 0; i < 3; i++) users.push(await fx.user(`count-all-${++made}@example.org`));
    // Every other open session of the fixture is ended by an --all job too; count what this job ends against the table.
    for (const u of users) for (let k = 0; k < 2; k++) await fx.app.accounts.sessions.createSession(u.id, { aal: 1 });
    fx.clock.advance(1000);
    const lever = revokeSessions as { countAll?: (...args: never[]) => Promise<Record<string, number> | null> };
    const original = lever.countAll;
    assert.ok(original, "revoke-sessions offers countAll");
    let countedThen: Record<string, number> | null = null;
    let removed = 0;
    lever.countAll = async (...args: never[]) => {
      countedThen = await original.apply(revokeSessions, args);
      // A write committed between the count and the step: the owner signs out of one session.
      const victim = await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", users[0]!.id).executeTakeFirstOrThrow();
      removed = Number((await fx.app.db.db.deleteFrom("sessions").where("id", "=", victim.id).executeTakeFirst()).numDeletedRows);
      return countedThen;
    };
    const openBefore = Number((await fx.app.db.db.selectFrom("sessions").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);
    const deps = containDeps(fx.app);
    let done;
    try {
      done = await runJob(deps, (await createContainJob(deps, { levers: ["revoke-sessions"], scope: { all: true }, actor: "responder" })).id);
    } finally {
      lever.countAll = original;
    }
    assert.equal(done.status, "done");
    assert.ok(countedThen !== null, "control: countAll ran (SQLite)");
    assert.equal(removed, 1);
    const left = Number((await fx.app.db.db.selectFrom("sessions").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);
    const ended = openBefore - removed - left;
    const counts = done.counts as Record<string, number>;
    assert.equal(counts["revoke-sessions.sessions"], ended, `the job reports ${counts["revoke-sessions.sessions"]} sessions ended; it ended ${ended} (counted before: ${JSON.stringify(countedThen)})`);
  });

  /**
   * Runs an --all job of `leverName` with `write` committed between its lever's countAll (outside the lock) and its
   * step: the count made before the step comes back with the job.
   */
  async function withWriteBeforeStep(leverName: "revoke-sessions" | "revoke-tokens", write: () => Promise<void>) {
    const target = leverName === "revoke-sessions" ? revokeSessions : revokeTokens;
    const lever = target as { countAll?: (...args: never[]) => Promise<Record<string, number> | null> };
    const original = lever.countAll;
    assert.ok(original);
    let counted: Record<string, number> | null = null;
    lever.countAll = async (...args: never[]) => {
      counted = await original.apply(target, args);
      await write();
      return counted;
    };
    const deps = containDeps(fx.app);
    try {
      const done = await runJob(deps, (await createContainJob(deps, { levers: [leverName], scope: { all: true }, actor: "responder" })).id);
      return { done, counted: counted as Record<string, number> | null };
    } finally {
      lever.countAll = original;
    }
  }

  /** `write` done by a node whose clock is 10 s behind. */
  async function tenSecondsBehind(write: () => Promise<unknown>): Promise<void> {
    const now = fx.clock.now();
    fx.clock.set(now - 10_000);
    try {
      await write();
    } finally {
      fx.clock.set(now);
    }
  }

  // Found by this round (was: the step compared only the number of rows it deletes, so this job reported the one user
  // counted before the step, not the two whose sessions it ended; every session was deleted all the same).
  it("attack: a write between revoke-sessions' count and its step that leaves the number of rows the same (one session signed out, one dated before the job by a clock stepped back, for a user who had none) does not leave the job reporting the users counted before it", async () => {
    const a = await fx.user(`compensate-a-${++made}@example.org`);
    const b = await fx.user(`compensate-b-${made}@example.org`);
    for (let k = 0; k < 2; k++) await fx.app.accounts.sessions.createSession(a.id, { aal: 1 });
    fx.clock.advance(1000);
    let doomed: Array<{ id: string; user_id: string | null }> = [];
    const { done, counted } = await withWriteBeforeStep("revoke-sessions", async () => {
      // Between the count and the step: a signs out of one session; a node whose clock is 10 s behind signs b in.
      const one = await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", a.id).executeTakeFirstOrThrow();
      await fx.app.db.db.deleteFrom("sessions").where("id", "=", one.id).execute();
      await tenSecondsBehind(() => fx.app.accounts.sessions.createSession(b.id, { aal: 1 }));
      doomed = await fx.app.db.db.selectFrom("sessions").select(["id", "user_id"]).where("user_id", "is not", null).execute();
    });
    assert.equal(done.status, "done");
    const left = new Set((await fx.app.db.db.selectFrom("sessions").select("id").execute()).map((r) => r.id));
    const ended = doomed.filter((d) => !left.has(d.id));
    assert.ok(ended.some((d) => d.user_id === b.id), "control: the step ended b's back-dated session");
    const counts = done.counts as Record<string, number>;
    assert.deepEqual({ sessions: counts["revoke-sessions.sessions"], users: counts["revoke-sessions.users"] }, { sessions: ended.length, users: new Set(ended.map((d) => d.user_id)).size },
      `counted before the step: ${JSON.stringify(counted)}`);
    fx.clock.advance(1000);
  });

  // The same write against revoke-tokens' step (was: it compared the number of rows its UPDATE marked, and kept the
  // owners counted before it).
  it("attack: a write between revoke-tokens' count and its step that leaves the number of tokens the same (one revoked by its owner, one dated before the job for a user who had none) does not leave the job reporting the owners counted before it", async () => {
    const a = await flows.userWith(["accounts.read"]);
    const b = await flows.userWith(["accounts.read"]);
    await flows.tokenFor(a, ["accounts.read"]);
    await flows.tokenFor(a, ["accounts.read"]);
    fx.clock.advance(1000);
    let live: Array<{ id: string; user_id: string }> = [];
    const { done, counted } = await withWriteBeforeStep("revoke-tokens", async () => {
      // Between the count and the step: a revokes one of its two tokens; a node whose clock is 10 s behind issues b one.
      const one = await fx.app.db.db.selectFrom("api_tokens").select("id").where("user_id", "=", a).where("revoked_at", "is", null).executeTakeFirstOrThrow();
      await fx.app.db.db.updateTable("api_tokens").set({ revoked_at: fx.clock.now() }).where("id", "=", one.id).execute();
      await tenSecondsBehind(() => flows.tokenFor(b, ["accounts.read"]));
      live = await fx.app.db.db.selectFrom("api_tokens").select(["id", "user_id"]).where("revoked_at", "is", null).execute();
    });
    assert.equal(done.status, "done");
    const stillLive = new Set((await fx.app.db.db.selectFrom("api_tokens").select("id").where("revoked_at", "is", null).execute()).map((r) => r.id));
    const revoked = live.filter((t) => !stillLive.has(t.id));
    assert.ok(revoked.some((t) => t.user_id === b), "control: the step revoked b's back-dated token");
    const counts = done.counts as Record<string, number>;
    assert.deepEqual({ tokens: counts["revoke-tokens.tokens"], users: counts["revoke-tokens.users"] }, { tokens: revoked.length, users: new Set(revoked.map((t) => t.user_id)).size },
      `counted before the step: ${JSON.stringify(counted)}`);
    fx.clock.advance(1000);
  });

  it("ADR 0005 (amended): revoke-tokens over --all marks every token in one UPDATE of api_tokens (not a batch of lookups per user) and reports the tokens and owners it revoked", async () => {
    const users: string[] = [];
    for (let i = 0; i < 4; i++) users.push(await flows.userWith(["accounts.read"]));
    for (const u of users) await flows.tokenFor(u, ["accounts.read"]);
    await flows.tokenFor(users[0]!, ["accounts.read"]);
    fx.clock.advance(1000);
    const unrevoked = await fx.app.db.db.selectFrom("api_tokens").select(["user_id"]).where("revoked_at", "is", null).execute();
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["revoke-tokens"], scope: { all: true }, actor: "responder", batchSize: 1 });
    let done: Awaited<ReturnType<typeof runJob>> | undefined;
    const statements = await statementsDuring(async () => {
      done = await runJob(deps, job.id);
    });
    assert.equal(done?.status, "done");
    const updates = statements.filter((s) => s.startsWith("update \"api_tokens\""));
    assert.equal(updates.length, 1, `one UPDATE of api_tokens for --all: ${updates.join(" | ")}`);
    // Its count (countAll) is read before the step, outside any transaction; the UPDATE runs inside one, after the
    // step's look at the rows' number and fingerprint (no distinct owners counted under the lock unless they changed).
    let depth = 0;
    const where: Array<[string, boolean]> = [];
    for (const s of statements) {
      const fromTokens = /from "?api_tokens"?/.test(s);
      if (s.startsWith("begin")) depth++;
      else if (s === "commit" || s === "rollback") depth--;
      else if (fromTokens && s.includes("count(distinct")) where.push(["count", depth > 0]);
      else if (fromTokens && s.includes("fp_rowids")) where.push(["fingerprint", depth > 0]);
      else if (s.startsWith("update \"api_tokens\"")) where.push(["update", depth > 0]);
    }
    assert.deepEqual(where, [["count", false], ["fingerprint", true], ["update", true]], JSON.stringify(where));
    assert.equal(Number((await fx.app.db.db.selectFrom("api_tokens").select((eb) => eb.fn.countAll<number>().as("n")).where("revoked_at", "is", null).executeTakeFirstOrThrow()).n), 0);
    const counts = done!.counts as Record<string, number>;
    assert.deepEqual([counts["revoke-tokens.tokens"], counts["revoke-tokens.users"]], [unrevoked.length, new Set(unrevoked.map((r) => r.user_id)).size], JSON.stringify(counts));
    fx.clock.advance(1000); // tokens issued later in this file are past the job's stamp
  });

  it("docs/api.md: POST /api/v1/users refuses a displayName whose first visible character joins the one before it (U+FF9E, a skin-tone modifier, a mark behind spaces or U+200F) with 400 BULWARK_ERR_DISPLAY_NAME_INVALID naming the field and the mark; marks after their letter pass", async () => {
    const admin = await flows.userWith([], "admin");
    const token = await flows.tokenFor(admin, ["admin"]);
    const create = (email: string, displayName: string) => fx.server.inject({ method: "POST", url: "/api/v1/users", headers: { authorization: `Bearer ${token}` }, payload: { email, displayName } });
    const hostile: Array<[string, string]> = [["\uFF9Eadmin", "U+FF9E"], ["\u{1F3FB}Bob", "U+1F3FB"], ["  \u0301Bob", "U+0301"], ["\u200F \u0301Bob", "U+0301"], ["\u0301", "U+0301"]];
    for (const [name, point] of hostile) {
      const email = `dn-${++made}@example.org`;
      const r = await create(email, name);
      assert.equal(r.statusCode, 400, `${JSON.stringify(name)}: ${r.body}`);
      const error = r.json().error as { code: string; message: string };
      assert.equal(error.code, "BULWARK_ERR_DISPLAY_NAME_INVALID", r.body);
      assert.match(error.message, /displayName/);
      assert.ok(error.message.includes(point), `${JSON.stringify(name)}: the message names ${point}: ${error.message}`);
      assert.equal(await fx.app.accounts.users.findByIdentifier(email), null);
    }
    for (const name of ["Zoe\u0308", "Bob \u{1F44D}\u{1F3FB}", "\u200F\u05E9\u05DC\u05D5\u05DD"]) {
      const r = await create(`dn-ok-${++made}@example.org`, name);
      assert.equal(r.statusCode, 201, `${JSON.stringify(name)}: ${r.body}`);
      assert.equal(r.json().user.displayName, name);
    }
    // "the account store applies the same rule to every caller"
    await assert.rejects(fx.app.accounts.users.create({ email: `dn-lib-${++made}@example.org`, displayName: "\uFF9E" }), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_DISPLAY_NAME_INVALID");
  });
});

describe("red team, docs claims thirty-six: the outbox on both dialects", () => {
  forEachDialect("docs claims thirty-six outbox", (dfx) => {
    it("ADR 0004: migration 39's partial index outbox_messages_replacing (account_id, created_at) covers only containment reset link mail about an account; migration 37's outbox_messages_by_account is gone", async () => {
      const db = await dfx.fresh();
      if (db.dialect === "sqlite") {
        const rows = await sql<{ name: string; sql: string | null }>`select name, sql from sqlite_master where type = 'index' and tbl_name = 'outbox_messages'`.execute(db.db);
        const names = rows.rows.map((r) => r.name);
        assert.ok(!names.includes("outbox_messages_by_account"), names.join(", "));
        const def = rows.rows.find((r) => r.name === "outbox_messages_replacing")?.sql ?? "";
        assert.match(def, /\("account_id", "created_at"\)/, def);
        assert.match(def, /where "kind" = 'account\.containment-reset-link' and "account_id" is not null/i, def);
      } else {
        const rows = await sql<{ indexname: string; indexdef: string }>`select indexname, indexdef from pg_indexes where tablename = 'outbox_messages'`.execute(db.db);
        const names = rows.rows.map((r) => r.indexname);
        assert.ok(!names.includes("outbox_messages_by_account"), names.join(", "));
        const def = rows.rows.find((r) => r.indexname === "outbox_messages_replacing")?.indexdef ?? "";
        assert.match(def, /\(account_id, created_at\)/, def);
        assert.match(def, /WHERE .*kind.*'account\.containment-reset-link'.*account_id IS NOT NULL/i, def);
      }
    });

    it("ADR 0004 (amended): enqueueMany stores every column as one enqueue of the same message does; on PostgreSQL a batch is one INSERT … SELECT from unnest arrays", async (t) => {
      const db = await dfx.fresh();
      const f = await notifyFixture(db);
      t.after(() => f.close());
      const msg = (n: number, prefix: string): NewMessage => ({
        idempotencyKey: `${prefix}:${n}`, to: `user${n}@example.org`, subject: "Shared subject", text: `Body ${n} with 'quotes', "dq", {braces}, \\ and NULL\n`,
        kind: "security.password-expired", accountId: `usr_${n}`, priority: 5, notBefore: f.clock.now() + 1000, html: n % 2 ? `<p>${n}</p>` : undefined,
      } as NewMessage);
      for (let n = 0; n < 6; n++) await f.outbox.enqueue(msg(n, "one"));
      const spied = spyOn(db);
      const bulk = await f.outbox.enqueueMany(Array.from({ length: 6 }, (_, n) => msg(n, "many")), { executor: spied.database.db });
      assert.equal(bulk.inserted, 6);
      const inserts = spied.compiled.filter((q) => /insert into "?outbox_messages"?/i.test(q.sql));
      if (db.dialect === "postgres") {
        assert.equal(inserts.length, 1, inserts.map((q) => q.sql).join("\n"));
        assert.match(inserts[0]!.sql, /select/i);
        assert.match(inserts[0]!.sql, /unnest/i, inserts[0]!.sql);
      }
      const rows = await db.db.selectFrom("outbox_messages").selectAll().where((eb) => eb.or([eb("idempotency_key", "like", "one:%"), eb("idempotency_key", "like", "many:%")])).execute();
      const strip = (r: Record<string, unknown>) => {
        const { id: _id, idempotency_key: _k, ...rest } = r;
        return rest;
      };
      for (let n = 0; n < 6; n++) {
        const one = rows.find((r) => r.idempotency_key === `one:${n}`)!;
        const many = rows.find((r) => r.idempotency_key === `many:${n}`)!;
        assert.deepEqual(strip(many as unknown as Record<string, unknown>), strip(one as unknown as Record<string, unknown>), `message ${n}`);
      }
    });
  });
});

describe("red team, docs claims thirty-six: check downloads and which checksum files need --dir (docs/checks.md)", () => {
  let dir = "";
  let artifact = "";
  before(() => {
    dir = mkdtempSync("/dev/shm/bulwark-docs36-");
    artifact = join(dir, "release");
    mkdirSync(artifact);
    writeFileSync(join(artifact, "tool.tar.gz"), "the release\n");
    const digest = createHash("sha256").update("the release\n").digest("hex");
    writeFileSync(join(artifact, "SHA256SUMS"), `${digest}  tool.tar.gz\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a regular SHA256SUMS in a directory on the /dev/shm tmpfs is verified beside itself without --dir, exit 0", async () => {
    const r = await bulwarkInProcess(["check", "downloads", join(artifact, "SHA256SUMS"), "--json"]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal((JSON.parse(r.stdout) as { findings: unknown[] }).findings.length, 0, r.stdout);
  });

  it("/dev/stdin without --dir exits 2 naming --dir; with --dir it is verified", async () => {
    const sums = `${createHash("sha256").update("the release\n").digest("hex")}  tool.tar.gz\n`;
    const stdin = () => {
      const s = new PassThrough();
      s.end(sums);
      return s;
    };
    const refused = await bulwarkInProcess(["check", "downloads", "/dev/stdin"], {}, stdin());
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /--dir/);
    // Spawned, so that /dev/stdin is the command's own standard input: the same list with --dir verifies.
    // (`< FILE`: a descriptor on a file elsewhere, the shell's way; Node's own stdin pipe is a socket /dev/stdin cannot open.)
    const list = join(dir, "list-elsewhere");
    writeFileSync(list, sums);
    const spawnedRefused = await bulwark(["check", "downloads", "/dev/stdin"], { stdin: { file: list } });
    assert.equal(spawnedRefused.code, 2, spawnedRefused.stderr);
    assert.match(spawnedRefused.stderr, /--dir/);
    const ok = await bulwark(["check", "downloads", "/dev/stdin", "--dir", artifact, "--json"], { stdin: { file: list } });
    assert.equal(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
  });

  it("a path whose directory is /dev once links are followed (/dev/shm/x/devlink/stdin, devlink -> /dev) needs --dir, exit 2", async () => {
    const link = join(dir, "devlink");
    symlinkSync("/dev", link);
    const r = await bulwarkInProcess(["check", "downloads", join(link, "null")]);
    assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /--dir/);
  });

  it("a FIFO or a socket deeper under /dev (in /dev/shm) needs --dir, exit 2, and is not opened", async () => {
    const fifo = join(dir, "sums.fifo");
    execFileSync("mkfifo", [fifo]);
    const r = await bulwarkInProcess(["check", "downloads", fifo]);
    assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /--dir/);
    const sock = join(dir, "sums.sock");
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const s = await bulwarkInProcess(["check", "downloads", sock]);
      assert.equal(s.code, 2, `${s.stdout}\n${s.stderr}`);
      assert.match(s.stderr, /--dir/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("red team, docs claims thirty-six: users import and display names (docs/password-migration.md)", () => {
  const { fresh } = scratchRoot("bulwark-docs36-import-");
  it("a display_name starting with U+FF9E or a skin-tone modifier is a bad row naming it, for a new account and for --on-conflict update; Zoe + U+0308 is kept", async () => {
    const s = await initSite(fresh("site"), { here: true });
    const first = await s.runHere(["users", "import", s.file("first.csv", "email,display_name\nkept@example.org,Kept\n"), "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const csv = s.file("joins.csv", ["email,display_name", "new1@example.org,\uFF9EMallory", "kept@example.org,\u{1F3FD}", "zoe@example.org,Zoe\u0308"].join("\n") + "\n");
    const r = await s.runHere(["users", "import", csv, "--on-conflict", "update", "--skip-bad", "--json"]);
    const report = JSON.parse(r.stdout) as { bad: Array<{ line: number; reason: string }> };
    assert.deepEqual(report.bad.map((b) => b.line), [2, 3], r.stdout);
    assert.match(report.bad[0]!.reason, /display_name .*U\+FF9E/, report.bad[0]!.reason);
    assert.match(report.bad[1]!.reason, /display_name .*U\+1F3FD/, report.bad[1]!.reason);
    assert.deepEqual(s.rows("SELECT email, display_name FROM users ORDER BY email"), [
      { email: "kept@example.org", display_name: "Kept" },
      { email: "zoe@example.org", display_name: "Zoe\u0308" },
    ]);
  });
});
