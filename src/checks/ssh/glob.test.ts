// Known answers for the Include glob: each vector is what glibc 2.36's glob(3) (Debian 12, the C library of
// the OpenSSH 9.2p1 the check follows) returned for the pattern over the directory listed below, run once
// through a five-line C program calling glob(pattern, 0, NULL, &g). Then the file system walk itself.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileSystemSource } from "./file-system-source.ts";
import { globMatch, hasWildcard, unescapeSegment } from "./glob.ts";

const NAMES = [".", "..", ".hid", ".x", "a*.conf", "a.conf", "a[b", "a\\b", "ab.conf", "b", "dangling", "sub"];
const VECTORS: Readonly<Record<string, readonly string[]>> = {
  "[!a]*": ["b", "dangling", "sub"],
  "[^a]*": ["b", "dangling", "sub"],
  ".*": [".", "..", ".hid", ".x"],
  "\\.*": [".", "..", ".hid", ".x"],
  "[.]*": [],
  ".?": ["..", ".x"],
  "?*": ["a*.conf", "a.conf", "a[b", "a\\b", "ab.conf", "b", "dangling", "sub"],
  "[]a]*": ["a*.conf", "a.conf", "a[b", "a\\b", "ab.conf"],
  "[[:alpha:]].conf": ["a.conf"],
  "[a-b]*": ["a*.conf", "a.conf", "a[b", "a\\b", "ab.conf", "b"],
  "a\\*.conf": ["a*.conf"],
  "a\\\\b": ["a\\b"],
  "a\\": [],
};

describe("globMatch agrees with glibc glob(3)", () => {
  for (const [pattern, expected] of Object.entries(VECTORS)) {
    test(`pattern ${pattern}`, () => {
      assert.deepEqual(NAMES.filter((n) => globMatch(n, pattern)), expected);
    });
  }
  test("an unclosed bracket is a literal '[' and a segment without wildcards loses its escapes", () => {
    assert.equal(hasWildcard("a[b"), false);
    assert.equal(unescapeSegment("a\\b.conf"), "ab.conf");
    assert.equal(unescapeSegment("a\\"), null);
    assert.equal(hasWildcard("[0-9]*.conf"), true);
  });
  test("a hostile pattern of many stars ends at once", () => {
    assert.equal(globMatch("a".repeat(255), `${"*a".repeat(100)}b`), false);
  });
});

describe("fileSystemSource.glob", () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "bulwark-ssh-glob-")));
  after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "real/inner"), { recursive: true });
  writeFileSync(join(root, "real/x.conf"), "");
  writeFileSync(join(root, "x.conf"), "");
  symlinkSync(join(root, "real/inner"), join(root, "link"));
  symlinkSync(join(root, "nowhere"), join(root, "dangling.conf"));

  test("keeps '..' for the kernel to resolve after a link, and lists a dangling link as glob(3) does", () => {
    assert.deepEqual(fileSystemSource.glob(`${root}/link/../x.conf`), [`${root}/link/../x.conf`]);
    assert.deepEqual(fileSystemSource.glob(`${root}/*.conf`), [`${root}/dangling.conf`, `${root}/x.conf`]);
  });
  test("a trailing slash matches directories only", () => {
    assert.deepEqual(fileSystemSource.glob(`${root}/x.conf/`), []);
    assert.deepEqual(fileSystemSource.glob(`${root}/r*/`), [`${root}/real/`]);
  });
  test("the directory budget is shared by every pattern it is given", () => {
    const budget = { directories: 1 };
    fileSystemSource.glob(`${root}/*`, { budget });
    assert.throws(() => fileSystemSource.glob(`${root}/r*`, { budget }), /more than .* directories/);
  });
});
