// Flood control with Drupal 7's semantics and defaults (seed 003): failed logins per IP (50 per hour) and
// per account (5 per 6 hours, counted per account+IP unless configured per account only), plus a hard cap
// of 100 consecutive failures per account (NIST SP 800-63B §5.2.2, ASVS 6.3.1) that only a success or a
// reset clears. Identifiers are counted whether or not an account exists, so a lockout reveals nothing: the login
// passes an existing account's email (so its email and username share one count) and an unknown identifier as typed,
// and for an account the answer to a full window depends on the spelling typed (see Attempt.spelling).
// An IPv6 client is counted per /64 (ip-bucket.ts), and its site, the /48, has a window of its own (FloodPolicy.siteLimit).
// Keys are HMAC-SHA256 of the identifier/IP under a server key (Keyring.floodKey): no raw emails or addresses, and
// nothing a word list reverses from a copy of the tables (a password typed into the login name field).
// An attempt from where the owner signed in before (a browser holding a valid known-device cookie, a live aal-2
// session: Attempt.known) is held by a small window of its own instead of the account-wide stop (and window, when
// counted per account only), so failures sent from elsewhere cannot lock the owner out (NIST SP 800-63B §5.2.2; OWASP's
// device cookies).
import { hashSecret } from "../../crypto/tokens.ts";
import type { Clock } from "../../lib/clock.ts";
import { CompiledQuery, type Kysely } from "kysely";
import type { Schema } from "../../store/schema.ts";
import { lockKeyOf, serialiseTransactions, type Database } from "../../store/database.ts";
import { HOT_BUSY, hotTransaction, numberedFor, prepareHot, type HotStatement } from "../../store/sqlite-dialect-prepared.ts";
import { identifierKey } from "../users/normalise.ts";
import { ipBucket, ipSite } from "./ip-bucket.ts";
import { deleteOneEvent, deleteOneSQL } from "./delete-one.ts";

export interface FloodPolicy {
  ipLimit: number;
  ipWindowMs: number;
  accountLimit: number;
  accountWindowMs: number;
  /** Drupal's user_failed_login_identifier_uid_only: count per account only instead of per account+IP. */
  perAccountOnly: boolean;
  /** Consecutive failures after which the account is throttled until a success or a reset. */
  maxConsecutive: number;
  /**
   * Failed attempts per IPv6 site (its /48, ipSite) per `ipWindowMs`, refused as the per-IP window is (reason "ip").
   * A /48 is what one site is routed (RFC 6177) and what tunnel brokers hand out for free: 65,536 /64s, each a
   * client of its own to `ipLimit`. An IPv4 address is its own site and has no second count. Absent: ten clients'
   * worth, SITE_CLIENTS × ipLimit (optional so that policies written before it, the second factor's, keep theirs).
   */
  siteLimit?: number;
  /**
   * Failed attempts per `accountWindowMs` of one known browser or session (Attempt.known), refused past it with reason
   * "known" (429 with Retry-After). Such an attempt is not held by the account's 100-failure stop (nor a per-account-only
   * window), which anyone naming the account fills; this window only the browser itself fills. Absent: KNOWN_LIMIT.
   */
  knownLimit?: number;
  /**
   * Consecutive failures after which a known attempt is stopped too (reason "consecutive"). An attempt refused by the
   * stop counts nothing, so an outsider's failures end at `maxConsecutive`: only known browsers and sessions (the
   * owner's typos, or a thief holding one of their cookies) take the streak past it. A stolen cookie so gets a bounded
   * number of guesses however long it waits. Absent: twice `maxConsecutive`.
   */
  knownMaxConsecutive?: number;
}

/**
 * The default site limit in clients: an office or a campus behind one /48 fails ten addresses' worth of logins an
 * hour (500 with the default ipLimit) before its users are refused, while a holder of a /48 gets 500 guesses an hour
 * instead of 65,536 × 50 = 3.3 million.
 */
export const SITE_CLIENTS = 10;

/**
 * The default window of one known browser or session (FloodPolicy.knownLimit): twice an account+IP window's five, since
 * it is the owner's only window once the account is stopped (a mistyped password on a new keyboard layout, a caps-lock
 * run), and still ten guesses per six hours for a thief holding a copy of the cookie.
 */
export const KNOWN_LIMIT = 10;

export const DRUPAL_FLOOD_POLICY: Readonly<FloodPolicy> = Object.freeze({
  ipLimit: 50,
  ipWindowMs: 60 * 60 * 1000,
  accountLimit: 5,
  accountWindowMs: 6 * 60 * 60 * 1000,
  perAccountOnly: false,
  maxConsecutive: 100,
  siteLimit: SITE_CLIENTS * 50,
});

/**
 * `accountClean`: nothing for a success to clear (no failure in the account's window, no streak). `retryAfterMs` is
 * when a window ("ip", "account") lifts; the "consecutive" stop lifts with no wait (only a success, clearStreak), so
 * its value — the account window, kept for callers that need a number — is no promise and not for a Retry-After.
 */
export type FloodVerdict = { allowed: true; accountClean: boolean } | { allowed: false; reason: FloodReason; retryAfterMs: number };

/**
 * Why an attempt was refused: a client's window ("ip", its IPv6 site's included), the account's ("account"), the
 * account's consecutive stop ("consecutive", no wait lifts it), or a known browser's or session's own window ("known",
 * FloodPolicy.knownLimit: it lifts after `retryAfterMs` like any window).
 */
export type FloodReason = "ip" | "account" | "consecutive" | "known";

/** The verdict as #judge works it out: an allowed attempt also says whether it is blind (see FloodBegin). */
type Judged = { allowed: true; accountClean: boolean; blind: boolean; streak: number } | Extract<FloodVerdict, { allowed: false }>;

export interface Attempt {
  identifier: string;
  ip: string | null;
  /**
   * The identifier as typed, when the attempt is counted under another one (the login counts a known account under
   * its email, whatever named it). A full account window then refuses with "account" only once this spelling's own
   * failures fill it too; before that the attempt is let through `blind` (counted, its password not checked), so
   * the answers depend only on the spelling typed, as they do for an unknown identifier (ASVS 6.3.8): a username
   * and an email whose 429s come together would otherwise be one account.
   */
  spelling?: string;
  /**
   * Set when the attempt comes from where the account's owner authenticated before: a browser whose known-device cookie
   * is valid for the account, or a live full-assurance session of it (the caller decides and passes the text that names
   * it: a device id, a session id; keyed like every row, never stored as given). Such an attempt is counted as any other
   * (the account's window and streak), but it is not refused by the account's 100-failure stop, nor by a window per
   * account alone (perAccountOnly) — failures anyone can send naming the account, from anywhere —; only by the client's
   * windows, the account+IP window (filled only from the browser's own address), its own window (FloodPolicy.knownLimit,
   * which follows it across addresses) and the stop at knownMaxConsecutive. NIST SP 800-63B §5.2.2 allows exactly this, so the limit on guesses does not become
   * an outsider's way to lock the owner out; OWASP calls it device cookies. Never set for an identifier that names no
   * account: nothing can prove a browser known to it, so the answers for unknown identifiers stay as they were.
   */
  known?: string;
}

/**
 * An attempt under way, already counted as a failure (see FloodControl.begin): a wrong password needs nothing
 * more; a right one calls `succeeded`, which takes the count back and clears the account's window and streak;
 * `release` only takes the count back (a right password whose second factor is still to be checked).
 */
export interface FloodTicket {
  /** When its failure events were recorded (they are found again by it). */
  readonly at: number;
  /** Set once its own events are gone (released, or cleared by a success). */
  settled: boolean;
  /** The keys it was counted under, computed once (three to five HMACs). */
  readonly keys: Keys;
}

/** The keys an attempt is counted under (hex HMAC-SHA256, keyOf; no raw identifier or address is stored), and its spelling. */
interface Keys {
  ip: string | null;
  /** The IPv6 site's (/48); null for IPv4, an address carrying IPv4 (mapped, NAT64, 6to4, Teredo) or no address. */
  site: string | null;
  account: string;
  streak: string;
  /** The spelling's hash, recorded with the account event (flood_events.via); null when none was given. */
  via: string | null;
  /** The known browser's or session's own window (Attempt.known), under the identifier; null when not known. */
  known: string | null;
}

/** One statement of a unit of work (SQL text with `$N` parameters, and its parameters). */
type Step = readonly [text: string, parameters: ReadonlyArray<string | number>];

/** About how many window events one statement of the maintenance prune deletes (FloodControl.prune). */
export const PRUNE_BATCH = 5_000;

// The writes, each written once for both dialects and both ways of running them (FloodControl.#apply).
const INSERT_EVENT_SQL = "INSERT INTO flood_events (scope, key, at, via) VALUES ($1, $2, $3, $4)";
const BUMP_STREAK_SQL =
  "INSERT INTO flood_streaks (key, failures, updated_at) VALUES ($1, 1, $2) " +
  "ON CONFLICT (key) DO UPDATE SET failures = flood_streaks.failures + 1, updated_at = excluded.updated_at";
const UNBUMP_STREAK_SQL = "UPDATE flood_streaks SET failures = failures - 1 WHERE key = $1 AND failures > 0";
const CLEAR_ACCOUNT_SQL = "DELETE FROM flood_events WHERE scope = 'account' AND key = $1";
const CLEAR_STREAK_SQL = "DELETE FROM flood_streaks WHERE key = $1";
// A known attempt's own event goes in with the account's, and its window is cleared with the account's, each in one
// statement: a returning user's login (the common one, and the benchmarked one) runs as many statements as before.
const INSERT_ACCOUNT_KNOWN_SQL = "INSERT INTO flood_events (scope, key, at, via) VALUES ('account', $1, $2, $3), ('known', $4, $2, '')";
const CLEAR_ACCOUNT_KNOWN_SQL = "DELETE FROM flood_events WHERE (scope = 'account' AND key = $1) OR (scope = 'known' AND key = $2)";
/**
 * `blind`: the account's window is full but the spelling's is not (Attempt.spelling). The attempt is counted like
 * any other; the caller answers it as a failure without checking the password, at the cost of a check.
 */
export type FloodBegin =
  /** `streak`: the identifier's consecutive failures before this attempt (a success after many is worth telling the owner of). */
  | { allowed: true; ticket: FloodTicket; blind: boolean; streak: number }
  | { allowed: false; reason: FloodReason; retryAfterMs: number };


// The whole verdict in one read. $1 streak key; $2–$4 IP key, window start, limit − 1; $5–$7 the same for the
// account; $8 the spelling (Attempt.spelling), whose window is the account's events typed that way. A window's
// subquery yields the limit-th newest event still inside it (null when fewer), which is the one whose expiry lifts
// the limit. A null IP uses key "" and no IP event ever has it (keys are hashes); a spelling never is "".
const CHECK_SQL =
  "SELECT (SELECT failures FROM flood_streaks WHERE key = $1) AS streak, " +
  "(SELECT at FROM flood_events WHERE scope = 'ip' AND key = $2 AND at > $3 ORDER BY at DESC LIMIT 1 OFFSET $4) AS ip_at, " +
  "(SELECT at FROM flood_events WHERE scope = 'account' AND key = $5 AND at > $6 ORDER BY at DESC LIMIT 1 OFFSET $7) AS account_at, " +
  "(SELECT at FROM flood_events WHERE scope = 'account' AND key = $5 AND via = $8 AND at > $6 ORDER BY at DESC LIMIT 1 OFFSET $7) AS spelling_at, " +
  "(SELECT count(*) FROM (SELECT 1 FROM flood_events WHERE scope = 'account' AND key = $5 AND at > $6 LIMIT 1) AS a) AS account_any";
// The same for an IPv6 client, with its site's window: $9 site key, $10 site limit − 1, over the IP window ($3). A
// statement of its own rather than a subquery every attempt runs: an IPv4 login, the benchmarked path, keeps CHECK_SQL.
const CHECK_SITE_SQL =
  CHECK_SQL + ", (SELECT at FROM flood_events WHERE scope = 'site' AND key = $9 AND at > $3 ORDER BY at DESC LIMIT 1 OFFSET $10) AS site_at";
/** A known attempt's own window (Attempt.known) over the account window ($6), its key and limit − 1 as $key and $limit. */
const knownWindow = (key: number, limit: number): string =>
  `, (SELECT at FROM flood_events WHERE scope = 'known' AND key = $${key} AND at > $6 ORDER BY at DESC LIMIT 1 OFFSET $${limit}) AS known_at`;
// The same again with a known browser's or session's window: statements of their own, so that the plain login (no
// known-device cookie, every guess an outsider sends) keeps the statement it always ran.
const CHECK_KNOWN_SQL = CHECK_SQL + knownWindow(9, 10);
const CHECK_SITE_KNOWN_SQL = CHECK_SITE_SQL + knownWindow(11, 12);

/** The limit-th newest event of one key of `scope` inside its window ($1 scope, $2 key, $3 window start, $4 limit − 1): countRequest. */
const SCOPED_WINDOW_SQL = "SELECT at FROM flood_events WHERE scope = $1 AND key = $2 AND at > $3 ORDER BY at DESC LIMIT 1 OFFSET $4";

interface CheckRow {
  streak: number | string | null;
  ip_at: number | string | null;
  account_at: number | string | null;
  spelling_at: number | string | null;
  account_any: number | string;
  /** Only from CHECK_SITE_SQL. */
  site_at?: number | string | null;
  /** Only from the CHECK_*KNOWN_SQL statements. */
  known_at?: number | string | null;
}

/**
 * Makes a row key from the text it stands for (FloodControl's `keyOf`): Keyring.floodKey in the app, HMAC-SHA256 under
 * a key of its own. It must be 64 lower-case hex characters (the columns' format since the first migration) and keyed.
 */
export type FloodKeyer = (text: string) => string;

/** What the constructor asks keyOf for, to refuse a keyer that is no keyed 64-hex digest. */
const KEYER_PROBE = "bulwark flood keyer probe";

export class FloodControl {
  readonly #database: Database;
  readonly #clock: Clock;
  readonly policy: Readonly<Required<FloodPolicy>>;
  /** The verdict's statements compiled once, by text (CHECK_SQL and its site and known variants). */
  readonly #checkStatements: ReadonlyMap<string, HotStatement<CheckRow>>;
  readonly #deleteOneSQL: string;
  readonly #keyOf: FloodKeyer;

  /**
   * Keeps this limiter's counts apart from every other one sharing the tables (the login's has none, the second
   * factor's is "mfa"): each key's hashed text starts with its kind, prefixed by the namespace, so no identifier
   * typed at one limiter can land on another's counter.
   */
  readonly namespace: string | null;
  readonly #kinds: { ip: string; site: string; account: string; streak: string; known: string };

  /**
   * `keyOf` keys every row (FloodKeyer), and is required: the rows were plain SHA-256 of the text typed, and a copy of
   * the tables gave back, through a word list, a password typed as a login name (ASVS 14.2.4, 16.2.5). Every limiter
   * sharing the tables must use the same one (the app's keyring), or they count apart.
   */
  constructor(deps: { database: Database; clock: Clock; keyOf: FloodKeyer; policy?: Partial<FloodPolicy>; namespace?: string }) {
    const probe = deps.keyOf(KEYER_PROBE);
    if (!/^[0-9a-f]{64}$/.test(probe)) throw new TypeError(`flood keyOf must return 64 lower-case hex characters (HMAC-SHA256, Keyring.floodKey), got ${JSON.stringify(probe.slice(0, 80))}`);
    // A plain digest would store the text typed in a form a word list reverses: refused, so no limiter runs unkeyed.
    if (probe === hashSecret(KEYER_PROBE)) throw new TypeError("flood keyOf is plain SHA-256, which a word list reverses from the tables: give it a keyed digest (Keyring.floodKey)");
    this.#keyOf = deps.keyOf;
    this.#database = deps.database;
    this.#clock = deps.clock;
    const policy = { ...DRUPAL_FLOOD_POLICY, ...deps.policy };
    // A site is ten clients unless told otherwise, whatever the per-client limit (a policy raising ipLimit alone must
    // not leave the site's limit below one client's).
    this.policy = {
      ...policy,
      siteLimit: deps.policy?.siteLimit ?? SITE_CLIENTS * policy.ipLimit,
      knownLimit: deps.policy?.knownLimit ?? KNOWN_LIMIT,
      // Above the account's own stop, whatever it is configured to: below it, a known browser would be stopped first.
      knownMaxConsecutive: deps.policy?.knownMaxConsecutive ?? 2 * policy.maxConsecutive,
    };
    const ns = deps.namespace ?? null;
    if (ns !== null && !/^[a-z][a-z0-9-]{0,31}$/.test(ns)) throw new RangeError(`flood namespace must be a short lower-case name, got ${JSON.stringify(ns)}`);
    this.namespace = ns;
    // Unprefixed for the login: its existing counts keep their keys. A prefixed kind ("mfa:streak") never equals
    // an unprefixed one, and the kind comes first in the hashed text, so the texts can never coincide.
    this.#kinds = ns === null
      ? { ip: "ip", site: "site", account: "account", streak: "streak", known: "known" }
      : { ip: `${ns}:ip`, site: `${ns}:site`, account: `${ns}:account`, streak: `${ns}:streak`, known: `${ns}:known` };
    this.#checkStatements = new Map([CHECK_SQL, CHECK_SITE_SQL, CHECK_KNOWN_SQL, CHECK_SITE_KNOWN_SQL].map((text) => [text, prepareHot<CheckRow>(deps.database, text)]));
    this.#deleteOneSQL = deleteOneSQL(deps.database.dialect);
  }

  /** The row key of `parts` (joined with NUL, which no identifier or address holds). */
  #key(...parts: string[]): string {
    return this.#keyOf(parts.join("\u0000"));
  }

  #keys(attempt: Attempt): Keys {
    const id = identifierKey(attempt.identifier);
    // Counted per client, not per spelling: an IPv6 host's whole /64, an IPv4-mapped address as its IPv4 one.
    const ip = attempt.ip ? ipBucket(attempt.ip) : "";
    // And an IPv6 client's /48 as well: one holder of a /48 is 65,536 /64s. Only a bucket with a colon can be an
    // IPv6 prefix (an IPv4 bucket is dotted): an IPv4 attempt parses nothing more and has no site key, so it writes
    // no site row and runs the statement it always ran. Text that is no address is its own site: no key either.
    const site = attempt.ip && ip.includes(":") ? ipSite(attempt.ip) : ip;
    const kind = this.#kinds;
    return {
      ip: ip ? this.#key(kind.ip, ip) : null,
      site: site !== ip ? this.#key(kind.site, site) : null,
      account: this.policy.perAccountOnly ? this.#key(kind.account, id) : this.#key(kind.account, id, ip),
      streak: this.#key(kind.streak, id),
      via: attempt.spelling === undefined ? null : this.#key(kind.account, "spelling", identifierKey(attempt.spelling)),
      // Under the identifier too: a browser known to two accounts has a window in each, and one account's failures
      // spend nothing of the other's.
      known: attempt.known === undefined ? null : this.#key(kind.known, id, attempt.known),
    };
  }

  /**
   * Whether an attempt may proceed. Reads only: one statement for the streak and both windows (the login
   * path runs it on every attempt, so it is compiled once rather than built as three Kysely queries).
   */
  async check(attempt: Attempt): Promise<FloodVerdict> {
    // Without the spelling: a caller that only asks is told the account's own state (a full window is a refusal).
    const verdict = await this.#verdict({ ...this.#keys(attempt), via: null }, null);
    return verdict.allowed ? { allowed: true, accountClean: verdict.accountClean } : verdict;
  }

  /** The statement of the verdict for keys `k` (CHECK_SITE_SQL for an IPv6 client, a *KNOWN_SQL one for a known attempt) and its parameters at `now`. */
  #check(k: Keys, now: number): { text: string; parameters: Array<string | number> } {
    const p = this.policy;
    const parameters: Array<string | number> = [k.streak, k.ip ?? "", now - p.ipWindowMs, Math.max(0, p.ipLimit - 1), k.account, now - p.accountWindowMs, Math.max(0, p.accountLimit - 1), k.via ?? ""];
    if (k.site !== null) parameters.push(k.site, Math.max(0, p.siteLimit - 1));
    if (k.known !== null) parameters.push(k.known, Math.max(0, p.knownLimit - 1));
    const text = k.site === null ? (k.known === null ? CHECK_SQL : CHECK_KNOWN_SQL) : (k.known === null ? CHECK_SITE_SQL : CHECK_SITE_KNOWN_SQL);
    return { text, parameters };
  }

  /** The verdict for keys `k`: through the compiled statement, or inside `trx` (where it must run on the transaction). */
  async #verdict(k: Keys, trx: Kysely<Schema> | null): Promise<Judged> {
    const now = this.#clock.now();
    const { text, parameters } = this.#check(k, now);
    const [row] = trx === null
      ? await (this.#checkStatements.get(text) as HotStatement<CheckRow>).all(parameters)
      : (await trx.executeQuery<CheckRow>(CompiledQuery.raw(numberedFor(this.#database, text), parameters))).rows;
    return this.#judge(k, row, now);
  }

  #judge(k: Keys, row: CheckRow | undefined, now: number): Judged {
    const p = this.policy;
    const streak = row?.streak ?? null;
    // A known browser or session is held by a stop of its own, further on (Attempt.known): the account's is anyone's.
    const known = k.known !== null;
    if (streak !== null && Number(streak) >= (known ? p.knownMaxConsecutive : p.maxConsecutive)) {
      // No time heals this: a success elsewhere (another IP within limits is impossible too) or a reset does.
      return { allowed: false, reason: "consecutive", retryAfterMs: p.accountWindowMs };
    }
    // The limit-th newest event inside the window, if there is one, is the one whose expiry lifts the limit.
    if (k.ip && row?.ip_at != null) return { allowed: false, reason: "ip", retryAfterMs: Math.max(1, Number(row.ip_at) + p.ipWindowMs - now) };
    // The site's window is the client's, wider: the same answer ("ip", 429 with Retry-After), so nothing new for a
    // caller to tell apart, and a /64 learns nothing from it that its own window would not tell it.
    if (k.site && row?.site_at != null) return { allowed: false, reason: "ip", retryAfterMs: Math.max(1, Number(row.site_at) + p.ipWindowMs - now) };
    if (known) {
      // Its own window, past which it waits (told as a wait, never as the stop): it follows the browser from address to
      // address, where the account+IP window below does not, so a copied cookie gets no more guesses from a botnet.
      if (row?.known_at != null) return { allowed: false, reason: "known", retryAfterMs: Math.max(1, Number(row.known_at) + p.accountWindowMs - now) };
      // A window per account alone (perAccountOnly) is filled by anyone naming the account, from anywhere: not for it.
      // Per account and IP (the default) it stays: only someone at the browser's own address fills that one.
      if (p.perAccountOnly) return { allowed: true, accountClean: streak === null && !Number(row?.account_any ?? 0), blind: false, streak: Number(streak ?? 0) };
    }
    if (row?.account_at != null) {
      // With a spelling, its own window decides the answer (and when it lifts); the full account window only
      // keeps the password from being checked (Attempt.spelling).
      if (k.via === null) return { allowed: false, reason: "account", retryAfterMs: Math.max(1, Number(row.account_at) + p.accountWindowMs - now) };
      if (row.spelling_at != null) return { allowed: false, reason: "account", retryAfterMs: Math.max(1, Number(row.spelling_at) + p.accountWindowMs - now) };
      return { allowed: true, accountClean: false, blind: true, streak: Number(streak ?? 0) };
    }
    // Events older than the window never count again (prune deletes them), so they need no clearing.
    return { allowed: true, accountClean: streak === null && !Number(row?.account_any ?? 0), blind: false, streak: Number(streak ?? 0) };
  }

  /**
   * Starts an attempt: decides, and if it is allowed records it as a failure at once, in one transaction
   * serialised per IP and per account (PostgreSQL advisory locks; SQLite's write lock). So attempts running at
   * the same time — in one process or on several nodes — count each other: forty parallel guesses against a
   * limit of five get five verifies, not forty. A refused attempt records nothing (Drupal counts failures only).
   *
   * @example
   * const begun = await flood.begin({ identifier, ip });
   * if (!begun.allowed) return throttled(begun.retryAfterMs);
   * if (await verify()) await flood.succeeded(begun.ticket); // a wrong one stays counted
   */
  async begin(attempt: Attempt): Promise<FloodBegin> {
    const k = this.#keys(attempt);
    const hot = hotTransaction(this.#database);
    if (hot) {
      const begun = hot<FloodBegin>((prepare) => {
        const now = this.#clock.now();
        const { text, parameters } = this.#check(k, now);
        const verdict = this.#judge(k, prepare(text).get(...parameters) as CheckRow | undefined, now);
        if (!verdict.allowed) return verdict;
        for (const [text, parameters] of this.#recordSteps(k, now)) prepare(text).run(...parameters);
        return { allowed: true, ticket: { at: now, settled: false, keys: k }, blind: verdict.blind, streak: verdict.streak };
      });
      if (begun !== HOT_BUSY) return begun; // else another process holds the lock: waited for below, asynchronously
    }
    return this.#database.transaction(async (trx) => {
      // Ascending order, whatever the kind of key: two attempts never wait on each other's second lock.
      // The identifier's streak, the account (or account+IP) window, the IP window and the site's: every count this
      // decides on (without the site's lock, the /64s of one /48 on several nodes would each see room in it).
      for (const key of [...new Set([k.streak, k.account, ...(k.ip ? [k.ip] : []), ...(k.site ? [k.site] : []), ...(k.known ? [k.known] : [])].map(lockKeyOf))].sort((a, b) => a - b)) {
        await serialiseTransactions(this.#database, trx, key);
      }
      const verdict = await this.#verdict(k, trx);
      if (!verdict.allowed) return verdict;
      const at = this.#clock.now();
      await this.#runSteps(trx, this.#recordSteps(k, at));
      return { allowed: true, ticket: { at, settled: false, keys: k }, blind: verdict.blind, streak: verdict.streak };
    });
  }

  /**
   * Counts one request from `ip` against the IP window alone (no account, no streak) and refuses it past ipLimit
   * per ipWindowMs: for public routes where every request costs something, a mail sent, not only a failure
   * (ASVS 2.4.1). Decided and recorded in one transaction serialised per IP, like begin, so parallel requests count
   * each other. A request with no client address is not limited.
   *
   * @example
   * const rate = await mailRequests.countRequest(ip);
   * if (!rate.allowed) return throttled(rate.retryAfterMs); // before any lookup: the same for every address asked about
   */
  async countRequest(ip: string | null): Promise<{ allowed: true } | { allowed: false; reason: "ip"; retryAfterMs: number }> {
    if (!ip) return { allowed: true };
    const bucket = ipBucket(ip);
    // An IPv6 client's site (/48) has a window of its own, as for failed logins: one holder of a /48 was 65,536
    // clients of `ipLimit` mails an hour each (a reset link to every account, three an hour). IPv4: no second count.
    const site = bucket.includes(":") ? ipSite(ip) : bucket;
    if (site === bucket) return this.countRequestFor(bucket);
    return this.#countWindows([
      { scope: "site", key: this.#key(this.#kinds.site, site), limit: this.policy.siteLimit },
      { scope: "ip", key: this.#key(this.#kinds.ip, bucket), limit: this.policy.ipLimit },
    ]);
  }

  /**
   * Counts one request under every window of `windows` (each key's limit-th newest event inside ipWindowMs) if every
   * one has room, in one transaction serialised on their keys (`at`: the time counted); refuses with the time the last
   * full one lifts otherwise.
   */
  async #countWindows(windows: ReadonlyArray<{ scope: string; key: string; limit: number }>): Promise<{ allowed: true; at: number } | { allowed: false; reason: "ip"; retryAfterMs: number }> {
    const windowMs = this.policy.ipWindowMs;
    const parameters = (w: { scope: string; key: string; limit: number }, now: number): Array<string | number> => [w.scope, w.key, now - windowMs, Math.max(0, w.limit - 1)];
    // The limit-th newest event of each window, or undefined where there is room: refused until the last full one lifts.
    const judge = (found: ReadonlyArray<number | string | undefined>, now: number): { allowed: true; at: number } | { allowed: false; reason: "ip"; retryAfterMs: number } => {
      const full = found.filter((at) => at !== undefined).map((at) => Math.max(1, Number(at) + windowMs - now));
      return full.length === 0 ? { allowed: true, at: now } : { allowed: false, reason: "ip", retryAfterMs: Math.max(...full) };
    };
    const hot = hotTransaction(this.#database);
    if (hot) {
      const counted = hot((prepare) => {
        const now = this.#clock.now();
        const verdict = judge(windows.map((w) => (prepare(SCOPED_WINDOW_SQL).get(...parameters(w, now)) as { at: number } | undefined)?.at), now);
        if (verdict.allowed) for (const w of windows) prepare(INSERT_EVENT_SQL).run(w.scope, w.key, now, "");
        return verdict;
      });
      if (counted !== HOT_BUSY) return counted; // else another process holds the lock: waited for below, asynchronously
    }
    return this.#database.transaction(async (trx) => {
      for (const w of [...windows].sort((a, b) => (a.key < b.key ? -1 : 1))) await serialiseTransactions(this.#database, trx, lockKeyOf(w.key));
      const now = this.#clock.now();
      const found: Array<number | string | undefined> = [];
      for (const w of windows) found.push((await trx.executeQuery<{ at: number | string }>(CompiledQuery.raw(numberedFor(this.#database, SCOPED_WINDOW_SQL), parameters(w, now)))).rows[0]?.at);
      const verdict = judge(found, now);
      if (verdict.allowed) await this.#runSteps(trx, windows.map((w) => [INSERT_EVENT_SQL, [w.scope, w.key, now, ""]] as const));
      return verdict;
    });
  }

  /**
   * countRequest for any subject, not only a client address: a recipient's lookup key, say, so that one mailbox gets
   * at most `ipLimit` unsolicited mails a window however many accounts or clients ask (the window and limit are the
   * policy's ip ones; keep such counters in a namespace of their own).
   *
   * @example
   * const rate = await mailRecipients.countRequestFor(mailboxKey(newEmail));
   */
  async countRequestFor(subject: string): Promise<{ allowed: true; at: number } | { allowed: false; reason: "ip"; retryAfterMs: number }> {
    return this.#countWindows([{ scope: "ip", key: this.#key(this.#kinds.ip, subject), limit: this.policy.ipLimit }]);
  }

  /**
   * countRequestFor with a way back: counts one under `subject` if its window has room (atomically, as countRequestFor),
   * and returns a `refund` that takes that one back, for a request that turned out to send nothing (refused further on):
   * the count is of what happened, and concurrent requests still cannot all see room. Null when the window is full.
   */
  async takeFor(subject: string): Promise<{ refund: () => Promise<void> } | null> {
    const verdict = await this.countRequestFor(subject);
    if (!verdict.allowed) return null;
    const k = this.#key(this.#kinds.ip, subject);
    const at = verdict.at;
    return {
      refund: async () => {
        await deleteOneEvent(this.#database, this.#database.db, ["ip", k, at]);
      },
    };
  }

  /**
   * Empties `subject`'s window of countRequestFor/takeFor, on `executor` when given: an administrator lifting an
   * account's token-mint rate that a thief's leaked token spent, committed with its audit event or not at all.
   */
  async clearFor(subject: string, executor: Kysely<Schema> = this.#database.db): Promise<void> {
    await executor.deleteFrom("flood_events").where("scope", "=", "ip").where("key", "=", this.#key(this.#kinds.ip, subject)).execute();
  }

  /** The attempt succeeded: its own failure events go, and so do the account's window and streak (flood_clear_event). */
  async succeeded(ticket: FloodTicket): Promise<void> {
    const k = ticket.keys;
    // The IP and its site keep the failures of other attempts, but not this one (a success is not a failure from them).
    const own: Step[] = ticket.settled ? [] : this.#ownClientSteps(k, ticket.at);
    await this.#apply([...own, ...this.#clearSteps(k)]);
    ticket.settled = true;
  }

  /**
   * Takes back what `begin` counted for this attempt, and nothing else: the account's earlier failures and its
   * streak stay. For a right password whose second factor is still to be checked (the factor has its own throttle).
   */
  async release(ticket: FloodTicket): Promise<void> {
    if (ticket.settled) return;
    const k = ticket.keys;
    await this.#apply([
      ...this.#ownClientSteps(k, ticket.at),
      [this.#deleteOneSQL, ["account", k.account, ticket.at]],
      ...(k.known ? [[this.#deleteOneSQL, ["known", k.known, ticket.at]] as const] : []),
      [UNBUMP_STREAK_SQL, [k.streak]],
    ]);
    ticket.settled = true;
  }

  /**
   * A failure counted against the IP, its IPv6 site, the account (or account+IP), the consecutive streak and, for a
   * known attempt, its own window: a known browser's failures count for the account as any others do.
   */
  #recordSteps(k: Keys, at: number): Step[] {
    return [
      k.known === null ? [INSERT_EVENT_SQL, ["account", k.account, at, k.via ?? ""]] : [INSERT_ACCOUNT_KNOWN_SQL, [k.account, at, k.via ?? "", k.known]],
      ...(k.ip ? [[INSERT_EVENT_SQL, ["ip", k.ip, at, ""]] as const] : []),
      ...(k.site ? [[INSERT_EVENT_SQL, ["site", k.site, at, ""]] as const] : []),
      [BUMP_STREAK_SQL, [k.streak, at]],
    ];
  }

  /** Takes back the IP's and the site's event of the attempt recorded at `at` (one each, of several in that millisecond). */
  #ownClientSteps(k: Keys, at: number): Step[] {
    return [
      ...(k.ip ? [[this.#deleteOneSQL, ["ip", k.ip, at]] as const] : []),
      ...(k.site ? [[this.#deleteOneSQL, ["site", k.site, at]] as const] : []),
    ];
  }

  /**
   * The account's window and the identifier's streak, cleared; for a known attempt its own window too (the success's
   * own event with it, which was no failure), in the account's statement.
   */
  #clearSteps(k: Keys): Step[] {
    return [k.known === null ? [CLEAR_ACCOUNT_SQL, [k.account]] : [CLEAR_ACCOUNT_KNOWN_SQL, [k.account, k.known]], [CLEAR_STREAK_SQL, [k.streak]]];
  }

  /**
   * Runs `steps` as one transaction: on SQLite with no transaction open, synchronously on statements compiled once
   * (hotTransaction: these run twice on every login); otherwise in a database transaction.
   */
  async #apply(steps: Step[]): Promise<void> {
    const hot = hotTransaction(this.#database);
    // HOT_BUSY: another process holds the lock; the database transaction waits for it asynchronously.
    if (hot && hot((prepare) => {
      for (const [text, parameters] of steps) prepare(text).run(...parameters);
    }) !== HOT_BUSY) return;
    await this.#database.transaction((trx) => this.#runSteps(trx, steps));
  }

  async #runSteps(trx: Kysely<Schema>, steps: Step[]): Promise<void> {
    for (const [text, parameters] of steps) {
      // One event of an attempt taken back: exactly one, whatever deletes of the same key run beside it.
      if (text === this.#deleteOneSQL) await deleteOneEvent(this.#database, trx, parameters);
      else await trx.executeQuery(CompiledQuery.raw(numberedFor(this.#database, text), [...parameters]));
    }
  }

  /** Records a failed attempt against the IP, its IPv6 site, the account (or account+IP) and the consecutive streak. */
  async registerFailure(attempt: Attempt): Promise<void> {
    await this.#apply(this.#recordSteps(this.#keys(attempt), this.#clock.now()));
  }

  /**
   * After a success: clears the account's window (Drupal's flood_clear_event) and its streak. IP counts stay. On
   * `executor` when given (an administrator's clearing, committed with its audit event or not at all).
   */
  async clearAccount(attempt: Attempt, executor?: Kysely<Schema>): Promise<void> {
    const steps = this.#clearSteps(this.#keys(attempt));
    if (executor !== undefined) return this.#runSteps(executor, steps);
    await this.#apply(steps);
  }

  /**
   * After a password reset or an administrator's unlock: clears the consecutive cap for the identifier. On `executor`
   * when given: an administrator's clearing commits with its audit event, or not at all (ASVS 16.3.3).
   *
   * @example
   * await database.transaction(async (trx) => { await flood.clearStreak(user.email, trx); await audit.appendIn(trx, event); });
   */
  async clearStreak(identifier: string, executor: Kysely<Schema> = this.#database.db): Promise<void> {
    await executor.deleteFrom("flood_streaks").where("key", "=", this.#key(this.#kinds.streak, identifierKey(identifier))).execute();
  }

  /**
   * Deletes window events too old to count under any limit, on `executor` when given. Returns how many were removed.
   * Site events are counted over the IP window, so the horizon covers them too.
   */
  async prune(executor: Kysely<Schema> = this.#database.db): Promise<number> {
    const horizon = this.#clock.now() - Math.max(this.policy.ipWindowMs, this.policy.accountWindowMs);
    // Oldest first, about PRUNE_BATCH events a statement, each its own (autocommit on SQLite, where the maintenance pass
    // runs its steps outside a transaction): one DELETE of a pass's whole share held SQLite's one write lock for as long
    // as it ran, ~2.5 µs an event (2.5 s after a credential-stuffing hour of a million refusals), and every login waited
    // on it (test/lock-holds-red-team.test.ts). flood_events has no key of its own: a batch ends at the time of its
    // PRUNE_BATCH-th oldest event (the flood_events_at index), so events sharing that millisecond go with it.
    let deleted = 0;
    for (;;) {
      const edge = await executor.selectFrom("flood_events").select("at").where("at", "<=", horizon)
        .orderBy("at").limit(1).offset(PRUNE_BATCH - 1).executeTakeFirst();
      const upTo = edge === undefined ? horizon : Number(edge.at);
      deleted += Number((await executor.deleteFrom("flood_events").where("at", "<=", upTo).executeTakeFirst()).numDeletedRows);
      if (edge === undefined) return deleted;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
