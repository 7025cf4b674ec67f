// JSONL and CSV rows as the importer sees them: numbered, named columns, malformed rows reported
// (never thrown), over-long lines bounded, hostile JSON (deep nesting, junk) survived, numbers kept
// exactly, repeated keys and columns refused, bytes that are not UTF-8 and escaped lone surrogates
// refused by line.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ImportFormatError } from "./errors.ts";
import { readLines } from "./lines.ts";
import { readRows, type SourceRow } from "./source.ts";

async function rows(text: Array<string | Uint8Array>, format: "csv" | "jsonl", maxLineChars?: number): Promise<SourceRow[]> {
  const out: SourceRow[] = [];
  async function* gen(): AsyncGenerator<string | Uint8Array> {
    yield* text;
  }
  for await (const r of readRows(gen(), { format, ...(maxLineChars ? { maxLineChars } : {}) })) out.push(r);
  return out;
}

/** Each row as "line:value of column" or "line:error". */
async function summary(text: Array<string | Uint8Array>, format: "csv" | "jsonl", column: string): Promise<string[]> {
  return (await rows(text, format)).map((r) => {
    if ("error" in r) return `${r.line}:${r.error}`;
    try {
      return `${r.line}:${r.get(column)}`;
    } catch (error) {
      return `${r.line}:${(error as Error).message}`;
    }
  });
}

describe("import sources", () => {
  it("reads JSONL objects by key, numbering lines and skipping blank ones", async () => {
    const got = await rows(['{"email":"a@example.org","uid":7,"ok":true}\r\n', "\n", '{"email":"b@example.org","x":null}'], "jsonl");
    assert.equal(got.length, 2);
    const [a, b] = got;
    assert.ok(a && "get" in a && b && "get" in b);
    assert.equal(a.line, 1);
    assert.equal(a.get("email"), "a@example.org");
    assert.equal(a.get("uid"), "7");
    assert.equal(a.get("ok"), "1");
    assert.equal(a.get("missing"), undefined);
    assert.equal(b.line, 3);
    assert.equal(b.get("x"), undefined, "null is an absent value");
  });

  it("reports bad JSONL lines with their number and keeps going", async () => {
    const got = await rows(['{"email":"a@example.org"}\n', "not json\n", "[1,2]\n", '{"email":{"nested":1}}\n', '{"email":"c@example.org"}\n'], "jsonl");
    assert.deepEqual(got.map((r) => ("error" in r ? `${r.line}:${r.error.slice(0, 12)}` : `${r.line}:ok`)), ["1:ok", "2:is not valid", "3:is not a JSO", "4:ok", "5:ok"]);
    const nested = got[3];
    assert.ok(nested && "get" in nested);
    assert.throws(() => nested.get("email"), /holds an object or array/);
  });

  it("reports an over-long JSONL line without buffering it, and reads the next one", async () => {
    const got = await rows(["x".repeat(50), "y".repeat(50), '\n{"a":"1"}\n'], "jsonl", 64);
    assert.deepEqual(got.map((r) => ("error" in r ? r.error : "ok")), ["line is too long", "ok"]);
  });

  it("reports CSV rows whose column count differs from the header", async () => {
    const got = await rows(["email,name\r\na@example.org,A\r\nb@example.org\r\nc@example.org,C,extra\r\n"], "csv");
    assert.deepEqual(got.map((r) => ("error" in r ? `${r.line}:${r.error}` : `${r.line}:${r.get("name")}`)), ["2:A", "3:has 1 fields, the header has 2", "4:has 3 fields, the header has 2"]);
  });

  it("keeps the digits of a JSONL integer of any size, and refuses a fraction or an exponent instead of rounding it", async () => {
    // Finding: 12345678901234567891 was stored as "12345678901234567000" (and a neighbour id then
    // flagged as its duplicate), 1e21 as "1e+21", and 1e400 called "an object or array".
    const got = await summary([
      '{"email":"a@example.org","external_id":12345678901234567890}\n',
      '{"email":"b@example.org","external_id":12345678901234567891}\n',
      '{"email":"c@example.org","external_id":-42, "nested":{"external_id":1e400}}\n',
      '{"email":"d@example.org","external_id":1e21}\n',
      '{"email":"e@example.org","external_id":1e400}\n',
      '{"email":"f@example.org","external_id":1.0}\n',
      '{"email":"g@example.org","external_id":"1e21"}\n',
    ], "jsonl", "external_id");
    assert.deepEqual(got, [
      "1:12345678901234567890",
      "2:12345678901234567891",
      "3:-42",
      '4:"external_id" holds the number 1e21, which is not a whole number written in digits (quote it to keep it as text)',
      '5:"external_id" holds the number 1e400, which is not a whole number written in digits (quote it to keep it as text)',
      '6:"external_id" holds the number 1.0, which is not a whole number written in digits (quote it to keep it as text)',
      "7:1e21",
    ]);
  });

  it("refuses a JSONL line that repeats a top-level key, naming it, escaped spellings included, but not keys of nested objects", async () => {
    // Finding: {"email":"e@…","email":"f@…"} silently imported f@.
    const got = await summary([
      '{"email":"e@example.org","email":"f@example.org"}\n',
      '{"email":"e@example.org","em\\u0061il":"f@example.org"}\n',
      '{"a":{"email":"x","email":"y"},"b":[{"email":1},{"email":2}],"email":"ok@example.org","s":"\\"email\\":"}\n',
      '{"x":"\\\\","email":"n@example.org", "x" :1}\n',
      '{"":1,"email":"z@example.org","":2}\n',
    ], "jsonl", "email");
    assert.deepEqual(got, [
      '1:has the key "email" more than once',
      '2:has the key "email" more than once',
      "3:ok@example.org",
      '4:has the key "x" more than once',
      '5:has the key "" more than once',
    ]);
  });

  it("refuses, by line and field, a JSONL key or value escaping a lone surrogate; an escaped pair reads as its character", async () => {
    // Finding: the line's text is valid UTF-8, so "jos\udce9@" and "jos\udce8@" passed; the store then kept U+FFFD
    // for both, merging two addresses (the dry run said "would create 2", the real run died on the unique index).
    const got = await summary([
      '{"email":"jos\\udce9@example.org","display_name":"Jos\\ud800"}\n',
      '{"email":"a@example.org","display_name":"x\\ude00\\ud83d"}\n',
      '{"em\\udcaaail":"x","email":"b@example.org"}\n',
      '{"email":"c@example.org","unmapped":"\\udfff"}\n',
      '{"email":"d@example.org","display_name":"\\ud83d\\ude00","nested":{"n":"\\ud800"}}\n',
    ], "jsonl", "display_name");
    const why = (field: string, unit: string): string => `${field} holds the lone surrogate \\u${unit} (half of a UTF-16 pair), which is not a character; write the character itself, as UTF-8`;
    assert.deepEqual(got, [
      `1:${why('the value of "email"', "dce9")}`,
      `2:${why('the value of "display_name"', "de00")}`,
      `3:${why('the key "em\\udcaaail"', "dcaa")}`,
      `4:${why('the value of "unmapped"', "dfff")}`,
      "5:😀",
    ]);
  });

  it("refuses a CSV header that names a column twice, naming it", async () => {
    // Finding: with "email,display_name,email" the last column silently fed the email.
    await assert.rejects(rows(["email,display_name,email\na@example.org,Ann,b@example.org\n"], "csv"), (e: unknown) => e instanceof ImportFormatError && e.line === 1 && /names the column "email" twice \(columns 1 and 3\)/.test(e.message));
    await assert.rejects(rows(["uid, mail ,name,mail\n"], "csv"), /the column "mail" twice \(columns 2 and 4\)/);
    // Unnamed columns (trailing commas, as spreadsheets write) feed no field and may repeat.
    assert.deepEqual(await summary(["email,,\na@example.org,,\n"], "csv", "email"), ["2:a@example.org"]);
  });

  it("refuses, by line, rows holding bytes that are not UTF-8, and reads a character split between chunks", async () => {
    // Finding: jos\xe9@ and jos\xe8@ were both read as "jos\ufffd@", so an update hit the wrong account.
    const csv = [Buffer.from("email,name\nana@example.org,Jos", "latin1"), Buffer.from("\xe9\njos\xe9@example.org,x\n", "latin1"), Buffer.from("jos\xe8@example.org,\"multi\nline\"\nok@example.org,y\n", "latin1")];
    assert.deepEqual(await summary(csv, "csv", "email"), [
      "2:is not valid UTF-8 (byte 0xE9); save the file as UTF-8, e.g. iconv -f latin1 -t utf-8",
      "3:is not valid UTF-8 (byte 0xE9); save the file as UTF-8, e.g. iconv -f latin1 -t utf-8",
      "4:is not valid UTF-8 (byte 0xE8); save the file as UTF-8, e.g. iconv -f latin1 -t utf-8",
      "6:ok@example.org",
    ]);
    const jsonl = Buffer.from('{"email":"jos\xe9@example.org"}\n{"email":"b@example.org"}\n', "latin1");
    assert.deepEqual(await summary([jsonl], "jsonl", "email"), ["1:is not valid UTF-8 (byte 0xE9); save the file as UTF-8, e.g. iconv -f latin1 -t utf-8", "2:b@example.org"]);
    await assert.rejects(rows([Buffer.from("m\xe9l,name\n", "latin1")], "csv"), /line 1: the header row is not valid UTF-8 \(byte 0xE9\)/);
    // Valid UTF-8 whose characters straddle chunk boundaries reads as written, in both formats.
    const text = Buffer.from('email,name\n"józef@example.org",密码 ✓ 😀\n', "utf8");
    const asJSON = Buffer.from('{"email":"józef@example.org","name":"密码 ✓ 😀"}\n', "utf8");
    for (let cut = 1; cut < text.length; cut++) assert.deepEqual(await summary([text.subarray(0, cut), text.subarray(cut)], "csv", "name"), ["2:密码 ✓ 😀"], `csv cut at ${cut}`);
    for (let cut = 1; cut < asJSON.length; cut++) assert.deepEqual(await summary([asJSON.subarray(0, cut), asJSON.subarray(cut)], "jsonl", "name"), ["1:密码 ✓ 😀"], `jsonl cut at ${cut}`);
  });

  it("splits lines identically whatever the chunking (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: fc.constantFrom("a", "\n", "\r", "é"), maxLength: 60 }), fc.nat(), async (text, cut) => {
        const at = cut % (text.length + 1);
        const collect = async (parts: string[]): Promise<unknown[]> => {
          const out = [];
          for await (const l of readLines(parts, 1000)) out.push(l);
          return out;
        };
        assert.deepEqual(await collect([text.slice(0, at), text.slice(at)]), await collect([text]));
      }),
      { numRuns: 300 },
    );
  });

  it("survives hostile JSONL: deep nesting, binary junk, huge numbers, unicode (property)", async () => {
    const hostile = fc.oneof(
      fc.nat({ max: 200_000 }).map((n) => "[".repeat(n) + "]".repeat(n)),
      fc.nat({ max: 100_000 }).map((n) => '{"a":'.repeat(n) + "1" + "}".repeat(n)),
      fc.uint8Array({ maxLength: 500 }).map((b) => Buffer.from(b).toString("latin1")),
      fc.json(),
      fc.string({ unit: "grapheme", maxLength: 200 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(hostile, { maxLength: 4 }), async (lines) => {
        const got = await rows([lines.join("\n")], "jsonl", 1_000_000);
        for (const r of got) {
          if ("get" in r) {
            try {
              r.get("email");
            } catch (error) {
              assert.match((error as Error).message, /holds an object or array|which is not a whole number/);
            }
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});
