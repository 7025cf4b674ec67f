// Red-team round "forty-one" on `bulwark check logins`, after 5fb8ecf: an hour counts toward its hour of the day's usual
// past `cap` (--wave-factor × the usual hour) only when some 60 minutes touching it held `loud` failures (index.ts
// Bound, usualOf); each ten minutes of the day has its share of its hour's usual (index.ts sharesOf, waves.ts Bars);
// --time-zone reads the hours of the day in the site's time (day-clock.ts DayClock). The attacker guesses passwords over
// HTTP, knows these rules, and wants a guess that worked to go unreported (or below high), or honest traffic to make
// the cron's --fail-on high fire daily until it is switched off. Raw-row tests (test/helpers/audit-rows.ts), on SQLite
// and PostgreSQL alike.
//
// Tried: abusing `loud` — a learned honest peak next to a poisoned hour, and a cheap reported burst of the attacker's
// own touching it (is the daily report medium only? does it still take three periods?); a young store (younger than one
// period); a peak whose ten minutes move within its hour (shares pooled over days); the autumn DST change's repeated hour
// with --time-zone (a stuffer in the second 02:00, and across both); a fixed offset zone that is not a whole number of
// ten minutes (+05:45); --since 999999 weeks with a zone across both DST changes; the report's usualByHourOfDay,
// usualByTenMinutes, timeZone and waves[].bars in each case.
//
// Found: 3. All fixed since (index.ts Bound and usualOf, waves.ts Bars' moving part): 1 (an hour counts past the cap
// only where a 60-minute span touching it reached the bars of the older period's usual — for the oldest, where the
// hour was a wave on its own, or reached its own bars with only such hours past the cap — or its hour of the day was
// past the cap already in the older period: a learned peak's 60 minutes are under its learned bar, no reported wave
// for the hour beside it, and the poison at 08:00 is now a 6-hour wave, medium, on each of its days); 2 (nothing
// counts past the cap until the store holds all three periods); 3 (the part of an hour's usual whose ten minutes move
// from day to day — the typical day's busiest ten minutes' part beyond the largest pooled share — is credited to any
// 60 minutes touching that hour).
// 1. `loud` is not "a wave its day's run reported" (index.ts usualOf, loudTouching): it is any 60 minutes holding
//    max(--wave-min, factor x cap) failures, and once an honest peak is learned (a rush of 150 at 09:00 on a site of 2 an
//    hour: usual 152, its bar 760) it is loud every day and reported never. Every hour a span from it touches (08:00,
//    09:00, 10:00) then counts in full: 90 failures at 08:00–08:30 daily for three weeks, no run reporting a thing,
//    make 08:00's usual 92 (cap 10) and its bar 460; a stuffer's 420 there with a win is in no finding. Without the rush
//    the same poison counts as the cap (held). The same holds wherever a 60-minute bar exceeds loud: a span across an
//    hour's edge whose two hours' shares peak at that edge is credited up to both hours' usual (2 x loud), so the
//    comment's "no bar of 60 minutes is above loud" is false with shares too. And 08:00's usual of 92 lets the next
//    three weeks' poison run at 5 x 92, unreported.
// 2. A store younger than one period has no older period: its `before` period keeps every hour, and a loud hour counts
//    in full. A burst of 400 at 03:00 on its first three days — three medium waves, nothing got in, not high — makes
//    03:00's usual 402 (bar 2,010) on day four; a stuffer's 1,800 there with a win is in no finding. The claim "three
//    weeks of daily reports" is three days of medium ones (red team 40's finding 4, a young store's poisoned hour,
//    back past the cap by being loud).
// 3. Honest: a daily job of 150 failures in one ten minutes of 09:00, a different ten minutes each day (a random start
//    in the hour, or one a minute early into 08:50), spreads 09:00's usual over its six ten minutes (sharesOf pools the
//    days: 09:00–09:10's part 22 of 152); on a day it falls at the hour's edge, 08:10–09:10's bar is 118 against its
//    151, a wave, high with the new phone in it — about one day in three. 5fb8ecf fixed only the peak that keeps its ten
//    minutes (red team 40's finding 6).
//
// Held (pinned here): the same three weeks of poison without a learned peak beside it count as the cap (10), the
// stuffer a wave, high; a burst of 300 at 03:00 daily for two weeks on a mature store (a medium wave each day) lifts
// nothing — the oldest period's quiet 03:00 leaves both later periods' days out — and the next day's 300 with a win is
// high (it does take all three periods); with --time-zone Europe/Berlin, stuffers in the second 02:00 of the autumn
// change (130) and across both 02:00s (75 each, a 6-hour wave) are found high against the night's usual; +05:45 is
// reported as "+05:45", a local 09:00 rush learned, a local night stuffer high; --since 999999 weeks with
// America/New_York over a sparse year finds the one stuffer across the spring change, high.
//
// Read and not made tests:
// - +05:45 is read as +05:40 (day-clock.ts, rounded down: buckets are UTC's ten minutes), so 03:10–03:20 UTC is 08:50
//   local and 08:00's usual holds five minutes of a 09:00 rush (14, not 2): the hours are the zone's to ten minutes,
//   consistently in the periods and the bars; not exploitable, but the report says only "+05:45".
// - Performance, measured informally (never asserted): a store with a failure every ten minutes for two years plus a
//   burst every 370 minutes, --since 999999 weeks, took 3.7 s in UTC, 3.7 s in America/New_York, 4.1 s at +05:45
//   (--baseline-days 7; 3.3–4.6 s at 365); a day's run 22–29 ms (350–530 ms at --baseline-days 365). The zone adds a
//   few percent: DayClock reads Intl once a UTC day, and per bucket only on the days an offset changes.
// - Invalid zones via the CLI ("Mars/Olympus", "UTC+2") are refused with exit 2 by test/check-logins.test.ts; names
//   over 64 characters are refused by canonicalZone; "-23:59" is taken as -144 buckets, a whole day, i.e. UTC's hours
//   (correct to the ten minutes). Dates before year 1 read Intl's era-less year, off by whole years, so the place in
//   the day is still right.
// - --baseline-days 1 and 2: the three periods are three (or six) days, the loud rule lifts an hour after that many
//   days of reported waves; proportional to the operator's choice, as the claim says.
// - A site that sets --time-zone for its users still has UTC cron jobs: one moves an hour at each DST change in the
//   zone's hours, as a local rush did in UTC's (one zone for both; no regression from the UTC default).
import assert from "node:assert/strict";
import { it } from "node:test";
import { botnet, quietHours as quiet, rawAuditStore, signInRow as signIn, spread, type AuditRow } from "./helpers/audit-rows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { byTime, ids, names, runLogins as run, worst, wavesLine as waves, wonRow as won, burstRows as burst } from "./helpers/logins-reports.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Midnight UTC, Monday 11 January 2027. */
const T0 = Date.UTC(2027, 0, 11);
/** Europe/Berlin goes back to winter time at 01:00 UTC on Sunday 31 October 2027: 02:00–03:00 local comes twice. */
const AUTUMN = Date.UTC(2027, 9, 31);


forEachDialect("check logins, round forty-one", (dialect) => {
  it("attack: an honest daily rush learned as its hour's usual (150 at 09:00 UTC, nights 2) makes the hour before it 'loud' every day, so 78 failures at 08:00–08:30 daily for three weeks — no run reports a thing — lift 08:00's usual past the cap (10, to 80 under 5fb8ecf); a stuffer then running 390 at 08:00–08:30 with a win must still be a wave, high (ASVS 6.3.1, 16.3.1)", async () => {
    const start = T0;
    const { database, insert } = await rawAuditStore(dialect, start - 25 * DAY, "nbr");
    const rows: AuditRow[] = [...quiet(start - 22 * DAY, start + DAY)];
    const rush = botnet("r", true);
    const poison = botnet("p", true);
    for (let day = start - 22 * DAY; day <= start; day += DAY) rows.push(...spread(day + 9 * HOUR, 150, rush));
    for (let day = start - 22 * DAY; day < start; day += DAY) for (const m of [0, 10, 20]) rows.push(...burst(day + 8 * HOUR + m * MINUTE, 26, poison));
    const stuff = botnet("s");
    for (const m of [0, 10, 20]) rows.push(...burst(start + 8 * HOUR + m * MINUTE, 130, stuff));
    rows.push(won("nbrwon", start + 8 * HOUR + 15 * MINUTE));
    await insert(byTime(rows));
    // The premise: once the rush is learned (the store three periods old), the poison's days are in no report (80 in 60
    // minutes, 90 in 6 hours).
    for (const day of [start - 2 * DAY, start - DAY]) {
      const daily = await run(database, day, day + DAY);
      assert.deepEqual(daily.findings.map((f) => f.id), [], new Date(day).toISOString() + ": " + waves(daily));
    }
    const report = await run(database, start, start + DAY);
    assert.ok(names(report, "ses_nbrwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
    assert.ok(report.usualByHourOfDay[8]! <= 10, `08:00's usual ${report.usualByHourOfDay[8]}, cap 10: ${JSON.stringify(report.usualByHourOfDay)}`);
  });

  it("held: the same three weeks of 78 at 08:00–08:30 on the same site without the rush next to it count as the cap, 10: the stuffer's 390 is a wave and its win high (ASVS 6.3.1)", async () => {
    const start = T0;
    const { database, insert } = await rawAuditStore(dialect, start - 25 * DAY, "nbr0");
    const rows: AuditRow[] = [...quiet(start - 22 * DAY, start + DAY)];
    const poison = botnet("p", true);
    for (let day = start - 22 * DAY; day < start; day += DAY) for (const m of [0, 10, 20]) rows.push(...burst(day + 8 * HOUR + m * MINUTE, 26, poison));
    const stuff = botnet("s");
    for (const m of [0, 10, 20]) rows.push(...burst(start + 8 * HOUR + m * MINUTE, 130, stuff));
    rows.push(won("nbr0won", start + 8 * HOUR + 15 * MINUTE));
    await insert(byTime(rows));
    const report = await run(database, start, start + DAY);
    assert.equal(report.usualByHourOfDay[8], 10, JSON.stringify(report.usualByHourOfDay));
    assert.ok(names(report, "ses_nbr0won"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("held, the standing trade-off (ADR 0027): a daily rise of 90 at 08:00–08:30 on a quiet site is a wave every day — reported, medium — until all three periods hold it (17 days on a new store: two periods and three days), then 08:00's usual (ASVS 16.3.1)", async () => {
    const start = T0;
    const { database, insert } = await rawAuditStore(dialect, start - 25 * DAY, "rise");
    const rows: AuditRow[] = [...quiet(start - 22 * DAY, start + DAY)];
    const rise = botnet("p", true);
    for (let day = start - 22 * DAY; day < start; day += DAY) for (const m of [0, 10, 20]) rows.push(...burst(day + 8 * HOUR + m * MINUTE, 30, rise));
    await insert(byTime(rows));
    // Reported every day until the oldest period holds three of its days (the store 2 periods and 3 days old).
    const reported: string[] = [];
    for (let day = start - 22 * DAY; day < start; day += DAY) {
      const daily = await run(database, day, day + DAY);
      const eight = new Date(day + 8 * HOUR + 15 * MINUTE).toISOString();
      if (!daily.waves.some((w) => w.from <= eight && eight < w.to)) break;
      assert.equal(worst(daily), "medium", ids(daily));
      reported.push(new Date(day).toISOString().slice(0, 10));
    }
    assert.equal(reported.length, 17, reported.join(" "));
    const report = await run(database, start, start + DAY);
    assert.equal(report.usualByHourOfDay[8], 92, JSON.stringify(report.usualByHourOfDay));
  });

  it("attack: a store four days old — a burst of 400 at 03:00 UTC on its first three days, each a wave reported medium (nothing got in), not high — makes 03:00's usual 402 (its own median, loud each day); a stuffer running 1,800 at 03:00 on day four with a win must still be a wave, high (ASVS 6.3.1) (the claim: past the cap only after the three periods hold it, three weeks of daily reports)", async () => {
    const first = T0 - 3 * DAY;
    const { database, insert } = await rawAuditStore(dialect, first, "yng");
    const rows: AuditRow[] = [...quiet(first, T0 + DAY)];
    const poison = botnet("p", true);
    for (const day of [first, first + DAY, first + 2 * DAY]) rows.push(...spread(day + 3 * HOUR, 400, poison));
    rows.push(...spread(T0 + 3 * HOUR, 1800, botnet("s")), won("yngwon", T0 + 3 * HOUR + 40 * MINUTE));
    await insert(byTime(rows));
    // The premise: each poisoned day's run reports a wave, medium only.
    for (const day of [first, first + DAY, first + 2 * DAY]) {
      const daily = await run(database, day, day + DAY);
      assert.deepEqual(daily.findings.map((f) => [f.id, f.severity]), [["logins.failure-wave", "medium"]], new Date(day).toISOString() + ": " + waves(daily));
    }
    const report = await run(database, T0, T0 + DAY);
    assert.ok(names(report, "ses_yngwon"), `03:00's usual ${report.usualByHourOfDay[3]}: ` + ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("held: on a mature store, a burst of 300 at 03:00 UTC daily for two weeks (each day a medium wave) lifts nothing: the oldest period's quiet 03:00 leaves the two later periods' 302s out as a wave's, and 300 at 03:00 the next day with a win is a wave, high (ASVS 6.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 25 * DAY, "two");
    const rows: AuditRow[] = [...quiet(T0 - 22 * DAY, T0 + DAY)];
    const poison = botnet("p", true);
    for (let day = T0 - 14 * DAY; day < T0; day += DAY) rows.push(...spread(day + 3 * HOUR, 300, poison));
    rows.push(...spread(T0 + 3 * HOUR, 300, botnet("s")), won("twowon", T0 + 3 * HOUR + 40 * MINUTE));
    await insert(byTime(rows));
    const daily = await run(database, T0 - DAY, T0);
    assert.deepEqual(daily.findings.map((f) => [f.id, f.severity]), [["logins.failure-wave", "medium"]], waves(daily));
    const report = await run(database, T0, T0 + DAY);
    assert.equal(report.usualByHourOfDay[3], 2, JSON.stringify(report.usualByHourOfDay));
    assert.ok(names(report, "ses_twowon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("honest use: a daily job whose 150 failures fall in one ten minutes of 09:00 UTC, a different ten minutes each day (a random start within the hour), with a new phone among them, must not be a wave, high, on a day it falls at 09:00–09:10 (ASVS 16.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 25 * DAY, "jit");
    const rows: AuditRow[] = [...quiet(T0 - 22 * DAY, T0 + DAY)];
    const job = botnet("j", true);
    for (let k = 0; k <= 22; k++) {
      const day = T0 - k * DAY;
      const at = day + 9 * HOUR + (k % 6) * 10 * MINUTE;
      rows.push(...burst(at, 150, job), signIn(`usr_jit${k}`, at + 5 * MINUTE, `2001:db8:77:${k}::1`, { newDevice: true, failuresBefore: 0, session: `ses_jit${k}` }));
    }
    await insert(byTime(rows));
    // Held: days it falls mid-hour (09:20, 09:30) are no wave.
    for (const k of [2, 3]) {
      const mid = await run(database, T0 - k * DAY, T0 - (k - 1) * DAY);
      assert.deepEqual(mid.waves, [], waves(mid));
    }
    const report = await run(database, T0, T0 + DAY);
    assert.deepEqual(report.waves.map((w) => [w.from, w.failed]), [], `${waves(report)}; by ten minutes ${JSON.stringify(report.usualByTenMinutes.slice(48, 66))}`);
    assert.notEqual(worst(report), "high", ids(report));
  });

  it("held: with --time-zone Europe/Berlin, stuffers on the night the clocks go back — 130 failures in the second 02:00–03:00 local (01:00–02:00 UTC) with a win, and 150 across both 02:00s (00:00–02:00 UTC) with another — are waves, high, judged by the night's usual (ASVS 6.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, AUTUMN - 25 * DAY, "fall");
    const rows: AuditRow[] = [...quiet(AUTUMN - 22 * DAY, AUTUMN + DAY)];
    rows.push(...spread(AUTUMN + HOUR, 130, botnet("s")), won("fallwon", AUTUMN + HOUR + 40 * MINUTE));
    const other = [...quiet(AUTUMN + 7 * DAY - 22 * DAY, AUTUMN + 8 * DAY)].filter((r) => r.at >= AUTUMN + DAY);
    rows.push(...other);
    await insert(byTime(rows));
    const report = await run(database, AUTUMN, AUTUMN + DAY, { timeZone: "Europe/Berlin" });
    assert.equal(report.timeZone, "Europe/Berlin");
    assert.equal(report.usualByHourOfDay[2], 2, JSON.stringify(report.usualByHourOfDay));
    assert.ok(names(report, "ses_fallwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
    assert.ok(report.waves.every((w) => w.usualFailedPerHour <= 2), waves(report));
  });

  it("held: the two 02:00s of the autumn change both held by one stuffer (75 in each, 00:00–02:00 UTC), with a win, are a 6-hour wave with --time-zone Europe/Berlin, high (ASVS 6.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, AUTUMN - 25 * DAY, "fall2");
    const rows: AuditRow[] = [...quiet(AUTUMN - 22 * DAY, AUTUMN + DAY)];
    const stuff = botnet("s");
    rows.push(...spread(AUTUMN, 75, stuff), ...spread(AUTUMN + HOUR, 75, stuff), won("fall2won", AUTUMN + 50 * MINUTE));
    await insert(byTime(rows));
    const report = await run(database, AUTUMN, AUTUMN + DAY, { timeZone: "Europe/Berlin" });
    assert.ok(names(report, "ses_fall2won"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("held: --time-zone +05:45 (Nepal's fixed offset, read as +05:40: buckets are UTC's ten minutes) learns a rush at 09:00 local (03:15 UTC) as the usual, no wave, and a stuffer at 02:00 local with a win is a wave, high (ASVS 6.3.1, 16.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 25 * DAY, "npt");
    const rows: AuditRow[] = [...quiet(T0 - 22 * DAY, T0 + DAY)];
    const rush = botnet("r", true);
    for (let day = T0 - 22 * DAY; day <= T0; day += DAY) rows.push(...spread(day + 3 * HOUR + 15 * MINUTE, 150, rush));
    // 02:00 local is 20:15 UTC the day before: on the window's day, 20:15 UTC.
    rows.push(...spread(T0 + 20 * HOUR + 15 * MINUTE, 140, botnet("s")), won("nptwon", T0 + 20 * HOUR + 45 * MINUTE));
    await insert(byTime(rows));
    const report = await run(database, T0, T0 + DAY, { timeZone: "+05:45" });
    assert.equal(report.timeZone, "+05:45");
    assert.ok(names(report, "ses_nptwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
    // The rush (03:15–04:15 UTC) is no wave; the stuffer is the one wave. (03:10–03:20 UTC is read as 08:50 local, so
    // 08:00's usual holds five of the rush's minutes: 14, not 2 — the zone's hours, to ten minutes.)
    assert.deepEqual(report.waves.map((w) => w.from.slice(11, 13)), ["20"], waves(report) + JSON.stringify(report.usualByHourOfDay));
    // 09:00 holds the rush less its first five minutes (140); 08:00's five minutes of it (14 in all) count at the cap,
    // 10: no reported wave touched 08:00 (the 60 minutes holding the rush are under its learned bar).
    assert.deepEqual([report.usualByHourOfDay[8], report.usualByHourOfDay[9]], [10, 140], JSON.stringify(report.usualByHourOfDay));
  });

  it("held: --since 999999 weeks with --time-zone America/New_York over a year of sparse failures (one every 143 minutes, both DST changes) finds the one stuffing hour, across the spring change (06:30–07:30 UTC on 14 March 2027, 150 failures), and its win, high (ASVS 6.3.1)", async () => {
    const spring = Date.UTC(2027, 2, 14);
    const { database, insert } = await rawAuditStore(dialect, spring - 400 * DAY, "long");
    const rows: AuditRow[] = [];
    const sparse = botnet("q", true);
    for (let at = spring - 360 * DAY; at < spring + 2 * DAY; at += 143 * MINUTE) rows.push(sparse(at));
    const stuff = botnet("s");
    for (let k = 0; k < 150; k++) rows.push(stuff(spring + 6.5 * HOUR + Math.floor((k * HOUR) / 150)));
    rows.push(won("longwon", spring + 7 * HOUR + 5 * MINUTE));
    await insert(byTime(rows));
    const until = spring + 2 * DAY;
    const report = await run(database, until - 999_999 * 7 * DAY, until, { timeZone: "America/New_York" });
    assert.equal(report.timeZone, "America/New_York");
    assert.deepEqual(report.waves.map((w) => w.failed >= 150), [true], waves(report));
    assert.ok(names(report, "ses_longwon"), ids(report));
    assert.equal(worst(report), "high");
  });
});
