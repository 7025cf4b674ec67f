// Attacks on the stored audit log (and defects that made honest logs unverifiable), on SQLite and PostgreSQL:
// each must now be caught by verify, or refused at append. ASVS 16.4.2 (logs cannot be modified unseen).
import assert from "node:assert/strict";
import { it } from "node:test";
import { sql } from "kysely";
import { rechain } from "../../test/helpers/audit-tamper.ts";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { Keyring } from "../crypto/keyring.ts";
import { ManualClock } from "../lib/clock.ts";
import { systemRandom } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { createKeyStore } from "../store/key-store.ts";
import { migrate } from "../store/migrator.ts";
import { AuditLog } from "./audit-log.ts";

const EVERY = 10;

async function ready(db: Database): Promise<{ keyring: Keyring; audit: AuditLog; clock: ManualClock; reopen: () => AuditLog }> {
  const clock = new ManualClock();
  assert.equal((await migrate(db, clock)).error, undefined);
  const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(db), clock, random: systemRandom });
  await keyring.ensureKeys();
  const reopen = (): AuditLog => new AuditLog({ database: db, clock, random: systemRandom, signer: () => keyring.signer(), checkpointEvery: EVERY });
  return { keyring, audit: reopen(), clock, reopen };
}

async function append(audit: AuditLog, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await audit.append({ type: "t", actor: "a", data: { i } });
}

async function checkpointSeqs(db: Database): Promise<number[]> {
  return (await db.db.selectFrom("audit_checkpoints").select("seq").orderBy("seq").execute()).map((r) => Number(r.seq));
}

forEachDialect("audit log under attack", (fx) => {
  it("takes the scheduled checkpoint when the Nth event is appended inside a transaction", async () => {
    const db = await fx.fresh();
    const { audit } = await ready(db);
    for (let seq = 1; seq <= 35; seq++) {
      if (seq % EVERY === 0) await db.transaction((trx) => audit.appendIn(trx, { type: "role.granted", actor: "admin", subject: `u${seq}` }));
      else await audit.append({ type: "t" });
    }
    assert.deepEqual(await checkpointSeqs(db), [10, 20, 30]);
    const report = await audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
    assert.equal(report.checkpointsChecked, 3);
  });

  it("keeps the schedule for a writer that only appends inside transactions, and a rolled-back checkpoint goes with its event", async () => {
    const db = await fx.fresh();
    const { reopen } = await ready(db);
    const writer = reopen();
    for (let i = 0; i < 29; i++) await db.transaction((trx) => writer.appendIn(trx, { type: "t", data: { i } }));
    await assert.rejects(db.transaction(async (trx) => {
      await writer.appendIn(trx, { type: "inside" });
      throw new Error("abort");
    }), /abort/);
    assert.deepEqual(await checkpointSeqs(db), [10, 20], "the checkpoint at #30 rolled back with its event");
    await db.transaction((trx) => writer.appendIn(trx, { type: "t" }));
    assert.deepEqual(await checkpointSeqs(db), [10, 20, 30]);
    assert.equal((await reopen().verify()).ok, true);
  });

  it("attack: a deleted stored checkpoint fails verify", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 35);
    await db.db.deleteFrom("audit_checkpoints").where("seq", "=", 20).execute();
    const report = await reopen().verify();
    assert.equal(report.ok, false);
    assert.equal(report.problem?.seq, 11);
    assert.match(report.problem?.problem ?? "", /no stored checkpoint.*deleted/);
  });

  it("attack: the newest events rewritten with their head and checkpoints fail once the run outgrows the schedule; a shorter run is reported as uncovered", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 25);
    await db.db.updateTable("audit_events").set({ actor: "framed" }).where("seq", "=", 13).execute();
    await rechain(db, 13);
    await db.db.deleteFrom("audit_checkpoints").where("seq", ">=", 13).execute();
    const rewritten = await reopen().verify();
    assert.equal(rewritten.ok, false);
    assert.match(rewritten.problem?.problem ?? "", /#11 to #25 .*newest events were rewritten/);

    const other = await fx.fresh();
    const second = await ready(other);
    await append(second.audit, 25);
    await other.db.deleteFrom("audit_events").where("seq", ">", 15).execute();
    await other.db.deleteFrom("audit_checkpoints").where("seq", ">", 15).execute();
    await rechain(other, 999);
    const truncated = await second.reopen().verify();
    assert.equal(truncated.ok, true, "a truncation this short is invisible to the database alone (docs/audit-log.md)");
    assert.equal(truncated.lastCheckpointSeq, 10);
    assert.equal(truncated.uncovered, 5, "and the report says how many events no signature covers");
  });

  it("attack: a row stored at position 0 or below fails verify", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 3);
    const first = await db.db.selectFrom("audit_events").selectAll().where("seq", "=", 1).executeTakeFirstOrThrow();
    await db.db.insertInto("audit_events").values({ ...first, seq: -5, id: "evt_hidden" }).execute();
    const report = await reopen().verify();
    assert.equal(report.ok, false);
    assert.equal(report.problem?.id, "evt_hidden");
    assert.match(report.problem?.problem ?? "", /#-5 .*outside the chain/);
  });

  it("attack: a head moved back fails verify, appends fail at once naming the repair, and repairHead restores them", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 25);
    const twentieth = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", 20).executeTakeFirstOrThrow();
    await db.db.updateTable("audit_head").set({ seq: 20, hash: twentieth.hash }).where("id", "=", 1).execute();
    const report = await reopen().verify();
    assert.equal(report.ok, false);
    assert.match(report.problem?.problem ?? "", /head records #20, but the log continues to #25/);
    const writer = reopen();
    await assert.rejects(writer.append({ type: "auth.login.succeeded" }), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_HEAD_BEHIND" && /repair-head/.test(e.message));
    await assert.rejects(db.transaction((trx) => writer.appendIn(trx, { type: "t" })), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_HEAD_BEHIND");
    const repaired = await writer.repairHead("cli:tester");
    assert.deepEqual([repaired.from.seq, repaired.to.seq], [20, 25]);
    await assert.rejects(writer.repairHead("cli:tester"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_HEAD_OK");
    assert.equal((await writer.append({ type: "after" })).seq, 27, "#26 records the repair");
    assert.equal((await writer.tail(2))[0]?.type, "audit.head-repaired");
    assert.equal((await reopen().verify()).ok, true);
  });

  it("attack: a checkpoint over a head moved back (to a signed event or not) or a deleted head row is refused, naming the head and the repair; nothing is stored", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 25);
    const stored = await checkpointSeqs(db);
    const headAt = async (seq: number): Promise<void> => {
      const row = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", seq).executeTakeFirstOrThrow();
      await db.db.updateTable("audit_head").set({ seq, hash: row.hash }).where("id", "=", 1).execute();
    };
    // #20 carries a scheduled checkpoint (which the checkpoint used to hand back as the answer), #23 none.
    for (const seq of [20, 23]) {
      await headAt(seq);
      await assert.rejects(reopen().checkpoint(), (e: Error & { code?: string }) =>
        e.code === "BULWARK_ERR_AUDIT_HEAD_BEHIND" && new RegExp(`cannot sign a checkpoint: event #${seq + 1} is already stored.*records #${seq}.*repair-head`).test(e.message));
    }
    await db.db.deleteFrom("audit_head").execute();
    await assert.rejects(reopen().checkpoint(), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_HEAD_MISSING" && /cannot sign a checkpoint.*repair-head/.test(e.message));
    assert.deepEqual(await checkpointSeqs(db), stored, "no checkpoint stored at a head that does not record the log");
    // Repaired, the head is signed again.
    const writer = reopen();
    await writer.repairHead("cli:tester");
    assert.equal((await writer.checkpoint())?.seq, 26);
    assert.equal((await reopen().verify()).ok, true);
  });

  it("refuses to move the head over a broken chain", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 5);
    await db.db.updateTable("audit_events").set({ actor: "x" }).where("seq", "=", 2).execute();
    await db.db.updateTable("audit_head").set({ seq: 1 }).where("id", "=", 1).execute();
    await assert.rejects(reopen().repairHead("cli:tester"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_CHAIN_BROKEN" && /#2/.test(e.message));
  });

  it("refuses lone surrogates in type, actor, subject and request id; data keeps them and verifies", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    for (const input of [{ type: "t\ud800" }, { type: "t", actor: "\udc00" }, { type: "t", subject: "x\ud800y" }, { type: "t", requestId: "r\ud83d" }]) {
      await assert.rejects(audit.append(input), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_FIELD" && /well-formed/.test(e.message), JSON.stringify(input));
    }
    await audit.append({ type: "t", actor: "emoji \u{1F600} is fine", data: { lone: "\ud800", [`k\udc00`]: 1 } });
    await append(audit, 2);
    assert.equal((await reopen().verify()).ok, true);
    const [event] = await reopen().tail(3);
    assert.deepEqual(event?.data, { lone: "\ud800", [`k\udc00`]: 1 });
  });

  it("without a signer, stored checkpoints with garbage signatures are not counted as verified", async () => {
    const db = await fx.fresh();
    const { audit, clock } = await ready(db);
    await append(audit, 25);
    await db.db.updateTable("audit_checkpoints").set({ signature: "AAAA" }).execute();
    const report = await new AuditLog({ database: db, clock, random: systemRandom }).verify();
    assert.equal(report.checkpointsChecked, 0);
    assert.equal(report.checkpointsUnchecked, 2);
    assert.equal(report.uncovered, 25);
  });

  it("hands back an altered row's unparseable data verbatim as rawData instead of throwing", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 3);
    await db.db.updateTable("audit_events").set({ data: "{not json" }).where("seq", "=", 2).execute();
    await db.db.updateTable("audit_events").set({ data: "[1]" }).where("seq", "=", 3).execute();
    const events = [];
    for await (const e of reopen().events()) events.push(e);
    assert.deepEqual(events.map((e) => e.rawData), [undefined, "{not json", "[1]"]);
    assert.deepEqual((await reopen().tail(2)).map((e) => e.rawData), ["{not json", "[1]"]);
    assert.equal((await reopen().verify()).problem?.seq, 2);
  });

  it("verify while other writers append: an intact log stays intact, and a log past its head is still caught", async () => {
    const db = await fx.fresh();
    const { keyring, clock, reopen } = await ready(db);
    await append(reopen(), 8);
    const writer = reopen();
    // Appends land after verify read the head and before it reads the checkpoints and walks: one of them is
    // due the checkpoint at #10, which covers an event past the head that verify read.
    class Busy extends AuditLog {
      #done = false;
      override async checkpoints() {
        if (!this.#done) {
          this.#done = true;
          await append(writer, 5);
        }
        return super.checkpoints();
      }
    }
    const busy = new Busy({ database: db, clock, random: systemRandom, signer: () => keyring.signer(), checkpointEvery: EVERY });
    const report = await busy.verify();
    assert.equal(report.ok, true, report.problem?.problem);
    assert.equal(report.lastSeq, 8, "verified up to the head it read");
    assert.deepEqual(await checkpointSeqs(db), [10]);
    assert.equal((await reopen().verify()).lastSeq, 13);
    // The head moved back by hand: no append moves it again, so the rows past it are still reported.
    await db.db.updateTable("audit_head").set({ seq: 12, hash: (await db.db.selectFrom("audit_events").select("hash").where("seq", "=", 12).executeTakeFirstOrThrow()).hash }).where("id", "=", 1).execute();
    const moved = await reopen().verify();
    assert.equal(moved.ok, false);
    assert.match(moved.problem?.problem ?? "", /head records #12, but the log continues to #13/);
  });

  it("a row at a position or time past what a JavaScript number holds is named by verify, not a crash", async () => {
    const db = await fx.fresh();
    const { reopen } = await ready(db);
    await append(reopen(), 3);
    const copy = async (seq: string, at: string): Promise<void> => {
      await sql`INSERT INTO audit_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) SELECT ${sql.raw(seq)}, 'evt_forged', type, actor, subject, data, ${sql.raw(at)}, request_id, prev_hash, hash FROM audit_events WHERE seq = 3`.execute(db.db);
    };
    await copy("1152921504606846976", "at");
    const far = await reopen().verify();
    assert.equal(far.ok, false);
    assert.match(far.problem?.problem ?? "", /event #1152921504606846976 \(evt_forged\) is stored outside the chain/);
    await db.db.deleteFrom("audit_events").where("id", "=", "evt_forged").execute();
    await db.db.updateTable("audit_events").set({ at: sql`1152921504606846976` as unknown as number }).where("seq", "=", 2).execute();
    const late = await reopen().verify();
    assert.equal(late.ok, false);
    assert.match(late.problem?.problem ?? "", /event #2 \(evt_\w+\) holds the time 1152921504606846976/);
  });

  it("events since a time: from the first one at or after it, every later one, even when the clock stepped back", async () => {
    const db = await fx.fresh();
    const { clock, reopen } = await ready(db);
    const audit = reopen();
    const t0 = clock.now();
    await audit.append({ type: "t", data: { i: 1 } });
    clock.set(t0 + 10_000);
    await audit.append({ type: "t", data: { i: 2 } });
    clock.set(t0 + 4_000); // an NTP correction
    await audit.append({ type: "t", data: { i: 3 } });
    clock.set(t0 + 20_000);
    await audit.append({ type: "t", data: { i: 4 } });
    const since = async (at: number): Promise<number[]> => {
      const seqs = [];
      for await (const e of reopen().events({ sinceAt: at })) seqs.push(e.seq);
      return seqs;
    };
    assert.deepEqual(await since(t0 + 8_000), [2, 3, 4], "no hole at #3");
    assert.deepEqual(await since(t0 + 15_000), [4]);
    assert.deepEqual(await since(t0 + 30_000), []);
    assert.deepEqual(await since(t0), [1, 2, 3, 4]);
  });

  it("an altered row whose data no append could write (a number past a double, deep nesting) is handed back as rawData", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 3);
    const deep = `${"[".repeat(40)}${"]".repeat(40)}`;
    await db.db.updateTable("audit_events").set({ data: '{"a":1e400}' }).where("seq", "=", 2).execute();
    await db.db.updateTable("audit_events").set({ data: `{"a":${deep}}` }).where("seq", "=", 3).execute();
    const events = [];
    for await (const e of reopen().events()) events.push(e);
    assert.deepEqual(events.map((e) => e.rawData), [undefined, '{"a":1e400}', `{"a":${deep}}`]);
    assert.deepEqual((await reopen().tail(2)).map((e) => e.data), [{}, {}]);
    assert.equal((await reopen().verify()).problem?.seq, 2);
  });

  it("a head repair whose event cannot be recorded moves nothing: the repair and its event commit together", async () => {
    const db = await fx.fresh();
    const { keyring, clock, reopen } = await ready(db);
    await append(reopen(), 12);
    const eleventh = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", 11).executeTakeFirstOrThrow();
    await db.db.updateTable("audit_head").set({ seq: 11, hash: eleventh.hash }).where("id", "=", 1).execute();
    // The process dies (here: the append throws) after the head moved and before the event that records it.
    class Dying extends AuditLog {
      override async appendIn(...args: Parameters<AuditLog["appendIn"]>) {
        if (args[1].type === "audit.head-repaired") throw new Error("killed");
        return super.appendIn(...args);
      }
    }
    const dying = new Dying({ database: db, clock, random: systemRandom, signer: () => keyring.signer(), checkpointEvery: EVERY });
    await assert.rejects(dying.repairHead("cli:tester"), /killed/);
    const head = await db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow();
    assert.equal(Number(head.seq), 11, "the head did not move without its event");
    const repaired = await reopen().repairHead("cli:tester");
    assert.deepEqual([repaired.from.seq, repaired.to.seq], [11, 12]);
    const last = await db.db.selectFrom("audit_events").select(["seq", "type"]).orderBy("seq", "desc").limit(1).executeTakeFirstOrThrow();
    assert.deepEqual([Number(last.seq), last.type], [13, "audit.head-repaired"]);
    assert.equal((await reopen().verify()).ok, true);
  });

  // What a running process committed after its newest checkpoint, cut away or rewritten under it, passes every check
  // against stored rows (the chain links, the head matches); only the process remembers. ASVS 16.4.2.
  it("attack: events committed inside the process's transactions, then cut back to the checkpoint, make its next checkpoint refuse (the maintenance pass, with no append in between), naming the position and hash", async () => {
    const db = await fx.fresh();
    const { audit } = await ready(db);
    await append(audit, 5);
    assert.equal((await audit.checkpoint())?.seq, 5);
    // Each in its own transaction, as every audited API change: #6 is known committed once #7's transaction reads it back.
    const inTransaction: Array<{ seq: number; hash: string }> = [];
    for (const subject of ["usr_a", "usr_b"]) {
      const event = await db.transaction((trx) => audit.appendIn(trx, { type: "user.locked", actor: "usr_admin", subject }));
      inTransaction.push({ seq: event.seq, hash: event.hash });
    }
    const fifth = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", 5).executeTakeFirstOrThrow();
    await db.db.deleteFrom("audit_events").where("seq", ">", 5).execute();
    await db.db.updateTable("audit_head").set({ seq: 5, hash: fifth.hash }).where("id", "=", 1).execute();
    // The head is at a stored checkpoint, which checkpoint() used to hand back as its answer.
    await assert.rejects(audit.checkpoint(), (e: Error & { code?: string; details?: Record<string, unknown> }) =>
      e.code === "BULWARK_ERR_AUDIT_COMMITTED_ALTERED" && /cannot sign a checkpoint: event #6 .*which this process appended or signed and saw committed, is no longer stored \(the chain head records #5\)/.test(e.message) &&
      e.details?.committedHash === inTransaction[0]!.hash);
    await assert.rejects(db.transaction((trx) => audit.appendIn(trx, { type: "t" })), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_COMMITTED_ALTERED");
    assert.deepEqual(await checkpointSeqs(db), [5], "nothing signed over the cut");
  });

  it("attack: events the process committed, rewritten and re-linked with one event added past them, are never vouched for: its appends go on (linking above what it committed), and every checkpoint after, scheduled or asked, is refused", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await append(audit, 5);
    assert.equal((await audit.checkpoint())?.seq, 5);
    await append(audit, 3);
    await db.db.updateTable("audit_events").set({ actor: "usr_innocent" }).where("seq", ">", 5).execute();
    await rechain(db, 6);
    // The intruder's own event past them: the process's cached head collides, and it reads the intruder's head.
    await reopen().append({ type: "t", actor: "a" });
    await append(audit, EVERY + 2);
    assert.deepEqual(await checkpointSeqs(db), [5], "the scheduled checkpoint was signed over the rewrite");
    await assert.rejects(audit.checkpoint(), (e: Error & { code?: string }) =>
      e.code === "BULWARK_ERR_AUDIT_COMMITTED_ALTERED" && /event #8 .*which this process appended or signed .*now has hash [0-9a-f]{64} at #8/.test(e.message));
    assert.deepEqual(await checkpointSeqs(db), [5]);
  });

  it("what other writers do is never taken for tampering: another process's appends and checkpoints in between, and the process's own transactions rolled back, leave its checkpoints signed", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    const other = reopen();
    await append(audit, 3);
    assert.ok(await audit.checkpoint());
    for (let round = 0; round < 3; round++) {
      await append(other, 4);
      await db.transaction((trx) => audit.appendIn(trx, { type: "t", data: { round } }));
      await assert.rejects(db.transaction(async (trx) => {
        await audit.appendIn(trx, { type: "rolled-back" });
        throw new Error("abort");
      }), /abort/);
      await append(audit, 2);
      await db.transaction((trx) => other.appendIn(trx, { type: "t" }));
      assert.ok(await other.checkpoint());
      assert.ok(await audit.checkpoint(), `round ${round}`);
    }
    assert.equal((await reopen().verify()).ok, true);
  });
});
