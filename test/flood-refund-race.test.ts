// A slot taken from an hourly budget (FloodControl.takeFor) and given back (its refund), or a login attempt's own
// events taken back (release), must be given back exactly once, whatever other deletes of the same key run beside it.
// Events of one key counted in one millisecond are alike, so a refund deletes "one of them". On PostgreSQL a refund's
// statement sees the rows committed when it began; refunds of two nodes at once could leave it only rows other refunds
// were deleting, while the twin it should have taken (a slot taken and committed a moment after it began) stood. It
// deleted nothing, and the slot of a registration that enrolled nothing stayed spent: a fresh-clone CI run saw the
// owner meet 429 with no factor enrolled (test/race-twentyone-red-team.test.ts, ASVS 2.4.1).
//
// Here that interleaving is made to happen every time: a second connection's open transaction stands for the other
// node's request, which took its slot (the twin, not yet visible) and is deleting the refund's own row (held). Written
// as the attacks that must fail; PostgreSQL only, as SQLite runs one writer at a time.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "kysely";
import { postgresUnavailable, startPostgres, type PgCluster } from "./helpers/postgres.ts";
import { FloodControl } from "../src/accounts/flood/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { migrate } from "../src/store/migrator.ts";
import { openPostgres, type Database } from "../src/store/database.ts";
import { keyedDigest } from "../src/crypto/tokens.ts";

const keyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x2a), text);
const unavailable = postgresUnavailable();

interface EventRow { scope: string; key: string; at: number }

/**
 * On `other` (another node's connection), in a transaction left open until `release` is called: the twin of `row`
 * (same scope, key and time) inserted, and `row` itself deleted, as the other node's take and refund would. Resolves
 * once both are done; the returned promise settles when the transaction has committed.
 */
async function otherNodeMidRefund(other: Database, row: EventRow): Promise<{ release: () => void; committed: Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const committed = other.db.transaction().execute(async (trx) => {
    await sql`INSERT INTO flood_events (scope, key, at, via) VALUES (${row.scope}, ${row.key}, ${row.at}, '')`.execute(trx);
    const taken = await sql`DELETE FROM flood_events WHERE ctid = (SELECT ctid FROM flood_events WHERE scope = ${row.scope} AND key = ${row.key} AND at = ${row.at} AND xmin <> pg_current_xact_id()::xid LIMIT 1 FOR UPDATE)`.execute(trx);
    assert.equal(Number(taken.numAffectedRows), 1, "control: the other node holds the refund's own row");
    ready();
    await released;
  });
  await isReady;
  return { release, committed };
}

/** Settles with "done" when `work` ends within `ms`, else "waiting" (work goes on). */
async function within(work: Promise<unknown>, ms: number): Promise<"done" | "waiting"> {
  return Promise.race([work.then(() => "done" as const), sleep(ms).then(() => "waiting" as const)]);
}

describe("a counted event is taken back exactly once, whatever other nodes take back at the time [postgres]", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  let cluster: PgCluster | null = null;
  const opened: Database[] = [];
  let made = 0;
  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    for (const db of opened) await db.close().catch(() => {});
    await cluster?.stop();
  });

  /** Two nodes' connections to one new schema, migrated. */
  async function twoNodes(): Promise<{ a: Database; b: Database; clock: ManualClock }> {
    if (!cluster) throw new Error("PostgreSQL cluster did not start");
    const url = await cluster.createSchema(`refund_${process.pid}_${++made}`);
    const a = await openPostgres(url);
    const b = await openPostgres(url);
    opened.push(a, b);
    const clock = new ManualClock(Date.UTC(2026, 11, 1));
    await migrate(a, clock);
    return { a, b, clock };
  }

  const events = async (db: Database): Promise<EventRow[]> =>
    (await db.db.selectFrom("flood_events").select(["scope", "key", "at"]).execute()).map((r) => ({ scope: r.scope, key: r.key, at: Number(r.at) }));

  it("attack: a refund that meets only its own row, held by another node's refund whose own slot it cannot see yet, still gives one slot back: the hour's budget is whole once both are done (ASVS 2.4.1) (was: the refund deleted nothing, and the slot stayed spent)", async () => {
    const { a, b, clock } = await twoNodes();
    const budget = new FloodControl({ database: a, clock, keyOf, namespace: "mfa-enrol", policy: { ipLimit: 10, ipWindowMs: 60 * 60_000 } });
    const slot = await budget.takeFor("the owner");
    assert.ok(slot !== null, "control: the budget is empty");
    const [own] = await events(a);
    assert.ok(own !== undefined, "control: the slot is one row");
    const other = await otherNodeMidRefund(b, own);
    const refund = slot.refund();
    // The other node's request ends after this refund's first look (a moment later: its commit).
    const early = await within(refund, 150);
    other.release();
    await other.committed;
    await refund;
    assert.deepEqual(await events(a), [], `every slot was given back (the refund had ${early === "done" ? "already returned" : "not yet returned"} when the other node committed)`);
    // And the budget is whole: ten takes go through, the eleventh is refused.
    const takes = [];
    for (let i = 0; i < 11; i++) takes.push(await budget.takeFor("the owner"));
    assert.deepEqual(takes.map((t) => t !== null), [...Array(10).fill(true), false]);
  });

  it("attack: a login attempt's release that meets only its own account event, held by another node's release whose own event it cannot see yet, still takes one back: the account's window is empty once both are done (ASVS 6.3.1) (was: the release deleted nothing, and the window kept a failure no one made)", async () => {
    const { a, b, clock } = await twoNodes();
    const flood = new FloodControl({ database: a, clock, keyOf });
    const begun = await flood.begin({ identifier: "owner@example.org", ip: "198.51.100.7" });
    assert.ok(begun.allowed, "control: the windows are empty");
    const account = (await events(a)).find((e) => e.scope === "account");
    assert.ok(account !== undefined, "control: the attempt counted against the account");
    const other = await otherNodeMidRefund(b, account);
    const release = flood.release(begun.ticket);
    await within(release, 150);
    other.release();
    await other.committed;
    await release;
    assert.deepEqual(await events(a), [], "the attempt's own events (its client's and the account's) were taken back, and the other node's too");
  });
});
