// Red team, round thirty-eight b: `bulwark check files` after today's fixes — a PATH, an --exclude path, a PATH given
// to --compare and the baseline's own name are recorded as the directory they name, the symlinks above them resolved
// (scan.ts canonicalPath, canonicalRoots; a compare resolves the PATHs it is given and takes the recorded roots as
// they are), the CLI asks the audit log about a compared baseline by all of its names (check-files.ts: as given, its
// directory resolved, its real path; records.ts supersedingRecord `paths`), and lookups under a directory the compare
// cannot list pin at most 64 directories, letting the shallowest go and checking it again on the way back up
// (look-up.ts createLookUp).
//
// The intruder has root on the monitored host after a compromise: writes files, keeps genuine old baselines, replaces
// directories with symlinks (outside the scanned tree too, where no compare sees the swap), and acts at the moment the
// compare reaches a path (a ScanFS hook plays that moment). Each test is one attack (or one honest use) and asserts what
// correct code does; an attack that still succeeds is kept, marked `{ todo: "finding: …" }`, so the file passes and the
// finding stays visible; "held:" tests show the code behaving.
//
// What was tried, in short. Found: (1) a baseline directory that was already a symlink when the baselines were recorded
// (/var/lib/bulwark → /data/bulwark) re-pointed at a directory of kept copies: the record names only the real path of
// those days, none of the three names asked now, so a narrower tree's older baseline there is not superseded; (2) an
// --exclude the cron passes, spelled through a symlink outside the tree, re-pointed so the exclusion now names the
// library directory holding a trojan: the compare drops it as out of scope and nothing says its exclusions differ from
// the recorded ones (before today such a spelling matched nothing); (3) the same re-pointing onto the recorded root
// itself: the compare compares nothing and says one low "new entry"; (4) an ancestor of a recorded root swapped for a
// symlink to the moved tree, a setuid helper trojaned in it: only medium findings (the root "no longer examinable",
// the helper "removed"), where the same swap at the root itself is high; (5) the baseline's directory re-pointed
// between the compare's open of the baseline and its resolving of the baseline's name: the name then resolves into the
// scanned tree and a setuid file planted there under the baseline's file name is left out of the compare as "the
// baseline itself"; (6) a baseline recorded before today's fix with its root spelled through a symlink (one unreadable
// line, which hides everything under it) replayed under a fresh name after the real path was recorded: its tree key is
// of the old spelling, so it is not superseded. Held: a --compare PATH re-pointed out of the recorded tree is refused;
// as nobody, a PATH spelled through a symlink into a directory nobody cannot search is refused, not compared clean; a
// baseline written through a symlinked directory inside the tree records neither itself nor its temporary files; a
// PATH beneath a symlink in a directory whose name is not UTF-8 is resolved and compared; 300 nested levels under an
// unlistable directory with a level let go by the window swapped for a trojaned copy: reported high, and no descriptor
// left after that compare, a clean one, and one failing with the window full.
// Fixed since: (1) supersedingRecord also asks with the path the baseline's own record says it was written to; (3)
// exclusions that cover a PATH whole are refused; (6) a compare asks about its tree as recorded and, spelled otherwise
// now, as spelled now (check.ts supersededAsRecordedOrNow); (4) an entry whose path now meets ENOTDIR or ELOOP (a
// directory on it replaced) is high, as the swap of the entry itself is; (5) the baseline is left out of the compare
// only while its name is still the file opened (device and inode); (2) what the baseline recorded under an exclusion
// of the compare only is still compared, looked up by name (compare.ts diffEntries excludedNow). None open.
//
// Temp dirs only, removed after the file (treeSandboxes); the CLI runs in this process against a fresh data dir.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { AuditLog } from "../src/audit/audit-log.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import { createNodeScanFS, type ScanFS } from "../src/checks/files/hash-file.ts";
import { recordBaseline, supersedingRecord } from "../src/checks/files/records.ts";
import { ratingsOf, testSigner, treeSandboxes } from "../src/checks/files/test-helpers.ts";
import { ManualClock, systemClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { asNobody, cliSite, compareJSON, errno, highFor, openFds, pathsIn, repoint, setuidScript, summary, superseded } from "./helpers/files-red-team.ts";

const signer = testSigner();
const clock = new ManualClock();
const sandbox = treeSandboxes("bulwark-redteam38b-files-");
const isRoot = process.getuid?.() === 0;

/** A file system of its own (its own directory cache, pins and realpath) that cannot list `dirs`, as an LSM denial. */
function denyingOwn(dirs: readonly string[]): ScanFS {
  const own = createNodeScanFS();
  return {
    ...own,
    readdir: async (p) => {
      if (dirs.includes(p)) throw errno("EACCES");
      return own.readdir(p);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// The names a compare asks the audit log with
// ---------------------------------------------------------------------------------------------------------------------

describe("superseded baselines and the names of the baseline", () => {
  const { theSite, record } = cliSite(() => sandbox().root);

  // The CLI records a baseline at its real path only (check-files.ts recordBaseline … realPath(opts.baseline)), and a
  // compare asks with the three names the file has *now*. The admin's baseline directory was a symlink all along
  // (/var/lib/bulwark → /data/bulwark, a separate volume): every record says /data/bulwark/etc.baseline. The intruder
  // keeps a copy of a narrower tree's older baseline, re-points /var/lib/bulwark at a directory of kept copies, and
  // the cron compares /var/lib/bulwark/etc.baseline as always: as given, resolved and real, none is the recorded path;
  // the tree is another; the record of the copy itself says where it was written — the name the newest was written
  // over — but that is not asked. Not superseded, exit 0: the reverted sshd_config reads as a metadata change (medium).
  test(
    "attack: a narrower tree's older baseline behind a baseline directory that was a symlink when both were recorded, re-pointed at kept copies, is superseded",
    {
      timeout: 60_000,
    },
    async () => {
      const s = await theSite();
      const { root, tree } = sandbox();
      const data = join(root, "data");
      mkdirSync(data);
      const bw = join(root, "bw");
      symlinkSync(data, bw); // the admin's layout, from the start
      mkdirSync(join(tree, "ssh"));
      const conf = join(tree, "ssh", "sshd_config");
      writeFileSync(conf, "PermitRootLogin yes\n");
      const name = join(bw, "etc.baseline");
      await record(s, [name, join(tree, "ssh")]);
      const kept = join(root, "kept");
      mkdirSync(kept);
      copyFileSync(name, join(kept, "etc.baseline"));
      writeFileSync(conf, "PermitRootLogin no\n"); // the fix, and the wider baseline over the same name
      await record(s, [name, "--force", tree]);
      writeFileSync(conf, "PermitRootLogin yes\n"); // the revert, and the replay
      repoint(bw, kept);
      const r = await compareJSON(s, [name]);
      assert.equal(r.out.trusted, true, "the kept copy is genuine");
      assert.equal(superseded(r.out)?.severity, "critical", `exit ${r.code}, ${summary(r.out.findings)}`);
    },
  );

  // Held (the fix's own case, from the other side): the same layout, the compare given the *real* path of the kept copy
  // of the same tree: found by its digest and superseded.
  test("held: the same tree's older baseline behind a re-pointed baseline directory is superseded", { timeout: 60_000 }, async () => {
    const s = await theSite();
    const { root, tree } = sandbox();
    const data = join(root, "data");
    mkdirSync(data);
    const bw = join(root, "bw");
    symlinkSync(data, bw);
    const conf = join(tree, "app.conf");
    writeFileSync(conf, "debug=true\n");
    const name = join(bw, "app.baseline");
    await record(s, [name, tree]);
    const kept = join(root, "kept");
    mkdirSync(kept);
    copyFileSync(name, join(kept, "app.baseline"));
    writeFileSync(conf, "debug=false\n");
    await record(s, [name, "--force", tree]);
    writeFileSync(conf, "debug=true\n");
    repoint(bw, kept);
    const r = await compareJSON(s, [name]);
    assert.equal(superseded(r.out)?.severity, "critical", summary(r.out.findings));
    assert.equal(r.code, 1);
  });

  // Held (honest use): a baseline written through a symlinked directory inside the scanned tree (tree/bl → tree/store)
  // leaves itself and the temporary files of its run out: recorded under their real names, they are not in the
  // baseline, and a compare given the linked name reports nothing.
  test("held: a baseline written through a symlinked directory inside the tree neither records itself nor is reported by the compare", { timeout: 60_000 }, async () => {
    const s = await theSite();
    const { tree } = sandbox();
    mkdirSync(join(tree, "store"));
    symlinkSync("store", join(tree, "bl"));
    writeFileSync(join(tree, "app.conf"), "debug=false\n");
    const name = join(tree, "bl", "tree.baseline");
    await record(s, [name, tree]);
    const lines = execFileSync("cat", [name], { encoding: "utf8" }).split("\n");
    assert.deepEqual(lines.filter((l) => l.includes("tree.baseline")), [], "the baseline records no file of its own run");
    const r = await compareJSON(s, [name]);
    assert.deepEqual(pathsIn(r.out.findings), [], summary(r.out.findings));
    assert.equal(r.code, 0);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Exclusions spelled through a symlink
// ---------------------------------------------------------------------------------------------------------------------

describe("--exclude spelled through a symlink", () => {
  /**
   * tree/usr/lib/libc.so.6 and tree/var/cache/lib/junk; the admin excludes the cache's lib directory spelled through a
   * symlink outside the tree (links/cache → tree/var/cache, as /var/cache on another volume is), at record and at
   * every compare (the cron passes the same --exclude).
   */
  async function cacheTree(): Promise<{ root: string; tree: string; baseline: string; link: string; exclusion: string; libc: string }> {
    const { root, tree, baseline } = sandbox();
    mkdirSync(join(tree, "usr", "lib"), { recursive: true });
    mkdirSync(join(tree, "var", "cache", "lib"), { recursive: true });
    const libc = join(tree, "usr", "lib", "libc.so.6");
    writeFileSync(libc, "\x7fELF genuine libc\n");
    writeFileSync(join(tree, "var", "cache", "lib", "junk"), "j\n");
    mkdirSync(join(root, "links"));
    const link = join(root, "links", "cache");
    symlinkSync(join(tree, "var", "cache"), link);
    const exclusion = join(link, "lib");
    const made = await createBaseline({ paths: [tree], exclude: [exclusion], out: baseline, signer, clock });
    assert.deepEqual(made.header.exclude, [join(tree, "var", "cache", "lib")], "recorded as the directory it names");
    return { root, tree, baseline, link, exclusion, libc };
  }

  // canonicalPath resolves the compare's --exclude afresh, through a symlink outside the tree that no compare sees
  // change; the exclusion keeps only its last name. The intruder re-points links/cache at tree/usr: the exclusion now
  // names tree/usr/lib, where they trojaned the C library. (Was: the baseline's entries there were "out of scope", not
  // compared, and only the cache's two entries were reported, low, as new.) What the baseline recorded under an
  // exclusion it did not record is looked up by name and compared; only what is new there is left out.
  test(
    "attack: an --exclude spelled through a symlink outside the tree, re-pointed so it names the library directory, does not hide the trojaned library",
    async () => {
      const { tree, baseline, link, exclusion, libc } = await cacheTree();
      writeFileSync(libc, "\x7fELF trojaned libc\n");
      writeFileSync(join(tree, "usr", "lib", "libevil.so"), "\x7fELF new\n");
      repoint(link, join(tree, "usr"));
      const r = await compareBaseline({ baseline, signer, exclude: [exclusion] });
      assert.ok(highFor(r.findings, libc), summary(r.findings));
      assert.ok(!pathsIn(r.findings).includes(join(tree, "usr", "lib", "libevil.so")), "what is new under an exclusion is left out, as asked");
    },
  );

  // The extreme of the same: the exclusion's last name is the root's (a tree "etc" with an exclusion spelled
  // …/links/conf/etc); re-pointed at the root's parent, the exclusion is the root. The compare compares nothing: every
  // baseline entry is out of scope, the root reads as one low "new entry", whatever was trojaned.
  test(
    "attack: an --exclude re-pointed so it resolves onto the recorded root itself does not turn the compare into one low 'new entry'",
    {},
    async () => {
      const { root } = sandbox();
      const etc = join(root, "etc");
      mkdirSync(join(etc, "conf.d", "etc"), { recursive: true });
      const helper = join(etc, "helper");
      setuidScript(helper);
      mkdirSync(join(root, "links"));
      const link = join(root, "links", "conf");
      symlinkSync(join(etc, "conf.d"), link);
      const exclusion = join(link, "etc");
      const baseline = join(root, "etc.baseline");
      await createBaseline({ paths: [etc], exclude: [exclusion], out: baseline, signer, clock });
      setuidScript(helper, true);
      repoint(link, root);
      const r = await compareBaseline({ baseline, signer, exclude: [exclusion] }).catch((error: unknown) => error as Error);
      if (r instanceof Error) {
        assert.match(r.message, /exclu/, "refused, naming the exclusion");
        return;
      }
      assert.ok(highFor(r.findings, helper) || r.findings.some((f) => f.severity === "high" || f.severity === "critical"), summary(r.findings));
    },
  );

  // Held (honest use): the same exclusion not re-pointed: the compare passes the same --exclude and reports the trojan.
  test("held: the symlinked exclusion unchanged: the trojaned library is reported high", async () => {
    const { baseline, exclusion, libc } = await cacheTree();
    writeFileSync(libc, "\x7fELF trojaned libc\n");
    const r = await compareBaseline({ baseline, signer, exclude: [exclusion] });
    assert.ok(highFor(r.findings, libc), summary(r.findings));
    assert.equal(pathsIn(r.findings).length, 1, summary(r.findings));
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// The recorded roots and the PATHs given to --compare
// ---------------------------------------------------------------------------------------------------------------------

describe("recorded roots and compare PATHs through symlinks", () => {
  // A compare takes header.roots as recorded: their parents had no symlink then. The intruder moves the directory above
  // a recorded root (www) elsewhere and leaves a symlink at its name — the site still works, through the link —, then
  // trojans the setuid helper in the moved tree. The scan reaches the root through descriptors opened without following
  // symlinks: ENOTDIR, the root "no longer examinable" (medium) and every entry under it "removed" (medium). Swapping
  // the root itself for a symlink is high ("content changed", type dir→symlink): one level up, the intruder gets less.
  test(
    "attack: an ancestor of a recorded root swapped for a symlink to the moved tree, a setuid helper trojaned in it, is reported high (was: the root 'no longer examinable' and the helper 'removed', both medium)",
    async () => {
      const { root, baseline } = sandbox();
      const www = join(root, "www");
      const app = join(www, "app");
      mkdirSync(app, { recursive: true });
      const helper = join(app, "helper");
      setuidScript(helper);
      await createBaseline({ paths: [app], out: baseline, signer, clock });
      const moved = join(root, "data-www");
      renameSync(www, moved);
      symlinkSync(moved, www);
      setuidScript(join(moved, "app", "helper"), true);
      const r = await compareBaseline({ baseline, signer });
      assert.ok(highFor(r.findings, helper) || highFor(r.findings, app), summary(r.findings));
    },
  );

  // Held: a PATH given to --compare through a symlink the intruder re-points out of the recorded tree (to a clean copy)
  // is resolved and refused before any scan, naming where it leads.
  test("held: a --compare PATH through a symlink re-pointed to a clean copy outside the recorded tree is refused", async () => {
    const { root, tree, baseline } = sandbox();
    mkdirSync(join(tree, "app"));
    setuidScript(join(tree, "app", "helper"));
    const link = join(root, "current");
    symlinkSync(tree, link);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    setuidScript(join(tree, "app", "helper"), true);
    const decoy = join(root, "decoy");
    execFileSync("cp", ["-a", tree, decoy]);
    setuidScript(join(decoy, "app", "helper"));
    repoint(link, decoy);
    await assert.rejects(compareBaseline({ baseline, signer, paths: [join(link, "app")] }), (error: Error & { code?: string }) => {
      assert.equal(error.code, "BULWARK_ERR_FILES_PATH");
      assert.ok(error.message.includes(join(decoy, "app")), error.message);
      return true;
    });
  });

  // Held: as nobody, a PATH spelled through a symlink into a directory nobody cannot search cannot be resolved; it is
  // kept as spelled and refused (not recorded by the baseline), never scanned as an empty or clean tree.
  test("held: as nobody, a --compare PATH through a symlink into an unsearchable directory is refused, not compared clean", { skip: isRoot ? false : "needs root to switch the effective uid" }, async () => {
    const { root, tree, baseline } = sandbox();
    chmodSync(root, 0o755);
    chmodSync(tree, 0o755);
    const locked = join(tree, "locked");
    mkdirSync(join(locked, "inner", "app"), { recursive: true });
    setuidScript(join(locked, "inner", "app", "helper"));
    chmodSync(locked, 0o700);
    symlinkSync(locked, join(root, "link"));
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    chmodSync(baseline, 0o644);
    setuidScript(join(locked, "inner", "app", "helper"), true);
    const r = await asNobody(() => compareBaseline({ baseline, signer, paths: [join(root, "link", "inner", "app")] }).catch((error: unknown) => error as Error & { code?: string }));
    assert.ok(r instanceof Error, `compared: ${r instanceof Error ? "" : summary(r.findings)}`);
    assert.equal(r.code, "BULWARK_ERR_FILES_PATH", r.message);
  });

  // Held: a PATH beneath a symlink in a directory whose name is not UTF-8 (x\xff/link → real) is resolved by its bytes:
  // recorded as x\xff/real/sec with its contents, and a trojaned setuid helper there is critical.
  test("held: a PATH beneath a symlink inside a non-UTF-8 directory name is recorded to its contents and compared", async () => {
    const { root, baseline } = sandbox();
    const dir = Buffer.concat([Buffer.from(`${root}/x`), Buffer.of(0xff)]);
    mkdirSync(Buffer.concat([dir, Buffer.from("/real/sec")]), { recursive: true });
    symlinkSync("real", Buffer.concat([dir, Buffer.from("/link")]));
    const helperBytes = Buffer.concat([dir, Buffer.from("/real/sec/helper")]);
    writeFileSync(helperBytes, "#!/bin/sh\necho genuine\n");
    chmodSync(helperBytes, 0o4755);
    const made = await createBaseline({ paths: [`${root}/x\udcff/link/sec`], out: baseline, signer, clock });
    const real = `${root}/x\udcff/real/sec`;
    assert.deepEqual(made.roots, [real]);
    assert.equal(made.entries, 2, summary(made.findings));
    writeFileSync(helperBytes, "#!/bin/sh\nexec /bin/sh -p\n");
    const r = await compareBaseline({ baseline, signer });
    assert.deepEqual(ratingsOf(r.findings, `${real}/helper`), ["files.changed/critical"], summary(r.findings));
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// The baseline's own name, resolved after it was opened
// ---------------------------------------------------------------------------------------------------------------------

describe("the baseline left out of the compare", () => {
  // compareBaseline opens the baseline by name, reads its header, and only then resolves its name (canonicalPath) to
  // leave it out of the scan: `p === baselinePath`, by name. The intruder has made the baseline's directory a symlink
  // (bw → bw.real: the compare reads the genuine newest baseline through it) and planted a setuid shell in the scanned
  // tree under the baseline's file name; when the compare opens the baseline (inotify IN_OPEN) they re-point bw at the
  // directory holding the shell. The name now resolves to the shell, which the compare leaves out as "the baseline".
  test(
    "attack: the baseline's directory re-pointed between the open and the resolving of its name does not leave a setuid file planted under that name out of the compare (was: left out as the baseline itself, no finding)",
    async () => {
      const { root, tree } = sandbox();
      mkdirSync(join(tree, "bin"));
      writeFileSync(join(tree, "bin", "ls"), "\x7fELF ls\n");
      const real = join(root, "bw.real");
      mkdirSync(real);
      const bw = join(root, "bw");
      symlinkSync(real, bw);
      const baseline = join(bw, "etc.baseline");
      await createBaseline({ paths: [tree], out: baseline, signer, clock });
      const planted = join(tree, "bin", "etc.baseline");
      setuidScript(planted, true);
      const own = createNodeScanFS();
      let swapped = false;
      const fs: ScanFS = {
        ...own,
        realpath: async (p) => {
          if (!swapped && p === bw) {
            swapped = true;
            repoint(bw, join(tree, "bin"));
          }
          return (own.realpath as (p: string) => Promise<string>)(p);
        },
      };
      const r = await compareBaseline({ baseline, signer, fs });
      assert.ok(swapped, "the name was resolved after the open");
      assert.equal(r.integrity.trusted, true);
      assert.ok(highFor(r.findings, planted), summary(r.findings));
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------------
// Baselines recorded before today's fix
// ---------------------------------------------------------------------------------------------------------------------

describe("baselines recorded before the roots were resolved", () => {
  // Before today, a PATH spelled through a symlinked directory was recorded as spelled, and scanned as one unreadable
  // line: a baseline of nothing, which compares as nothing (the root unexaminable on both sides is not compared). Those
  // baselines exist, signed, on every host that used such a spelling. The admin re-records the real path today (a new
  // tree key: canonical roots); the intruder puts the old one back under a name of its own that the cron takes for the
  // newest. Its record is of its own key and path; nothing later is of either: not superseded, and its compare hides
  // the trojaned PAM module. (A library baseline made with a ScanFS without realpath is such a baseline.)
  test(
    "attack: a pre-fix baseline of a root spelled through a symlink, replayed under a new name after the real path was recorded, is superseded",
    {
      timeout: 60_000,
    },
    async () => {
      const { root } = sandbox();
      const security = join(root, "usr", "lib", "security");
      mkdirSync(security, { recursive: true });
      symlinkSync("usr/lib", join(root, "lib"));
      const pam = join(security, "pam_unix.so");
      writeFileSync(pam, "\x7fELF genuine pam_unix\n");
      const spelled = join(root, "lib", "security");
      const old = join(root, "sec-2026-01-01.baseline");
      const withoutRealpath = createNodeScanFS();
      delete withoutRealpath.realpath;
      const before = await createBaseline({ paths: [spelled], out: old, signer, clock, fs: withoutRealpath });
      assert.deepEqual(before.header.roots, [spelled], "recorded as spelled, as before the fix");
      const newer = join(root, "sec-2026-01-02.baseline");
      const after = await createBaseline({ paths: [spelled], out: newer, signer, clock });
      assert.deepEqual(after.header.roots, [security]);
      const database = openSQLite(join(root, "audit.sqlite"), { create: true });
      try {
        assert.equal((await migrate(database, systemClock)).error, undefined);
        const audit = new AuditLog({ database, clock: new ManualClock(Date.UTC(2026, 0, 1)), random: systemRandom });
        await recordBaseline(audit, "cli:root", before.header, { digest: before.digest, path: old, entries: before.entries, keyId: before.keyId });
        await recordBaseline(audit, "cli:root", after.header, { digest: after.digest, path: newer, entries: after.entries, keyId: after.keyId });
        writeFileSync(pam, "\x7fELF trojaned pam_unix\n");
        const replay = join(root, "sec-2099-12-31.baseline");
        copyFileSync(old, replay);
        const r = await compareBaseline({
          baseline: replay,
          signer,
          supersededBy: (given) => supersedingRecord(database.db, { ...given, paths: [replay] }),
        });
        assert.ok(r.findings.some((f) => f.id === "files.baseline-superseded") || highFor(r.findings, pam), summary(r.findings));
      } finally {
        await database.close();
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------------
// The pin window, with real swaps
// ---------------------------------------------------------------------------------------------------------------------

describe("lookups deeper than the pin window", () => {
  /**
   * tree/locked/d001/…/dNNN with a file `f` at each level and a setuid helper `s` at level `at` (after d(at+1) and f
   * in path order: looked up on the way back up), recorded with full rights.
   */
  async function deep(levels: number, at: number): Promise<{ tree: string; baseline: string; locked: string; dirs: string[]; helper: string }> {
    const { tree, baseline } = sandbox();
    const locked = join(tree, "locked");
    const dirs: string[] = [];
    let here = locked;
    mkdirSync(here);
    for (let i = 1; i <= levels; i++) {
      here = join(here, `d${String(i).padStart(3, "0")}`);
      mkdirSync(here);
      dirs.push(here);
      writeFileSync(join(here, "f"), `${i}\n`);
    }
    const helper = join(dirs[at - 1] as string, "s");
    setuidScript(helper);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    return { tree, baseline, locked, dirs, helper };
  }

  // 300 levels: by the bottom, level 10 has been let go by the window and its descriptor closed by the directory
  // cache (256 at most). At that moment the intruder moves level 10 aside and puts a copy in its place whose setuid
  // helper is trojaned. The lookups come back up: level 10's name now leads to the copy, whose inode is not the one
  // examined: the helper is high (DIR_REPLACED), not read from the copy as if nothing happened, and not removed. Every
  // descriptor is closed after this compare and after a clean one.
  test("held: 300 nested levels, a level let go by the window swapped for a trojaned copy while the lookups are at the bottom: the helper there is high, no descriptor left", { timeout: 120_000 }, async () => {
    const { baseline, locked, dirs, helper } = await deep(300, 10);
    const before = openFds();
    const clean = await compareBaseline({ baseline, signer, fs: denyingOwn([locked]) });
    assert.deepEqual(pathsIn(clean.findings), [locked], summary(clean.findings));
    assert.equal(openFds(), before, "descriptors left after a clean compare");
    const level10 = dirs[9] as string;
    let swapped = false;
    const base = denyingOwn([locked]);
    const fs: ScanFS = {
      ...base,
      lstat: async (p) => {
        if (!swapped && p.startsWith(`${dirs[299] as string}/`)) {
          swapped = true;
          renameSync(level10, `${level10}.aside`);
          execFileSync("cp", ["-a", `${level10}.aside`, level10]);
          setuidScript(helper, true);
        }
        return base.lstat(p);
      },
    };
    const r = await compareBaseline({ baseline, signer, fs });
    assert.ok(swapped, "the bottom was reached");
    // DIR_REPLACED is files.changed/high (and listed as unreadable); the copy read as the directory examined would be
    // critical (its trojan), or nothing had the original been read.
    assert.deepEqual(ratingsOf(r.findings, helper), ["files.unreadable/low", "files.changed/high"], summary(r.findings));
    assert.match(JSON.stringify(r.findings), /replaced during the compare/);
    assert.equal(r.totals.removed, 0, summary(r.findings));
    assert.equal(openFds(), before, "descriptors left after the swapped compare");
  });

  // Held: a compare that fails in the middle of its lookups with the window full (the file system's unpin throws the
  // first time the window lets a directory go: a library caller's ScanFS failing) ends with that error, and closes
  // every descriptor: the 64 pinned, those let go and still cached, the scan's and the baseline's.
  test("held: a compare failing as the window lets its first directory go, 150 levels down, leaves no descriptor open", { timeout: 120_000 }, async () => {
    const { baseline, locked } = await deep(150, 5);
    const before = openFds();
    const base = denyingOwn([locked]);
    let failed = false;
    const fs: ScanFS = {
      ...base,
      unpin: (dir) => {
        if (!failed) {
          failed = true;
          throw new Error("the file system went away");
        }
        base.unpin?.(dir);
      },
    };
    await assert.rejects(compareBaseline({ baseline, signer, fs }), /went away/);
    assert.ok(failed);
    assert.equal(openFds(), before, "descriptors left after the failed compare");
  });
});
