// Scanner: every entry type recorded without following links, order, hashing, and problems as statuses.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { comparePaths, type FileEntry } from "./entry.ts";
import { canonicalPath, canonicalRoots, nodeScanFS, normaliseRoots, scanTree } from "./scan.ts";
import type { ScanFS } from "./hash-file.ts";
import { tempDir } from "./test-helpers.ts";

async function collect(roots: string[], options: Parameters<typeof scanTree>[1] = {}): Promise<FileEntry[]> {
  const out: FileEntry[] = [];
  for await (const e of scanTree(roots, options)) out.push(e);
  return out;
}

const sha = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");

describe("scanTree", () => {
  let root: string;
  let server: Server;
  before(async () => {
    root = tempDir("bulwark-scan-");
    mkdirSync(join(root, "sub/deeper"), { recursive: true });
    mkdirSync(join(root, "outside-target"));
    writeFileSync(join(root, "outside-target/secret"), "not to be scanned through a link");
    writeFileSync(join(root, "a.txt"), "alpha\n");
    writeFileSync(join(root, "sub/b-x"), "b\n");
    writeFileSync(join(root, "sub/deeper/c"), Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a));
    writeFileSync(join(root, "empty"), "");
    symlinkSync("a.txt", join(root, "link"));
    symlinkSync("outside-target", join(root, "dirlink"));
    symlinkSync("nowhere", join(root, "dangling"));
    symlinkSync("loop2", join(root, "loop1"));
    symlinkSync("loop1", join(root, "loop2"));
    execFileSync("mkfifo", [join(root, "fifo")]);
    server = createServer();
    await new Promise<void>((r) => server.listen(join(root, "sock"), r));
  });
  after(() => {
    server.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("records every entry type with its metadata and hashes regular files", async () => {
    const entries = await collect([root]);
    const by = new Map(entries.map((e) => [e.path.slice(root.length), e]));
    assert.equal(by.get("")?.type, "dir");
    assert.equal(by.get("/a.txt")?.sha256, sha("alpha\n"));
    assert.equal(by.get("/a.txt")?.size, 6);
    assert.equal(by.get("/empty")?.sha256, sha(""));
    assert.equal(by.get("/sub/deeper/c")?.sha256, sha(Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a)));
    assert.equal(by.get("/link")?.type, "symlink");
    assert.equal(by.get("/link")?.target, "a.txt");
    assert.equal(by.get("/link")?.sha256, null);
    assert.equal(by.get("/dangling")?.status, "ok");
    assert.equal(by.get("/fifo")?.type, "fifo");
    assert.equal(by.get("/sock")?.type, "socket");
    const a = by.get("/a.txt") as FileEntry;
    assert.match(a.mode, /^[0-7]{4}$/);
    assert.match(a.mtime, /^\d+$/);
    assert.match(a.ino, /^\d+$/);
    assert.equal(a.uid, process.getuid?.());
  });

  it("reports a symlink loop as a status, without failing the scan", async () => {
    const entries = await collect([root]);
    const loops = entries.filter((e) => e.status === "symlink-loop").map((e) => e.path.slice(root.length));
    assert.deepEqual(loops, ["/loop1", "/loop2"]);
  });

  it("never follows a symlink to a directory", async () => {
    const entries = await collect([root]);
    assert.ok(entries.some((e) => e.path === join(root, "dirlink") && e.type === "symlink"));
    assert.ok(!entries.some((e) => e.path.startsWith(join(root, "dirlink/"))));
  });

  it("emits paths in comparePaths order, a directory right before its contents", async () => {
    const paths = (await collect([root])).map((e) => e.path);
    assert.deepEqual(paths, [...paths].sort(comparePaths));
    assert.ok(paths.indexOf(join(root, "sub")) < paths.indexOf(join(root, "sub/b-x")));
  });

  it("gives the same result whatever the number of concurrent hashes", async () => {
    const one = await collect([root], { concurrency: 1 });
    const many = await collect([root], { concurrency: 16 });
    assert.deepEqual(many, one);
  });

  it("scans nested roots once", async () => {
    assert.deepEqual(normaliseRoots([join(root, "sub/"), root, root]), [root]);
    const entries = await collect([join(root, "sub"), root]);
    assert.equal(entries.filter((e) => e.path === join(root, "sub/b-x")).length, 1);
  });

  it("spells a PATH through a symlinked directory as the directory it is, and keeps a PATH that is a symlink as one (canonicalPath)", async () => {
    const real = realpathSync(root);
    assert.equal(await canonicalPath(join(root, "dirlink", "secret")), join(real, "outside-target", "secret"));
    assert.equal(await canonicalPath(join(root, "dirlink/./")), join(real, "dirlink"), "the last name is never followed");
    assert.equal(await canonicalPath(join(root, "no-such-dir", "x")), join(root, "no-such-dir", "x"), "an unresolvable parent is left as given");
    assert.equal(await canonicalPath("/"), "/");
    const { realpath: _, ...withoutRealpath } = nodeScanFS;
    assert.equal(await canonicalPath(join(root, "dirlink", "secret"), withoutRealpath), join(root, "dirlink", "secret"), "a file system without realpath: as given");
    assert.deepEqual(await canonicalRoots([join(root, "dirlink", "secret"), join(root, "outside-target")]), [join(real, "outside-target")], "one root, scanned once");
    const entries = await collect([await canonicalPath(join(root, "dirlink", "secret"))]);
    assert.deepEqual(entries.map((e) => [e.path, e.type]), [[join(real, "outside-target", "secret"), "file"]]);
  });

  it("refuses a root that does not exist, unless comparing", async () => {
    await assert.rejects(collect([join(root, "missing")]), { code: "BULWARK_ERR_FILES_PATH" });
    assert.deepEqual(await collect([join(root, "missing")], { allowMissingRoots: true }), []);
  });

  it("records an unreadable file with its error instead of failing (mocked EACCES: tests run as root)", async () => {
    const fs: ScanFS = {
      ...nodeScanFS,
      open: async (p, flags) => {
        if (p.endsWith("/a.txt")) throw Object.assign(new Error("permission denied"), { code: "EACCES" });
        return nodeScanFS.open(p, flags);
      },
    };
    const entries = await collect([root], { fs });
    const a = entries.find((e) => e.path === join(root, "a.txt"));
    assert.equal(a?.status, "unreadable");
    assert.equal(a?.error, "EACCES");
    assert.equal(a?.sha256, null);
    assert.equal(a?.size, 6, "metadata is still recorded");
  });

  it("records a file that vanishes between listing and examining as vanished", async () => {
    const fs: ScanFS = {
      ...nodeScanFS,
      lstat: async (p) => {
        if (p.endsWith("/empty")) throw Object.assign(new Error("gone"), { code: "ENOENT" });
        return nodeScanFS.lstat(p);
      },
    };
    const entries = await collect([root], { fs });
    assert.equal(entries.find((e) => e.path === join(root, "empty"))?.status, "vanished");
  });

  it("marks a file whose size keeps changing while hashed as changed-during-scan, after retries", async () => {
    let stats = 0;
    const fs: ScanFS = {
      ...nodeScanFS,
      open: async (p, flags) => {
        const handle = await nodeScanFS.open(p, flags);
        if (!p.endsWith("/a.txt")) return handle;
        // Every fstat sees a different mtime, as when a writer appends during the read.
        return {
          ...handle,
          stat: async () => {
            const s = await handle.stat();
            stats++;
            return Object.assign(Object.create(Object.getPrototypeOf(s) as object) as typeof s, s, { mtimeNs: s.mtimeNs + BigInt(stats) });
          },
        };
      },
    };
    const entries = await collect([root], { fs });
    const a = entries.find((e) => e.path === join(root, "a.txt"));
    assert.equal(a?.status, "changed-during-scan");
    assert.equal(a?.sha256, null);
    assert.equal(stats, 6, "hashed three times (two retries), two fstats each");
  });

  it("does not read a file past the per-file limit, nor past the scan's byte budget, and says which (ASVS 2.4.1)", async () => {
    // A `truncate -s 4T` sparse file costs its writer no disk and a scan five hours: never opened, named instead.
    const opened: string[] = [];
    const fs: ScanFS = { ...nodeScanFS, open: async (p, flags) => (opened.push(p), nodeScanFS.open(p, flags)) };
    const bySize = await collect([root], { fs, maxFileBytes: 1024 * 1024 });
    const c = bySize.find((e) => e.path === join(root, "sub/deeper/c"));
    assert.deepEqual([c?.status, c?.error, c?.sha256, c?.size], ["too-large-to-hash", "FILE_SIZE_LIMIT", null, 3 * 1024 * 1024 + 7]);
    assert.ok(!opened.includes(join(root, "sub/deeper/c")));
    assert.equal(bySize.find((e) => e.path === join(root, "a.txt"))?.sha256, sha("alpha\n"));
    // The budget is taken in path order: a.txt (6 bytes) fits, sub/b-x (2 bytes) no longer does, the empty file does.
    const byBudget = await collect([root], { maxScanBytes: 7 });
    const status = (name: string): string | null | undefined => byBudget.find((e) => e.path === join(root, name))?.error;
    assert.deepEqual([status("a.txt"), status("empty"), status("sub/b-x"), status("sub/deeper/c")], [null, null, "SCAN_BYTE_LIMIT", "SCAN_BYTE_LIMIT"]);
  });

  it("stops reading a file that serves more bytes than its size (grows while read, or a FUSE file without end)", async () => {
    let served = 0;
    const endless: ScanFS = {
      ...nodeScanFS,
      open: async (p, flags) => {
        const handle = await nodeScanFS.open(p, flags);
        if (!p.endsWith("/a.txt")) return handle;
        const fill = (b: Buffer): number => (served += b.length, b.length);
        return { ...handle, read: async (b) => fill(b), readSync: fill };
      },
    };
    const a = (await collect([root], { fs: endless })).find((e) => e.path === join(root, "a.txt"));
    assert.equal(a?.status, "changed-during-scan");
    assert.ok(served <= 3 * 1024 * 1024, `read ${served} bytes of a 6-byte file`);
  });

  it("examines and hashes a file whose name is not valid UTF-8, under a name no valid one can have", async () => {
    const odd = Buffer.concat([Buffer.from(`${root}/sub/b`), Buffer.from([0xff, 0x41])]);
    writeFileSync(odd, "hidden");
    try {
      const entries = await collect([root]);
      const e = entries.find((x) => x.path === `${root}/sub/b\udcffA`);
      assert.equal(e?.status, "ok");
      assert.equal(e?.sha256, createHash("sha256").update("hidden").digest("hex"));
      const paths = entries.map((x) => x.path);
      assert.deepEqual(paths, [...paths].sort(comparePaths));
    } finally {
      rmSync(odd);
    }
  });

  it("records a directory that is its own ancestor as a loop and does not enter it", async () => {
    // A bind mount of a parent cannot be made in a test container: the mock gives sub/deeper the
    // device and inode of the root, which is what the kernel would report for such a mount.
    const fs: ScanFS = {
      ...nodeScanFS,
      lstat: async (p) => nodeScanFS.lstat(p.endsWith("/sub/deeper") ? root : p),
    };
    const entries = await collect([root], { fs });
    const deeper = entries.find((e) => e.path === join(root, "sub/deeper"));
    assert.equal(deeper?.status, "dir-loop");
    assert.ok(!entries.some((e) => e.path.startsWith(join(root, "sub/deeper/"))));
  });

  it("records an unlistable directory as unreadable and carries on", async () => {
    const fs: ScanFS = {
      ...nodeScanFS,
      readdir: async (p) => {
        if (p.endsWith("/sub")) throw Object.assign(new Error("io"), { code: "EIO" });
        return nodeScanFS.readdir(p);
      },
    };
    const entries = await collect([root], { fs });
    assert.equal(entries.find((e) => e.path === join(root, "sub"))?.status, "unreadable");
    assert.ok(entries.some((e) => e.path === join(root, "a.txt") && e.status === "ok"));
  });
});
