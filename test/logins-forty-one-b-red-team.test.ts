// Red-team round "forty-one b" on `bulwark check logins`, after 9415611: an hour counts toward its hour of the day's
// usual up to `cap` (--wave-factor × the usual hour), and past it only (a) when its hour of the day was past the cap in
// the older period already, (b) when a 60-minute span touching it reached the bars of the older period's usual
// (barsOf([older])), (c) in the oldest period, when the hour alone held `loud` (max(--wave-min, ⌈factor × cap⌉)) or a
// span touching it reached the oldest's own bars with only such hours past the cap; (d) never before the store holds
// three periods (index.ts Bound, usualOf, barsOf). Bars credit any 60 minutes touching an hour its moving part (waves.ts
// Bars). The attacker guesses passwords over HTTP, knows these rules, and wants a new-browser sign-in in a campaign to
// go unreported (or below high); or honest traffic makes the cron's --fail-on high fire daily. Raw-row tests
// (test/helpers/audit-rows.ts), on SQLite and PostgreSQL alike.
//
// Tried: a trust chain — an hour made past the cap in the oldest period once by rule (c) (a loud burst reported medium
// on a few days) and then ridden by rule (a) in the two later periods with poison under --wave-min (never reported),
// counting the reports it really takes on a mature store, a store 17 days old and --baseline-days 1; the same poison
// without the loud days (control); loud days made of the attacker's own "typos" (failures each followed by the account's
// sign-in from a known browser, left out of the daily run's counts); inflating the moving part of a quiet night hour
// (a few failures a night in a random ten minutes, under the cap) with --wave-min 10; honest shapes: a daily rush of 90
// (between factor × cap and loud), a rush straddling two hours (75 in each, under loud in either), a weekday-only rush
// (5 days of 7).
//
// Found: 2. Both fixed since (index.ts Bound, usualOf, boundedUsual): rule (a) is gone — in every period an hour counts
// past the cap only where it held `loud` on its own or some of its ten minutes were in a wave (findWaves: 60 minutes,
// 6 or 24 hours) against the bars of the period's own usual with only such hours past the cap, or against the older
// period's bars (1: the 85s are no wave by either, so they count as the cap; 2: the rush of 90 is a 6-hour wave by the
// period's own bars, so it counts, and is learned once the three periods hold it); and learning waits for the oldest
// period to hold as many days as an hour needs (3 at the default): the 17-day store's oldest held one.
// 1. A trust chain through rule (a) (index.ts usualOf, `counted`: `(older?.byHourOfDay[hourOfDay] ?? 0) > bound.cap`).
//    Rule (c) lets the oldest period learn an hour from the days it was loud on its own (≥ 100 at the defaults): four
//    days of 98 at 03:00 on a site of 2 an hour make the oldest period's 03:00 100, each day one 60-minute wave reported
//    medium (nothing got in). From then on rule (a) counts every later hour of 03:00 in full, with nothing reported: 85
//    a night for the next 14 days (under --wave-min, and under the 6-hour bar of 100 with the night's 2s beside it) is no
//    wave in any daily run (their chains judge 03:00 by 2: the loud days are left out as a wave's), yet the final run's
//    previous and before periods count it, 03:00's usual becomes 87 and its bars 435 (60 minutes) / 485 (6 hours). A
//    stuffer's 420 at 03:00 with a new browser signed in is in no finding at all. Four medium reports three weeks
//    before, where ADR 0027 promises "three weeks of daily reports" to lift an hour's bar past factor² × the usual
//    hour's. A store 17 days old (its oldest period holding 3 days: median of 3) takes two medium reports; with
//    --baseline-days 1, one, three days before. Once past the cap, the hour is under the periods' standing rule (read,
//    not tested: poison under 5 × the older period's usual is kept and counted), so its bar can then be walked up
//    silently, as ADR 0026 accepts for the whole day; the cap was what stopped that for one hour. Fix: rule (a) only as a
//    precondition, not a licence: an hour of a later period counts past the cap only when it also was a reported wave
//    in its own period (loud on its own, or reached the older period's bars), so lifting an hour takes reported waves in
//    each of the three periods; or bound what (a) admits by the older period's *reported* days (e.g. count past the cap
//    only while at least half the hour's days in the older period were loud by themselves and the later days stay within
//    --wave-factor of their level).
// 2. Honest: a rush of 90 failures at 09:00 daily on a site of 2 an hour is a wave every day, forever — a 6-hour wave
//    (92 + the five 2s beside it = 102 against a bar of 100), high on each day a new phone signs in during it. It is never
//    learned: rule (c) asks the hour alone for `loud` (100), and `reported` (index.ts usualOf) looks only at 60-minute
//    spans (bars.at(1, …)), while the runs reported it over 6 hours. ADR 0027's "reported daily until the three periods
//    hold it, three weeks" is false for any honest rush between factor × cap and loud whose day makes a longer span's bar
//    (here 50 < 90 < 100). Fix: let `reported` (and rule (c)'s own-bars clause) use the 6- and 24-hour spans too: run
//    findWaves over the period's buckets with those bars and count past the cap the hours holding a wave's buckets.
//
// Held (pinned here): the control — the same 14 nights of 85 after 4 quiet nights (no loud day in the oldest) leave
// 03:00 at the cap (10) and the stuffer's 420 is high; the loud days made of the attacker's own corrected "typos" are
// left out of the baseline too (queries.ts failedBefore subtracts typosByBucket), so they lift nothing; a random ten
// minutes of 7 failures a night at 03:00 under the cap raises the moving part, but a 60-minute bar at most to factor ×
// the hour's own usual (moving ≤ 1): with --wave-min 10 the bar touching 03:00 is 25, the stuffer's 50 high (the 6-hour
// bar caps the gain anyway: --wave-min 100 dwarfs any moving part of an hour at most at the cap); a rush straddling
// 08:30–09:30 (75 in each hour, neither loud) is learned in both hours (77 and 77) through the own-bars clause, no wave;
// a weekday-only rush of 150 (5 days of 7) is learned (152) and no day of the week is a wave.
//
// Read and not made tests:
// - Rule (b) judges a later period's day by barsOf([older]) only (one period, its own shares and moving parts), while
//   that day's run judged it by the lower of two periods it read, with a different chain; they differ where the older
//   period alone is lower (a day whose run had a higher usual is "reported" though the run said nothing). Not built
//   into an attack here: the shares of one period differ from two pooled only by what the attacker put in the other.
// - A Monday-only peak (1 day of 7) is never learned: the median of an hour of the day over 7 days. ADR 0026's accepted
//   limit (per hour of the week weighed and left), not new in 9415611. A new store's first three weeks judge a daily
//   rush at the cap (ADR 0027's consequence, as stated).
// - The moving part is built from the `peaks` of every kept day, including days counted at the cap; the usual it
//   multiplies is the bounded one, so it cannot carry a bar past factor × cap.
// - --time-zone: rules (a)–(c) read hours of the day through the same clock as the bars; not attacked again here (red
//   team 41's DST tests stand).
import assert from "node:assert/strict";
import { it } from "node:test";
import { botnet, quietHours as quiet, rawAuditStore, signInRow as signIn, spread, typo, type AuditRow } from "./helpers/audit-rows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { byTime, ids, names, runLogins as run, worst, wavesLine as waves, wonRow as won, burstRows as burst } from "./helpers/logins-reports.ts";
import type { Database } from "../src/store/database.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Midnight UTC, Monday 11 January 2027. */
const T0 = Date.UTC(2027, 0, 11);

/** The daily runs of the days `T0 - k` for k from `from` down to 1: the severities each reported. */
async function dailies(database: Database, from: number, options: { baselineDays?: number } = {}): Promise<string[][]> {
  const out: string[][] = [];
  for (let k = from; k >= 1; k--) out.push((await run(database, T0 - k * DAY, T0 - (k - 1) * DAY, options)).findings.map((f) => f.severity));
  return out;
}

/**
 * A site of 2 failures an hour from `first`; at 03:00 UTC `loud` failures on the days T0 - k for k in `loudDays`, and
 * `quietN` on each day after the last of them up to T0; on T0 a stuffer's `stuffer` at 03:00 with a new browser in it.
 */
async function chain(database: { insert: (rows: AuditRow[]) => Promise<void> }, first: number, loudDays: number[], quietN: number, tag: string, stuffer = 420): Promise<void> {
  const rows: AuditRow[] = [...quiet(first, T0 + DAY)];
  const poison = botnet("p", true);
  for (const k of loudDays) rows.push(...spread(T0 - k * DAY + 3 * HOUR, 98, poison));
  for (let k = Math.min(...loudDays) - 1; k >= 1; k--) rows.push(...spread(T0 - k * DAY + 3 * HOUR, quietN, poison));
  rows.push(...spread(T0 + 3 * HOUR, stuffer, botnet("s")), won(`${tag}won`, T0 + 3 * HOUR + 40 * MINUTE));
  await database.insert(byTime(rows));
}

forEachDialect("check logins, round forty-one b", (dialect) => {
  it("attack: a trust chain — four nights of 98 at 03:00 UTC in the oldest period (each a 60-minute wave, medium), then 14 nights of 85 that no daily run reports, lift 03:00's usual to 87 (bar 435) through rule (a); a stuffer's 420 at 03:00 with a new browser must still be a wave, high (ASVS 6.3.1, 16.3.1)", async () => {
    const store = await rawAuditStore(dialect, T0 - 40 * DAY, "tc");
    await chain(store, T0 - 35 * DAY, [21, 20, 19, 18], 85, "tc");
    // The premise: 21 daily runs, 4 reports, all medium (the loud nights); the 14 nights of 85 are in none.
    const reports = (await dailies(store.database, 21)).filter((s) => s.length > 0);
    assert.deepEqual(reports, [["medium"], ["medium"], ["medium"], ["medium"]]);
    const report = await run(store.database, T0, T0 + DAY);
    assert.ok(report.usualByHourOfDay[3]! <= 10, `03:00's usual ${report.usualByHourOfDay[3]}, cap 10`);
    assert.ok(names(report, "ses_tcwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("attack: the same trust chain on a store 17 days old (its oldest period holds 3 days, a median of 3): two nights of 98 at 03:00 (medium) and 15 of 85 (nothing) lift 03:00 to 87; a stuffer's 420 with a win must be high (ASVS 6.3.1)", async () => {
    const first = T0 - 17 * DAY;
    const store = await rawAuditStore(dialect, first, "yg");
    await chain(store, first, [17, 16], 85, "yg");
    const reports = (await dailies(store.database, 17)).filter((s) => s.length > 0);
    assert.deepEqual(reports, [["medium"], ["medium"]]);
    const report = await run(store.database, T0, T0 + DAY);
    assert.ok(names(report, "ses_ygwon"), `03:00's usual ${report.usualByHourOfDay[3]}: ` + ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("attack: with --baseline-days 1, one night of 98 at 03:00 three days before (medium) and two of 85 (nothing) lift 03:00 to 87; a stuffer's 420 with a win must be high (ASVS 6.3.1)", async () => {
    const store = await rawAuditStore(dialect, T0 - 10 * DAY, "bd1");
    await chain(store, T0 - 6 * DAY, [3], 85, "bd1");
    const reports = (await dailies(store.database, 3, { baselineDays: 1 })).filter((s) => s.length > 0);
    assert.deepEqual(reports, [["medium"]]);
    const report = await run(store.database, T0, T0 + DAY, { baselineDays: 1 });
    assert.ok(names(report, "ses_bd1won"), `03:00's usual ${report.usualByHourOfDay[3]}: ` + ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("held: the control — the same 14 nights of 85 at 03:00 after quiet nights (nothing loud in the oldest period) count at the cap: 03:00's usual 10, the stuffer's 420 with a win is high (ASVS 6.3.1)", async () => {
    const store = await rawAuditStore(dialect, T0 - 40 * DAY, "ctl");
    const rows: AuditRow[] = [...quiet(T0 - 35 * DAY, T0 + DAY)];
    const poison = botnet("p", true);
    for (let k = 14; k >= 1; k--) rows.push(...spread(T0 - k * DAY + 3 * HOUR, 85, poison));
    rows.push(...spread(T0 + 3 * HOUR, 420, botnet("s")), won("ctlwon", T0 + 3 * HOUR + 40 * MINUTE));
    await store.insert(byTime(rows));
    const report = await run(store.database, T0, T0 + DAY);
    assert.ok(report.usualByHourOfDay[3]! <= 10, JSON.stringify(report.usualByHourOfDay));
    assert.ok(names(report, "ses_ctlwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("held: the loud nights made of the attacker's own corrected 'typos' (100 failures on its own account at 03:00, then its sign-in from a known browser, on four nights of the oldest period) are left out of the baseline as of the run: they lift nothing, and after 14 nights of 85 the stuffer's 420 with a win is high (ASVS 6.3.1)", async () => {
    const store = await rawAuditStore(dialect, T0 - 40 * DAY, "tyl");
    const rows: AuditRow[] = [...quiet(T0 - 35 * DAY, T0 + DAY)];
    for (const k of [21, 20, 19, 18]) {
      const at = T0 - k * DAY + 3 * HOUR;
      for (let j = 0; j < 100; j++) rows.push(...typo("usr_attacker", at + j * 3_000, "198.51.100.7", `ses_t${k}_${j}`, 9 * MINUTE - j * 3_000).slice(0, 1));
      rows.push(...typo("usr_attacker", at + 299_000, "198.51.100.7", `ses_t${k}`, 4 * MINUTE).slice(1));
    }
    const poison = botnet("p", true);
    for (let k = 17; k >= 1; k--) rows.push(...spread(T0 - k * DAY + 3 * HOUR, 85, poison));
    rows.push(...spread(T0 + 3 * HOUR, 420, botnet("s")), won("tylwon", T0 + 3 * HOUR + 40 * MINUTE));
    await store.insert(byTime(rows));
    const report = await run(store.database, T0, T0 + DAY);
    assert.ok(report.usualByHourOfDay[3]! <= 10, JSON.stringify(report.usualByHourOfDay));
    assert.ok(names(report, "ses_tylwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("held: 7 failures a night at 03:00 UTC in a random ten minutes (under the cap, never reported) raise 03:00's moving part, but a 60-minute bar touching 03:00 only to factor × its own usual at most: with --wave-min 10, a stuffer's 50 at 03:00 with a win is a wave, high (ASVS 6.3.1)", async () => {
    const store = await rawAuditStore(dialect, T0 - 30 * DAY, "mv");
    const rows: AuditRow[] = [...quiet(T0 - 23 * DAY, T0 + DAY)];
    const poison = botnet("p", true);
    for (let k = 22; k >= 1; k--) rows.push(...burst(T0 - k * DAY + 3 * HOUR + (k % 6) * 10 * MINUTE, 7, poison));
    rows.push(...spread(T0 + 3 * HOUR, 50, botnet("s")), won("mvwon", T0 + 3 * HOUR + 40 * MINUTE));
    await store.insert(byTime(rows));
    const daily = await run(store.database, T0 - DAY, T0, { waveMin: 10 });
    assert.deepEqual(daily.waves, [], waves(daily));
    const report = await run(store.database, T0, T0 + DAY, { waveMin: 10 });
    assert.ok(names(report, "ses_mvwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
    const hourly = report.waves.flatMap((w) => w.bars.filter((b) => b.hours === 1).map((b) => b.at));
    assert.ok(hourly.every((at) => at <= 5 * report.usualByHourOfDay[3]!), waves(report));
  });

  for (const [name, todo, shape] of [
    ["a daily rush of 90 failures at 09:00 UTC (between factor × cap, 50, and loud, 100)", undefined, (day: number, one: (at: number) => AuditRow): AuditRow[] => spread(day + 9 * HOUR, 90, one)],
    ["a daily rush of 150 straddling 08:30–09:30 UTC (75 in each hour, neither loud)", undefined, (day: number, one: (at: number) => AuditRow): AuditRow[] => spread(day + 8.5 * HOUR, 150, one)],
    ["a weekday-only rush of 150 at 09:00 UTC (5 days of 7)", undefined, (day: number, one: (at: number) => AuditRow): AuditRow[] => ((new Date(day).getUTCDay() + 6) % 7 < 5 ? spread(day + 9 * HOUR, 150, one) : [])],
  ] as const) {
    it(`${todo === undefined ? "held" : "honest use"}: ${name} on a site of 2 an hour, five weeks old, with a new phone signing in at 09:20 each day, must be no wave on any day of the fifth week (ASVS 16.3.1)`, todo === undefined ? {} : { todo }, async () => {
      const tag = name.slice(8, 14).replace(/\W/g, "");
      const store = await rawAuditStore(dialect, T0 - 40 * DAY, tag);
      const rows: AuditRow[] = [...quiet(T0 - 35 * DAY, T0 + DAY)];
      const rush = botnet("r", true);
      for (let k = 35; k >= 0; k--) {
        const day = T0 - k * DAY;
        rows.push(...shape(day, rush), signIn(`usr_${tag}${k}`, day + 9 * HOUR + 20 * MINUTE, `2001:db8:78:${k}::1`, { newDevice: true, failuresBefore: 0, session: `ses_${tag}${k}` }));
      }
      await store.insert(byTime(rows));
      for (let k = 6; k >= 0; k--) {
        const report = await run(store.database, T0 - k * DAY, T0 - (k - 1) * DAY);
        assert.deepEqual(report.waves, [], `${new Date(T0 - k * DAY).toISOString()}: ${ids(report)} ${waves(report)} usual 08:00, 09:00 ${JSON.stringify(report.usualByHourOfDay.slice(8, 10))}`);
      }
    });
  }
});
