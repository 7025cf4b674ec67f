// Keys (an address, an IPv6 /64, a user) whose failures were logged out of time order, judged exactly by stamp at the
// end. The sliding windows (time-window.ts) keep maxRetry numbers a key, by read order and by stamp; any bounded
// memory a key can be defeated by forged lines (red team 38b, finding 1: four failures of the attacker's own address
// and user stamped hours after the burst, after every four real ones, kept both halves apart). Forged lines stamped
// after a burst and read before its later failures leave those failures stamped more than --find-time before the
// latest stamp already read for the key in that file, which honest logs do not (a central syslog's senders differ by
// seconds). From such a failure on, the key's failures are kept, every one, with where they were read, under one
// bound for all such keys together; at the end they are sorted and judged as fail2ban judges a log in time order. What
// the windows held when the disorder was seen seeds the list; failures read before and no longer held are not
// re-judged (droppedCouldComplete says when they could have mattered).
// A failure stamped within the range of the key's failures in files read before (less --find-time) is out of order
// too (analyzer.ts #order): a burst split by logrotate, read newest first.
//
// The bound is shared fairly, not first come: once it is reached, a failure is given up only by a largest key, the
// oldest of its failures by stamp (the newcomer itself when it is the largest, or tied with it). A key that stays
// smaller than the largest is therefore held whole, however many failures the others hold: one forged key filling the
// bound no longer leaves the attacker's own key, out of order after it, judged as read only (red team 40b, finding 2).
// A key that gave failures up is `partial`, named in analysis-incomplete as before. To take failures from a key of r,
// forged keys must each hold as many: limit / r keys (83,000 against 38b's 24 at the default bound, about 1,000,000
// lines as each counts for an address and a user: what one key filling the bound took), and the key is then named,
// first when a login followed its failures. The largest key is found by a max-heap of keys by size (one
// step per failure held, log(keys) at worst); each key's failures form a min-heap by stamp (log of its size to give
// up its oldest): no scan of the keys or of a key's failures per line.

/**
 * Failures kept for all out-of-order keys together: 3 numbers each, 24 bytes, in per-key lists that start at the
 * seed's size, double as they grow and halve when a key giving failures up holds under a quarter of its list: at most
 * twice that while the bound is not reached (96 MB for 2,000,000), under four times in all (192 MB), besides each key's
 * list object and its place in the heap of keys. (Lists started at 8 triples before: a key out of order once held 2 in
 * 192 bytes, red team 40b.)
 */
export const OUT_OF_ORDER_LIMIT = 2_000_000;

/**
 * One out-of-order key's failures: [stamp, file number, line] triples, a binary min-heap by stamp, then file and line
 * (read order: a file's number and its lines rise as read).
 */
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
  /** The bound took some of this key's failures: refused, or given up (its oldest by stamp) as the largest key. */
  partial: boolean;
  /** Its place in OutOfOrder's max-heap of keys by size. */
  slot: number;
}

/** A window found by stamp: the stamp of the failure that completed it and where that failure was read. */
export interface ExactWindow {
  ms: number;
  file: number;
  line: number;
}

/** Whether failure `i` of `d` comes before failure `j`: by stamp, then file and line (read order). */
function before(d: Float64Array, i: number, j: number): boolean {
  const a = 3 * i;
  const b = 3 * j;
  const by = (d[a] as number) - (d[b] as number) || (d[a + 1] as number) - (d[b + 1] as number) || (d[a + 2] as number) - (d[b + 2] as number);
  return by < 0;
}

function swap(d: Float64Array, i: number, j: number): void {
  for (let k = 0; k < 3; k++) {
    const x = d[3 * i + k] as number;
    d[3 * i + k] = d[3 * j + k] as number;
    d[3 * j + k] = x;
  }
}

/** Restores the min-heap from failure `i` down (its value may have grown). */
function sinkFailure(key: OutOfOrderKey, i: number): void {
  const d = key.data;
  for (;;) {
    let least = i;
    const l = 2 * i + 1;
    if (l < key.length && before(d, l, least)) least = l;
    if (l + 1 < key.length && before(d, l + 1, least)) least = l + 1;
    if (least === i) return;
    swap(d, i, least);
    i = least;
  }
}

export class OutOfOrder {
  readonly limit: number;
  /** Failures kept. */
  held = 0;
  /**
   * Failures of out-of-order keys not kept: refused or given up under the bound; the keys are marked `partial`, named
   * at the end (analyzer.ts).
   */
  unheld = 0;
  /** The keys opened, a max-heap by failures held (OutOfOrderKey.slot): the top gives failures up to the others. */
  readonly #bySize: OutOfOrderKey[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Keys found out of order. */
  get keys(): number {
    return this.#bySize.length;
  }

  /**
   * Starts keeping `name`'s failures: the times its window ring (time-window.ts) holds, read order half (`readCount`
   * read since the last ban) and by-stamp half (`byStamp`), merged so that a time held by both halves is kept once
   * (each value as often as the half holding it more often: never more than were read). They are placed at `file`,
   * `line`, where the disorder was seen: they were read at or before it.
   */
  open(name: string, ring: Float64Array, n: number, readCount: number, byStamp: number, earliestMs: number, file: number, line: number): OutOfOrderKey {
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
    const key: OutOfOrderKey = {
      name, data: new Float64Array(3 * (seed.length + 1)), length: 0, lostMinMs, lostMaxMs, dropped, partial: false, slot: this.#bySize.length,
    };
    this.#bySize.push(key);
    for (const t of seed) this.add(key, t, file, line);
    return key;
  }

  /**
   * Keeps one more failure of an out-of-order key. At the bound a largest key gives up its oldest by stamp: another key
   * when one holds more than this one, else this one (the new failure, when it is the oldest).
   */
  add(key: OutOfOrderKey, t: number, file: number, line: number): void {
    if (this.held < this.limit) {
      this.held++;
      this.#push(key, t, file, line);
      this.#rise(key);
      return;
    }
    this.unheld++;
    const largest = this.#bySize[0] as OutOfOrderKey;
    if (largest.length > key.length) {
      largest.partial = true;
      this.#giveUpOldest(largest);
      this.#sink(largest);
      this.#push(key, t, file, line);
      this.#rise(key);
      return;
    }
    // This key is a largest (the bound is at least 1, so it holds one): the new failure takes its oldest's place,
    // unless it is older still (read later, it is never before it on a tie).
    key.partial = true;
    const d = key.data;
    const oldest = d[0] as number;
    if (t < oldest || (t === oldest && (file < (d[1] as number) || (file === d[1] && line <= (d[2] as number))))) return;
    d[0] = t;
    d[1] = file;
    d[2] = line;
    sinkFailure(key, 0);
  }

  #grow(key: OutOfOrderKey): void {
    const grown = new Float64Array(2 * key.data.length);
    grown.set(key.data);
    key.data = grown;
  }

  /** Adds a failure to `key`'s min-heap. */
  #push(key: OutOfOrderKey, t: number, file: number, line: number): void {
    if (3 * key.length + 3 > key.data.length) this.#grow(key);
    key.data.set([t, file, line], 3 * key.length);
    let i = key.length++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(key.data, i, parent)) break;
      swap(key.data, i, parent);
      i = parent;
    }
  }

  /** Drops `key`'s oldest failure by stamp; its list halves when under a quarter full (the amortized cost stays O(1)). */
  #giveUpOldest(key: OutOfOrderKey): void {
    key.length--;
    key.data.copyWithin(0, 3 * key.length, 3 * key.length + 3);
    sinkFailure(key, 0);
    const triples = key.data.length / 3;
    if (triples >= 8 && 4 * key.length < triples) key.data = key.data.slice(0, 3 * (triples >> 1));
  }

  /** Moves `key` up the heap of keys by size (it holds one more). */
  #rise(key: OutOfOrderKey): void {
    const h = this.#bySize;
    let i = key.slot;
    while (i > 0) {
      const parent = h[(i - 1) >> 1] as OutOfOrderKey;
      if (parent.length >= key.length) break;
      h[i] = parent;
      parent.slot = i;
      i = (i - 1) >> 1;
    }
    h[i] = key;
    key.slot = i;
  }

  /** Moves `key` down the heap of keys by size (it holds one fewer). */
  #sink(key: OutOfOrderKey): void {
    const h = this.#bySize;
    let i = key.slot;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1 < h.length && (h[l + 1] as OutOfOrderKey).length > (h[l] as OutOfOrderKey).length ? l + 1 : l;
      const child = h[r] as OutOfOrderKey;
      if (child.length <= key.length) break;
      h[i] = child;
      child.slot = i;
      i = r;
    }
    h[i] = key;
    key.slot = i;
  }
}

/**
 * fail2ban's windows over `key`'s failures in stamp order: n within `windowMs`, counting afresh after each, as a log in
 * time order is judged (pushReadOrder on it). Ties keep the order read (file, then line).
 */
export function exactWindows(key: OutOfOrderKey, n: number, windowMs: number): ExactWindow[] {
  const d = key.data;
  const order = Array.from({ length: key.length }, (_, i) => i).sort((a, b) => (before(d, a, b) ? -1 : before(d, b, a) ? 1 : 0));
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
