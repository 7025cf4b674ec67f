// Reading stored events back: in pages (for verify and export, without loading the log into memory), the
// newest few (for tail), and as values. Bulwark only ever stores the canonical JSON of an object as an event's
// data, so anything else is an altered row: it is handed back verbatim and flagged, never thrown on, so a
// reader can still show the log and the evidence in it.
import { sql, type Kysely } from "kysely";
import { canonicalJSON } from "./canonical.ts";
import type { Database } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";
import type { ChainFields } from "./chain.ts";

const PAGE = 5000;

/** An event as stored: its chain fields (data as the stored text) and its hash. */
export type StoredRow = ChainFields & { hash: string };

export interface ReadOptions {
  /** Only events after this position. */
  afterSeq?: number;
  /** From the first event at or after this time (epoch ms), then every later one, whatever its time. */
  sinceAt?: number;
  /** Only events at or before this position (verify: the head read before the walk; later appends are not its business). */
  untilSeq?: number;
}

export interface AuditEvent {
  seq: number;
  id: string;
  type: string;
  actor: string;
  subject: string;
  data: Record<string, unknown>;
  /**
   * Only for a row whose stored data is not a JSON object in canonical form (Bulwark never writes other text: the row was altered): the
   * stored text verbatim, which is what the event's hash covers. `data` is then `{}`.
   */
  rawData?: string;
  at: number;
  requestId: string;
  prevHash: string;
  hash: string;
}

/** The parsed data, or, when the stored text is not a JSON object in canonical form, that text verbatim as `rawData`. */
export type StoredData = { data: Record<string, unknown>; rawData?: undefined } | { data: null; rawData: string };

/**
 * Parses stored event data.
 *
 * @example
 * parseStoredData('{"i":1}')   // { data: { i: 1 } }
 * parseStoredData("{not json") // { data: null, rawData: "{not json" }
 * parseStoredData('{"b":1,"a":2}') // { data: null, rawData: '{"b":1,"a":2}' } (not canonical: not Bulwark's)
 */
export function parseStoredData(text: string): StoredData {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { data: null, rawData: text };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return { data: null, rawData: text };
  // Bulwark stores only canonical text. Other text (keys out of order, spaces) was written by hand: its hash covers
  // that text, so it travels verbatim too, and an offline verify then reaches the database's verdict.
  // Text no append writes (a number too large for a double, nesting past the limit) cannot be put in canonical
  // form at all: it is an altered row like any other, handed back verbatim rather than failing the reader.
  let canonical: string;
  try {
    canonical = canonicalJSON(value);
  } catch {
    return { data: null, rawData: text };
  }
  if (canonical !== text) return { data: null, rawData: text };
  return { data: value as Record<string, unknown> };
}

/** A stored row as an event value. */
export function toEvent(r: StoredRow): AuditEvent {
  const stored = parseStoredData(r.data);
  const event: AuditEvent = { seq: r.seq, id: r.id, type: r.type, actor: r.actor, subject: r.subject, data: stored.data ?? {}, at: r.at, requestId: r.requestId, prevHash: r.prevHash, hash: r.hash };
  if (stored.rawData !== undefined) event.rawData = stored.rawData;
  return event;
}

/**
 * Stored events from `from` to `to` (inclusive; null: to the end) in seq order, a page at a time, read through `db`:
 * a transaction's executor when the caller is inside one (on SQLite any other reader would wait for that
 * transaction to end), else the database's (storedPages on PostgreSQL).
 */
export async function* pagesIn(db: Kysely<Schema>, from: number, to: number | null): AsyncGenerator<StoredRow[]> {
  let after = from - 1;
  for (;;) {
    let q = db.selectFrom("audit_events").selectAll().where("seq", ">", after).orderBy("seq").limit(PAGE);
    if (to !== null) q = q.where("seq", "<=", to);
    const page = await q.execute();
    if (page.length === 0) return;
    yield page.map((r) => ({
      seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at: Number(r.at),
      requestId: r.request_id, prevHash: r.prev_hash, hash: r.hash, data: r.data,
    }));
    if (page.length < PAGE) return;
    after = Number(page[page.length - 1]!.seq);
  }
}

/**
 * Where a window "since a time" starts: the position of the first event after `afterSeq` stored at or after `at`,
 * or null when there is none. From there every later event belongs to the window, whatever its time: times come
 * from the writers' clocks, which can step back (an NTP correction, a node behind another), so filtering each
 * event by time left holes in an intact log. `audit export --since` and `GET /api/v1/audit/events?since=` share it.
 */
export async function firstSeqSince(db: Kysely<Schema>, at: number, afterSeq = 0): Promise<number | null> {
  const first = await db.selectFrom("audit_events").select(sql<string | null>`CAST(MIN(seq) AS TEXT)`.as("seq"))
    .where("at", ">=", at).where("seq", ">", afterSeq).executeTakeFirst();
  return first?.seq == null ? null : Number(first.seq);
}

/** Stored events in seq order, a page (array) at a time. */
export async function* storedPages(database: Database, options: ReadOptions = {}): AsyncGenerator<StoredRow[]> {
  if (options.sinceAt !== undefined) {
    // The time only finds where to start (firstSeqSince); from there every event follows in order. Filtering each
    // page by time left holes in an intact log, which an offline verify of the export then reported as deletions.
    const first = await firstSeqSince(database.db, options.sinceAt, options.afterSeq ?? 0);
    if (first === null) return;
    const { sinceAt: _, ...rest } = options;
    yield* storedPages(database, { ...rest, afterSeq: first - 1 });
    return;
  }
  if (database.sqlite) {
    yield* sqlitePages(database, options.afterSeq ?? 0, options.untilSeq ?? null);
    return;
  }
  yield* pagesIn(database.db, (options.afterSeq ?? 0) + 1, options.untilSeq ?? null);
}

/**
 * SQLite fast path for verify and export: one prepared statement read as arrays, in pages so the
 * write lock is never held off by a long read, without building two objects per row.
 */
async function* sqlitePages(database: Database, afterSeq: number, untilSeq: number | null): AsyncGenerator<StoredRow[]> {
  const stmt = database.sqlite!.prepare(
    `SELECT seq, id, type, actor, subject, data, at, request_id, prev_hash, hash FROM audit_events WHERE seq > ?${untilSeq === null ? "" : " AND seq <= ?"} ORDER BY seq LIMIT ?`,
  );
  stmt.setReturnArrays(true);
  let after = afterSeq;
  for (;;) {
    const page = (untilSeq === null ? stmt.all(after, PAGE * 4) : stmt.all(after, untilSeq, PAGE * 4)) as unknown as Array<[number, string, string, string, string, string, number, string, string, string]>;
    yield page.map((r) => ({ seq: r[0], id: r[1], type: r[2], actor: r[3], subject: r[4], data: r[5], at: r[6], requestId: r[7], prevHash: r[8], hash: r[9] }));
    if (page.length < PAGE * 4) return;
    after = page[page.length - 1]![0];
  }
}

/** The newest `count` events, oldest first. */
export async function tailEvents(database: Database, count: number): Promise<AuditEvent[]> {
  const rows = await database.db.selectFrom("audit_events").selectAll().orderBy("seq", "desc").limit(count).execute();
  return rows.reverse().map((r) =>
    toEvent({ seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at: Number(r.at), requestId: r.request_id, prevHash: r.prev_hash, hash: r.hash, data: r.data }),
  );
}
