// Attacks through a hostile checksum file that must fail: names that lead outside the directory are
// refused as findings and never opened — even when the digest given is the right one for the target.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { tempDir } from "../files/test-helpers.ts";
import { verifyDownloads } from "./verify.ts";

describe("checksum file path traversal", () => {
  let root: string;
  let release: string;
  let secretHash: string;
  before(() => {
    root = tempDir("bulwark-traversal-");
    release = join(root, "release");
    mkdirSync(release);
    // The "secret" outside the release dir: if the verifier read it, the right digest would say OK.
    writeFileSync(join(root, "secret"), "outside\n");
    secretHash = createHash("sha256").update("outside\n").digest("hex");
    symlinkSync("../secret", join(release, "innocent.tar.gz"));
    symlinkSync(root, join(release, "up"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  async function refused(name: string, escaped = false): Promise<void> {
    const sums = join(root, "SHA256SUMS");
    writeFileSync(sums, `${escaped ? "\\" : ""}${secretHash}  ${name}\n`);
    const r = await verifyDownloads({ sums, dir: release });
    assert.equal(r.ok, 0, `${name} must not be read`);
    assert.deepEqual(r.findings.map((f) => f.id), ["downloads.path-traversal"], name);
    assert.equal(r.findings[0]?.severity, "high");
  }

  it("refuses ../ names", () => refused("../secret"));
  it("refuses .. hidden deeper in the name", () => refused("a/../../secret"));
  it("refuses absolute paths", () => refused(join(root, "secret")));
  it("refuses backslash .. names", () => refused("..\\secret"));
  it("refuses a symlink inside the directory that leads outside", () => refused("innocent.tar.gz"));
  it("refuses a path through a symlinked directory that leads outside", () => refused("up/secret"));
  it("refuses an escaped name that unescapes to a traversal", () => refused("..\\\\secret", true));

  it("refuses BSD-format traversal too", async () => {
    const sums = join(root, "BSD");
    writeFileSync(sums, `SHA256 (../secret) = ${secretHash}\nSHA256 (/etc/passwd) = ${secretHash}\n`);
    const r = await verifyDownloads({ sums, dir: release });
    assert.equal(r.ok, 0);
    assert.equal(r.findings[0]?.evidence["count"], 2);
  });
});
