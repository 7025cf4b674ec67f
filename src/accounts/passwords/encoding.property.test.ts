// Unpadded base64 as PHC strings carry it: exactly one accepted spelling per byte string, so a tampered
// salt or digest can never be read as a different valid one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { b64NoPadLength, decodeB64NoPad, encodeB64NoPad } from "./encoding.ts";

// The definition, spelled the slow way: decode, re-encode, and accept only if nothing changed.
function oracle(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*$/.test(text) || text.length % 4 === 1) return null;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64").replace(/=+$/, "") === text ? bytes : null;
}

const b64ish = fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_. ".split("")), maxLength: 64 });

describe("unpadded base64 (PHC)", () => {
  it("round-trips every byte string", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      assert.deepEqual(decodeB64NoPad(encodeB64NoPad(bytes)), Buffer.from(bytes));
    }), { numRuns: 1000 });
  });

  it("accepts and refuses exactly what decoding and re-encoding would", () => {
    fc.assert(fc.property(b64ish, (text) => {
      assert.deepEqual(decodeB64NoPad(text), oracle(text), JSON.stringify(text));
    }), { numRuns: 5000 });
  });

  it("measures without decoding exactly what decoding accepts, and refuses the rest", () => {
    fc.assert(fc.property(fc.oneof(b64ish, fc.uint8Array({ maxLength: 80 }).map(encodeB64NoPad)), (text) => {
      assert.equal(b64NoPadLength(text), oracle(text)?.length ?? null, JSON.stringify(text));
    }), { numRuns: 5000 });
  });

  it("refuses a second spelling of the same bytes (non-zero spare bits), padding, and a lone last character", () => {
    assert.deepEqual(decodeB64NoPad("AA"), Buffer.from([0]));
    assert.equal(decodeB64NoPad("AB"), null, "spare bits set: would decode to the same byte as AA");
    assert.deepEqual(decodeB64NoPad("AAA"), Buffer.from([0, 0]));
    assert.equal(decodeB64NoPad("AAB"), null);
    assert.equal(decodeB64NoPad("AA=="), null);
    assert.equal(decodeB64NoPad("AAAAA"), null);
    assert.equal(decodeB64NoPad("AA-_"), null, "the URL-safe alphabet is another format");
  });
});
