// Time as a dependency: domain code receives a Clock instead of calling Date.now(), so tests can
// move time and jobs can be replayed.

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Milliseconds elapsed since an arbitrary origin, on a clock nobody steps (monotonic): what `now()` should have moved
   * by. A wall clock stepped by NTP, an operator's `date -s` or a VM resumed with a wrong time moves `now()` but not
   * this, so the difference shows the jump (the maintenance pass skips the steps that judge rows by the clock across
   * one, src/http/maintenance.ts). Optional: a clock without it is believed.
   */
  elapsed?(): number;
}

/** The host's clock; `elapsed` is the process's monotonic clock (performance.now(), which a wall-clock step leaves alone). */
export const systemClock: Clock = { now: () => Date.now(), elapsed: () => performance.now() };

/**
 * A clock for tests: starts at `start` and moves only when told. `advance` and `set` move time as it passes (its
 * `elapsed` moves with it, even backwards, so a test that winds time back sees no jump); `jump` steps the wall clock
 * alone, as NTP or `date -s` steps a host's.
 */
export class ManualClock implements Clock {
  #now: number;
  #elapsed = 0;
  constructor(start: number = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  elapsed(): number {
    return this.#elapsed;
  }
  advance(ms: number): void {
    this.#now += ms;
    this.#elapsed += ms;
  }
  set(ms: number): void {
    this.#elapsed += ms - this.#now;
    this.#now = ms;
  }
  /** Steps the wall clock by `ms` (negative: back) while no time passes: what a stepped host clock does. */
  jump(ms: number): void {
    this.#now += ms;
  }
}
