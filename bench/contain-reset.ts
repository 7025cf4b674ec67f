// invalidate-passwords benchmark: on N users with one session each (BULWARK_BENCH_RESET_USERS, default 100,000), for
// SQLite and PostgreSQL (BULWARK_BENCH_DIALECTS), the time of an invalidate-passwords job over every user (scope
// recorded, batches, a 24-hour reset link and its sealed mail per user, sessions ended, audit) ÷ the time of the
// statements a DBA would type for the same rows on an identical copy of the database in the same run: a link row and a
// queued mail per user (the same mail text, not sealed), the passwords invalidated and the sessions deleted, in one
// transaction. No aim is set (issue 5's ≤ 1.5 is for the three levers bench/contain.ts runs); the ratio shows what the
// per-user mail costs and keeps the batch's multi-row inserts from sliding back to a statement per user (PostgreSQL,
// 50,000 users: 39.4 s then, 8.4 s since: docs/containment.md).
import { sql } from "kysely";
import { CONTAINMENT_LINK_LIFETIME_MS, composeResetMail } from "../src/accounts/password-reset/reset-mail.ts";
import { openApp } from "../src/app/open-app.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import type { Database } from "../src/store/database.ts";
import { eachDialect, line, now, openTarget, seconds, seededTwins, settle, type Cluster } from "./lib.ts";

const USERS = Number(process.env["BULWARK_BENCH_RESET_USERS"] ?? 100_000);
const ENV = { BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent", BULWARK_PUBLIC_URL: "https://bulwark.example" };

/** The direct statements, on database `b`: what the job writes, without the job (and without sealing the mail). */
async function direct(database: Database): Promise<number> {
  const at = Date.now();
  const mail = composeResetMail(`prt_${"a".repeat(26)}.${"b".repeat(43)}`, { email: "someone@example.org", publicURL: "https://bulwark.example", serviceName: "Bulwark" }, "containment", CONTAINMENT_LINK_LIFETIME_MS);
  const until = at + CONTAINMENT_LINK_LIFETIME_MS;
  const t = now();
  await database.transaction(async (trx) => {
    const inScope = sql`password_invalidated_at IS NULL AND password_hash IS NOT NULL`;
    await sql`INSERT INTO password_reset_tokens (id, user_id, secret_hash, created_at, expires_at, used_at)
      SELECT 'prt_' || substr(id, 5), id, 'h' || id || id, ${at}, ${until}, NULL FROM users WHERE ${inScope} ORDER BY id`.execute(trx);
    await sql`INSERT INTO outbox_messages (id, idempotency_key, to_address, subject, body_text, kind, priority, status, attempts, next_attempt_at, created_at, account_id, link_id, not_after)
      SELECT 'msg_' || id, ${mail.kind + ":"} || id, email, ${mail.subject}, ${mail.text}, ${mail.kind}, ${mail.priority ?? 0}, 'queued', 0, ${at}, ${at}, id, 'prt_' || substr(id, 5), ${until}
      FROM users WHERE ${inScope} ORDER BY id`.execute(trx);
    await trx.updateTable("users").set({ password_invalidated_at: at }).where("password_invalidated_at", "is", null).where("password_hash", "is not", null).execute();
    await trx.deleteFrom("sessions").where("created_at", "<", at).execute();
  });
  return seconds(t);
}

async function run(dialect: "sqlite" | "postgres", dir: string, cluster: Cluster): Promise<void> {
  const { env, b } = await seededTwins(dialect, dir, cluster, ENV, { users: USERS, sessionsPerUser: 1, tokensPerUser: 0 });
  // Each measured part starts with no dirty page of the parts before it left to write (bench/contain.ts says why).
  settle();
  const copy = await openTarget(b);
  const directSecs = await direct(copy);
  await copy.close();
  settle();
  line(`[${dialect}] direct statements`, `${directSecs.toFixed(2)} s`, "reference: links, mail, passwords, sessions");

  const app = await openApp({ env, actor: "bench" });
  try {
    const deps = containDeps(app);
    const t = now();
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { all: true }, actor: "bench" });
    const done = await runJob(deps, job.id);
    const jobSecs = seconds(t);
    if (done.status !== "done") throw new Error(`job ended ${done.status}`);
    const queued = done.counts["invalidate-passwords.resetEmailsQueued"];
    if (queued !== USERS) throw new Error(`the job queued ${String(queued)} reset mails for ${USERS} users`);
    line(`[${dialect}] contain invalidate-passwords`, `${jobSecs.toFixed(2)} s`, `${done.done} users, ${queued} sealed reset mails, batches of ${job.spec.batchSize}`);
    line(`[${dialect}] job ÷ direct statements`, (jobSecs / directSecs).toFixed(2), "no aim; the direct statements seal nothing");
  } finally {
    await app.close();
  }
}

export default async function bench(): Promise<void> {
  line("users", USERS.toLocaleString("en-US"), "1 session each");
  await eachDialect("contain-reset", run);
}
