// The durable outbox: enqueue (one row per message, idempotent by key, bulk in multi-row batches) and
// the claim/lease protocol senders use, on SQLite and PostgreSQL alike.
import { sql, type Insertable, type Kysely, type RawBuilder, type Selectable, type SelectQueryBuilder, type SqlBool } from "kysely";
import { newOrderedId } from "../crypto/tokens.ts";
import { BulwarkError } from "../lib/errors.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { keyStoreIn } from "../store/key-store.ts";
import { valuesQuery, type ValuesColumn } from "../store/values-query.ts";
import { notifyErrors } from "./errors.ts";
import type { CipherContext, KeyStore } from "../crypto/keyring.ts";
import { carriesSingleUseLink, DELIVERED_LINK_HTML, DELIVERED_LINK_TEXT, PUBLIC_URL_SLOT, SEALED_BODY_MARKER, SINGLE_USE_LINK_KINDS } from "./link-kinds.ts";
import type { OutboxMessagesTable } from "./tables.ts";
import { checkAddress, checkBody, checkSubject, checkToken } from "./validate.ts";
import type { Schema } from "../store/schema.ts";

export type OutboxStatus = "queued" | "sending" | "sent" | "failed" | "dead";

/**
 * Claimable: new, waiting for a retry, or claimed by a sender whose lease ran out. Written as literal SQL,
 * the very text of the partial index `outbox_messages_due`: SQLite uses a partial index only when the
 * query repeats its condition, which a bound parameter list does not.
 */
const CLAIMABLE = sql<SqlBool>`"status" in ('queued', 'failed', 'sending')`;

/** Claimable mail no sender holds: queued, or waiting for a retry (a claim with `takeOver: false`, dueAtOnceAhead's count). */
const WAITING = sql<SqlBool>`"status" in ('queued', 'failed')`;

/**
 * A due time for mail handed back or requeued (Outbox.release, Outbox.requeueDead): its queue time, or `now` when that is
 * earlier. Due at once as dueAtOnceAhead defines it (`next_attempt_at <= created_at`, no column of its own), so after a
 * step of the clock back it is freed like mail just queued; dated `now` (after its queue time), it was held for the step.
 */
function dueAtOnce(now: number): RawBuilder<number> {
  return sql<number>`CASE WHEN "created_at" < ${now} THEN "created_at" ELSE ${now} END`;
}

/** The ids of claimable rows, narrowed further by a claim. */
type DueQuery = SelectQueryBuilder<Schema, "outbox_messages", { id: string }>;

/**
 * Claim order, lower first. `security`: notices of a change made to an account (a password, an address, a factor, a
 * token), which only a real change causes. `link`: the links and notices a request can cause for any address (a
 * reset, a sign-up, an email change): anyone can queue these by the thousand, so they wait behind the notices, never
 * beside them. `normal`: the rest (a containment's reset links to every user in scope); `campaign`: bulk.
 */
export const PRIORITY = { security: 0, link: 1, normal: 5, campaign: 10 } as const;

/**
 * What requeueDead adds to a dead message's priority (once: one at REQUEUED_BEHIND or more keeps it): mail that died
 * and is sent again goes behind all mail queued the usual way, in its own order, taken before it only by the aged share
 * of each claim (Outbox.claim). A relay that refused a flood of sign-up links leaves it all dead; requeued at its own
 * priority and due at once, it went out before a reset link asked for a second later.
 */
export const REQUEUED_BEHIND = 20;

/**
 * Mail the aged share may take: all but the notices. Literal SQL for the same reason as CLAIMABLE: together they are
 * the condition of the partial index `outbox_messages_aged` (migration 28), which holds this mail in the order the
 * aged share takes it (next_attempt_at), so a claim reads about as many rows as it takes, however long the queue.
 */
const AGED_CANDIDATE = sql<SqlBool>`"priority" > ${sql.lit(PRIORITY.security)}`;

/** Dead mail, as the partial index `outbox_messages_dead` (migration 28) states it: pages of it read in index order. */
const DEAD = sql<SqlBool>`"status" = 'dead'`;

/**
 * The link mail whose newer copy for the same account replaces older link mails (stillGood): a containment run spends
 * every open link of the account's reset table (reset, sign-up and containment links alike: spendOpenLinks) in the
 * transaction that queues the account's containment link. Its services' other link mails replace none: a reset or
 * sign-up request stores one more link beside the open ones, each working until one is used (reset-service.ts), and an
 * email-change link, though a new request spends the older ones, goes to an address as such, with no account_id.
 * Mail queued since migration 38 names its link (link_id), and the claim asks the link stores whether it is still open,
 * which covers this and every other way a link is spent; this rule stays for rows queued before (no link_id) and for
 * an outbox without linkStates.
 */
const REPLACING_KIND = "account.containment-reset-link";

/** The link mails a newer REPLACING_KIND mail of the same account replaces: their links sit in the table it spends. */
const REPLACED_KINDS: ReadonlySet<string> = new Set(["account.password-reset-link", "account.registration-link", REPLACING_KIND]);

/**
 * A REPLACING_KIND mail about an account, as the partial index `outbox_messages_replacing` (migration 39) states it,
 * word for word (the kind as a literal, not a bound parameter: a partial index serves a query whose own condition
 * states it).
 */
const REPLACING_ABOUT_AN_ACCOUNT = sql<SqlBool>`"kind" = ${sql.lit(REPLACING_KIND)} and "account_id" is not null`;

/** How long mail other than the notices waits due before a share of each claim goes to it (Outbox.claim). */
export const AGED_AFTER_MS = 60_000;

export interface NewMessage {
  /** Same key, same message: a second enqueue is a no-op. E.g. `security.password-changed:<event id>:<address>`. */
  idempotencyKey: string;
  to: string;
  subject: string;
  text: string;
  html?: string;
  /** What the message is, e.g. `security.password-changed` or `campaign.breach-notice`. */
  kind: string;
  campaignId?: string | null;
  /** Lower first; defaults to PRIORITY.normal. */
  priority?: number;
  /** Do not send before this time (ms since epoch). */
  notBefore?: number;
  /**
   * For mail carrying a single-use link: how long the link works from now (the lifetime its service stores). The claim
   * records the message dead, not sent, once that time has passed: a link mail that died and was requeued days later
   * would otherwise go out saying "open this link within 30 minutes" with a link the store refuses.
   */
  linkLifetimeMs?: number;
  /**
   * The account whose current address `to` is: sent only while the account still has it (the claim records it dead
   * otherwise, and when the account is gone). Left out for mail meant for an address as such: the notices of an address
   * change (to the address left and to the one set), a confirmation link to the one it moves to, a campaign.
   */
  accountId?: string | null;
  /**
   * For mail carrying a single-use link: the id of the link's row in its store (a reset token's, an email-change
   * token's). The claim asks the stores whether that link still works (OutboxDeps.linkStates) and records the message
   * dead, not sent, once it does not: used, spent (by the use of another link of the account, a password change, an
   * address change, a containment, a newer request) or withdrawn, though its lifetime has not passed.
   */
  linkId?: string;
}

export interface OutboxMessage {
  id: string;
  idempotencyKey: string;
  to: string;
  subject: string;
  text: string;
  html: string | null;
  kind: string;
  priority: number;
  status: OutboxStatus;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  createdAt: number;
  sentAt: number | null;
  claimedBy: string | null;
  claimedUntil: number | null;
  providerMessageId: string | null;
  campaignId: string | null;
}

/** A message without its bodies: what a listing shows, read from the row's columns without opening a sealed body. */
export type OutboxMessageSummary = Omit<OutboxMessage, "text" | "html">;

/**
 * A message claim() took but did not hand out, because its sealed body did not open or its link is not on
 * BULWARK_PUBLIC_URL as configured now: `dead` when it never can be sent (recorded dead), else put back for a retry
 * shortly (the key table could not be read, say).
 */
export interface SetAsideMessage {
  id: string;
  kind: string;
  to: string;
  attempts: number;
  /** The reason recorded as the row's last error. */
  error: string;
  dead: boolean;
}

/** A dead message's place in the order dead mail is paged in: (created_at, id). */
export interface DeadPosition {
  createdAt: number;
  id: string;
}

export interface EnqueueResult {
  id: string;
  /** false when a message with this idempotency key already existed (it is left as it was). */
  created: boolean;
}

export interface BulkEnqueueResult {
  inserted: number;
  duplicates: number;
}

// Rows per INSERT. On SQLite a VALUES list: 21 columns × 1,000 = 21,000 bind parameters at most, under its 32,766
// (PostgreSQL takes a batch as an array per column, bulkInsertPostgres).
const DEFAULT_BATCH = 500;
const MAX_BATCH = 1000;

/**
 * outbox_messages' columns with their PostgreSQL types, for the bulk insert's casts (bulkInsertPostgres). Every column
 * must be named (a new one fails the type check until it is added here); the conformance test reads the types back
 * from the catalog.
 */
export const OUTBOX_COLUMN_TYPES = {
  id: "text", idempotency_key: "text", to_address: "text", subject: "text", body_text: "text", body_html: "text", kind: "text",
  priority: "integer", status: "text", attempts: "integer", next_attempt_at: "bigint", last_error: "text", created_at: "bigint",
  sent_at: "bigint", claimed_by: "text", claimed_until: "bigint", provider_message_id: "text", campaign_id: "text",
  not_after: "bigint", account_id: "text", link_id: "text",
} as const satisfies Record<keyof OutboxMessagesTable, ValuesColumn["type"]>;

type OutboxColumn = keyof typeof OUTBOX_COLUMN_TYPES;

/**
 * One batch of rows as one INSERT … SELECT on PostgreSQL, a key already present skipped. The columns whose values
 * differ between the rows (the id, the key, the address, the text of a notice that names its reference) travel as one
 * array each (valuesQuery's unnest); those the whole batch shares (the kind, the status, the times, a campaign's
 * subject and text, the columns left null) as one parameter each. As a VALUES list a 500-row batch was ~10,000
 * parameters, each parsed, typed and checked by the server: ~50 µs a row, where the rows themselves cost ~10
 * (docs/containment.md, "Measured"). A column no row sets is left to its default (null for every optional one).
 * SQLite keeps the VALUES list: there binding is cheap, and the same batch through JSON measured only ~5% faster.
 */
function bulkInsertPostgres(rows: ReadonlyArray<Insertable<OutboxMessagesTable>>): RawBuilder<unknown> {
  const first = rows[0] as Insertable<OutboxMessagesTable>;
  const value = (row: Insertable<OutboxMessagesTable>, column: OutboxColumn): string | number | null => row[column] ?? null;
  const columns = (Object.keys(OUTBOX_COLUMN_TYPES) as OutboxColumn[]).filter((c) => rows.some((r) => r[c] !== undefined));
  // The id always goes as an array (every row has its own), so a one-row batch has a column to unnest too.
  const varying = columns.filter((c) => c === "id" || rows.some((r) => value(r, c) !== value(first, c)));
  const arrays = valuesQuery("postgres", varying.map((name) => ({ name, type: OUTBOX_COLUMN_TYPES[name] })), rows.map((r) => varying.map((c) => value(r, c))));
  const picks = columns.map((c) => (varying.includes(c) ? sql.ref(`v.${c}`) : sql`${value(first, c)}::${sql.raw(OUTBOX_COLUMN_TYPES[c])}`));
  return sql`insert into outbox_messages (${sql.join(columns.map((c) => sql.ref(c)))}) select ${sql.join(picks)} from (${arrays}) as v
    on conflict (idempotency_key) do nothing`;
}

// Bounded so a misbehaving server cannot fill the row with its reply.
const MAX_ERROR = 500;
// How soon a message whose sealed body could not be opened for a passing reason is claimed again.
const UNOPENED_RETRY_MS = 30_000;

/**
 * The keyring's answers that mean a sealed body will never open with this database and master key: it does not
 * decrypt (an altered row, another master key), its key is not in the key table even after reading it again, the
 * ciphertext is not in the keyring's format; or this outbox has no keyring at all. Any other error (the key table
 * could not be read, a connection dropped) says nothing of the message.
 */
const NEVER_OPENS: ReadonlySet<string> = new Set(["BULWARK_ERR_DECRYPT", "BULWARK_ERR_UNKNOWN_KEY", "BULWARK_ERR_CIPHERTEXT_MALFORMED", "BULWARK_ERR_MAIL_MESSAGE"]);

/**
 * Seals the bodies of single-use link mails at rest (the keyring). A link's secret then never sits in clear in the
 * database: not in the row while it waits, nor in the WAL's old page images or a page's free space after the row
 * was redacted (markSent), which a file-level backup copies (ASVS 14.2.7).
 */
export interface LinkCipher {
  /**
   * Seals a body under the current data key, reading the key table first when it last did KEY_FRESHNESS_MS ago or
   * more: a server idle that long when the CLI's rotate-keys ended would otherwise seal under the retired key (the
   * synchronous `encrypt` only starts a reload). Inside a transaction `options.store` is read instead.
   */
  seal(plaintext: string, ctx: CipherContext, options?: { store?: KeyStore }): Promise<string>;
  /** Opens a body; reads the key table again first when another process sealed it under a key this one lacks. */
  unsealString(ciphertext: string, ctx: CipherContext): Promise<string>;
}

function bodyContext(id: string, column: "body_text" | "body_html"): CipherContext {
  return { table: "outbox_messages", column, row: id };
}

/**
 * Heads the plaintext of every body sealed since ADR 0020: what the body was sealed for, the row's recipient, kind and
 * subject, as one JSON line. The keyring binds a ciphertext to (outbox_messages, column, id) only, none of which says
 * where the mail goes: an intruder who can write the database but not read the key set `to_address` to their own
 * mailbox, and the sender opened the seal and delivered the owner's working reset link there (ASVS 11.3.3, 6.4.3). A
 * changed kind or subject re-purposes the same link. Inside the sealed bytes, the AEAD tag covers the binding as it
 * would associated data, and rotate-keys, which opens and re-seals every registered column under (table, column, id),
 * carries it over untouched.
 */
const SEALED_FOR = "bulwark-outbox-sealed-for-v1\n";

type SealedFor = Pick<OutboxMessagesTable, "to_address" | "kind" | "subject">;

/** The plaintext sealed for `row`'s `body`: the binding line, then the body. */
function sealedFor(row: SealedFor, body: string): string {
  return `${SEALED_FOR}${JSON.stringify({ to: row.to_address, kind: row.kind, subject: row.subject })}\n${body}`;
}

/**
 * The body of a plaintext opened from `r`'s `column`, when the row still has the recipient, kind and subject it was sealed
 * for. Otherwise a BULWARK_ERR_MAIL_MESSAGE, which the claim records as dead (NEVER_OPENS), as it does any altered sealed
 * row. The error names the columns that changed, never their values (an address, the intruder's or the owner's).
 */
function openedFor(r: Selectable<OutboxMessagesTable>, column: "body_text" | "body_html", plain: string): string {
  // Sealed before the binding: nothing in it says who it was for, so a changed recipient cannot be told from the real
  // one, and nothing can add the binding later (migrations run without the key). Refused, never delivered: the owner
  // asks for a new link (ADR 0020).
  if (!plain.startsWith(SEALED_FOR)) {
    throw notifyErrors.badMessage(`message ${r.id}: its sealed ${column} was sealed before the recipient was bound to it, so a changed recipient cannot be told; its owner can ask for a new link`);
  }
  const end = plain.indexOf("\n", SEALED_FOR.length);
  let sealed: unknown = null;
  try {
    sealed = end < 0 ? null : JSON.parse(plain.slice(SEALED_FOR.length, end));
  } catch {
    // Only a sealing bug could write this (the keyring authenticated these bytes): refused below all the same.
  }
  if (typeof sealed !== "object" || sealed === null) throw notifyErrors.badMessage(`message ${r.id}: what its sealed ${column} was sealed for does not parse`);
  const was = sealed as Record<string, unknown>;
  const changed = ([["to_address", was.to, r.to_address], ["kind", was.kind, r.kind], ["subject", was.subject, r.subject]] as const)
    .filter(([, then, now]) => then !== now).map(([name]) => name);
  if (changed.length > 0) {
    throw notifyErrors.badMessage(`message ${r.id}: its ${changed.join(", ")} changed since its ${column} was sealed (an altered row): it is not sent`);
  }
  return plain.slice(end + 1);
}

/** The body of a link mail as stored: each link on `publicURL` (the composers build them on it) with PUBLIC_URL_SLOT for its origin. */
function withoutLinkOrigin(body: string, publicURL: string): string {
  return body.replaceAll(`${publicURL}/`, `${PUBLIC_URL_SLOT}/`);
}

/** The origin of every http(s) URL in a text, up to the first character that ends a host and port. */
const URL_ORIGIN = /https?:\/\/[^\s/?#"'<>]*/gi;

/**
 * The body of link mail `id` as it is sent: PUBLIC_URL_SLOT replaced by BULWARK_PUBLIC_URL as configured now. A URL
 * on any other origin left in it (a row queued before links were stored without their origin, or by a process with
 * another public URL) is refused with BULWARK_ERR_MAIL_LINK_ORIGIN, which the claim records as dead: the operator no
 * longer sends users there, and whoever holds that origin now would read the token from the page the link opens
 * (ASVS 13.2.4). Without `publicURL` (an outbox of tests of other behaviour) a body is handed out as stored.
 */
function withLinkOrigin(id: string, body: string, publicURL: string | null): string {
  if (publicURL === null) {
    if (body.includes(PUBLIC_URL_SLOT)) throw notifyErrors.staleLink(`message ${id}: its links take BULWARK_PUBLIC_URL when it is sent, and this outbox has none`);
    return body;
  }
  const sent = body.replaceAll(PUBLIC_URL_SLOT, publicURL);
  for (const [origin] of sent.matchAll(URL_ORIGIN)) {
    if (origin !== publicURL) {
      throw notifyErrors.staleLink(`message ${id}: it holds a link to ${origin.slice(0, 100)}, not to BULWARK_PUBLIC_URL as configured now (${publicURL}), and a link to an origin the operator no longer configures is not sent; its owner can ask for a new link`);
    }
  }
  return sent;
}

/**
 * Whether the link a queued mail carries (NewMessage.linkId) still works, as its store judges it now, whatever the
 * mail's own lifetime says: `used` (redeemed, or spent: by the use of another link of its account, a password change, an
 * address change, a containment, a newer email-change request), `expired`, `refused` (the store would refuse it as
 * things stand: dated ahead of this server's clock), `revoked` (ended for good by its account's sessions ended since),
 * `taken` (an email-change link to an address another account holds now: its confirmation would be refused). A link its
 * store no longer holds (purged, or never committed) is left out of the answer.
 */
export type LinkState = "open" | "used" | "expired" | "refused" | "revoked" | "taken";

/** Answers, for the ids of the links a claim took mail for, each link's state (LinkState); ids it no longer holds are left out. */
export type LinkStates = (ids: readonly string[]) => Promise<ReadonlyMap<string, LinkState>>;

/** Why a link mail whose link is not open is not sent, in words (stillGood): never the link, which is a secret. */
const CLOSED_LINK: Record<Exclude<LinkState, "open"> | "gone", string> = {
  used: "its link was used or withdrawn before it could be sent (used, or spent by the use of another link of the account, a password change, an address change, a containment or a newer request): not sent; the link that works, if any, is in another mail",
  gone: "its link was used or withdrawn before it could be sent (its store no longer holds it): not sent; its owner can ask for a new one",
  expired: "its link expired before it could be sent: not sent; its owner can ask for a new one",
  refused: "its link would be refused as things stand (it is dated ahead of this server's clock): not sent; its owner can ask for a new one",
  revoked: "its link was withdrawn when the account's sessions were ended after it was asked for (a sign-out of every session, a lock, a containment): not sent; its owner can ask for a new one",
  taken: "the address it would move the account to is another account's now (or one that reads like it), taken since the link was asked for: not sent, as its confirmation would be refused; its owner can ask to move to another address",
};

/**
 * Whether the created_at replacement rule (REPLACED_KINDS) judges `r`: only mail whose link cannot be asked of its store
 * (queued before migration 38, without link_id, or claimed by an outbox without linkStates). The order of two rows'
 * created_at is the order of two nodes' clocks, which may differ within the skew the product allows: a reset link asked
 * for seconds after a containment link on a slower node still works (test/closed-links-red-team.test.ts).
 */
function judgedByReplacement(r: Selectable<OutboxMessagesTable>, canAskLinks: boolean): r is Selectable<OutboxMessagesTable> & { account_id: string } {
  return r.account_id != null && REPLACED_KINDS.has(r.kind) && (!canAskLinks || r.link_id == null);
}

/**
 * Why a claimed message is no longer good to send, or null when it is: its link stopped working (not_after), or the
 * account it is about (account_id) has another address now, or is gone (`addresses`: each claimed account's address
 * now), or a newer link mail of the account replaced its link (`replacedAt`: when each claimed link mail's account was
 * last sent a REPLACING_KIND mail, queued under any status), or its link (link_id) is no longer open (`links`: the
 * state of each claimed link as its store answered, null when this outbox cannot ask: a row queued before migration 38
 * or an outbox without linkStates is judged by the rest alone). Mail that died and was requeued days later (requeue-dead), or
 * waited out a relay's outage, would otherwise go out with a link the store refuses, still saying how long it works, or
 * to a mailbox the account left, which its email-changed notice told would no longer receive messages about it: whoever
 * holds it now. Addresses compared in any case (the outbox's are ASCII, checkAddress).
 */
function stillGood(r: Selectable<OutboxMessagesTable>, now: number, addresses: ReadonlyMap<string, string>, replacedAt: ReadonlyMap<string, number>, links: ReadonlyMap<string, LinkState> | null): string | null {
  // Undefined, not null, on a store before migration 36 (a row of the previous release's, which has neither).
  if (r.not_after != null && Number(r.not_after) <= now) {
    return `its link stopped working at ${new Date(Number(r.not_after)).toISOString()}, before it could be sent: not sent; its owner can ask for a new one`;
  }
  if (r.account_id != null && addresses.get(r.account_id)?.toLowerCase() !== r.to_address.toLowerCase()) {
    return "the account it is about no longer has this address (or no longer exists): not sent to the address it left";
  }
  // Strictly newer: two queued in the same millisecond both go (a live link is never withheld on a tie).
  if (judgedByReplacement(r, links !== null) && (replacedAt.get(r.account_id) ?? -Infinity) > Number(r.created_at)) {
    return "a newer link mail for its account replaced it (its link was spent when the newer one was issued): not sent; the newer mail carries the link that works";
  }
  if (links !== null && r.link_id != null && carriesSingleUseLink(r.kind)) {
    const state = links.get(r.link_id) ?? "gone";
    if (state !== "open") return CLOSED_LINK[state];
  }
  return null;
}

function toSummary(r: Selectable<OutboxMessagesTable>): OutboxMessageSummary {
  const num = (v: number | null): number | null => (v === null ? null : Number(v));
  return {
    id: r.id, idempotencyKey: r.idempotency_key, to: r.to_address, subject: r.subject,
    kind: r.kind, priority: Number(r.priority), status: r.status as OutboxStatus, attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at), lastError: r.last_error, createdAt: Number(r.created_at), sentAt: num(r.sent_at),
    claimedBy: r.claimed_by, claimedUntil: num(r.claimed_until), providerMessageId: r.provider_message_id, campaignId: r.campaign_id,
  };
}

async function toMessage(r: Selectable<OutboxMessagesTable>, cipher: LinkCipher | null, publicURL: string | null): Promise<OutboxMessage> {
  const open = async (body: string, column: "body_text" | "body_html"): Promise<string> => {
    if (!carriesSingleUseLink(r.kind)) return body;
    if (!body.startsWith(SEALED_BODY_MARKER)) return withLinkOrigin(r.id, body, publicURL);
    if (!cipher) throw notifyErrors.badMessage(`message ${r.id} holds a sealed body, and this outbox has no keyring to open it`);
    return withLinkOrigin(r.id, openedFor(r, column, await cipher.unsealString(body.slice(SEALED_BODY_MARKER.length), bodyContext(r.id, column))), publicURL);
  };
  return { ...toSummary(r), text: await open(r.body_text, "body_text"), html: r.body_html === null ? null : await open(r.body_html, "body_html") };
}

export interface OutboxDeps {
  database: Database;
  clock: Clock;
  random: RandomSource;
  /**
   * Seals single-use link bodies at rest (LinkCipher). The server and the CLI pass the keyring (src/app/accounts.ts);
   * without one, link bodies are stored in clear (tests of other behaviour).
   */
  linkCipher?: LinkCipher;
  /**
   * BULWARK_PUBLIC_URL (an origin, as the configuration holds it). Link mails are stored with PUBLIC_URL_SLOT for it and
   * sent with the one configured when they go out, never with another origin (withLinkOrigin). The server and the CLI
   * pass it (src/app/accounts.ts); without it, link bodies are stored and sent as composed (tests of other behaviour).
   */
  publicURL?: string;
  /**
   * Asks the link stores whether the links of claimed mail still work (LinkStates): once per claim, only when it took
   * mail with a link id. The server and the CLI pass the accounts' (src/app/accounts.ts); without it, link mail is
   * judged by its lifetime, address and replacement alone (tests of other behaviour).
   */
  linkStates?: LinkStates;
}

export class Outbox {
  readonly #database: Database;
  readonly #db: Kysely<Schema>;
  /** Claims made by this process, for the turns of the aged share (claim). */
  #claims = 0;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #cipher: LinkCipher | null;
  readonly #publicURL: string | null;
  readonly #linkStates: LinkStates | null;

  constructor(deps: OutboxDeps) {
    this.#database = deps.database;
    this.#db = deps.database.db;
    this.#clock = deps.clock;
    this.#random = deps.random;
    this.#cipher = deps.linkCipher ?? null;
    // An origin exactly as URL spells it: a trailing slash or a path would match no link, and every link mail would die.
    if (deps.publicURL !== undefined && URL.parse(deps.publicURL)?.origin !== deps.publicURL) {
      throw notifyErrors.badConfig(`the outbox's publicURL must be an origin (scheme, host, optional port), got ${JSON.stringify(deps.publicURL.slice(0, 100))}`);
    }
    this.#publicURL = deps.publicURL ?? null;
    this.#linkStates = deps.linkStates ?? null;
  }

  get dialect(): Database["dialect"] {
    return this.#database.dialect;
  }

  /**
   * Runs `work` in one transaction of the outbox's database (on SQLite it takes the write lock at BEGIN): for a caller
   * that records an outcome (markSent, markDead) together with something else, as the sender does a security notice's
   * audit event. Both commit, or neither.
   *
   * @example
   * await outbox.transaction(async (trx) => {
   *   if (await outbox.markSent(input, trx)) await audit.appendIn(trx, event);
   * });
   */
  transaction<T>(work: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
    return this.#database.transaction(work);
  }

  /** Validates one message (header injection refused here) and builds its row, with its bodies not sealed yet (#seal). */
  #row(message: NewMessage, now: number): Insertable<OutboxMessagesTable> & SealedFor & { id: string; body_text: string; body_html: string | null } {
    checkToken("idempotencyKey", message.idempotencyKey);
    checkToken("kind", message.kind, 100);
    checkAddress("to", message.to);
    checkSubject(message.subject);
    checkBody("text", message.text);
    if (message.html !== undefined) checkBody("html", message.html);
    if (message.campaignId != null) checkToken("campaignId", message.campaignId, 100);
    const priority = message.priority ?? PRIORITY.normal;
    if (!Number.isInteger(priority) || priority < 0 || priority > 100) throw notifyErrors.badMessage("priority must be an integer between 0 and 100");
    const lifetime = message.linkLifetimeMs;
    if (lifetime !== undefined && (!Number.isSafeInteger(lifetime) || lifetime <= 0)) throw notifyErrors.badMessage("linkLifetimeMs must be a whole number of ms above 0");
    if (message.accountId != null) checkToken("accountId", message.accountId, 100);
    if (message.linkId !== undefined) {
      checkToken("linkId", message.linkId, 100);
      if (!carriesSingleUseLink(message.kind)) throw notifyErrors.badMessage(`linkId is for mail carrying a single-use link (SINGLE_USE_LINK_KINDS), and ${message.kind} carries none`);
    }
    const id = newOrderedId("msg", now, this.#random);
    // A link's origin is the one configured when the mail is sent, not now (withLinkOrigin).
    const publicURL = carriesSingleUseLink(message.kind) ? this.#publicURL : null;
    const stored = (body: string): string => (publicURL === null ? body : withoutLinkOrigin(body, publicURL));
    return {
      id, idempotency_key: message.idempotencyKey, to_address: message.to, subject: message.subject,
      body_text: stored(message.text), body_html: message.html === undefined ? null : stored(message.html), kind: message.kind, priority, status: "queued", attempts: 0,
      next_attempt_at: Math.max(now, message.notBefore ?? now), last_error: null, created_at: now, sent_at: null,
      claimed_by: null, claimed_until: null, provider_message_id: null, campaign_id: message.campaignId ?? null,
      // Written only when set (migration 36's columns): a row without them is as every row was before.
      ...(lifetime === undefined ? {} : { not_after: now + lifetime }), ...(message.accountId == null ? {} : { account_id: message.accountId }),
      // Migration 38's column, likewise.
      ...(message.linkId === undefined ? {} : { link_id: message.linkId }),
    };
  }

  /**
   * Seals the bodies of `row` in place when its kind carries a single-use link and this outbox has a keyring. The
   * keyring reads the key table first when its view may be stale: through `executor` when one is given (the
   * caller's transaction), else through its own store.
   */
  async #seal(row: SealedFor & { id: string; body_text: string; body_html: string | null }, executor: Kysely<Schema> | undefined): Promise<void> {
    const cipher = carriesSingleUseLink(row.kind) ? this.#cipher : null;
    if (!cipher) return;
    const options = executor ? { store: keyStoreIn(executor, this.#database.dialect, "outbox enqueue") } : {};
    // Each body with what it is sealed for (sealedFor): a row whose recipient, kind or subject is changed later does not open.
    row.body_text = SEALED_BODY_MARKER + (await cipher.seal(sealedFor(row, row.body_text), bodyContext(row.id, "body_text"), options));
    if (row.body_html !== null) row.body_html = SEALED_BODY_MARKER + (await cipher.seal(sealedFor(row, row.body_html), bodyContext(row.id, "body_html"), options));
  }

  /**
   * Adds one message. Pass `executor` (a transaction) to commit the message with the change it reports:
   * the transactional-outbox pattern, so a password change is never committed without its notice.
   *
   * @example
   * const { id } = await outbox.enqueue({ idempotencyKey: "welcome:usr_1", to: "ana@example.org", subject: "Welcome", text: "Hi", kind: "account.welcome" });
   */
  async enqueue(message: NewMessage, executor?: Kysely<Schema>): Promise<EnqueueResult> {
    const db = executor ?? this.#db;
    const row = this.#row(message, this.#clock.now());
    await this.#seal(row, executor);
    const result = await db.insertInto("outbox_messages").values(row)
      .onConflict((oc) => oc.column("idempotency_key").doNothing()).executeTakeFirst();
    if (Number(result.numInsertedOrUpdatedRows ?? 0n) === 1) return { id: row.id, created: true };
    const existing = await db.selectFrom("outbox_messages").select("id").where("idempotency_key", "=", message.idempotencyKey).executeTakeFirstOrThrow();
    return { id: existing.id, created: false };
  }

  /**
   * Queues `message`, or, when one is queued under its idempotency key (same recipient and kind) and no sender has taken
   * it yet (queued, never claimed, no attempt), puts this one's subject and bodies in its place: for a notice that
   * gathers what happens until it is due (`notBefore`), as the hour's follow-up of sign-ins from new browsers does
   * (src/http/auth/helpers.ts). The due time stays the first one's. "kept" when a sender took it already or it was
   * sent: it is left as it was, and what the new text added is the caller's to tell otherwise. Not for mail carrying a
   * single-use link: its bodies are sealed for their row (ADR 0020), and a link is never rewritten (refused).
   *
   * @example
   * await outbox.queueOrRevise({ idempotencyKey: "digest:usr_1:493912", to, subject, text: allSoFar, kind: "security.digest", notBefore: hourEnd }, trx);
   */
  async queueOrRevise(message: NewMessage, executor?: Kysely<Schema>): Promise<{ id: string; outcome: "created" | "revised" | "kept" }> {
    if (carriesSingleUseLink(message.kind)) throw notifyErrors.badMessage(`${message.kind} carries a single-use link: a queued one is never rewritten`);
    const db = executor ?? this.#db;
    const row = this.#row(message, this.#clock.now());
    // One statement: of two writers racing, each either inserts or rewrites a row no sender holds; never half of each.
    const written = await db.insertInto("outbox_messages").values(row)
      .onConflict((oc) => oc.column("idempotency_key")
        .doUpdateSet({ subject: row.subject, body_text: row.body_text, body_html: row.body_html })
        .where("outbox_messages.status", "=", "queued").where("outbox_messages.attempts", "=", 0).where("outbox_messages.claimed_by", "is", null)
        .where("outbox_messages.to_address", "=", row.to_address).where("outbox_messages.kind", "=", row.kind))
      .returning("id").executeTakeFirst();
    if (written) return { id: written.id, outcome: written.id === row.id ? "created" : "revised" };
    const existing = await db.selectFrom("outbox_messages").select("id").where("idempotency_key", "=", message.idempotencyKey).executeTakeFirstOrThrow();
    return { id: existing.id, outcome: "kept" };
  }

  /**
   * Adds many messages, one multi-row INSERT per batch, skipping keys already present. Every message is
   * validated before the first row is written. Each batch commits on its own: after a crash, enqueue
   * the same list again and only the missing rows are added.
   *
   * @example
   * await outbox.enqueueMany(recipients.map((to) => ({ idempotencyKey: `cmp_1:${to}`, to, subject, text, kind: "campaign.notice", campaignId: "cmp_1", priority: PRIORITY.campaign })));
   */
  async enqueueMany(messages: readonly NewMessage[], options: { batchSize?: number; executor?: Kysely<Schema> } = {}): Promise<BulkEnqueueResult> {
    const batchSize = options.batchSize ?? DEFAULT_BATCH;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) throw notifyErrors.badMessage(`batchSize must be between 1 and ${MAX_BATCH}`);
    const now = this.#clock.now();
    const rows = messages.map((m, i) => {
      try {
        return this.#row(m, now);
      } catch (cause) {
        throw notifyErrors.badMessage(`message ${i} (${JSON.stringify(String(m?.idempotencyKey).slice(0, 80))}): ${(cause as Error).message}`, { cause });
      }
    });
    for (const row of rows) await this.#seal(row, options.executor); // after every message is validated
    const db = options.executor ?? this.#db;
    let inserted = 0;
    for (let i = 0; i < rows.length; i += batchSize) {
      const batch = rows.slice(i, i + batchSize);
      if (this.#database.dialect === "postgres") {
        inserted += Number((await bulkInsertPostgres(batch).execute(db)).numAffectedRows ?? 0n);
        continue;
      }
      const result = await db.insertInto("outbox_messages").values(batch)
        .onConflict((oc) => oc.column("idempotency_key").doNothing()).executeTakeFirst();
      inserted += Number(result.numInsertedOrUpdatedRows ?? 0n);
    }
    return { inserted, duplicates: rows.length - inserted };
  }

  /**
   * Claims up to `limit` due messages for `claimer` until now + `leaseMs`, atomically: on PostgreSQL the
   * candidate rows are locked with FOR UPDATE SKIP LOCKED, so concurrent senders on several nodes take
   * disjoint batches without waiting on each other; on SQLite the one UPDATE … RETURNING runs under the
   * database write lock. A claim is not an attempt: the sender counts one when it starts delivering a message
   * (startAttempt), so the rest of a batch whose sender died never loses any of its budget. A claimed message
   * whose sealed body does not open, whose link is on an origin no longer configured (withLinkOrigin), or that is no
   * longer good to send (stillGood: its link lapsed, was replaced, used or withdrawn, its account left the address) is not handed out: `onSetAside`
   * hears of each (the sender counts and logs it). `notIn`: ids the caller is delivering itself (at most 1000), never
   * claimed whatever their lease says: a sender's own delivery in flight is live however its clock was stepped.
   * `takeOver: false`: no `sending` row is taken over, whatever its lease says (only queued and failed mail is claimed):
   * for a sender whose clock was just stepped forward, by which another process's live lease may look over (OutboxSender).
   */
  async claim(input: { claimer: string; limit: number; leaseMs: number; belowPriority?: number; notIn?: readonly string[]; takeOver?: boolean; onSetAside?: (message: SetAsideMessage) => void }): Promise<OutboxMessage[]> {
    const now = this.#clock.now();
    const until = now + input.leaseMs;
    const notIn = input.notIn ?? [];
    if (notIn.length > MAX_BATCH) throw notifyErrors.badMessage(`a claim leaves out at most ${MAX_BATCH} ids`);
    const claimIn = async (limit: number, narrow: (q: DueQuery) => DueQuery, oldestFirst = false): Promise<Selectable<OutboxMessagesTable>[]> => {
      if (limit <= 0) return [];
      let candidates = narrow(this.#db.selectFrom("outbox_messages").select("id").where(CLAIMABLE).where("next_attempt_at", "<=", now));
      if (notIn.length > 0) candidates = candidates.where("id", "not in", [...notIn]);
      if (input.takeOver === false) candidates = candidates.where(WAITING);
      let due = (oldestFirst ? candidates.orderBy("next_attempt_at") : candidates.orderBy("priority").orderBy("next_attempt_at")).limit(limit);
      if (this.#database.dialect === "postgres") due = due.forUpdate().skipLocked();
      return this.#db.updateTable("outbox_messages")
        .set({ status: "sending", claimed_by: input.claimer, claimed_until: until, next_attempt_at: until })
        .where("id", "in", due)
        .returningAll()
        .execute();
    };
    // A share of each full claim (a quarter) goes to mail other than the notices left due for AGED_AFTER_MS, oldest
    // first, whatever its priority (a message whose sender died counts too: its lease ended): an account that can repeat
    // a notice at will (regenerating its recovery codes) must not hold every other user's reset link back for as long as
    // it keeps at it, nor a flood of sign-up links a containment's or a campaign's mail. The rest is claimed by priority,
    // so a flood anyone can cause never pushes a fresh notice out of the claim.
    // A quarter on average: limit / 4 rounded down, and one more on the last turns of every four claims (the fourth
    // alone for a one-message batch, so that a sender taking one message at a time does not hand every claim to aged mail).
    const turn = this.#claims++ % 4;
    const share = Math.floor(input.limit / 4) + (turn >= 4 - (input.limit % 4) ? 1 : 0);
    const aged = input.belowPriority === undefined
      ? await claimIn(share, (q) => q.where(AGED_CANDIDATE).where("next_attempt_at", "<=", now - AGED_AFTER_MS), true)
      : [];
    const rest = await claimIn(input.limit - aged.length, (q) => (input.belowPriority === undefined ? q : q.where("priority", "<", input.belowPriority)));
    // Claimed as the aged share, a message counts as a notice for the rest of its batch: a sender pulling in more
    // urgent mail between deliveries (claimUrgent) would otherwise put every new notice ahead of it, for ever.
    const agedIds = new Set(aged.map((r) => r.id));
    const rows = [...aged, ...rest];
    // The address each account the claimed mail is about has now: one read per claim (none without such mail), not one
    // per message; at most `limit` ids.
    const accountIds = [...new Set(rows.map((r) => r.account_id).filter((a): a is string => a != null))];
    const addresses = new Map(accountIds.length === 0 ? [] : (await this.#db.selectFrom("users").select(["id", "email"]).where("id", "in", accountIds).execute()).map((u) => [u.id, u.email] as const));
    const replacedAt = await this.#replacedAt(rows);
    const links = await this.#linksOf(rows);
    const opened = await Promise.all(rows.map(async (r) => {
      // No longer good to send, whatever the relay says: dead at once, with the reason (stillGood).
      const lapsed = stillGood(r, now, addresses, replacedAt, links);
      if (lapsed !== null) {
        if (await this.markDead({ id: r.id, claimer: input.claimer, error: lapsed })) {
          input.onSetAside?.({ id: r.id, kind: r.kind, to: r.to_address, attempts: Number(r.attempts), error: lapsed, dead: true });
        }
        return null;
      }
      try {
        return await toMessage(r, this.#cipher, this.#publicURL);
      } catch (error) {
        // A sealed body that never opens (an altered row, or a database under another master key) can never be
        // sent: it goes dead at once, for `bulwark outbox status` to show, instead of failing the whole batch on
        // every lease. Any other failure (the key table, read again for a key another node created, could not be
        // read) is not the message's: it waits for a retry, never losing a reset link to a database hiccup. Not an
        // attempt either. Nothing of the body is recorded. A link on an origin no longer configured is never sent
        // either (withLinkOrigin): dead, its error naming that origin (no secret) and what the owner can do.
        const reason = String((error as Error)?.message ?? error).replace(/[\r\n]+/g, " ").slice(0, 200);
        const stale = error instanceof BulwarkError && error.code === "BULWARK_ERR_MAIL_LINK_ORIGIN";
        const dead = stale || (error instanceof BulwarkError && NEVER_OPENS.has(error.code));
        const why = stale
          ? String((error as Error).message).replace(/[\r\n]+/g, " ").slice(0, 400)
          : dead
            ? `its sealed body cannot be opened (${reason}): an altered row, or a database opened with another master key`
            : `its sealed body could not be opened for now (${reason}); tried again shortly`;
        const recorded = dead
          ? await this.markDead({ id: r.id, claimer: input.claimer, error: why })
          : await this.markRetry({ id: r.id, claimer: input.claimer, error: why, nextAttemptAt: now + UNOPENED_RETRY_MS });
        // Not recorded: the claim was lost meanwhile, and the row is its new holder's to settle.
        if (recorded) input.onSetAside?.({ id: r.id, kind: r.kind, to: r.to_address, attempts: Number(r.attempts), error: why, dead });
        return null;
      }
    }));
    return opened.filter((m): m is OutboxMessage => m !== null)
      .map((m) => (agedIds.has(m.id) ? { ...m, priority: PRIORITY.security } : m))
      .sort((a, b) => a.priority - b.priority || a.createdAt - b.createdAt);
  }

  /**
   * When each account of the claimed link mails a newer mail could replace (REPLACED_KINDS) was last queued a
   * REPLACING_KIND mail, under any status: one read per claim, none when the batch holds no such mail (a campaign's),
   * a range of the index `outbox_messages_replacing` (migration 39) per account, at most `limit` accounts.
   */
  async #replacedAt(rows: readonly Selectable<OutboxMessagesTable>[]): Promise<Map<string, number>> {
    // Only the mail stillGood judges by this rule.
    const accounts = [...new Set(rows.flatMap((r) => (judgedByReplacement(r, this.#linkStates !== null) ? [r.account_id] : [])))];
    if (accounts.length === 0) return new Map();
    const newest = await this.#db.selectFrom("outbox_messages").select(["account_id", (eb) => eb.fn.max("created_at").as("newest")])
      .where(REPLACING_ABOUT_AN_ACCOUNT).where("account_id", "in", accounts)
      .groupBy("account_id").execute();
    return new Map(newest.flatMap((n) => (n.account_id == null || n.newest == null ? [] : [[n.account_id, Number(n.newest)] as const])));
  }

  /**
   * The state of each link the claimed link mails carry (link_id), asked of the stores once per claim: null when this
   * outbox has no linkStates, an empty map (and no question) when the batch holds no such mail (a campaign's).
   */
  async #linksOf(rows: readonly Selectable<OutboxMessagesTable>[]): Promise<ReadonlyMap<string, LinkState> | null> {
    if (this.#linkStates === null) return null;
    const ids = [...new Set(rows.flatMap((r) => (r.link_id != null && carriesSingleUseLink(r.kind) ? [r.link_id] : [])))];
    return ids.length === 0 ? new Map() : this.#linkStates(ids);
  }

  /**
   * Deletes sent messages delivered at or before `sentBefore` (retention: addresses and bodies of delivered mail are
   * not kept for ever, ASVS 14.2.7), in batches of `batch`, at most `maxBatches` a call (the next call goes on);
   * queued, failed and dead messages stay. Returns how many were deleted. A message whose idempotency key is enqueued
   * again after its row is gone would be sent again: Bulwark's keys name one-time events (an audit event, a job and
   * user, an hour), except the API-token expiry reminder, which looks for its key over the week before the expiry;
   * the retention is therefore never below two weeks (BULWARK_OUTBOX_RETENTION_DAYS, config.ts).
   */
  async purgeSent(sentBefore: number, options: { executor?: Kysely<Schema>; batch?: number; maxBatches?: number } = {}): Promise<number> {
    const db = options.executor ?? this.#database.db;
    const batch = options.batch ?? 1000;
    let removed = 0;
    for (let i = 0; i < (options.maxBatches ?? 50); i++) {
      const ids = db.selectFrom("outbox_messages").select("id").where("status", "=", "sent").where("sent_at", "<=", sentBefore).limit(batch);
      const result = await db.deleteFrom("outbox_messages").where("id", "in", ids).executeTakeFirst();
      const n = Number(result.numDeletedRows);
      removed += n;
      if (n < batch) break;
    }
    return removed;
  }

  /**
   * Whether a message more urgent than `priority` is due: a read on the claim index, so a sender can ask
   * between deliveries without taking the database write lock.
   */
  async hasDueBelow(priority: number): Promise<boolean> {
    const row = await this.#db.selectFrom("outbox_messages").select("id")
      .where(CLAIMABLE).where("priority", "<", priority).where("next_attempt_at", "<=", this.#clock.now())
      .limit(1).executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Counts an attempt on a message `claimer` holds, as its delivery starts; returns the attempt's number, or null
   * when the claim was lost. Recorded before the transport is called, so a message that kills every sender in
   * the middle of its delivery still uses up its budget and ends dead instead of crash-looping forever.
   */
  async startAttempt(input: { id: string; claimer: string }): Promise<number | null> {
    const row = await this.#db.updateTable("outbox_messages").set({ attempts: sql<number>`attempts + 1` })
      .where("id", "=", input.id).where("claimed_by", "=", input.claimer).where("status", "=", "sending")
      .returning("attempts").executeTakeFirst();
    return row ? Number(row.attempts) : null;
  }

  /**
   * Extends the lease on the given messages still held by `claimer` to now + `leaseMs`; returns the ids it still holds.
   * A lease past its end by the clock is not renewed, unless `stepped`: the caller's clock was stepped, and it judged
   * its lease live by the time that elapsed (Clock.elapsed) instead; the row is still its own while its claim token is
   * (nobody took it over), and the new end is set by the clock as it reads now, back as well as forward. `lapsed` renews
   * a lease past its end in the same way for a caller that knows why it lapsed: a delivery the relay accepted whose
   * recording (and renewals) the busy store refused until the lease had run out (OutboxSender's recording retry); a
   * claim another sender took meanwhile has its token, and is not renewed.
   */
  async renew(input: { claimer: string; ids: readonly string[]; leaseMs: number; stepped?: boolean; lapsed?: boolean }): Promise<Set<string>> {
    if (input.ids.length === 0) return new Set();
    const now = this.#clock.now();
    const until = now + input.leaseMs;
    let query = this.#db.updateTable("outbox_messages")
      .set({ claimed_until: until, next_attempt_at: until })
      .where("id", "in", [...input.ids]).where("claimed_by", "=", input.claimer).where("status", "=", "sending");
    if (input.stepped !== true && input.lapsed !== true) query = query.where("claimed_until", ">", now);
    const rows = await query.returning("id").execute();
    return new Set(rows.map((r) => r.id));
  }

  /**
   * After this node's clock was stepped back (or at a sender's start, for a step while it was down): makes due now the
   * mail that was due at once when it was queued (`queued`, its due time not after its queue time: enqueued without
   * `notBefore`, handed back by a stopping sender, requeued) and is dated ahead of the clock now, in batches of 1000 ids,
   * one UPDATE each, at most 100 a call, in claim order (priority, then due time: the index `outbox_messages_due`), so a
   * notice queued behind a campaign is freed first. Such mail meant to wait nothing: its due time is ahead only because
   * the clock that dated it (this node's before the step, or another node's ahead of this one) reads ahead of this one,
   * and `next_attempt_at <= now` would hold it for the whole step (an hour's step back, an hour's wait for a reset link
   * and a password-changed notice). Nothing else is moved: a retry's backoff, a gathering notice's `notBefore`, another
   * sender's lease were meant to wait, and whose clock dated them is not recorded, so moving them back by the step could
   * send them early (a lease held by another node: twice). Returns how many were made due; when the 100 batches were
   * all full, how many such messages are `left` (0 otherwise: the caller calls again until it is); how much queued and
   * failed mail still waits ahead of the clock (`heldAhead`, until `heldUntil`); and how much of it waits further ahead
   * than `longestWaitMs` (the longest wait the outbox schedules) and until when: for the sender to say so.
   */
  async dueAtOnceAhead(input: { longestWaitMs: number }): Promise<{ madeDue: number; left: number; heldAhead: number; heldUntil: number | null; beyondLongestWait: number; latest: number | null }> {
    const now = this.#clock.now();
    const dueAtQueueing = sql<SqlBool>`"next_attempt_at" <= "created_at"`;
    let madeDue = 0;
    let full = false;
    for (let i = 0; i < 100; i++) {
      const ids = this.#db.selectFrom("outbox_messages").select("id").where(CLAIMABLE).where("status", "=", "queued")
        .where("next_attempt_at", ">", now).where(dueAtQueueing).orderBy("priority").orderBy("next_attempt_at").limit(MAX_BATCH);
      const result = await this.#db.updateTable("outbox_messages").set({ next_attempt_at: now })
        .where("id", "in", ids)
        // Again on the row itself: a sender on another node may have claimed it meanwhile.
        .where("status", "=", "queued").where("next_attempt_at", ">", now).where(dueAtQueueing)
        .executeTakeFirst();
      const n = Number(result.numUpdatedRows);
      madeDue += n;
      full = n === MAX_BATCH;
      if (!full) break;
    }
    const left = !full ? 0 : Number((await this.#db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n"))
      .where(CLAIMABLE).where("status", "=", "queued").where("next_attempt_at", ">", now).where(dueAtQueueing)
      .executeTakeFirstOrThrow()).n);
    const ahead = (after: number) => this.#db.selectFrom("outbox_messages")
      .select((eb) => [eb.fn.countAll<number>().as("n"), eb.fn.max("next_attempt_at").as("latest")])
      .where(CLAIMABLE).where(WAITING).where("next_attempt_at", ">", after)
      .executeTakeFirstOrThrow();
    const held = await ahead(now);
    const beyond = Number(held.n) === 0 ? { n: 0, latest: null } : await ahead(now + input.longestWaitMs);
    return {
      madeDue, left, heldAhead: Number(held.n), heldUntil: held.latest == null ? null : Number(held.latest),
      beyondLongestWait: Number(beyond.n), latest: beyond.latest == null ? null : Number(beyond.latest),
    };
  }

  // Every transition below is fenced by the claim: it applies only while the row is still `sending`
  // under this claimer. A sender whose lease expired cannot overwrite the outcome of the one that took over.

  /**
   * Records a delivery the server accepted. False when the claim was lost (someone else took the row). A message
   * whose kind carries a single-use link (SINGLE_USE_LINK_KINDS) has its bodies replaced by a fixed text in the
   * same statement: the link is the secret its service stores only hashed, and once delivered the row must not
   * keep it for a read of the database (ASVS 14.2.7). Decided by the row's own kind, not by the caller; only on
   * `sent`, never on a retry or `dead`, which must still be able to send it. With `executor` (a transaction, see
   * `transaction`) the outcome commits with whatever else the caller records there: the sender's audit event of a
   * security notice's delivery.
   */
  async markSent(input: { id: string; claimer: string; providerMessageId: string | null }, executor?: Kysely<Schema>): Promise<boolean> {
    const result = await (executor ?? this.#db).updateTable("outbox_messages")
      .set((eb) => ({
        status: "sent", sent_at: this.#clock.now(), provider_message_id: input.providerMessageId, claimed_by: null, claimed_until: null, last_error: null,
        body_text: eb.case().when("kind", "in", [...SINGLE_USE_LINK_KINDS]).then(DELIVERED_LINK_TEXT).else(eb.ref("body_text")).end(),
        // A link mail without an HTML body keeps none.
        body_html: eb.case().when(eb.and([eb("kind", "in", [...SINGLE_USE_LINK_KINDS]), eb("body_html", "is not", null)])).then(DELIVERED_LINK_HTML).else(eb.ref("body_html")).end(),
      }))
      .where("id", "=", input.id).where("claimed_by", "=", input.claimer).where("status", "=", "sending")
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Hands back messages `claimer` holds (a sender that is stopping): due again at once, for any sender. Those not
   * started count no attempt; with `uncountAttempt`, the attempt started on them (a delivery the stopping server cut)
   * is taken back. Mail left with no attempt is `queued` again and due at its queue time, or now if that is earlier
   * (dueAtOnce): due at once by dueAtOnceAhead's rule, so a step of the clock back while the server was down does not
   * hold it. Mail an earlier attempt counts against (`failed`: it was retried before) is due now, as a retry: a step
   * back holds it the step, as any retry, and the sender says so (OutboxSender). Returns how many were handed back.
   */
  async release(input: { claimer: string; ids: readonly string[]; uncountAttempt?: boolean }): Promise<number> {
    if (input.ids.length === 0) return 0;
    const now = this.#clock.now();
    const attempts = input.uncountAttempt ? sql<number>`CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END` : sql<number>`attempts`;
    const result = await this.#db.updateTable("outbox_messages")
      .set({
        status: sql<OutboxStatus>`CASE WHEN ${attempts} = 0 THEN 'queued' ELSE 'failed' END`, attempts,
        next_attempt_at: sql<number>`CASE WHEN ${attempts} = 0 THEN ${dueAtOnce(now)} ELSE ${now} END`, claimed_by: null, claimed_until: null,
      })
      .where("id", "in", [...input.ids]).where("claimed_by", "=", input.claimer).where("status", "=", "sending")
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /** Schedules another attempt at `nextAttemptAt` after a transient failure. */
  async markRetry(input: { id: string; claimer: string; error: string; nextAttemptAt: number }): Promise<boolean> {
    const result = await this.#db.updateTable("outbox_messages")
      .set({ status: "failed", next_attempt_at: input.nextAttemptAt, last_error: input.error.slice(0, MAX_ERROR), claimed_by: null, claimed_until: null })
      .where("id", "=", input.id).where("claimed_by", "=", input.claimer).where("status", "=", "sending")
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Gives up on a message (permanent rejection, or out of attempts). It stays in the table for review. With `executor`
   * (a transaction, as for markSent) the outcome commits with whatever else the caller records there.
   */
  async markDead(input: { id: string; claimer: string; error: string }, executor?: Kysely<Schema>): Promise<boolean> {
    const result = await (executor ?? this.#db).updateTable("outbox_messages")
      .set({ status: "dead", last_error: input.error.slice(0, MAX_ERROR), claimed_by: null, claimed_until: null })
      .where("id", "=", input.id).where("claimed_by", "=", input.claimer).where("status", "=", "sending")
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Puts dead messages back in the queue (an operator fixed the cause), with a fresh attempt budget, behind the mail
   * queued the usual way (REQUEUED_BEHIND), due at once (dueAtOnce: a step of the clock back does not hold it). At most
   * 1000 ids per call (bind parameters); messages no longer dead are left alone. A requeued message no longer good to send (a lapsed link, a link a newer mail of its account replaced, a link
   * used or withdrawn since, an address its account left) dies again at its claim, with the reason, unsent.
   */
  async requeueDead(ids: readonly string[], executor?: Kysely<Schema>): Promise<number> {
    if (ids.length === 0) return 0;
    if (ids.length > MAX_BATCH) throw notifyErrors.badMessage(`requeue at most ${MAX_BATCH} messages per call`);
    const behind = sql<number>`CASE WHEN "priority" < ${sql.lit(REQUEUED_BEHIND)} THEN "priority" + ${sql.lit(REQUEUED_BEHIND)} ELSE "priority" END`;
    const result = await (executor ?? this.#db).updateTable("outbox_messages")
      .set({ status: "queued", attempts: 0, next_attempt_at: dueAtOnce(this.#clock.now()), last_error: null, priority: behind })
      .where("id", "in", [...ids]).where("status", "=", "dead")
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /**
   * Dead messages, oldest first, at most `limit` (1 to 1000): for an operator to review or requeue. Without their
   * bodies: a sealed body is never opened for a listing, so one that cannot be opened (the very reason some
   * messages are dead) does not fail it.
   */
  async listDead(options: { limit?: number } = {}): Promise<OutboxMessageSummary[]> {
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_BATCH) throw notifyErrors.badMessage(`limit must be between 1 and ${MAX_BATCH}`);
    const rows = await this.#db.selectFrom("outbox_messages").selectAll().where(DEAD)
      .orderBy("created_at").orderBy("id").limit(limit).execute();
    return rows.map(toSummary);
  }

  /**
   * One page of dead messages' ids in (created_at, id) order, at most `limit` (1 to 1000, default 1000): those after
   * `after` and, with `through`, not past it. A keyset on the index `outbox_messages_dead`, so each page reads about
   * as many rows as it returns however many messages died (a relay refusing a flood of sign-up links). `requeue-dead`
   * walks these pages up to the last message dead when it started: a message it requeued that dies again sits behind
   * its cursor and is not requeued twice in one run.
   *
   * @example
   * let page = await outbox.deadIds();
   * while (page.ids.length > 0) page = await outbox.deadIds({ after: page.last! });
   */
  async deadIds(options: { after?: DeadPosition; through?: DeadPosition; limit?: number } = {}): Promise<{ ids: string[]; last: DeadPosition | null }> {
    const limit = options.limit ?? MAX_BATCH;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_BATCH) throw notifyErrors.badMessage(`limit must be between 1 and ${MAX_BATCH}`);
    const { after, through } = options;
    let query = this.#db.selectFrom("outbox_messages").select(["id", "created_at"]).where(DEAD);
    // The plain bound on created_at beside each OR is what both databases start or stop the index range on; the OR
    // alone would be a filter, and each page would walk the index from its start.
    if (after) query = query.where("created_at", ">=", after.createdAt).where((eb) => eb.or([eb("created_at", ">", after.createdAt), eb("id", ">", after.id)]));
    if (through) query = query.where("created_at", "<=", through.createdAt).where((eb) => eb.or([eb("created_at", "<", through.createdAt), eb("id", "<=", through.id)]));
    const rows = await query.orderBy("created_at").orderBy("id").limit(limit).execute();
    const tail = rows.at(-1);
    return { ids: rows.map((r) => r.id), last: tail ? { createdAt: Number(tail.created_at), id: tail.id } : null };
  }

  /** How many messages are dead, or, with `through`, dead and not past it: what a `requeue-dead` run covers. */
  async countDead(options: { through?: DeadPosition } = {}): Promise<number> {
    const { through } = options;
    let query = this.#db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n")).where(DEAD);
    if (through) query = query.where("created_at", "<=", through.createdAt).where((eb) => eb.or([eb("created_at", "<", through.createdAt), eb("id", "<=", through.id)]));
    return Number((await query.executeTakeFirstOrThrow()).n);
  }

  /** Where the last dead message sits in (created_at, id) order, or null when none is dead: the end of a `requeue-dead` run. */
  async lastDead(): Promise<DeadPosition | null> {
    const row = await this.#db.selectFrom("outbox_messages").select(["id", "created_at"]).where(DEAD)
      .orderBy("created_at", "desc").orderBy("id", "desc").limit(1).executeTakeFirst();
    return row ? { createdAt: Number(row.created_at), id: row.id } : null;
  }

  /**
   * When the oldest message still owed (queued, waiting for a retry, or being sent) was enqueued, or null
   * when nothing is owed: how far behind delivery is.
   */
  async oldestPending(): Promise<number | null> {
    const row = await this.#db.selectFrom("outbox_messages").select((eb) => eb.fn.min("created_at").as("oldest"))
      .where("status", "in", ["queued", "failed", "sending"]).executeTakeFirst();
    return row?.oldest === null || row?.oldest === undefined ? null : Number(row.oldest);
  }

  /**
   * When a message was last delivered, as the store records it (sent rows are kept BULWARK_OUTBOX_RETENTION_DAYS), or
   * null when none is on record: what `outbox status` and `requeue-dead` tell the operator about delivery, never this
   * shell's environment (the server sends with SMTP settings of its own, which an operator's shell rarely holds).
   */
  async lastSentAt(): Promise<number | null> {
    const row = await this.#db.selectFrom("outbox_messages").select((eb) => eb.fn.max("sent_at").as("last"))
      .where("status", "=", "sent").executeTakeFirst();
    return row?.last === null || row?.last === undefined ? null : Number(row.last);
  }

  async get(id: string): Promise<OutboxMessage> {
    const row = await this.#db.selectFrom("outbox_messages").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw notifyErrors.notFound(id);
    return toMessage(row, this.#cipher, this.#publicURL);
  }

  async getByKey(idempotencyKey: string): Promise<OutboxMessage | null> {
    const row = await this.#db.selectFrom("outbox_messages").selectAll().where("idempotency_key", "=", idempotencyKey).executeTakeFirst();
    return row ? toMessage(row, this.#cipher, this.#publicURL) : null;
  }

  /** How many messages are in each status, overall or for one campaign (progress of a campaign). */
  async counts(options: { campaignId?: string } = {}): Promise<Record<OutboxStatus, number>> {
    let query = this.#db.selectFrom("outbox_messages").select(["status", (eb) => eb.fn.countAll<number>().as("n")]).groupBy("status");
    if (options.campaignId !== undefined) query = query.where("campaign_id", "=", options.campaignId);
    const out: Record<OutboxStatus, number> = { queued: 0, sending: 0, sent: 0, failed: 0, dead: 0 };
    for (const r of await query.execute()) out[r.status as OutboxStatus] = Number(r.n);
    return out;
  }
}
