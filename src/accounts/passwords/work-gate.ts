// Admission to password hashing. Every argon2 verify or hash of a request runs on the libuv thread pool, which is
// small (UV_THREADPOOL_SIZE threads) and shared with file-system work. Flood control bounds each client before any
// hash, but not many clients at once: a botnet's logins, each its first from its address, queued without bound, so
// every request's wait grew with the queue (and the pool's other users waited behind it) until clients timed out.
// The gate admits a bounded number of password-checking requests at a time, at most a share of them from one client,
// and the rest are refused at once, before any work (the HTTP layer answers 503 with Retry-After).

/** Gives the admitted slot back; calling it again does nothing. */
export type ReleaseSlot = () => void;

export interface WorkGateOptions {
  /** Requests admitted at a time, in all. */
  capacity: number;
  /** Requests admitted at a time from one client key (default a quarter of the capacity, at least 1). */
  perClient?: number;
  /** Shortest time between two reports of refusals (default a minute). */
  reportEveryMs?: number;
}

/**
 * Counts password-checking requests in flight, per process.
 *
 * @example
 * const release = gate.tryEnter(ipBucket(ip));
 * if (release === null) return reply.status(503).header("retry-after", "1").send(busy);
 * try { await login(...); } finally { release(); }
 */
export class PasswordWorkGate {
  readonly capacity: number;
  readonly perClient: number;
  readonly #reportEveryMs: number;
  readonly #byClient = new Map<string, number>();
  #inFlight = 0;
  #refused = 0;
  #reportedAt = Number.NEGATIVE_INFINITY;

  constructor(options: WorkGateOptions) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1) throw new RangeError(`capacity must be a whole number of at least 1, got ${options.capacity}`);
    const perClient = options.perClient ?? Math.max(1, Math.ceil(options.capacity / 4));
    if (!Number.isInteger(perClient) || perClient < 1) throw new RangeError(`perClient must be a whole number of at least 1, got ${perClient}`);
    this.capacity = options.capacity;
    this.perClient = Math.min(perClient, options.capacity);
    this.#reportEveryMs = options.reportEveryMs ?? 60_000;
  }

  /** Requests admitted and not yet released. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** A slot for one request of `client` (its address as flood control counts it), or null when the gate is full for it. */
  tryEnter(client: string): ReleaseSlot | null {
    const mine = this.#byClient.get(client) ?? 0;
    if (this.#inFlight >= this.capacity || mine >= this.perClient) {
      this.#refused++;
      return null;
    }
    this.#inFlight++;
    this.#byClient.set(client, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight--;
      const left = (this.#byClient.get(client) ?? 1) - 1;
      // Forgotten at zero: the map holds only clients with a request in flight, at most `capacity` of them.
      if (left <= 0) this.#byClient.delete(client);
      else this.#byClient.set(client, left);
    };
  }

  /**
   * The requests refused since the last report, when there are some and the last report is at least `reportEveryMs`
   * old (then counted from zero again); otherwise null. One log line a minute, whatever the refusal rate. `force`: whatever
   * the time (the maintenance pass and the shutdown, so that a burst nobody followed is reported too).
   */
  takeReport(now: number, options: { force?: boolean } = {}): number | null {
    if (this.#refused === 0 || (!options.force && now - this.#reportedAt < this.#reportEveryMs)) return null;
    const refused = this.#refused;
    this.#refused = 0;
    this.#reportedAt = now;
    return refused;
  }
}
