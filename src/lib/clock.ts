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

/** A reading of a clock: its wall time and its elapsed (monotonic) time, taken together. */
export interface ClockReading {
  wall: number;
  elapsed: number;
}

/** `clock`'s reading, or null when it keeps no elapsed time (nothing to judge a step by) or cannot be read. */
export function readClock(clock: Clock): ClockReading | null {
  if (clock.elapsed === undefined) return null;
  try {
    const elapsed = clock.elapsed();
    const wall = clock.now();
    return Number.isFinite(elapsed) && Number.isFinite(wall) ? { wall, elapsed } : null;
  } catch {
    return null;
  }
}

/**
 * How far the wall time moved beyond the time that elapsed between two readings (positive: the clock was stepped
 * forward; 0 without both readings). NTP's slewing parts the two by at most 0.5 ms a second; a step shows whole.
 *
 * @example
 * clockStep({ wall: 0, elapsed: 0 }, { wall: 8 * 86_400_000 + 60_000, elapsed: 60_000 }) // 691_200_000
 */
export function clockStep(since: ClockReading | null, now: ClockReading | null): number {
  return since === null || now === null ? 0 : (now.wall - since.wall) - (now.elapsed - since.elapsed);
}

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
