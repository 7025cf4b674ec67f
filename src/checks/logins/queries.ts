// The queries of `check logins`, on both dialects: counts are made in the database (a wave of a million failures is a
// GROUP BY, not a million rows read), and sign-ins are read in pages by position.
import { sql } from "kysely";
import { ipBucket } from "../../accounts/flood/ip-bucket.ts";
import { parseStoredData } from "../../audit/read-events.ts";
import type { Database } from "../../store/database.ts";
import type { SignIn } from "./sign-ins.ts";

const HOUR = 3_600_000;
const LOGIN_TYPES = sql`('auth.login.failed', 'auth.login.throttled', 'auth.login.succeeded')`;
/** Spraying clients kept at most: a botnet of more is still reported, its sign-ins from the rest not marked. */
const MAX_SPRAYING = 10_000;
/** Address rows read at most (every IPv6 address is read, to be summed by /64): bounded memory for a botnet's million. */
const MAX_ADDRESS_ROWS = 200_000;

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

/**
 * Clients whose failed logins over [since, until) named at least `min` distinct accounts or unknown identifiers, the
 * most first: an IPv4 address, or an IPv6 /64 (ipBucket, as flood control counts a client: a stuffer on one host
 * taking a new address of its /64 every few tries was as many addresses, each under the bar). A /64's count sums its
 * addresses' (an upper bound: one account tried from two of its addresses counts twice). The address is read from the
 * event's canonical data (`"ip":"…"`); a row whose data is not Bulwark's JSON (altered) names none, and never fails the
 * query.
 */
export async function failedByAddress(database: Database, since: number, until: number, min: number): Promise<Array<{ ip: string; failed: number; accounts: number }>> {
  const ip = database.dialect === "postgres"
    ? sql`substring(data from '"ip":"([^"\\\\]*)"')`
    : sql`CASE WHEN json_valid(data) THEN json_extract(data, '$.ip') END`;
  // Every IPv6 address is read (its /64 is summed here); an IPv4 one only when it reaches the bar on its own.
  const { rows } = await sql<{ ip: string | null; n: number | string; accounts: number | string }>`
    SELECT ${ip} AS ip, count(*) AS n, count(DISTINCT subject) AS accounts FROM audit_events
    WHERE type = 'auth.login.failed' AND at >= ${since} AND at < ${until}
    GROUP BY 1 HAVING count(DISTINCT subject) >= ${min} OR ${ip} LIKE '%:%' ORDER BY 3 DESC, 1 LIMIT ${sql.lit(MAX_ADDRESS_ROWS)}`.execute(database.db);
  const clients = new Map<string, { ip: string; failed: number; accounts: number }>();
  for (const r of rows) {
    if (typeof r.ip !== "string" || r.ip === "") continue;
    const key = ipBucket(r.ip);
    const c = clients.get(key) ?? { ip: key, failed: 0, accounts: 0 };
    c.failed += Number(r.n);
    c.accounts += Number(r.accounts);
    clients.set(key, c);
  }
  return [...clients.values()].filter((c) => c.accounts >= min).sort((a, b) => b.accounts - a.accounts || a.ip.localeCompare(b.ip)).slice(0, MAX_SPRAYING);
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
