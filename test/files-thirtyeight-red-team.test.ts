// Red team, round thirty-eight: `bulwark check files` after the fixes of red team 37b — lookups by name under a
// directory the compare cannot list, each directory they go through pinned (look-up.ts createLookUp: a stack of at
// most 64 O_PATH descriptors, each checked by device and inode, else DIR_REPLACED, high), one byte budget for every
// lookup (scan.ts ScanBudget), a directory cache per scan (hash-file.ts createNodeScanFS), the ctime rule, and
// superseded baselines (records.ts supersedingRecord, ADR 0024: a compare given an older baseline of the same tree or
// at the same path than the newest recorded is files.baseline-superseded, critical).
//
// The intruder has root on the monitored host after a compromise: writes files, nests directories as deep as they
// like, keeps copies of genuine old baselines, replaces directories or files with symlinks, and acts at the moment the
// compare reaches a path (a ScanFS hook plays that moment). Each test is one attack (or one honest use) and asserts
// what correct code does; an attack that still succeeds is kept, marked `{ todo: "finding: …" }`, so the file passes
// and the finding stays visible; "held:" tests show the code behaving.
//
// What was tried, in short: a subdirectory past the 64-deep pin stack swapped between its own lookup and its child's
// (found: the trojaned setuid helper below it reads as removed, medium — the pin stack ends and nothing below it is
// pinned or checked); the same swap one level higher (held: pinned); 70 nested levels with nothing changed and with a
// trojan at the bottom, counting descriptors (held); the lookups' byte budget spent by files grown just under it so the
// setuid helper after them is not hashed (held: critical, content not verified); names with a newline, a backslash,
// quotes, a leading dash, an RTL override and the printable text of an escaped byte beside the real byte (held); a
// compare abandoned by a throwing progress callback in the middle of its lookups, and one that fails its superseded
// question, counting descriptors (held); two compares in one process, the first paused inside its lookups while the
// directory is replaced (held); a narrower tree's older baseline put back over the newest baseline's name as a symlink
// to the kept copy, or with the baseline directory swapped for a symlink to a directory of kept copies (found: the
// compare asks the audit log by the real path, the kept copy's, so the record at the name the cron compares is never
// matched); the same tree's older baseline linked there (held: found by its digest); roots spelled with "/./", "//"
// and a trailing slash (held: one tree); roots spelled through a symlinked directory (found twice: such a PATH — on a
// merged-/usr system anything under /lib, /bin or /sbin — is scanned as one unreadable entry, so nothing below it is
// ever recorded or compared; and it is another tree key, so an older baseline of that spelling is not superseded by a
// newer one of the real path).
// Fixed since: the lookups pin every directory they go through, at most 64 at once — the shallowest subdirectory is
// let go for each deeper one and pinned and checked again on the way back up (look-up.ts); a PATH is recorded as the directory it names, its parents' symlinks resolved before the scan and its
// last name kept (scan.ts canonicalPath; the findings name the real paths, and both spellings are one tree key); the
// CLI asks the audit log with every name of the baseline it compares (as spelled, its directory resolved, its real
// path).
//
// Temp dirs only, removed after the file (treeSandboxes); the CLI runs in this process against a fresh data dir.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Finding } from "../src/checks/finding.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import { createNodeScanFS, type ScanFS } from "../src/checks/files/hash-file.ts";
import { nodeScanFS } from "../src/checks/files/scan.ts";
import { ratingsOf, testSigner, treeSandboxes } from "../src/checks/files/test-helpers.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { cliSite, compareJSON, denying, highFor, openFds, pathsIn, setuidScript, summary, superseded } from "./helpers/files-red-team.ts";

const signer = testSigner();
const clock = new ManualClock();
const sandbox = treeSandboxes("bulwark-redteam38-files-");
const KiB = 1024;
const MiB = 1024 * KiB;

/** The reason a finding gives for `path`, or null. */
const reasonFor = (findings: readonly Finding[], path: string): string | null => {
  for (const f of findings) for (const e of (f.evidence["entries"] as Array<{ path: string; reason?: string }> | undefined) ?? []) if (e.path === path && e.reason) return e.reason;
  return null;
};

/** A file system of its own (not the shared nodeScanFS cache) that cannot list `dirs`, as an LSM denial. */
const denyingOwn = (dirs: readonly string[], onDenied?: (dir: string) => void): ScanFS => denying(dirs, onDenied, createNodeScanFS());

/**
 * tree/locked/d01/…/dNN (`levels` nested subdirectories) with a setuid helper at the bottom and a file beside each
 * level, recorded with full rights; `locked` is the directory the compare will not be able to list.
 */
async function nested(levels: number): Promise<{ root: string; tree: string; baseline: string; locked: string; dirs: string[]; helper: string }> {
  const { root, tree, baseline } = sandbox();
  const locked = join(tree, "locked");
  const dirs: string[] = [];
  let at = locked;
  mkdirSync(at);
  for (let i = 1; i <= levels; i++) {
    at = join(at, `d${String(i).padStart(2, "0")}`);
    mkdirSync(at);
    dirs.push(at);
    writeFileSync(join(at, "f"), `${i}\n`);
  }
  const helper = join(at, "helper");
  setuidScript(helper);
  writeFileSync(join(tree, "zz-after"), "a sibling after the directory\n");
  await createBaseline({ paths: [tree], out: baseline, signer, clock });
  return { root, tree, baseline, locked, dirs, helper };
}

/**
 * Compares `baseline` with `locked` unlistable while the intruder swaps `victim` (for an empty directory, or a symlink
 * to where it went) the first time the compare looks anything under it up, and puts it back after the compare.
 */
async function swapDuringLookups(baseline: string, locked: string, victim: string, swapIn: "empty directory" | "symlink"): Promise<{ findings: Finding[]; swapped: boolean }> {
  const aside = `${victim}.aside`;
  let swapped = false;
  const base = denying([locked]);
  const fs: ScanFS = {
    ...base,
    lstat: async (p) => {
      if (!swapped && p.startsWith(`${victim}/`)) {
        swapped = true;
        renameSync(victim, aside);
        if (swapIn === "empty directory") mkdirSync(victim);
        else symlinkSync(aside, victim);
      }
      return nodeScanFS.lstat(p);
    },
  };
  try {
    const r = await compareBaseline({ baseline, signer, fs });
    return { findings: r.findings, swapped };
  } finally {
    if (swapped) {
      rmSync(victim, { recursive: true, force: true });
      renameSync(aside, victim);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The pin stack's depth
// ---------------------------------------------------------------------------------------------------------------------

describe("lookups deeper than the pin stack", () => {
  // look-up.ts createLookUp pins a subdirectory only while `pins.length < MAX_PINNED` (64), the unlistable directory
  // counting as one: the 64th subdirectory below it is looked up (lstat by name, its inode compared with the baseline's)
  // but never pinned. Its children are then looked up through hash-file.ts's directory cache, which opens the 64th
  // subdirectory by name at the first child's lookup — whatever is at that name then. The intruder nests the tree 64
  // deep (free: mkdir -p), and swaps that level between its own lookup and its first child's: for an empty directory,
  // the trojaned setuid helper below reads as removed (medium) and the level itself as unchanged; for a symlink, the
  // children are "no longer examinable" (medium). Nothing says replaced, and the swap is undone after the compare.
  test(
    "attack: the first subdirectory past the 64-deep pin stack swapped while its names are looked up does not bring the trojaned setuid helper in it below high (was: files.removed/medium for an empty directory, 'no longer examinable' medium for a symlink)",
    async () => {
      const problems: string[] = [];
      for (const swapIn of ["empty directory", "symlink"] as const) {
        const { baseline, locked, dirs, helper } = await nested(64);
        setuidScript(helper, true);
        const victim = dirs[63] as string;
        const r = await swapDuringLookups(baseline, locked, victim, swapIn);
        assert.ok(r.swapped, "the 64th level was reached");
        assert.match(readFileSync(helper, "utf8"), /trojan/, "the trojan stayed in place");
        if (!highFor(r.findings, helper) && !highFor(r.findings, victim)) {
          problems.push(`${swapIn}: helper ${ratingsOf(r.findings, helper).join(", ") || "nothing"}, level 64 ${ratingsOf(r.findings, victim).join(", ") || "nothing"}`);
        }
      }
      assert.deepEqual(problems, []);
    },
  );

  // Held: the same swap one level higher (the 63rd subdirectory, the last one pinned) changes nothing: its children
  // are looked up through the descriptor pinned at its lookup, so the trojaned helper is read where it is: critical.
  test("held: the 63rd subdirectory (the last pinned) swapped while its names are looked up: the trojaned setuid helper is critical", async () => {
    for (const swapIn of ["empty directory", "symlink"] as const) {
      const { baseline, locked, dirs, helper } = await nested(63);
      setuidScript(helper, true);
      const victim = dirs[62] as string;
      const r = await swapDuringLookups(baseline, locked, victim, swapIn);
      assert.ok(r.swapped);
      assert.deepEqual(ratingsOf(r.findings, helper), ["files.changed/critical"], `${swapIn}: ${summary(r.findings)}`);
    }
  });

  // Held (honest use, and the plain trojan): 70 levels under an unlistable directory, unchanged, name only the
  // directory (no false DIR_REPLACED past the stack); with the helper at the bottom trojaned, it is critical and nothing
  // is removed; every descriptor the compare opened is closed after it.
  test("held: 70 nested levels under an unlistable directory: unchanged names only the directory, a trojan at the bottom is critical, no descriptor left open", async () => {
    const { baseline, locked, helper } = await nested(70);
    const before = openFds();
    const clean = await compareBaseline({ baseline, signer, fs: denyingOwn([locked]) });
    assert.deepEqual(pathsIn(clean.findings), [locked], summary(clean.findings));
    assert.deepEqual(ratingsOf(clean.findings, locked), ["files.unreadable/low"]);
    setuidScript(helper, true);
    const r = await compareBaseline({ baseline, signer, fs: denyingOwn([locked]) });
    assert.deepEqual(ratingsOf(r.findings, helper), ["files.changed/critical"], summary(r.findings));
    assert.equal(r.totals.removed, 0);
    assert.equal(openFds(), before, "descriptors left open");
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// The lookups' byte budget, names, and descriptors after a compare abandoned midway
// ---------------------------------------------------------------------------------------------------------------------

describe("lookups: budget, names, descriptors", () => {
  // Held: the intruder cannot add names to what is looked up (only what the baseline recorded is), but can grow the
  // recorded files before the setuid helper (in path order) to just under --max-file-bytes, so the lookups' one budget
  // is spent when the helper's turn comes: the helper is not hashed — and is reported critical (a setuid file whose
  // content is not verified), the grown file high; nothing is passed over.
  test("held: recorded files grown to spend the lookups' byte budget leave the trojaned setuid helper after them critical, not unexamined", async () => {
    const { tree, baseline } = sandbox();
    const locked = join(tree, "locked");
    mkdirSync(locked);
    writeFileSync(join(locked, "a-cache"), "small\n");
    const helper = join(locked, "helper");
    setuidScript(helper);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    truncateSync(join(locked, "a-cache"), 1 * MiB - 4); // under --max-file-bytes, four bytes short of the budget
    setuidScript(helper, true);
    const r = await compareBaseline({ baseline, signer, fs: denyingOwn([locked]), maxScanBytes: 1 * MiB, maxFileBytes: 1 * MiB });
    assert.deepEqual(ratingsOf(r.findings, helper).filter((x) => x !== "files.too-large-to-hash/high"), ["files.changed/critical"], summary(r.findings));
    assert.ok(highFor(r.findings, join(locked, "a-cache")), summary(r.findings));
    assert.match(reasonFor(r.findings.filter((f) => f.id === "files.changed"), helper) ?? "", /not be verified|could not be verified/);
  });

  // Held: names an intruder chooses to confuse path handling — a newline, a backslash, quotes, a leading dash, an RTL
  // override, the bytes "x\xff" beside the ASCII text "x\udcff" (the escape's look-alike) — each a setuid file in an
  // unlistable directory, found by name: unchanged, none is reported; the one of each look-alike pair trojaned is
  // critical under its own name and the other stays quiet.
  test("held: setuid files with newlines, backslashes, quotes, an RTL override and escape look-alikes in their names are each looked up by their own name", async () => {
    const { tree, baseline } = sandbox();
    const locked = join(tree, "locked");
    mkdirSync(locked);
    const names = ["new\nline", "back\\slash", 'q"uote\'', "-rf", "evil\u202egnp.sh", "x\\udcff", " lead space", "trail.."];
    for (const n of names) setuidScript(join(locked, n));
    execFileSync("python3", ["-c", "import os, sys; p = os.path.join(os.fsencode(sys.argv[1]), b'x\\xff'); open(p, 'w').write('#!/bin/sh\\necho genuine\\n'); os.chmod(p, 0o4755)", locked]);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const clean = await compareBaseline({ baseline, signer, fs: denyingOwn([locked]) });
    assert.deepEqual(pathsIn(clean.findings), [locked], summary(clean.findings));
    // Trojan the byte name, and every other of the list; the look-alike text name is left alone.
    execFileSync("python3", ["-c", "import os, sys; p = os.path.join(os.fsencode(sys.argv[1]), b'x\\xff'); open(p, 'w').write('#!/bin/sh\\nexec /bin/sh -p\\n'); os.chmod(p, 0o4755)", locked]);
    const trojaned = names.filter((_, i) => i % 2 === 0);
    for (const n of trojaned) setuidScript(join(locked, n), true);
    const r = await compareBaseline({ baseline, signer, fs: denyingOwn([locked]) });
    for (const n of [...trojaned, "x\udcff"]) assert.deepEqual(ratingsOf(r.findings, join(locked, n)), ["files.changed/critical"], `${JSON.stringify(n)}: ${summary(r.findings)}`);
    for (const n of names.filter((_, i) => i % 2 === 1)) assert.deepEqual(ratingsOf(r.findings, join(locked, n)), [], `${JSON.stringify(n)}: ${summary(r.findings)}`);
    assert.equal(r.totals.removed, 0);
  });

  // Held: a compare that fails with its pins held — the signer's verify throwing at the trailer, read right after the
  // last lookup 20 levels down (a keyring closed under it) —, one whose progress callback throws (a library caller's
  // sink gone), and one whose superseded question fails after the merge (the audit database locked) end with that
  // error and leave no descriptor open: neither the scan's directories, the pinned ones, nor the baseline's.
  test("held: a compare failing with 20 pins held, in its progress callback, or in its superseded question leaves no descriptor open", async () => {
    const { baseline, locked, helper } = await nested(20);
    setuidScript(helper, true);
    const before = openFds();
    const failing = { ...signer, verify: (): boolean => { throw new Error("the keyring was closed"); } };
    await assert.rejects(compareBaseline({ baseline, signer: failing, fs: denyingOwn([locked]) }), /keyring was closed/);
    assert.equal(openFds(), before, "after the signer threw at the trailer");
    await assert.rejects(compareBaseline({ baseline, signer, fs: denyingOwn([locked]), onProgress: () => { throw new Error("progress sink closed"); } }), /progress sink closed/);
    assert.equal(openFds(), before, "after the progress callback threw");
    await assert.rejects(compareBaseline({ baseline, signer, fs: denyingOwn([locked]), supersededBy: async () => { throw new Error("the database is locked"); } }), /database is locked/);
    assert.equal(openFds(), before, "after the superseded question failed");
  });

  // Held: two compares in one process, the first paused inside its lookups (its pins held) while the unlistable
  // directory is renamed aside and replaced with a genuine-looking copy, then a second compare runs to the end, then the
  // first resumes: the first reads the trojan through what it pinned (critical), the second sees a replaced directory
  // (high): neither passes the host as clean.
  test("held: a compare paused in its lookups while the directory is replaced and another compare runs: each reports it high or critical", async () => {
    const { baseline, locked, dirs, helper } = await nested(3);
    setuidScript(helper, true);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    const paused = denyingOwn([locked]);
    const first = compareBaseline({
      baseline,
      signer,
      fs: {
        ...paused,
        lstat: async (p) => {
          if (p === helper) {
            reached();
            await gate;
          }
          return paused.lstat(p);
        },
      },
    });
    await atGate;
    const aside = `${locked}.aside`;
    renameSync(locked, aside);
    execFileSync("cp", ["-a", aside, locked]);
    setuidScript(join(locked, ...dirs.map((d) => d.slice(d.lastIndexOf("/") + 1)), "helper"));
    let second: Awaited<ReturnType<typeof compareBaseline>>;
    try {
      second = await compareBaseline({ baseline, signer, fs: denyingOwn([locked]) });
    } finally {
      release();
    }
    const r1 = await first;
    assert.deepEqual(ratingsOf(r1.findings, helper), ["files.changed/critical"], `first: ${summary(r1.findings)}`);
    assert.ok(highFor(second.findings, locked), `second: ${summary(second.findings)}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// A PATH beneath a symlinked directory
// ---------------------------------------------------------------------------------------------------------------------

describe("a PATH beneath a symlinked directory", () => {
  // While a scan runs, hash-file.ts's DirectoryCache reaches every path through descriptors of its directories, each
  // opened with O_DIRECTORY | O_NOFOLLOW by name under its parent's — the root's ancestors too. A PATH one of whose
  // ancestors is a symlink (on a merged-/usr Debian or Ubuntu, /lib → usr/lib, /bin → usr/bin, /sbin → usr/sbin: the
  // admin records /lib/x86_64-linux-gnu/security, where the PAM modules are, or /lib/systemd/system) then fails at its
  // very first lstat with ENOTDIR: the baseline holds one line, the root "unreadable", and every later compare says the
  // same, files.unreadable low, exit 0. A PAM module trojaned there (pam_unix.so logging passwords, or accepting a
  // master one) and a setuid shell planted beside it are reported by nothing. The README's "not even a PATH that is
  // one" is about the PATH itself; its ancestors are how the admin names it.
  test(
    "attack: a PATH beneath a symlinked directory (/lib/x86_64-linux-gnu/security with /lib → usr/lib) is recorded to its contents, and a trojaned PAM module and a planted setuid file there are reported high (was: the baseline held one line, the root unreadable, and every compare said files.unreadable/low)",
    async () => {
      const { root, baseline } = sandbox();
      const usrLib = join(root, "usr", "lib");
      const security = join(usrLib, "x86_64-linux-gnu", "security");
      mkdirSync(security, { recursive: true });
      symlinkSync("usr/lib", join(root, "lib")); // merged /usr: lib → usr/lib
      const pam = join(security, "pam_unix.so");
      writeFileSync(pam, "\x7fELF genuine pam_unix\n");
      writeFileSync(join(security, "pam_deny.so"), "\x7fELF pam_deny\n");
      const viaLink = join(root, "lib", "x86_64-linux-gnu", "security");
      const made = await createBaseline({ paths: [viaLink], out: baseline, signer, clock });
      writeFileSync(pam, "\x7fELF trojaned pam_unix: accepts a master password\n");
      setuidScript(join(security, ".x"));
      // Compared as recorded, and with the PATH given again as the admin spells it.
      const r = await compareBaseline({ baseline, signer });
      const again = await compareBaseline({ baseline, signer, paths: [viaLink] });
      const problems: string[] = [];
      if (made.entries !== 3) problems.push(`the baseline recorded ${made.entries} entries of 3: ${summary(made.findings)}`);
      // Recorded as the directory it is: the findings name the real paths.
      assert.deepEqual(made.roots, [security]);
      for (const out of [r, again]) for (const name of ["pam_unix.so", ".x"]) if (!highFor(out.findings, join(security, name))) problems.push(`${name}: ${summary(out.findings)}`);
      assert.deepEqual(problems, []);
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------------
// Superseded baselines and the baseline's name
// ---------------------------------------------------------------------------------------------------------------------

describe("superseded baselines and symlinks", () => {
  const { theSite, record } = cliSite(() => sandbox().root);

  // The "same path" rule (a narrower tree's older baseline put back over the newest one's file) is asked with the
  // baseline's real path (check-files.ts realPath → realpathSync). The intruder does not copy the kept older baseline
  // over the newest one's name: they make that name a symlink to the kept copy (ln -sf), or swap the baseline directory
  // for a symlink to a directory of kept copies. The cron compares the name it always did; the compare follows the link
  // and asks the log about the kept copy's path, where nothing was ever recorded; the older baseline is another tree;
  // no finding, and the reverted sshd_config reads as unchanged.
  test(
    "attack: a narrower tree's older baseline put back as a symlink at the newest baseline's name (or through a symlinked baseline directory) is superseded (was: asked by the kept copy's real path only, which no record names: no finding, exit 0)",
    { timeout: 60_000 },
    async () => {
      const s = await theSite();
      const problems: string[] = [];
      for (const how of ["file symlink", "directory symlink"] as const) {
        const { root, tree } = sandbox();
        const store = join(root, "store");
        mkdirSync(store);
        mkdirSync(join(tree, "ssh"));
        const conf = join(tree, "ssh", "sshd_config");
        writeFileSync(conf, "PermitRootLogin yes\n");
        const name = join(store, "etc.baseline");
        await record(s, [name, join(tree, "ssh")]);
        const keptDir = join(root, "kept");
        mkdirSync(keptDir);
        copyFileSync(name, join(keptDir, "etc.baseline"));
        writeFileSync(conf, "PermitRootLogin no\n"); // the fix, and the wider baseline over the same name
        await record(s, [name, "--force", tree]);
        writeFileSync(conf, "PermitRootLogin yes\n"); // the revert, and the replay
        if (how === "file symlink") {
          unlinkSync(name);
          symlinkSync(join(keptDir, "etc.baseline"), name);
        } else {
          renameSync(store, `${store}.real`);
          symlinkSync(keptDir, store);
        }
        const r = await compareJSON(s, [name]);
        assert.equal(r.out.trusted, true, `${how}: the kept copy is genuine`);
        if (superseded(r.out)?.severity !== "critical") problems.push(`${how}: exit ${r.code}, ${summary(r.out.findings)}`);
      }
      assert.deepEqual(problems, []);
    },
  );

  // Held (the ordinary replay, by link): the same tree's older baseline made the target of a symlink at the newest's
  // name is found by its own digest and superseded.
  test("held: the same tree's older baseline put back as a symlink at the newest baseline's name is superseded", { timeout: 60_000 }, async () => {
    const s = await theSite();
    const { root, tree, baseline } = sandbox();
    const conf = join(tree, "app.conf");
    writeFileSync(conf, "debug=true\n");
    await record(s, [baseline, tree]);
    const kept = join(root, "kept.jsonl");
    copyFileSync(baseline, kept);
    writeFileSync(conf, "debug=false\n");
    await record(s, [baseline, "--force", tree]);
    writeFileSync(conf, "debug=true\n");
    unlinkSync(baseline);
    symlinkSync(kept, baseline);
    const r = await compareJSON(s, [baseline]);
    assert.equal(superseded(r.out)?.severity, "critical", summary(r.out.findings));
    assert.equal(r.code, 1);
  });

  // The tree key is the SHA-256 of the roots as path.resolve gives them: "/./", "//" and a trailing slash are one
  // tree, but a root reached through a symlinked directory (/var/www → /srv/www, the same files) is another. An admin
  // whose cron used to record `/var/www/app` and now records `/srv/www/app` (each day under a dated name) has two keys
  // for one tree: the intruder puts a genuine baseline of the old spelling back under a name of its own that sorts as the
  // newest (www-2099-…), the cron compares it, and no record of its key or its name came after it: the revert it hides
  // reads as unchanged. (Its recorded paths are compared through the link: the same files.)
  test(
    "attack: an older baseline of the same tree, its roots spelled through a symlinked directory, is superseded by the newer one (was: the roots keyed as spelled, two trees for one directory)",
    { timeout: 60_000 },
    async () => {
      const s = await theSite();
      const { root, tree } = sandbox();
      const conf = join(tree, "app.conf");
      writeFileSync(conf, "debug=false\n");
      const link = join(root, "www");
      symlinkSync(root, link); // www → the directory holding tree: www/tree is tree
      const old = join(root, "www-2026-01-01.jsonl");
      await record(s, [old, join(link, "tree")]);
      writeFileSync(conf, "debug=true\n"); // a change, recorded as the new state through the real path
      await record(s, [join(root, "www-2026-01-02.jsonl"), tree]);
      writeFileSync(conf, "debug=false\n"); // the revert (to the state the old baseline recorded), and the replay
      const replay = join(root, "www-2099-12-31.jsonl");
      copyFileSync(old, replay);
      const r = await compareJSON(s, [replay]);
      assert.equal(r.out.trusted, true);
      assert.equal(superseded(r.out)?.severity, "critical", `exit ${r.code}, ${summary(r.out.findings)}`);
    },
  );

  // Held (honest use): the same tree spelled with "/./", "//" and a trailing slash is one key: the newest, so spelled,
  // compares clean, and the older put back under a name of its own is superseded.
  test("held: roots spelled with /./, // and a trailing slash are one tree: the older put back under another name is superseded, the newest clean", { timeout: 60_000 }, async () => {
    const s = await theSite();
    const { root, tree } = sandbox();
    const conf = join(tree, "app.conf");
    writeFileSync(conf, "debug=false\n");
    const old = join(root, "a.jsonl");
    await record(s, [old, `${root}/./tree/`]);
    writeFileSync(conf, "debug=true\n");
    const newest = join(root, "b.jsonl");
    await record(s, [newest, `${root}//tree/.`]);
    const fresh = await compareJSON(s, [newest]);
    assert.equal(superseded(fresh.out), undefined, summary(fresh.out.findings));
    writeFileSync(conf, "debug=false\n");
    const replay = join(root, "c.jsonl");
    copyFileSync(old, replay);
    const r = await compareJSON(s, [replay]);
    assert.equal(superseded(r.out)?.severity, "critical", summary(r.out.findings));
  });
});
