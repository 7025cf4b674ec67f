// The queries of `check logins`, on both dialects: counts are made in the database (a wave of a million failures is a
// GROUP BY, not a million rows read), and sign-ins are read in pages by position.
import { isIPv4 } from "node:net";
import { sql } from "kysely";
import { ipBucket } from "../../accounts/flood/ip-bucket.ts";
import { parseStoredData } from "../../audit/read-events.ts";
import type { Database } from "../../store/database.ts";
import type { SignIn } from "./sign-ins.ts";

const HOUR = 3_600_000;
const LOGIN_TYPES = sql`('auth.login.failed', 'auth.login.throttled', 'auth.login.succeeded')`;
/**
 * Spraying clients kept at most: a botnet of more is still reported, its sign-ins from the rest not marked (and the
 * report says the analysis was incomplete).
 */
const MAX_SPRAYING = 10_000;
/**
 * Address rows read at most by the first query (every address written with a colon is read, to be summed by /64 or
 * merged with its IPv4 spelling): bounded memory for a botnet's million. The second reads at most one row per IPv4
 * client seen among them. Past the cap the rows with the fewest accounts are left out, and a client made of such rows
 * (a /64 rotating one account per address) may be missing: the report then says the analysis was incomplete.
 */
const MAX_ADDRESS_ROWS = 200_000;

/** One address's failures in the window, as the database counts them. */
interface AddressRow {
  ip: string | null;
  n: number | string;
  accounts: number | string;
}

export interface BucketCount {
  bucket: number;
  type: string;
  n: number;
  /** Distinct subjects: accounts, or keyed tags of identifiers that name none. */
  accounts: number;
  /** Events on identifiers that name no account (subject `id:…`). */
  unknown: number;
}

/** Login events over [from, until) per `bucketMs` and type. */
export async function failedByBucket(database: Database, from: number, until: number, bucketMs: number): Promise<BucketCount[]> {
  const { rows } = await sql<{ bucket: number | string; type: string; n: number | string; accounts: number | string; unknown: number | string | null }>`
    SELECT at / ${sql.lit(bucketMs)} AS bucket, type, count(*) AS n, count(DISTINCT subject) AS accounts,
      sum(CASE WHEN subject LIKE 'id:%' THEN 1 ELSE 0 END) AS unknown
    FROM audit_events WHERE type IN ${LOGIN_TYPES} AND at >= ${from} AND at < ${until}
    GROUP BY at / ${sql.lit(bucketMs)}, type`.execute(database.db);
  return rows.map((r) => ({ bucket: Number(r.bucket), type: r.type, n: Number(r.n), accounts: Number(r.accounts), unknown: Number(r.unknown ?? 0) }));
}

/**
 * Failed logins per hour over [from, until), zeros included, from the store's first event on (a younger store has no
 * usual rate to speak of before it: its hours are not counted as quiet ones).
 */
export async function failedBefore(database: Database, from: number, until: number): Promise<{ hours: number[] }> {
  const first = await database.db.selectFrom("audit_events").select((eb) => eb.fn.min("at").as("at")).executeTakeFirst();
  if (first?.at === null || first?.at === undefined) return { hours: [] };
  const start = Math.max(from, Math.floor(Number(first.at) / HOUR) * HOUR);
  if (start >= until) return { hours: [] };
  const { rows } = await sql<{ hour: number | string; n: number | string }>`
    SELECT at / ${sql.lit(HOUR)} AS hour, count(*) AS n FROM audit_events
    WHERE type = 'auth.login.failed' AND at >= ${start} AND at < ${until} GROUP BY at / ${sql.lit(HOUR)}`.execute(database.db);
  const hours = Array.from({ length: Math.ceil((until - start) / HOUR) }, () => 0);
  const firstHour = Math.floor(start / HOUR);
  for (const r of rows) {
    const i = Number(r.hour) - firstHour;
    if (i >= 0 && i < hours.length) hours[i]! += Number(r.n);
  }
  return { hours };
}

/** The spraying clients of a window, and whether a bound left any out (the report says so: an absence then proves nothing). */
export interface SprayingClients {
  /** The clients at or above the bar, the most accounts first, at most MAX_SPRAYING. */
  clients: Array<{ ip: string; failed: number; accounts: number }>;
  /** How many clients reached the bar: more than `clients` holds when past MAX_SPRAYING. */
  total: number;
  /** More address rows than MAX_ADDRESS_ROWS qualified; those with the fewest accounts were not read. */
  rowsCut: boolean;
  /** Address rows the first query read (MAX_ADDRESS_ROWS when cut), for the report. */
  rowsRead: number;
}

/**
 * Clients whose failed logins over [since, until) named at least `min` distinct accounts or unknown identifiers, the
 * most first: an IPv4 address, or an IPv6 /64 (ipBucket, as flood control counts a client: a stuffer on one host
 * taking a new address of its /64 every few tries was as many addresses, each under the bar). An IPv4 client is one
 * whatever its spelling (ipBucket again: ::ffff:a.b.c.d from a node listening on "::", its own 6to4 or Teredo
 * address), so a stuffer splitting its list between spellings is not two clients each under the bar. A client's count
 * sums its addresses' and spellings' (an upper bound: one account tried from two of them counts twice). The address is
 * read from the event's canonical data (`"ip":"…"`); a row whose data is not Bulwark's JSON (altered) names none, and
 * never fails the query.
 */
export async function failedByAddress(database: Database, since: number, until: number, min: number): Promise<SprayingClients> {
  const ip = database.dialect === "postgres"
    ? sql`substring(data from '"ip":"([^"\\\\]*)"')`
    : sql`CASE WHEN json_valid(data) THEN json_extract(data, '$.ip') END`;
  const failedInWindow = sql`type = 'auth.login.failed' AND at >= ${since} AND at < ${until}`;
  // Every address written with a colon is read (an IPv6 address, summed by /64; or another spelling of an IPv4 client);
  // a plain IPv4 address only when it reaches the bar on its own, or a botnet's million would be a million rows. One
  // more row than the cap is asked for, so that a cut is known rather than guessed.
  const { rows } = await sql<AddressRow>`
    SELECT ${ip} AS ip, count(*) AS n, count(DISTINCT subject) AS accounts FROM audit_events WHERE ${failedInWindow}
    GROUP BY 1 HAVING count(DISTINCT subject) >= ${min} OR ${ip} LIKE '%:%' ORDER BY 3 DESC, 1 LIMIT ${sql.lit(MAX_ADDRESS_ROWS + 1)}`.execute(database.db);
  const rowsCut = rows.length > MAX_ADDRESS_ROWS;
  const read = rows.slice(0, MAX_ADDRESS_ROWS);
  // The plain half of an IPv4 client seen under another spelling: 15 accounts as 203.0.113.9 and 15 as
  // ::ffff:203.0.113.9 are 30 from one client, but the first query left the plain row out (under the bar on its own).
  // So those addresses' plain rows are read too: one more pass over the window's failures, its rows at most one per
  // such client (so within the same bound), the list passed as one JSON parameter (both dialects cap a statement's
  // parameters).
  const plainRead = new Set(read.flatMap((r) => (typeof r.ip === "string" && !r.ip.includes(":") ? [r.ip] : [])));
  const spelledOtherwise = new Set<string>();
  for (const r of read) {
    if (typeof r.ip !== "string" || !r.ip.includes(":")) continue;
    const client = ipBucket(r.ip);
    if (isIPv4(client) && !plainRead.has(client)) spelledOtherwise.add(client);
  }
  if (spelledOtherwise.size > 0) {
    const json = JSON.stringify([...spelledOtherwise]);
    const list = database.dialect === "postgres" ? sql`SELECT json_array_elements_text(${json}::json)` : sql`SELECT value FROM json_each(${json})`;
    const plain = await sql<AddressRow>`
      SELECT ${ip} AS ip, count(*) AS n, count(DISTINCT subject) AS accounts FROM audit_events
      WHERE ${failedInWindow} AND ${ip} IN (${list}) GROUP BY 1`.execute(database.db);
    // A loop, not push(...rows): up to 200,000 arguments would overflow the stack.
    for (const r of plain.rows) read.push(r);
  }
  const clients = new Map<string, { ip: string; failed: number; accounts: number }>();
  for (const r of read) {
    if (typeof r.ip !== "string" || r.ip === "") continue;
    const key = ipBucket(r.ip);
    const c = clients.get(key) ?? { ip: key, failed: 0, accounts: 0 };
    c.failed += Number(r.n);
    c.accounts += Number(r.accounts);
    clients.set(key, c);
  }
  const spraying = [...clients.values()].filter((c) => c.accounts >= min).sort((a, b) => b.accounts - a.accounts || a.ip.localeCompare(b.ip));
  return { clients: spraying.slice(0, MAX_SPRAYING), total: spraying.length, rowsCut, rowsRead: Math.min(rows.length, MAX_ADDRESS_ROWS) };
}

/**
 * The sign-ins over [from, until), read in pages by position (the index on type and seq), one by one, each as a
 * responder reads it, with its time in ms (`at`) for the caller's windows.
 */
export async function* signIns(database: Database, from: number, until: number, pageSize: number): AsyncGenerator<{ at: number; signIn: SignIn }> {
  let after = 0;
  for (;;) {
    const page = await database.db.selectFrom("audit_events").select(["seq", "subject", "at", "data"])
      .where("type", "=", "auth.login.succeeded").where("seq", ">", after).where("at", ">=", from).where("at", "<", until)
      .orderBy("seq").limit(pageSize).execute();
    for (const row of page) {
      const data = parseStoredData(row.data).data ?? {};
      const failuresBefore = data["failuresBefore"];
      const at = Number(row.at);
      yield {
        at,
        signIn: {
          userId: row.subject, email: null, at: new Date(at).toISOString(),
          ip: typeof data["ip"] === "string" ? data["ip"] : null,
          sessionId: typeof data["sessionId"] === "string" ? data["sessionId"] : null,
          newDevice: typeof data["newDevice"] === "boolean" ? data["newDevice"] : null,
          failuresBefore: typeof failuresBefore === "number" && Number.isFinite(failuresBefore) ? failuresBefore : null,
          fromSprayingAddress: false,
        },
      };
    }
    if (page.length < pageSize) return;
    after = Number(page.at(-1)!.seq);
  }
}
