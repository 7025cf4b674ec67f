// Offline lookup in a sorted SHA1HEX:COUNT file: binary search with positioned reads, on files
// generated here in a temp dir (first/last line, missing, CRLF, malformed, unsorted).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { BreachFileError } from "./errors.ts";
import { createOfflineBreachFile } from "./offline-file.ts";
import { createPasswordPolicy } from "./policy.ts";
import { createCommonPasswordList } from "./common-list.ts";

const sha1 = (text: string): string => createHash("sha1").update(text, "utf8").digest("hex").toUpperCase();

// Entries: SHA-1 of "pw-0".."pw-(n-1)", each with count i+1, sorted by hash like the real file.
function entries(n: number): Array<{ hash: string; count: number }> {
  return Array.from({ length: n }, (_, i) => ({ hash: sha1(`pw-${i}`), count: i + 1 })).sort((a, b) => (a.hash < b.hash ? -1 : 1));
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "bulwark-breach-file-"));
});
after(() => rm(dir, { recursive: true, force: true }));

async function fileWith(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content, "latin1");
  return path;
}

const render = (list: Array<{ hash: string; count: number }>, eol: string): string => list.map((e) => `${e.hash}:${e.count}`).join(eol);

describe("createOfflineBreachFile", () => {
  const list = entries(1000);
  const first = list[0]!;
  const last = list.at(-1)!;

  for (const [label, eol, trailing] of [
    ["LF", "\n", "\n"],
    ["CRLF", "\r\n", "\r\n"],
    ["LF without a final newline", "\n", ""],
    ["CRLF without a final newline", "\r\n", ""],
  ] as const) {
    test(`finds the first, last and every other line, and misses absent hashes (${label})`, async () => {
      const file = createOfflineBreachFile(await fileWith(`list-${label}.txt`, render(list, eol) + trailing));
      try {
        assert.equal(await file.lookupHash(first.hash), first.count);
        assert.equal(await file.lookupHash(last.hash), last.count);
        for (const entry of list) assert.equal(await file.lookupHash(entry.hash), entry.count, entry.hash);
        assert.equal(await file.lookupHash("0".repeat(40)), 0); // before the first line
        assert.equal(await file.lookupHash("F".repeat(40)), 0); // after the last line
        assert.equal(await file.lookupHash(sha1("not in the file")), 0);
        assert.equal(await file.lookupHash(first.hash.toLowerCase()), first.count);
      } finally {
        await file.close();
      }
    });
  }

  test("works on a one-line file", async () => {
    const file = createOfflineBreachFile(await fileWith("one.txt", `${sha1("password")}:9\n`));
    try {
      assert.deepEqual(await file.check("password"), { status: "breached", count: 9 });
      assert.deepEqual(await file.check("Password"), { status: "clean" }); // exactly as received
    } finally {
      await file.close();
    }
  });

  test("reads lower-case hex files", async () => {
    const lower = render(list.slice(0, 50), "\n").toLowerCase();
    const file = createOfflineBreachFile(await fileWith("lower.txt", lower));
    try {
      assert.equal(await file.lookupHash(list[25]!.hash), list[25]!.count);
    } finally {
      await file.close();
    }
  });

  test("answers concurrent lookups and reopens after close", async () => {
    const file = createOfflineBreachFile(await fileWith("concurrent.txt", render(list, "\n")));
    const counts = await Promise.all(list.slice(0, 200).map((e) => file.lookupHash(e.hash)));
    assert.deepEqual(counts, list.slice(0, 200).map((e) => e.count));
    await file.close();
    assert.equal(await file.lookupHash(last.hash), last.count);
    await file.close();
    await file.close(); // idempotent
  });

  test("searches a large file with a few small positioned reads, never reading it whole", async () => {
    const big = entries(100_000); // ~5 MB
    const path = await fileWith("big.txt", render(big, "\r\n") + "\r\n");
    // Count the bytes FileHandle.read delivers while looking up (wrapping the prototype's method).
    const probe = await open(path, "r");
    const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<{ bytesRead: number }> };
    await probe.close();
    const original = proto.read;
    let reads = 0;
    let bytes = 0;
    proto.read = async function (this: unknown, ...args: unknown[]) {
      const result = await original.apply(this, args);
      reads++;
      bytes += result.bytesRead;
      return result;
    };
    const file = createOfflineBreachFile(path);
    try {
      assert.equal(await file.lookupHash(big[77_777]!.hash), big[77_777]!.count);
      assert.equal(await file.lookupHash(sha1("absent")), 0);
    } finally {
      proto.read = original;
      await file.close();
    }
    assert.ok(reads <= 2 * 2 * 25, `${reads} reads`); // log2(5 MB) ≈ 23 probes per lookup
    assert.ok(bytes < 20_000, `${bytes} bytes read`);
  });

  test("plugs into the policy as a breach checker", async () => {
    const file = createOfflineBreachFile(await fileWith("policy.txt", `${sha1("violet tugboat evening cactus")}:2\n`));
    try {
      const policy = createPasswordPolicy({ commonPasswords: createCommonPasswordList([]), breachCheckers: [file] });
      const result = await policy.check("violet tugboat evening cactus");
      assert.deepEqual(result.ok ? [] : result.reasons.map((r) => r.code), ["breached"]);
      assert.deepEqual(await policy.check("violet tugboat evening cactus!"), { ok: true });
    } finally {
      await file.close();
    }
  });
});

describe("createOfflineBreachFile with a bad file", () => {
  const isBreachFileError = (pattern: RegExp) => (error: unknown): boolean => {
    assert.ok(error instanceof BreachFileError, String(error));
    assert.equal(error.code, "BULWARK_ERR_BREACH_FILE");
    assert.match(error.message, pattern);
    return true;
  };

  test("names a missing file and an empty file", async () => {
    await assert.rejects(createOfflineBreachFile(join(dir, "nope.txt")).lookupHash("0".repeat(40)), isBreachFileError(/nope\.txt: cannot open/));
    await assert.rejects(createOfflineBreachFile(await fileWith("empty.txt", "")).lookupHash("0".repeat(40)), isBreachFileError(/empty/));
  });

  test("refuses a malformed line with its byte offset", async () => {
    const lines = render(entries(20), "\n").split("\n");
    lines[10] = "this is not a hash line";
    const path = await fileWith("malformed.txt", lines.join("\n"));
    const file = createOfflineBreachFile(path);
    try {
      // The bisection meets line 10 on the way to entry 10's neighbours.
      await assert.rejects(
        Promise.all(entries(20).map((e) => file.lookupHash(e.hash))),
        isBreachFileError(/malformed breached-password file at byte \d+: expected SHA1HEX:COUNT/),
      );
    } finally {
      await file.close();
    }
  });

  test("refuses an NTLM file (32 hex digits), a file with one huge line, and binary junk", async () => {
    const ntlm = await fileWith("ntlm.txt", "8846F7EAEE8FB117AD06BDD830B7586C:1\n");
    await assert.rejects(createOfflineBreachFile(ntlm).lookupHash(sha1("x")), isBreachFileError(/expected SHA1HEX:COUNT/));
    const huge = await fileWith("huge.txt", "A".repeat(10_000));
    await assert.rejects(createOfflineBreachFile(huge).lookupHash(sha1("x")), isBreachFileError(/longer than 80 bytes|expected SHA1HEX/));
    const junk = await fileWith("junk.bin", "\x1f\x8b\x08\x00\xff\xfe" + "\x00".repeat(500));
    await assert.rejects(createOfflineBreachFile(junk).lookupHash(sha1("x")), BreachFileError);
  });

  test("notices a file that is not sorted by hash (the 'ordered by count' download)", async () => {
    const reversed = entries(500).reverse();
    const file = createOfflineBreachFile(await fileWith("reversed.txt", render(reversed, "\n")));
    try {
      await assert.rejects(file.lookupHash(reversed[0]!.hash), isBreachFileError(/not sorted by hash/));
    } finally {
      await file.close();
    }
  });

  test("refuses a lookup key that is not a SHA-1", async () => {
    const file = createOfflineBreachFile(join(dir, "unused.txt"));
    await assert.rejects(file.lookupHash("5BAA6"), isBreachFileError(/40 hex digits/));
    await assert.rejects(file.lookupHash("Z".repeat(40)), BreachFileError);
  });

  test("searches between the first and the last line: a byte order mark before, blank lines after, are not lines", async () => {
    const list = entries(300);
    const absentLow = "0".repeat(40);
    const absentHigh = "F".repeat(40);
    for (const [label, content] of [
      ["BOM", `\xef\xbb\xbf${render(list, "\n")}\n`],
      ["trailing blank lines", `${render(list, "\n")}\n\n\n`],
      ["both, CRLF", `\xef\xbb\xbf${render(list, "\r\n")}\r\n\r\n`],
    ] as const) {
      const file = createOfflineBreachFile(await fileWith(`edges-${label.replace(/\W+/g, "-")}.txt`, content));
      try {
        for (const e of [list[0]!, list[1]!, list[150]!, list.at(-1)!]) assert.equal(await file.lookupHash(e.hash), e.count, `${label}: ${e.hash}`);
        assert.equal(await file.lookupHash(absentLow), 0, `${label}: below the first key`);
        assert.equal(await file.lookupHash(absentHigh), 0, `${label}: past the last key`);
      } finally {
        await file.close();
      }
    }
  });

  test("a broken file is an unavailable lookup (the policy refuses, fail-closed), never an error out of the check", async () => {
    const reversed = createOfflineBreachFile(await fileWith("reversed-check.txt", render(entries(500).reverse(), "\n")));
    const missing = createOfflineBreachFile(join(dir, "no-such-file.txt"));
    try {
      for (const file of [reversed, missing]) {
        const verdict = await file.check("a perfectly fine long passphrase");
        assert.equal(verdict.status, "unavailable");
        assert.equal((verdict as { failClosed: boolean }).failClosed, true);
      }
    } finally {
      await reversed.close();
      await missing.close();
    }
  });
});
