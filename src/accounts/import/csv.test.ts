// The RFC 4180 reader: quoting rules, line numbers, chunk boundaries, and hostile input (bounded,
// never a crash or a hang).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseCSV, type CsvLimits } from "./csv.ts";
import { ImportFormatError } from "./errors.ts";

async function parse(chunks: string[], limits?: CsvLimits): Promise<Array<{ line: number; fields: string[] }>> {
  const out = [];
  for await (const r of parseCSV(chunks, limits)) out.push(r);
  return out;
}

function encode(records: string[][], eol: string): string {
  const field = (f: string): string => (/[",\r\n]/.test(f) || f === "" ? `"${f.replaceAll('"', '""')}"` : f);
  return records.map((r) => r.map(field).join(",")).join(eol) + eol;
}

describe("CSV reader", () => {
  it("reads quoted fields, doubled quotes, CRLF and line breaks inside quotes with the right line numbers", async () => {
    const text = 'a,b,c\r\n"x, y","say ""hi""",\r\n"multi\nline",2,3\n\nlast,"",end';
    assert.deepEqual(await parse([text]), [
      { line: 1, fields: ["a", "b", "c"] },
      { line: 2, fields: ["x, y", 'say "hi"', ""] },
      { line: 3, fields: ["multi\nline", "2", "3"] },
      { line: 6, fields: ["last", "", "end"] },
    ]);
  });

  it("gives the same records however the text is split into chunks", async () => {
    const text = '\ufeffh1,h2\r\n"a\r\nb","c""d"\r\ne,f\r\n';
    const whole = await parse([text]);
    assert.deepEqual(whole[0], { line: 1, fields: ["h1", "h2"] }, "a byte-order mark is dropped");
    for (let cut = 1; cut < text.length; cut++) assert.deepEqual(await parse([text.slice(0, cut), text.slice(cut)]), whole, `cut at ${cut}`);
  });

  it("refuses a stray quote, text after a closing quote and an unterminated quoted field, naming the line", async () => {
    await assert.rejects(parse(['a,b\nx,y"z\n']), (e: unknown) => e instanceof ImportFormatError && e.line === 2 && /quote inside an unquoted field/.test(e.message));
    await assert.rejects(parse(['a\n"x"y\n']), /line 2: unexpected character after a closing quote/);
    await assert.rejects(parse(['a\n\n"open\nstill open']), /line 3: a quoted field is not terminated/);
  });

  it("bounds field length, record length and column count", async () => {
    const limits = { maxFieldChars: 10, maxRecordChars: 25, maxFields: 4 };
    await assert.rejects(parse(["a\n" + "x".repeat(11)], limits), /line 2: a field is longer than 10/);
    await assert.rejects(parse(["a\n" + "123456789,".repeat(3)], limits), /a record is longer than 25/);
    await assert.rejects(parse(["a,b,c,d,e\n"], limits), /more than 4 columns/);
    // An unterminated quote cannot buffer the rest of the file.
    await assert.rejects(parse(['"' + "y".repeat(100)], limits), /longer than 10/);
  });

  it("round-trips any records a writer quotes correctly (property)", async () => {
    const cell = fc.string({ unit: fc.constantFrom("a", "é", "密", ",", '"', "\r", "\n", " ", "x", "\u0000"), maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(cell, { minLength: 2, maxLength: 5 }), { minLength: 1, maxLength: 8 }), fc.constantFrom("\n", "\r\n"), fc.nat(), async (records, eol, cut) => {
        const text = encode(records, eol);
        const at = cut % (text.length + 1);
        const parsed = await parse([text.slice(0, at), text.slice(at)]);
        assert.deepEqual(parsed.map((r) => r.fields), records);
      }),
      { numRuns: 300 },
    );
  });

  it("never crashes or hangs on random and hostile input: records or an ImportFormatError (property)", async () => {
    const junk = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ unit: fc.constantFrom('"', ",", "\r", "\n", "a"), maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
      fc.nat({ max: 5000 }).map((n) => '"'.repeat(n)),
    );
    await fc.assert(
      fc.asyncProperty(junk, async (text) => {
        try {
          const records = await parse([text], { maxFieldChars: 100, maxRecordChars: 200, maxFields: 20 });
          for (const r of records) assert.ok(r.fields.length <= 20 && r.fields.every((f) => f.length <= 100));
        } catch (error) {
          assert.ok(error instanceof ImportFormatError, String(error));
        }
      }),
      { numRuns: 500 },
    );
  });

  it("reads a 20 MB line of junk within its bounds, without holding it", async () => {
    const big = "z".repeat(1 << 20);
    const chunks = function* (): Generator<string> {
      yield "h\n";
      for (let i = 0; i < 20; i++) yield big;
    };
    await assert.rejects(parse([...chunks()]), /line 2: a field is longer than 65536/);
  });
});
