// `bulwark check logins`: Bulwark's own sign-ins read back from its audit log, as `check authlog` reads sshd's. A
// credential-stuffing campaign (a botnet trying a leaked list: seed 001's five hours over SSH, here over HTTP) shows in
// two ways, and a stuffer who knows the check shapes its campaign around either one alone: failed logins far above the
// usual rate (a wave), and addresses that fail on many different accounts (a list being worked through, however slow).
// What matters is what got through: sign-ins from browsers new to their account during a wave or from such an address,
// and sign-ins after a run of failures (a guess that worked, ASVS 6.3.5). The opposite shape of a spraying address, one
// account guessed slowly from many addresses, is guessed.ts. Each is listed with the session it made
// (auth.login.succeeded names it), so the responder ends exactly those.
import { ipBucket, ipSite } from "../../accounts/flood/ip-bucket.ts";
import { DEFAULT_DATED_AHEAD_TOLERANCE_MS } from "../../store/clock-skew.ts";
import type { Database } from "../../store/database.ts";
import type { Finding } from "../finding.ts";
import { GuessedAccounts, type GuessedAccount } from "./guessed.ts";
import { failedByAddress, failedByBucket, failedBefore, firstEventAt, MAX_GUESSED, signIns, TYPO_CORRECTED_MS, typosByBucket, type BucketCount, type SprayingClients } from "./queries.ts";
import { REMEDY, SignInList } from "./sign-ins.ts";
import { canonicalZone, DayClock } from "./day-clock.ts";
import { BUCKET_MS, Bars, findWaves, type Bar, type WaveSpan } from "./waves.ts";

export type { SignIn } from "./sign-ins.ts";
export type { GuessedAccount } from "./guessed.ts";
export { LoginsStateError, LoginsStateWriteError } from "./errors.ts";
export { checkWindowState, LONG_WINDOW_MS, readWindowState, writeWindowState, type WindowState } from "./window-state.ts";
export { newestSeq, writtenLate } from "./queries.ts";
export { BUCKET_MS } from "./waves.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** How far before the window the sign-ins of a wave are read: one that straddles the window's start (a daily run's edge). */
const LOOK_BACK_MS = HOUR;
/** Failures are counted from the longest wave span (waves.ts) before the window, so a wave that began the day before is judged whole. */
const WAVE_LOOK_BACK_MS = 24 * HOUR;
/**
 * How far before the window the slow rules (spraying addresses, guessed accounts) count failures, for a client or an
 * account that failed in the window too: a campaign split between two daily runs (15 guesses in each, the bar at 20)
 * is judged whole, over any 24 hours, as `check authlog` judges them.
 */
const SLOW_LOOK_BACK_MS = 24 * HOUR;
/**
 * How many days before the window an account's failures are counted for the slower guessing bar (guessed.ts
 * readSlow): --guess-min of them from at least half as many clients.
 */
const GUESS_HORIZON_DAYS = 7;
/**
 * The clients an account's guesses over that horizon must come from: more than the owner's home and phone. Typos each
 * corrected at once by the owner's sign-in are left out (a phone on a new carrier address every time is many clients),
 * so the bar need not be half --guess-min, which nine cheap addresses stayed under for good.
 */
const GUESS_HORIZON_CLIENTS = 3;
/** The most LoginsCheckOptions.lateWriteMs may be: a sign-in written later than this after its stamp is named by the CLI, not judged. */
export const MAX_LATE_WRITE_MS = SLOW_LOOK_BACK_MS;
/**
 * LoginsCheckOptions.lateWriteMs's default: twice BULWARK_MAX_CLOCK_SKEW_SECONDS's default (60 s), as far as a node's
 * stamps may lag the clock of the node running the check (each within the limit, on either side of the database's).
 */
const DEFAULT_LATE_WRITE_MS = DEFAULT_DATED_AHEAD_TOLERANCE_MS;
/** Waves reported one by one, the most severe first; the rest are one finding, as severe as the worst of them. */
const MAX_WAVES = 20;
/** Spraying addresses listed in the evidence (the most accounts first). */
const MAX_ADDRESSES = 100;

export interface LoginsCheckOptions {
  /** The window: events at or after `since`, before `until` (epoch ms). */
  since: number;
  until: number;
  /** A wave is any 60 minutes with at least this many failed logins... */
  waveMin: number;
  /**
   * ...and at least this many times the usual of those minutes: each hour of the day's (in `timeZone`) median over the
   * `baselineDays` before the window, or over the `baselineDays` before those if lower, and each ten minutes' part of
   * it (waves.ts Bars).
   */
  waveFactor: number;
  /** A sign-in after this many failed attempts in a row is reported (the notice to the owner uses the same 5). */
  streak: number;
  /** An address that failed on at least this many different accounts or unknown identifiers in the window (and the day before it, SLOW_LOOK_BACK_MS) is spraying. */
  sprayMin: number;
  /** An account that took at least this many failed logins in the window (and the day before it), at any pace, from any addresses, is being guessed. */
  guessMin: number;
  /** Days before the window whose median hour is the usual rate (the window itself is what an attacker fills). */
  baselineDays: number;
  /**
   * The site's time zone (IANA name, default UTC): the hours of the day each have their usual in its time, so a peak
   * that keeps local time is judged at the same hour through a daylight-saving change (day-clock.ts).
   */
  timeZone?: string;
  /** Sign-in events read per query (default 5000); tests page with fewer. */
  pageSize?: number;
  /**
   * How long before the window the sign-ins (and the failures that make a client or an account count) are judged again,
   * default DEFAULT_LATE_WRITE_MS: the run before may have read the log before they were written (stamped by a node
   * whose clock is behind, committed after that run's read; a cron started a few seconds late). Some are reported twice.
   */
  lateWriteMs?: number;
}

export const DEFAULT_LOGINS_OPTIONS = { waveMin: 100, waveFactor: 5, streak: 5, sprayMin: 20, guessMin: 20, baselineDays: 7 } as const;

export interface Wave {
  from: string;
  to: string;
  failed: number;
  /** Distinct accounts (or keyed tags of unknown identifiers) the failures named, summed over its buckets: an upper bound. */
  accountsTried: number;
  /** The share of its failures on identifiers that name no account: a stuffing list is mostly accounts that do not exist. */
  unknownShare: number;
  /**
   * Of `failed`, the typos: each followed within TYPO_CORRECTED_MS by its account's sign-in from a browser it knew, from
   * the same address. Not counted toward the bars.
   */
  typos: number;
  succeeded: number;
  newDeviceSignIns: number;
  /** The usual failures an hour of its minutes of the day (in the report's timeZone), on average over its span: what it is set against. */
  usualFailedPerHour: number;
  /**
   * Why it is a wave: for each span length (60 minutes, 6 or 24 hours) that found it, the span with the lowest bar it
   * reached — the bar (from the usual of that span's hours), the failures the span held (a longer span without the
   * 60-minute waves' failures), and where it ran.
   */
  bars: Array<Bar & { failed: number; from: string; to: string }>;
}

export interface SprayingAddress {
  ip: string;
  failed: number;
  accounts: number;
  signIns: number;
}

export interface LoginsReport {
  findings: Finding[];
  window: { since: string; until: string; hours: number };
  failed: number;
  throttled: number;
  succeeded: number;
  /** The median hour of the window itself. */
  medianFailedPerHour: number;
  /** The usual hour (the median), and where it was read: the days before the window, or the window when the store is younger. */
  usualFailedPerHour: number;
  usualFrom: "before-window" | "window";
  /** The time zone whose hours of the day the usuals are of (IANA name; UTC unless given). */
  timeZone: string;
  /**
   * The usual of each hour of the day (in `timeZone`, index 0 = 00:00–01:00) the bars come from: the median hour where
   * a period held it on fewer than 3 days; above --wave-factor times the usual hour only when its days past that were
   * reported waves (Bound).
   */
  usualByHourOfDay: number[];
  /**
   * Each ten minutes of the day's part of its hour's usual (index 0 = 00:00–00:10, one decimal): how the hour's
   * failures usually fall within it. The bars are --wave-factor times the sum of a span's.
   */
  usualByTenMinutes: number[];
  waves: Wave[];
  sprayingAddresses: SprayingAddress[];
  /** Accounts at or above `guessMin` failures, the most severe first (at most 100; the findings count the rest). */
  guessedAccounts: GuessedAccount[];
  /** Sign-ins whose event predates the session and failure fields (written before 2026-12-05), not judged on them. */
  succeededWithoutDetail: number;
  /** Every account a reported sign-in belongs to, not only those listed (`--ids-out`). */
  reportedAccounts: string[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Checks the options: each bound is a number the operator typed. */
function checkOptions(o: LoginsCheckOptions): void {
  if (!(Number.isFinite(o.since) && Number.isFinite(o.until) && o.since < o.until)) throw new RangeError("the window must start before it ends");
  for (const [name, value] of [["waveMin", o.waveMin], ["streak", o.streak], ["sprayMin", o.sprayMin], ["guessMin", o.guessMin], ["baselineDays", o.baselineDays]] as const) {
    if (!(Number.isInteger(value) && value >= (name === "baselineDays" ? 0 : 1))) throw new RangeError(`${name} must be a whole number of at least ${name === "baselineDays" ? 0 : 1}`);
  }
  if (!(Number.isFinite(o.waveFactor) && o.waveFactor >= 1)) throw new RangeError("waveFactor must be at least 1");
  if (o.timeZone !== undefined && canonicalZone(o.timeZone) === null) throw new RangeError(`timeZone: unknown time zone ${JSON.stringify(o.timeZone)}: an IANA name such as UTC, Europe/Berlin or America/New_York`);
  if (o.pageSize !== undefined && !(Number.isInteger(o.pageSize) && o.pageSize >= 1)) throw new RangeError("pageSize must be a whole number of at least 1");
  if (o.lateWriteMs !== undefined && !(Number.isInteger(o.lateWriteMs) && o.lateWriteMs >= 0 && o.lateWriteMs <= MAX_LATE_WRITE_MS)) throw new RangeError("lateWriteMs must be a whole number from 0 to a day");
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : (sorted[Math.floor((sorted.length - 1) / 2)] as number);
};

/**
 * The (lower) median of `hours` hours: `counts` for those with failures, zero for the rest. Sized by the hours that
 * hold failures, not by the window: a window of millennia (`--since 999999w`) is no array of a hundred million hours.
 */
const medianOfHours = (counts: Iterable<number>, hours: number): number => {
  const sorted = [...counts].sort((a, b) => a - b);
  const zeros = hours - sorted.length;
  const k = Math.floor((hours - 1) / 2);
  return k < zeros ? 0 : (sorted[k - zeros] ?? 0);
};

/** A baseline period's failures per ten minutes from the hour `firstHour` (failedBefore). */
type Period = { buckets: number[]; firstHour: number };

/**
 * A period's usual: the median of the hours kept, and of each hour of the day (the clock's), by HOURS_A_DAY index (null
 * for an hour of the day no period held: a store younger than its periods); and, for each of the day's ten-minute
 * buckets, the failures it held on the days its hour was kept (how an hour's failures fall within it).
 */
interface Usual {
  median: number;
  byHourOfDay: Array<number | null>;
  byBucketOfDay: number[];
  peaks: number[][];
}
const HOURS_A_DAY = 24;
const BUCKETS_PER_HOUR = HOUR / BUCKET_MS;
/**
 * Days of an hour of the day a period must hold for its median to be that hour's usual: one evening of a store
 * installed at 19:00 is no usual evening (its quiet hours left the next period's busy evenings out as waves).
 */
const MIN_DAYS_AN_HOUR = 3;

/**
 * How far an hour's failures count toward its hour of the day's usual: up to `cap` (--wave-factor times the usual hour),
 * and past it only where they were a wave a run reported, as near as the baseline can tell: the hour held `loud` or
 * more on its own (no 60-minute bar of an hour whose usual is at most `cap` is higher), or some of its ten minutes were
 * in a wave (of 60 minutes, 6 or 24 hours, findWaves) against the bars of the period's own usual with only such hours
 * past `cap`, or against the bars of the period before it (`reported`: bucket indexes of the period). 60 minutes holding
 * a learned peak are under its bar, so they are no reported wave for the hour beside it (red team 41: a learned rush at
 * 09:00 made 90 a day at 08:00 count, never reported); a peak straddling two hours, or one of 90 reported each day
 * as a 6-hour wave, is a wave for them (red team 41b). An hour past `cap` in the older period counts past it again only
 * so (red team 41b: four reported nights of 98 at 03:00 in the oldest period let fourteen silent nights of 85 after
 * them count in full). `learn`: the three periods are held (a store younger than that counts every hour at most at
 * `cap`: three days of waves at 03:00 on a new store were its usual, red team 41). A campaign lifting an hour's usual
 * past `cap` is so reported on most days of each of the three periods.
 */
interface Bound {
  cap: number;
  loud: number;
  learn: boolean;
  reported?: ReadonlySet<number> | undefined;
}

/**
 * The usual of a period's hours (failedBefore), those above `factor` times the `older` period's usual for the same hour
 * of the day left out (a wave's, not the usual); all kept without an older period, or for an hour of the day it held
 * on fewer than MIN_DAYS_AN_HOUR days (a store installed in the evening: its first period's mornings are no quiet
 * ones, nor is its one evening a usual evening). Where nothing is kept (an hour of the day, or the whole period), the
 * older usual stands. With `bound`, each hour's count toward its hour of the day's median is bounded as Bound says.
 * Also each hour of the day's busiest ten minutes' part of it, one number a day it held failures (`peaks`).
 */
function usualOf(period: Period, older: Usual | null, factor: number, minDays: number, clock: DayClock, bound?: Bound): Usual {
  const byHour: number[][] = Array.from({ length: HOURS_A_DAY }, () => []);
  const peaks: number[][] = Array.from({ length: HOURS_A_DAY }, () => []);
  const byBucketOfDay = Array.from({ length: HOURS_A_DAY * BUCKETS_PER_HOUR }, () => 0);
  const kept: number[] = [];
  const { buckets } = period;
  const firstBucket = period.firstHour * BUCKETS_PER_HOUR;
  const counted = (n: number, first: number, last: number): number => {
    if (bound === undefined || n <= bound.cap) return n;
    if (!bound.learn) return bound.cap;
    if (n >= bound.loud) return n;
    for (let j = first; j <= last; j++) if (bound.reported?.has(j)) return n;
    return bound.cap;
  };
  // The period's hours in the zone's time: runs of buckets in one hour of its day at one offset (a day-light saving
  // change repeats an hour, as a second value that day, or skips one).
  for (let first = 0; first < buckets.length; ) {
    const local = clock.local(firstBucket + first);
    const hour = Math.floor(local / BUCKETS_PER_HOUR);
    let last = first;
    while (last + 1 < buckets.length && clock.local(firstBucket + last + 1) === local + (last + 1 - first) && Math.floor((local + last + 1 - first) / BUCKETS_PER_HOUR) === hour) last++;
    let n = 0;
    let busiest = 0;
    for (let j = first; j <= last; j++) {
      n += buckets[j]!;
      busiest = Math.max(busiest, buckets[j]!);
    }
    const hourOfDay = hour - Math.floor(hour / HOURS_A_DAY) * HOURS_A_DAY;
    const olderHour = older?.byHourOfDay[hourOfDay] ?? null;
    if (olderHour === null || n <= factor * Math.max(olderHour, 1)) {
      byHour[hourOfDay]!.push(counted(n, first, last));
      kept.push(n);
      if (n > 0) peaks[hourOfDay]!.push(busiest / n);
      // Bucket j is (local + j - first) in the zone's time: its place within the hour, in its hour of the day.
      for (let j = first; j <= last; j++) byBucketOfDay[hourOfDay * BUCKETS_PER_HOUR + local + j - first - hour * BUCKETS_PER_HOUR]! += buckets[j]!;
    }
    first = last + 1;
  }
  return {
    median: kept.length > 0 ? median(kept) : (older?.median ?? 0),
    byHourOfDay: byHour.map((values, h) => (values.length >= minDays ? median(values) : (older?.byHourOfDay[h] ?? null))),
    byBucketOfDay,
    peaks,
  };
}

/**
 * Each ten-minute bucket of the day's share of its hour's usual: the failures the periods' kept days held in it over
 * those its hour held, or a sixth where its hour held none.
 */
function sharesOf(usuals: Array<Usual | null>): number[] {
  const held = Array.from({ length: HOURS_A_DAY * BUCKETS_PER_HOUR }, (_, k) => usuals.reduce((sum, u) => sum + (u?.byBucketOfDay[k] ?? 0), 0));
  return held.map((n, k) => {
    const h = Math.floor(k / BUCKETS_PER_HOUR);
    let hour = 0;
    for (let j = h * BUCKETS_PER_HOUR; j < (h + 1) * BUCKETS_PER_HOUR; j++) hour += held[j]!;
    return hour === 0 ? 1 / BUCKETS_PER_HOUR : n / hour;
  });
}

/**
 * Reads the window's login events and returns the findings: `logins.failure-wave` per wave, `logins.spraying-address`
 * for addresses working through many accounts, `logins.guessed-account` for accounts guessed from any number of
 * addresses at any pace, `logins.after-failures` for sign-ins after a run of failures. Each is high when a sign-in got
 * through it (a new browser in a wave, to a guessed account or from a spraying address), medium otherwise; and
 * `logins.analysis-incomplete` (high) when a rule's bounds left addresses or sign-ins unjudged.
 *
 * @example
 * const report = await checkLogins(app.db, { since: now - 24 * HOUR, until: now, ...DEFAULT_LOGINS_OPTIONS });
 */
export async function checkLogins(database: Database, options: LoginsCheckOptions): Promise<LoginsReport> {
  checkOptions(options);
  const { since, until } = options;
  const clock = new DayClock(options.timeZone ?? "UTC");
  // Sign-ins from here on are this run's to judge, not only those in the window: one stamped in the last seconds of the
  // run before's window may have been written after that run read the log (a node whose clock is behind, within
  // BULWARK_MAX_CLOCK_SKEW_SECONDS). No run can tell which it saw, so those are judged again (some reported twice).
  const judgedFrom = since - (options.lateWriteMs ?? DEFAULT_LATE_WRITE_MS);
  const from = judgedFrom - LOOK_BACK_MS;
  const countedFrom = judgedFrom - WAVE_LOOK_BACK_MS;

  // Counted in the database, per 10 minutes: a wave of a million failures is one query, never a million rows read.
  const counts = await failedByBucket(database, countedFrom, until, BUCKET_MS);
  let failed = 0;
  let throttled = 0;
  let succeeded = 0;
  const byBucket = new Map<number, BucketCount>();
  for (const c of counts) {
    const inWindow = c.bucket * BUCKET_MS >= since;
    if (c.type === "auth.login.failed") {
      byBucket.set(c.bucket, c);
      if (inWindow) failed += c.n;
    } else if (inWindow) {
      if (c.type === "auth.login.throttled") throttled += c.n;
      else succeeded += c.n;
    }
  }
  const windowHours = Math.max(1, Math.ceil((until - since) / HOUR));
  const hourOf = (at: number): number => Math.floor((at - since) / HOUR);
  const perHour = new Map<number, number>();
  for (const [bucket, c] of byBucket) {
    if (bucket * BUCKET_MS < since) continue;
    const hour = Math.min(windowHours - 1, hourOf(bucket * BUCKET_MS));
    perHour.set(hour, (perHour.get(hour) ?? 0) + c.n);
  }
  const windowMedian = medianOfHours(perHour.values(), windowHours);

  // The usual rate comes from before the window (the window is what a stuffer fills: hours of cheap failures raised
  // its median above the real wave). A store younger than that falls back on the window's own.
  const period = options.baselineDays * 24 * HOUR;
  // The store's first event, read once for the three periods: none of them starts before it.
  const firstEvent = options.baselineDays > 0 ? await firstEventAt(database) : null;
  const before = options.baselineDays > 0 ? await failedBefore(database, since - period, since, firstEvent) : null;
  // The lower of that period's median and the one before it (when the store is that old): a campaign paced under the
  // bars for a week raised that week's median (95 an hour against a real 2), which would have let the next week run at
  // five times that unseen. And each period's hours above --wave-factor times the usual of the period before it (the
  // oldest of three taken as it is) are a wave's, not the usual: left out of its median. A campaign reported as a wave
  // every day (18 an hour against a usual 2) so becomes the usual only once it fills the oldest period too, three weeks
  // of daily reports; one paced under five times the usual can still raise it, by less than five times a week
  // (test/logins-thirtyeight-b-red-team.test.ts). The bar an hour is left out by is its hour of the day's (usualOf): a
  // site busy in working hours is not judged by its nights because a holiday made the older period's median a quiet
  // hour (test/logins-thirtynine-red-team.test.ts).
  const previous = before !== null && before.hours.length > 0 ? await failedBefore(database, since - 2 * period, since - period, firstEvent) : null;
  const oldest = previous !== null && previous.hours.length > 0 ? await failedBefore(database, since - 3 * period, since - 2 * period, firstEvent) : null;
  // A period of 1 or 2 days holds each hour on as many days at most: its hours are its own (--baseline-days 1 and 2
  // fell back to one median hour for the whole day, silently).
  const minDays = Math.min(MIN_DAYS_AN_HOUR, options.baselineDays);
  const held = (p: { hours: number[] } | null): p is NonNullable<typeof p> => p !== null && p.hours.length > 0;
  const { waveFactor: factor, waveMin } = options;
  /** The usual of the periods held, oldest first, each judged by `usualOfPeriod` against the one before it: [before, previous]. */
  const periods = (usualOfPeriod: (period: Period, older: Usual | null) => Usual): [Usual | null, Usual | null] => {
    const oldestUsual = held(oldest) ? usualOfPeriod(oldest, null) : null;
    const previousUsual = held(previous) ? usualOfPeriod(previous, oldestUsual) : null;
    return [held(before) ? usualOfPeriod(before, previousUsual) : null, previousUsual];
  };
  const [beforeMedian, previousMedian] = periods((period, older) => usualOf(period, older, factor, minDays, clock));
  const usual = beforeMedian !== null ? Math.min(beforeMedian.median, previousMedian?.median ?? Infinity) : windowMedian;
  const usualFrom = beforeMedian !== null ? "before-window" : "window";
  // The bars are each hour of the day's (in --time-zone, UTC by default): the lower of the two periods' usual for that
  // hour, or their median hour where a period did not hold it on MIN_DAYS_AN_HOUR days (a store younger than its
  // periods). One usual hour for the whole day judged a site busy by day at night by its day's rate (a stuffer at 70
  // times the night's usual was no wave), and a site with quiet weekends by a quiet median hour (every weekday a wave).
  // An hour counts toward its usual up to --wave-factor times the usual hour, and past that only when it was a wave a
  // run reported (Bound): one hour of the day raised silently on four days a week for three weeks (85 at 03:00, under
  // --wave-min, never a wave) had lifted its bar from 100 to 435, where leading the usual hour takes half the hours of
  // the week; and a young store's one poisoned hour was its usual (red team 40). A plain bound at that cap (red team
  // 40's fix) judged an honest daily peak by it for good — a morning rush of 120 on a quiet site, a wave every day:
  // reported as one every day, it is the usual once the three periods hold it, as any campaign reported daily for three
  // weeks would be.
  const cap = factor * Math.max(usual, 1);
  // Learning past the cap needs the oldest period to hold minDays days or more (a store 15 days old, its oldest period
  // holding one day, learned a daily rise in that day).
  const bound = { cap, loud: Math.max(waveMin, Math.ceil(factor * cap - 1e-9)), learn: held(oldest) && oldest.hours.length >= minDays * HOURS_A_DAY };
  /**
   * The bars of `usuals`' hours of the day (the lower of theirs for each) and how their failures fall within them:
   * each ten minutes' share of its hour (sharesOf), and each hour's part that moves from day to day — the typical day's
   * busiest ten minutes' part of the hour (a median over the days) beyond the largest share, so pooled, any ten
   * minutes holds.
   */
  const barsOf = (usuals: Usual[]): { bars: Bars; usualByHourOfDay: number[]; shares: number[] } => {
    const hourOfDayUsual = (u: Usual, h: number): number => u.byHourOfDay[h] ?? Math.min(u.median, cap);
    const usualByHourOfDay = Array.from({ length: HOURS_A_DAY }, (_, h) => Math.min(...usuals.map((u) => hourOfDayUsual(u, h))));
    const shares = sharesOf(usuals);
    const moving = Array.from({ length: HOURS_A_DAY }, (_, h) => {
      const peaks = usuals.flatMap((u) => u.peaks[h]!);
      return peaks.length === 0 ? 0 : Math.max(0, median(peaks) - Math.max(...shares.slice(h * BUCKETS_PER_HOUR, (h + 1) * BUCKETS_PER_HOUR)));
    });
    return { bars: new Bars(usualByHourOfDay, factor, waveMin, { shares, moving, clock }), usualByHourOfDay, shares };
  };
  /**
   * A period's usual under the bound: its ten minutes in a wave (findWaves, any span length) against the bars of its own
   * usual with only the hours past the cap that held `loud` on their own, or against the older period's bars, are the
   * reported ones.
   */
  const boundedUsual = (period: Period, older: Usual | null): Usual => {
    if (!bound.learn) return usualOf(period, older, factor, minDays, clock, bound);
    const own = usualOf(period, older, factor, minDays, clock, bound);
    const firstBucket = period.firstHour * BUCKETS_PER_HOUR;
    const counts = new Map<number, BucketCount>();
    period.buckets.forEach((n, j) => {
      if (n > 0) counts.set(firstBucket + j, { bucket: firstBucket + j, type: "auth.login.failed", n, accounts: n, unknown: 0 });
    });
    const reported = new Set<number>();
    for (const judge of older === null ? [own] : [own, older]) {
      for (const w of findWaves(counts, firstBucket, firstBucket + period.buckets.length, barsOf([judge]).bars)) {
        for (let b = w.first; b <= w.last; b++) reported.add(b - firstBucket);
      }
    }
    return usualOf(period, older, factor, minDays, clock, { ...bound, reported });
  };
  const [beforeUsual, previousUsual] = periods(boundedUsual);
  const judged = beforeUsual === null ? null : barsOf(previousUsual === null ? [beforeUsual] : [beforeUsual, previousUsual]);
  const usualByHourOfDay = judged?.usualByHourOfDay ?? Array.from({ length: HOURS_A_DAY }, () => windowMedian);
  const shares = judged?.shares ?? Array.from({ length: HOURS_A_DAY * BUCKETS_PER_HOUR }, () => 1 / BUCKETS_PER_HOUR);
  const bars = judged?.bars ?? new Bars(usualByHourOfDay, factor, waveMin, { clock });

  // Typos are not a wave: a failure its account's own sign-in from a browser it knew, from the same address, followed
  // within minutes is left out of the counts, and the waves found again (a newsletter day of readers mistyping once
  // each is not a stuffing campaign). Read over the whole range once a wave is found (the second pass may find one
  // elsewhere, its typos counted too), so a quiet day costs nothing more.
  const firstBucket = Math.floor(countedFrom / BUCKET_MS);
  const endBucket = Math.ceil(until / BUCKET_MS);
  const firstSpans = findWaves(byBucket, firstBucket, endBucket, bars);
  const typos = firstSpans.length === 0 ? new Map<number, number>()
    : await typosByBucket(database, countedFrom, until, BUCKET_MS);
  // (At least 0: typos written between the two reads, beside a live server, are not subtracted from failures never counted.)
  const counted = typos.size === 0 ? byBucket : new Map([...byBucket].map(([b, c]) => [b, { ...c, n: Math.max(0, c.n - (typos.get(b) ?? 0)) }]));
  // A wave that ended before the window (after judgedFrom) is the run before's, judged again only for a sign-in during
  // it written late (below): kept when one was. The run before's only when it could see it: a span that made it a wave
  // ended before the window (`seen`). One reaching its bar only with failures after midnight, too few a bucket to be
  // marked, was never seen by the run before and was dropped by this one as the run before's — a wave across every
  // daily edge reported by no run, and learned by the baseline's walk over whole periods (red team 41c).
  const seenBefore = (w: WaveSpan): boolean => (w.seen + 1) * BUCKET_MS <= since;
  const waveSpans = (typos.size === 0 ? firstSpans : findWaves(counted, firstBucket, endBucket, bars))
    .filter((w) => (w.last + 1) * BUCKET_MS > judgedFrom || !seenBefore(w));
  const waveEnded = waveSpans.map((w) => (w.last + 1) * BUCKET_MS <= since && seenBefore(w));
  const waveOf = (at: number): number => {
    const b = Math.floor(at / BUCKET_MS);
    return waveSpans.findIndex((w) => b >= w.first && b <= w.last);
  };

  // Addresses working through many accounts, whatever their pace: a slow campaign under every rate is still a list.
  const slow = { from: since - SLOW_LOOK_BACK_MS, since, until, judgedFrom };
  const spraying = await failedByAddress(database, slow, options.sprayMin);
  const sprayIPs = new Map(spraying.clients.map((s) => [s.ip, { ip: s.ip, failed: s.failed, accounts: s.accounts, signIns: 0 }]));
  // Clients whose failures all came before judgedFrom: the run before reported them; a sign-in from one since (the first
  // pair of its list that worked, after the daily edge) is still a sprayer's, the rest of their sign-ins are not judged.
  const earlier = new Set(spraying.clients.flatMap((s) => (s.recent ? [] : [s.ip])));
  // Accounts failing at least guessMin times, whatever the pace and the addresses: one account guessed by a botnet.
  const guessing = await GuessedAccounts.read(database, { ...slow, guessMin: options.guessMin, streak: options.streak });
  // The same over the week before the window, from at least GUESS_HORIZON_CLIENTS clients, typos left out: a few
  // guesses a day at one account from fresh addresses (its owner's sign-ins resetting the failures in a row) reach the
  // bar in a week and never in 48 hours. Judged on the sign-ins of this run.
  const slowGuessing = await GuessedAccounts.readSlow(database, {
    from: since - GUESS_HORIZON_DAYS * 24 * HOUR, since, until, judgedFrom, guessMin: options.guessMin, streak: options.streak,
    days: GUESS_HORIZON_DAYS, minClients: GUESS_HORIZON_CLIENTS, signInsNotBefore: judgedFrom,
  }, guessing);

  const lists = {
    after: new SignInList(options.streak),
    spray: new SignInList(options.streak),
    waves: waveSpans.map(() => new SignInList(options.streak)),
  };
  const succeededDuringWave = waveSpans.map(() => 0);
  const reported = new Set<string>();
  let withoutDetail = 0;
  // From an hour back for the waves, or from further for a guessed account whose guessing began the day before.
  for await (const { at, signIn } of signIns(database, Math.min(from, guessing.signInsFrom), until, options.pageSize ?? 5000)) {
    if (at >= from && signIn.failuresBefore === null && signIn.newDevice === null) withoutDetail++;
    const guessed = signIn.failuresBefore !== null && signIn.failuresBefore >= options.streak;
    // A spraying client's, or a spraying IPv6 site's (its /48, when no /64 of it is spraying on its own).
    const client = signIn.ip !== null ? (sprayIPs.get(ipBucket(signIn.ip)) ?? sprayIPs.get(ipSite(signIn.ip))) : undefined;
    const spray = client !== undefined && (!earlier.has(client.ip) || (at >= judgedFrom && (signIn.newDevice === true || guessed))) ? client : undefined;
    signIn.fromSprayingAddress = spray !== undefined;
    if (at >= judgedFrom && guessed) {
      lists.after.add(signIn);
      reported.add(signIn.userId);
    }
    if (guessing.signedIn(at, signIn)) reported.add(signIn.userId);
    if (slowGuessing.signedIn(at, signIn)) reported.add(signIn.userId);
    if (at >= judgedFrom && spray) {
      spray.signIns++;
      lists.spray.add(signIn);
      if (signIn.newDevice === true || guessed) reported.add(signIn.userId);
    }
    const w = waveOf(at);
    if (w >= 0 && (at >= judgedFrom || !waveEnded[w])) {
      succeededDuringWave[w]!++;
      if (signIn.newDevice === true) {
        lists.waves[w]!.add(signIn);
        reported.add(signIn.userId);
      }
    }
  }
  for (const id of await guessing.finish(database)) reported.add(id);
  await SignInList.fillEmails(database, [lists.after, lists.spray, ...lists.waves, ...guessing.lists(), ...slowGuessing.lists()]);
  const guessedReport = await guessing.report(database);
  const slowReport = await slowGuessing.report(database);

  const keptWaves = waveSpans.flatMap((span, i) => (!waveEnded[i] || lists.waves[i]!.count > 0 ? [{ span, list: lists.waves[i]!, succeeded: succeededDuringWave[i]! }] : []));
  const waves: Wave[] = keptWaves.map(({ span, list, succeeded }) => {
    let n = 0;
    let accounts = 0;
    let unknown = 0;
    let typed = 0;
    for (let b = span.first; b <= span.last; b++) {
      const c = byBucket.get(b);
      n += c?.n ?? 0;
      typed += typos.get(b) ?? 0;
      accounts += c?.accounts ?? 0;
      unknown += c?.unknown ?? 0;
    }
    return {
      from: iso(span.first * BUCKET_MS), to: iso((span.last + 1) * BUCKET_MS), failed: n, typos: typed, accountsTried: accounts,
      unknownShare: n === 0 ? 0 : Math.round((unknown / n) * 100) / 100, succeeded, newDeviceSignIns: list.count,
      usualFailedPerHour: bars.perHour(span.first, span.last),
      bars: span.reached.map((r) => ({ hours: r.hours, at: r.at, failed: r.failed, from: iso(r.first * BUCKET_MS), to: iso((r.last + 1) * BUCKET_MS) })),
    };
  });

  // The spraying addresses reported: those that failed since judgedFrom, and the earlier ones something got in from.
  const addresses = [...sprayIPs.values()].filter((a) => !earlier.has(a.ip) || a.signIns > 0).sort((a, b) => b.accounts - a.accounts || a.ip.localeCompare(b.ip));
  const earlierListed = addresses.filter((a) => earlier.has(a.ip)).length;
  const findings: Finding[] = [
    ...waveFindings(waves, keptWaves.map((k) => k.list), { usual, usualByHourOfDay, usualFrom, timeZone: clock.zone, options }),
    ...sprayFinding(addresses, spraying.recent + earlierListed, lists.spray, options, earlierListed),
    ...guessedReport.findings,
    ...slowReport.findings,
    ...afterFailuresFinding(lists.after, options),
    ...incompleteFinding(spraying, guessing, options, slowGuessing.truncated),
  ];
  return {
    findings, window: { since: iso(since), until: iso(until), hours: windowHours }, failed, throttled, succeeded,
    medianFailedPerHour: windowMedian, usualFailedPerHour: usual, usualFrom, timeZone: clock.zone, usualByHourOfDay,
    usualByTenMinutes: shares.map((share, k) => Math.round(usualByHourOfDay[Math.floor(k / BUCKETS_PER_HOUR)]! * share * 10) / 10), waves,
    sprayingAddresses: addresses.slice(0, MAX_ADDRESSES), guessedAccounts: [...guessedReport.accounts, ...slowReport.accounts].slice(0, MAX_ADDRESSES), succeededWithoutDetail: withoutDetail, reportedAccounts: [...reported],
  };
}

function waveFindings(waves: Wave[], lists: SignInList[], ctx: { usual: number; usualByHourOfDay: number[]; usualFrom: string; timeZone: string; options: LoginsCheckOptions }): Finding[] {
  // The most severe first (sign-ins got through), then the largest: a stuffer's cheap waves in front of the real one
  // pushed it past the waves reported one by one.
  const order = waves.map((_, i) => i).sort((a, b) => (waves[b]!.newDeviceSignIns > 0 ? 1 : 0) - (waves[a]!.newDeviceSignIns > 0 ? 1 : 0) || waves[b]!.failed - waves[a]!.failed || a - b);
  const findings: Finding[] = [];
  const one = (indexes: number[], title: string): Finding => {
    const list = SignInList.merge(indexes.map((i) => lists[i]!));
    const got = indexes.reduce((n, i) => n + waves[i]!.newDeviceSignIns, 0);
    const failed = indexes.reduce((n, i) => n + waves[i]!.failed, 0);
    // The bars quoted are those the first wave listed reached (each wave's own are in its evidence).
    const first = waves[indexes[0]!]!;
    const threshold = first.bars[0]!.at;
    const reached = first.bars.map((t) => `${t.failed} in the ${t.hours === 1 ? "60 minutes" : `${t.hours} hours`} from ${t.from} against a bar of ${t.at}`).join(", and ");
    return {
      id: "logins.failure-wave",
      severity: got > 0 ? "high" : "medium",
      title,
      detail:
        `Failed logins reached their bar: ${indexes.length > 1 ? `the wave from ${first.from} held ` : ""}${reached} (${ctx.options.waveFactor}× the usual of those minutes of the day, ${ctx.timeZone}, ${first.usualFailedPerHour} an hour over the wave, read from ${ctx.usualFrom === "window" ? "the window itself, the store being younger" : `the ${ctx.options.baselineDays} days before the window, or the ${ctx.options.baselineDays} before those if lower, for each hour of the day, their hours of waves left out`}; ` +
        `and at least ${ctx.options.waveMin}; typos, each followed within ${TYPO_CORRECTED_MS / MINUTE} minutes by its account's sign-in from a browser it knew at the same address, not counted): ${failed} failure(s), ${got} sign-in(s) from a browser new to its account meanwhile${list.length > 0 ? `: ${SignInList.describe(list.slice(0, 10))}${got > 10 ? ", …" : ""}` : ""}.`,
      evidence: { waves: indexes.map((i) => waves[i]), threshold, thresholds: first.bars, usualFailedPerHour: ctx.usual, usualByHourOfDay: ctx.usualByHourOfDay, newDeviceSignInsListed: list, ...SignInList.others(indexes.map((i) => lists[i]!), list) },
      remediation: got > 0 ? REMEDY : "Nothing got through from a new browser. Watch whether it goes on; flood control already refuses each address past its hourly failures, " +
        "so a wave this size comes from many addresses: block them upstream if it persists (they are in the auth.login.failed events of those hours).",
    };
  };
  for (const i of order.slice(0, MAX_WAVES)) {
    const w = waves[i]!;
    findings.push(one([i], `${w.failed} failed logins from ${w.from} to ${w.to}, against a usual ${w.usualFailedPerHour} an hour at those hours (${Math.round(w.unknownShare * 100)}% on accounts that do not exist)`));
  }
  const rest = order.slice(MAX_WAVES);
  if (rest.length > 0) findings.push(one(rest, `${rest.length} more wave(s) of failed logins, summed here`));
  return findings;
}

/**
 * `total`: every client at or above the bar reported, `addresses` being those kept (MAX_SPRAYING); `earlier`: how many
 * of them failed only before the window, reported for the sign-ins from them since.
 */
function sprayFinding(addresses: SprayingAddress[], total: number, list: SignInList, options: LoginsCheckOptions, earlier: number): Finding[] {
  if (addresses.length === 0) return [];
  const signIns = list.items();
  const got = signIns.filter((s) => s.newDevice === true || (s.failuresBefore ?? 0) >= options.streak).length > 0;
  return [{
    id: "logins.spraying-address",
    severity: got ? "high" : "medium",
    title: `${total} address(es) each failed to sign in to ${options.sprayMin} or more different accounts`,
    detail:
      `An address working through many accounts is running a list (credential stuffing, password spraying), at whatever pace: ${addresses.slice(0, 5).map((a) => `${a.ip} (${a.accounts} accounts, ${a.failed} failures)`).join("; ")}${addresses.length > 5 ? "; …" : ""}. ` +
      `${earlier > 0 ? `${earlier} of them failed only in the 24 hours before the window (the run before reported them) and are here for the sign-ins from them since. ` : ""}` +
      `${list.count} sign-in(s) came from these addresses${signIns.length > 0 ? `: ${SignInList.describe(signIns.slice(0, 10))}${list.count > 10 ? ", …" : ""}` : ""}. ` +
      "A shared address (a large NAT, a proxy) fails on many accounts too: its sign-ins from browsers already known to their accounts are the least suspicious.",
    evidence: { addresses: addresses.slice(0, MAX_ADDRESSES), addressesCount: total, signIns: signIns, signInsCount: list.count, ...SignInList.others([list], signIns) },
    remediation: got ? REMEDY : "Nothing got through from these addresses; block them upstream if they go on.",
  }];
}

/**
 * A rule read less than the window held. The spraying rule: more address rows than it reads (a client made of those
 * left out, a /64 rotating one account per address, may be missing), or more spraying clients than it keeps (sign-ins
 * from the rest are not marked). The guessed-account rule: more sign-ins to accounts past the MAX_GUESSED it keeps than
 * it holds to judge them (a guess that worked may be missing; accounts past the cut without a sign-in are only counted,
 * which its own finding says). High, as `authlog.analysis-incomplete`: a report without a spraying address or a guessed
 * account must not be read as "none", and the default --fail-on high fails the run.
 */
function incompleteFinding(spraying: SprayingClients, guessed: GuessedAccounts, options: LoginsCheckOptions, weekCut: boolean): Finding[] {
  const clientsCut = spraying.total > spraying.clients.length;
  if (!spraying.rowsCut && !clientsCut && !guessed.candidatesCut && !weekCut) return [];
  const why = [
    ...(spraying.rowsCut ? [`more than ${spraying.rowsRead} addresses failed to sign in in the window and the day before it, and those past them (only the day before first, then the fewest accounts) were not read: a client made of them (an IPv6 host taking a new address of its /64 for every try) may be missing from the spraying addresses`] : []),
    ...(clientsCut ? [`${spraying.total} clients failed on ${options.sprayMin} or more accounts in the window and the day before it and only ${spraying.clients.length} are kept (those that failed in the window first, the most accounts first): sign-ins from the others are not marked as from a spraying address`] : []),
    ...(guessed.candidatesCut ? [`${guessed.total} accounts took ${options.guessMin} or more failed logins and only the ${MAX_GUESSED} with the most are kept; the sign-ins to the others were more than are held to judge them: a browser new to one of them after its failures may be missing`] : []),
    ...(weekCut ? [`more than ${MAX_GUESSED} accounts took ${options.guessMin} or more failed logins over the week before the window, besides those of the day's bar, and only the ${MAX_GUESSED} with the most were judged on that horizon: an account guessed slowly past them may be missing`] : []),
  ];
  const rules = [...(spraying.rowsCut || clientsCut ? ["spraying addresses"] : []), ...(guessed.candidatesCut || weekCut ? ["guessed accounts"] : [])].join(" and ");
  return [{
    id: "logins.analysis-incomplete",
    severity: "high",
    title: `Analysis incomplete: ${rules}, or the sign-ins ${guessed.candidatesCut || weekCut ? "to or from" : "from"} them, may be missing`,
    detail: `The ${rules} rule${rules.includes(" and ") ? "s" : ""} read less than the window held: ${why.join("; and ")}. Waves and sign-ins after failures were judged in full.`,
    evidence: {
      addressRowsCut: spraying.rowsCut, addressRowsRead: spraying.rowsRead, sprayingClients: spraying.total, sprayingClientsKept: spraying.clients.length,
      guessedAccounts: guessed.total, guessedAccountsKept: guessed.total - guessed.notRead, guessedSignInsCut: guessed.candidatesCut, weekAccountsCut: weekCut,
    },
    remediation: "Run the check again over shorter windows (--since, --until), each reading fewer addresses and accounts, with --spray-min and --guess-min lowered in proportion: a slow campaign is spread over them.",
  }];
}

function afterFailuresFinding(list: SignInList, options: LoginsCheckOptions): Finding[] {
  if (list.count === 0) return [];
  const signIns = list.items();
  return [{
    id: "logins.after-failures",
    severity: "high",
    title: `${list.count} sign-in(s) after ${options.streak} or more failed attempts in a row`,
    detail: `The right password after a run of wrong ones may be a guess that worked (the owner was mailed each time): ${SignInList.describe(signIns.slice(0, 10))}${list.count > 10 ? ", …" : ""}.`,
    evidence: { count: list.count, signIns, ...SignInList.others([list], signIns) },
    remediation: REMEDY,
  }];
}
