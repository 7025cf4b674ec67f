// Audit events for refused (throttled) attempts, sampled: a client whose window is full can send refusals as fast as
// the server answers them, and each was one row of the hash-chained audit log, which nothing prunes (300 parallel
// refused logins: 300 rows). The first refusal of a key in each window is recorded, with how many of that key went
// unrecorded since its previous event; a global budget per window bounds the keys too (a botnet of addresses).
// Failed attempts are still logged (ASVS 16.3.1): as counts on the events that are kept, and the counts a key's next
// event would carry are drained (`drain`) by the server's maintenance pass and at shutdown, so a burst whose sender
// never comes back is counted too.

import type { AuditLog } from "../../audit/audit-log.ts";

/** What to do with one refusal: record it (with the counts of those left out before it) or count it. */
export type RefusalVerdict = { record: true; suppressed: number; suppressedElsewhere: number } | { record: false };

export interface RefusalSamplerOptions {
  /** The window, in ms (default a minute). */
  windowMs?: number;
  /** Events recorded per window across all keys (default 600: ten a second). */
  budget?: number;
  /** Keys remembered (default 10,000; the least recently seen is forgotten first, its count with it). */
  maxKeys?: number;
}

/**
 * Decides, per refusal, whether its audit event is written. In memory, per process: each node records at most its own
 * budget, which bounds the rows per node, the aim.
 *
 * @example
 * const v = sampler.take(`login:${ip}`, clock.now());
 * if (v.record) await audit.append({ type: "auth.login.throttled", data: { ...context, unrecordedBefore: v.suppressed } });
 */
export class RefusalSampler {
  readonly #windowMs: number;
  readonly #budget: number;
  readonly #maxKeys: number;
  readonly #keys = new Map<string, { slot: number; suppressed: number }>();
  #slot = -1;
  #recorded = 0;
  #suppressedElsewhere = 0;

  constructor(options: RefusalSamplerOptions = {}) {
    this.#windowMs = options.windowMs ?? 60_000;
    this.#budget = options.budget ?? 600;
    this.#maxKeys = options.maxKeys ?? 10_000;
  }

  /**
   * The counts no recorded event has carried yet, taken out: per key whose window has ended (every key with `all`,
   * at shutdown), and those the budget left out. For a summary event each; the keys start afresh.
   */
  drain(now: number, options: { all?: boolean } = {}): { keys: Array<{ key: string; unrecorded: number }>; others: number } {
    const slot = Math.floor(now / this.#windowMs);
    const keys: Array<{ key: string; unrecorded: number }> = [];
    for (const [key, entry] of this.#keys) {
      if (entry.suppressed === 0 || (!options.all && entry.slot >= slot)) continue;
      keys.push({ key, unrecorded: entry.suppressed });
      entry.suppressed = 0;
    }
    const others = this.#suppressedElsewhere;
    this.#suppressedElsewhere = 0;
    return { keys, others };
  }

  take(key: string, now: number): RefusalVerdict {
    const slot = Math.floor(now / this.#windowMs);
    if (slot !== this.#slot) {
      this.#slot = slot;
      this.#recorded = 0;
    }
    const seen = this.#keys.get(key);
    if (seen && seen.slot === slot) {
      seen.suppressed++;
      return { record: false };
    }
    if (this.#recorded >= this.#budget) {
      // Over the window's budget: counted, and said on the next event recorded at all.
      this.#suppressedElsewhere++;
      return { record: false };
    }
    this.#recorded++;
    const suppressed = seen?.suppressed ?? 0;
    // Re-inserted, so the map's order is least recently recorded first.
    this.#keys.delete(key);
    this.#keys.set(key, { slot, suppressed: 0 });
    if (this.#keys.size > this.#maxKeys) {
      // The least recently recorded key is forgotten; a count it still held goes to the others' count, not lost.
      const [oldest, entry] = this.#keys.entries().next().value as [string, { suppressed: number }];
      this.#suppressedElsewhere += entry.suppressed;
      this.#keys.delete(oldest);
    }
    const suppressedElsewhere = this.#suppressedElsewhere;
    this.#suppressedElsewhere = 0;
    return { record: true, suppressed, suppressedElsewhere };
  }

  /**
   * Puts back counts `drain` took out that no event could carry (their write failed): each key's to its entry (its next
   * event, or the next drain, carries them), a key forgotten meanwhile beyond `maxKeys` to the others' count, and
   * `others` to the others' count.
   */
  restore(keys: ReadonlyArray<{ key: string; unrecorded: number }>, others: number): void {
    for (const { key, unrecorded } of keys) {
      const entry = this.#keys.get(key);
      if (entry) entry.suppressed += unrecorded;
      else if (this.#keys.size < this.#maxKeys) this.#keys.set(key, { slot: -1, suppressed: unrecorded });
      else this.#suppressedElsewhere += unrecorded;
    }
    this.#suppressedElsewhere += others;
  }

  /**
   * Takes back a `take` that said record, whose event could not be written: the key's next one is recorded (it was
   * marked recorded for the window, and a store that failed once hid the key for the rest of it), carrying the counts
   * this one would have, itself included.
   */
  giveBack(key: string, verdict: { suppressed: number; suppressedElsewhere: number }): void {
    this.#keys.set(key, { slot: -1, suppressed: verdict.suppressed + 1 });
    if (this.#recorded > 0) this.#recorded--;
    this.#suppressedElsewhere += verdict.suppressedElsewhere;
  }
}

/**
 * Writes the counts `sampler` holds that no event carried (see drain) as `auth.refusals.unrecorded` events, one per
 * scope and one for the others; returns how many refusals they count. The server's maintenance pass calls it, and its
 * shutdown with `all`. An append that fails (a store busy past its wait: another process holding SQLite's write lock)
 * ends the call with its error, and the counts not yet written, its own included, go back to the sampler (restore) for
 * the next pass: drained and dropped, a throttled guessing burst vanished from the log for good
 * (test/sqlite-busy-b-red-team.test.ts). Those written before it stay out, so no count is written twice.
 *
 * @example
 * await recordUnrecordedRefusals(app.accounts.refusals, app.audit, app.clock.now());
 */
export async function recordUnrecordedRefusals(
  sampler: RefusalSampler, audit: AuditLog, now: number,
  options: { all?: boolean; type?: string; dataOf?: (key: string) => Record<string, unknown> } = {},
): Promise<number> {
  const { keys, others } = sampler.drain(now, options);
  const type = options.type ?? "auth.refusals.unrecorded";
  let written = 0;
  try {
    for (const { key, unrecorded } of keys) {
      await audit.append({ type, actor: "system", subject: key, data: { ...options.dataOf?.(key), unrecorded } });
      written++;
    }
    if (others > 0) await audit.append({ type, actor: "system", subject: "others", data: { unrecorded: others } });
  } catch (error) {
    sampler.restore(keys.slice(written), others);
    throw error;
  }
  return keys.reduce((n, k) => n + k.unrecorded, others);
}

/**
 * Writes the uses of API tokens the hourly sample left out (app.accounts.tokenUses, see authenticate.ts) as
 * `api.token.uses.unrecorded` events, one per token and address, naming both: a thief's burst from a new address that
 * then stops is counted, not only its first request.
 */
export async function recordUnrecordedTokenUses(sampler: RefusalSampler, audit: AuditLog, now: number, options: { all?: boolean } = {}): Promise<number> {
  return recordUnrecordedRefusals(sampler, audit, now, {
    ...options,
    type: "api.token.uses.unrecorded",
    // The key is "<token id>:<address or /64>" (token ids hold no colon; an IPv6 bucket does).
    dataOf: (key) => {
      const at = key.indexOf(":");
      return at < 0 ? {} : { tokenId: key.slice(0, at), ip: key.slice(at + 1) };
    },
  });
}

/** The counts a recorded event carries: how many of its scope, and of others, went unrecorded before it (none when 0). */
export function unrecordedCounts(verdict: { suppressed: number; suppressedElsewhere: number }): Record<string, number> {
  return { ...(verdict.suppressed > 0 ? { unrecordedBefore: verdict.suppressed } : {}), ...(verdict.suppressedElsewhere > 0 ? { unrecordedOthers: verdict.suppressedElsewhere } : {}) };
}

/** The verdict for a refusal that is always recorded (not a throttled one). */
export const RECORD: RefusalVerdict = { record: true, suppressed: 0, suppressedElsewhere: 0 };
