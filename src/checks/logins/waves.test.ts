// The bars of check logins' waves, each hour of the day's own (waves.ts), and findWaves against a brute-force walk of
// every span. ASVS 16.3.1 (security events are detected), 6.3.1 (credential stuffing is noticed).
import assert from "node:assert/strict";
import { test } from "node:test";
import { prng as random } from "../../dev/seed.ts";
import type { BucketCount } from "./queries.ts";
import { DayClock } from "./day-clock.ts";
import { Bars, BUCKET_MS, findWaves, WAVE_SPAN_HOURS, type Reached, type WaveSpan } from "./waves.ts";

const HOUR = 3_600_000;
const PER_HOUR = HOUR / BUCKET_MS;
const DAY = 24 * PER_HOUR;
/** Bucket of 00:00 UTC, Monday 11 January 2027. */
const MIDNIGHT = Date.UTC(2027, 0, 11) / BUCKET_MS;
/** 32 an hour from 08:00 to 21:00 UTC, 2 at night. */
const WORKING = Array.from({ length: 24 }, (_, h) => (h >= 8 && h < 21 ? 32 : 2));

const counts = (entries: Array<[number, number]>): Map<number, BucketCount> =>
  new Map(entries.map(([bucket, n]) => [bucket, { bucket, type: "auth.login.failed", n, accounts: n, unknown: 0 }]));

test("bars come from the usual of the hours a span covers: a night hour is judged by the night's usual, a day hour by the day's, a day by all of them", () => {
  const bars = new Bars(WORKING, 5, 100);
  // 60 minutes of the working day: 5 × 32; of the night: 5 × 2 = 10, floored by --wave-min.
  assert.equal(bars.at(1, MIDNIGHT + 10 * PER_HOUR - 1), 160);
  assert.equal(bars.at(1, MIDNIGHT + 3 * PER_HOUR - 1), 100);
  assert.equal(new Bars(WORKING, 5, 1).at(1, MIDNIGHT + 3 * PER_HOUR - 1), 10);
  // A day holds every hour once, wherever it starts: 5 × (13 × 32 + 11 × 2).
  for (const end of [MIDNIGHT, MIDNIGHT + 7, MIDNIGHT + 100, MIDNIGHT + DAY + 55]) assert.equal(bars.at(24, end), 2_190);
  // Six hours from 18:00: 3 × 32 + 3 × 2, times 5.
  assert.equal(bars.at(6, MIDNIGHT + 24 * PER_HOUR - 1), 5 * (3 * 32 + 3 * 2));
  // A span straddling two hours takes each bucket's share: 20:30–21:30 is half 32, half 2 (5 × 17 = 85, at least 1).
  assert.equal(new Bars(WORKING, 5, 1).at(1, MIDNIGHT + 21 * PER_HOUR + 2), 85);
  // A quiet hour counts as 1 (no bar of 0); the usual reported is not floored.
  const quiet = new Bars(Array.from({ length: 24 }, () => 0), 5, 1);
  assert.equal(quiet.at(1, MIDNIGHT), 5);
  assert.equal(quiet.perHour(MIDNIGHT, MIDNIGHT + 5), 0);
  assert.equal(bars.perHour(MIDNIGHT + 20 * PER_HOUR + 3, MIDNIGHT + 21 * PER_HOUR + 2), 17);
  assert.deepEqual(WAVE_SPAN_HOURS.map((hours) => bars.at(hours, MIDNIGHT + (8 + hours) * PER_HOUR - 1)), [160, 960, 2_190]);
  // A fractional factor rounds the bar up to a whole count.
  assert.equal(new Bars(WORKING, 2.5, 1).at(1, MIDNIGHT + 3 * PER_HOUR - 1), 5);
  assert.throws(() => new Bars([1, 2, 3], 5, 100), /24 numbers, not 3/);
});

test("an hour's moving part is credited to any 60 minutes touching that hour, and to none that do not; longer spans are their sums", () => {
  // 09:00's usual of 152 moves within the hour from day to day (a job at a random minute): its moving part 0.8.
  const usual = Array.from({ length: 24 }, (_, h) => (h === 9 ? 152 : 2));
  const moving = Array.from({ length: 24 }, (_, h) => (h === 9 ? 0.8 : 0));
  const bars = new Bars(usual, 5, 1, { moving });
  const plain = new Bars(usual, 5, 1);
  // 08:10–09:10 touches 09:00: at least 5 × 0.8 × 152 (608), where spread evenly it was 5 × (5/6 × 2 + 152 / 6), 135.
  assert.equal(plain.at(1, MIDNIGHT + 9 * PER_HOUR), 135);
  assert.equal(bars.at(1, MIDNIGHT + 9 * PER_HOUR), 608);
  assert.equal(bars.at(1, MIDNIGHT + 10 * PER_HOUR + 4), 608);
  // 07:00–08:00 and 10:10–11:10 do not touch it.
  assert.equal(bars.at(1, MIDNIGHT + 8 * PER_HOUR - 1), 10);
  assert.equal(bars.at(1, MIDNIGHT + 11 * PER_HOUR), plain.at(1, MIDNIGHT + 11 * PER_HOUR));
  assert.equal(bars.at(6, MIDNIGHT + 12 * PER_HOUR), plain.at(6, MIDNIGHT + 12 * PER_HOUR));
  assert.equal(bars.lowest(1), plain.lowest(1));
  assert.throws(() => new Bars(usual, 5, 1, { moving: [1.5, ...moving.slice(1)] }), /moving part/);
});

test("a bucket's hour of the day is UTC's, before 1970 too", () => {
  const bars = new Bars(WORKING, 5, 1);
  const before1970 = Date.UTC(1969, 6, 20, 9) / BUCKET_MS;
  assert.equal(bars.at(1, before1970 + PER_HOUR - 1), 160);
  assert.equal(bars.usualOf(before1970), 32 / PER_HOUR);
});

test("attack: 80 failures in the last 10 minutes of the working day, the night after quiet: the 60 minutes from them are mostly night, against a bar of 55, and are a wave (the spans ending at the empty buckets after a full one are judged too) (ASVS 6.3.1)", () => {
  const usual = Array.from({ length: 24 }, (_, h) => (h >= 8 && h < 21 ? 60 : 0));
  const bars = new Bars(usual, 5, 1);
  const last = MIDNIGHT + 21 * PER_HOUR - 1;
  const waves = findWaves(counts([[last, 80]]), MIDNIGHT, MIDNIGHT + DAY, bars);
  assert.deepEqual(waves.map((w) => [w.first, w.last]), [[last, last]]);
  // The wave quotes the span that found it: the 60 minutes from the burst, 80 against 55.
  assert.deepEqual(waves[0]!.reached, [{ hours: 1, at: 55, failed: 80, first: last, last: last + PER_HOUR - 1 }]);
  // Its own hour's bar (300) alone never saw it.
  assert.equal(bars.at(1, last), 300);
  // 50 is under the night-side bar too: no wave.
  assert.deepEqual(findWaves(counts([[last, 50]]), MIDNIGHT, MIDNIGHT + DAY, bars), []);
});

/** Every span of every length, ending at every bucket from `first` to past `end`: the rule findWaves must keep. */
function bruteForce(byBucket: Map<number, BucketCount>, first: number, end: number, bars: Bars): WaveSpan[] {
  const hot = new Set<number>();
  const hourly = new Set<number>();
  // Per bucket and span length, the lowest bar reached by a span marking it (on a tie the most failures, then the first).
  const lower = (r: Reached, than: Reached | undefined): boolean => than === undefined || r.at < than.at || (r.at === than.at && r.failed > than.failed);
  const why = new Map<string, Reached>();
  const seen = new Map<number, number>();
  const because = (b: number, r: Reached): void => {
    seen.set(b, Math.min(seen.get(b) ?? r.last, r.last));
    if (lower(r, why.get(`${b}/${r.hours}`))) why.set(`${b}/${r.hours}`, r);
  };
  for (const hours of WAVE_SPAN_HOURS) {
    const buckets = hours * PER_HOUR;
    const n = (b: number): number => (b < first || b >= end ? 0 : hours > 1 && hourly.has(b) ? 0 : (byBucket.get(b)?.n ?? 0));
    for (let e = first; e < end + buckets; e++) {
      let sum = 0;
      for (let b = e - buckets + 1; b <= e; b++) sum += n(b);
      const at = bars.at(hours, e);
      if (sum === 0 || sum < at) continue;
      const inSpan = Array.from({ length: buckets }, (_, i) => e - buckets + 1 + i).filter((b) => n(b) > 0);
      const r: Reached = { hours, at, failed: sum, first: e - buckets + 1, last: e };
      if (hours === 1) {
        for (const b of inSpan) {
          if (n(b) * 2 * buckets < at) continue;
          hourly.add(b);
          because(b, r);
        }
        continue;
      }
      const above = inSpan.filter((b) => n(b) >= Math.max(1, 2 * bars.usualOf(b)));
      if (above.length > 0) {
        for (let x = above[0]!; x <= above.at(-1)!; x++) {
          hot.add(x);
          because(x, r);
        }
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
  }
  for (const span of spans) {
    for (const hours of WAVE_SPAN_HOURS) {
      let lowest: Reached | undefined;
      for (let b = span.first; b <= span.last; b++) {
        const r = why.get(`${b}/${hours}`);
        if (r !== undefined && lower(r, lowest)) lowest = r;
      }
      if (lowest !== undefined) span.reached.push(lowest);
    }
  }
  return spans;
}

/** Daylight-saving changes in 2027 (bucket numbers) of zones with whole-hour, half-hour and odd offsets, and a fixed offset. */
const CHANGES: Array<[string, number]> = [
  ["Europe/Berlin", Date.UTC(2027, 2, 28, 1) / BUCKET_MS], ["Europe/Berlin", Date.UTC(2027, 9, 31, 1) / BUCKET_MS],
  ["America/St_Johns", Date.UTC(2027, 2, 14, 5, 30) / BUCKET_MS], ["America/St_Johns", Date.UTC(2027, 10, 7, 4, 30) / BUCKET_MS],
  ["Australia/Lord_Howe", Date.UTC(2027, 3, 3, 15) / BUCKET_MS], ["Asia/Kathmandu", Date.UTC(2027, 5, 1) / BUCKET_MS], ["+05:30", Date.UTC(2027, 5, 1) / BUCKET_MS],
];

/** Random shares of each hour's usual among its ten minutes (some hours all in one, some even). */
const randomShares = (next: () => number): number[] =>
  Array.from({ length: 24 }).flatMap(() => {
    const weights = next() < 0.3 ? [1, 0, 0, 0, 0, 0].sort(() => next() - 0.5) : Array.from({ length: PER_HOUR }, () => next());
    const sum = weights.reduce((a, b) => a + b, 0);
    return weights.map((w) => w / sum);
  });

test("findWaves finds what a walk of every span of every length, ending at every bucket, finds: 300 random days of failures against random usual hours (a third with random shares within the hours, in a time zone, across its daylight-saving change)", () => {
  let waves = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const next = random(seed);
    const usual = Array.from({ length: 24 }, () => Math.floor(next() ** 3 * 80));
    const change = seed % 3 === 0 ? CHANGES[Math.floor(next() * CHANGES.length)]! : null;
    const clock = new DayClock(change?.[0] ?? "UTC");
    const factor = 1 + Math.floor(next() * 8);
    const min = 1 + Math.floor(next() * 120);
    const shares = change === null ? undefined : randomShares(next);
    const bars = new Bars(usual, factor, min, { shares, clock });
    const first = change === null ? MIDNIGHT + Math.floor(next() * DAY) : change[1] - Math.floor(next() * DAY);
    if (shares !== undefined) {
      // Each bar is its buckets' usual summed one by one at their places in the zone's day (the offset changing within
      // some spans), and never under the lowest bar its length is said to have.
      for (const hours of WAVE_SPAN_HOURS) {
        for (let e = first; e < first + 2 * DAY; e += 1 + Math.floor(next() * 5)) {
          let worth = 0;
          for (let b = e - hours * PER_HOUR + 1; b <= e; b++) worth += Math.max(usual[Math.floor(clock.placeOf(b) / PER_HOUR)]!, 1) * shares[clock.placeOf(b)]!;
          assert.equal(bars.at(hours, e), Math.max(min, Math.ceil(factor * worth - 1e-9)), `seed ${seed}, ${change![0]}, ${hours} h to ${e}`);
          assert.ok(bars.at(hours, e) >= bars.lowest(hours), `seed ${seed}: under the lowest`);
        }
      }
    }
    const end = first + DAY + Math.floor(next() * 2 * DAY);
    const entries: Array<[number, number]> = [];
    const density = next();
    for (let b = first; b < end; b++) if (next() < density * 0.3) entries.push([b, 1 + Math.floor(next() ** 4 * 150)]);
    const byBucket = counts(entries);
    const found = findWaves(byBucket, first, end, bars);
    assert.deepEqual(found, bruteForce(byBucket, first, end, bars), `seed ${seed}`);
    // What a wave quotes is a span that reached its bar, of the length it says, and holding some of the wave.
    for (const w of found) {
      assert.ok(w.reached.length > 0, `seed ${seed}: a wave without a reason`);
      for (const r of w.reached) {
        assert.ok(r.failed >= r.at && r.last - r.first + 1 === r.hours * PER_HOUR && r.first <= w.last && r.last >= w.first, `seed ${seed}: ${JSON.stringify(r)} for ${w.first}..${w.last}`);
      }
    }
    waves += found.length;
  }
  // The cases are not all quiet nor all one wave.
  assert.ok(waves > 100, `${waves} waves in 300 cases`);
});
