// The zstd frame splitter (zstd-frames.ts) and the reader's zstd path and magic-number detection (reader.ts), on
// streams made by the zstd and pzstd CLIs (v1.5) and on frames built by hand after RFC 8878 §3.1. Node's own zstd
// decoder stops after the first frame and drops the rest in silence: every test here asserts that all of the data
// comes out, or an error.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gzipSync, zstdDecompressSync } from "node:zlib";
import { AuthLogAnalyzer } from "./analyzer.ts";
import { AuthLogUnreadableError } from "./errors.ts";
import { analyzeFile, decompressed } from "./reader.ts";
import { ZstdFrameSplitter } from "./zstd-frames.ts";

const available = (tool: string): boolean => spawnSync(tool, ["--version"], { stdio: "ignore" }).status === 0;
const NO_ZSTD = available("zstd") ? false : "the zstd CLI is not installed (apt-get install zstd)";
const NO_PZSTD = NO_ZSTD || (available("pzstd") ? false : "pzstd is not installed (it comes with the zstd package)");

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-zstd-"));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the zstd CLI (or pzstd) quietly on `input`; with `file`, on a file holding it, so that its size is known. */
function zstd(args: string[], input: Buffer, options: { file?: boolean; tool?: string } = {}): Buffer {
  const tool = options.tool ?? "zstd";
  if (options.file === true) {
    const path = join(dir, `in-${Math.random().toString(36).slice(2)}.txt`);
    writeFileSync(path, input);
    return execFileSync(tool, ["-q", "-c", ...args, path], { maxBuffer: 1 << 26 });
  }
  return execFileSync(tool, ["-q", "-c", ...args], { input, maxBuffer: 1 << 26 });
}

/** `count` distinct auth-log lines; `tag` makes two texts differ. */
function logText(count: number, tag = "a"): Buffer {
  const lines: string[] = [];
  let x = 7;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    lines.push(`Nov 21 04:${String(i % 60).padStart(2, "0")}:00 web sshd[${i}]: Failed password for ${tag}${x % 977} from 203.0.${x % 256}.${i % 256} port ${x % 65536} ssh2\n`);
  }
  return Buffer.from(lines.join(""));
}

// --- Frames built by hand (RFC 8878 §3.1.1) ---

const MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** A Block_Header (3 bytes, little-endian): Last_Block, Block_Type (0 raw, 1 RLE, 2 compressed, 3 reserved), Block_Size. */
function blockHeader(type: number, size: number, last: boolean): Buffer {
  const h = (size << 3) | (type << 1) | (last ? 1 : 0);
  return Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]);
}
const rawBlock = (data: Buffer, last: boolean): Buffer => Buffer.concat([blockHeader(0, data.length, last), data]);
const rleBlock = (byte: number, size: number, last: boolean): Buffer => Buffer.concat([blockHeader(1, size, last), Buffer.from([byte])]);

/** A frame: magic, Frame_Header_Descriptor, the rest of the header as given, blocks, and an optional checksum. */
function frame(descriptor: number, headerRest: number[], blocks: Buffer[], checksum: number[] = []): Buffer {
  return Buffer.concat([Buffer.from([...MAGIC, descriptor, ...headerRest]), ...blocks, Buffer.from(checksum)]);
}

/** A skippable frame (RFC 8878 §3.1.2): magic 0x184D2A5? (low nibble `nibble`), 4-byte size, payload. */
function skippable(nibble: number, payload: Buffer, claimedSize = payload.length): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a50 + nibble, 0);
  head.writeUInt32LE(claimedSize, 4);
  return Buffer.concat([head, payload]);
}

/** A frame of `data` in one raw block that Node decodes: 1 KiB window, no content size, no checksum. */
const plainFrame = (data: string): Buffer => frame(0x00, [0x00], [rawBlock(Buffer.from(data), true)]);

// --- Driving the splitter and the reader ---

/** The ordinary frames the splitter finds in `input` fed in chunks of the given sizes (cycled); checks the piece flags. */
function splitFrames(input: Buffer, chunkSizes: readonly number[] = [input.length || 1]): Buffer[] {
  const splitter = new ZstdFrameSplitter();
  const frames: Buffer[] = [];
  let current: Buffer[] = [];
  for (let i = 0, k = 0; i < input.length; k++) {
    const size = chunkSizes[k % chunkSizes.length] as number;
    for (const piece of splitter.split(input.subarray(i, i + size))) {
      current.push(Buffer.from(piece.bytes));
      if (piece.frameEnd) {
        frames.push(Buffer.concat(current));
        current = [];
      }
    }
    i += size;
  }
  splitter.finish();
  assert.equal(current.length, 0, "every piece given belongs to a frame that ended");
  return frames;
}

/** Deterministic chunk sizes from 1 to `max`. */
function randomSizes(seed: number, count: number, max: number): number[] {
  const sizes: number[] = [];
  let x = seed;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    sizes.push(1 + (x % max));
  }
  return sizes;
}

async function* chunksOf(input: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < input.length; i += size) yield input.subarray(i, i + size);
}

/** What the reader makes of `input` delivered in chunks of `size` bytes. */
async function read(input: Buffer, size = 1 << 20): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of decompressed(chunksOf(input, size))) out.push(chunk);
  return Buffer.concat(out);
}

/** Asserts that the reader refuses `input` as corrupt zstd data (whatever the chunking). */
async function assertCorrupt(input: Buffer, why: string, size?: number): Promise<Error> {
  let caught: unknown;
  await assert.rejects(read(input, size), (e: unknown) => {
    caught = e;
    return e instanceof Error && /corrupt zstd data/.test(e.message);
  }, why);
  return caught as Error;
}

// --- The splitter ---

test("finds one frame in a stream of one frame made by zstd, whatever the chunking", { skip: NO_ZSTD }, () => {
  const z = zstd([], logText(50));
  assert.deepEqual(splitFrames(z), [z]);
  assert.deepEqual(splitFrames(z, [1]), [z]);
  assert.deepEqual(splitFrames(z, randomSizes(1, 200, 9)), [z]);
});

test("splits files joined with cat at the files' boundaries, for every place a chunk can end", { skip: NO_ZSTD }, () => {
  const parts = [zstd([], logText(3, "x")), zstd(["--no-check"], logText(4, "y")), zstd([], Buffer.alloc(0))];
  const joined = Buffer.concat(parts);
  assert.deepEqual(splitFrames(joined, [1]), parts);
  for (let cut = 1; cut < joined.length; cut++) {
    assert.deepEqual(splitFrames(joined, [cut, joined.length]), parts, `chunk boundary at ${cut}`);
  }
});

test("skips skippable frames of every magic from 0x184D2A50 to 0x184D2A5F, empty or not", () => {
  const a = plainFrame("first\n");
  const b = plainFrame("second\n");
  const skips = Array.from({ length: 16 }, (_, n) => skippable(n, Buffer.alloc(n * 3, n)));
  const input = Buffer.concat([skips[0] as Buffer, a, ...skips.slice(1, 8), b, ...skips.slice(8)]);
  for (const sizes of [[input.length], [1], [5], randomSizes(2, 100, 13)]) {
    assert.deepEqual(splitFrames(input, sizes), [a, b], `chunks of ${sizes.slice(0, 3).join(",")}…`);
  }
  assert.deepEqual(splitFrames(Buffer.concat(skips)), [], "skippable frames only: no ordinary frame");
});

test("follows every header layout: Dictionary_ID and Frame_Content_Size of each size, single segment, checksum, raw and RLE blocks", () => {
  // RFC 8878 §3.1.1.1: Dictionary_ID field 0/1/2/4 bytes by its flag; FCS field 0 (1 with Single_Segment)/2/4/8 bytes.
  const dictionaryBytes = [0, 1, 2, 4];
  const contentSizeBytes = [0, 2, 4, 8];
  for (let dictFlag = 0; dictFlag < 4; dictFlag++) {
    for (let fcsFlag = 0; fcsFlag < 4; fcsFlag++) {
      for (const single of [false, true]) {
        for (const checksum of [false, true]) {
          const descriptor = (fcsFlag << 6) | (single ? 0x20 : 0) | (checksum ? 0x04 : 0) | dictFlag;
          const fcs = fcsFlag === 0 ? (single ? 1 : 0) : (contentSizeBytes[fcsFlag] as number);
          // Header bytes of 0x03: read as a Block_Header they would be a last RLE block, so a miscount shows.
          const rest = new Array<number>((single ? 0 : 1) + (dictionaryBytes[dictFlag] as number) + fcs).fill(0x03);
          const blocks = [rawBlock(Buffer.from("raw block\n"), false), rleBlock(0x41, 5000, false), blockHeader(0, 0, false), rawBlock(Buffer.from("x"), true)];
          const f = frame(descriptor, rest, blocks, checksum ? [0x01, 0x03, 0x03, 0x03] : []);
          const g = frame(descriptor, rest, [rleBlock(0x42, 3, true)], checksum ? [9, 9, 9, 9] : []);
          const name = `dictFlag ${dictFlag}, fcsFlag ${fcsFlag}, single ${single}, checksum ${checksum}`;
          assert.deepEqual(splitFrames(Buffer.concat([f, g])), [f, g], name);
          assert.deepEqual(splitFrames(Buffer.concat([f, g]), [1]), [f, g], name);
        }
      }
    }
  }
});

test("an empty input holds no frame and ends between frames", () => {
  const splitter = new ZstdFrameSplitter();
  assert.deepEqual(splitter.split(Buffer.alloc(0)), []);
  assert.doesNotThrow(() => splitter.finish());
});

test("throws at the end of a stream cut anywhere inside a frame (header, block, checksum) or a skippable frame, and only there", { skip: NO_ZSTD }, () => {
  const first = zstd(["--check"], logText(20));
  const skip = skippable(0, Buffer.from("payload"));
  const second = zstd(["--check"], logText(5, "z"));
  const joined = Buffer.concat([first, skip, second]);
  const boundaries = new Set([first.length, first.length + skip.length]);
  for (let cut = 1; cut < joined.length; cut++) {
    const splitter = new ZstdFrameSplitter();
    splitter.split(joined.subarray(0, cut));
    if (boundaries.has(cut)) assert.doesNotThrow(() => splitter.finish(), `cut between frames at ${cut}`);
    else assert.throws(() => splitter.finish(), /corrupt zstd data \(the stream ends inside a frame\)/, `cut at ${cut} of ${joined.length}`);
  }
});

test("throws on bytes after the last frame that start no frame, and on a partial magic at the end", { skip: NO_ZSTD }, () => {
  const z = zstd([], logText(3));
  assert.throws(() => new ZstdFrameSplitter().split(Buffer.concat([z, Buffer.from("trailing junk\n")])), /no frame magic/);
  assert.throws(() => new ZstdFrameSplitter().split(Buffer.concat([z, Buffer.alloc(4)])), /no frame magic/, "zero padding");
  for (const tail of [[0x28], [0x28, 0xb5], [0x28, 0xb5, 0x2f]]) {
    const splitter = new ZstdFrameSplitter();
    splitter.split(Buffer.concat([z, Buffer.from(tail)]));
    assert.throws(() => splitter.finish(), /ends inside a frame/, `tail of ${tail.length} bytes`);
  }
});

test("throws on a block of the reserved type 3", () => {
  assert.throws(() => new ZstdFrameSplitter().split(frame(0x00, [0x00], [blockHeader(3, 4, true), Buffer.from("abcd")])), /reserved block type/);
});

test("counts a skippable frame or a block that claims a huge size without keeping it", () => {
  // Sizes are counted down, never allocated: 4 GiB of skippable frame, a 2 MiB block, in a few bytes of input.
  const huge = new ZstdFrameSplitter();
  assert.deepEqual(huge.split(skippable(0, Buffer.alloc(1000), 0xffffffff)), []);
  assert.throws(() => huge.finish(), /ends inside a frame/);
  const block = new ZstdFrameSplitter();
  const pieces = block.split(frame(0x00, [0x00], [blockHeader(0, (1 << 21) - 1, true), Buffer.from("abc")]));
  assert.equal(pieces.reduce((n, p) => n + p.bytes.length, 0), 4 + 2 + 3 + 3);
  assert.ok(pieces.every((p) => !p.frameEnd));
  assert.throws(() => block.finish(), /ends inside a frame/);
});

// --- The reader: zstd decoded in full ---

test("decodes zstd output with and without checksum and content size, and multi-threaded --rsyncable output, to the original bytes", { skip: NO_ZSTD }, async () => {
  const small = logText(2); // under 256 bytes: single segment, 1-byte content size
  const medium = logText(8); // 2-byte content size
  const large = logText(3000); // several 128 KiB blocks, 4-byte content size
  // Descriptor bits (RFC 8878 §3.1.1.1.1): FCS flag 7-6, Single_Segment 5, Content_Checksum 2.
  const cases: Array<{ name: string; input: Buffer; z: Buffer; checksum: boolean; contentSize: number }> = [
    { name: "file, default", input: small, z: zstd([], small, { file: true }), checksum: true, contentSize: 0 },
    { name: "file, 2-byte size", input: medium, z: zstd([], medium, { file: true }), checksum: true, contentSize: 1 },
    { name: "file, --check", input: large, z: zstd(["--check"], large, { file: true }), checksum: true, contentSize: 2 },
    { name: "file, --no-check", input: large, z: zstd(["--no-check"], large, { file: true }), checksum: false, contentSize: 2 },
    { name: "file, --no-content-size", input: large, z: zstd(["--no-content-size"], large, { file: true }), checksum: true, contentSize: -1 },
    { name: "stdin (size unknown), --no-check", input: large, z: zstd(["--no-check"], large), checksum: false, contentSize: -1 },
    { name: "file, -T2 --rsyncable", input: large, z: zstd(["-T2", "--rsyncable"], large, { file: true }), checksum: true, contentSize: 2 },
    { name: "stdin, -T2 --rsyncable -B64KiB", input: large, z: zstd(["-T2", "--rsyncable", "-B65536"], large), checksum: true, contentSize: -1 },
  ];
  for (const { name, input, z, checksum, contentSize } of cases) {
    const d = z[4] as number;
    assert.equal((d & 0x04) !== 0, checksum, `${name}: checksum flag as asked`);
    if (contentSize < 0) assert.equal(d & 0xe0, 0, `${name}: no content size`);
    else {
      assert.equal(d >> 6, contentSize, `${name}: content size field`);
      assert.equal(d & 0x20, 0x20, `${name}: single segment`);
    }
    assert.deepEqual(await read(z), input, name);
    assert.deepEqual(await read(z, 4093), input, `${name}, 4093-byte chunks`);
  }
});

test("decodes every frame of zstd files joined with cat, where Node's decoder alone stops after the first", { skip: NO_ZSTD }, async () => {
  const texts = [logText(40, "a"), logText(1, "b"), Buffer.alloc(0), logText(300, "c")];
  const joined = Buffer.concat([zstd([], texts[0] as Buffer), zstd(["--no-check"], texts[1] as Buffer, { file: true }), zstd([], texts[2] as Buffer), zstd(["--no-content-size"], texts[3] as Buffer, { file: true })]);
  const whole = Buffer.concat(texts);
  assert.deepEqual(zstdDecompressSync(joined), texts[0], "the premise: Node's decoder reads the first frame only");
  assert.deepEqual(await read(joined), whole);
  assert.deepEqual(await read(joined, 1), whole, "1-byte chunks");
  assert.deepEqual(await read(joined, 77), whole, "77-byte chunks");
});

test("decodes pzstd output: a skippable frame before each of its frames", { skip: NO_PZSTD }, async () => {
  // pzstd cuts its input into pieces of a few MiB, each its own frame after a skippable frame with its size.
  const input = logText(40_000);
  const z = zstd(["-p", "2", "-1"], input, { file: true, tool: "pzstd" });
  assert.equal(z.readUInt32LE(0), 0x184d2a50, "starts with a skippable frame");
  assert.ok(splitFrames(z).length >= 2, "at least two ordinary frames");
  assert.deepEqual(await read(z), input);
  assert.deepEqual(await read(z, 65_521), input, "chunks that end inside frames and headers");
});

test("decodes a stream that starts with a skippable frame, and a stream of skippable frames only to nothing", async () => {
  const z = Buffer.concat([skippable(0xf, Buffer.from("metadata")), plainFrame("one\n"), skippable(3, Buffer.alloc(0)), plainFrame("two\n")]);
  assert.equal((await read(z)).toString(), "one\ntwo\n");
  assert.equal((await read(z, 1)).toString(), "one\ntwo\n");
  assert.equal((await read(Buffer.concat([skippable(0, Buffer.from("x")), skippable(1, Buffer.alloc(0))]))).length, 0);
});

test("decodes hand-built frames with each content size field (1, 2, 4 and 8 bytes) and RLE blocks", async () => {
  const body = Buffer.concat([Buffer.from("raw\n"), Buffer.alloc(300, 0x41), Buffer.from("\n")]);
  const blocks = [rawBlock(Buffer.from("raw\n"), false), rleBlock(0x41, 300, false), rawBlock(Buffer.from("\n"), true)];
  const n = body.length; // 305
  const frames = [
    frame(0x20, [n & 0xff], [rleBlock(0x42, n & 0xff, true)]), // single segment, 1-byte size (305 & 255 = 49)
    frame(0x60, [(n - 256) & 0xff, (n - 256) >> 8], blocks), // single segment, 2-byte size, stored minus 256
    frame(0x80, [0x00, n & 0xff, n >> 8, 0, 0], blocks), // window descriptor, 4-byte size
    frame(0xe0, [n & 0xff, n >> 8, 0, 0, 0, 0, 0, 0], blocks), // single segment, 8-byte size
  ];
  const expected = Buffer.concat([Buffer.alloc(49, 0x42), body, body, body]);
  assert.deepEqual(await read(Buffer.concat(frames)), expected);
  assert.deepEqual(await read(Buffer.concat(frames), 3), expected);
});

// --- The reader: invalid zstd input is an error, never silently shortened ---

test("refuses a stream cut inside a frame header, a block or the checksum", { skip: NO_ZSTD }, async () => {
  const text = logText(3000);
  const z = zstd(["--check"], text, { file: true });
  const joined = Buffer.concat([zstd([], logText(5, "first")), z]);
  const start = joined.length - z.length;
  for (const [where, cut] of [
    ["in the magic", start + 2], ["in the frame header", start + 6], ["in a block header", start + 10],
    ["in the middle of a block", start + Math.floor(z.length / 2)], ["in the checksum", joined.length - 2], ["before the checksum", joined.length - 4],
  ] as const) {
    await assertCorrupt(joined.subarray(0, cut), where);
    await assertCorrupt(joined.subarray(0, cut), `${where}, 1000-byte chunks`, 1000);
  }
});

test("refuses trailing junk after the last frame, even a single byte", { skip: NO_ZSTD }, async () => {
  const z = zstd([], logText(10));
  for (const tail of [Buffer.from("junk after the frame\n"), Buffer.from([0x0a]), Buffer.from([0x28, 0xb5, 0x2f]), Buffer.alloc(16)]) {
    await assertCorrupt(Buffer.concat([z, tail]), `tail ${tail.toString("hex")}`);
    await assertCorrupt(Buffer.concat([z, tail]), `tail ${tail.toString("hex")} in 1-byte chunks`, 1);
  }
});

test("refuses a frame whose checksum does not match its content", { skip: NO_ZSTD }, async () => {
  const z = zstd(["--check"], logText(10));
  z[z.length - 1] = (z[z.length - 1] as number) ^ 0xff;
  const e = await assertCorrupt(Buffer.concat([zstd([], logText(2)), z]), "flipped checksum byte in the second frame");
  assert.equal((e.cause as NodeJS.ErrnoException).code, "ZSTD_error_checksum_wrong");
});

test("refuses a frame that claims a window or content size above 128 MiB, quickly and without allocating it", async () => {
  const data = rawBlock(Buffer.from("abc\n"), true);
  const claims = [
    ["window 2^41 (descriptor 0xF8)", frame(0x00, [0xf8], [data])],
    ["window 2^28", frame(0x00, [0x90], [data])],
    ["window 2^27 * 15/8", frame(0x00, [0x8f], [data])],
    ["single segment, content size 2^62", frame(0xe0, [0, 0, 0, 0, 0, 0, 0, 0x40], [data])],
  ] as const;
  // Refused from the frame header (windowTooLarge), before any window is allocated or data copied: the code says so.
  for (const [name, f] of claims) {
    const e = await assertCorrupt(Buffer.concat([plainFrame("before\n"), f]), name);
    assert.equal((e.cause as NodeJS.ErrnoException).code, "ZSTD_error_frameParameter_windowTooLarge", name);
  }
  // The bound is the decoder's default limit (128 MiB, reader.ts): a frame at the limit is read.
  assert.equal((await read(frame(0x00, [0x88], [data]))).toString(), "abc\n");
});

test("refuses a skippable frame cut short of its claimed size, a reserved block type and a frame claiming a dictionary", async () => {
  await assertCorrupt(Buffer.concat([plainFrame("a\n"), skippable(0, Buffer.alloc(10), 0xffffffff)]), "skippable frame claiming 4 GiB");
  await assertCorrupt(Buffer.concat([plainFrame("a\n"), frame(0x00, [0x00], [blockHeader(3, 1, true), Buffer.from("x")])]), "reserved block type");
  await assertCorrupt(frame(0x01, [0x00, 0x07], [rawBlock(Buffer.from("abc\n"), true)]), "dictionary 7, which the reader does not have");
});

test("an auth log of zstd files joined with cat is analyzed in full; a truncated one is an unreadable file", { skip: NO_ZSTD }, async () => {
  const line = (s: number): string => `Nov 21 04:00:0${s} web sshd[${s}]: Failed password for root from 203.0.113.9 port 1 ssh2\n`;
  const path = join(dir, "auth.log.zst");
  writeFileSync(path, Buffer.concat([zstd([], Buffer.from(line(1) + line(2))), zstd([], Buffer.from(line(3) + line(4) + line(5)))]));
  const a = new AuthLogAnalyzer({ referenceMs: Date.UTC(2026, 10, 22) });
  await analyzeFile(a, path);
  assert.equal(a.stats.failures, 5, "the second frame's failures count");
  assert.deepEqual(a.finish().offenders.map((o) => o.address), ["203.0.113.9"]);
  const cut = join(dir, "cut.zst");
  const z = zstd([], Buffer.from(line(1)));
  writeFileSync(cut, z.subarray(0, z.length - 3));
  await assert.rejects(analyzeFile(new AuthLogAnalyzer({ referenceMs: 0 }), cut), (e: unknown) => e instanceof AuthLogUnreadableError && /cut\.zst.*corrupt zstd data/.test(e.message));
});

// --- Magic-number detection (reader.ts) ---

test("detects zstd by its magic even when the first chunks are shorter than the magic", { skip: NO_ZSTD }, async () => {
  const text = logText(5);
  const z = zstd([], text);
  assert.deepEqual(await read(z, 1), text);
  assert.deepEqual(await read(z, 3), text);
});

test("detects gzip by its magic, and refuses xz, bzip2 and lz4 naming the tool that reads them", async () => {
  assert.equal((await read(gzipSync("gz\n"), 1)).toString(), "gz\n");
  const refused = [
    ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04], /xz-compressed.*xz -dc/],
    ["bzip2", [...Buffer.from("BZh91AY&SY")], /bzip2-compressed.*bzip2 -dc/],
    ["lz4", [0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7], /lz4-compressed.*lz4 -dc/],
  ] as const;
  for (const [name, magic, message] of refused) {
    await assert.rejects(read(Buffer.from(magic)), message, name);
    await assert.rejects(read(Buffer.from(magic), 1), message, `${name} in 1-byte chunks`);
  }
});

test("reads as plain text what only resembles a magic number: BZh without a block size digit, part of the zstd magic", async () => {
  for (const text of ["BZhello world\n", "BZh\n", "(\u00b5/x not zstd\n", "P*M not skippable\n", "ab\n", "x"]) {
    const bytes = Buffer.from(text, "latin1");
    assert.deepEqual(await read(bytes), bytes, JSON.stringify(text));
    assert.deepEqual(await read(bytes, 1), bytes, `${JSON.stringify(text)} in 1-byte chunks`);
  }
  assert.equal((await read(Buffer.alloc(0))).length, 0, "empty input: nothing, no error");
});
