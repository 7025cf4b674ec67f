// Property tests: random and hostile input (any Unicode, lone surrogates, huge strings, binary junk
// files, malformed range responses) never crashes or hangs the policy or its parsers.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { createCommonPasswordList } from "./common-list.ts";
import { BreachFileError } from "./errors.ts";
import { codePointLength, countedLength } from "./normalize.ts";
import { createOfflineBreachFile } from "./offline-file.ts";
import { createPasswordPolicy } from "./policy.ts";
import { findSuffixCount } from "./range-response.ts";
import type { PolicyResult } from "./types.ts";

const CODES = new Set(["too-short", "too-long", "not-text", "common", "repeated", "context-word", "breached", "breach-check-unavailable"]);
const anyText = (maxLength: number) =>
  fc.oneof(fc.string({ unit: "binary", maxLength }), fc.string({ unit: "grapheme", maxLength }), fc.string({ unit: "binary-ascii", maxLength }));

function assertWellFormed(result: PolicyResult): void {
  if (result.ok) {
    assert.deepEqual(Object.keys(result), ["ok"]);
    return;
  }
  assert.ok(result.reasons.length > 0);
  for (const reason of result.reasons) {
    assert.deepEqual(Object.keys(reason).sort(), ["code", "message"]);
    assert.ok(CODES.has(reason.code), reason.code);
    assert.ok(reason.message.length > 0);
  }
}

describe("createPasswordPolicy with random input", () => {
  const policy = createPasswordPolicy({
    minLength: 12,
    maxLength: 80,
    commonPasswords: createCommonPasswordList(["password", "123456789012", "ｐａｓｓｗｏｒｄ１２３４"]),
    breachCheckers: [{ name: "even", check: async (p) => (p.length % 2 === 0 ? { status: "clean" } : { status: "breached", count: 1 }) }],
  });

  test("random Unicode passwords and contexts never crash and always give a well-formed result", async () => {
    await fc.assert(
      fc.asyncProperty(
        anyText(200),
        fc.record({ email: anyText(60), username: anyText(40), serviceName: anyText(40), extraWords: fc.array(anyText(20), { maxLength: 5 }) }, { requiredKeys: [] }),
        async (password, context) => {
          const result = await policy.check(password, context);
          assertWellFormed(result);
          const length = codePointLength(password);
          const codes = result.ok ? [] : result.reasons.map((r) => r.code);
          // A NUL or lone surrogate (binary-ascii strings hold NULs) is not-text, and nothing else,
          // unless the cheaper too-long rule answered first.
          const notText = !password.isWellFormed() || password.includes("\0");
          assert.equal(codes.includes("not-text"), notText && length <= 80);
          if (codes.includes("not-text")) {
            assert.deepEqual(codes, ["not-text"]);
            return;
          }
          // The length rules hold exactly, in code points; invisible ones do not count towards the minimum.
          assert.equal(codes.includes("too-short"), countedLength(password) < 12);
          assert.equal(codes.includes("too-long"), length > 80);
          // No message repeats a password of any real length.
          if (!result.ok && length >= 8) for (const r of result.reasons) assert.ok(!r.message.includes(password));
        },
      ),
      { numRuns: 500 },
    );
  });

  test("any piece shorter than the minimum, said at least twice (the last copy may be cut short), is refused as repeated", async () => {
    // ASVS 6.2.4, NIST SP 800-63B-4 §3.1.1.2. Any case, invisible characters anywhere between.
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 11 }),
        fc.integer({ min: 2, max: 12 }),
        fc.nat(10),
        fc.boolean(),
        async (piece, copies, cut, upper) => {
          // At most 36 characters, so that with an invisible one after each space it stays under the 80 maximum.
          const chars = [...piece.repeat(copies)].slice(0, 36);
          const repeated = chars.slice(0, Math.max(2 * piece.length, chars.length - cut)).join("");
          const password = (upper ? repeated.toUpperCase() : repeated).replace(/ /g, " \u200B");
          const result = await policy.check(password);
          assert.ok(!result.ok && result.reasons.some((r) => r.code === "repeated"), JSON.stringify(password));
        },
      ),
      { numRuns: 300 },
    );
  });

  test("huge strings are refused as too long", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary", minLength: 161, maxLength: 5000 }), fc.nat(100_000), async (head, repeat) => {
        const result = await policy.check(head + "x".repeat(repeat));
        assert.deepEqual(result, { ok: false, reasons: [{ code: "too-long", message: "Use at most 80 characters." }] });
      }),
      { numRuns: 50 },
    );
  });

  test("codePointLength agrees with the string iterator on any input", () => {
    fc.assert(fc.property(anyText(300), (text) => assert.equal(codePointLength(text), [...text].length)));
  });
});

describe("findSuffixCount with hostile responses", () => {
  test("any text gives a well-formed answer and never throws", () => {
    fc.assert(
      fc.property(anyText(2000), fc.stringMatching(/^[0-9A-F]{35}$/), (body, suffix) => {
        const found = findSuffixCount(body, suffix);
        if (found.ok) assert.ok(Number.isSafeInteger(found.count) && found.count >= 0);
        else assert.ok(found.reason.length > 0);
      }),
    );
  });

  test("valid lines in any order, case and line ending give the sum of the counts for the suffix", () => {
    const line = fc.tuple(fc.stringMatching(/^[0-9A-Fa-f]{35}$/), fc.nat(1_000_000));
    fc.assert(
      // At least one line: an empty body is no answer (range-response.test.ts).
      fc.property(fc.array(line, { minLength: 1, maxLength: 50 }), fc.constantFrom("\n", "\r\n"), (lines, eol) => {
        const wanted = lines[0]?.[0].toUpperCase() ?? "A".repeat(35);
        const expected = lines.filter(([s]) => s.toUpperCase() === wanted).reduce((sum, [, c]) => sum + c, 0);
        assert.deepEqual(findSuffixCount(lines.map(([s, c]) => `${s}:${c}`).join(eol), wanted), { ok: true, count: expected });
      }),
    );
  });
});

describe("createOfflineBreachFile with junk files", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "bulwark-breach-junk-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const validLine = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => `${Buffer.from(b).toString("hex").toUpperCase()}:1`);
  const junkLine = fc.oneof(fc.string({ unit: "binary", maxLength: 120 }), fc.string({ unit: "binary-ascii", minLength: 80, maxLength: 400 }));

  test("a lookup in any file answers a count or a BreachFileError, and never hangs", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.array(fc.oneof(validLine, junkLine), { maxLength: 60 }).map((lines) => Buffer.from(lines.join("\n"), "utf8")),
          fc.uint8Array({ maxLength: 3000 }).map((bytes) => Buffer.from(bytes)),
        ),
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        async (content, digest) => {
          const path = join(dir, `junk-${n++}.txt`);
          await writeFile(path, content);
          const file = createOfflineBreachFile(path);
          try {
            const count = await file.lookupHash(Buffer.from(digest).toString("hex"));
            assert.ok(Number.isSafeInteger(count) && count >= 0);
          } catch (error) {
            assert.ok(error instanceof BreachFileError, String(error));
          } finally {
            await file.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  test("a sorted file of random hashes finds each of them", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b).toString("hex").toUpperCase()), { minLength: 1, maxLength: 80 }), async (hashes) => {
        const sorted = [...hashes].sort();
        const path = join(dir, `sorted-${n++}.txt`);
        await writeFile(path, sorted.map((h, i) => `${h}:${i + 1}`).join("\n"));
        const file = createOfflineBreachFile(path);
        try {
          for (const [i, h] of sorted.entries()) assert.equal(await file.lookupHash(h), i + 1);
          const absent = createHash("sha1").update(sorted.join("")).digest("hex").toUpperCase();
          if (!sorted.includes(absent)) assert.equal(await file.lookupHash(absent), 0);
        } finally {
          await file.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
