// Field rules of `users import`: a timestamp must name a real moment, or the row is bad with a reason that
// says which part is wrong. A date that does not exist must never be stored as another one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { systemRandom } from "../../lib/random.ts";
import { createPasswordContext } from "../passwords/index.ts";
import { resolveMap, validateRow, type RowRules } from "./mapping.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
const rules: RowRules = { map: resolveMap({ preset: null, map: {} }), preset: null, source: "test", salted: null };

function withCreatedAt(createdAt: string): ReturnType<typeof validateRow> {
  const record: Record<string, string> = { email: "ana@example.org", created_at: createdAt };
  return validateRow(2, (column) => record[column], rules, passwords);
}

function createdAtOf(text: string): number | undefined {
  const verdict = withCreatedAt(text);
  assert.equal(verdict.kind, "ok", JSON.stringify(verdict));
  return verdict.kind === "ok" ? verdict.row.user.createdAt : undefined;
}

function reasonFor(text: string): string {
  const verdict = withCreatedAt(text);
  assert.equal(verdict.kind, "bad", `${text} was accepted: ${JSON.stringify(verdict)}`);
  return verdict.kind === "bad" ? verdict.reason : "";
}

describe("import field rules: timestamps", () => {
  it("accepts unix seconds and real ISO-8601 dates, times and offsets", () => {
    assert.equal(createdAtOf("1700000000"), 1_700_000_000_000);
    assert.equal(createdAtOf("2024-02-29"), Date.UTC(2024, 1, 29), "a leap day in a leap year");
    assert.equal(createdAtOf("2000-02-29"), Date.UTC(2000, 1, 29), "2000 is a leap year (divisible by 400)");
    assert.equal(createdAtOf("2023-12-31T23:59:59Z"), Date.UTC(2023, 11, 31, 23, 59, 59));
    assert.equal(createdAtOf("2023-06-01 08:30"), Date.parse("2023-06-01T08:30"), "a space for the T, local time");
    assert.equal(createdAtOf("2023-06-01T08:30:00.5+02:00"), Date.UTC(2023, 5, 1, 6, 30, 0, 500));
    assert.equal(createdAtOf("2023-06-01T08:30:00-0530"), Date.UTC(2023, 5, 1, 14, 0, 0));
  });

  it("refuses a day, month or time that does not exist instead of rolling it into another date", () => {
    assert.match(reasonFor("2023-02-29"), /created_at "2023-02-29" is not a real date: February 2023 has 28 days/);
    assert.match(reasonFor("2023-02-30"), /February 2023 has 28 days/);
    assert.match(reasonFor("2100-02-29T00:00Z"), /February 2100 has 28 days/, "not a leap year (divisible by 100)");
    assert.match(reasonFor("2023-04-31"), /April 2023 has 30 days/);
    assert.match(reasonFor("2023-01-00"), /January 2023 has 31 days/);
    assert.match(reasonFor("2023-13-01"), /there is no month 13/);
    assert.match(reasonFor("2023-00-10"), /there is no month 0/);
    for (const text of ["2023-01-01T24:01", "2023-01-01T10:60", "2023-01-01T10:00:60Z", "2023-01-01T10:00+24:00", "2023-01-01T10:00+05:60"]) {
      assert.match(reasonFor(text), /is not a real date and time$/, text);
    }
  });

  it("still names text that is no date at all, and dates out of range", () => {
    assert.match(reasonFor("yesterday"), /neither unix seconds nor an ISO-8601 date/);
    assert.match(reasonFor("1969-12-31T23:59:59Z"), /out of range/);
  });
});
