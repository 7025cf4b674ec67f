// Baseline round trip: what is written signed reads back identical and trusted, in order, streamed.
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ManualClock } from "../../lib/clock.ts";
import { MAX_PATH } from "./baseline-format.ts";
import { BaselineReader } from "./baseline-read.ts";
import { writeBaseline, writeBaselineFile, type BaselineSink } from "./baseline-write.ts";
import type { FileEntry } from "./entry.ts";
import { scanTree } from "./scan.ts";
import { tempDir, testSigner } from "./test-helpers.ts";

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("baseline files", () => {
  let root: string;
  const signer = testSigner();
  const clock = new ManualClock(Date.UTC(2026, 10, 1, 12, 0, 0));
  before(() => {
    root = tempDir("bulwark-baseline-");
    mkdirSync(join(root, "tree/etc"), { recursive: true });
    writeFileSync(join(root, "tree/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    writeFileSync(join(root, "tree/etc/hosts"), "127.0.0.1 localhost\n");
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("reads back exactly the entries it wrote, trusted, with the header's roots and time", async () => {
    const out = join(root, "b.jsonl");
    const tree = join(root, "tree");
    const result = await writeBaselineFile(out, scanTree([tree]), { roots: [tree], signer, clock });
    assert.equal(result.entries, 4);
    const reader = new BaselineReader([readFileSync(out)], signer);
    const header = await reader.readHeader();
    assert.deepEqual(header.roots, [tree]);
    assert.equal(header.createdAt, "2026-11-01T12:00:00.000Z");
    const read = await all(reader.entries());
    // Every field but the device, which a baseline never holds (it changes across boots).
    assert.deepEqual(read, (await all(scanTree([tree]))).map(({ dev, ...rest }) => (assert.match(dev ?? "", /^\d+$/), rest)));
    assert.equal(reader.integrity.trusted, true);
    assert.equal(reader.integrity.keyId, signer.keyId);
  });

  it("reads a baseline delivered in tiny chunks the same as in one piece", async () => {
    const out = join(root, "b2.jsonl");
    const tree = join(root, "tree");
    await writeBaselineFile(out, scanTree([tree]), { roots: [tree], signer, clock });
    const bytes = readFileSync(out);
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.subarray(i, i + 7));
    const reader = new BaselineReader(chunks, signer);
    assert.equal((await all(reader.entries())).length, 4);
    assert.equal(reader.integrity.trusted, true);
  });

  it("leaves vanished entries out of the baseline and streams through a sink", async () => {
    const written: string[] = [];
    const sink: BaselineSink = { write: async (t) => void written.push(t) };
    const base: FileEntry = { path: "/x", type: "file", status: "ok", mode: "0644", uid: 0, gid: 0, size: 0, mtime: "1", ctime: "1", ino: "2", target: null, sha256: null, error: null };
    async function* entries(): AsyncGenerator<FileEntry> {
      yield base;
      yield { ...base, path: "/x/gone", status: "vanished", type: "unknown" };
      yield { ...base, path: "/y" };
    }
    const r = await writeBaseline(entries(), sink, { roots: ["/"], signer, clock });
    assert.equal(r.entries, 2);
    assert.equal(written.length, 4, "header, two entries, trailer");
    assert.ok(!written.join("").includes("/x/gone"));
  });

  it("refuses, by name, a path longer than its reader takes, and leaves no file: never a baseline that reads as tampered", async () => {
    const base: FileEntry = { path: "/x", type: "dir", status: "ok", mode: "0755", uid: 0, gid: 0, size: 0, mtime: "1", ctime: "1", ino: "2", target: null, sha256: null, error: null };
    const deep = `/x/${"\u00ff".repeat(MAX_PATH)}`;
    async function* entries(): AsyncGenerator<FileEntry> {
      yield base;
      yield { ...base, path: deep };
    }
    const dir = join(root, "deep-out");
    mkdirSync(dir);
    await assert.rejects(writeBaselineFile(join(dir, "b.jsonl"), entries(), { roots: ["/x"], signer, clock }), (e: Error & { code?: string }) =>
      e.code === "BULWARK_ERR_FILES_PATH" && e.message.includes(`its path is ${deep.length} characters`));
    assert.deepEqual(readdirSync(dir), []);
    // Just under the bound, escaped at six bytes a character: written, and read back trusted.
    const out = join(dir, "ok.jsonl");
    const fits = `/x/${"\u00ff".repeat(MAX_PATH - 3)}`;
    async function* fitting(): AsyncGenerator<FileEntry> {
      yield base;
      yield { ...base, path: fits };
    }
    await writeBaselineFile(out, fitting(), { roots: ["/x"], signer, clock });
    const reader = new BaselineReader([readFileSync(out)], signer);
    await reader.readHeader();
    const paths: string[] = [];
    for await (const e of reader.entries()) paths.push(e.path);
    assert.deepEqual(paths.map((p) => p.length), [2, MAX_PATH]);
    assert.equal(reader.integrity.trusted, true);
  });

  it("does not leave a temporary file behind when the scan fails", async () => {
    const dir = join(root, "out");
    mkdirSync(dir);
    await assert.rejects(writeBaselineFile(join(dir, "b.jsonl"), scanTree([join(root, "missing")]), { roots: ["/"], signer, clock }), { code: "BULWARK_ERR_FILES_PATH" });
    assert.deepEqual(readdirSync(dir), []);
  });

  it("does not record the baseline itself when it is written inside the scanned tree", async () => {
    const tree = join(root, "tree");
    const out = join(tree, "etc", "self.baseline");
    const { createBaseline, compareBaseline } = await import("./check.ts");
    const r = await createBaseline({ paths: [tree], out, signer, clock });
    assert.equal(r.entries, 4);
    assert.ok(!readFileSync(out, "utf8").includes("self.baseline"));
    const c = await compareBaseline({ baseline: out, signer });
    assert.deepEqual(c.findings, []);
    rmSync(out);
  });

  it("refuses a file that is not a baseline with a clear error", async () => {
    await assert.rejects(new BaselineReader(["hello\n"], signer).readHeader(), { code: "BULWARK_ERR_BASELINE_FORMAT", message: /not a Bulwark files baseline/ });
    await assert.rejects(new BaselineReader([], signer).readHeader(), { code: "BULWARK_ERR_BASELINE_FORMAT", message: /empty/ });
    await assert.rejects(new BaselineReader(['{"format":"bulwark-files-baseline","version":9}\n'], signer).readHeader(), { message: /unsupported baseline version 9/ });
  });
});
