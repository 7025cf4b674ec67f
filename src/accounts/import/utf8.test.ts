// The import decoder: valid UTF-8 decodes exactly as the platform's own decoder (an independent
// implementation: WHATWG TextDecoder) whatever the chunking, and every ill-formed sequence of
// Unicode's table 3-7 (overlong, surrogate, above U+10FFFF, truncated, stray continuation) is refused.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decodeUTF8, encodingProblem } from "./utf8.ts";

async function decode(chunks: Array<string | Uint8Array>): Promise<string> {
  let out = "";
  for await (const s of decodeUTF8(chunks)) out += s;
  return out;
}

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

describe("UTF-8 decoding of import files", () => {
  it("refuses every ill-formed sequence, naming the first byte that is not UTF-8", async () => {
    const cases: Array<[string, Uint8Array, string]> = [
      ["Latin-1 é", bytes(0x6a, 0xe9, 0x40), "j\udce9@"],
      ["overlong NUL", bytes(0xc0, 0x80), "\udcc0\udc80"],
      ["overlong slash (3 bytes)", bytes(0xe0, 0x80, 0xaf), "\udce0\udc80\udcaf"],
      ["encoded surrogate U+D800", bytes(0xed, 0xa0, 0x80), "\udced\udca0\udc80"],
      ["above U+10FFFF", bytes(0xf4, 0x90, 0x80, 0x80), "\udcf4\udc90\udc80\udc80"],
      ["lead byte F5", bytes(0xf5, 0x80, 0x80, 0x80), "\udcf5\udc80\udc80\udc80"],
      ["stray continuation", bytes(0x61, 0x80, 0x62), "a\udc80b"],
      ["truncated before ASCII", bytes(0xe2, 0x82, 0x41), "\udce2\udc82A"],
      ["truncated at the end of the file", bytes(0x61, 0xf0, 0x9f, 0x98), "a\udcf0\udc9f\udc98"],
    ];
    for (const [name, input, expected] of cases) {
      const text = await decode([input]);
      assert.equal(text, expected, name);
      assert.match(encodingProblem(text) ?? "", /^is not valid UTF-8 \(byte 0x[0-9A-F]{2}\)/, name);
    }
    assert.equal(encodingProblem("ok", "密码 😀"), null);
    assert.match(encodingProblem("a", "x\ud800y") ?? "", /unpaired UTF-16 surrogate/);
  });

  it("keeps a byte-order mark and a genuine U+FFFD as text: only bytes that are not UTF-8 are refused", async () => {
    const text = await decode([bytes(0xef, 0xbb), bytes(0xbf, 0x61, 0xef, 0xbf, 0xbd)]);
    assert.equal(text, "\ufeffa\ufffd");
    assert.equal(encodingProblem(text), null);
  });

  it("decodes like TextDecoder, and refuses exactly what its fatal mode refuses, however the bytes are split (property)", async () => {
    const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    const input = fc.oneof(
      fc.string({ unit: "binary", maxLength: 40 }).map((s) => new Uint8Array(Buffer.from(s, "utf8"))),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.constantFrom(0x61, 0x80, 0xbf, 0xc2, 0xc0, 0xe0, 0xa0, 0xed, 0x9f, 0xf0, 0x90, 0xf4, 0x8f, 0xff), { maxLength: 20 }).map((b) => Uint8Array.from(b)),
    );
    await fc.assert(
      fc.asyncProperty(input, fc.array(fc.nat(), { maxLength: 4 }), async (all, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
        const chunks: Uint8Array[] = [];
        let from = 0;
        for (const p of [...points, all.length]) {
          chunks.push(all.subarray(from, p));
          from = p;
        }
        const text = await decode(chunks);
        let reference: string | null = null;
        try {
          reference = strict.decode(all);
        } catch {
          reference = null;
        }
        if (reference === null) assert.notEqual(encodingProblem(text), null, "refused by TextDecoder, so refused here");
        else assert.equal(text, reference);
      }),
      { numRuns: 2000 },
    );
  });
});
