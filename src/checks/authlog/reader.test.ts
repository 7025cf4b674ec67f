import assert from "node:assert/strict";
import { mkdtemp, rm, utimes, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { AuthLogAnalyzer } from "./analyzer.ts";
import { AuthLogUnreadableError } from "./errors.ts";
import { analyzeFile, decompressed, feedChunks } from "./reader.ts";

const REF = Date.UTC(2026, 10, 22);
const LINE = "Nov 21 04:00:00 web sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2";
let dir = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "bulwark-authlog-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function* chunksOf(...parts: (string | Buffer)[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.isBuffer(p) ? p : Buffer.from(p, "latin1");
}

async function feed(parts: (string | Buffer)[], maxLineLength?: number): Promise<{ lines: string[]; a: AuthLogAnalyzer; count: number }> {
  const a = new AuthLogAnalyzer({ referenceMs: REF, maxLineLength });
  const lines: string[] = [];
  const orig = a.line.bind(a);
  a.line = (text: string, n: number): void => {
    lines.push(`${n}:${text}`);
    orig(text, n);
  };
  a.beginFile("t");
  const count = await feedChunks(a, chunksOf(...parts));
  return { lines, a, count };
}

test("splits lines across chunk boundaries and strips CR before LF", async () => {
  const { lines, count } = await feed(["ab", "c\r\nde", "f\ng", "h"]);
  assert.deepEqual(lines, ["1:abc", "2:def", "3:gh"]);
  assert.equal(count, 3);
});

test("counts a line longer than the limit as overlong, also when it spans chunks, and goes on", async () => {
  const long = "x".repeat(300);
  const { lines, a } = await feed(["ok1\n", long.slice(0, 100), long.slice(100), "\nok2\n", `${long}\nok3`], 256);
  assert.deepEqual(lines, ["1:ok1", "3:ok2", "5:ok3"]);
  assert.equal(a.stats.overlong, 2);
  assert.equal(a.stats.lines, 5);
});

test("counts an overlong last line without a newline", async () => {
  const { a, count } = await feed(["ok\n", "y".repeat(1000)], 256);
  assert.equal(a.stats.overlong, 1);
  assert.equal(count, 2);
});

test("reads gzip input, detected by its magic bytes whatever the file name", async () => {
  const path = join(dir, "auth.log.2");
  await writeFile(path, gzipSync(`${LINE}\n${LINE}\n`));
  const a = new AuthLogAnalyzer({ referenceMs: REF });
  await analyzeFile(a, path);
  assert.equal(a.stats.lines, 2);
  assert.equal(a.stats.failures, 2);
});

test("reads concatenated gzip members (rotated logs joined with cat)", async () => {
  const path = join(dir, "joined.gz");
  await writeFile(path, Buffer.concat([gzipSync(`${LINE}\n`), gzipSync(`${LINE}\n`)]));
  const a = new AuthLogAnalyzer({ referenceMs: REF });
  await analyzeFile(a, path);
  assert.equal(a.stats.failures, 2);
});

test("reads gzip from a stream (stdin)", async () => {
  const out: Buffer[] = [];
  for await (const c of decompressed(chunksOf(gzipSync("a\nb\n")))) out.push(c);
  assert.equal(Buffer.concat(out).toString(), "a\nb\n");
});

test("names a missing file, a directory and a corrupt gzip file in the error", async () => {
  const a = new AuthLogAnalyzer({ referenceMs: REF });
  await assert.rejects(analyzeFile(a, join(dir, "missing.log")), (e: unknown) => e instanceof AuthLogUnreadableError && /missing\.log.*no such file/.test(e.message));
  await mkdir(join(dir, "sub"), { recursive: true });
  await assert.rejects(analyzeFile(a, join(dir, "sub")), (e: unknown) => e instanceof AuthLogUnreadableError && /is a directory/.test(e.message));
  const bad = join(dir, "bad.gz");
  await writeFile(bad, Buffer.concat([gzipSync(`${LINE}\n`).subarray(0, 12), Buffer.from("garbage garbage garbage")]));
  await assert.rejects(analyzeFile(a, bad), (e: unknown) => e instanceof AuthLogUnreadableError && /bad\.gz/.test(e.message) && e.code === "BULWARK_ERR_AUTHLOG_UNREADABLE");
});

test("reads an empty file as zero lines", async () => {
  const path = join(dir, "empty.log");
  await writeFile(path, "");
  const a = new AuthLogAnalyzer({ referenceMs: REF });
  await analyzeFile(a, path);
  assert.equal(a.stats.lines, 0);
});

test("decodes non-ASCII user names as UTF-8 in the findings' evidence", async () => {
  const lines = Array.from({ length: 5 }, (_, i) => `Nov 21 04:00:0${i} web sshd[${i}]: Failed password for invalid user jürgen from 203.0.113.9 port 1 ssh2`);
  const path = join(dir, "utf8.log");
  await writeFile(path, `${lines.join("\n")}\n`);
  const a = new AuthLogAnalyzer({ referenceMs: REF });
  await analyzeFile(a, path);
  assert.deepEqual([...(a.finish().offenders[0]?.users ?? [])], ["jürgen"]);
});

// ASVS 16.2.2. Red team 38b, finding 3: a year of monthly rotated files read on 7 December without --year put auth.log.12's
// "Dec  1" (last year) in this year, and last year's brute force on deploy beside this year's own login of deploy. A
// file's mtime bounds its stamps: auth.log.12 was last written when it was rotated out, on 1 January.
test("a rotated file's lines are placed by its mtime: last December's brute force in auth.log.12.gz stays last year, in one thread or with a worker", async () => {
  const ref = Date.UTC(2026, 11, 7, 12);
  const current = ["Dec  1 00:00:05 web CRON[1]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", "Dec  6 08:00:00 web sshd[950]: Accepted password for deploy from 192.0.2.10 port 41000 ssh2"];
  const lastYear = ["Dec  1 00:00:03 web CRON[1]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"];
  for (let i = 0; i < 6; i++) lastYear.push(`Dec  6 03:00:0${i} web sshd[900]: Failed password for deploy from 198.51.100.${i + 1} port ${40000 + i} ssh2`);
  const rotated = join(dir, "auth.log.12.gz");
  const live = join(dir, "auth.log");
  await writeFile(rotated, gzipSync(`${lastYear.join("\n")}\n`));
  await writeFile(live, `${current.join("\n")}\n`);
  await utimes(rotated, new Date(Date.UTC(2026, 0, 1, 6, 25)), new Date(Date.UTC(2026, 0, 1, 6, 25)));
  await utimes(live, new Date(ref - 3_600_000), new Date(ref - 3_600_000));
  for (const workers of [false, true]) {
    const a = new AuthLogAnalyzer({ referenceMs: ref, workers });
    await analyzeFile(a, live);
    await analyzeFile(a, rotated);
    const r = a.finish();
    assert.deepEqual(r.attackedUsers.map((u) => [u.user, new Date(u.attackFirstMs).toISOString()]), [["deploy", "2025-12-06T03:00:04.000Z"]], `workers: ${workers}`);
    assert.deepEqual(r.compromises, [], `workers: ${workers}`);
  }
  // Its mtime lost (copied without -p: now), the file is placed by the reference time, as before: a limit.
  await utimes(rotated, new Date(ref), new Date(ref));
  const a = new AuthLogAnalyzer({ referenceMs: ref });
  await analyzeFile(a, live);
  await analyzeFile(a, rotated);
  assert.equal(a.finish().compromises.length, 1);
});
