// Honest daily peaks and `bulwark check logins`: each hour of the day has its own usual (ADR 0026), learned from the
// baseline periods. Red team 40 left two honest shapes misjudged, and its own fix (no hour's usual above --wave-factor
// times the usual hour) added a third: a quiet site's one busy hour was judged at that cap for good. Fixed here
// (index.ts Bound and sharesOf, waves.ts Bars' shares, day-clock.ts), each beside the attack the old rule stopped:
// - an hour counts past the cap only when 60 minutes touching it were a wave its day's run reported: a rush of 120
//   an hour is a wave on its first days and the usual once the three periods hold it; 85 a day at 03:00, under
//   --wave-min and never reported, still lifts nothing (test/logins-forty-red-team.test.ts);
// - a peak always in the same ten minutes is judged by those ten minutes' part of the hour's usual
//   (test/logins-forty-red-team.test.ts, "a short daily peak");
// - a peak that keeps local time keeps its hour through a daylight-saving change with --time-zone.
// On SQLite and PostgreSQL alike; raw audit rows (test/helpers/audit-rows.ts).
import assert from "node:assert/strict";
import { it } from "node:test";
import type { LoginsReport } from "../src/checks/logins/index.ts";
import { botnet, quietHours as quiet, rawAuditStore, signInRow as signIn, spread, type AuditRow } from "./helpers/audit-rows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { byTime, ids, names, runLogins as run, worst } from "./helpers/logins-reports.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Europe/Berlin moves to summer time at 01:00 UTC on Sunday 28 March 2027, back at 01:00 UTC on 31 October. */
const SPRING = Date.UTC(2027, 2, 28);
const AUTUMN = Date.UTC(2027, 9, 31);
const BERLIN = { timeZone: "Europe/Berlin" };

const waves = (r: LoginsReport): string => JSON.stringify(r.waves.map((w) => [w.from, w.to, w.failed, w.bars.map((b) => b.at)]));
const noWaves = (r: LoginsReport): void => {
  assert.deepEqual(r.waves.map((w) => [w.from, w.failed]), [], `${r.window.since}: ${waves(r)} by hour ${JSON.stringify(r.usualByHourOfDay)}`);
  assert.notEqual(worst(r), "high", ids(r));
};
/** A sign-in from a browser new to its account, no failure before it. */
const won = (tag: string, at: number): AuditRow => signIn(`usr_${tag}`, at, "172.30.9.9", { newDevice: true, failuresBefore: 0, session: `ses_${tag}` });

/**
 * A quiet site (2 failures an hour) whose users rush in at 08:00 local time, Berlin's: 120 failures in that hour and two
 * phones new to their accounts, every day from `from` to `to` (midnights UTC); `utcHour(day)` is when that is in UTC.
 */
function rushSite(from: number, to: number, utcHour: (day: number) => number, tag: string): AuditRow[] {
  const rows: AuditRow[] = [...quiet(from, to + DAY)];
  const rush = botnet(tag, true);
  for (let day = from, i = 0; day <= to; day += DAY, i++) {
    const at = day + utcHour(day) * HOUR;
    rows.push(...spread(at, 120, rush));
    rows.push(...[10, 40].map((m, k) => signIn(`usr_${tag}${i}_${k}`, at + m * MINUTE, `2001:db8:79:${i}::${k + 1}`, { newDevice: true, failuresBefore: 0, session: `ses_${tag}${i}_${k}` })));
  }
  return rows;
}

forEachDialect("check logins, daily peaks", (dialect) => {
  it("honest use: a quiet site's one busy hour (120 failures at 07:00 UTC daily, nights 2) is a wave on its first days — reported, its new phones high — and, once the three periods hold it, the usual: no wave, nothing high (ASVS 16.3.1) (was: judged at --wave-factor times the usual hour, 10, a wave every day for good)", async () => {
    const start = Date.UTC(2027, 0, 4);
    const { database, insert } = await rawAuditStore(dialect, start - 3 * DAY, "busy");
    await insert(byTime(rushSite(start - 21 * DAY, start + 3 * DAY, () => 7, "b")));
    const first = await run(database, start - 21 * DAY, start - 20 * DAY);
    assert.deepEqual(first.waves.map((w) => w.failed), [122], waves(first));
    assert.equal(worst(first), "high");
    for (const day of [start, start + 3 * DAY]) {
      const report = await run(database, day, day + DAY);
      noWaves(report);
      assert.equal(report.usualByHourOfDay[7], 122, JSON.stringify(report.usualByHourOfDay));
    }
  });

  it("honest use: a daily peak of 120 failures in 08:30–09:30 UTC, across two hours of the day (60 each and the night's 2, neither loud alone), is the usual once the periods hold it: the 60 minutes touching each hour were a reported wave (ASVS 16.3.1)", async () => {
    const start = Date.UTC(2027, 0, 4);
    const { database, insert } = await rawAuditStore(dialect, start - 25 * DAY, "straddle");
    const rows: AuditRow[] = [...quiet(start - 22 * DAY, start + DAY)];
    const peak = botnet("st", true);
    for (let day = start - 22 * DAY; day <= start; day += DAY) rows.push(...spread(day + 8 * HOUR + 30 * MINUTE, 120, peak));
    await insert(byTime(rows));
    const report = await run(database, start, start + DAY);
    noWaves(report);
    assert.deepEqual([report.usualByHourOfDay[8], report.usualByHourOfDay[9]], [62, 62], JSON.stringify(report.usualByHourOfDay));
    // The peak's half hours hold the two hours' usual: 08:30–08:50 and 09:00–09:20 near 20 each, 08:00–08:20 the
    // night's 1 or 0.
    assert.ok(report.usualByTenMinutes[8 * 6 + 4]! > 15 && report.usualByTenMinutes[8 * 6]! <= 1, JSON.stringify(report.usualByTenMinutes.slice(48, 60)));
  });

  it("honest use: a rush at 08:00 Berlin time (07:00 UTC in winter, 06:00 from 28 March 2027) with --time-zone Europe/Berlin is no wave on the day the clocks change nor the days after, its new phones not high; judged in UTC it is (ASVS 16.3.1) (was: high every day for 18 days, twice a year)", async () => {
    const { database, insert } = await rawAuditStore(dialect, SPRING - 25 * DAY, "spring");
    await insert(byTime(rushSite(SPRING - 22 * DAY, SPRING + 3 * DAY, (day) => (day < SPRING ? 7 : 6), "sp")));
    for (const day of [SPRING - DAY, SPRING, SPRING + DAY, SPRING + 3 * DAY]) {
      const report = await run(database, day, day + DAY, BERLIN);
      noWaves(report);
      assert.equal(report.timeZone, "Europe/Berlin");
    }
    const berlin = await run(database, SPRING + 3 * DAY, SPRING + 4 * DAY, BERLIN);
    assert.equal(berlin.usualByHourOfDay[8], 122, JSON.stringify(berlin.usualByHourOfDay));
    // The same days in UTC's hours: the rush at 06:00 is judged by a night's usual.
    const utc = await run(database, SPRING + 3 * DAY, SPRING + 4 * DAY);
    assert.equal(utc.timeZone, "UTC");
    assert.deepEqual(utc.waves.map((w) => [w.from, w.failed]), [[new Date(SPRING + 3 * DAY + 6 * HOUR).toISOString(), 122]], waves(utc));
  });

  it("honest use: the same rush through the autumn change (06:00 UTC in summer, 07:00 from 31 October 2027, when 02:00–03:00 local comes twice) is no wave with --time-zone Europe/Berlin (ASVS 16.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, AUTUMN - 25 * DAY, "autumn");
    await insert(byTime(rushSite(AUTUMN - 22 * DAY, AUTUMN + 2 * DAY, (day) => (day < AUTUMN ? 6 : 7), "au")));
    for (const day of [AUTUMN, AUTUMN + DAY, AUTUMN + 2 * DAY]) noWaves(await run(database, day, day + DAY, BERLIN));
  });

  it("attack: on that site, in Berlin's time, a stuffer at 03:00 local (140 failures, 01:00 UTC in summer) with a win is a wave, high: a night is still judged by the night's usual (ASVS 6.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, SPRING - 25 * DAY, "night");
    const rows = rushSite(SPRING - 22 * DAY, SPRING + 3 * DAY, (day) => (day < SPRING ? 7 : 6), "nt");
    rows.push(...spread(SPRING + 3 * DAY + HOUR, 140, botnet("nx")), won("nightwon", SPRING + 3 * DAY + HOUR + 30 * MINUTE));
    await insert(byTime(rows));
    const report = await run(database, SPRING + 3 * DAY, SPRING + 4 * DAY, BERLIN);
    assert.equal(report.usualByHourOfDay[3], 2, JSON.stringify(report.usualByHourOfDay));
    assert.ok(names(report, "ses_nightwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("attack: a stuffer across the spring change itself — 150 failures from 00:30 to 01:30 UTC on 28 March (01:30 winter time to 03:30 summer time, a local hour skipped) with a win — is a wave, high (ASVS 6.3.1)", async () => {
    const { database, insert } = await rawAuditStore(dialect, SPRING - 25 * DAY, "skip");
    const rows = rushSite(SPRING - 22 * DAY, SPRING, (day) => (day < SPRING ? 7 : 6), "sk");
    const stuff = botnet("sx");
    for (let k = 0; k < 150; k++) rows.push(stuff(SPRING + 30 * MINUTE + Math.floor((k * HOUR) / 150)));
    rows.push(won("skipwon", SPRING + 70 * MINUTE));
    await insert(byTime(rows));
    const report = await run(database, SPRING, SPRING + DAY, BERLIN);
    assert.ok(names(report, "ses_skipwon"), ids(report) + " " + waves(report));
    assert.equal(worst(report), "high");
  });

  it("refuses an unknown time zone by name before reading anything", async () => {
    const { database } = await rawAuditStore(dialect, SPRING - DAY, "badzone");
    await assert.rejects(run(database, SPRING, SPRING + DAY, { timeZone: "Mars/Olympus" }), (e: unknown) => e instanceof RangeError && e.message.includes('"Mars/Olympus"'));
  });
});
