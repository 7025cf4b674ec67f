// Keys (an address, an IPv6 /64, a user) whose failures were logged out of time order, judged exactly by stamp at the
// end. The sliding windows (time-window.ts) keep maxRetry numbers a key, by read order and by stamp; any bounded
// memory a key can be defeated by forged lines (red team 38b, finding 1: four failures of the attacker's own address
// and user stamped hours after the burst, after every four real ones, kept both halves apart). Forged lines stamped
// after a burst and read before its later failures leave those failures stamped more than --find-time before the
// latest stamp already read for the key in that file, which honest logs do not (a central syslog's senders differ by
// seconds). From such a failure on, the key's failures are kept, every one, with where they were read, under one
// bound for all such keys together; at the end they are sorted and judged as fail2ban judges a log in time order. What the windows held when the disorder was seen seeds the list;
// failures read before and no longer held are not re-judged (droppedCouldComplete says when they could have mattered).
// A failure stamped within the range of the key's failures in files read before (less --find-time) is out of order
// too (analyzer.ts #order): a burst split by logrotate, read newest first.

/**
 * Failures kept for all out-of-order keys together: 3 numbers each, 24 bytes, in per-key lists that start at the
 * seed's size and double as they grow, so at most twice that (96 MB for 2,000,000), besides each key's list object.
 * (Lists started at 8 triples before: a key out of order once held 2 in 192 bytes, red team 40b.)
 */
export const OUT_OF_ORDER_LIMIT = 2_000_000;

/** One out-of-order key's failures: [stamp, file number, line] triples, in the order read. */
export interface OutOfOrderKey {
  name: string;
  data: Float64Array;
  length: number;
  /**
   * The range of stamps of failures read before the disorder and no longer held: at most the oldest held by stamp, at
   * least the earliest read (−∞ and +∞ when none was dropped).
   */
  lostMinMs: number;
  lostMaxMs: number;
  /** How many were dropped, at most: read before the disorder (since the last ban, for an address) and not in the seed. */
  dropped: number;
  /** The bound was reached: later failures of this key were not kept. */
  full: boolean;
}

/** A window found by stamp: the stamp of the failure that completed it and where that failure was read. */
export interface ExactWindow {
  ms: number;
  file: number;
  line: number;
}

export class OutOfOrder {
  readonly limit: number;
  /** Failures kept. */
  held = 0;
  /** Keys found out of order. */
  keys = 0;
  /** Failures of out-of-order keys not kept (the bound); the keys are marked `full`, named at the end (analyzer.ts). */
  unheld = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /**
   * Starts keeping `name`'s failures: the times its window ring (time-window.ts) holds, read order half (`readCount`
   * read since the last ban) and by-stamp half (`byStamp`), merged so that a time held by both halves is kept once
   * (each value as often as the half holding it more often: never more than were read). They are placed at `file`,
   * `line`, where the disorder was seen: they were read at or before it.
   */
  open(name: string, ring: Float64Array, n: number, readCount: number, byStamp: number, earliestMs: number, file: number, line: number): OutOfOrderKey {
    this.keys++;
    const half = ring.length >> 1;
    const read = Array.from(ring.subarray(0, Math.min(readCount, half)));
    const kept = byStamp < n ? Array.from(ring.subarray(half, half + byStamp)) : Array.from(ring.subarray(n, 2 * n));
    read.sort((a, b) => a - b);
    kept.sort((a, b) => a - b);
    const seed: number[] = [];
    for (let i = 0, j = 0; i < read.length || j < kept.length; ) {
      const a = read[i] ?? Number.POSITIVE_INFINITY;
      const b = kept[j] ?? Number.POSITIVE_INFINITY;
      seed.push(Math.min(a, b));
      if (a <= b) i++;
      if (b <= a) j++;
    }
    // Not full, the by-stamp half holds every failure since the last ban; full, the latest n: whatever else was read
    // since is stamped at or before its oldest.
    // Whatever was dropped was read before: stamped at or after `earliestMs`, the earliest read for the key. Without
    // that lower bound an older file's failures read after a newer one's (`cat auth.log auth.log.1 |`) would all be
    // "near" the dropped ones (red team 40b, finding 5).
    const lostMaxMs = byStamp >= n ? (kept[0] ?? Number.NEGATIVE_INFINITY) : Number.NEGATIVE_INFINITY;
    const lostMinMs = lostMaxMs === Number.NEGATIVE_INFINITY ? Number.POSITIVE_INFINITY : Math.min(earliestMs, lostMaxMs);
    const dropped = Math.max(0, readCount - seed.length);
    const key: OutOfOrderKey = { name, data: new Float64Array(3 * (seed.length + 1)), length: 0, lostMinMs, lostMaxMs, dropped, full: false };
    for (const t of seed) this.add(key, t, file, line);
    return key;
  }

  /** Keeps one more failure of an out-of-order key, or counts it when the bound is reached. */
  add(key: OutOfOrderKey, t: number, file: number, line: number): void {
    if (key.full || this.held >= this.limit) {
      key.full = true;
      this.unheld++;
      return;
    }
    if (3 * key.length + 3 > key.data.length) {
      const grown = new Float64Array(2 * key.data.length);
      grown.set(key.data);
      key.data = grown;
    }
    key.data.set([t, file, line], 3 * key.length);
    key.length++;
    this.held++;
  }
}

/**
 * fail2ban's windows over `key`'s failures in stamp order: n within `windowMs`, counting afresh after each, as a log in
 * time order is judged (pushReadOrder on it). Ties keep the order read.
 */
export function exactWindows(key: OutOfOrderKey, n: number, windowMs: number): ExactWindow[] {
  const d = key.data;
  const order = Array.from({ length: key.length }, (_, i) => i).sort((a, b) => (d[3 * a] as number) - (d[3 * b] as number) || a - b);
  const windows: ExactWindow[] = [];
  let start = 0;
  for (let k = 0; k < order.length; k++) {
    if (k - start + 1 < n) continue;
    const last = order[k] as number;
    const t = d[3 * last] as number;
    if (t - (d[3 * (order[k - n + 1] as number)] as number) <= windowMs) {
      windows.push({ ms: t, file: d[3 * last + 1] as number, line: d[3 * last + 2] as number });
      start = k + 1;
    }
  }
  return windows;
}

/**
 * Whether failures dropped before `key`'s disorder could have completed a window with the ones kept: some window of
 * `windowMs` meeting the dropped ones' range [lostMinMs, lostMaxMs] holds a kept failure, and the kept ones in it with
 * every one dropped (their stamps are not known, only the range and how many at most) reach n. Counting them keeps an
 * honest key quiet when few were dropped (an admin's typos on both sides of logrotate, files newest first); a DST
 * fall-back with a job failing every ten minutes drops more than n and stays uncertain (findings.ts says how much).
 */
export function droppedCouldComplete(key: OutOfOrderKey, n: number, windowMs: number): boolean {
  if (key.dropped === 0 || key.lostMaxMs === Number.NEGATIVE_INFINITY) return false;
  const times = Array.from({ length: key.length }, (_, i) => key.data[3 * i] as number).sort((a, b) => a - b);
  // The kept failures within [s, s + windowMs].
  const below = (x: number): number => {
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((times[mid] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const within = (s: number): number => below(s + windowMs + 0.5) - below(s);
  // The count is greatest with a window starting at a kept failure, or at either end of the starts allowed.
  const from = key.lostMinMs - windowMs;
  const to = key.lostMaxMs;
  let most = Math.max(within(from), within(to));
  for (const t of times) if (t >= from && t <= to) most = Math.max(most, within(t));
  return most > 0 && most + key.dropped >= n;
}
