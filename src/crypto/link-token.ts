// Single-use link tokens `<prefix>_<id>.<secret>` (password reset, email change): an id that finds the row (random, or
// time-ordered for a batch of thousands) and a 256-bit secret of which only the SHA-256 is stored, so a leaked table is
// worth no link.
import { constantTimeEqual } from "./constant-time.ts";
import { hashSecret, newId, newOrderedId, newSecret } from "./tokens.ts";
import type { RandomSource } from "../lib/random.ts";

export interface LinkToken {
  id: string;
  secret: string;
}

/**
 * Why a presented link token is refused. "future-dated": created further ahead of the judging clock than the servers'
 * clocks may differ (a node whose clock ran fast issued it), refused as sessions are: its expiry, from the same clock,
 * would keep it working that much longer. The client's answer is the one every refusal gets.
 */
export type LinkRefusal = "malformed" | "unknown" | "bad-secret" | "expired" | "future-dated" | "used";

/**
 * A refusal of a link whose secret matched: a genuine link of the account, refused for `reason` (used, expired, the
 * account locked, its password changed or its sessions revoked since, …). Worth an audit event against the account:
 * whoever holds a genuine link is its owner or someone who reads their mail or took their session. Never sent to
 * the client, whose answer is the same for every refusal.
 */
export interface GenuineLinkRefusal {
  userId: string;
  tokenId: string;
  reason: string;
}

/**
 * The account behind a refused link whose secret matched (`used`, `expired`, `future-dated`: a genuine link), as `{ genuine }` to spread
 * into the refusal; `{}` for any other refusal (no secret matched: nothing is known about the presenter's link).
 */
export function genuineOf(row: { id: string; user_id: string } | undefined, reason: LinkRefusal): { genuine?: { userId: string; tokenId: string } } {
  return row && (reason === "used" || reason === "expired" || reason === "future-dated") ? { genuine: { userId: row.user_id, tokenId: row.id } } : {};
}

/** The columns every link-token table has. */
export interface LinkRow {
  secret_hash: string;
  used_at: number | string | null;
  created_at: number | string;
  expires_at: number | string;
}

/**
 * Why a link row no longer works by its state, whatever secret is presented, or null while it does: used, dated more
 * than `aheadToleranceMs` ahead of `now` (both dates come from the issuing node's clock: one running fast, or this host's
 * clock stepped back since, dates the link ahead, and judged by the expiry alone the 30-minute link would work that much
 * longer here; refused as sessions are, their "future-dated", and the services' maintenance spends such rows nobody
 * presented, ASVS 6.4.1; beyond the tolerance only: within it the issuing node is one the product lets serve), or
 * expired. LinkTokenKind.check judges it after the secret; the outbox asks it of a queued mail's link (src/app/link-states.ts).
 */
export function linkRowRefusal(row: Omit<LinkRow, "secret_hash">, now: number, aheadToleranceMs: number): "used" | "future-dated" | "expired" | null {
  if (row.used_at !== null) return "used";
  if (Number(row.created_at) > now + aheadToleranceMs) return "future-dated";
  if (now >= Number(row.expires_at)) return "expired";
  return null;
}

export interface LinkTokenKind {
  /** Longest well-formed token; anything longer is refused before any lookup. */
  readonly maxLength: number;
  /**
   * Draws a fresh token from the CSPRNG; returns the text for the link and the hash to store. With `orderedAt` (a time
   * in ms) the id is time-ordered (newOrderedId: same shape, 80 random bits after the time), for a caller that stores
   * thousands at once (a containment batch): they go into the primary key at its end instead of into a page each. The
   * id is not the secret (that stays 256 random bits); its time part tells when the link was made, as the mail does.
   */
  generate(random: RandomSource, options?: { orderedAt?: number }): LinkToken & { token: string; secretHash: string };
  /** Splits a presented token; null when it is not exactly the shape issued (no lookups for junk). */
  parse(token: unknown): LinkToken | null;
  /**
   * Judges the row a parsed token found: missing, then the secret, and only then the row's state (used, dated more
   * than `aheadToleranceMs` ahead of `now`, expired), so knowing an id reveals nothing about whether its link was used
   * or has expired. `aheadToleranceMs` is the skew the servers' clocks may have (datedAheadToleranceFor in
   * src/store/clock-skew.ts, which crypto may not import: docs/ARCHITECTURE.md), passed by each kind's service.
   */
  check<R extends LinkRow>(secret: string, row: R | undefined, now: number, aheadToleranceMs: number): { row: R } | { reason: LinkRefusal };
}

const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** The token kind for one prefix (three lowercase letters, e.g. "prt"). */
export function linkTokenKind(prefix: string): LinkTokenKind {
  if (!/^[a-z]{3}$/.test(prefix)) throw new Error(`link token prefix must be three lowercase letters, got "${prefix}"`);
  const idPattern = new RegExp(`^${prefix}_[a-z2-7]{26}$`);
  const maxLength = prefix.length + 1 + 26 + 1 + 43;
  // Constant-time check of a presented secret against the stored hash.
  const matches = (secret: string, storedHash: string): boolean =>
    constantTimeEqual(Buffer.from(hashSecret(secret), "utf8"), Buffer.from(storedHash, "utf8"));
  return {
    maxLength,
    generate(random, options = {}) {
      const id = options.orderedAt === undefined ? newId(prefix, random) : newOrderedId(prefix, options.orderedAt, random);
      const secret = newSecret(32, random);
      return { id, secret, token: `${id}.${secret}`, secretHash: hashSecret(secret) };
    },
    parse(token) {
      if (typeof token !== "string" || token.length > maxLength) return null;
      const dot = token.indexOf(".");
      if (dot < 0) return null;
      const id = token.slice(0, dot);
      const secret = token.slice(dot + 1);
      return idPattern.test(id) && SECRET_PATTERN.test(secret) ? { id, secret } : null;
    },
    check(secret, row, now, aheadToleranceMs) {
      // A tolerance that is not a count of milliseconds (undefined from a caller in plain JavaScript, NaN) would make
      // the comparison below false for every row: no link ever refused as dated ahead. Refused instead.
      if (!Number.isSafeInteger(aheadToleranceMs) || aheadToleranceMs < 0) {
        throw new RangeError(`a link's tolerance for dates ahead must be a whole number of milliseconds, 0 or more, got ${String(aheadToleranceMs)}`);
      }
      if (!row) return { reason: "unknown" };
      if (!matches(secret, row.secret_hash)) return { reason: "bad-secret" };
      const refusal = linkRowRefusal(row, now, aheadToleranceMs);
      return refusal === null ? { row } : { reason: refusal };
    },
  };
}
