// Red team, round thirty-seven: what changed today in `bulwark check files` — entries under a directory the compare
// cannot list are looked up by name (compare.ts diffEntries `lookUp`, scan.ts lookUpEntry, check.ts compareBaseline),
// the ctime rule for programs, persistence files and home directories (classify.ts unrecordedChange, compare.ts
// diffEntry), and replay detection (records.ts: every baseline the CLI publishes is a files.baseline.recorded event,
// and a compare given an older one of the same tree is files.baseline-superseded, critical).
//
// The intruder has root on the monitored host after a compromise: writes files, keeps copies of old baselines, chooses
// names, acts at the moment the compare reaches a path. Each test is one attack (or one honest use) and must pass on
// correct code; one that still fails is kept, marked `{ todo: "finding: …" }`, so the file passes and the finding stays
// visible; "held:" tests show the code already behaving. Temp dirs only; real kernel behaviour where the sandbox allows
// it (a compare run with the effective uid of nobody for a real permission denial, POSIX ACLs written as the
// system.posix_acl_access xattr, setcap, names of any bytes); a ScanFS hook only to stand for an LSM denial a root run
// cannot get from chmod, to play the moment a racing intruder acts, or to watch which paths are touched.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, test, type TestContext } from "node:test";
import type { Finding } from "../src/checks/finding.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import type { OpenFile, ScanFS } from "../src/checks/files/hash-file.ts";
import { nodeScanFS } from "../src/checks/files/scan.ts";
import { ratingsOf, testSigner, treeSandboxes } from "../src/checks/files/test-helpers.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { setcapAvailable } from "./helpers/checks.ts";
import type { CLISite } from "./helpers/cli.ts";
import { asNobody, cliSite, compareJSON, denying, grantACL, highFor, pathsIn, rootedFS, summary, superseded, watching } from "./helpers/files-red-team.ts";

const signer = testSigner();
const clock = new ManualClock();
const sandbox = treeSandboxes("bulwark-redteam37-files-");
const KiB = 1024;
const MiB = 1024 * KiB;
const isRoot = process.getuid?.() === 0;

/**
 * A tree with a directory `locked` (mode `dirMode`) holding a setuid helper and a file `notes`, recorded by a baseline
 * taken with full rights.
 */
async function lockedTree(dirMode = 0o755): Promise<{ root: string; tree: string; baseline: string; dir: string; helper: string }> {
  const { root, tree, baseline } = sandbox();
  const dir = join(tree, "locked");
  mkdirSync(dir);
  const helper = join(dir, "helper");
  writeFileSync(helper, "#!/bin/sh\necho genuine\n");
  chmodSync(helper, 0o4755);
  writeFileSync(join(dir, "notes"), "n\n");
  chmodSync(dir, dirMode);
  writeFileSync(join(tree, "zz-after"), "a sibling after the directory\n");
  await createBaseline({ paths: [tree], out: baseline, signer, clock });
  return { root, tree, baseline, dir, helper };
}

/** Trojans `helper` in place (its directory's times do not move), keeping its mode. */
function trojan(helper: string): void {
  writeFileSync(helper, "#!/bin/sh\nexec /bin/sh -p # trojan\n");
  chmodSync(helper, 0o4755);
}

// ---------------------------------------------------------------------------------------------------------------------
// Entries looked up by name under a directory the compare cannot list
// ---------------------------------------------------------------------------------------------------------------------

describe("lookups under a directory the compare cannot list", () => {
  // The case the lookup was written for (README, unlisted-lookup.test.ts: "a monitoring account without read
  // permission"): a directory mode 0711, search but no read for the account. lstat and open of a name in it need only
  // search permission. But while a scan runs every path goes through hash-file.ts systemPath, which reaches a name as
  // /proc/self/fd/N/NAME where N is its directory opened by directoryDescriptor with O_RDONLY|O_DIRECTORY — and opening
  // a directory for reading needs the read permission the account lacks (an LSM that denies listing denies that open
  // too). So every lookup fails with EACCES and the trojaned setuid helper is "no longer examinable", medium: the
  // finding the lookup was added to remove. The unit tests pass because their ScanFS fails readdir alone.
  test(
    "attack: a setuid helper trojaned in place in a directory the monitoring account may search but not read (0711) is rated critical, not 'no longer examinable'",
    {
      skip: isRoot ? false : "needs root to switch the effective uid",
    },
    async () => {
      const { root, baseline, dir, helper } = await lockedTree(0o711);
      chmodSync(root, 0o755);
      chmodSync(baseline, 0o644);
      trojan(helper);
      // What the account may do: not list the directory, but examine a name in it by its full path.
      const access = await asNobody(async () => {
        let listing = "listed";
        try {
          readdirSync(dir);
        } catch (error) {
          listing = (error as NodeJS.ErrnoException).code ?? "error";
        }
        return { listing, mode: lstatSync(helper).mode & 0o7777 };
      });
      assert.deepEqual(access, { listing: "EACCES", mode: 0o4755 });
      const r = await asNobody(() => compareBaseline({ baseline, signer }));
      assert.deepEqual(ratingsOf(r.findings, dir), ["files.unreadable/low"], `the denial is named: ${summary(r.findings)}`);
      assert.deepEqual(ratingsOf(r.findings, helper), ["files.changed/critical"], `a setuid program changed in content: ${summary(r.findings)}`);
    },
  );

  // Baseline lines are read before the trailer verifies them. A path is only checked to be absolute: a line
  // "/…/locked/../../secret" sorts right after "/…/locked" and is "within" it as text, so diffEntries hands it to
  // lookUp, and lookUpEntry → scanTree → normaliseRoots → path.resolve turns it into /…/secret: a file outside every
  // recorded root is lstat'ed, opened and hashed by the (root) compare, and reported under its outside name — whether its
  // bytes match the sha256 the line carries (a hash oracle for a guessed secret). The tamper finding is raised too, but
  // the read outside the tree has happened.
  test(
    "attack: a tampered baseline line '<unlistable dir>/../../FILE' does not make the compare read, hash or report a file outside the tree",
    async () => {
      const { root, tree, baseline, dir } = await lockedTree();
      const secret = join(root, "secret");
      writeFileSync(secret, "hunter2\n");
      const lines = readFileSync(baseline, "utf8").split("\n");
      const at = lines.findIndex((l) => l.startsWith(`{"path":${JSON.stringify(dir)},`));
      assert.ok(at > 0, "the directory's line");
      const forged = { path: `${dir}/../../secret`, type: "file", status: "ok", mode: "0644", uid: 0, gid: 0, size: 8, mtime: "0", ctime: "0", ino: "0", target: null, sha256: "0".repeat(64), error: null };
      lines.splice(at + 1, 0, JSON.stringify(forged));
      writeFileSync(baseline, lines.join("\n"));
      const { fs, touched } = watching(denying([dir]));
      const r = await compareBaseline({ baseline, signer, fs });
      assert.ok(r.findings.some((f) => f.id === "files.baseline-tampered" && f.severity === "critical"), "the edit is caught");
      // The root's parent is lstat'ed (is the root a mount point?); nothing else outside the tree.
      assert.deepEqual(touched.filter((p) => p !== root && p !== tree && !p.startsWith(`${tree}/`)), [], "nothing outside the tree is examined");
      assert.deepEqual(pathsIn(r.findings).filter((p) => !p.startsWith(`${tree}/`) && p !== tree), [], `no finding names a path outside the tree: ${summary(r.findings)}`);
    },
  );

  /**
   * Eight 300 KiB blobs in a directory, recorded; then compared with --max-scan-bytes 1 MiB while the intruder touches
   * each blob every time the compare reaches its end (their inotify moment), the directory unlistable or not. Returns
   * the bytes the compare read from the blobs.
   */
  async function movingBlobs(unlistable: boolean): Promise<{ read: number; findings: Finding[] }> {
    const { tree, baseline } = sandbox();
    const dir = join(tree, "blobs");
    mkdirSync(dir);
    for (let i = 0; i < 8; i++) writeFileSync(join(dir, `blob${i}`), Buffer.alloc(300 * KiB, i));
    await createBaseline({ paths: [tree], out: baseline, signer, clock, maxScanBytes: 64 * MiB });
    let read = 0;
    let moves = 0;
    const base = denying(unlistable ? [dir] : []);
    const fs: ScanFS = {
      ...base,
      open: async (p, flags) => {
        const f = await nodeScanFS.open(p, flags);
        if (!p.startsWith(`${dir}/`)) return f;
        const count = (n: number): number => {
          read += n;
          if (n === 0) {
            const t = new Date(Date.UTC(2020, 0, 1) + ++moves * 1000);
            utimesSync(p, t, t);
          }
          return n;
        };
        const wrapped: OpenFile = { stat: () => f.stat(), close: () => f.close(), read: async (b) => count(await f.read(b)), readSync: (b) => count(f.readSync(b)) };
        return wrapped;
      },
    };
    const r = await compareBaseline({ baseline, signer, fs, maxScanBytes: 1 * MiB, concurrency: 1 });
    return { read, findings: r.findings };
  }

  // Held: in a directory the scan lists, the first read and every retry of a file that moved are taken from one budget.
  test("held: files kept moving while read in a listed directory cannot make the compare read more than --max-scan-bytes", async () => {
    const { read, findings } = await movingBlobs(false);
    assert.ok(read <= 1 * MiB, `the scan read ${read / KiB} KiB with a budget of 1024 KiB`);
    assert.ok(findings.some((f) => f.id === "files.too-large-to-hash" && f.severity === "high"), `the blobs past the budget are named: ${summary(findings)}`);
  });

  // "Lookups have their own byte budget equal to --max-scan-bytes" (check.ts compareBaseline): lookUpBytes is lowered
  // only by the size of a file that ended hashed. Each lookup runs its own scanTree whose budget starts at the full
  // lookUpBytes, and takes its first read and its two retries from that private copy; a file the intruder keeps
  // touching while it is read ends "changed during scan", unhashed, and is charged nothing. So N recorded names under
  // the unlistable directory read up to N × 3 × min(size, budget): with 4 GiB sparse files, hours, where the scan's own
  // budget (the test above) bounds the same files at --max-scan-bytes.
  test(
    "attack: files kept moving while looked up under an unlistable directory cannot make the lookups read more than --max-scan-bytes",
    async () => {
      const { read, findings } = await movingBlobs(true);
      assert.ok(findings.some((f) => f.id === "files.unreadable"), "the directory is named as not listed");
      assert.ok(read <= 1 * MiB + 300 * KiB, `lookups read ${read / KiB} KiB with a budget of 1024 KiB`);
    },
  );

  // The intruder acts at the moment the compare finds the directory unlistable (after its lstat): renames it aside and
  // puts a symlink to it in its place. The directory's record was taken before the swap (nothing moved); every lookup
  // below it now meets a symlink where a directory was (directoryDescriptor's O_NOFOLLOW: ENOTDIR/ELOOP) and is "no
  // longer examinable", medium — the same medium a removal got before the lookup existed. The swap is undone after
  // the compare: the trojaned setuid helper is in place, reported medium.
  test(
    "attack: the unlistable directory swapped for a symlink to itself while the compare looks names up does not bring a trojaned setuid helper down to medium",
    {
    },
    async () => {
      const { baseline, dir, helper } = await lockedTree();
      trojan(helper);
      const aside = `${dir}.real`;
      const r = await compareBaseline({
        baseline,
        signer,
        fs: denying([dir], () => {
          renameSync(dir, aside);
          symlinkSync(aside, dir);
        }),
      });
      unlinkSync(dir);
      renameSync(aside, dir);
      assert.match(readFileSync(helper, "utf8"), /trojan/, "the trojan stayed in place");
      assert.ok(highFor(r.findings, helper) || highFor(r.findings, dir), `a trojaned setuid helper: ${summary(r.findings)}`);
    },
  );

  /** A tree with locked/{sub/a, sub2/b}, then sub swapped for a symlink to a copy outside the tree and sub2 for a file. */
  async function swappedSubdirectories(): Promise<{ root: string; tree: string; dir: string; r: Awaited<ReturnType<typeof compareBaseline>>; touched: string[] }> {
    const { root, tree, baseline } = sandbox();
    const dir = join(tree, "locked");
    mkdirSync(join(dir, "sub"), { recursive: true });
    mkdirSync(join(dir, "sub2"));
    writeFileSync(join(dir, "sub", "a"), "a\n");
    writeFileSync(join(dir, "sub2", "b"), "b\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const outside = join(root, "outside");
    mkdirSync(outside);
    copyFileSync(join(dir, "sub", "a"), join(outside, "a"));
    rmSync(join(dir, "sub"), { recursive: true });
    symlinkSync(outside, join(dir, "sub"));
    rmSync(join(dir, "sub2"), { recursive: true });
    writeFileSync(join(dir, "sub2"), "now a file\n");
    const { fs, touched } = watching(denying([dir]));
    const r = await compareBaseline({ baseline, signer, fs });
    return { root, tree, dir, r, touched };
  }

  // Held: a lookup does not follow a symlink in the path (each directory is opened with O_NOFOLLOW while a scan runs),
  // does not crash on ENOTDIR or ELOOP, and the swaps themselves are high.
  test("held: lookups below a subdirectory swapped for a symlink (to a copy outside the tree) or a file never leave the tree, and the swaps are high", async () => {
    const { root, tree, dir, r, touched } = await swappedSubdirectories();
    // The root's parent is lstat'ed (is the root a mount point?); nothing else outside the tree.
    assert.deepEqual(touched.filter((p) => p !== root && p !== tree && !p.startsWith(`${tree}/`)), [], "nothing outside the tree is examined");
    assert.ok(highFor(r.findings, join(dir, "sub")), summary(r.findings));
    assert.ok(highFor(r.findings, join(dir, "sub2")), summary(r.findings));
  });

  // What the baseline recorded below a subdirectory that is now a symlink or a file is gone (in a listed directory the
  // scan reports it "removed"). Looked up, the ENOTDIR of lstat reads as a path that exists but cannot be examined:
  // each entry is listed twice — files.changed medium "no longer examinable" (type file→unknown) and files.unreadable
  // low ENOTDIR — and the totals count no removal.
  test(
    "honest: entries below a looked-up subdirectory now a symlink or a file are reported once, as removed, as a listed scan reports them",
    {
    },
    async () => {
      const { dir, r } = await swappedSubdirectories();
      for (const p of [join(dir, "sub", "a"), join(dir, "sub2", "b")]) assert.deepEqual(ratingsOf(r.findings, p), ["files.removed/medium"], `${p}: ${summary(r.findings)}`);
      assert.equal(r.totals.removed, 2);
    },
  );

  // Held: what the new ctime rule and the lookup give together. A program looked up by name, given a file capability
  // behind a tightening chmod, is high; a setuid file whose name is not UTF-8 (looked up by its bytes) trojaned in
  // place is critical; a subdirectory found by name with a file planted in it and its mtime put back (touch -r) is
  // high by its ctime.
  test(
    "held: under an unlistable directory, setcap behind a chmod, a non-UTF-8 setuid name trojaned, and a planted file behind touch -r are all high",
    { skip: setcapAvailable ? false : "setcap is not installed" },
    async () => {
      const { tree, baseline } = sandbox();
      const dir = join(tree, "locked");
      mkdirSync(join(dir, "sub"), { recursive: true });
      const tool = join(dir, "tool");
      writeFileSync(tool, "#!/bin/sh\necho ok\n", { mode: 0o755 });
      writeFileSync(join(dir, "sub", "keep"), "k\n");
      execFileSync("python3", ["-c", "import os, sys; p = os.path.join(os.fsencode(sys.argv[1]), b'\\xff-su'); open(p, 'w').write('#!/bin/sh\\n'); os.chmod(p, 0o4755)", dir]);
      await createBaseline({ paths: [tree], out: baseline, signer, clock });
      const subBefore = lstatSync(join(dir, "sub"));

      execFileSync("setcap", ["cap_setuid+ep", tool]);
      chmodSync(tool, 0o750);
      execFileSync("python3", ["-c", "import os, sys; p = os.path.join(os.fsencode(sys.argv[1]), b'\\xff-su'); open(p, 'w').write('#!/bin/sh\\nexec /bin/sh -p\\n'); os.chmod(p, 0o4755)", dir]);
      writeFileSync(join(dir, "sub", ".x"), "#!/bin/sh\n", { mode: 0o4755 });
      utimesSync(join(dir, "sub"), subBefore.atime, subBefore.mtime);

      const r = await compareBaseline({ baseline, signer, fs: denying([dir]) });
      assert.deepEqual(ratingsOf(r.findings, dir), ["files.unreadable/low"], summary(r.findings));
      assert.ok(highFor(r.findings, tool), `capability: ${ratingsOf(r.findings, tool).join(", ")}`);
      assert.deepEqual(ratingsOf(r.findings, `${dir}/\udcff-su`), ["files.changed/critical"], summary(r.findings));
      assert.ok(highFor(r.findings, join(dir, "sub")), `planted behind touch -r: ${summary(r.findings)}`);
      assert.equal(r.totals.removed, 0);
    },
  );

  // Held: a PATH given to --compare that is itself the unlistable directory (a subset of the recorded tree) is looked
  // into by name as well; every entry is reported once.
  test("held: --compare with PATH = the unlistable directory looks its entries up, each reported once", async () => {
    const { baseline, dir, helper } = await lockedTree();
    await createBaseline({ paths: [dir], out: `${baseline}.2`, signer, clock });
    trojan(helper);
    writeFileSync(join(dir, "notes"), "edited in place\n");
    for (const b of [baseline, `${baseline}.2`]) {
      const r = await compareBaseline({ baseline: b, paths: [dir], signer, fs: denying([dir]) });
      assert.deepEqual(ratingsOf(r.findings, helper), ["files.changed/critical"], summary(r.findings));
      assert.deepEqual(ratingsOf(r.findings, join(dir, "notes")), ["files.changed/high"], summary(r.findings));
      assert.deepEqual(ratingsOf(r.findings, dir), ["files.unreadable/low"], summary(r.findings));
      assert.equal(r.totals.removed, 0);
      const diffs = r.findings.filter((f) => f.id.startsWith("files.changed") || f.id.startsWith("files.removed"));
      assert.equal(pathsIn(diffs).length, new Set(pathsIn(diffs)).size, "no path twice");
    }
  });

  // Held: many recorded names under an unlistable directory are looked up one by one; each is examined once (no
  // quadratic cost: the work is observed as the file-system calls made, not timed — ADR 0022) and compared once.
  test("held: 3,000 names under an unlistable directory are each examined and compared once", { timeout: 60_000 }, async () => {
    const { tree, baseline } = sandbox();
    const dir = join(tree, "many");
    mkdirSync(dir);
    for (let i = 0; i < 3000; i++) writeFileSync(join(dir, `f${String(i).padStart(5, "0")}`), `${i}\n`);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const listed = await compareBaseline({ baseline, signer });
    const { fs, touched } = watching(denying([dir]));
    const looked = await compareBaseline({ baseline, signer, fs });
    assert.equal(listed.findings.length, 0);
    assert.deepEqual(pathsIn(looked.findings), [dir], summary(looked.findings));
    assert.equal(looked.totals.scanned, listed.totals.scanned);
    const calls = new Map<string, number>();
    for (const p of touched) if (p.startsWith(`${dir}/`)) calls.set(p, (calls.get(p) ?? 0) + 1);
    assert.equal(calls.size, 3000, "every recorded name is examined");
    // One lstat and one open each (the hash); a retry would be a third.
    assert.ok([...calls.values()].every((n) => n <= 3), `most calls for one name: ${Math.max(...calls.values())}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// The ctime rule for directories
// ---------------------------------------------------------------------------------------------------------------------

describe("a home directory's ctime", () => {
  /** /home/alice (0775, alice's, a user-private group as umask 002 leaves it) with a .bashrc, recorded through rootedFS. */
  async function home(): Promise<{ base: string; fs: ScanFS; baseline: string; dir: string }> {
    const { root, baseline } = sandbox();
    const base = join(root, "sys");
    const dir = join(base, "home/alice");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, ".bashrc"), "# ~/.bashrc\n");
    chownSync(dir, 1000, 1000);
    chmodSync(dir, 0o775);
    const fs = rootedFS(base);
    await createBaseline({ paths: ["/home/alice"], out: baseline, signer, clock, fs });
    return { base, fs, baseline, dir };
  }

  // compare.ts diffEntry notes a listed directory's ctime only "when its ctime moved but its mtime did not": an ACL
  // entry alone is high (red team 36). Followed by `touch ~alice` (or a file created and removed in it) the mtime moved
  // as well — and a listed directory's moved mtime and ctime are both ignored, on the ground that entries added or
  // removed are reported one by one. None was: nothing at all is reported, and bob may now rename a .bashrc of his own
  // over alice's.
  test(
    "known limit: an ACL entry giving another user write to a home directory, followed by `touch` of the directory, is still reported high",
    {
      todo: "accepted limit: ACLs are not recorded (Node has no extended-attribute API); a directory's ctime counts only when its mtime did not move, since noting it whenever its times moved would flag every home directory an editor's swap file passed through (docs/checks.md says an ACL set beside an entry change is not seen)",
    },
    async () => {
      const { fs, baseline, dir } = await home();
      const before = lstatSync(dir);
      grantACL(dir, 1001, 7); // setfacl -m u:bob:rwx /home/alice
      const now = new Date();
      utimesSync(dir, now, now); // touch /home/alice
      assert.equal(lstatSync(dir).mode, before.mode, "the mode the kernel reports is unchanged");
      const r = await compareBaseline({ baseline, signer, fs });
      assert.ok(highFor(r.findings, "/home/alice"), `uid 1001 may now replace alice's .bashrc: ${summary(r.findings)}`);
    },
  );

  // Held (honest use): a file written in a home directory moves both its times; the new rule adds nothing for the
  // directory itself (no high "ctime" on every home at every login).
  test("held: a new .bash_history in a home directory is one low addition, the directory itself not reported", async () => {
    const { base, fs, baseline } = await home();
    writeFileSync(join(base, "home/alice/.bash_history"), "ls\n");
    const r = await compareBaseline({ baseline, signer, fs });
    assert.deepEqual(ratingsOf(r.findings, "/home/alice"), [], summary(r.findings));
    assert.deepEqual(ratingsOf(r.findings, "/home/alice/.bash_history"), ["files.added/low"]);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Replay detection through the CLI
// ---------------------------------------------------------------------------------------------------------------------

describe("a genuine older baseline put back (files.baseline-superseded)", () => {
  const { theSite, record } = cliSite(() => sandbox().root);

  const compare = compareJSON;
  /** The files.baseline.recorded events whose path is `path`, oldest first. */
  const recordsAt = (s: CLISite, path: string): Array<{ digest: string; createdAt: string; path: string }> =>
    s.rows("select data from audit_events where type = 'files.baseline.recorded' order by seq")
      .map((row) => JSON.parse(String(row["data"])) as { digest: string; createdAt: string; path: string })
      .filter((d) => d.path === path);

  // Held: the tree key is of the normalised roots (sorted, resolved, a trailing slash dropped), so roots given in
  // another order or relatively, and a baseline named relatively at one run and absolutely at the next, are one tree:
  // the newest compares clean (no false superseded), the older one put back is caught, and so it is when --compare is
  // given only part of the tree.
  test("held: roots in another order, relative paths and a PATH subset: the newest is clean, the older put back is superseded", { timeout: 60_000 }, async () => {
    const s = await theSite();
    const { root } = sandbox();
    const [a, b] = [join(root, "a"), join(root, "b")];
    mkdirSync(a);
    mkdirSync(b);
    const conf = join(a, "app.conf");
    writeFileSync(conf, "debug=true\n");
    writeFileSync(join(b, "index.html"), "<p>x</p>\n");
    const baseline = join(root, "ab.jsonl");
    const rel = (p: string): string => relative(process.cwd(), p);
    await record(s, [rel(baseline), rel(b), rel(a)]);
    const kept = join(root, "kept.jsonl");
    copyFileSync(baseline, kept);
    writeFileSync(conf, "debug=false\n"); // the fix
    await new Promise((r) => setTimeout(r, 5)); // a later createdAt, by the system clock
    await record(s, [baseline, "--force", `${a}/`, b]);

    const fresh = await compare(s, [rel(baseline)]);
    assert.equal(superseded(fresh.out), undefined, summary(fresh.out.findings));
    assert.equal(fresh.code, 0);

    writeFileSync(conf, "debug=true\n"); // the revert
    copyFileSync(kept, baseline); // and the replay
    for (const args of [[baseline], [rel(baseline)], [baseline, a]]) {
      const r = await compare(s, args);
      assert.equal(r.out.trusted, true);
      assert.equal(superseded(r.out)?.severity, "critical", `${args.join(" ")}: ${summary(r.out.findings)}`);
      assert.equal(r.code, 1);
    }
  });

  // compareBaseline reports a superseded baseline only when the newest record's createdAt is later than the given
  // one's. createdAt is the wall clock: a host whose clock ran an hour ahead (a wrong RTC at boot, then NTP) records
  // baseline A "in the future"; the admin fixes a configuration and records B after the step back, dated before A.
  // The intruder reverts the fix and puts A back: the newest record (B) is not later than A, so no finding — the revert
  // reads as a medium "metadata changed". Two baselines recorded within one millisecond (two runs at once) are the same.
  test(
    "attack: a baseline recorded while the clock ran ahead (or in the same millisecond as the next) put back after a fix is still superseded",
    {
      timeout: 60_000,
    },
    async (t: TestContext) => {
      const s = await theSite();
      const problems: string[] = [];
      for (const [label, aheadMs, sameInstant] of [["clock an hour ahead", 3_600_000, false], ["same millisecond", 0, true]] as const) {
        const { root, tree, baseline } = sandbox();
        const conf = join(tree, "sshd_config");
        writeFileSync(conf, "PermitRootLogin yes\n");
        t.mock.timers.enable({ apis: ["Date"], now: Date.now() + aheadMs });
        try {
          await record(s, [baseline, tree]);
          const kept = join(root, "kept.jsonl");
          copyFileSync(baseline, kept);
          writeFileSync(conf, "PermitRootLogin no\n"); // the fix, and the newer baseline
          if (!sameInstant) t.mock.timers.reset();
          await record(s, [baseline, "--force", tree]);
          t.mock.timers.reset();
          writeFileSync(conf, "PermitRootLogin yes\n"); // the revert, and the replay
          copyFileSync(kept, baseline);
        } finally {
          t.mock.timers.reset();
        }
        const records = recordsAt(s, baseline);
        assert.equal(records.length, 2, "both baselines were recorded");
        assert.ok(records[1]!.createdAt <= records[0]!.createdAt, `${label}: the newer record is dated no later: ${JSON.stringify(records)}`);
        const r = await compare(s, [baseline]);
        if (superseded(r.out)?.severity !== "critical") problems.push(`${label}: exit ${r.code}, ${summary(r.out.findings)}`);
      }
      assert.deepEqual(problems, []);
    },
  );

  // The tree key covers roots, exclusions and --one-file-system exactly. The admin first recorded /etc/ssh at
  // etc.baseline, later widened the same baseline file to /etc (or added an --exclude for a noisy path) after fixing a
  // configuration. The intruder reverts the fix and puts the first file back at the same path: its tree is another key,
  // whose newest record is itself — no finding, though a newer baseline was recorded at that very path.
  test(
    "attack: an older baseline of a narrower tree (or without a later --exclude) put back over the newest baseline's file is superseded",
    {
      timeout: 60_000,
    },
    async () => {
      const s = await theSite();
      const problems: string[] = [];
      for (const widen of ["roots", "exclude"] as const) {
        const { root, tree, baseline } = sandbox();
        mkdirSync(join(tree, "ssh"));
        mkdirSync(join(tree, "cache"));
        const conf = join(tree, "ssh", "sshd_config");
        writeFileSync(conf, "PermitRootLogin yes\n");
        await record(s, widen === "roots" ? [baseline, join(tree, "ssh")] : [baseline, tree]);
        const kept = join(root, "kept.jsonl");
        copyFileSync(baseline, kept);
        writeFileSync(conf, "PermitRootLogin no\n");
        await new Promise((r) => setTimeout(r, 5));
        await record(s, widen === "roots" ? [baseline, "--force", tree] : [baseline, "--force", "--exclude", join(tree, "cache"), tree]);
        writeFileSync(conf, "PermitRootLogin yes\n");
        copyFileSync(kept, baseline);
        assert.equal(recordsAt(s, baseline).length, 2, "both baselines were recorded at this path");
        const r = await compare(s, [baseline]);
        assert.equal(r.out.trusted, true);
        if (superseded(r.out)?.severity !== "critical") problems.push(`${widen}: exit ${r.code}, ${summary(r.out.findings)}`);
      }
      assert.deepEqual(problems, []);
    },
  );

  // Held: a baseline written by the library (no audit record) after the newest recorded one is not called superseded,
  // and a data dir that recorded nothing of a tree raises nothing: the check needs a newer record of the same tree.
  test("held: a baseline newer than the newest recorded one, or compared in a data dir with no record of its tree, is not superseded", async () => {
    const s = await theSite();
    const { tree, baseline } = sandbox();
    writeFileSync(join(tree, "a"), "a\n");
    await record(s, [baseline, tree]);
    const r1 = await compare(s, [baseline]);
    assert.equal(superseded(r1.out), undefined);
    // The library path: the newest record is older and of another digest; the given baseline is newer.
    const lib = join(tree, "..", "lib.jsonl");
    await createBaseline({ paths: [tree], out: lib, signer, clock: new ManualClock(Date.now() + 60_000) });
    // (Which record supersedes which is records.conformance.test.ts's: a baseline dated after every record is not.)
    const asked: Array<{ createdAt: string; digest: string }> = [];
    const r2 = await compareBaseline({ baseline: lib, signer, supersededBy: async ({ header, digest }) => (asked.push({ createdAt: header.createdAt, digest }), null) });
    assert.equal(asked.length, 1, "asked once, with the baseline read");
    assert.equal(asked[0]?.digest, r2.integrity.digest);
    assert.deepEqual(r2.findings, [], summary(r2.findings));
    assert.ok(existsSync(lib));
  });
});
