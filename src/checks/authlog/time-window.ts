// fail2ban's sliding window (maxretry failures within findtime), judged two ways over one key's failures: in the order
// read, as fail2ban does, and by stamp over the latest n failures. A central log's sender chooses its lines' stamps and
// where they fall: taken in read order alone, failures of an address stamped two years back, four after every four real
// ones, kept every run of five read apart in time and hid a brute force. A window met either way counts, so the second
// look only adds what the first missed (fail2ban's parity is kept: on a log in time order both agree). Bounded: 2n
// numbers a key, one Float64Array: [0, n) the last n read, [n, 2n) the latest n by stamp. The array starts small and
// doubles as failures come (`ringFor`): most keys fail once or twice, and a ring of 2n numbers made at a key's first
// failure cost 16 KB at n = 1000 for every one-off address (red team 38b, finding 6).

/** Each half's room in a new ring (`newRing`): 2 × 4 numbers, 64 bytes. */
const FIRST_ROOM = 4;

/**
 * A ring for a window of `n` with room for a few failures; `ringFor` grows it. Until it is full size (2n numbers), each
 * half holds its times at [0, count) and [half, half + count), half = ring.length / 2, which the functions below read
 * as they read a full ring whose count is below n: the two halves' counts are equal then (both grow by one per
 * failure until n, and restart together).
 *
 * @example
 * let ring = newRing(1000); // 8 numbers
 */
export function newRing(n: number): Float64Array {
  return new Float64Array(2 * Math.min(n, FIRST_ROOM));
}

/**
 * `ring`, or a copy twice as large (at most 2n numbers) when it has no room for the failure numbered `count` (0-based,
 * the read-order count before pushReadOrder). Call before pushing; keep what it returns. Amortised, one copy of each
 * time per doubling; a full-size ring is returned at once.
 *
 * @example
 * rec.ring = ringFor(rec.ring, n, rec.inWindow);
 */
export function ringFor(ring: Float64Array, n: number, count: number): Float64Array {
  const half = ring.length >> 1;
  if (count < half || half >= n) return ring;
  const room = Math.min(n, 2 * half);
  const grown = new Float64Array(2 * room);
  grown.set(ring.subarray(0, half), 0);
  grown.set(ring.subarray(half), room);
  return grown;
}

/** What `pushByStamp` returns for a time older than every one held: it is not kept (see there). */
export const NOT_KEPT = -1;

/**
 * Records failure time `t` as the `count`-th read (0-based) in the read-order half of `ring` (the last n read); true
 * when those n lie within `windowMs` of one another, as fail2ban judges it.
 */
export function pushReadOrder(ring: Float64Array, n: number, count: number, t: number, windowMs: number): boolean {
  ring[count % n] = t;
  if (count + 1 < n) return false;
  const oldest = ring[(count + 1) % n] as number;
  return Math.abs(t - oldest) <= windowMs;
}

/**
 * Adds failure time `t` to the by-stamp half of `ring`, which holds the latest min(count, n) failure times in ascending
 * order, circularly from n + count % n once full; `count` grows by one for each time added in order, so a log in time
 * order costs one store per failure. Returns the new count, or NOT_KEPT when the half is full and `t` is older than
 * every time in it: the n held are later. (With n = 1 a failure is a window of its own: never NOT_KEPT.) A failure
 * added out of order replaces only an older one: lines stamped long before a burst cannot push its failures out.
 *
 * @example
 * const ring = new Float64Array(2 * 5);
 * let count = 0;
 * const c = pushByStamp(ring, 5, count, t);
 * if (c !== NOT_KEPT && withinWindowByStamp(ring, 5, (count = c), 600_000)) console.log("ban at", t);
 */
export function pushByStamp(ring: Float64Array, n: number, count: number, t: number): number {
  if (count < n) {
    // Not full yet: the times start at index n (at half in a ring not yet full size, newRing). Insertion from the end:
    // in time order nothing moves.
    const half = ring.length >> 1;
    let i = half + count;
    while (i > half && (ring[i - 1] as number) > t) {
      ring[i] = ring[i - 1] as number;
      i--;
    }
    ring[i] = t;
    return count + 1;
  }
  const start = count % n;
  if (t >= (ring[n + ((start + n - 1) % n)] as number)) {
    // The latest yet: it takes the oldest one's place, which becomes the end.
    ring[n + start] = t;
    return count + 1;
  }
  if (t <= (ring[n + start] as number)) return n === 1 ? count : NOT_KEPT;
  // Out of order: the oldest goes, and `t` moves up from its place to where it belongs.
  let i = start;
  for (let k = 1; k < n; k++) {
    const j = (start + k) % n;
    if ((ring[n + j] as number) >= t) break;
    ring[n + i] = ring[n + j] as number;
    i = j;
  }
  ring[n + i] = t;
  return count;
}

/** Whether the by-stamp half is full and its n times (the latest n failures) lie within `windowMs` of one another. */
export function withinWindowByStamp(ring: Float64Array, n: number, count: number, windowMs: number): boolean {
  if (count < n) return false;
  const start = count % n;
  return (ring[n + ((start + n - 1) % n)] as number) - (ring[n + start] as number) <= windowMs;
}
