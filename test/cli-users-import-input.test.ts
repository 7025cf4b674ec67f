// `bulwark users import` on malformed input, through the CLI (run in this process; one import spawned): bytes that are not UTF-8, stray
// quotes, CR-only line breaks, a header naming a column twice, JSONL numbers beyond a double, repeated
// keys and escaped lone surrogates. Every bad row is reported with its line and what is wrong, and
// nothing is guessed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { initSite, type CLISite } from "./helpers/cli.ts";

let root: string;
let seq = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-cli-import-input-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A fresh, initialised data dir of its own. */
function site(): Promise<CLISite> {
  return initSite(join(root, `site-${++seq}`), { here: true });
}

type Bad = { line: number; reason: string };

describe("users import: malformed input is reported row by row, never guessed at", () => {
  it("a dry run lists every bad CSV row, Latin-1 bytes and stray quotes included, with CR-only line numbers right", async () => {
    // Findings: Latin-1 bytes became U+FFFD (two addresses collided), the first stray quote stopped
    // the dry run, and a CR inside quotes was not counted as a line break.
    const s = await site();
    const csv = s.file("users.csv", Buffer.from([
      "email,display_name,note", // a column no field reads: named in --ignore-columns below, or the import is refused
      'ana@example.org,Ana,"two\rlines"', // lines 2-3
      "jos\xe9@example.org,x,", // 4
      "jos\xe8@example.org,y,", // 5
      'b@exa"mple.org,z,', // 6
      '"c@example.org"x,w,', // 7
      "bad,B,", // 8
      "ok@example.org,o,", // 9
    ].join("\r") + "\r", "latin1"));
    const dry = await s.runHere(["users", "import", csv, "--ignore-columns", "note", "--dry-run", "--json"]);
    assert.equal(dry.code, 1, dry.stderr);
    const report = JSON.parse(dry.stdout) as { created: number; bad: Bad[] };
    assert.deepEqual(report.bad.map((b) => b.line), [4, 5, 6, 7, 8]);
    const reason = (line: number): string => report.bad.find((b) => b.line === line)!.reason;
    assert.match(reason(4), /^is not valid UTF-8 \(byte 0xE9\)/);
    assert.match(reason(5), /^is not valid UTF-8 \(byte 0xE8\)/);
    assert.match(reason(6), /a quote inside an unquoted field/);
    assert.match(reason(7), /unexpected character after a closing quote/);
    assert.match(reason(8), /email/);
    assert.equal(report.created, 2);

    // As an operator runs it: the import itself from the CLI as a process of its own.
    const real = await s.run(["users", "import", csv, "--ignore-columns", "note", "--skip-bad", "--json"]);
    assert.equal(real.code, 0, real.stderr);
    assert.deepEqual(s.rows("SELECT email, display_name FROM users ORDER BY email"), [
      { email: "ana@example.org", display_name: "Ana" },
      { email: "ok@example.org", display_name: "o" },
    ], "no address with a replacement character, nothing after a stray quote");
  });

  it("refuses a CSV header that names a column twice, naming it, and imports nothing", async () => {
    // Finding: with two "email" columns the last one silently fed the email.
    const s = await site();
    const r = await s.runHere(["users", "import", s.file("dup.csv", "email,display_name,email\na@example.org,Ann,b@example.org\n")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /line 1: the header names the column "email" twice \(columns 1 and 3\)/);
    assert.equal(s.rows("SELECT count(*) AS n FROM users")[0]!["n"], 0);
  });

  it("keeps JSONL ids beyond a double exactly, refuses exponents and repeated keys by line", async () => {
    // Findings: 12345678901234567891 was stored as "12345678901234567000" (and its neighbour flagged as
    // a duplicate), 1e21 as "1e+21", 1e400 called an object, and a repeated "email" took the last.
    const s = await site();
    const jsonl = s.file("users.jsonl", [
      '{"email":"a@example.org","external_id":12345678901234567890}',
      '{"email":"b@example.org","external_id":12345678901234567891}',
      '{"email":"c@example.org","external_id":1e21}',
      '{"email":"d@example.org","external_id":1e400}',
      '{"email":"e@example.org","email":"f@example.org"}',
      '{"email":"g@example.org","external_id":"1e21"}',
    ].join("\n") + "\n");
    const r = await s.runHere(["users", "import", jsonl, "--skip-bad", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { created: number; bad: Bad[] };
    assert.deepEqual(report.bad, [
      { line: 3, reason: '"external_id" holds the number 1e21, which is not a whole number written in digits (quote it to keep it as text)' },
      { line: 4, reason: '"external_id" holds the number 1e400, which is not a whole number written in digits (quote it to keep it as text)' },
      { line: 5, reason: 'has the key "email" more than once' },
    ]);
    assert.deepEqual(s.rows("SELECT email, external_id FROM users ORDER BY email"), [
      { email: "a@example.org", external_id: "12345678901234567890" },
      { email: "b@example.org", external_id: "12345678901234567891" },
      { email: "g@example.org", external_id: "1e21" },
    ]);
  });

  it("refuses JSONL values escaping lone surrogates by line and field: the dry run lists them, the real run exits 2", async () => {
    // Finding: {"email":"jos\udce9@…"} and {"email":"jos\udce8@…"} passed, the line being valid UTF-8; both were
    // stored as "jos\ufffd@…" (usernames alike), so the dry run said "would create 2" and the real run died with an
    // internal error (exit 3) on the unique index, leaving a failed job.
    const s = await site();
    const jsonl = s.file("sur.jsonl", [
      '{"email":"jos\\udce9@example.org","username":"j1","display_name":"Jos\\ud800"}',
      '{"email":"j2@example.org","username":"jos\\udce9"}',
      '{"email":"j3@example.org","username":"jos\\udce8"}',
      '{"email":"ok@example.org","username":"ok"}',
    ].join("\n") + "\n");
    const dry = await s.runHere(["users", "import", jsonl, "--dry-run", "--json"]);
    assert.equal(dry.code, 1, dry.stderr);
    const report = JSON.parse(dry.stdout) as { created: number; bad: Bad[] };
    const why = (field: string, unit: string): string => `the value of "${field}" holds the lone surrogate \\u${unit} (half of a UTF-16 pair), which is not a character; write the character itself, as UTF-8`;
    assert.deepEqual(report.bad, [{ line: 1, reason: why("email", "dce9") }, { line: 2, reason: why("username", "dce9") }, { line: 3, reason: why("username", "dce8") }]);
    assert.equal(report.created, 1);
    const real = await s.runHere(["users", "import", jsonl, "--batch", "1"]);
    assert.equal(real.code, 2, real.stderr);
    assert.match(real.stderr, /3 bad row\(s\), nothing imported .*line 1: the value of "email" holds the lone surrogate \\udce9/);
    assert.deepEqual([s.rows("SELECT count(*) AS n FROM users")[0]!["n"], s.rows("SELECT count(*) AS n FROM jobs")[0]!["n"]], [0, 0], "no account, no failed job");
    const rest = await s.runHere(["users", "import", jsonl, "--batch", "1", "--skip-bad"]);
    assert.equal(rest.code, 0, rest.stderr);
    assert.deepEqual(s.rows("SELECT email, username FROM users"), [{ email: "ok@example.org", username: "ok" }]);
  });
});
