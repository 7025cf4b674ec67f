// Look-alike names: the same name but for Unicode normalisation or letter case, found by listing a directory once.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { tempDir } from "../files/test-helpers.ts";
import { foldedName, lookalikeFinder } from "./lookalike.ts";

it("folds NFC, NFD and case to one form, and keeps different names apart", () => {
  assert.equal(foldedName("cafe\u0301.iso"), foldedName("caf\u00e9.iso"));
  assert.equal(foldedName("CAF\u00c9.ISO"), foldedName("caf\u00e9.iso"));
  assert.notEqual(foldedName("cafe.iso"), foldedName("caf\u00e9.iso"));
});

it("finds the NFD and upper-case twins of an absent NFC name, never the name itself", async (t) => {
  const dir = tempDir("bulwark-lookalike-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of ["cafe\u0301.iso", "CAF\u00c9.iso", "cafe.iso", "readme.txt"]) writeFileSync(join(dir, name), "x");
  const finder = lookalikeFinder();
  assert.deepEqual((await finder.find(dir, Buffer.from(dir), "caf\u00e9.iso")).sort(), ["CAF\u00c9.iso", "cafe\u0301.iso"].sort());
  assert.deepEqual(await finder.find(dir, Buffer.from(dir), "readme.txt"), []);
  assert.deepEqual(await finder.find(join(dir, "absent"), Buffer.from(join(dir, "absent")), "x"), [], "a directory that cannot be listed has none");
});
