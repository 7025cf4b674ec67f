// Red team: the email outbox at incident-campaign scale (src/notify/outbox.ts, src/notify/sender.ts, `bulwark outbox`,
// docs/decisions/0004-email-outbox.md). Attackers: sheer volume (a 100,000-recipient breach campaign, 100,000 messages
// a relay refused for good), and one ordinary account that queues security notices at will (regenerating its own
// recovery codes) while a batch is going out. Asked of each: does the sender keep the ADR's promises on priority
// and on the aged share, does a claim stay cheap however long the queue is, and do the operator's commands read
// bounded pages of a queue that large? Row counts and query plans are asserted, never time. Temp dirs and loopback only.
// The three gaps this round found (an O(queue) claim, a flood holding a link back inside a batch, requeue-dead reading
// every id at once) are fixed: migration 28, the sender's one-minute rule, paged dead ids.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StatementSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { CompiledQuery } from "kysely";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { AGED_AFTER_MS, Outbox, PRIORITY, type NewMessage } from "../src/notify/outbox.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { bulwark, bulwarkInProcess } from "./helpers/cli.ts";
import { spyOn } from "./helpers/compiled-queries.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";

const MINUTE = 60_000;
const CAMPAIGN = 100_000;
const BATCH = 100; // `bulwark serve`'s sender: batches of 100 ...
const CONCURRENCY = 5; // ... five deliveries at once (the SMTP pool's default maxConnections).
const T0 = Date.UTC(2026, 10, 1);

function campaign(n: number, count: number): NewMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    idempotencyKey: `cmp_${n}:${i}`, to: `user${i}@example.org`, subject: "Important: a breach of your account data",
    text: `Dear user ${i},\nwe were breached.\n`, kind: "campaign.breach-notice", campaignId: `cmp_${n}`, priority: PRIORITY.campaign,
  }));
}

async function migrated(database: Database, clock: ManualClock): Promise<Outbox> {
  const outcome = await migrate(database, clock, MIGRATIONS);
  assert.equal(outcome.error, undefined, outcome.error?.message);
  return new Outbox({ database, clock, random: systemRandom });
}


interface PgPlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  "Rows Removed by Filter"?: number;
  Plans?: PgPlanNode[];
}

/** Rows of outbox_messages a PostgreSQL plan read (returned or filtered out), over every loop; the update itself aside. */
function pgRowsRead(node: PgPlanNode): number {
  const own = node["Relation Name"] === "outbox_messages" && node["Node Type"] !== "ModifyTable"
    ? ((node["Actual Rows"] ?? 0) + (node["Rows Removed by Filter"] ?? 0)) * (node["Actual Loops"] ?? 1)
    : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + pgRowsRead(child), 0);
}

/** Rows each node:sqlite statement returned while `fn` ran (the CLI in this process), by statement. */
async function rowsReturnedDuring(fn: () => Promise<unknown>): Promise<Array<{ sql: string; rows: number }>> {
  const seen: Array<{ sql: string; rows: number }> = [];
  const proto = StatementSync.prototype as unknown as Record<"all" | "get" | "iterate", (...args: unknown[]) => unknown>;
  const originals = { all: proto.all, get: proto.get, iterate: proto.iterate };
  proto.all = function (this: StatementSync, ...args: unknown[]) {
    const rows = originals.all.apply(this, args) as unknown[];
    seen.push({ sql: this.sourceSQL.trim().toLowerCase(), rows: rows.length });
    return rows;
  };
  proto.get = function (this: StatementSync, ...args: unknown[]) {
    const row = originals.get.apply(this, args);
    seen.push({ sql: this.sourceSQL.trim().toLowerCase(), rows: row === undefined ? 0 : 1 });
    return row;
  };
  proto.iterate = function* (this: StatementSync, ...args: unknown[]) {
    const entry = { sql: this.sourceSQL.trim().toLowerCase(), rows: 0 };
    seen.push(entry);
    for (const row of originals.iterate.apply(this, args) as Iterable<unknown>) {
      entry.rows++;
      yield row;
    }
  } as (...args: unknown[]) => unknown;
  try {
    await fn();
  } finally {
    Object.assign(proto, originals);
  }
  return seen;
}

// ---------------------------------------------------------------------------------------------------------------
// A 100,000-message breach campaign in the queue, queued two minutes ago (so it is "aged": AGED_AFTER_MS).
// ---------------------------------------------------------------------------------------------------------------

forEachDialect("a 100,000-recipient campaign in the outbox (red team)", (fx) => {
  let database: Database;
  let clock: ManualClock;
  let outbox: Outbox;
  let noticeId: string;

  before(async () => {
    database = await fx.fresh();
    clock = new ManualClock(T0);
    outbox = await migrated(database, clock);
    assert.deepEqual(await outbox.enqueueMany(campaign(1, CAMPAIGN)), { inserted: CAMPAIGN, duplicates: 0 });
    // The same campaign started again after a crash of the job that queues it: nothing is queued twice.
    assert.deepEqual(await outbox.enqueueMany(campaign(1, CAMPAIGN).slice(-1_000)), { inserted: 0, duplicates: 1_000 });
    clock.advance(2 * MINUTE);
    // Then a user changes their password: the notice that must not wait behind the campaign (ASVS 6.3.7).
    noticeId = (await outbox.enqueue({ idempotencyKey: "security.password-changed:evt_1:x", to: "owner@example.org", subject: "Your password was changed", text: "…", kind: "security.password-changed", priority: PRIORITY.security })).id;
  });

  it("attack: a password-changed notice queued behind 100,000 campaign messages goes out in the sender's first batch, behind no more than the aged quarter, and the sender holds one batch, never the queue (ASVS 6.3.7)", async () => {
    const transport = recordingTransport();
    const report = await new OutboxSender({ outbox, transport, clock, random: systemRandom }, { name: "serve", batchSize: BATCH, concurrency: CONCURRENCY }).runOnce();
    assert.ok(report.claimed <= BATCH + CONCURRENCY, `one run claimed ${report.claimed} messages`);
    const at = transport.sent.findIndex((m) => m.id === noticeId);
    // ADR 0004: a quarter of a claim goes to mail due for a minute, oldest first, and counts as a notice for the batch.
    assert.ok(at >= 0 && at < BATCH / 4 + CONCURRENCY, `the notice was delivery #${at} of the first batch (${transport.sent.length} sent)`);
    assert.equal((await outbox.counts()).queued, CAMPAIGN - report.sent + 1);
  });

  it("attack: every batch claim during a 100,000-message campaign reads about as many rows as it takes for its aged quarter, never the whole aged queue (migration 28's outbox_messages_aged) (was: an O(queue) claim, O(queue²) to drain a campaign)", async () => {
    const spy = spyOn(database);
    const spiedOutbox = new Outbox({ database: spy.database, clock, random: systemRandom });
    const claimed = await spiedOutbox.claim({ claimer: "probe/clm_1", limit: BATCH, leaseMs: 5 * MINUTE });
    assert.equal(claimed.length, BATCH);
    const statements = spy.compiled.filter((q) => /^update "outbox_messages"/i.test(q.sql));
    assert.ok(statements.length >= 1, "the claim ran its UPDATE … RETURNING statements");
    // How many rows the queue holds that the aged share may choose from (for the message only).
    const aged = await database.db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n"))
      .where("status", "in", ["queued", "failed", "sending"]).where("priority", ">", PRIORITY.security).where("next_attempt_at", "<=", clock.now() - AGED_AFTER_MS).executeTakeFirstOrThrow();
    const report: string[] = [];
    let worst = 0;
    for (const q of statements) {
      if (database.dialect === "postgres") {
        // EXPLAIN ANALYZE runs the claim: in a transaction rolled back, so it claims nothing.
        let read = 0;
        await database.db.transaction().execute(async (trx) => {
          const result = await trx.executeQuery<{ "QUERY PLAN": Array<{ Plan: PgPlanNode }> }>(CompiledQuery.raw(`EXPLAIN (ANALYZE, FORMAT JSON) ${q.sql}`, [...q.parameters]));
          read = pgRowsRead(result.rows[0]!["QUERY PLAN"][0]!.Plan);
          throw new Rollback();
        }).catch((e: unknown) => {
          if (!(e instanceof Rollback)) throw e;
        });
        worst = Math.max(worst, read);
        report.push(`${read} rows read by: ${q.sql.slice(0, 160)}…`);
      } else {
        // node:sqlite gives no per-statement row counters: the plan says it. A temp B-tree for ORDER BY beside a scan
        // of the table (same parent) sorts every row that scan finds, i.e. every candidate, to keep `limit` of them.
        const plan = database.sqlite!.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...(q.parameters as Array<string | number | bigint | null>)) as Array<{ id: number; parent: number; detail: string }>;
        const sortsAllCandidates = plan.some((sort) => /USE TEMP B-TREE FOR ORDER BY/.test(sort.detail)
          && plan.some((scan) => scan.parent === sort.parent && /^(SCAN|SEARCH) outbox_messages\b/.test(scan.detail) && !/\(id=\?\)/.test(scan.detail)));
        const read = sortsAllCandidates ? Number(aged.n) : claimed.length;
        worst = Math.max(worst, read);
        report.push(`${sortsAllCandidates ? `sorts all ${aged.n} aged rows` : "reads in index order"}: ${plan.map((p) => p.detail).join(" / ")}`);
      }
    }
    // Secure: a claim of 100 reads on the order of 100 rows (an index in the order it picks by), whatever the queue holds.
    assert.ok(worst <= 10 * BATCH, `one claim of ${BATCH} read about ${worst} rows with ${aged.n} aged messages queued:\n${report.join("\n")}`);
  });
});

class Rollback extends Error {}

// ---------------------------------------------------------------------------------------------------------------
// A notice flood that keeps pace with the relay while a batch is going out.
// ---------------------------------------------------------------------------------------------------------------

forEachDialect("security notices queued at will during a batch (red team)", (fx) => {
  it("attack: one account regenerating its recovery codes faster than the relay delivers holds another user's reset link back for at most a minute once it is in a batch going out (ADR 0004) (was: for as long as the flood went on)", async () => {
    const database = await fx.fresh();
    const clock = new ManualClock(T0);
    const outbox = await migrated(database, clock);
    let flooded = 0;
    // "Your recovery codes were replaced": priority 0, one per request of the attacker's own account.
    const flood = async (): Promise<void> => {
      flooded++;
      await outbox.enqueue({ idempotencyKey: `security.recovery-codes-regenerated:evt_${flooded}:d`, to: "mallory@attacker.example", subject: "Your recovery codes were replaced", text: "…", kind: "security.recovery-codes-regenerated", priority: PRIORITY.security });
    };
    // The locked-out owner asks for a reset link; the attacker's flood has begun.
    const link = await outbox.enqueue({ idempotencyKey: "reset:usr_owner:1", to: "owner@example.org", subject: "Reset your password", text: "https://bulwark.test/auth/reset#…", kind: "account.password-reset-link", priority: PRIORITY.link });
    for (let i = 0; i < 10; i++) await flood();
    clock.advance(1_000);
    // The relay takes a message a second; the attacker queues two notices per message delivered, for five minutes.
    const FLOOD_DELIVERIES = 300;
    let deliveries = 0;
    let linkSentAt = 0;
    const transport = recordingTransport(async (m) => {
      if (m.id === link.id) linkSentAt = clock.now();
      deliveries++;
      clock.advance(1_000);
      if (deliveries <= FLOOD_DELIVERIES) {
        await flood();
        await flood();
      }
    });
    // `bulwark serve`'s sender, one run: the batch in progress when the link became due.
    await new OutboxSender({ outbox, transport, clock, random: systemRandom }, { name: "serve", batchSize: BATCH, concurrency: CONCURRENCY }).runOnce();
    const at = transport.sent.findIndex((m) => m.id === link.id);
    assert.ok(at >= 0, "the link goes out once the flood stops");
    // Secure: the link, due for a minute, joins the notices and goes out while the flood goes on (ADR 0004).
    const ahead = transport.sent.slice(0, at).filter((m) => m.to === "mallory@attacker.example").length;
    assert.ok(at < FLOOD_DELIVERIES, `the owner's reset link was delivery #${at}, ${Math.round((linkSentAt - T0) / 1000)} s after it was queued, behind ${ahead} of the ${flooded} notices the attacker queued: it went only after the whole flood (which stopped at delivery #${FLOOD_DELIVERIES})`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 100,000 messages the relay refused for good (550 to RCPT TO): the operator's commands.
// ---------------------------------------------------------------------------------------------------------------

describe("`bulwark outbox` over 100,000 dead messages (red team)", () => {
  let dir: string;
  const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-outbox-scale-"));
    const init = await bulwark(["init"], { env: env() });
    assert.equal(init.code, 0, init.stderr);
    const database = openSQLite(join(dir, "data", "bulwark.db"), { create: false });
    try {
      const outbox = new Outbox({ database, clock: new ManualClock(Date.now() - 60 * MINUTE), random: systemRandom });
      assert.equal((await outbox.enqueueMany(campaign(2, CAMPAIGN))).inserted, CAMPAIGN);
      // As a sender leaves them after a relay answered every RCPT TO with 550 (markDead: status, error, claim cleared).
      await database.db.updateTable("outbox_messages").set({ status: "dead", attempts: 1, last_error: "EENVELOPE RCPT TO 550 550 5.1.1 …@example.org: unknown user" }).execute();
    } finally {
      await database.close();
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("attack: `outbox status --json` over 100,000 dead messages returns bounded rows from every query: counts, the oldest pending, and --limit dead rows", async () => {
    let result: { code: number; stdout: string; stderr: string } | undefined;
    const reads = await rowsReturnedDuring(async () => {
      result = await bulwarkInProcess(["outbox", "status", "--json"], env());
    });
    assert.equal(result?.code, 0, result?.stderr);
    const status = JSON.parse(result!.stdout) as { counts: Record<string, number>; dead: unknown[] };
    assert.equal(status.counts["dead"], CAMPAIGN);
    assert.equal(status.dead.length, 50);
    const outboxReads = reads.filter((r) => r.sql.includes("outbox_messages"));
    assert.ok(outboxReads.length > 0);
    const largest = Math.max(...outboxReads.map((r) => r.rows));
    assert.ok(largest <= 1_000, `one query returned ${largest} rows`);
  });

  it("attack: `outbox requeue-dead --yes` over 100,000 dead messages reads the dead ids a page at a time, never all in one query (was: every id read before the first batch)", async () => {
    let result: { code: number; stdout: string; stderr: string } | undefined;
    const reads = await rowsReturnedDuring(async () => {
      result = await bulwarkInProcess(["outbox", "requeue-dead", "--yes", "--json"], env());
    });
    assert.equal(result?.code, 0, result?.stderr);
    assert.equal((JSON.parse(result!.stdout) as { requeued: number }).requeued, CAMPAIGN, "every dead message is requeued");
    const outboxReads = reads.filter((r) => r.sql.includes("outbox_messages"));
    const largest = outboxReads.reduce((a, b) => (b.rows > a.rows ? b : a), { sql: "", rows: 0 });
    // Secure: the ids are read a page at a time (keyset on created_at, id), as they are written: ≤ 1000 per query.
    assert.ok(largest.rows <= 1_000, `one query returned ${largest.rows} rows: ${largest.sql.slice(0, 200)}`);
  });
});
