// Address and subject checks, with known cases and property tests on random and hostile input.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { addressProblem, checkAddress, checkSubject, checkBody } from "./validate.ts";

describe("address checks", () => {
  it("accepts plain addresses", () => {
    for (const a of ["ana@example.org", "a.b+tag@sub.example.co.uk", "x_y-z@xn--bcher-kva.example", "o'neil@example.ie"]) {
      assert.equal(addressProblem(a), null, a);
    }
  });

  it("rejects display names, lists, comments, quoting and malformed domains", () => {
    for (const a of ["Ana <ana@example.org>", "a@b.c,d@e.f", "ana(x)@example.org", "\"a b\"@example.org", "ana@", "@example.org", "ana@localhost", "ana@-x.org", "a..b@example.org", ".a@example.org", "ana@exa_mple.org", `${"a".repeat(65)}@example.org`, `a@${"b".repeat(250)}.org`]) {
      assert.notEqual(addressProblem(a), null, a);
    }
  });

  it("rejects every address that contains CR or LF (property)", () => {
    fc.assert(fc.property(fc.string(), fc.constantFrom("\r", "\n", "\r\n"), fc.string(), (a, br, b) => {
      assert.throws(() => checkAddress("to", `${a}${br}${b}`), { code: "BULWARK_ERR_MAIL_ADDRESS" });
    }), { numRuns: 500 });
  });

  it("never crashes or hangs on random, huge or binary input (property)", () => {
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 5000 }), fc.string({ unit: "binary", maxLength: 500 }), fc.string({ unit: "grapheme", maxLength: 200 })), (s) => {
      const problem = addressProblem(s);
      assert.ok(problem === null || typeof problem === "string");
      if (problem === null) assert.ok(!/[\r\n]/.test(s));
    }), { numRuns: 500 });
    assert.notEqual(addressProblem(`${"a".repeat(1_000_000)}@example.org`), null);
    assert.notEqual(addressProblem(`a@${"b.".repeat(200_000)}org`), null);
  });
});

describe("subject and body checks", () => {
  it("rejects every subject that contains a control character (property)", () => {
    fc.assert(fc.property(fc.string(), fc.integer({ min: 0, max: 31 }), fc.string(), (a, code, b) => {
      assert.throws(() => checkSubject(`x${a}${String.fromCharCode(code)}${b}`), { code: "BULWARK_ERR_MAIL_SUBJECT" });
    }), { numRuns: 500 });
  });

  it("accepts a unicode subject and refuses an empty or over-long one", () => {
    assert.equal(checkSubject("Votre mot de passe a été modifié ✓"), "Votre mot de passe a été modifié ✓");
    assert.throws(() => checkSubject("   "), { code: "BULWARK_ERR_MAIL_SUBJECT" });
    assert.throws(() => checkSubject("x".repeat(251)), /longer than 250/);
  });

  it("allows line breaks in a body (it is MIME-encoded) but bounds its size", () => {
    assert.equal(checkBody("text", "line 1\r\nline 2\n"), "line 1\r\nline 2\n");
    assert.throws(() => checkBody("text", "x".repeat(1_048_577)), { code: "BULWARK_ERR_MAIL_MESSAGE" });
  });
});
