// Where a ten-minute bucket falls in the site's day (day-clock.ts): the zone's offset in whole buckets, read through
// Intl, across daylight-saving changes. ASVS 16.3.1 (security events are detected: a site's daily peak keeps its hour).
import assert from "node:assert/strict";
import { test } from "node:test";
import { canonicalZone, DayClock } from "./day-clock.ts";

const BUCKET = 600_000;
const bucket = (y: number, m: number, d: number, h: number, min = 0): number => Date.UTC(y, m - 1, d, h, min) / BUCKET;

test("a zone's offset in buckets: an hour in Berlin's winter, two in its summer, the change at 01:00 UTC both ways", () => {
  const berlin = new DayClock("Europe/Berlin");
  assert.equal(berlin.offset(bucket(2027, 1, 11, 12)), 6);
  assert.equal(berlin.offset(bucket(2027, 7, 1, 12)), 12);
  assert.equal(berlin.offset(bucket(2027, 3, 28, 0, 50)), 6);
  assert.equal(berlin.offset(bucket(2027, 3, 28, 1)), 12);
  assert.equal(berlin.offset(bucket(2027, 10, 31, 0, 50)), 12);
  assert.equal(berlin.offset(bucket(2027, 10, 31, 1)), 6);
  // The bucket of 08:00 local keeps its place in the day through the spring change: 07:00 UTC before, 06:00 after.
  assert.equal(berlin.placeOf(bucket(2027, 3, 27, 7)), 48);
  assert.equal(berlin.placeOf(bucket(2027, 3, 29, 6)), 48);
  // Falling back, 02:00–03:00 local comes twice: 00:00 and 01:00 UTC are both at places 12 to 17.
  assert.equal(berlin.placeOf(bucket(2027, 10, 31, 0)), 12);
  assert.equal(berlin.placeOf(bucket(2027, 10, 31, 1)), 12);
});

test("half-hour and odd offsets: St John's at -03:30 is -21 buckets, Kathmandu's +05:45 is taken as +05:40 (34), Lord Howe moves half an hour", () => {
  assert.equal(new DayClock("America/St_Johns").offset(bucket(2027, 1, 11, 12)), -21);
  assert.equal(new DayClock("Asia/Kathmandu").offset(bucket(2027, 1, 11, 12)), 34);
  const lordHowe = new DayClock("Australia/Lord_Howe");
  assert.equal(lordHowe.offset(bucket(2027, 1, 11, 12)), 66);
  assert.equal(lordHowe.offset(bucket(2027, 7, 1, 12)), 63);
  // Before 1970 as after it.
  assert.equal(new DayClock("Europe/Berlin").offset(bucket(1969, 1, 11, 12)), 6);
});

test("UTC is the default and a fixed clock, as is an offset; a zone is taken by its IANA name in any case; an unknown one is refused by name", () => {
  const utc = new DayClock();
  assert.equal(utc.zone, "UTC");
  assert.equal(utc.fixed, true);
  assert.equal(utc.placeOf(bucket(2027, 3, 28, 23, 50)), 143);
  assert.equal(utc.placeOf(bucket(1969, 7, 20, 9)), 54);
  assert.equal(canonicalZone("europe/berlin"), "Europe/Berlin");
  assert.equal(new DayClock("europe/berlin").zone, "Europe/Berlin");
  assert.equal(new DayClock("Europe/Berlin").fixed, false);
  assert.equal(new DayClock("+05:30").fixed, true);
  assert.equal(new DayClock("+05:30").offset(bucket(2027, 7, 1, 12)), 33);
  for (const bad of ["Mars/Olympus", "", "Europe/Berlin\u0000", "x".repeat(65), "../etc/passwd", "UTC+2"]) {
    assert.equal(canonicalZone(bad), null, bad);
    assert.throws(() => new DayClock(bad), (e: unknown) => e instanceof RangeError && e.message.includes("unknown time zone") && e.message.includes(JSON.stringify(bad)), bad);
  }
});
