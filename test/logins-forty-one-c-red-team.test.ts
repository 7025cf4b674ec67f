// Red-team round "forty-one c" on `bulwark check logins`, after e740cc8: an hour counts toward its hour of the day's
// usual up to `cap` (--wave-factor × the usual hour), past it only when the hour held `loud` (max(--wave-min,
// ⌈factor × cap⌉)) on its own, or some of its ten minutes lie in a wave found by findWaves over the period's buckets
// against (i) the bars of the period's own usual with only such loud hours past the cap, or (ii) the older period's
// bars; and only once the oldest period holds minDays days (index.ts Bound, usualOf, boundedUsual, barsOf). The claim:
// no SILENT way lifts an hour's bar past the cap, and no honest daily shape fires high forever. The attacker guesses
// passwords over HTTP, knows these rules and the daily cron's edge (midnight UTC here, `--since`/`--until` days), and
// wants a new-browser sign-in in a campaign unreported. Raw-row tests (test/helpers/audit-rows.ts), SQLite and
// PostgreSQL alike. Red teams 41 and 41b's attacks (trust chains, typo-made loud days, moving parts, straddling and
// weekday rushes) are not repeated.
//
// Tried: the difference between the period walk and the daily runs in WHERE they cut time. The walk (boundedUsual)
// runs findWaves over a whole period's buckets at once, so a span straddling midnight inside the period is seen whole;
// a daily run sees it in two halves: the run of day X ends at midnight (its spans end by 23:50), and the run of day
// X+1 sees the whole span (it counts from 24 hours back) but drops every wave whose buckets all end before its window
// (`waveSpans.filter(...)`, `keptWaves`: "the run before's"), which the run before never saw reach its bar. A 60-minute
// wave marks only the buckets carrying a twelfth of its bar, so a straddling wave's marked buckets can all lie before
// midnight while unmarked filler after it completes the count. Also: the same shape with --baseline-days 1 (the
// periods' edges are the days'); without the filler (control); an honest rush straddling midnight UTC (23:30–00:30,
// 75 on each side, a new phone at 00:10 daily). Measured informally (never asserted): a daily run on these 5-week
// stores takes ~10 ms (23 runs ~0.2 s on SQLite); the period walk's three findWaves passes cost no visible time.
//
// Found after the round, by the session (todo, last test): a learned peak loud in neither of its hours counts as the
// cap in a period's own bars, so poison beside it reaches them with the peak's edge while no daily run reports it
// (07:00 learned as 82 from 80 a day at 07:40–08:00). Open.
// Found: 2. Both fixed since (waves.ts findWaves: each wave's `seen`, the last bucket of the earliest-ending span that
// marked it; index.ts: a wave that ended before the window is the run before's only when that span ended before it
// too): the shape is the next day's run's wave,
// medium (high with a sign-in during it), so the period walk's "reported" is what the runs reported; the lift takes
// the trade-off's reports (test below: 17 or more).
// 1. A silent lift through the daily edge (index.ts boundedUsual: findWaves over the whole period, against the daily
//    runs' per-day cut in checkLogins, `waveSpans` filter / `keptWaves`). Each night, 81 failures at 23:30–24:00 UTC
//    (27 per ten minutes) and 23 at 00:00–00:30 the next day (7, 8, 8 with the site's one honest 00:07 failure: under
//    100/12 per ten minutes, never marked). The run of day X sees 23:00 at 83 (< 100 in 60 minutes, 93 < 100 in 6
//    hours): nothing. The run of day X+1 finds the 60 minutes 23:30–00:30 (106 ≥ 100) but its marked buckets all end at
//    midnight, before its window, with no sign-in in it: dropped as the run before's. No daily run reports anything on
//    23 nights. The period walk finds the same 60 minutes inside each period (6 of 7 nights: only the period's last night
//    is cut) against the period's own bars, so 23:00's 83 is "reported", counts past the cap in all three periods, and
//    23:00's usual becomes 83 (bar 415). A stuffer's 390 at 23:30–24:00 with a new browser signed in is in no finding.
//    Fix: a wave is this run's when a span that reached its bar ends in the window, whatever its marked buckets: judge
//    `waveEnded` (and the filter) by the latest `reached[].last` of the wave, not by `w.last` — then day X+1 reports the
//    straddling wave (medium, high with a win) and the walk's "reported" is true; or, failing that, have the walk cut
//    the period into the runs' days (it cannot know --since), or refuse to count as reported a wave whose reaching
//    spans all cross a midnight (UTC or --time-zone) whose marked buckets lie on one side only.
// 2. The same edge, direct (no learning): a stuffer's 81 at 23:30–24:00 with a new-browser sign-in at 23:45 and 23
//    failures after midnight is a wave (one 48-hour run reports it, high, 106 in the 60 minutes from 23:30 against 100)
//    that neither daily run reports: the first never sees it reach the bar, the second drops it as ended before its
//    window, and its sign-in (before judgedFrom) keeps nothing. Small (the 60 minutes before midnight are under
//    --wave-min), but a wave by the check's own definition, and the mechanism of 1. Same location and fix.
//
// Held (pinned here): without the filler after midnight (the same 81 each night) the walk finds nothing, 23:00 stays at
// the cap (10) and the stuffer's 390 with a win is high; with --baseline-days 1 the periods' edges are the days', so the
// walk cuts the straddling span as the runs do: 23:00 stays at 10, the stuffer high; an honest rush straddling midnight
// (75 in 23:30–24:00 and 75 in 00:00–00:30 daily) is learned in both hours (77, 77) and no day of the fifth week is a
// wave, though a new phone signs in during it daily.
//
// Read and not made tests:
// - The same edge over 6 hours: a 6-hour span's wave runs from its first to its last bucket above twice its usual, so
//   non-hot filler after midnight can complete it too; on a quiet site every bucket with a failure is hot (usual ⅓ a
//   bucket) unless shares concentrate the hour, and --wave-factor 5 needs 5× the usual where non-hot buckets carry
//   under 2×, so it works only where --wave-min dominates the bar. The 60-minute form above is cheaper.
// - Typos: failedBefore always subtracts them; a daily run only once a first pass found a wave. A run without a wave
//   counts the attacker's own corrected typos in full, so that difference makes the runs report more, not less.
// - A cron at another hour than midnight moves the edge; the attacker needs to know it (or try a few hours: off the
//   edge the shape is a wave of 106, reported medium on that day only).
// - --time-zone, --wave-factor 1 or 2, --wave-min 10: not tried in the time box; the edge is the daily run's window,
//   independent of the zone, so finding 1 should hold wherever the run's --since sits at a bucket edge.
import assert from "node:assert/strict";
import { it } from "node:test";
import { botnet, quietHours as quiet, rawAuditStore, signInRow as signIn, type AuditRow } from "./helpers/audit-rows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { byTime, ids, names, runLogins as run, worst, wavesLine as waves, wonRow as won, burstRows as burst } from "./helpers/logins-reports.ts";
import type { Database } from "../src/store/database.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Midnight UTC, Monday 11 January 2027. */
const T0 = Date.UTC(2027, 0, 11);

/**
 * The edge shape of day `day`: `before[i]` failures in the ten minutes from 23:30 + 10i, `after[i]` in those from 00:00
 * + 10i the next day. With the site's honest 23:37 and 00:07 failures, [27, 27, 27] and [7, 8, 8] make 106 in the 60
 * minutes from 23:30 (a wave at --wave-min 100), its buckets after midnight each under 100/12 (never marked).
 */
const edge = (day: number, before: number[], after: number[], one: (at: number) => AuditRow): AuditRow[] => [
  ...before.flatMap((n, i) => burst(day + 23 * HOUR + (30 + 10 * i) * MINUTE, n, one)),
  ...after.flatMap((n, i) => burst(day + DAY + 10 * i * MINUTE, n, one)),
];
const POISON = [27, 27, 27];
const FILL = [7, 8, 8];
/** The daily runs of the days T0 - k, k from `from` down to 1: those that reported anything. */
async function dailies(database: Database, from: number, options: { baselineDays?: number } = {}): Promise<string[]> {
  const out: string[] = [];
  for (let k = from; k >= 1; k--) {
    const r = await run(database, T0 - k * DAY, T0 - (k - 1) * DAY, options);
    if (r.findings.length > 0) out.push(`${new Date(T0 - k * DAY).toISOString().slice(0, 10)} ${ids(r)} ${waves(r)}`);
  }
  return out;
}

/** A site of 2 failures an hour from `first`; the edge shape on the nights T0 - k for k from `nights` down to 1; on T0 a stuffer's 390 at 23:30–24:00 with a win. */
async function edgeStore(dialect: Parameters<Parameters<typeof forEachDialect>[1]>[0], first: number, nights: number, after: number[], tag: string): Promise<Database> {
  const store = await rawAuditStore(dialect, first - DAY, tag);
  const rows: AuditRow[] = [...quiet(first, T0 + 2 * DAY)];
  const poison = botnet("p", true);
  for (let k = nights; k >= 1; k--) rows.push(...edge(T0 - k * DAY, POISON, after, poison));
  rows.push(...edge(T0, [130, 130, 130], [], botnet("s")), won(`${tag}won`, T0 + 23 * HOUR + 45 * MINUTE));
  await store.insert(byTime(rows));
  return store.database;
}

forEachDialect("check logins, round forty-one c", (dialect) => {
  it("attack: 81 failures at 23:30–24:00 UTC and 23 after midnight each night — a 60-minute wave only across the daily edge — must be reported by a daily run each night, so that 23:00's usual is lifted only after the reports the trade-off asks (ASVS 6.3.1, 16.3.1) (was: reported by no daily run on 23 nights, learned as 83 by the period walk, a stuffer's 390 then in no finding)", async () => {
    const database = await edgeStore(dialect, T0 - 30 * DAY, 23, FILL, "edg");
    const reported = await dailies(database, 23);
    // Each night's shape is the next day's run's wave (medium), until the three periods hold it (ADR 0027).
    assert.ok(reported.length >= 17, reported.join("\n"));
    for (const line of reported) assert.match(line, /"logins\.failure-wave","medium"/, line);
  });

  it("attack: a stuffer's 81 at 23:30–24:00 UTC with a new-browser sign-in at 23:45, and 23 failures after midnight — a wave, high, in one run over both days — must be reported high by one of the two daily runs (ASVS 6.3.1, 16.3.1)", async () => {
    const store = await rawAuditStore(dialect, T0 - 31 * DAY, "dir");
    const rows: AuditRow[] = [...quiet(T0 - 30 * DAY, T0 + 2 * DAY)];
    rows.push(...edge(T0 - DAY, POISON, FILL, botnet("s")), won("dirwon", T0 - DAY + 23 * HOUR + 45 * MINUTE));
    await store.insert(byTime(rows));
    // The premise: over both days it is a wave, high (106 in the 60 minutes from 23:30 against 100).
    const both = await run(store.database, T0 - DAY, T0 + DAY);
    assert.ok(names(both, "ses_dirwon"), ids(both) + " " + waves(both));
    const runs = [await run(store.database, T0 - DAY, T0), await run(store.database, T0, T0 + DAY)];
    assert.ok(runs.some((r) => names(r, "ses_dirwon") && worst(r) === "high"), runs.map((r) => ids(r) + " " + waves(r)).join(" | "));
  });

  it("held: the same 81 at 23:30–24:00 each night without the filler after midnight is no wave anywhere: 23:00 stays at the cap (10), the stuffer's 390 with a win is high (ASVS 6.3.1)", async () => {
    const database = await edgeStore(dialect, T0 - 30 * DAY, 23, [], "ctl");
    assert.deepEqual(await dailies(database, 2), []);
    const report = await run(database, T0, T0 + DAY);
    assert.equal(report.usualByHourOfDay[23], 10, JSON.stringify(report.usualByHourOfDay));
    assert.ok(names(report, "ses_ctlwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("held: with --baseline-days 1 the periods' edges are the days', so the walk cuts the straddling span as the daily runs do: after four nights of the edge shape (each reported by the next day's run), 23:00 stays at the cap and the stuffer's 390 with a win is high (ASVS 6.3.1)", async () => {
    const database = await edgeStore(dialect, T0 - 10 * DAY, 4, FILL, "eb1");
    // Each night's shape is the next day's run's wave, medium (red team 41c's fix: the run the span reached its bar in):
    // the runs of the three days after the first night (the fourth night's is the window's run).
    assert.equal((await dailies(database, 4, { baselineDays: 1 })).length, 3);
    const report = await run(database, T0, T0 + DAY, { baselineDays: 1 });
    assert.ok(report.usualByHourOfDay[23]! <= 10, JSON.stringify(report.usualByHourOfDay));
    assert.ok(names(report, "ses_eb1won"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("held: an honest rush straddling midnight UTC (75 at 23:30–24:00, 75 at 00:00–00:30, daily, a new phone at 00:10) on a site of 2 an hour, five weeks old, is learned in both hours and no day of the fifth week is a wave (ASVS 16.3.1)", async () => {
    const store = await rawAuditStore(dialect, T0 - 40 * DAY, "hmr");
    const rows: AuditRow[] = [...quiet(T0 - 35 * DAY, T0 + 2 * DAY)];
    const rush = botnet("r", true);
    for (let k = 35; k >= 0; k--) {
      const day = T0 - k * DAY;
      rows.push(...edge(day - DAY, [25, 25, 25], [25, 25, 25], rush), signIn(`usr_hmr${k}`, day + 10 * MINUTE, `2001:db8:78:${k}::1`, { newDevice: true, failuresBefore: 0, session: `ses_hmr${k}` }));
    }
    await store.insert(byTime(rows));
    for (let k = 6; k >= 0; k--) {
      const report = await run(store.database, T0 - k * DAY, T0 - (k - 1) * DAY);
      assert.deepEqual(report.waves, [], `${new Date(T0 - k * DAY).toISOString()}: ${ids(report)} ${waves(report)}`);
      assert.deepEqual([report.usualByHourOfDay[23], report.usualByHourOfDay[0]], [77, 77]);
    }
  });

  it("attack (found after the round, by the session): beside a learned peak that is loud in neither of its hours (60 at 08:30–09:00 and 60 at 09:00–09:30 daily, learned as 62 and 62), 80 failures at 07:40–08:00 daily for three weeks reach the bars of the period's own usual (where that peak counts only as the cap) with the peak's first ten minutes, and are reported by no daily run (whose bars hold the peak); 07:00's usual must stay at the cap and a stuffer's 390 at 07:00–07:40 with a win must be high (ASVS 6.3.1, 16.3.1)", {
    todo: "finding (session 41): index.ts boundedUsual judges a period's hours by its own bars with only own-loud hours past the cap, so a learned peak that is not loud on its own (a straddle, or a rush reported as a 6-hour wave) counts there as the cap, and 60 minutes holding poison beside it plus the peak's edge reach those bars while the daily runs' bars (the learned peak) are above them: the poisoned hour counts in full, unreported, up to loud. Fix: keep in the own bars the hours the older period learned past the cap (so they raise, never lower, a bar), and keep counting such a peak by its own waves against bars that cap only its own hour",
  }, async () => {
    const store = await rawAuditStore(dialect, T0 - 50 * DAY, "nxt");
    const rows: AuditRow[] = [...quiet(T0 - 45 * DAY, T0 + DAY)];
    const peak = botnet("pk", true);
    const poison = botnet("po", true);
    for (let k = 45; k >= 0; k--) {
      const day = T0 - k * DAY;
      for (const m of [30, 40, 50, 60, 70, 80]) rows.push(...burst(day + 8 * HOUR + m * MINUTE, 20, peak));
      if (k >= 1 && k <= 22) for (const m of [40, 50]) rows.push(...burst(day + 7 * HOUR + m * MINUTE, 40, poison));
    }
    const stuff = botnet("s");
    for (const m of [0, 10, 20]) rows.push(...burst(T0 + 7 * HOUR + m * MINUTE, 130, stuff));
    rows.push(won("nxtwon", T0 + 7 * HOUR + 15 * MINUTE));
    await store.insert(byTime(rows));
    // The premise: the peak is learned before the poison starts, and no daily run while it runs reports a thing.
    assert.deepEqual(await dailies(store.database, 21), []);
    const report = await run(store.database, T0, T0 + DAY);
    assert.ok(report.usualByHourOfDay[7]! <= 10, `07:00's usual ${report.usualByHourOfDay[7]}: ${JSON.stringify(report.usualByHourOfDay)}`);
    assert.ok(names(report, "ses_nxtwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });
});
