// Reading what a test's requests appended to the audit log: the newest position before, the events after it.
import type { Kysely } from "kysely";
import type { Schema } from "../../src/store/schema.ts";

/** An audit event as the tests read it: its data parsed, and as stored (to look for what must never be in it). */
export interface AuditEventRow {
  seq: number;
  type: string;
  actor: string;
  subject: string;
  data: Record<string, unknown>;
  raw: string;
}

/** The audit log's newest position (events after it belong to the test). */
export async function auditHead(db: Kysely<Schema>): Promise<number> {
  const row = await db.selectFrom("audit_events").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst();
  return Number(row?.seq ?? 0);
}

/**
 * Events after position `mark`, oldest first, optionally of the given types only.
 *
 * @example
 * const mark = await auditHead(fx.app.db.db);
 * // … requests …
 * const refused = await eventsSince(fx.app.db.db, mark, ["auth.reauth.throttled"]);
 */
export async function eventsSince(db: Kysely<Schema>, mark: number, types?: string[]): Promise<AuditEventRow[]> {
  let q = db.selectFrom("audit_events").select(["seq", "type", "actor", "subject", "data"]).where("seq", ">", mark);
  if (types) q = q.where("type", "in", types);
  const rows = await q.orderBy("seq").execute();
  return rows.map((r) => ({ seq: Number(r.seq), type: r.type, actor: r.actor, subject: r.subject, data: JSON.parse(r.data) as Record<string, unknown>, raw: r.data }));
}
