// The bars a wave of failed logins is judged by, and the waves found against them. Each hour of the day (UTC) has its
// own usual (index.ts usualOf): a site busy 13 hours a day is judged at night by its nights, not by its day's rate (a
// stuffer working only at night ran at 70 times the night's usual unseen), and a site whose weekends are quiet is
// judged in its working hours by their own usual, not by a quiet median hour (every weekday was a wave). Red team 39b.
import { DayClock } from "./day-clock.ts";
import type { BucketCount } from "./queries.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Failures are counted in buckets this long; a wave is judged over any 60 minutes of them, not per clock hour. */
export const BUCKET_MS = 10 * MINUTE;
const BUCKETS_PER_HOUR = HOUR / BUCKET_MS;
const HOURS_A_DAY = 24;
const BUCKETS_A_DAY = HOURS_A_DAY * BUCKETS_PER_HOUR;
/**
 * The spans a wave is judged over. Over any 60 minutes the bar is the larger of --wave-min and --wave-factor times the
 * usual of those minutes; over 6 and 24 hours, the larger of --wave-min and --wave-factor times the usual of the span: a
 * campaign paced under the hourly bar all day (90 an hour, or 18, against a usual 2) is past the usual over 6 or 24
 * hours. The failures of the 60-minute waves are left out of the longer spans' counts (those waves are reported as
 * they are).
 */
export const WAVE_SPAN_HOURS = [1, 6, 24] as const;

/** A span's bar: at least `at` failures in `hours` hours. */
export interface Bar {
  hours: number;
  at: number;
}

/** A span that reached its bar: its buckets first..last (inclusive), the failures it held (as counted for its length). */
export interface Reached extends Bar {
  failed: number;
  first: number;
  last: number;
}

/**
 * Waves found: adjacent buckets, and for each span length that marked one of them the lowest bar reached; `seen`: the
 * last bucket of the earliest-ending span that marked one of them, the first a run must hold to see the wave (after
 * `last` when the failures that completed it carried too little of it to be marked).
 */
export interface WaveSpan {
  first: number;
  last: number;
  seen: number;
  reached: Reached[];
}

/**
 * The bars of any span of buckets, from the usual failures of each hour of the site's day (`clock`'s time zone, UTC by
 * default; index 0 = 00:00–01:00) and how they fall within it: `shares`, for each of the day's 144 ten-minute buckets,
 * its part of its hour's usual (each hour's six summing to 1; a sixth each when not given). A shift starting at 09:00
 * fails 150 times in its first ten minutes every day: spread evenly, the 60 minutes ending with them were credited a
 * sixth of it and were a wave every day (red team 40). `moving`: for each hour, the part of its usual whose ten minutes
 * vary from day to day (a job starting at a random minute of 09:00): 60 minutes touching that hour are credited at
 * least that part of it, wherever they fall (pooled over the days, its ten minutes' shares were a sixth each, and on a
 * day it fell at the hour's edge the 60 minutes before it were a wave: red team 41). An hour's usual counts as at
 * least 1 (a quiet night is no bar of 0 × --wave-factor). A bucket's place in the day is its number (from the epoch)
 * in the zone's time modulo a day's; a span's usual is a difference of two running sums, or a sum bucket by bucket
 * where the zone's offset changes within it.
 */
export class Bars {
  readonly #factor: number;
  readonly #min: number;
  readonly #clock: DayClock;
  /** Each bucket of the day's usual failures (its hour's usual times its share), not floored. */
  readonly #usual: readonly number[];
  /** Each bucket of the day's usual, floored (its hour's at least 1), in hours' worth (× BUCKETS_PER_HOUR). */
  readonly #worth: readonly number[];
  /** #prefix[k]: the #worth of a day's first k buckets; #prefix[BUCKETS_A_DAY] is a whole day's. */
  readonly #prefix: number[];
  /** Each hour's moving part, floored as #worth (hours' worth): the least a 60-minute span touching it is credited. */
  readonly #moving: readonly number[];
  /** The lowest bar of any span of each length (WAVE_SPAN_HOURS): a count under it needs no look at where it falls. */
  readonly #lowest = new Map<number, number>();

  constructor(usualByHourOfDay: readonly number[], factor: number, min: number, o: { shares?: readonly number[]; moving?: readonly number[]; clock?: DayClock } = {}) {
    const { shares, moving, clock = new DayClock() } = o;
    if (usualByHourOfDay.length !== HOURS_A_DAY) throw new RangeError(`the usual of each hour of the day: ${HOURS_A_DAY} numbers, not ${usualByHourOfDay.length}`);
    if (shares !== undefined) {
      if (shares.length !== BUCKETS_A_DAY) throw new RangeError(`the share of each ten minutes of the day: ${BUCKETS_A_DAY} numbers, not ${shares.length}`);
      for (let h = 0; h < HOURS_A_DAY; h++) {
        const part = shares.slice(h * BUCKETS_PER_HOUR, (h + 1) * BUCKETS_PER_HOUR);
        const sum = part.reduce((x, y) => x + y, 0);
        if (part.some((x) => !(x >= 0)) || Math.abs(sum - 1) > 1e-9) throw new RangeError(`the shares of hour ${h}'s ten minutes must be at least 0 and sum to 1, not ${JSON.stringify(part)}`);
      }
    }
    // A bucket's usual in hours' worth (a sixth of the hour when shares are not given: the hour's usual itself, exactly).
    const worth = (usual: number, k: number): number => (shares === undefined ? usual : usual * shares[k]! * BUCKETS_PER_HOUR);
    if (moving !== undefined && (moving.length !== HOURS_A_DAY || moving.some((x) => !(x >= 0 && x <= 1)))) throw new RangeError(`the moving part of each hour of the day: ${HOURS_A_DAY} numbers from 0 to 1`);
    this.#moving = usualByHourOfDay.map((u, h) => Math.max(u, 1) * (moving?.[h] ?? 0) * BUCKETS_PER_HOUR);
    this.#usual = Array.from({ length: BUCKETS_A_DAY }, (_, k) => worth(usualByHourOfDay[Math.floor(k / BUCKETS_PER_HOUR)]!, k) / BUCKETS_PER_HOUR);
    this.#worth = Array.from({ length: BUCKETS_A_DAY }, (_, k) => worth(Math.max(usualByHourOfDay[Math.floor(k / BUCKETS_PER_HOUR)]!, 1), k));
    this.#factor = factor;
    this.#min = min;
    this.#clock = clock;
    this.#prefix = [0];
    for (let k = 0; k < BUCKETS_A_DAY; k++) this.#prefix.push(this.#prefix[k]! + this.#worth[k]!);
    const least = Math.min(...this.#worth);
    for (const hours of WAVE_SPAN_HOURS) {
      let lowest = Infinity;
      for (let end = 0; end < BUCKETS_A_DAY; end++) lowest = Math.min(lowest, this.#bar(this.#periodic(hours, end)));
      // Where the offset changes within a span (daylight saving), its buckets are not a run of the day's: it may skip
      // the busiest or repeat the quietest. No span holds less than its buckets' least worth each.
      if (!clock.fixed) lowest = Math.min(lowest, this.#bar(least * hours * BUCKETS_PER_HOUR));
      this.#lowest.set(hours, lowest);
    }
  }

  /**
   * The least whole count at or above factor × `usualHours` (a sum of fractions when shares were given: its rounding
   * error is far under the 1e-9 forgiven).
   */
  #bar(usualHours: number): number {
    return Math.max(this.#min, Math.ceil((this.#factor * usualHours) / BUCKETS_PER_HOUR - 1e-9));
  }

  /**
   * The worth of the span of `hours` hours ending with bucket `end` counted in the zone's time (clock.local): whole days
   * of it, and the running sums of the day's buckets between its ends' places in the day (small numbers, whatever the
   * epoch: no rounding error grows with the date).
   */
  #periodic(hours: number, end: number): number {
    const start = end + 1 - hours * BUCKETS_PER_HOUR;
    const days = Math.floor((end + 1) / BUCKETS_A_DAY) - Math.floor(start / BUCKETS_A_DAY);
    const place = (b: number): number => b - Math.floor(b / BUCKETS_A_DAY) * BUCKETS_A_DAY;
    return days * this.#prefix[BUCKETS_A_DAY]! + this.#prefix[place(end + 1)]! - this.#prefix[place(start)]!;
  }

  /** The bar of the span of `hours` hours ending with bucket `end` (inclusive). */
  at(hours: number, end: number): number {
    const start = end + 1 - hours * BUCKETS_PER_HOUR;
    const offset = this.#clock.offset(end);
    let usualHours = 0;
    if (this.#clock.offset(start) === offset) usualHours = this.#periodic(hours, end + offset);
    else for (let b = start; b <= end; b++) usualHours += this.#worth[this.#clock.placeOf(b)]!;
    if (hours === 1) {
      // At least the moving part of either hour it touches (only raises a bar: the lowest bars stand).
      const hourOf = (b: number): number => Math.floor(this.#clock.placeOf(b) / BUCKETS_PER_HOUR);
      usualHours = Math.max(usualHours, this.#moving[hourOf(start)]!, this.#moving[hourOf(end)]!);
    }
    return this.#bar(usualHours);
  }

  /** The lowest bar of a span of `hours` hours, wherever it falls. */
  lowest(hours: number): number {
    return this.#lowest.get(hours) ?? this.#min;
  }

  /** The usual failures of bucket `b` (its share of its hour's usual), not floored. */
  usualOf(b: number): number {
    return this.#usual[this.#clock.placeOf(b)]!;
  }

  /** The usual of the buckets first..last as a rate an hour, to one decimal (a wave's "against a usual … an hour"). */
  perHour(first: number, last: number): number {
    let sum = 0;
    for (let b = first; b <= last; b++) sum += this.usualOf(b);
    return Math.round((sum / (last - first + 1)) * BUCKETS_PER_HOUR * 10) / 10;
  }
}

/**
 * The waves among the buckets [first, end). Over 60 minutes, a bucket is in a wave when some 60 minutes holding it
 * reach their bar and it carries its part of that rate itself (a twelfth of the bar), so a wave's span is where its
 * failures are, not the quiet minutes around them. Over the longer spans, counted without the 60-minute waves'
 * buckets, a span that reaches its bar is a wave from the first to the last of its buckets above twice their usual
 * (at least one failure), gaps included: a campaign's pace is the attacker's to choose (a failure every 20 minutes,
 * or a decoy bucket holding most of them), so no bucket of it must carry a share of its own. Adjacent wave buckets
 * make one wave.
 *
 * Only the buckets holding failures are walked, so the work is the log's, not the window's: the spans ending at a full
 * bucket and at the empty ones after it, up to the next full one, hold that bucket's failures or fewer, and are
 * judged each against its own bar (the bar differs by the hours a span covers: one sliding from the evening into the
 * night drops busy hours' usual for quiet ones). A count under a span's lowest bar anywhere is passed at once.
 */
export function findWaves(byBucket: Map<number, BucketCount>, first: number, end: number, bars: Bars): WaveSpan[] {
  const keys = [...byBucket.keys()].filter((b) => b >= first && b < end).sort((x, y) => x - y);
  const hot = new Set<number>();
  const hourly = new Set<number>();
  // Why each bucket is in a wave: per span length, the lowest bar a span marking it reached, on a tie the span holding
  // the most failures, on a tie the first (what the report quotes).
  const lower = (r: Reached, than: Reached): boolean => r.at < than.at || (r.at === than.at && r.failed > than.failed);
  const why = new Map<number, Reached[]>();
  const seen = new Map<number, number>();
  const because = (b: number, r: Reached): void => {
    seen.set(b, Math.min(seen.get(b) ?? r.last, r.last));
    const list = why.get(b) ?? [];
    const i = list.findIndex((x) => x.hours === r.hours);
    if (i === -1) list.push(r);
    else if (lower(r, list[i]!)) list[i] = r;
    why.set(b, list);
  };
  for (const hours of WAVE_SPAN_HOURS) {
    const buckets = hours * BUCKETS_PER_HOUR;
    const lowest = bars.lowest(hours);
    // The longer spans count what the 60-minute waves did not take.
    const n = (b: number): number => (hours > 1 && hourly.has(b) ? 0 : (byBucket.get(b)?.n ?? 0));
    // The span of `buckets` ending at bucket e, holding keys[from..to] (`failed` of them), reached the bar `at`.
    const reached = (e: number, from: number, to: number, at: number, failed: number): void => {
      const r: Reached = { hours, at, failed, first: e - buckets + 1, last: e };
      if (hours === 1) {
        for (let k = from; k <= to; k++) {
          if (n(keys[k]!) * 2 * buckets < at) continue;
          hourly.add(keys[k]!);
          because(keys[k]!, r);
        }
        return;
      }
      let lo = Number.NaN;
      let hi = Number.NaN;
      for (let k = from; k <= to; k++) {
        if (n(keys[k]!) < Math.max(1, 2 * bars.usualOf(keys[k]!))) continue;
        if (Number.isNaN(lo)) lo = keys[k]!;
        hi = keys[k]!;
      }
      for (let x = lo; x <= hi; x++) {
        hot.add(x);
        because(x, r);
      }
    };
    let sum = 0;
    // keys[start..j]: the buckets of the span ending at keys[j].
    for (let j = 0, start = 0; j < keys.length; j++) {
      const b = keys[j]!;
      sum += n(b);
      while (keys[start]! <= b - buckets) sum -= n(keys[start++]!);
      if (sum < lowest) continue;
      // The spans ending at b and at the empty buckets after it, before the next full one (and while they hold b).
      const last = Math.min((keys[j + 1] ?? Infinity) - 1, b + buckets - 1);
      let held = sum;
      for (let e = b, s = start; e <= last && held >= lowest; e++) {
        while (keys[s]! <= e - buckets) held -= n(keys[s++]!);
        const at = bars.at(hours, e);
        if (held >= at) reached(e, s, j, at, held);
      }
    }
  }
  for (const b of hourly) hot.add(b);
  const spans: WaveSpan[] = [];
  for (const b of [...hot].sort((x, y) => x - y)) {
    let open = spans.at(-1);
    if (open && open.last === b - 1) open.last = b;
    else spans.push((open = { first: b, last: b, seen: seen.get(b) ?? b, reached: [] }));
    open.seen = Math.min(open.seen, seen.get(b) ?? b);
    for (const r of why.get(b) ?? []) {
      const i = open.reached.findIndex((x) => x.hours === r.hours);
      if (i === -1) open.reached.push(r);
      else if (lower(r, open.reached[i]!)) open.reached[i] = r;
    }
  }
  for (const span of spans) span.reached.sort((x, y) => x.hours - y.hours);
  return spans;
}
