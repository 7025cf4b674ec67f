// Checksum-file parser: known-answer vectors from GNU coreutils sha256sum (see testdata), then the
// edge cases sha256sum accepts or refuses.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseSums, parseSumsLine, unsafeNameReason, type SumsLine } from "./sums-parse.ts";

interface Vectors {
  files: Record<string, string>;
  gnuText: string;
  gnuBinary: string;
  bsd: string;
}
const vectors = JSON.parse(readFileSync(new URL("./testdata/sha256sum-vectors.json", import.meta.url), "utf8")) as Vectors;

async function parseText(text: string): Promise<SumsLine[]> {
  const out: SumsLine[] = [];
  for await (const l of parseSums([text])) out.push(l);
  return out;
}

const H = "b6a98d9ce9a2d9149288fa3df42d377c3e42737afdcdaf714e33c0a100b51060";

describe("parseSums on sha256sum's own output", () => {
  for (const [label, text, binary] of [
    ["text mode", vectors.gnuText, false],
    ["binary mode (*)", vectors.gnuBinary, true],
  ] as const) {
    it(`reads every name of the GNU ${label} output, escaped names included`, async () => {
      const entries = (await parseText(text)).filter((l) => l.kind === "entry");
      const expected = Object.keys(vectors.files).filter((n) => text.includes(n.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")));
      assert.deepEqual(entries.map((e) => e.name).sort(), expected.sort());
      for (const e of entries) {
        assert.equal(e.kind === "entry" && e.binary, binary);
        assert.equal(e.kind === "entry" && e.format, "gnu");
      }
    });
  }

  it("reads the BSD (--tag) output, escaped names included", async () => {
    const entries = (await parseText(vectors.bsd)).filter((l) => l.kind === "entry");
    assert.deepEqual(entries.map((e) => e.kind === "entry" && e.name), ["plain.txt", "with space.txt", "empty", "back\\slash", "new\nline", "ünï.txt"]);
    assert.ok(entries.every((e) => e.kind === "entry" && e.format === "bsd"));
  });

  it("keeps a name that starts with * or a space in text mode", () => {
    assert.deepEqual(parseSumsLine(`${H}  *star`, 1), { kind: "entry", line: 1, name: "*star", sha256: H, binary: false, format: "gnu" });
    assert.deepEqual(parseSumsLine(`${H} * lead`, 2), { kind: "entry", line: 2, name: " lead", sha256: H, binary: true, format: "gnu" });
  });
});

describe("parseSumsLine edge cases", () => {
  it("accepts upper-case hex, CRLF endings and the single-space -r form", () => {
    const r = parseSumsLine(`${H.toUpperCase()}  a.tar.gz\r`, 1);
    assert.equal(r.kind === "entry" && r.sha256, H);
    assert.equal(r.kind === "entry" && r.name, "a.tar.gz");
    assert.equal(parseSumsLine(`${H} a.tar.gz`, 1).kind, "entry");
    assert.equal(parseSumsLine(`SHA256(a.tar.gz)= ${H}`, 1).kind, "entry");
  });

  it("skips blank lines and comments", () => {
    assert.equal(parseSumsLine("", 1).kind, "skip");
    assert.equal(parseSumsLine("   ", 1).kind, "skip");
    assert.equal(parseSumsLine("# signed by release team", 1).kind, "skip");
  });

  it("refuses digests of other lengths and other algorithms with a reason", () => {
    const md5 = parseSumsLine("d41d8cd98f00b204e9800998ecf8427e  x", 1);
    assert.equal(md5.kind, "malformed");
    assert.match(md5.kind === "malformed" ? md5.reason : "", /32 hex digits, SHA-256 has 64/);
    assert.match(JSON.stringify(parseSumsLine(`MD5 (x) = d41d8cd98f00b204e9800998ecf8427e`, 1)), /another algorithm/);
    assert.match(JSON.stringify(parseSumsLine(`SHA256 (x) = ${H}00`, 1)), /66 hex digits/);
    assert.match(JSON.stringify(parseSumsLine(`${H}`, 1)), /not followed by a space/);
    assert.match(JSON.stringify(parseSumsLine(`${H}  `, 1)), /name is empty/);
    assert.match(JSON.stringify(parseSumsLine(`\\${H}  bad\\qescape`, 1)), /unknown \\\\ escape/);
    assert.match(JSON.stringify(parseSumsLine("hello world", 1)), /does not start with a hex digest/);
  });

  it("names unsafe paths: absolute, drive letters, .. components with either separator", () => {
    assert.equal(unsafeNameReason("dist/app.tar.gz"), null);
    assert.equal(unsafeNameReason("./app..tar.gz"), null);
    assert.match(unsafeNameReason("/etc/shadow") ?? "", /absolute/);
    assert.match(unsafeNameReason("../x") ?? "", /\.\./);
    assert.match(unsafeNameReason("a/../../x") ?? "", /\.\./);
    assert.match(unsafeNameReason("..\\x") ?? "", /\.\./);
    assert.match(unsafeNameReason("C:\\Windows\\x") ?? "", /drive/);
    assert.match(unsafeNameReason("a\0b") ?? "", /NUL/);
  });
});
