// What an intruder who can write the database does to the audit log, for the tests that attack it: re-link the chain
// after an edit, rewrite a stretch or the whole log, and store a checkpoint signed with a key they hold (a leaked,
// since-rotated signing key); and a store made by init, to attack.
import { checkpointMessage, eventHash, GENESIS_HASH } from "../../src/audit/chain.ts";
import type { Signer } from "../../src/crypto/signer.ts";
import { toBase64URL } from "../../src/lib/encoding.ts";
import { join } from "node:path";
import { openApp, type OpenedApp } from "../../src/app/index.ts";
import type { ManualClock } from "../../src/lib/clock.ts";
import type { Database } from "../../src/store/database.ts";
import { sql } from "kysely";

/** The stored checkpoints in position order, with the key that signed each. */
export async function checkpointKeys(db: Database): Promise<Array<{ seq: number; key: string }>> {
  return (await db.db.selectFrom("audit_checkpoints").select(["seq", "key_id"]).orderBy("seq").execute()).map((r) => ({ seq: Number(r.seq), key: r.key_id }));
}

/** The recorded chain head's position. */
export async function headSeq(db: Database): Promise<number> {
  return Number((await db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow()).seq);
}

/** What the holder of `key` does: signs the event at `seq` as stored, dated `at`, and stores it as a checkpoint. */
export async function forgeCheckpoint(db: Database, key: Signer, seq: number, at: number): Promise<void> {
  const row = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", seq).executeTakeFirstOrThrow();
  const signature = toBase64URL(key.sign(checkpointMessage(seq, row.hash, at)));
  await db.db.insertInto("audit_checkpoints").values({ seq, hash: row.hash, at, key_id: key.keyId, signature }).execute();
}

/** Recomputes every hash from event #from on, and the head, as anyone with the database can (no key is needed). */
export async function rechain(db: Database, from: number): Promise<void> {
  const rows = await db.db.selectFrom("audit_events").selectAll().orderBy("seq").execute();
  let prev = GENESIS_HASH;
  for (const r of rows) {
    if (Number(r.seq) >= from) {
      const hash = eventHash({ seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at: Number(r.at), requestId: r.request_id, prevHash: prev, data: r.data });
      await db.db.updateTable("audit_events").set({ prev_hash: prev, hash }).where("seq", "=", r.seq).execute();
      prev = hash;
    } else {
      prev = r.hash;
    }
  }
  await db.db.updateTable("audit_head").set({ seq: rows.length ? Number(rows.at(-1)!.seq) : 0, hash: prev }).where("id", "=", 1).execute();
}

/** Rewrites event #seq's data and re-links every later event and the head (rechain). */
export async function rewrite(db: Database, seq: number): Promise<void> {
  await db.db.updateTable("audit_events").set({ data: JSON.stringify({ rewritten: true }) }).where("seq", "=", seq).execute();
  await rechain(db, seq);
}

/**
 * Rewrites the data of every event from #seq on (to `{rewritten: true, seq}`), re-linking them and the head, as anyone
 * with the database can; the checkpoints are left as they are.
 */
export async function rewriteFrom(db: Database, seq: number): Promise<void> {
  const rows = await db.db.selectFrom("audit_events").selectAll().where("seq", ">=", seq - 1).orderBy("seq").execute();
  const first = rows[0]!;
  // From #1 the link before is the first event's own prev_hash (the genesis); else the event before's hash.
  let prev = Number(first.seq) === seq ? first.prev_hash : first.hash;
  for (const r of rows.filter((row) => Number(row.seq) >= seq)) {
    const data = JSON.stringify({ rewritten: true, seq: Number(r.seq) });
    const hash = eventHash({ seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at: Number(r.at), requestId: r.request_id, prevHash: prev, data });
    await db.db.updateTable("audit_events").set({ data, prev_hash: prev, hash }).where("seq", "=", r.seq).execute();
    prev = hash;
  }
  await db.db.updateTable("audit_head").set({ hash: prev }).where("id", "=", 1).execute();
}

/** Rewrites every event (rewriteFrom #1) and deletes every checkpoint: a log that passes for one no checkpoint covers yet. */
export async function rewriteWhole(db: Database): Promise<void> {
  await rewriteFrom(db, 1);
  await db.db.deleteFrom("audit_checkpoints").execute();
}

/** A store made by init in `dir` at the clock's time (SQLite); `reopen` opens it again, as a server start does. */
export async function initStore(dir: string, clock: ManualClock): Promise<{ app: OpenedApp; env: Record<string, string>; reopen: () => Promise<OpenedApp> }> {
  const env = { BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent" };
  const app = await openApp({ env, mode: "init", clock });
  return { app, env, reopen: () => openApp({ env, mode: "open", clock }) };
}

/**
 * Runs `fn` while the SQLite store refuses to append audit events of `type` (a trigger that aborts their insert): the
 * stand-in for any failure of the audit append (a full disk, a head moved behind the log). The trigger goes after.
 */
export async function whileAuditRefuses<T>(db: Database, type: string, fn: () => Promise<T>): Promise<T> {
  if (db.dialect !== "sqlite") throw new Error("whileAuditRefuses installs a SQLite trigger");
  if (!/^[a-z][a-z0-9.-]*$/.test(type)) throw new Error(`not an event type: ${JSON.stringify(type)}`);
  await sql.raw(`CREATE TRIGGER audit_refused_for_test BEFORE INSERT ON audit_events WHEN NEW.type = '${type}' BEGIN SELECT RAISE(ABORT, 'audit store refused the event'); END`).execute(db.db);
  try {
    return await fn();
  } finally {
    await sql.raw("DROP TRIGGER audit_refused_for_test").execute(db.db);
  }
}
