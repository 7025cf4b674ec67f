// Property tests of the checksum-file parser: any input gives entries, skips or malformed lines
// with a reason — never a throw or a hang — and what sha256sum would print parses back exactly.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MAX_SUMS_LINE, parseSums, parseSumsLine } from "./sums-parse.ts";

/** Formats a line as GNU sha256sum does, escaping "\\", "\n" and "\r" when the name has one. */
function gnuLine(hex: string, name: string, binary: boolean): string {
  const escaped = /[\\\n\r]/.test(name);
  const n = escaped ? name.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r") : name;
  return `${escaped ? "\\" : ""}${hex} ${binary ? "*" : " "}${n}`;
}

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex"));
// A trailing "\r" cannot survive (CRLF files are normalised), as with sha256sum -c.
const name = fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }).filter((s) => !s.endsWith("\r") && !/\r$/.test(s));

describe("sums parser properties", () => {
  it("parses back any name and digest that sha256sum would print", () => {
    fc.assert(
      fc.property(hex64, name, fc.boolean(), (hex, n, binary) => {
        const r = parseSumsLine(gnuLine(hex, n, binary), 1);
        assert.deepEqual(r, { kind: "entry", line: 1, name: n, sha256: hex, binary, format: "gnu" });
      }),
      { numRuns: 500 },
    );
  });

  it("parses back the BSD form for names without escapes", () => {
    fc.assert(
      fc.property(hex64, name.filter((s) => !/[\\\n]/.test(s)), (hex, n) => {
        const r = parseSumsLine(`SHA256 (${n}) = ${hex}`, 1);
        assert.equal(r.kind === "entry" && r.name, n);
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on arbitrary strings, and every refusal carries a reason", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), fc.string({ unit: "grapheme", maxLength: 200 })), (s) => {
        const r = parseSumsLine(s, 7);
        assert.ok(["entry", "skip", "malformed"].includes(r.kind));
        if (r.kind === "malformed") assert.ok(r.reason.length > 0);
        if (r.kind === "entry") assert.match(r.sha256, /^[0-9a-f]{64}$/);
      }),
      { numRuns: 2000 },
    );
  });

  it("streams binary junk into counted malformed lines", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 500 }), { maxLength: 20 }), async (chunks) => {
        let n = 0;
        for await (const l of parseSums(chunks)) {
          n++;
          assert.ok(l.line >= 1);
        }
        assert.ok(n <= chunks.reduce((a, c) => a + c.length, 0) + 1);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses huge lines without holding them and stays fast on regex-hostile input", async () => {
    const hostile = [
      "x".repeat(MAX_SUMS_LINE * 100),
      "\n",
      `SHA256 (${") = a".repeat(3000)}`,
      "\n",
      `SHA256 (${"(".repeat(10_000)}`,
      "\n",
      "a".repeat(10_000),
      "\n",
    ];
    const out = [];
    for await (const l of parseSums(hostile)) out.push(l);
    assert.equal(out.length, 4);
    assert.ok(out.every((l) => l.kind === "malformed"));
    assert.match(out[0]?.kind === "malformed" ? out[0].reason : "", /longer than/);
  });
});
