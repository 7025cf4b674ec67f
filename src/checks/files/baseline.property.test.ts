// Property tests of the baseline parser and the line reader: random and hostile input (binary junk,
// huge lines, deep nesting, unicode) gives a clear error or counted skips — never a crash or a hang.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isBulwarkError } from "../../lib/errors.ts";
import { BaselineReader } from "./baseline-read.ts";
import { MAX_LINE } from "./baseline-format.ts";
import { comparePaths } from "./entry.ts";
import { boundedLines } from "./line-reader.ts";
import { testSigner } from "./test-helpers.ts";

const signer = testSigner();
const HEADER = '{"format":"bulwark-files-baseline","version":1,"createdAt":"2026-01-01T00:00:00.000Z","roots":["/"],"algorithm":"sha256"}\n';

/** Reads a whole baseline; returns "refused" for a clear input error, else the integrity verdict. */
async function readAll(chunks: Array<Uint8Array | string>): Promise<"refused" | { entries: number; trusted: boolean }> {
  const reader = new BaselineReader(chunks, signer);
  try {
    await reader.readHeader();
  } catch (error) {
    assert.ok(isBulwarkError(error) && error.code === "BULWARK_ERR_BASELINE_FORMAT", `unexpected error ${String(error)}`);
    return "refused";
  }
  let entries = 0;
  for await (const _ of reader.entries()) entries++;
  return { entries, trusted: reader.integrity.trusted };
}

const hostileLine = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.json({ maxDepth: 4 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
  fc.record({
    path: fc.oneof(fc.string({ unit: "grapheme", maxLength: 40 }).map((s) => `/${s}`), fc.string()),
    type: fc.constantFrom("file", "dir", "symlink", "bogus"),
    status: fc.constantFrom("ok", "unreadable", "weird"),
    mode: fc.oneof(fc.constant("0644"), fc.string({ maxLength: 6 })),
    uid: fc.oneof(fc.nat(), fc.integer(), fc.double()),
    gid: fc.nat(),
    size: fc.oneof(fc.nat(), fc.constant(-1), fc.constant(Number.MAX_VALUE)),
    mtime: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 20n }).map(String), fc.string()),
    ctime: fc.constant("1"),
    ino: fc.constant("2"),
    target: fc.constantFrom(null, "x", 3),
    sha256: fc.constantFrom(null, "a".repeat(64), "A".repeat(64), "zz"),
    error: fc.constantFrom(null, "EIO", "bad code"),
  }).map((o) => JSON.stringify(o)),
  fc.constant('{"trailer":"bulwark-files-baseline","entries":0,"sha256":"' + "0".repeat(64) + '","keyId":"sk_test","signature":"AAAA"}'),
);

describe("baseline parser properties", () => {
  it("never throws anything but a clear format error on arbitrary bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), async (chunks) => {
        await readAll(chunks);
      }),
      { numRuns: 300 },
    );
  });

  it("after a valid header, hostile lines are skipped and counted, and never trusted", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(hostileLine, { minLength: 1, maxLength: 30 }), async (lines) => {
        const result = await readAll([HEADER, lines.join("\n")]);
        assert.notEqual(result, "refused");
        if (result !== "refused") assert.equal(result.trusted, false);
      }),
      { numRuns: 300 },
    );
  });

  it("yields only entries in strictly increasing path order", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: "grapheme", maxLength: 12 }), { maxLength: 30 }), async (names) => {
        const lines = names.map((n) =>
          JSON.stringify({ path: `/${n}`, type: "file", status: "ok", mode: "0644", uid: 0, gid: 0, size: 0, mtime: "0", ctime: "0", ino: "1", target: null, sha256: null, error: null }),
        );
        const reader = new BaselineReader([HEADER, `${lines.join("\n")}\n`], signer);
        let previous: string | null = null;
        for await (const e of reader.entries()) {
          if (previous !== null) assert.ok(comparePaths(previous, e.path) < 0);
          previous = e.path;
        }
      }),
      { numRuns: 200 },
    );
  });

  it("handles a 20 MB line and 100 000-deep nesting without holding the line or overflowing the stack", async () => {
    const huge = "x".repeat(20 * 1024 * 1024);
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const deepObject = `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`;
    const reader = new BaselineReader([HEADER, huge, "\n", deep, "\n", deepObject, "\n"], signer);
    let n = 0;
    for await (const _ of reader.entries()) n++;
    assert.equal(n, 0);
    assert.equal(reader.integrity.skippedLines, 3);
    assert.match(reader.integrity.problems[0] as string, /longer than/);
  });

  it("a huge first line is refused as not a baseline", async () => {
    await assert.rejects(new BaselineReader(["{".repeat(MAX_LINE + 10)], signer).readHeader(), { code: "BULWARK_ERR_BASELINE_FORMAT" });
  });
});

describe("signed baseline mutation", () => {
  it("any change of any single byte makes a signed baseline untrusted or refused", async () => {
    const { writeBaseline } = await import("./baseline-write.ts");
    const { ManualClock } = await import("../../lib/clock.ts");
    const base = { type: "file", status: "ok", mode: "0755", uid: 0, gid: 0, size: 5, mtime: "1700000000000000000", ctime: "1700000000000000000", ino: "42", target: null, sha256: "ab".repeat(32), error: null } as const;
    async function* entries(): AsyncGenerator<import("./entry.ts").FileEntry> {
      yield { ...base, path: "/usr/bin", type: "dir", sha256: null };
      yield { ...base, path: "/usr/bin/ls" };
      yield { ...base, path: "/usr/bin/sudo", mode: "4755" };
    }
    let text = "";
    await writeBaseline(entries(), { write: async (t) => void (text += t) }, { roots: ["/usr/bin"], signer, clock: new ManualClock() });
    const bytes = Buffer.from(text, "utf8");
    assert.deepEqual(await readAll([bytes]), { entries: 3, trusted: true });
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: bytes.length - 2 }), fc.integer({ min: 1, max: 255 }), async (at, delta) => {
        const mutated = Buffer.from(bytes);
        mutated[at] = ((mutated[at] as number) + delta) % 256;
        const result = await readAll([mutated]);
        assert.ok(result === "refused" || result.trusted === false, `byte ${at} changed by ${delta} went unnoticed`);
      }),
      { numRuns: 1500 },
    );
  });
});

describe("boundedLines properties", () => {
  it("splits like String.split on newlines, whatever the chunking, for lines within the bound", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "grapheme", maxLength: 200 }), fc.array(fc.nat({ max: 50 }), { maxLength: 10 }), async (text, cuts) => {
        const bytes = Buffer.from(text, "utf8");
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let start = 0;
        for (const p of points) {
          chunks.push(bytes.subarray(start, p));
          start = p;
        }
        chunks.push(bytes.subarray(start));
        const got: string[] = [];
        for await (const l of boundedLines(chunks, 1 << 20)) got.push(l.bytes.toString("utf8"));
        const expected = text.split("\n");
        if (expected[expected.length - 1] === "") expected.pop();
        assert.deepEqual(got, expected);
      }),
      { numRuns: 300 },
    );
  });

  it("never keeps more than the bound of an overlong line", async () => {
    const lines: Array<{ overlong: boolean; length: number }> = [];
    for await (const l of boundedLines([Buffer.alloc(100_000, 0x41), "\nok\n", Buffer.alloc(30, 0x42)], 1000)) lines.push({ overlong: l.overlong, length: l.bytes.length });
    assert.deepEqual(lines, [
      { overlong: true, length: 0 },
      { overlong: false, length: 2 },
      { overlong: false, length: 30 },
    ]);
  });
});
