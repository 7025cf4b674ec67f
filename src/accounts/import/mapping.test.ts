// Field rules of `users import`: a timestamp must name a real moment, or the row is bad with a reason that
// says which part is wrong. A date that does not exist must never be stored as another one, and the same file
// must give the same moment on every machine. An empty cell supplies nothing. A header column no field reads is
// refused unless ignored by name.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { systemRandom } from "../../lib/random.ts";
import { createPasswordContext } from "../passwords/index.ts";
import { ImportOptionError } from "./errors.ts";
import { checkHeader, parseColumnList, parseFieldMap, resolveMap, validateRow, type RowRules } from "./mapping.ts";

const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
const rules: RowRules = { map: resolveMap({ preset: null, map: {} }), preset: null, source: "test", salted: null };
// The import's clock: a time after it (beyond the skew tolerance) is a bad row.
const NOW = Date.UTC(2026, 11, 1, 9);

function withCreatedAt(createdAt: string): ReturnType<typeof validateRow> {
  const record: Record<string, string> = { email: "ana@example.org", created_at: createdAt };
  return validateRow(2, (column) => record[column], rules, passwords, NOW);
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
    assert.equal(createdAtOf("2023-06-01 08:30"), Date.UTC(2023, 5, 1, 8, 30), "a space for the T; no offset is UTC");
    assert.equal(createdAtOf("2023-06-01T08:30:00.5+02:00"), Date.UTC(2023, 5, 1, 6, 30, 0, 500));
    assert.equal(createdAtOf("2023-06-01T08:30:00-0530"), Date.UTC(2023, 5, 1, 14, 0, 0));
  });

  it("reads a date and time without an offset as UTC, whatever the importing machine's time zone", () => {
    assert.equal(createdAtOf("2023-01-01T10:00:00"), Date.UTC(2023, 0, 1, 10), "seconds");
    assert.equal(createdAtOf("2023-01-01T10:00"), Date.UTC(2023, 0, 1, 10), "minutes");
    assert.equal(createdAtOf("2023-07-01 10:00:00.25"), Date.UTC(2023, 6, 1, 10, 0, 0, 250), "summer time where there is one");
    // Node re-reads the zone when process.env.TZ is assigned: the same text in zones hours apart (was: three moments).
    const saved = process.env["TZ"];
    try {
      for (const tz of ["UTC", "America/New_York", "Asia/Tokyo"]) {
        process.env["TZ"] = tz;
        assert.equal(createdAtOf("2023-01-01T10:00:00"), Date.UTC(2023, 0, 1, 10), `TZ=${tz}`);
        assert.equal(createdAtOf("2023-01-01T10:00:00+09:00"), Date.UTC(2023, 0, 1, 1), `TZ=${tz}, an offset is kept`);
      }
    } finally {
      if (saved === undefined) delete process.env["TZ"];
      else process.env["TZ"] = saved;
    }
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

describe("import field rules: times in the future", () => {
  const verdictOf = (record: Record<string, string>): ReturnType<typeof validateRow> => validateRow(5, (column) => record[column], rules, passwords, NOW);

  it("refuses a created_at or last_login_at more than a day after the import's clock as a bad row naming the field (ASVS 2.2.3)", () => {
    const year2100 = String(Date.UTC(2100, 0, 1) / 1000);
    for (const field of ["created_at", "last_login_at"]) {
      for (const text of [year2100, "2100-01-01", new Date(NOW + 24 * 3_600_000 + 1000).toISOString()]) {
        const verdict = verdictOf({ email: "ana@example.org", [field]: text });
        assert.equal(verdict.kind, "bad", `${field}=${text} was accepted: ${JSON.stringify(verdict)}`);
        assert.match(verdict.kind === "bad" ? verdict.reason : "", new RegExp(`^${field} ".*" .*is in the future, more than a day after`), `${field}=${text}`);
        assert.equal(verdict.line, 5);
      }
    }
  });

  it("stores a time dated ahead by less than a day (a legacy host's fast clock, a local-time export read as UTC) as the import's own, and says so; earlier times as they are", () => {
    for (const at of [NOW - 86_400_000, NOW]) {
      const verdict = verdictOf({ email: "ana@example.org", created_at: new Date(at).toISOString(), last_login_at: new Date(at).toISOString() });
      assert.equal(verdict.kind, "ok", JSON.stringify(verdict));
      assert.deepEqual(verdict.kind === "ok" ? [verdict.row.user.lastLoginAt, verdict.row.user.createdAt, verdict.row.clamped] : null, [at, at, false]);
    }
    for (const ahead of [1000, 5 * 60_000, 14 * 3_600_000, 24 * 3_600_000]) {
      const verdict = verdictOf({ email: "ana@example.org", last_login_at: String(Math.floor((NOW + ahead) / 1000)) });
      assert.equal(verdict.kind, "ok", JSON.stringify(verdict));
      assert.deepEqual(verdict.kind === "ok" ? [verdict.row.user.lastLoginAt, verdict.row.clamped] : null, [NOW, true], `${ahead} ms ahead`);
    }
  });
});

describe("import field rules: an empty cell supplies nothing", () => {
  function rowOf(record: Record<string, string>): Extract<ReturnType<typeof validateRow>, { kind: "ok" }>["row"] {
    const verdict = validateRow(2, (column) => record[column], rules, passwords, NOW);
    assert.equal(verdict.kind, "ok", JSON.stringify(verdict));
    if (verdict.kind !== "ok") throw new Error("unreachable");
    return verdict.row;
  }

  it("an empty or blank status is not supplied (an update keeps the stored one) and a new account is active", () => {
    // Was: "" counted as supplied and read as "active", so --on-conflict update re-activated a disabled account.
    for (const status of ["", "  "]) {
      const row = rowOf({ email: "ana@example.org", status });
      assert.equal(row.supplied.has("status"), false, JSON.stringify(status));
      assert.equal(row.user.status, "active", "the default of a new account");
    }
    const disabled = rowOf({ email: "ana@example.org", status: " disabled " });
    assert.deepEqual([disabled.supplied.has("status"), disabled.user.status], [true, "disabled"]);
  });

  it("every other field follows the same rule: only a non-empty cell is supplied", () => {
    const blank = rowOf({ email: "ana@example.org", username: " ", display_name: "", password_hash: "", created_at: "", last_login_at: " ", external_id: "" });
    assert.deepEqual([...blank.supplied], ["email"]);
    const full = rowOf({ email: "ana@example.org", username: "ana", display_name: "Ana", status: "1", created_at: "1700000000", last_login_at: "1700000001", external_id: "7" });
    assert.deepEqual([...full.supplied].sort(), ["created_at", "display_name", "email", "external_id", "last_login_at", "status", "username"]);
  });
});

describe("import field rules: display_name", () => {
  function verdictFor(displayName: string): ReturnType<typeof validateRow> {
    const record: Record<string, string> = { email: "ana@example.org", display_name: displayName };
    return validateRow(2, (column) => record[column], rules, passwords, NOW);
  }

  // ASVS 2.2.2: the same rule as POST /api/v1/users (NO_CONTROL), so the import is no side door around it.
  it("attack: a display name holding a bidirectional override, an isolate or a control makes the row bad, naming the column and escaping the text", () => {
    for (const name of ["Ana \u202eexe.gpj", "Ana \u2066x\u2069", "Ana\u0007", "Ana \u009b2J", "Ana \ud800"]) {
      const verdict = verdictFor(name);
      assert.equal(verdict.kind, "bad", `${JSON.stringify(name)} was accepted: ${JSON.stringify(verdict)}`);
      if (verdict.kind !== "bad") continue;
      assert.match(verdict.reason, /^display_name ".*" has control or bidirectional characters, or an unpaired surrogate$/);
      assert.doesNotMatch(verdict.reason, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/, "the reason is printed: its text escaped");
    }
  });

  it("keeps names the API keeps: accents, right-to-left script with its direction marks, emoji", () => {
    for (const name of ["Zoë Ångström", "\u05d3\u05e0\u05d4\u200f", "Ana \ud83d\ude00"]) {
      const verdict = verdictFor(name);
      assert.equal(verdict.kind, "ok", `${JSON.stringify(name)} was refused: ${JSON.stringify(verdict)}`);
      if (verdict.kind === "ok") assert.equal(verdict.row.user.displayName, name);
    }
  });
});

describe("import header rules: every named column is read by a field or ignored by name", () => {
  const plain = resolveMap({ preset: null, map: {} });

  it("refuses a column no field reads, naming it, the columns that are read, and the two ways out", () => {
    // Finding: "Status" and "password" were dropped silently (a blocked account came in active, without its hash).
    assert.throws(() => checkHeader(["email", "Status", "password"], plain, {}), (e: unknown) =>
      e instanceof ImportOptionError && /the header has columns "Status", "password" that no field reads: nothing was imported/.test(e.message) &&
      /email, username, display_name, password_hash, status/.test(e.message) && /--map status=Status/.test(e.message) && /--ignore-columns Status,password/.test(e.message));
    // A column read through --map is read, not unknown; the identity name it replaces is no longer read.
    const mapped = resolveMap({ preset: null, map: parseFieldMap("status=Status,password_hash=password") });
    checkHeader(["email", "Status", "password"], mapped, parseFieldMap("status=Status,password_hash=password"));
    assert.throws(() => checkHeader(["email", "Status", "status"], resolveMap({ preset: null, map: { status: "Status" } }), { status: "Status" }), /the column "status" that no field reads/);
  });

  it("lets through columns ignored by name, the preset's known extras, the salt column and unnamed columns", () => {
    checkHeader(["email", "notes", "theme"], plain, {}, { ignore: parseColumnList("notes, theme") });
    checkHeader(["uid", "name", "pass", "mail", "theme", "signature", "data"], resolveMap({ preset: "drupal7", map: {} }), {}, { preset: "drupal7" });
    assert.throws(() => checkHeader(["email", "theme"], plain, {}), /the column "theme"/, "the preset's extras only with the preset");
    checkHeader(["email", "password_hash", "salt"], resolveMap({ preset: null, map: {}, saltColumn: "salt" }), {});
    checkHeader(["email", "", ""], plain, {});
    assert.throws(() => parseColumnList("notes,,theme"), /--ignore-columns "notes,,theme" has an empty name/);
  });
});
