// The range-response parser: what counts as an answer. A body that is not one must make a fail-closed
// checker refuse the password, never read it as "clean".
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createRangeBreachChecker } from "./range-checker.ts";
import { findSuffixCount } from "./range-response.ts";

// SHA-1("password") = 5BAA6 1E4C9B93F3F0682250B6CF8331B7EE68FD8 (sha1sum); 3,730,471 in Pwned Passwords.
const SUFFIX = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";

describe("findSuffixCount", () => {
  test("reads the count of the suffix, 0 when it is absent or only padding", () => {
    assert.deepEqual(findSuffixCount(`${SUFFIX}:3730471\r\n`, SUFFIX), { ok: true, count: 3_730_471 });
    assert.deepEqual(findSuffixCount(`${"F".repeat(35)}:2\r\n${SUFFIX}:0`, SUFFIX), { ok: true, count: 0 });
    assert.deepEqual(findSuffixCount(`${"F".repeat(35)}:2\n\n`, SUFFIX), { ok: true, count: 0 });
  });

  test("attack: an empty 200 answer (a proxy, a captive portal, a truncated mirror) is no answer, not a clean range", () => {
    // Every 5-hex prefix holds hundreds of suffixes in the corpus, padded or not: a real range is never empty.
    for (const body of ["", "\n", "\r\n\r\n", "\n\n\n"]) {
      assert.deepEqual(findSuffixCount(body, SUFFIX), { ok: false, reason: "response is empty: a range always has lines" }, JSON.stringify(body));
    }
  });

  test("a fail-closed range checker refuses on an empty body, padding or not", async () => {
    // ASVS 6.2.12: the breached-password check must not pass a password when the lookup did not happen.
    const fetchEmpty: typeof fetch = async () => new Response("", { status: 200 });
    for (const padding of [true, false]) {
      const range = createRangeBreachChecker({ baseUrl: "https://range.example.test", fetch: fetchEmpty, timeoutMs: 1000, padding, onFailure: "closed" });
      assert.deepEqual(await range.check("password"), { status: "unavailable", reason: "range API response is empty: a range always has lines", failClosed: true }, `padding ${padding}`);
    }
  });
});
