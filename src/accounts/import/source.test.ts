// JSONL and CSV rows as the importer sees them: numbered, named columns, malformed rows reported
// (never thrown), over-long lines bounded, hostile JSON (deep nesting, junk) survived.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { readLines } from "./lines.ts";
import { readRows, type SourceRow } from "./source.ts";

async function rows(text: string[], format: "csv" | "jsonl", maxLineChars?: number): Promise<SourceRow[]> {
  const out: SourceRow[] = [];
  async function* gen(): AsyncGenerator<string> {
    yield* text;
  }
  for await (const r of readRows(gen(), { format, ...(maxLineChars ? { maxLineChars } : {}) })) out.push(r);
  return out;
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
              assert.match((error as Error).message, /holds an object or array/);
            }
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});
