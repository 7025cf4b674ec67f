// verifyDownloads: the coreutils vectors verify end to end; mismatches, missing files and
// malformed lines become findings; a file without any checksum line is a clear input error.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { tempDir } from "../files/test-helpers.ts";
import { verifyDownloads } from "./verify.ts";

interface Vectors {
  files: Record<string, string>;
  gnuText: string;
  gnuBinary: string;
  bsd: string;
}
const vectors = JSON.parse(readFileSync(new URL("./testdata/sha256sum-vectors.json", import.meta.url), "utf8")) as Vectors;
const ALPHA = "b6a98d9ce9a2d9149288fa3df42d377c3e42737afdcdaf714e33c0a100b51060";

describe("verifyDownloads", () => {
  let dir: string;
  before(() => {
    dir = tempDir("bulwark-downloads-");
    for (const [name, content] of Object.entries(vectors.files)) writeFileSync(join(dir, name), content);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const key of ["gnuText", "gnuBinary", "bsd"] as const) {
    it(`verifies every file of the coreutils ${key} vector`, async () => {
      const sums = join(dir, `${key}.sums`);
      writeFileSync(sums, vectors[key]);
      const r = await verifyDownloads({ sums });
      assert.deepEqual(r.findings, []);
      assert.equal(r.ok, r.entries);
      assert.ok(r.ok >= 6);
    });
  }

  it("reports a changed artifact as a critical mismatch with both digests", async () => {
    const sub = join(dir, "rel");
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, "app.tar.gz"), "alpha\n");
    writeFileSync(join(sub, "lib.tar.gz"), "trojaned\n");
    const sums = join(dir, "rel.sums");
    writeFileSync(sums, `${ALPHA}  app.tar.gz\n${ALPHA}  lib.tar.gz\n`);
    const r = await verifyDownloads({ sums, dir: sub });
    assert.equal(r.ok, 1);
    const f = r.findings.find((x) => x.id === "downloads.mismatch");
    assert.equal(f?.severity, "critical");
    const item = (f?.evidence["items"] as Array<Record<string, unknown>>)[0];
    assert.equal(item?.["name"], "lib.tar.gz");
    assert.equal(item?.["expected"], ALPHA);
    assert.match(String(item?.["actual"]), /^[0-9a-f]{64}$/);
  });

  it("reports missing files (high) and malformed lines (with their line numbers)", async () => {
    const sums = join(dir, "mixed.sums");
    writeFileSync(sums, `${ALPHA}  plain.txt\n${ALPHA}  not-downloaded.iso\nMD5 (x) = 00\n\n# comment\nrubbish\n`);
    const r = await verifyDownloads({ sums });
    assert.equal(r.ok, 1);
    const missing = r.findings.find((x) => x.id === "downloads.missing");
    assert.equal(missing?.severity, "high");
    assert.deepEqual((missing?.evidence["items"] as Array<{ name: string }>).map((i) => i.name), ["not-downloaded.iso"]);
    const malformed = r.findings.find((x) => x.id === "downloads.malformed-line");
    assert.deepEqual((malformed?.evidence["items"] as Array<{ line: number }>).map((i) => i.line), [3, 6]);
  });

  it("reports a directory listed as a file as missing, not as a crash", async () => {
    mkdirSync(join(dir, "adir"), { recursive: true });
    const sums = join(dir, "dir.sums");
    writeFileSync(sums, `${ALPHA}  adir\n`);
    const r = await verifyDownloads({ sums });
    assert.deepEqual(r.findings.map((f) => f.id), ["downloads.missing"]);
  });

  it("refuses a checksum file with no checksum line at all", async () => {
    const sums = join(dir, "none.sums");
    writeFileSync(sums, "# nothing here\n\nnot a checksum\n");
    await assert.rejects(verifyDownloads({ sums }), { code: "BULWARK_ERR_DOWNLOADS_SUMS", message: /no SHA-256 checksum lines/ });
    await assert.rejects(verifyDownloads({ sums: join(dir, "absent.sums") }), { code: "BULWARK_ERR_DOWNLOADS_SUMS" });
    await assert.rejects(verifyDownloads({ sums, dir: join(dir, "no-such-dir") }), { code: "BULWARK_ERR_DOWNLOADS_DIR" });
  });

  it("refuses a directory given as the checksum file as input, naming it (was: EISDIR, internal error)", async () => {
    const release = join(dir, "release-dir");
    mkdirSync(release, { recursive: true });
    writeFileSync(join(release, "SHA256SUMS"), `${ALPHA}  alpha\n`);
    await assert.rejects(verifyDownloads({ sums: release }), (error: Error & { code?: string; kind?: string }) => {
      assert.equal(error.code, "BULWARK_ERR_DOWNLOADS_SUMS");
      assert.equal(error.kind, "input");
      assert.match(error.message, new RegExp(`${release.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is a directory`));
      assert.match(error.message, /SHA256SUMS/, "points at the checksum file inside it");
      assert.doesNotMatch(error.message, /EISDIR/);
      return true;
    });
  });

  it("does not read a listed file past maxFileBytes: it is too-large-to-hash (high), not verified, and the rest is verified", async () => {
    const sub = join(dir, "limit");
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, "small.txt"), "alpha\n");
    writeFileSync(join(sub, "big.iso"), "x".repeat(2048));
    const sums = join(dir, "limit.sums");
    writeFileSync(sums, `${ALPHA}  small.txt\n${ALPHA}  big.iso\n`);
    const r = await verifyDownloads({ sums, dir: sub, maxFileBytes: 1024 });
    assert.deepEqual(r.okNames, ["small.txt"]);
    assert.deepEqual(r.findings.map((f) => `${f.id}/${f.severity}`), ["downloads.too-large-to-hash/high"]);
    assert.match(r.findings[0]?.detail ?? "", /"big\.iso" \(line 2\): larger than the limit of 1 KiB/);
  });

  describe("ignoreMissing (sha256sum -c --ignore-missing)", () => {
    const sha = (text: string): string => createHash("sha256").update(text).digest("hex");
    let rel: string;
    before(() => {
      rel = join(dir, "iso");
      mkdirSync(join(rel, "server.iso"), { recursive: true });
      writeFileSync(join(rel, "desktop.iso"), "iso-desktop\n");
    });

    it("verifies the one ISO downloaded from a SHA256SUMS listing two, without a missing finding", async () => {
      // False alarm: the standard "verify only what I downloaded" exited 1 with high downloads.missing.
      const sums = join(rel, "SHA256SUMS");
      writeFileSync(sums, `${sha("iso-desktop\n")} *desktop.iso\n${sha("iso-arm\n")} *arm64.iso\n`);
      const r = await verifyDownloads({ sums, ignoreMissing: true });
      assert.deepEqual(r.findings, []);
      assert.deepEqual([r.entries, r.ok, r.missingIgnored], [2, 1, 1]);
      const plain = await verifyDownloads({ sums });
      assert.deepEqual([plain.findings.map((f) => f.id), plain.missingIgnored], [["downloads.missing"], 0]);
    });

    it("still reports a tampered file, and a listed name that is a directory", async () => {
      const sums = join(rel, "SUMS-tampered");
      writeFileSync(sums, `${sha("iso-desktop-original\n")} *desktop.iso\n${sha("x")} *server.iso\n${sha("y")} *absent.iso\n`);
      const r = await verifyDownloads({ sums, ignoreMissing: true });
      assert.deepEqual(r.findings.map((f) => `${f.id}/${f.severity}`), ["downloads.mismatch/critical", "downloads.missing/high"]);
      assert.deepEqual((r.findings[1]?.evidence["items"] as Array<{ name: string }>).map((i) => i.name), ["server.iso"]);
      assert.equal(r.missingIgnored, 1);
    });

    it("reports the absent files when none of them is present, as sha256sum fails with \"no file was verified\"", async () => {
      const sums = join(rel, "SUMS-elsewhere");
      writeFileSync(sums, `${sha("a")} *a.iso\n${sha("b")} *b.iso\n`);
      const r = await verifyDownloads({ sums, ignoreMissing: true });
      assert.deepEqual(r.findings.map((f) => f.id), ["downloads.missing"]);
      assert.equal(r.findings[0]?.evidence["count"], 2);
      assert.equal(r.missingIgnored, 0);
    });
  });
});
