// parseTime, the API's one reader of times in bodies and query strings: what it takes and what it refuses.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_DATE_MS, parseTime } from "./common.ts";

describe("parseTime", () => {
  it("reads epoch milliseconds as a number or as digits, and ISO 8601 with an offset", () => {
    assert.equal(parseTime(1_700_000_000_000, "t"), 1_700_000_000_000);
    assert.equal(parseTime("1700000000000", "t"), 1_700_000_000_000);
    assert.equal(parseTime("2026-12-03T08:00:00Z", "t"), Date.UTC(2026, 11, 3, 8));
    assert.equal(parseTime(MAX_DATE_MS, "t"), MAX_DATE_MS, "the last time a Date holds is still a time");
  });

  it("refuses a time no Date can hold, naming the field, instead of storing what every later view would fail on", () => {
    for (const value of [MAX_DATE_MS + 1, 9e15, Number.MAX_SAFE_INTEGER]) {
      assert.throws(() => parseTime(value, "expiresAt"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_API_TIME" && e.message.includes("expiresAt"), String(value));
      assert.ok(Number.isNaN(new Date(value).getTime()), "and indeed no Date holds it");
    }
  });

  it("refuses negative, fractional and non-date input", () => {
    for (const value of [-1, 1.5, "-1", "1 2", "tomorrow", "2026-02-30"]) {
      assert.throws(() => parseTime(value, "since"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_API_TIME", String(value));
    }
  });
});
