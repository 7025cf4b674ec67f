// The queries of `check logins`, on both dialects: counts are made in the database (a wave of a million failures is a
// GROUP BY, not a million rows read), and sign-ins are read in pages by position.
import { isIPv4 } from "node:net";
import { sql, type RawBuilder } from "kysely";
import { SITE_CLIENTS } from "../../accounts/flood/flood.ts";
import { ipBucket, ipSite } from "../../accounts/flood/ip-bucket.ts";
import { parseStoredData } from "../../audit/read-events.ts";
import type { Database } from "../../store/database.ts";
import type { SignIn } from "./sign-ins.ts";

const HOUR = 3_600_000;
const TEN_MINUTES = 600_000;
/** Ten-minute buckets an hour (waves.ts BUCKET_MS). */
const TENS_AN_HOUR = HOUR / TEN_MINUTES;
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
  last_at: number | string;
}

/**
 * Where the slow rules (spraying, guessing) count failures: from `from`, a day before the window, to its end `until`,
 * for clients and accounts with a failure at or after `judgedFrom` (the window's start `since`, less the time an event
 * may be written after its stamp), or with something that got in since then (a sign-in from a browser new to its account;
 * from a client, the caller also counts one after a run of failures). A campaign split between two daily
 * runs' windows (15 guesses in each, the bar at 20) is then judged whole in the second, as `check authlog` judges any
 * 24 hours; one that stopped before the window was the run before's to judge, unless something got in after it (its
 * first sign-in after the daily edge, which the run before never saw).
 */
export interface SlowRange {
  from: number;
  since: number;
  until: number;
  /** Where this run's judging begins (`since` when absent): LoginsCheckOptions.lateWriteMs before `since`. */
  judgedFrom?: number;
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

/** The audit log's position: the seq of its newest event (0 when it is empty). A run's state records it. */
export async function newestSeq(database: Database): Promise<number> {
  const row = await database.db.selectFrom("audit_events").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst();
  return Number(row?.seq ?? 0);
}

/**
 * Login events written after the log's position `afterSeq` but stamped before `before`: how many, and the earliest
 * stamp. The run that read the log at that position judged up to its end, so these were never judged: their writer's
 * clock was behind the run's by more than the tolerance (this host's clock ahead, or stepped back by NTP since). The
 * audit log's seq follows its appends, whatever the clocks.
 */
export async function writtenLate(database: Database, afterSeq: number, before: number): Promise<{ n: number; earliest: number | null }> {
  const { rows } = await sql<{ n: number | string; earliest: number | string | null }>`
    SELECT count(*) AS n, min(at) AS earliest FROM audit_events WHERE type IN ${LOGIN_TYPES} AND seq > ${afterSeq} AND at < ${before}`.execute(database.db);
  const row = rows[0];
  return { n: Number(row?.n ?? 0), earliest: row?.earliest === null || row?.earliest === undefined ? null : Number(row.earliest) };
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

/** The stamp of the store's first event (of any type), or null for an empty store: where its usual can begin. */
export async function firstEventAt(database: Database): Promise<number | null> {
  const first = await database.db.selectFrom("audit_events").select((eb) => eb.fn.min("at").as("at")).executeTakeFirst();
  return first?.at === null || first?.at === undefined ? null : Number(first.at);
}

/**
 * Failed logins per hour over [from, until) (`hours[i]`: the hour numbered `firstHour + i` since the epoch, at / HOUR),
 * zeros included, from the store's first event on (a younger store has no usual rate to speak of before it: its hours
 * are not counted as quiet ones), typos left out (typosByBucket): the window's waves are counted without them, so a
 * usual hour counted with them would raise every bar by the typos' rate for nothing (a site of many corrected typos
 * gave a stuffer five times that rate unseen). `buckets[6 i + k]`: the same per ten minutes, the hours' parts (how an
 * hour's failures usually fall within it, and the busiest 60 minutes touching it). `firstEvent`: firstEventAt's answer
 * when the caller has it (checkLogins reads three periods), else read here.
 */
export async function failedBefore(database: Database, from: number, until: number, firstEvent?: number | null): Promise<{ hours: number[]; buckets: number[]; firstHour: number }> {
  const first = firstEvent === undefined ? await firstEventAt(database) : firstEvent;
  if (first === null) return { hours: [], buckets: [], firstHour: 0 };
  const start = Math.max(from, Math.floor(first / HOUR) * HOUR);
  if (start >= until) return { hours: [], buckets: [], firstHour: 0 };
  const { rows } = await sql<{ bucket: number | string; n: number | string }>`
    SELECT at / ${sql.lit(TEN_MINUTES)} AS bucket, count(*) AS n FROM audit_events
    WHERE type = 'auth.login.failed' AND at >= ${start} AND at < ${until} GROUP BY at / ${sql.lit(TEN_MINUTES)}`.execute(database.db);
  const hours = Array.from({ length: Math.ceil((until - start) / HOUR) }, () => 0);
  const buckets = Array.from({ length: hours.length * TENS_AN_HOUR }, () => 0);
  const firstHour = Math.floor(start / HOUR);
  const firstBucket = firstHour * TENS_AN_HOUR;
  for (const r of rows) {
    const i = Number(r.bucket) - firstBucket;
    if (i >= 0 && i < buckets.length) buckets[i]! += Number(r.n);
  }
  for (const [bucket, n] of await typosByBucket(database, start, until, TEN_MINUTES)) {
    const i = bucket - firstBucket;
    if (i >= 0 && i < buckets.length) buckets[i] = Math.max(0, buckets[i]! - n);
  }
  buckets.forEach((n, i) => (hours[Math.floor(i / TENS_AN_HOUR)]! += n));
  return { hours, buckets, firstHour };
}

/**
 * The address an event's data names, as SQL: read from its canonical data (`"ip":"…"`, the first such key: canonical
 * JSON sorts keys and escapes the quotes inside strings, so a user agent cannot forge one). A row whose data is not
 * Bulwark's JSON (altered) never fails the query: SQLite reads NULL from it; PostgreSQL's pattern may still find an
 * `"ip":"…"` in text cut short (only a writer of the database makes such a row, and the chain's verify names it).
 * `alias`: the row's, in a query naming two rows of audit_events.
 */
function ipOf(database: Database, alias?: string): RawBuilder<unknown> {
  const data = sql.ref(alias === undefined ? "data" : `${alias}.data`);
  return database.dialect === "postgres"
    ? sql`substring(${data} from '"ip":"([^"\\\\]*)"')`
    : sql`CASE WHEN json_valid(${data}) THEN json_extract(${data}, '$.ip') END`;
}

/**
 * Whether an event's data says the browser was new to the account (`"newDevice":true`), or with `known`, one it knew
 * (`"newDevice":false`), as SQL, read as ipOf reads the address (canonical JSON escapes the quotes inside strings: a user
 * agent cannot forge it); false for a row that says neither (an event from before the field) and, on SQLite, for one
 * whose data is not Bulwark's JSON. `alias` as for ipOf.
 */
function deviceOf(database: Database, known: boolean, alias?: string): RawBuilder<unknown> {
  const data = sql.ref(alias === undefined ? "data" : `${alias}.data`);
  return database.dialect === "postgres"
    ? sql`position(${sql.lit(`"newDevice":${!known}`)} in ${data}) > 0`
    : sql`coalesce(CASE WHEN json_valid(${data}) THEN json_extract(${data}, '$.newDevice') END, ${sql.lit(known ? 1 : 0)}) = ${sql.lit(known ? 0 : 1)}`;
}

/** How soon after a failed login its account's own sign-in from the same address makes it a typo (typosByBucket). */
export const TYPO_CORRECTED_MS = 10 * 60_000;

/**
 * The address of the row `alias` as the typo rule compares it: as written, an IPv4-mapped spelling (`::ffff:a.b.c.d`,
 * what a node listening on "::" records) as its IPv4 address, so a typo on one node corrected through another is one.
 */
function sameClientIpOf(database: Database, alias: string): RawBuilder<unknown> {
  const ip = ipOf(database, alias);
  return sql`CASE WHEN lower(${ip}) LIKE '::ffff:%.%' THEN substr(${ip}, 8) ELSE ${ip} END`;
}

/**
 * The failed logins over [from, until) that were typos, as a query of their (seq, at): each followed within
 * TYPO_CORRECTED_MS by a sign-in to the same account, from the same address (sameClientIpOf), from a browser that
 * account already knew. Only the account's owner (or whoever holds both its password and its browser) makes such a
 * sign-in, so a stuffer cannot make its failures on other accounts look like typos; at most it can so discount
 * failures on accounts it already holds. One join of the known-browser sign-ins with the failures of their accounts
 * (hashed or indexed on account and address by the database): the work grows with the rows, not with failures times
 * sign-ins. `only`: these accounts alone.
 */
function typoFailures(database: Database, from: number, until: number, only?: readonly string[]): RawBuilder<{ seq: number; at: number }> {
  const onlyThese = only === undefined ? sql`` : sql`AND k.subject IN (${listOf(database, only)})`;
  return sql<{ seq: number; at: number }>`
    WITH s AS MATERIALIZED (
      SELECT k.subject AS subject, k.at AS at, ${sameClientIpOf(database, "k")} AS ip FROM audit_events k
      WHERE k.type = 'auth.login.succeeded' AND k.at >= ${from} AND k.at < ${until + TYPO_CORRECTED_MS} AND ${deviceOf(database, true, "k")} ${onlyThese}),
    f AS MATERIALIZED (
      SELECT e.seq AS seq, e.subject AS subject, e.at AS at, ${sameClientIpOf(database, "e")} AS ip FROM audit_events e
      WHERE e.type = 'auth.login.failed' AND e.at >= ${from} AND e.at < ${until} AND e.subject IN (SELECT subject FROM s))
    SELECT DISTINCT f.seq AS seq, f.at AS at FROM f JOIN s ON s.subject = f.subject AND s.ip = f.ip AND s.at >= f.at AND s.at <= f.at + ${TYPO_CORRECTED_MS}`;
}

/**
 * Runs `query` (a typoFailures join) so that PostgreSQL hashes it: without statistics on the rows just read (a CTE,
 * or a table not analysed since a wave was written) the planner guessed one row on each side and chose nested loops,
 * 20,000 failures by 4,000 sign-ins 80 million comparisons (20 s). In a transaction of its own, nested loops
 * turned off for it alone (SET LOCAL).
 */
async function hashed<R>(database: Database, query: RawBuilder<R>): Promise<R[]> {
  if (database.dialect !== "postgres") return (await query.execute(database.db)).rows;
  return database.db.transaction().execute(async (trx) => {
    await sql`SET LOCAL enable_nestloop = off`.execute(trx);
    return (await query.execute(trx)).rows;
  });
}

/** Failed logins over [from, until) per `bucketMs` that were typos (typoFailures). */
export async function typosByBucket(database: Database, from: number, until: number, bucketMs: number): Promise<Map<number, number>> {
  const rows = await hashed(database, sql<{ bucket: number | string; n: number | string }>`
    SELECT t.at / ${sql.lit(bucketMs)} AS bucket, count(*) AS n FROM (${typoFailures(database, from, until)}) AS t GROUP BY t.at / ${sql.lit(bucketMs)}`);
  return new Map(rows.map((r) => [Number(r.bucket), Number(r.n)]));
}

/**
 * `values` as a subquery of one column for `x IN (…)`, passed as one JSON parameter: both dialects cap a statement's
 * parameters. On PostgreSQL the DISTINCT is what makes it a hash join: without it the planner, guessing 100 elements,
 * joined 10,000 accounts to 30,000 failures by nested loop, re-reading the JSON text for each row (44 s against 25 ms).
 */
function listOf(database: Database, values: readonly string[]): RawBuilder<unknown> {
  const json = JSON.stringify(values);
  return database.dialect === "postgres" ? sql`SELECT DISTINCT value FROM json_array_elements_text(${json}::json) AS l(value)` : sql`SELECT value FROM json_each(${json})`;
}

/** The spraying clients of a window, and whether a bound left any out (the report says so: an absence then proves nothing). */
export interface SprayingClients {
  /**
   * The clients at or above the bar, at most MAX_SPRAYING: those with a failure at or after `judgedFrom` first
   * (`recent`), then those whose failures all came before it (a sign-in from one in the window is still from a
   * sprayer); each part the most accounts first.
   */
  clients: Array<{ ip: string; failed: number; accounts: number; recent: boolean }>;
  /** How many clients reached the bar: more than `clients` holds when past MAX_SPRAYING. */
  total: number;
  /** How many of them are `recent`. */
  recent: number;
  /** More address rows than MAX_ADDRESS_ROWS qualified; those not recent, then those with the fewest accounts, were not read. */
  rowsCut: boolean;
  /** Address rows the first query read (MAX_ADDRESS_ROWS when cut), for the report. */
  rowsRead: number;
}

/**
 * Clients whose failed logins over [from, until) named at least `min` distinct accounts or unknown identifiers (SlowRange;
 * whether one of those failures is recent is the caller's to weigh), the most first: an IPv4 address, or an IPv6 /64 (ipBucket, as flood
 * control counts a client: a stuffer on one host taking a new address of its /64 every few tries was as many
 * addresses, each under the bar). An IPv4 client is one
 * whatever its spelling (ipBucket again: ::ffff:a.b.c.d from a node listening on "::", its own 6to4 or Teredo
 * address), so a stuffer splitting its list between spellings is not two clients each under the bar. A client's count
 * sums its addresses' and spellings' (an upper bound: one account tried from two of them counts twice). The address is
 * read from the event's canonical data (`"ip":"…"`); a row whose data is not Bulwark's JSON (altered) names none, and
 * never fails the query.
 */
export async function failedByAddress(database: Database, range: SlowRange, min: number): Promise<SprayingClients> {
  const ip = ipOf(database);
  const judgedFrom = range.judgedFrom ?? range.since;
  const failedInRange = sql`type = 'auth.login.failed' AND at >= ${range.from} AND at < ${range.until}`;
  // Every address written with a colon is read (an IPv6 address, summed by /64; or another spelling of an IPv4 client);
  // a plain IPv4 address only when it reaches the bar on its own, or a botnet's million would be a million rows. One
  // more row than the cap is asked for, so that a cut is known rather than guessed. The addresses that failed since
  // `judgedFrom` come first: a cut leaves out those only the day before saw first (the run before judged them).
  const { rows } = await sql<AddressRow>`
    SELECT ${ip} AS ip, count(*) AS n, count(DISTINCT subject) AS accounts, max(at) AS last_at FROM audit_events WHERE ${failedInRange}
    GROUP BY 1 HAVING count(DISTINCT subject) >= ${min} OR ${ip} LIKE '%:%'
    ORDER BY CASE WHEN max(at) >= ${judgedFrom} THEN 0 ELSE 1 END, 3 DESC, 1 LIMIT ${sql.lit(MAX_ADDRESS_ROWS + 1)}`.execute(database.db);
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
    const list = listOf(database, [...spelledOtherwise]);
    const plain = await sql<AddressRow>`
      SELECT ${ip} AS ip, count(*) AS n, count(DISTINCT subject) AS accounts, max(at) AS last_at FROM audit_events
      WHERE ${failedInRange} AND ${ip} IN (${list}) GROUP BY 1`.execute(database.db);
    // A loop, not push(...rows): up to 200,000 arguments would overflow the stack.
    for (const r of plain.rows) read.push(r);
  }
  // Each address as its client, parsed once for the clients and their sites.
  const keyed = read.flatMap((r) => (typeof r.ip === "string" && r.ip !== "" ? [{ r, ip: r.ip, client: ipBucket(r.ip) }] : []));
  const clients = new Map<string, Tally>();
  for (const { r, client } of keyed) tally(clients, client, r);
  for (const site of sprayingSites(keyed, min, clients)) clients.set(site.ip, site);
  const spraying = [...clients.values()].filter((c) => c.accounts >= min)
    .map(({ ip, failed, accounts, lastAt }) => ({ ip, failed, accounts, recent: lastAt >= judgedFrom }))
    .sort((a, b) => Number(b.recent) - Number(a.recent) || b.accounts - a.accounts || a.ip.localeCompare(b.ip));
  const recent = spraying.filter((c) => c.recent).length;
  return { clients: spraying.slice(0, MAX_SPRAYING), total: spraying.length, recent, rowsCut, rowsRead: Math.min(rows.length, MAX_ADDRESS_ROWS) };
}

/**
 * The IPv6 sites (/48, ipSite) among `rows` that failed on at least SITE_CLIENTS times `min` accounts over two or more
 * of their /64s, as flood control keeps a window for a site: one holder of a /48 taking a new /64 for every few
 * accounts was 65,536 clients, each under the bar. The bar is higher than a client's because a campus or an office
 * behind one /48 fails on many accounts too. A /64 that reaches the bar on its own is that client, judged as one, and
 * left out of its site's count: one compromised host on a campus is not the campus (its staff's sign-ins from their
 * own /64s are not a sprayer's). A site's count sums its other addresses' (an upper bound, as a client's).
 */
function sprayingSites(rows: ReadonlyArray<{ r: AddressRow; ip: string; client: string }>, min: number, clients: ReadonlyMap<string, Tally>): Tally[] {
  const sites = new Map<string, Tally>();
  const nets = new Map<string, Set<string>>();
  for (const { r, ip, client } of rows) {
    const site = ipSite(ip);
    if (!site.endsWith("/48") || (clients.get(client)?.accounts ?? 0) >= min) continue;
    tally(sites, site, r);
    const seen = nets.get(site) ?? new Set<string>();
    nets.set(site, seen.add(client));
  }
  return [...sites.values()].filter((s) => (nets.get(s.ip)?.size ?? 0) >= 2 && s.accounts >= SITE_CLIENTS * min);
}

/** A client's or a site's sums over its address rows. */
interface Tally {
  ip: string;
  failed: number;
  accounts: number;
  lastAt: number;
}

/** Adds address row `r` to the tally of `key` in `into`. */
function tally(into: Map<string, Tally>, key: string, r: AddressRow): void {
  const t = into.get(key) ?? { ip: key, failed: 0, accounts: 0, lastAt: 0 };
  t.failed += Number(r.n);
  t.accounts += Number(r.accounts);
  t.lastAt = Math.max(t.lastAt, Number(r.last_at));
  into.set(key, t);
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
          fromSprayingAddress: false, emailChangedAt: null, emailChangeEvent: null,
        },
      };
    }
    if (page.length < pageSize) return;
    after = Number(page.at(-1)!.seq);
  }
}

/**
 * Accounts kept at most by the guessed-account rule, the most failures first: bounded memory for a botnet naming every
 * account of a large site. Past it the rest are counted, the report says the analysis was incomplete, and the accounts
 * a new browser signed in to are read on their own (see GuessedAccounts.finish).
 */
export const MAX_GUESSED = 10_000;
/**
 * Distinct addresses read per listed account to count its clients (100 accounts listed: at most 200,000 rows). An
 * account guessed from more has its clients counted from these, a lower bound (`clientsComplete` false).
 */
const ADDRESSES_PER_ACCOUNT = 2_000;

/** One account's failed logins in the window, as the database counts them. */
export interface AccountFailures {
  userId: string;
  /** Over the slow rules' range (SlowRange: the window and the day before it). */
  failed: number;
  /** Those at or after the window's start. */
  failedInWindow: number;
  firstAt: number;
  lastAt: number;
}

/** The accounts of a window at or above the bar, and whether the bound cut the list. */
export interface AccountsFailed {
  /** The most failures first, at most MAX_GUESSED. */
  accounts: AccountFailures[];
  /** How many accounts reached the bar: more than `accounts` holds when `cut`. */
  total: number;
  cut: boolean;
}

/**
 * Accounts whose failed logins over [from, until) number at least `min`, one of them at or after `judgedFrom`, or with a
 * sign-in from a browser new to it since then (SlowRange: guessed the day before, then got into in the window, which
 * the run before never saw), at any pace and from any number of addresses (one GROUP BY, however many failures): the
 * subjects that are accounts, not the keyed tags of identifiers that name none (`id:…`: nothing can be taken over
 * there). `only`: these accounts alone (a JSON parameter). `limit`: rows kept (MAX_GUESSED unless given).
 */
export async function failedByAccount(database: Database, range: SlowRange, min: number, options: { only?: readonly string[]; limit?: number } = {}): Promise<AccountsFailed> {
  const limit = options.limit ?? MAX_GUESSED;
  const only = options.only === undefined ? sql`` : sql`AND subject IN (${listOf(database, options.only)})`;
  const where = sql`type = 'auth.login.failed' AND at >= ${range.from} AND at < ${range.until} AND subject NOT LIKE 'id:%' ${only}`;
  const judgedFrom = range.judgedFrom ?? range.since;
  const gotIn = sql`SELECT subject FROM audit_events WHERE type = 'auth.login.succeeded' AND at >= ${judgedFrom} AND at < ${range.until} AND ${deviceOf(database, false)}`;
  const reached = sql`count(*) >= ${min} AND (max(at) >= ${judgedFrom} OR subject IN (${gotIn}))`;
  // One more row than the cap is asked for, so that a cut is known rather than guessed.
  // No address is read here (a million failures on accounts would be a million JSON texts parsed): the clients of the
  // accounts listed are counted apart, clientsByAccount.
  const { rows } = await sql<{ subject: string; n: number | string; in_window: number | string; first_at: number | string; last_at: number | string }>`
    SELECT subject, count(*) AS n, sum(CASE WHEN at >= ${range.since} THEN 1 ELSE 0 END) AS in_window, min(at) AS first_at, max(at) AS last_at
    FROM audit_events WHERE ${where} GROUP BY subject HAVING ${reached} ORDER BY 2 DESC, 1 LIMIT ${sql.lit(limit + 1)}`.execute(database.db);
  const cut = rows.length > limit;
  let total = Math.min(rows.length, limit);
  if (cut) {
    const counted = await sql<{ n: number | string }>`
      SELECT count(*) AS n FROM (SELECT subject FROM audit_events WHERE ${where} GROUP BY subject HAVING ${reached}) AS reached`.execute(database.db);
    total = Number(counted.rows[0]?.n ?? total);
  }
  const accounts = rows.slice(0, limit).map((r) => ({
    userId: r.subject, failed: Number(r.n), failedInWindow: Number(r.in_window), firstAt: Number(r.first_at), lastAt: Number(r.last_at),
  }));
  return { accounts, total, cut };
}

/** The addresses an account failed from, and the clients they are. */
export interface AccountClients {
  /** Distinct clients, as flood control counts them. */
  clients: number;
  /** Distinct addresses as written (an IPv6 host rotating through its /64 is many of them). */
  addresses: number;
  /** False past ADDRESSES_PER_ACCOUNT addresses: both counts are then lower bounds. */
  complete: boolean;
}

/**
 * clientsByAccount for the failures that were not typos (typosByBucket: each followed within TYPO_CORRECTED_MS by its
 * account's sign-in from a browser it knew, at the same address), with how many such failures each account took:
 * an owner mistyping from a phone whose carrier gives it a new address every time is many addresses and no guesser.
 */
export async function guessesByAccount(database: Database, from: number, until: number, userIds: readonly string[]): Promise<Map<string, AccountClients & { failed: number }>> {
  if (userIds.length === 0) return new Map();
  const rows = await hashed(database, sql<{ subject: string; ip: unknown; n: number | string }>`
    SELECT subject, ip, n FROM (
      SELECT subject, ip, n, row_number() OVER (PARTITION BY subject ORDER BY ip) AS k FROM (
        SELECT f.subject AS subject, ${ipOf(database, "f")} AS ip, count(*) AS n FROM audit_events f
        WHERE f.type = 'auth.login.failed' AND f.at >= ${from} AND f.at < ${until} AND f.subject IN (${listOf(database, userIds)})
          AND f.seq NOT IN (SELECT t.seq FROM (${typoFailures(database, from, until, userIds)}) AS t)
        GROUP BY 1, 2) AS pairs) AS ranked
    WHERE k <= ${sql.lit(ADDRESSES_PER_ACCOUNT + 1)}`);
  return tallyClients(rows, userIds);
}

/**
 * Per account of `userIds`, the clients (ipBucket) and addresses of `rows` (one per account and address, at most
 * ADDRESSES_PER_ACCOUNT + 1 per account: the row past the cap only tells that there are more) and the failures they
 * hold (`n`; one a row when absent).
 */
function tallyClients(rows: ReadonlyArray<{ subject: string; ip: unknown; n?: number | string }>, userIds: readonly string[]): Map<string, AccountClients & { failed: number }> {
  const seen = new Map<string, { rows: number; addresses: number; failed: number; clients: Set<string> }>();
  for (const r of rows) {
    const s = seen.get(r.subject) ?? { rows: 0, addresses: 0, failed: 0, clients: new Set<string>() };
    seen.set(r.subject, s);
    if (++s.rows > ADDRESSES_PER_ACCOUNT) continue;
    s.failed += r.n === undefined ? 1 : Number(r.n);
    if (typeof r.ip !== "string" || r.ip === "") continue;
    s.addresses++;
    s.clients.add(ipBucket(r.ip));
  }
  const result = new Map<string, AccountClients & { failed: number }>();
  for (const id of userIds) {
    const s = seen.get(id);
    result.set(id, { failed: s?.failed ?? 0, clients: s?.clients.size ?? 0, addresses: s?.addresses ?? 0, complete: (s?.rows ?? 0) <= ADDRESSES_PER_ACCOUNT });
  }
  return result;
}

/**
 * The distinct clients each of `userIds` failed to sign in from over [from, until), counted as flood control counts
 * a client (ipBucket: an IPv6 /64 is one, an IPv4 address is one whatever its spelling), from at most
 * ADDRESSES_PER_ACCOUNT of its addresses (lower bounds past them: `complete` false). A failure naming no address is
 * no client.
 */
export async function clientsByAccount(database: Database, from: number, until: number, userIds: readonly string[]): Promise<Map<string, AccountClients>> {
  if (userIds.length === 0) return new Map();
  const { rows } = await sql<{ subject: string; ip: unknown }>`
    SELECT subject, ip FROM (
      SELECT subject, ip, row_number() OVER (PARTITION BY subject ORDER BY ip) AS k FROM (
        SELECT subject, ${ipOf(database)} AS ip FROM audit_events
        WHERE type = 'auth.login.failed' AND at >= ${from} AND at < ${until} AND subject IN (${listOf(database, userIds)})
        GROUP BY 1, 2) AS pairs) AS ranked
    WHERE k <= ${sql.lit(ADDRESSES_PER_ACCOUNT + 1)}`.execute(database.db);
  return tallyClients(rows, userIds);
}
