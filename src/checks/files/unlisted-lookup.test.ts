// A directory the compare cannot list (an LSM denial, a monitoring account without read permission): what the
// baseline recorded under it is looked up by the names it recorded, not reported as removed (ASVS 16.5.3).
import assert from "node:assert/strict";
import { chmodSync, linkSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { ManualClock } from "../../lib/clock.ts";
import { compareBaseline, createBaseline } from "./check.ts";
import { createNodeScanFS, nodeScanFS, type ScanFS } from "./hash-file.ts";
import { createLookUp } from "./look-up.ts";
import { DIR_REPLACED } from "./compare.ts";
import { lookUpEntry, NOT_LISTED } from "./scan.ts";
import { ratingsOf, testSigner, treeSandboxes } from "./test-helpers.ts";

const sandbox = treeSandboxes("bulwark-files-unlisted-");
const signer = testSigner();
const clock = new ManualClock(Date.parse("2026-12-07T10:00:00Z"));

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: denied`), { code });

/** The node file system, except that `dirs` cannot be listed (and, for `noSearch`, nothing in them examined). */
function denying(dirs: readonly string[], noSearch: readonly string[] = []): ScanFS {
  const blocked = (p: string): boolean => noSearch.some((d) => p.startsWith(`${d}/`));
  return {
    ...nodeScanFS,
    readdir: async (p) => {
      if (dirs.includes(p)) throw errno("EACCES");
      return nodeScanFS.readdir(p);
    },
    lstat: async (p) => {
      if (blocked(p)) throw errno("EACCES");
      return nodeScanFS.lstat(p);
    },
  };
}

/** A tree with libexec/{helper (setuid), tool, sub/{inner, deeper/leaf}} recorded by a baseline with full rights. */
async function recorded(): Promise<{ tree: string; baseline: string; dir: string }> {
  const { tree, baseline } = sandbox();
  const dir = join(tree, "libexec");
  mkdirSync(join(dir, "sub", "deeper"), { recursive: true });
  writeFileSync(join(dir, "helper"), "#!/bin/sh\necho genuine\n");
  chmodSync(join(dir, "helper"), 0o4755);
  writeFileSync(join(dir, "tool"), "tool\n");
  writeFileSync(join(dir, "sub", "inner"), "inner\n");
  writeFileSync(join(dir, "sub", "deeper", "leaf"), "leaf\n");
  writeFileSync(join(tree, "after"), "a sibling after the directory\n");
  await createBaseline({ paths: [tree], out: baseline, signer, clock });
  return { tree, baseline, dir };
}

describe("entries under a directory the compare cannot list", () => {
  it("are looked up by name: unchanged ones pass, and only the directory is named as not read", async () => {
    const { tree, baseline, dir } = await recorded();
    const r = await compareBaseline({ baseline, signer, fs: denying([dir]) });
    assert.deepEqual(ratingsOf(r.findings, dir), ["files.unreadable/low"]);
    for (const p of ["helper", "tool", "sub", "sub/inner", "sub/deeper", "sub/deeper/leaf"]) assert.deepEqual(ratingsOf(r.findings, join(dir, p)), [], p);
    assert.deepEqual(ratingsOf(r.findings, join(tree, "after")), []);
    assert.equal(r.totals.removed, 0);
  });

  it("a file changed in place there is a content change, one deleted is removed, and one nested deeper is looked up too", async () => {
    const { baseline, dir } = await recorded();
    writeFileSync(join(dir, "helper"), "#!/bin/sh\nexec /bin/sh -p\n");
    chmodSync(join(dir, "helper"), 0o4755);
    writeFileSync(join(dir, "sub", "deeper", "leaf"), "changed\n");
    rmSync(join(dir, "tool"));
    const r = await compareBaseline({ baseline, signer, fs: denying([dir, join(dir, "sub")]) });
    assert.deepEqual(ratingsOf(r.findings, join(dir, "helper")), ["files.changed/critical"]);
    assert.deepEqual(ratingsOf(r.findings, join(dir, "sub", "deeper", "leaf")), ["files.changed/high"]);
    // "tool" is gone by name; "sub", denied too, is never listed (looked up by name, nothing moved): no finding.
    assert.deepEqual(ratingsOf(r.findings, join(dir, "tool")), ["files.removed/medium"]);
    assert.deepEqual(ratingsOf(r.findings, join(dir, "sub")), []);
  });

  it("a subdirectory found by name is not listed: an entry added in it moves its times, a high 'not verified' change", async () => {
    const { baseline, dir } = await recorded();
    writeFileSync(join(dir, "sub", "planted"), "#!/bin/sh\n");
    const r = await compareBaseline({ baseline, signer, fs: denying([dir]) });
    const sub = r.findings.filter((f) => ratingsOf([f], join(dir, "sub")).length > 0);
    assert.deepEqual(sub.map((f) => `${f.id}/${f.severity}`), ["files.changed/high"]);
    assert.match(JSON.stringify(sub[0]?.evidence), /entries not verified/);
    // The planted file itself is not known by name and not reported; the lookup is not counted as unreadable.
    assert.deepEqual(ratingsOf(r.findings, join(dir, "sub", "planted")), []);
    assert.ok(!r.findings.some((f) => f.id === "files.unreadable" && ratingsOf([f], join(dir, "sub")).length > 0));
  });

  it("without search permission nothing can be looked up: each entry is 'no longer examinable' (medium), as a removal was", async () => {
    const { baseline, dir } = await recorded();
    const r = await compareBaseline({ baseline, signer, fs: denying([dir], [dir]) });
    assert.deepEqual(ratingsOf(r.findings, join(dir, "helper")).sort(), ["files.changed/medium", "files.unreadable/low"]);
    assert.equal(r.totals.removed, 0);
  });

  it("lookUpEntry examines one path without listing it, and says vanished for a path that is gone", async () => {
    const { tree } = await recorded();
    const sub = await lookUpEntry(join(tree, "libexec", "sub"));
    assert.deepEqual([sub.type, sub.status, sub.error], ["dir", "unreadable", NOT_LISTED]);
    const file = await lookUpEntry(join(tree, "libexec", "tool"));
    assert.equal(file.status, "ok");
    assert.match(file.sha256 ?? "", /^[0-9a-f]{64}$/);
    assert.equal((await lookUpEntry(join(tree, "libexec", "nothing-here"))).status, "vanished");
  });
});

describe("the directory lookups go through", () => {
  // Red team 37, finding 4: the directory swapped once the lookups have begun. They go through the descriptor the
  // compare pinned at the first one, so a decoy put in its place (holding the genuine program's inode, linked there)
  // is never consulted, and the trojan renamed over the program is found.
  it("is pinned at the first lookup: a decoy swapped in afterwards is not consulted", async () => {
    const { tree, baseline, dir } = await recorded();
    const helper = join(dir, "helper");
    const keep = join(dirname(tree), "keep");
    linkSync(helper, keep); // the genuine inode, kept
    writeFileSync(`${helper}.new`, "#!/bin/sh\nexec /bin/sh -p\n");
    chmodSync(`${helper}.new`, 0o4755);
    renameSync(`${helper}.new`, helper);
    let swapped = false;
    const base = denying([dir]);
    const fs: ScanFS = {
      ...base,
      lstat: async (p) => {
        if (!swapped && p.startsWith(`${dir}/`)) {
          swapped = true;
          renameSync(dir, `${dir}.real`);
          mkdirSync(dir);
          linkSync(keep, join(dir, "helper"));
        }
        return base.lstat(p);
      },
    };
    const r = await compareBaseline({ baseline, signer, fs });
    assert.ok(swapped, "the swap happened during the lookups");
    assert.deepEqual(ratingsOf(r.findings, helper), ["files.changed/critical"], "the trojan in the pinned directory");
  });

  it("that is no longer the directory the scan saw makes each entry under it high, not removed", async () => {
    const { baseline, dir } = await recorded();
    let swapped = false;
    const fs: ScanFS = {
      ...denying([dir]),
      readdir: async (p) => {
        if (p !== dir) return nodeScanFS.readdir(p);
        // Found unlistable; before any lookup, an empty directory takes its place.
        swapped = true;
        renameSync(dir, `${dir}.real`);
        mkdirSync(dir);
        throw errno("EACCES");
      },
    };
    const r = await compareBaseline({ baseline, signer, fs });
    assert.ok(swapped);
    assert.deepEqual(ratingsOf(r.findings, join(dir, "helper")).sort(), ["files.changed/high", "files.unreadable/low"]);
    assert.equal(r.totals.removed, 0, "nothing reads as merely removed");
  });
});

describe("lookups deeper than the directories pinned at once", () => {
  // Red team 38, finding 2: the lookups stopped pinning at 64 directories, and below that names resolved through
  // directories opened by name at their first child's lookup, a swap between the two unseen. Now the shallowest pinned
  // subdirectory is let go for each deeper one, and pinned and checked again when the lookups come back up to it.
  it("never hold more than 64 pinned, look every level up, and check a directory let go again when they come back to it", async () => {
    const { root } = sandbox();
    const locked = join(root, "locked");
    const levels: string[] = [];
    let at = locked;
    mkdirSync(at);
    for (let i = 1; i <= 100; i++) {
      at = join(at, `d${String(i).padStart(3, "0")}`);
      mkdirSync(at);
      levels.push(at);
      writeFileSync(join(at, "f"), `${i}\n`);
    }
    // Depth first, as a baseline is read: down through the directories, then each level's file on the way back up.
    const order = [...levels, ...levels.map((d) => join(d, "f")).reverse()];
    const own = createNodeScanFS();
    const pinned = new Set<string>();
    let most = 0;
    const pins: string[] = [];
    // Once the lookups are down at the bottom, level 10 (let go by then) reads as another directory when pinned again:
    // a directory swapped while its descriptor was not held, reopened by name.
    let swapped = false;
    const fs: ScanFS = {
      ...own,
      pin: async (dir) => {
        pins.push(dir);
        pinned.add(dir);
        most = Math.max(most, pinned.size);
        const stat = await (own.pin as (d: string) => Promise<import("node:fs").BigIntStats>)(dir);
        return swapped && dir === levels[9] ? Object.assign(Object.create(Object.getPrototypeOf(stat) as object) as typeof stat, stat, { ino: stat.ino + 1n }) : stat;
      },
      unpin: (dir) => {
        pinned.delete(dir);
        own.unpin?.(dir);
      },
    };
    const release = (own.hold as () => () => void)();
    try {
      const under = await lookUpEntry(locked, { fs });
      const examined: string[] = [];
      const lookups = createLookUp({ fs, examined: (e) => examined.push(e.path) });
      const found = new Map<string, { status: string; error: string | null }>();
      for (const path of order) {
        if (path === join(levels[99] as string, "f")) swapped = true;
        found.set(path, await lookups.lookUp(path, under));
      }
      lookups.close();
      assert.ok(most <= 64, `at most 64 directories pinned at once, saw ${most}`);
      assert.equal(pinned.size, 0, "close() lets every one go");
      assert.deepEqual(examined, order, "every recorded name looked up once");
      assert.ok(pins.filter((d) => d === levels[9]).length >= 2, "level 10 was let go at the bottom and pinned again on the way up");
      const problems: string[] = [];
      for (const [path, e] of found) {
        const under10 = path === join(levels[9] as string, "f");
        // A directory found by name is not listed (NOT_LISTED): its own entries are the lookups'.
        if (under10 ? e.error !== DIR_REPLACED : e.status !== "ok" && e.error !== NOT_LISTED) problems.push(`${path.slice(locked.length)}: ${e.status} ${e.error ?? ""}`);
      }
      assert.deepEqual(problems, [], "only what is under the directory found replaced is DIR_REPLACED");
    } finally {
      release();
    }
  });
});
