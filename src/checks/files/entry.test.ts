// Path order and mode helpers: the order must equal a component-by-component comparison.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decodeEntry } from "./baseline-format.ts";
import { comparePaths, formatMode, isExecutableMode, isSetID, isWithin } from "./entry.ts";

function byComponents(a: string, b: string): number {
  const pa = a.split("/");
  const pb = b.split("/");
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i] as string;
    const y = pb[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

describe("comparePaths", () => {
  it("puts a directory right before its contents, before a sibling that shares its prefix", () => {
    assert.deepEqual(["/a/b-x", "/a/b/c", "/a/b", "/a", "/"].sort(comparePaths), ["/", "/a", "/a/b", "/a/b/c", "/a/b-x"]);
  });

  it("agrees with a component-by-component comparison on random paths", () => {
    const component = fc.string({ unit: fc.constantFrom("a", "b", "-", " ", ".", "é", "\u{1F600}"), minLength: 1, maxLength: 4 });
    const path = fc.array(component, { minLength: 1, maxLength: 4 }).map((cs) => `/${cs.join("/")}`);
    fc.assert(
      fc.property(path, path, (a, b) => {
        assert.equal(Math.sign(comparePaths(a, b)), Math.sign(byComponents(a, b)));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("path and mode helpers", () => {
  it("isWithin matches whole components only", () => {
    assert.equal(isWithin("/usr/bin/ls", "/usr/bin"), true);
    assert.equal(isWithin("/usr/bin", "/usr/bin"), true);
    assert.equal(isWithin("/usr/binx/ls", "/usr/bin"), false);
    assert.equal(isWithin("/anything", "/"), true);
  });

  it("formats and reads permission bits", () => {
    assert.equal(formatMode(0o104755), "4755");
    assert.equal(isExecutableMode("0644"), false);
    assert.equal(isExecutableMode("0744"), true);
    assert.equal(isSetID("2755"), true);
    assert.equal(isSetID("1777"), false);
  });
});

describe("decodeEntry", () => {
  const line = (path: string) => ({ path, type: "file", status: "ok", mode: "0644", uid: 0, gid: 0, size: 1, mtime: "1", ctime: "1", ino: "1", target: null, sha256: null, error: null });
  it("takes only paths in the form the scan records them (red team 37: '<dir>/../../secret' was looked up outside the tree)", () => {
    for (const path of ["/", "/etc/passwd", "/a/.b", "/a/..b", "/..."]) assert.equal(typeof decodeEntry(line(path)), "object", path);
    for (const path of ["/a/../secret", "/a/./b", "//a", "/a/", "/a/..", "/a/.", "a/b"]) assert.match(decodeEntry(line(path)) as string, /^path must be an absolute path/, path);
  });
});
