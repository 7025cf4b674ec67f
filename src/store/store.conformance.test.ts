// The shared store suite: migrations, the key store, the audit chain and check history behave the
// same on SQLite and on PostgreSQL.
import assert from "node:assert/strict";
import { it } from "node:test";
import { sql } from "kysely";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { AuditLog } from "../audit/audit-log.ts";
import { eventHash, GENESIS_HASH } from "../audit/chain.ts";
import { createCheckRunStore } from "../checks/record.ts";
import { Keyring } from "../crypto/keyring.ts";
import { ManualClock } from "../lib/clock.ts";
import { systemRandom } from "../lib/random.ts";
import { listTables, type Database } from "./database.ts";
import { SCHEMA_TABLES } from "./schema.ts";
import { createKeyStore } from "./key-store.ts";
import { MIGRATIONS } from "./migrations/index.ts";
import { migrate, migrationStatus } from "./migrator.ts";

async function ready(db: Database): Promise<{ keyring: Keyring; audit: AuditLog; clock: ManualClock }> {
  const clock = new ManualClock();
  const outcome = await migrate(db, clock);
  assert.equal(outcome.error, undefined);
  const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(db), clock, random: systemRandom });
  await keyring.ensureKeys();
  const audit = new AuditLog({ database: db, clock, random: systemRandom, signer: () => keyring.signer(), checkpointEvery: 10 });
  return { keyring, audit, clock };
}

forEachDialect("migrations", (fx) => {
  it("applies every migration in order and records it", async () => {
    const db = await fx.empty();
    const outcome = await migrate(db, new ManualClock());
    assert.deepEqual(outcome.results.map((r) => r.status), MIGRATIONS.map(() => "applied"));
    const rows = await db.db.selectFrom("bulwark_migrations").select(["version", "name"]).orderBy("version").execute();
    assert.deepEqual(rows.map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
    const again = await migrate(db, new ManualClock());
    assert.deepEqual(again.results, [], "a second run has nothing to do");
  });

  it("SCHEMA_TABLES names exactly the tables a fully migrated database holds (open-app's damage check reads it)", async () => {
    const db = await fx.empty();
    assert.equal((await migrate(db, new ManualClock())).error, undefined);
    const listed = await listTables(db);
    assert.deepEqual([...SCHEMA_TABLES].sort(), listed.filter((t) => t !== "revocation_counter").sort());
  });

  it("refuses a database whose schema is newer than the code", async () => {
    const db = await fx.empty();
    await migrate(db, new ManualClock());
    await db.db.insertInto("bulwark_migrations").values({ version: 999, name: "future", applied_at: 0 }).execute();
    await assert.rejects(migrationStatus(db), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_DB_NEWER" && /999/.test(e.message));
    await assert.rejects(migrate(db, new ManualClock()), /newer than this Bulwark/);
  });

  it("rolls back a failing migration, reports it, and does not run the ones after it", async () => {
    const db = await fx.empty();
    const broken = [
      ...MIGRATIONS,
      { version: 900, name: "half", up: async (k: any) => { await k.schema.createTable("half_done").addColumn("x", "integer").execute(); throw new Error("boom"); } },
      { version: 901, name: "after", up: async () => {} },
    ];
    const outcome = await migrate(db, new ManualClock(), broken);
    assert.equal(outcome.error?.code, "BULWARK_ERR_MIGRATION");
    assert.deepEqual(outcome.results.slice(-2).map((r) => r.status), ["failed", "not-run"]);
    const tables = db.dialect === "sqlite"
      ? (await sql<{ name: string }>`SELECT name FROM sqlite_master WHERE name = 'half_done'`.execute(db.db)).rows
      : (await sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables WHERE table_name = 'half_done'`.execute(db.db)).rows;
    assert.equal(tables.length, 0, "the failed migration's table was rolled back");
    const status = await migrationStatus(db, broken);
    assert.deepEqual(status.pending.map((m) => m.version), [900, 901]);
  });
});

forEachDialect("key store", (fx) => {
  it("keeps one current key per purpose and reopens with the same keys", async () => {
    const db = await fx.empty();
    await migrate(db, new ManualClock());
    const store = createKeyStore(db);
    const master = systemRandom.bytes(32);
    const keyring = await Keyring.open({ masterKey: master, store, clock: new ManualClock(), random: systemRandom });
    await keyring.ensureKeys();
    const ct = keyring.encrypt("hello", { table: "t", column: "c", row: "r" });
    const second = await keyring.rotateDataKey();
    const keys = await store.listKeys();
    assert.equal(keys.filter((k) => k.purpose === "data" && k.status === "current").length, 1);
    assert.equal(keys.find((k) => k.status === "current" && k.purpose === "data")?.id, second);
    const reopened = await Keyring.open({ masterKey: master, store, clock: new ManualClock(), random: systemRandom });
    assert.equal(reopened.decryptString(ct, { table: "t", column: "c", row: "r" }), "hello");
    await assert.rejects(Keyring.open({ masterKey: systemRandom.bytes(32), store, clock: new ManualClock(), random: systemRandom }), /master key/);
  });
});

forEachDialect("audit log", (fx) => {
  it("appends a linear chain that verifies", async () => {
    const db = await fx.empty();
    const { audit, clock } = await ready(db);
    for (let i = 0; i < 25; i++) {
      clock.advance(1000);
      await audit.append({ type: "test.event", actor: "tester", subject: `s${i}`, data: { i, nested: { b: 2, a: 1 } } });
    }
    const report = await audit.verify();
    assert.equal(report.ok, true);
    assert.equal(report.events, 25);
    assert.equal(report.checkpointsChecked, 2, "automatic checkpoints at #10 and #20");
    const [first] = await audit.tail(25);
    assert.equal(first?.prevHash, GENESIS_HASH);
    assert.deepEqual(first?.data, { i: 0, nested: { a: 1, b: 2 } });
  });

  it("names the altered event", async () => {
    const db = await fx.empty();
    const { audit } = await ready(db);
    for (let i = 0; i < 5; i++) await audit.append({ type: "t", data: { i } });
    await db.db.updateTable("audit_events").set({ data: '{"i":99}' }).where("seq", "=", 3).execute();
    const report = await audit.verify();
    assert.equal(report.ok, false);
    assert.equal(report.problem?.seq, 3);
    assert.match(report.problem?.problem ?? "", /altered/);
  });

  it("names a deleted event, in the middle and at the end", async () => {
    const db = await fx.empty();
    const { audit } = await ready(db);
    for (let i = 0; i < 5; i++) await audit.append({ type: "t", data: { i } });
    await db.db.deleteFrom("audit_events").where("seq", "=", 5).execute();
    let report = await audit.verify();
    assert.equal(report.problem?.seq, 5);
    assert.match(report.problem?.problem ?? "", /missing/);
    await db.db.deleteFrom("audit_events").where("seq", "=", 2).execute();
    report = await audit.verify();
    assert.equal(report.problem?.seq, 2);
  });

  it("names reordered events", async () => {
    const db = await fx.empty();
    const { audit } = await ready(db);
    for (let i = 0; i < 5; i++) await audit.append({ type: "t", data: { i } });
    await db.db.updateTable("audit_events").set({ seq: 100 }).where("seq", "=", 2).execute();
    await db.db.updateTable("audit_events").set({ seq: 2 }).where("seq", "=", 3).execute();
    await db.db.updateTable("audit_events").set({ seq: 3 }).where("seq", "=", 100).execute();
    const report = await audit.verify();
    assert.equal(report.ok, false);
    assert.equal(report.problem?.seq, 2);
  });

  it("catches a whole-table rewrite against an exported checkpoint", async () => {
    const db = await fx.empty();
    const { audit, keyring } = await ready(db);
    for (let i = 0; i < 5; i++) await audit.append({ type: "t", data: { i } });
    const cp = await audit.checkpoint();
    assert.ok(cp);
    const exported = [{ ...cp, publicKey: keyring.publicKeys()[cp.keyId] as string }];
    // The attacker rewrites event 2 and recomputes every hash after it, head included, and deletes the stored checkpoints.
    const rows = await db.db.selectFrom("audit_events").selectAll().orderBy("seq").execute();
    let prev = GENESIS_HASH;
    for (const r of rows) {
      const data = Number(r.seq) === 2 ? '{"i":"forged"}' : r.data;
      const hash = eventHash({ seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at: Number(r.at), requestId: r.request_id, prevHash: prev, data });
      await db.db.updateTable("audit_events").set({ data, prev_hash: prev, hash }).where("seq", "=", r.seq).execute();
      prev = hash;
    }
    await db.db.updateTable("audit_head").set({ hash: prev }).where("id", "=", 1).execute();
    await db.db.deleteFrom("audit_checkpoints").execute();
    assert.equal((await audit.verify()).ok, true, "the rewritten chain is self-consistent");
    const report = await audit.verify({ exported });
    assert.equal(report.ok, false);
    assert.equal(report.problem?.seq, 5);
    assert.match(report.problem?.problem ?? "", /checkpoint/);
  });

  it("rejects a forged checkpoint signature", async () => {
    const db = await fx.empty();
    const { audit } = await ready(db);
    for (let i = 0; i < 3; i++) await audit.append({ type: "t" });
    await audit.checkpoint();
    const sig = Buffer.from((await audit.checkpoints())[0]!.signature, "base64url");
    sig[0]! ^= 1;
    await db.db.updateTable("audit_checkpoints").set({ signature: sig.toString("base64url") }).execute();
    const report = await audit.verify();
    assert.equal(report.ok, false);
    assert.match(report.problem?.problem ?? "", /invalid signature/);
  });

  it("keeps one chain when two writers with stale heads append alternately", async () => {
    const db = await fx.empty();
    const { audit, keyring, clock } = await ready(db);
    // Same checkpoint interval as `audit`: verify holds stored checkpoints to one schedule for every writer.
    const other = new AuditLog({ database: db, clock, random: systemRandom, signer: () => keyring.signer(), checkpointEvery: 10 });
    for (let i = 0; i < 20; i++) {
      await (i % 2 ? audit : other).append({ type: "t", data: { i } });
    }
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? audit : other).append({ type: "p", data: { i } })));
    const report = await audit.verify();
    assert.equal(report.ok, true);
    assert.equal(report.events, 40);
  });

  it("rolls an event back with the transaction it was appended in, and the chain stays whole", async () => {
    const db = await fx.empty();
    const { audit } = await ready(db);
    await audit.append({ type: "before" });
    await assert.rejects(db.transaction(async (trx) => {
      await audit.appendIn(trx, { type: "inside" });
      throw new Error("abort");
    }), /abort/);
    await audit.append({ type: "after" });
    const report = await audit.verify();
    assert.equal(report.ok, true);
    assert.deepEqual((await audit.tail(10)).map((e) => e.type), ["before", "after"]);
  });

  it("refuses oversized events", async () => {
    const db = await fx.empty();
    const { audit } = await ready(db);
    await assert.rejects(audit.append({ type: "t", data: { blob: "x".repeat(70_000) } }), /larger than/);
    await assert.rejects(audit.append({ type: "t".repeat(600) }), /longer than/);
  });
});

forEachDialect("check runs", (fx) => {
  it("records a run with its findings and lists it", async () => {
    const db = await fx.empty();
    const { audit, clock } = await ready(db);
    const store = createCheckRunStore({ database: db, audit, clock, random: systemRandom });
    const findings = Array.from({ length: 450 }, (_, i) => ({
      id: "ssh.root-login", severity: i === 7 ? ("critical" as const) : ("low" as const), title: `t${i}`, detail: "d", evidence: { i }, remediation: "r",
    }));
    const id = await store.record({ check: "ssh", findings, extra: { effective: { permitrootlogin: "yes" } } });
    const [run] = await store.list({ check: "ssh" });
    assert.equal(run?.id, id);
    assert.equal(run?.findings, 450);
    assert.equal(run?.maxSeverity, "critical");
    const back = await store.findings(id);
    assert.equal(back.length, 450);
    assert.deepEqual(back[7]?.evidence, { i: 7 });
    assert.equal((await audit.tail(1))[0]?.type, "check.recorded");
  });
});
