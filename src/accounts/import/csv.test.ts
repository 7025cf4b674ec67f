// The RFC 4180 reader: quoting rules, line numbers (CR-only files too), chunk boundaries, malformed
// records reported and skipped, and hostile input (bounded, never a crash or a hang).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseCSV, type CsvLimits, type CsvRecord } from "./csv.ts";
import { ImportFormatError } from "./errors.ts";

async function parse(chunks: Array<string | Uint8Array>, limits?: CsvLimits): Promise<CsvRecord[]> {
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

  it("reports every stray quote and text after a closing quote as a bad record and reads on from the next line", async () => {
    // Finding: the first stray quote used to stop the whole dry run, hiding every later bad row.
    const text = 'email,name\nx@example.org,y"z\nok@example.org,"fine"\n"a@example.org"x,"b\n"",c"\nlast@example.org,"q"q\r\nend@example.org,e';
    assert.deepEqual(await parse([text]), [
      { line: 1, fields: ["email", "name"] },
      { line: 2, error: "a quote inside an unquoted field (quote the whole field and double the quote)" },
      { line: 3, fields: ["ok@example.org", "fine"] },
      // The rest of line 4 is skipped, quotes and all: line 5 starts a record of its own.
      { line: 4, error: "unexpected character after a closing quote (a quote inside a quoted field must be doubled)" },
      { line: 5, error: 'a quote inside an unquoted field (quote the whole field and double the quote)' },
      { line: 6, error: "unexpected character after a closing quote (a quote inside a quoted field must be doubled)" },
      { line: 7, fields: ["end@example.org", "e"] },
    ]);
    // A record that broke on a later line of a multi-line field is reported at its first line, naming the other.
    assert.deepEqual(await parse(['h,i\n"multi\nline" x,1\nnext,2\n']), [
      { line: 1, fields: ["h", "i"] },
      { line: 2, error: "unexpected character after a closing quote (a quote inside a quoted field must be doubled) (on line 3)" },
      { line: 4, fields: ["next", "2"] },
    ]);
  });

  it("refuses an unterminated quoted field, naming the line it opened on", async () => {
    await assert.rejects(parse(['a\n\n"open\nstill open']), (e: unknown) => e instanceof ImportFormatError && e.line === 3 && /a quoted field is not terminated/.test(e.message));
  });

  it("counts a bare CR inside quotes as a line break, as it does outside (CR-only files)", async () => {
    // Finding: in a CR-only file a quoted line break was not counted, so every later line number was off.
    assert.deepEqual(await parse(['email,name\ra@example.org,"two\rlines"\rbad,B\r"x\r\ny",z\rlast,L']), [
      { line: 1, fields: ["email", "name"] },
      { line: 2, fields: ["a@example.org", "two\rlines"] },
      { line: 4, fields: ["bad", "B"] },
      { line: 5, fields: ["x\r\ny", "z"] },
      { line: 7, fields: ["last", "L"] },
    ]);
  });

  it("numbers each record by the physical lines before it, whatever the line breaks and chunking (property)", async () => {
    const cell = fc.string({ unit: fc.constantFrom("a", ",", '"', "\r", "\n", "\r\n"), maxLength: 6 });
    const breaks = (t: string): number => (t.match(/\r\n|\r|\n/g) ?? []).length;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(cell, { minLength: 2, maxLength: 3 }), { minLength: 1, maxLength: 6 }), fc.constantFrom("\n", "\r\n", "\r"), fc.nat(), async (records, eol, cut) => {
        const field = (f: string): string => `"${f.replaceAll('"', '""')}"`;
        const texts = records.map((r) => r.map(field).join(","));
        const text = texts.join(eol) + eol;
        const at = cut % (text.length + 1);
        const parsed = await parse([text.slice(0, at), text.slice(at)]);
        let before = "";
        const lines = texts.map((t) => {
          const line = 1 + breaks(before);
          before += t + eol;
          return line;
        });
        assert.deepEqual(parsed.map((r) => r.line), lines);
      }),
      { numRuns: 300 },
    );
  });

  it("decodes bytes, a character split between two chunks included, and carries bytes that are not UTF-8 as unpaired surrogates", async () => {
    const bytes = Buffer.from("email\njosé@example.org\n", "utf8");
    const cut = bytes.indexOf(0xa9); // between the two bytes of "é"
    assert.deepEqual(await parse([bytes.subarray(0, cut), bytes.subarray(cut)]), [{ line: 1, fields: ["email"] }, { line: 2, fields: ["josé@example.org"] }]);
    const latin1 = await parse([Buffer.from("email\njos\xe9@example.org\n", "latin1")]);
    assert.deepEqual(latin1[1], { line: 2, fields: ["jos\udce9@example.org"] }, "never U+FFFD: the row can still be told apart and refused");
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
        assert.deepEqual(parsed.map((r) => ("fields" in r ? r.fields : r.error)), records);
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
          for (const r of records) assert.ok("error" in r || (r.fields.length <= 20 && r.fields.every((f) => f.length <= 100)));
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
