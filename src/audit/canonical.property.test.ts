// Canonical audit data: the value handed back to callers is exactly what the stored text decodes to, and
// the text does not depend on the order keys were written in.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { canonicalJSON, canonicalValue } from "./canonical.ts";

// JSON-like values plus what audit callers really pass: Dates, bigints, undefined members, -0, odd keys.
const leaf = fc.oneof(
  fc.string(), fc.boolean(), fc.constant(null), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(),
  fc.constant(-0), fc.bigInt(), fc.date({ noInvalidDate: true }), fc.constant(undefined),
);
const key = fc.oneof(fc.string(), fc.constantFrom("__proto__", "constructor", "toString", "0", "10", "2"));
const { tree } = fc.letrec((tie) => ({
  tree: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("tree")), fc.dictionary(key, tie("tree"))),
}));
const objectTree = fc.dictionary(key, tree);

describe("canonical audit data", () => {
  it("hands back what the stored text decodes to, for any data", () => {
    fc.assert(fc.property(objectTree, (data) => {
      assert.deepStrictEqual(canonicalValue(data), JSON.parse(canonicalJSON(data)));
    }), { numRuns: 500 });
  });

  it("encodes the same data written in any key order to the same text", () => {
    fc.assert(fc.property(objectTree, (data) => {
      const reversed = Object.fromEntries(Object.entries(data).reverse());
      assert.equal(canonicalJSON(reversed), canonicalJSON(data));
    }), { numRuns: 300 });
  });

  it("keeps a __proto__ key as data: it is encoded and never becomes a prototype", () => {
    const data = JSON.parse('{"__proto__": {"admin": true}, "user": "ana"}') as Record<string, unknown>;
    assert.equal(canonicalJSON(data), '{"__proto__":{"admin":true},"user":"ana"}');
    const value = canonicalValue(data) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.equal((value as { admin?: unknown }).admin, undefined, "the nested object's fields are not inherited");
    assert.deepEqual(Object.keys(value), ["__proto__", "user"]);
  });

  it("hands back 0 for -0, as the text says", () => {
    assert.equal(canonicalJSON({ n: -0 }), '{"n":0}');
    assert.ok(Object.is((canonicalValue({ n: -0 }) as { n: number }).n, 0));
  });

  it("refuses non-finite numbers and functions with the reason", () => {
    assert.throws(() => canonicalJSON({ n: Number.NaN }), /non-finite number/);
    assert.throws(() => canonicalJSON({ f: () => 1 }), /value of type function/);
  });
});
