import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { scanJSONKeys } from "./json-keys.ts";

describe("scanJSONKeys", () => {
  it("finds a key repeated in one object at any depth, with escapes decoded, and names its path", () => {
    assert.deepEqual(scanJSONKeys('{"a":1,"a":2}').duplicate, { key: "a", path: "a" });
    assert.deepEqual(scanJSONKeys('{"a":1,"b":{"c":{"d":1,"d":2}}}').duplicate, { key: "d", path: "b.c.d" });
    assert.deepEqual(scanJSONKeys('{"list":[{"x":1},{"x":2,"x":3}]}').duplicate, { key: "x", path: "list[].x" });
    assert.deepEqual(scanJSONKeys('{"em\\u0061il":"a","email":"b"}').duplicate, { key: "email", path: "email" });
    assert.deepEqual(scanJSONKeys('{"":1,"":2}').duplicate, { key: "", path: "" });
  });

  it("with nested: false, checks the top-level object's own keys only", () => {
    assert.equal(scanJSONKeys('{"a":{"k":1,"k":2},"b":[{"k":1,"k":2}]}', { nested: false }).duplicate, null);
    assert.deepEqual(scanJSONKeys('{"a":{"k":1,"k":2},"b":1,"b":2}', { nested: false }).duplicate, { key: "b", path: "b" });
  });

  it("accepts equal keys in different objects, and keys or brackets inside string values", () => {
    assert.equal(scanJSONKeys('{"a":{"k":1},"b":{"k":1},"c":[{"k":1},{"k":2}]}').duplicate, null);
    assert.equal(scanJSONKeys('{"a":"\\"a\\":1,{\\"a\\":[","b":"}]"}').duplicate, null);
    assert.equal(scanJSONKeys('{ "a" : "a" , "b" : [ "a" , "a" ] }').duplicate, null);
  });

  it("keeps the source text of the top-level object's own numbers only", () => {
    const scan = scanJSONKeys('{"uid":12345678901234567891,"n":-1.5e3,"nested":{"uid":7},"arr":[8]}');
    assert.deepEqual([...scan.topLevelNumbers], [["uid", "12345678901234567891"], ["n", "-1.5e3"]]);
  });

  it("walks deep nesting without recursion", () => {
    const deep = `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`;
    assert.equal(scanJSONKeys(deep).duplicate, null);
    const deepDup = `${'{"a":'.repeat(50_000)}{"z":1,"z":2}${"}".repeat(50_000)}`;
    assert.equal(scanJSONKeys(deepDup).duplicate?.key, "z");
  });
});
