// A Map with a capacity whose records go stale: when it is full, records whose last activity lies
// more than a window before "now" (and that are not pinned) are evicted, oldest first, to make room.
// Memory stays bounded against a log that fills it with one-off addresses, and recent activity is
// still tracked; only when every record is recent or pinned does `add` refuse.

interface HeapEntry<K, V> {
  key: K;
  value: V;
  /** The value's last-seen time when this entry was pushed; it can only have grown since. */
  at: number;
}

export interface ExpiringTableOptions<V> {
  /** Most records held at once. */
  capacity: number;
  /** A record whose last activity is more than this before now can be evicted. */
  windowMs: number;
  /** Latest activity of a record; must never decrease (take a maximum when lines are out of order). */
  lastSeen: (value: V) => number;
  /** Records to keep whatever their age (offenders, attacked users): they are never evicted. */
  pinned: (value: V) => boolean;
}

/**
 * @example
 * const t = new ExpiringTable<string, Rec>({ capacity: 2, windowMs: 600_000, lastSeen: (r) => r.latestMs, pinned: (r) => r.bans > 0 });
 * if (t.get(address) === undefined && !t.add(address, rec, now)) untracked++;
 */
export class ExpiringTable<K, V> {
  readonly #map = new Map<K, V>();
  // A binary min-heap on `at`, one entry per unpinned record. Updates are lazy: a record seen again
  // keeps its old entry, which is pushed back with the new time when it reaches the top, so the hot
  // path (a failure from a known address) never touches the heap.
  readonly #heap: Array<HeapEntry<K, V>> = [];
  readonly #options: ExpiringTableOptions<V>;
  /** Records evicted so far. */
  evicted = 0;

  constructor(options: ExpiringTableOptions<V>) {
    this.#options = options;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  values(): IterableIterator<V> {
    return this.#map.values();
  }

  /**
   * True when a record can be added: when the table is full, first evicts every unpinned record
   * idle for more than the window before `nowMs`. Lets a caller skip building a record that would
   * be refused.
   */
  makeRoom(nowMs: number): boolean {
    if (this.#map.size >= this.#options.capacity) this.#evict(nowMs);
    return this.#map.size < this.#options.capacity;
  }

  /** Adds a record that is not in the table yet (see makeRoom); returns false, adding nothing, when there is no room. */
  add(key: K, value: V, nowMs: number): boolean {
    if (!this.makeRoom(nowMs)) return false;
    this.#map.set(key, value);
    this.#push({ key, value, at: this.#options.lastSeen(value) });
    return true;
  }

  #evict(nowMs: number): void {
    const { windowMs, lastSeen, pinned } = this.#options;
    const heap = this.#heap;
    while (heap.length > 0) {
      const top = heap[0] as HeapEntry<K, V>;
      if (pinned(top.value)) {
        this.#pop();
        continue;
      }
      const seen = lastSeen(top.value);
      if (!Object.is(seen, top.at)) {
        // Seen again since it was pushed: put it back at its real place and look again.
        this.#pop();
        this.#push({ key: top.key, value: top.value, at: seen });
        continue;
      }
      // Every other entry has an `at` no smaller, and a last-seen time no smaller than its `at`:
      // when the top is still inside the window, nothing in the table can be evicted.
      // (A NaN time fails this test and is evicted rather than looping.)
      if (nowMs - seen <= windowMs) return;
      this.#pop();
      this.#map.delete(top.key);
      this.evicted++;
    }
  }

  #push(entry: HeapEntry<K, V>): void {
    const heap = this.#heap;
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as HeapEntry<K, V>;
      if (p.at <= entry.at) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    const n = heap.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && (heap[r] as HeapEntry<K, V>).at < (heap[l] as HeapEntry<K, V>).at ? r : l;
      const c = heap[child] as HeapEntry<K, V>;
      if (c.at >= last.at) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
  }
}
