import assert from "node:assert/strict";
import { test } from "node:test";
import { emptyStamp, parseStamp, YearResolver } from "./timestamp.ts";
import { fileReferenceMs } from "./year-resolver.ts";

function resolveAll(lines: string[], options: ConstructorParameters<typeof YearResolver>[0]): string[] {
  const r = new YearResolver(options);
  return lines.map((l) => {
    const s = emptyStamp();
    assert.ok(parseStamp(l, s), `stamp of ${l}`);
    return new Date(r.resolve(s)).toISOString();
  });
}

test("parses BSD stamps with padded, zero-padded and unpadded days", () => {
  for (const [line, day] of [["Feb  7 16:01:07 h x", 7], ["Feb 07 16:01:07 h x", 7], ["Feb 7 16:01:07 h x", 7], ["Feb 17 16:01:07 h x", 17]] as const) {
    const s = emptyStamp();
    assert.equal(parseStamp(line, s), true, line);
    assert.equal(s.month, 1);
    assert.equal(s.day, day);
    assert.equal(s.msOfDay, (16 * 3600 + 67) * 1000);
    assert.equal(line.slice(s.end, s.end + 2), " h");
  }
});

test("parses rsyslog RFC 3339 stamps with fractions and zone offsets", () => {
  const s = emptyStamp();
  assert.ok(parseStamp("2015-04-16T18:02:50.321974+02:00 host sshd[1]: x", s));
  assert.deepEqual([s.year, s.month, s.day, s.msOfDay, s.offsetMinutes], [2015, 3, 16, (18 * 3600 + 2 * 60 + 50) * 1000 + 321, 120]);
  assert.equal(resolveAll(["2015-04-16T18:02:50.321974+02:00 x"], { referenceMs: 0 })[0], "2015-04-16T16:02:50.321Z");
});

// ASVS 16.2.2: explicit zone offsets are honoured; evidence times are printed in UTC.
test("parses journalctl -o short-iso stamps (+hhmm offset)", () => {
  assert.deepEqual(resolveAll(["2026-11-22T23:44:31+0100 web sshd[5]: x", "2026-11-22T23:44:31Z web sshd[5]: x"], { referenceMs: 0 }), [
    "2026-11-22T22:44:31.000Z",
    "2026-11-22T23:44:31.000Z",
  ]);
});

test("parses the RFC 5424 header time stamp", () => {
  assert.deepEqual(resolveAll(["<38>1 2019-07-08T17:40:16.954167-04:00 host sshd 57915 - - msg"], { referenceMs: 0 }), ["2019-07-08T21:40:16.954Z"]);
});

// ASVS 16.2.4: journald-only hosts export with journalctl; these two were every line malformed, a clean run.
test("parses journalctl -o short-full stamps (weekday, zone abbreviation or number)", () => {
  assert.deepEqual(
    resolveAll(["Sat 2026-12-05 10:00:00 UTC web sshd[5]: x", "Sat 2026-12-05 13:00:00 +03 web sshd[5]: x", "Sat 2026-12-05 05:30:00.5 -0430 web x", "Sat 2026-12-05 11:00:00 CET web x"], {
      referenceMs: 0,
      utcOffsetMinutes: 60,
    }),
    // CET says no offset: read in --utc-offset's zone, as a BSD stamp is.
    ["2026-12-05T10:00:00.000Z", "2026-12-05T10:00:00.000Z", "2026-12-05T10:00:00.500Z", "2026-12-05T10:00:00.000Z"],
  );
  const s = emptyStamp();
  assert.ok(parseStamp("Sat 2026-12-05 10:00:00 UTC web sshd[5]: x", s));
  assert.equal(s.end, 27);
});

test("parses journalctl -o short-unix stamps (seconds and six digits of microseconds)", () => {
  assert.deepEqual(resolveAll(["1796464800.000123 web sshd[5]: x", "0.000000 x", "951782400.999999 x", "253402300799.000000 x"], { referenceMs: 0 }), [
    "2026-12-05T10:00:00.000Z",
    "1970-01-01T00:00:00.000Z",
    "2000-02-29T00:00:00.999Z",
    "9999-12-31T23:59:59.000Z",
  ]);
  for (const line of ["1796464800 web x", "1796464800.123 web x", "1796464800.0001234 web x", "253402300800.000000 x", "1234567890123.000000 x"]) {
    assert.equal(parseStamp(line, emptyStamp()), false, line);
  }
});

test("rejects lines that do not start with a time stamp", () => {
  for (const line of ["", "srv sshd[1]: x", "Foo 12 10:00:00 x", "Sat 10:00:00 x", "Sat 2026-12-05 10:00:00", "Sat 2026-12-05 10:00:00 UTCX1 x", "Sun 2026-12-05T10:00:00Z x", "Jan 32 10:00:00 x", "Jan 12 25:00:00 x", "2026-13-01T00:00:00Z x", "<999999>1 x", "Jan 1210:00:00"]) {
    assert.equal(parseStamp(line, emptyStamp()), false, JSON.stringify(line));
  }
});

test("infers the reference year for a zone-less stamp in the past", () => {
  const ref = Date.UTC(2026, 10, 22, 12);
  assert.deepEqual(resolveAll(["Nov 21 04:00:00 x"], { referenceMs: ref }), ["2026-11-21T04:00:00.000Z"]);
});

test("puts a December stamp read in January into the previous year", () => {
  const ref = Date.UTC(2027, 0, 5);
  assert.deepEqual(resolveAll(["Dec 30 23:59:00 x"], { referenceMs: ref }), ["2026-12-30T23:59:00.000Z"]);
});

test("rolls the year over when a log crosses New Year (time going back by months)", () => {
  const ref = Date.UTC(2027, 0, 5);
  assert.deepEqual(resolveAll(["Dec 31 23:59:58 x", "Jan  1 00:00:02 x", "Jan  3 10:00:00 x"], { referenceMs: ref }), [
    "2026-12-31T23:59:58.000Z",
    "2027-01-01T00:00:02.000Z",
    "2027-01-03T10:00:00.000Z",
  ]);
});

test("keeps the year for lines slightly out of order", () => {
  const ref = Date.UTC(2026, 5, 1);
  assert.deepEqual(resolveAll(["May  3 10:00:05 x", "May  3 10:00:01 x"], { referenceMs: ref }), ["2026-05-03T10:00:05.000Z", "2026-05-03T10:00:01.000Z"]);
});

test("places a late December straggler after January lines in the previous year", () => {
  const ref = Date.UTC(2027, 0, 5);
  assert.deepEqual(resolveAll(["Dec 31 23:59:58 x", "Jan  1 00:00:02 x", "Dec 31 23:59:59 x", "Jan  1 00:00:03 x"], { referenceMs: ref }), [
    "2026-12-31T23:59:58.000Z",
    "2027-01-01T00:00:02.000Z",
    "2026-12-31T23:59:59.000Z",
    "2027-01-01T00:00:03.000Z",
  ]);
});

test("uses --year for the first stamp and still rolls over at New Year", () => {
  assert.deepEqual(resolveAll(["Dec 31 23:00:00 x", "Jan  1 01:00:00 x"], { referenceMs: Date.UTC(2030, 0, 1), year: 2019 }), [
    "2019-12-31T23:00:00.000Z",
    "2020-01-01T01:00:00.000Z",
  ]);
});

test("reads zone-less stamps in the given UTC offset", () => {
  assert.deepEqual(resolveAll(["Mar  1 10:00:00 x"], { referenceMs: Date.UTC(2026, 5, 1), utcOffsetMinutes: 120 }), ["2026-03-01T08:00:00.000Z"]);
});

// This pinned the weakness of red team 38's finding 4: a full date set its host's running year, so three forged
// full-date lines under a host's name, a year apart, split its BSD-stamped brute force across two years. A full date is
// now placed as written and steers nothing; the zone-less line after it is placed as if it were not there.
test("a line with a full date is placed as written and does not set the year of the zone-less lines after it", () => {
  assert.deepEqual(resolveAll(["2024-12-31T23:00:00Z x", "Jan  1 01:00:00 x"], { referenceMs: Date.UTC(2026, 5, 1) }), [
    "2024-12-31T23:00:00.000Z",
    "2026-01-01T01:00:00.000Z",
  ]);
  const ref = Date.UTC(2026, 11, 7, 12);
  assert.deepEqual(
    resolveHosts([["web", "Dec  5 03:00:00 x"], ["web", "2025-12-05T03:00:00Z x"], ["web", "Dec  5 03:00:01 x"], ["web", "2027-12-05T03:00:00Z x"], ["web", "Dec  5 03:00:02 x"]], { referenceMs: ref }),
    ["2026-12-05", "2025-12-05", "2026-12-05", "2027-12-05", "2026-12-05"],
  );
});

/** Resolves [host, stamp] pairs with one resolver; returns the ISO dates (day only). */
function resolveHosts(lines: Array<[string, string]>, options: ConstructorParameters<typeof YearResolver>[0]): string[] {
  const r = new YearResolver(options);
  return lines.map(([host, l]) => {
    const s = emptyStamp();
    assert.ok(parseStamp(l, s), `stamp of ${l}`);
    return new Date(r.resolve(s, host)).toISOString().slice(0, 10);
  });
}

// ASVS 16.3.1, 6.3.5: one mis-stamped line must not move the rest of the log a year away.
test("a line weeks behind keeps the year and does not roll the host over (a straggler, not New Year)", () => {
  const ref = Date.UTC(2027, 0, 5);
  assert.deepEqual(resolveAll(["Nov 21 04:00:00 x", "Oct 10 04:00:00 x", "Nov 21 04:02:00 x"], { referenceMs: ref }), [
    "2026-11-21T04:00:00.000Z",
    "2026-10-10T04:00:00.000Z",
    "2026-11-21T04:02:00.000Z",
  ]);
});

test("rolls over only when the next year's reading is less than half a year after the host's last stamp", () => {
  const ref = Date.UTC(2030, 0, 1);
  // Jul 1 then Jan 1: the next January is 184 days later, so this is a straggler; Mar 1 after Dec 1 is New Year.
  assert.deepEqual(resolveHosts([["h", "Jul  1 00:00:00 x"], ["h", "Jan  1 00:00:00 x"], ["h", "Dec  1 00:00:00 x"], ["h", "Mar  1 00:00:00 x"]], { referenceMs: ref, year: 2026 }), [
    "2026-07-01", "2026-01-01", "2026-12-01", "2027-03-01",
  ]);
});

test("without --year, never rolls over into the future (a forged 'Jan 20' read on November 22)", () => {
  const ref = Date.UTC(2026, 10, 22);
  assert.deepEqual(resolveHosts([["web", "Nov 21 04:00:00 x"], ["web", "Jan 20 04:00:00 x"], ["web", "Nov 21 04:02:00 x"]], { referenceMs: ref }), [
    "2026-11-21", "2026-01-20", "2026-11-21",
  ]);
});

test("only a host's own lines steer its year; a host's first line is placed by the reference time", () => {
  const ref = Date.UTC(2027, 0, 5);
  assert.deepEqual(
    resolveHosts([["web", "Dec 31 23:59:00 x"], ["kiosk", "Feb 10 00:00:00 x"], ["web", "Dec 31 23:59:30 x"], ["db", "Jan  1 00:00:10 x"], ["web", "Jan  1 00:01:00 x"]], { referenceMs: ref }),
    ["2026-12-31", "2026-02-10", "2026-12-31", "2027-01-01", "2027-01-01"],
  );
});

test("keeps an inferred year within 1970–9999, the range --year accepts", () => {
  assert.deepEqual(resolveAll(["Dec 31 23:00:00 x", "Jan  1 01:00:00 x"], { referenceMs: 0, year: 9999 }), ["9999-12-31T23:00:00.000Z", "9999-01-01T01:00:00.000Z"]);
  assert.deepEqual(resolveAll(["Dec 31 23:00:00 x"], { referenceMs: Date.UTC(1970, 0, 1) }), ["1970-12-31T23:00:00.000Z"]);
});

// ASVS 16.2.2, 16.3.1. Red team 38, finding 2: a host's first line went to the year nearest the file's latest stamp,
// which any sender's line sets, so one forged "May 20" line put every host that joined after it a year back.
test("without --year, a host's first stamp is placed by the reference time, whatever other hosts' lines say", () => {
  const ref = Date.UTC(2026, 11, 7, 12);
  assert.deepEqual(resolveHosts([["m", "May 20 00:00:00 x"], ["web", "Dec  6 07:59:00 x"]], { referenceMs: ref }), ["2026-05-20", "2026-12-06"]);
  // With --year (an archive) a joining host still goes nearest the file's latest stamp: there is no reference to go by.
  assert.deepEqual(resolveHosts([["a", "Dec 31 23:00:00 x"], ["b", "Jan  1 01:00:00 x"]], { referenceMs: ref, year: 2019 }), ["2019-12-31", "2020-01-01"]);
});

// Red team 38, finding 2 with web's own name: the forward jump from a forged first line was read as a late line of the
// previous year; without --year it is only when the running year's reading would lie in the future.
test("without --year, a host's first line stamped months back does not put its later lines a year back", () => {
  const ref = Date.UTC(2026, 11, 7, 12);
  assert.deepEqual(resolveHosts([["web", "May 20 00:00:00 x"], ["web", "Dec  6 07:59:00 x"], ["web", "Dec  6 08:00:00 x"]], { referenceMs: ref }), ["2026-05-20", "2026-12-06", "2026-12-06"]);
  // A line stamped a little after the reference date (placed the year before) does not keep the real ones there either.
  assert.deepEqual(resolveHosts([["web", "Dec 20 00:00:00 x"], ["web", "Dec  5 03:00:00 x"], ["web", "Dec  6 08:00:00 x"]], { referenceMs: ref }), ["2025-12-20", "2026-12-05", "2026-12-06"]);
  // Nor do lines stamped a little ahead walk the track into the future, where a real late December line would follow.
  const jan = Date.UTC(2027, 0, 5);
  assert.deepEqual(
    resolveHosts([["web", "Jan  3 00:00:00 x"], ["web", "Jun  1 00:00:00 x"], ["web", "Sep  1 00:00:00 x"], ["web", "Dec 20 00:00:00 x"], ["web", "Jan  4 00:00:00 x"]], { referenceMs: jan }),
    ["2027-01-03", "2026-06-01", "2026-09-01", "2026-12-20", "2027-01-04"],
  );
});

// Red team 38, finding 3: past MAX_HOSTS (4,096) a host is not followed and each of its lines was placed nearest the
// file's latest stamp, which the sender's own hosts moved line by line.
test("without --year, a host past the followed ones is placed by the reference time, line by line", () => {
  const ref = Date.UTC(2026, 11, 7, 12);
  const lines: Array<[string, string]> = [];
  for (let i = 0; i < 4100; i++) lines.push([`f${i}`, "Dec  5 02:00:00 x"]);
  for (const stamp of ["May  1 00:00:00 x", "Dec  5 03:00:00 x"]) lines.push(["h0", stamp], ["web", "Dec  5 03:00:01 x"]);
  assert.deepEqual(resolveHosts(lines, { referenceMs: ref }).slice(4100), ["2026-05-01", "2026-12-05", "2026-12-05", "2026-12-05"]);
});

// Red team 38b, finding 3: no line of a file was written after the file was; its mtime bounds the year of its stamps.
test("fileReferenceMs: the earlier of the reference time and a file's mtime; no mtime, or one in 1970, leaves the reference", () => {
  const ref = Date.UTC(2026, 11, 7, 12);
  const rotated = Date.UTC(2026, 0, 1, 0, 0, 2);
  assert.equal(fileReferenceMs(ref, rotated), rotated);
  assert.equal(fileReferenceMs(ref, ref + 86_400_000), ref, "an mtime after the reference (a clock ahead) is no later bound");
  for (const m of [undefined, 0, 1000, Number.NaN]) assert.equal(fileReferenceMs(ref, m), ref, String(m));
  assert.deepEqual(resolveAll(["Dec  1 00:00:03 web x", "Dec  6 03:00:00 web x", "Dec 31 23:59:00 web x"], { referenceMs: fileReferenceMs(ref, rotated) }), [
    "2025-12-01T00:00:03.000Z",
    "2025-12-06T03:00:00.000Z",
    "2025-12-31T23:59:00.000Z",
  ]);
});
