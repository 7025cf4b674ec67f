// A containment queues a batch's security notices in multi-row inserts, not one statement per notice: at 200,000
// users the one-by-one inserts (each built by Kysely and prepared anew) were a third of an expire-passwords run. The
// mail queued must be the same: one notice per user, under the same idempotency keys a resumed batch meets again, and
// keyed in the job's order.
import assert from "node:assert/strict";
import { join } from "node:path";
import { it } from "node:test";
import { initSite } from "./helpers/cli.ts";
import { scratchRoot } from "./helpers/scratch.ts";
import { statementsDuring } from "./helpers/statements.ts";

const USERS = 1_200;
const BATCH = 1_000;
/** Outbox rows per multi-row insert (src/notify/outbox.ts DEFAULT_BATCH). */
const PER_INSERT = 500;

it(`expire-passwords over ${USERS} users queues their notices in multi-row inserts, one per user, keyed by job and user`, async () => {
  const site = await initSite(join(scratchRoot("bulwark-notice-batches-").root, "site"), { here: true });
  const seeded = await site.runHere(["dev", "seed", "--users", String(USERS), "--sessions-per-user", "0", "--json"]);
  assert.equal(seeded.code, 0, seeded.stderr);
  const before = Number(site.rows("SELECT count(*) AS n FROM outbox_messages")[0]!["n"]);

  let out = "";
  const statements = await statementsDuring(async () => {
    const r = await site.runHere(["contain", "expire-passwords", "--all", "--yes", "--json", "--batch-size", String(BATCH)]);
    assert.equal(r.code, 0, r.stderr);
    out = r.stdout;
  });
  const report = JSON.parse(out) as { status: string; id: string; counts: Record<string, Record<string, number>> };
  assert.equal(report.status, "done");
  assert.deepEqual(report.counts["expire-passwords"], { users: USERS, noticesQueued: USERS, noticesRefused: 0 });

  const inserts = statements.filter((s) => s.startsWith(`insert into "outbox_messages"`)).length;
  const batches = Math.ceil(USERS / BATCH);
  assert.ok(inserts >= 1 && inserts <= batches * Math.ceil(BATCH / PER_INSERT), `${inserts} outbox inserts for ${USERS} notices in ${batches} batches (was: one per notice)`);

  // One notice per user, each under the job's and the user's key, addressed to the user's address now.
  const rows = site.rows(`SELECT o.idempotency_key AS k, o.to_address AS to_address, o.account_id AS account, u.email AS email, u.id AS id, c.seq AS seq
    FROM outbox_messages o JOIN users u ON u.id = o.account_id JOIN contain_job_users c ON c.job_id = '${report.id}' AND c.user_id = u.id
    WHERE o.kind = 'security.password-expired' ORDER BY o.idempotency_key`);
  assert.equal(rows.length, USERS);
  assert.equal(Number(site.rows("SELECT count(*) AS n FROM outbox_messages")[0]!["n"]) - before, USERS, "nothing else was queued");
  assert.equal(new Set(rows.map((r) => r["account"])).size, USERS, "one notice per user");
  for (const r of rows) {
    assert.equal(r["to_address"], r["email"]);
    assert.ok(String(r["k"]).startsWith(`security.password-expired:${report.id}.${String(r["seq"]).padStart(10, "0")}.${String(r["id"])}:`), String(r["k"]));
  }
  // The keys sort in the job's order (its users' numbers), the order its batches queue them: each batch appends to the
  // outbox's key index instead of writing into its pages at random (was: job and user id, the ids' random order).
  assert.deepEqual(rows.map((r) => Number(r["seq"])), Array.from({ length: USERS }, (_, i) => i + 1));
});
