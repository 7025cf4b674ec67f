// The times an operator types for a containment scope (and `audit export --since`): a date alone was read as UTC
// midnight but a date-time without an offset in the host's zone, so `--created-after 2026-11-01` and
// `--created-after 2026-11-01T00:00` named windows hours apart on a server whose TZ is not UTC. Both are UTC now,
// whatever the host's zone; an explicit offset is honoured.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseTime } from "../src/cli/time.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

const NOW = Date.UTC(2026, 11, 1);

describe("CLI times on a host whose time zone is not UTC", () => {
  let saved: string | undefined;
  before(() => {
    saved = process.env["TZ"];
    // Node re-reads the zone when TZ is assigned: every Date below is computed in New York time.
    process.env["TZ"] = "America/New_York";
    assert.notEqual(new Date(Date.UTC(2026, 10, 1)).getTimezoneOffset(), 0, "the test runs in a zone other than UTC");
  });
  after(() => {
    if (saved === undefined) delete process.env["TZ"];
    else process.env["TZ"] = saved;
  });

  it("reads a date-time without an offset as UTC, the same instant as the date alone", () => {
    const midnight = Date.UTC(2026, 10, 1);
    assert.equal(parseTime("2026-11-01", "--created-after", NOW), midnight);
    assert.equal(parseTime("2026-11-01T00:00", "--created-after", NOW), midnight);
    assert.equal(parseTime("2026-11-01 00:00:00", "--created-after", NOW), midnight);
    assert.equal(parseTime("2026-11-01T04:30:15.250", "--active-between", NOW), Date.UTC(2026, 10, 1, 4, 30, 15, 250));
  });

  it("honours an explicit offset or Z", () => {
    assert.equal(parseTime("2026-11-01T00:00Z", "--created-after", NOW), Date.UTC(2026, 10, 1));
    assert.equal(parseTime("2026-11-01T00:00-05:00", "--created-after", NOW), Date.UTC(2026, 10, 1, 5));
    assert.equal(parseTime("2026-11-01T00:00+0130", "--created-after", NOW), Date.UTC(2026, 9, 31, 22, 30));
  });

  it("still refuses what is not a time, and ages stay relative to now", () => {
    for (const bad of ["2026-11-01T4", "2026-11-01T04:00:60", "yesterday", "2026-02-30T00:00"]) {
      assert.throws(() => parseTime(bad, "--created-after", NOW), { code: "BULWARK_ERR_USAGE" }, bad);
    }
    assert.equal(parseTime("7d", "--created-after", NOW), NOW - 7 * 86_400_000);
  });

  it("`bulwark contain --help` says how a time without an offset is read", async () => {
    const r = await bulwarkInProcess(["contain", "--help"]);
    assert.match(r.stdout.replace(/\s+/g, " "), /--created-before <time> accounts created before \(ISO date\/time, UTC when written without an offset;/);
  });
});
