// `bulwark check authlog` on a truncated or corrupt compressed log (a rotation cut short by a full disk, a copy
// interrupted, bytes flipped): the file is refused as unreadable ("corrupt zstd data", "corrupt gzip data"), and the
// lines before the damage are counted. How many were counted hung on timing (fresh-clone CI once saw 24,004 failures
// of root with the worker thread against 12,025 in one thread for the same files, test/authlog-workers-red-team.test.ts):
// the end of a truncated zstd frame was raised while node:zlib's decoder, on the libuv thread pool, still held output
// it had decoded, and the pipeline's teardown dropped it; a gzip decoder's error likewise dropped what it had decoded
// and the reader had not yet taken. Pinned here: every run, in one thread or with the worker, under load (reads side by
// side, a slow reader), yields exactly the bytes that decoding the damaged file's bytes can give, computed apart with
// zlib's one-shot decoders told not to require the end (Z_SYNC_FLUSH, ZSTD_e_flush), and counts their whole lines.
import assert from "node:assert/strict";
import { createReadStream, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setImmediate as tick } from "node:timers/promises";
import { describe, it } from "node:test";
import { constants, gunzipSync, gzipSync, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { AuthLogAnalyzer, analyzeFile } from "../src/checks/authlog/index.ts";
import { AuthLogUnreadableError } from "../src/checks/authlog/errors.ts";
import { decompressed } from "../src/checks/authlog/reader.ts";
import { REF, bsd, tempDirs } from "./helpers/authlog-night.ts";

const tempDir = tempDirs("bulwark-authlog-truncated-");
const CHUNK = 1 << 20;
const RUNS = 10;
/** Reads side by side, so that the libuv thread pool (4 threads) is busy with other decoders. */
const SIDE_BY_SIDE = 5;

/** 150,000 lines (about 13 MB): a zstd frame of many blocks, a gzip stream of many deflate blocks. */
function logText(count: number, salt: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(`${bsd(i % 900)} web sshd[${(i * 7919 + salt) % 65_536}]: Failed password for ${i % 3 === 0 ? "root" : `invalid user u${(i * 31 + salt) % 997}`} from 203.0.${(i >> 8) % 256}.${i % 256} port ${(i * 13) % 65_536} ssh2`);
  }
  return Buffer.from(`${lines.join("\n")}\n`, "latin1");
}

function newlines(bytes: Buffer): number {
  let n = 0;
  for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) n++;
  return n;
}

interface Damaged {
  name: string;
  bytes: Buffer;
  /** What decoding `bytes` yields before the damage, null when not computed apart (a corrupt stream). */
  expected: Buffer | null;
  error: RegExp;
}

/** A zstd stream's decodable prefix: each frame in full, the cut one as far as its bytes go (ZSTD_e_flush: no end required). */
const zstdPrefix = (whole: Buffer[], cut: Buffer): Buffer => Buffer.concat([...whole, zstdDecompressSync(cut, { finishFlush: constants.ZSTD_e_flush })]);
const gzipPrefix = (cut: Buffer): Buffer => gunzipSync(cut, { finishFlush: constants.Z_SYNC_FLUSH });

function damagedFiles(): Damaged[] {
  const text = logText(150_000, 1);
  const zst = zstdCompressSync(text);
  const gz = gzipSync(text);
  const out: Damaged[] = [];
  // Cuts early, in the middle of a block after millions of decoded bytes, near the end, inside the last bytes.
  for (const at of [0.05, 0.5, 0.61803, 0.97]) {
    const z = zst.subarray(0, Math.floor(zst.length * at));
    out.push({ name: `zstd cut at ${at}`, bytes: z, expected: zstdPrefix([], z), error: /corrupt zstd data/ });
    const g = gz.subarray(0, Math.floor(gz.length * at));
    out.push({ name: `gzip cut at ${at}`, bytes: g, expected: gzipPrefix(g), error: /corrupt gzip data/ });
  }
  const z1 = zst.subarray(0, zst.length - 1);
  out.push({ name: "zstd without its last byte", bytes: z1, expected: zstdPrefix([], z1), error: /corrupt zstd data/ });
  // All the data there, the trailer (CRC-32, length) cut: every line decodes.
  const g5 = gz.subarray(0, gz.length - 5);
  out.push({ name: "gzip without the last 5 bytes of its trailer", bytes: g5, expected: gzipPrefix(g5), error: /corrupt gzip data/ });
  // Two frames joined with cat (rotated logs), the second cut in the middle.
  const second = zstdCompressSync(logText(60_000, 2));
  const cut2 = second.subarray(0, Math.floor(second.length * 0.55));
  out.push({ name: "two zstd frames, the second cut", bytes: Buffer.concat([zst, cut2]), expected: zstdPrefix([text], cut2), error: /corrupt zstd data/ });
  // Bytes flipped from 60% on (the red-team file's damage): zlib gives no output for the call that meets the damage,
  // so what is read is not computed apart here; it must still be the same every time.
  const flipped = Buffer.from(gz);
  for (let i = Math.floor(flipped.length * 0.6); i < flipped.length - 8; i += 5) flipped[i] = (flipped[i] as number) ^ 0x33;
  out.push({ name: "gzip with bytes flipped from 60% on", bytes: flipped, expected: null, error: /corrupt gzip data/ });
  return out;
}

/** The bytes `decompressed` yields for `path` read as analyzeFile reads it, taken slowly, and the error it ends with. */
async function readSlowly(path: string): Promise<{ bytes: Buffer; error: string }> {
  const parts: Buffer[] = [];
  try {
    for await (const chunk of decompressed(createReadStream(path, { highWaterMark: CHUNK }))) {
      parts.push(Buffer.from(chunk));
      // A reader slower than the decoder, as the analyzer is: decoded output waits in the decoder meanwhile.
      await tick();
      await tick();
    }
    return { bytes: Buffer.concat(parts), error: "none" };
  } catch (error) {
    return { bytes: Buffer.concat(parts), error: String((error as Error).message) };
  }
}

async function sideBySide<T>(runs: number, one: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < runs; i += SIDE_BY_SIDE) out.push(...(await Promise.all(Array.from({ length: Math.min(SIDE_BY_SIDE, runs - i) }, (_, k) => one(i + k)))));
  return out;
}

describe("check authlog: a truncated or corrupt compressed file is read to the same byte every time", () => {
  const dir = tempDir();
  const files = damagedFiles().map((d, i) => {
    const path = join(dir, `damaged-${i}`);
    writeFileSync(path, d.bytes);
    return { ...d, path };
  });

  it("decompressed() yields exactly the decodable prefix, then the error, on every one of 10 runs five at a time", async () => {
    for (const f of files) {
      const runs = await sideBySide(RUNS, () => readSlowly(f.path));
      const first = runs[0] as { bytes: Buffer; error: string };
      assert.match(first.error, f.error, `${f.name}: refused as before`);
      if (f.expected !== null) {
        assert.ok(f.expected.length > 0, `${f.name}: control, something decodes`);
        assert.equal(first.bytes.length, f.expected.length, `${f.name}: bytes read`);
        assert.ok(first.bytes.equals(f.expected), `${f.name}: the decodable prefix`);
      } else assert.ok(first.bytes.length > CHUNK, `${f.name}: control, megabytes come before the damage`);
      runs.forEach((r, i) => {
        assert.equal(r.error, first.error, `${f.name}, run ${i}: the same error`);
        assert.equal(r.bytes.length, first.bytes.length, `${f.name}, run ${i}: the same bytes read`);
      });
    }
  });

  it("analyzeFile counts the decodable whole lines, the same in one thread and with the worker, side by side", async () => {
    for (const f of files) {
      const runs = await sideBySide(2, async (i) => {
        const analyzer = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0, workers: i % 2 === 1 });
        const error = await analyzeFile(analyzer, f.path).then(
          () => null,
          (e: unknown) => e,
        );
        const { stats } = analyzer.finish();
        return { error, lines: stats.lines, failures: stats.failures };
      });
      const first = runs[0] as { error: unknown; lines: number; failures: number };
      assert.ok(first.error instanceof AuthLogUnreadableError && f.error.test(first.error.message), `${f.name}: ${String(first.error)}`);
      if (f.expected !== null) assert.equal(first.lines, newlines(f.expected), `${f.name}: the whole lines decoded`);
      assert.ok(first.failures > 0, `${f.name}: control, failures counted`);
      runs.forEach((r, i) => {
        assert.ok(r.error instanceof AuthLogUnreadableError && r.error.message === (first.error as Error).message, `${f.name}, run ${i}: ${String(r.error)}`);
        assert.deepEqual({ lines: r.lines, failures: r.failures }, { lines: first.lines, failures: first.failures }, `${f.name}, run ${i} (workers: ${i % 2 === 1})`);
      });
    }
  });
});
