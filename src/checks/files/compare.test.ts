// Compare: added, removed, content and metadata changes on a real tree, their severities, scope by
// PATH (a PATH the baseline did not record is refused), and bounded evidence for thousands of changes.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ManualClock } from "../../lib/clock.ts";
import { compareBaseline, createBaseline } from "./check.ts";
import { classify } from "./classify.ts";
import { diffEntry, type DiffEvent } from "./compare.ts";
import type { FileEntry } from "./entry.ts";
import { EVIDENCE_LIMIT } from "./findings.ts";
import { tempDir, testSigner } from "./test-helpers.ts";

const entry = (path: string, over: Partial<FileEntry> = {}): FileEntry => ({
  path, type: "file", status: "ok", mode: "0755", uid: 0, gid: 0, size: 10, mtime: "1", ctime: "1", ino: "7", target: null, sha256: "a".repeat(64), error: null, ...over,
});
const changed = (before: FileEntry, after: FileEntry): DiffEvent => ({ kind: "changed", path: after.path, before, after, ...diffEntry(before, after) });

describe("classify", () => {
  it("rates a content change of an executable in a system binary directory critical", () => {
    for (const p of ["/usr/bin/sudo", "/bin/ls", "/usr/local/sbin/x", "/usr/libexec/sudo/sudoers.so"]) {
      assert.equal(classify(changed(entry(p), entry(p, { sha256: "b".repeat(64) }))).severity, "critical", p);
    }
  });

  it("rates a changed shared object under /lib* or /usr/lib* critical even at mode 0644", () => {
    const p = "/usr/lib/x86_64-linux-gnu/security/pam_unix.so";
    assert.equal(classify(changed(entry(p, { mode: "0644" }), entry(p, { mode: "0644", sha256: "b".repeat(64) }))).severity, "critical");
    const q = "/lib64/ld-linux-x86-64.so.2";
    assert.equal(classify(changed(entry(q, { mode: "0644" }), entry(q, { mode: "0644", sha256: "b".repeat(64) }))).severity, "critical");
  });

  it("rates a content change of a data file or outside system paths high, and of a setuid file anywhere critical", () => {
    assert.equal(classify(changed(entry("/usr/lib/os-release", { mode: "0644" }), entry("/usr/lib/os-release", { mode: "0644", sha256: "b".repeat(64) }))).severity, "high");
    assert.equal(classify(changed(entry("/opt/app/run"), entry("/opt/app/run", { sha256: "b".repeat(64) }))).severity, "high");
    assert.equal(classify(changed(entry("/opt/x", { mode: "4755" }), entry("/opt/x", { mode: "4755", sha256: "b".repeat(64) }))).severity, "critical");
  });

  it("rates a retargeted symlink in a system directory critical, elsewhere high", () => {
    const link = (p: string, t: string): FileEntry => entry(p, { type: "symlink", mode: "0777", sha256: null, target: t });
    assert.equal(classify(changed(link("/usr/bin/vi", "vim"), link("/usr/bin/vi", "/tmp/evil"))).severity, "critical");
    assert.equal(classify(changed(link("/srv/current", "v1"), link("/srv/current", "v2"))).severity, "high");
  });

  it("rates metadata-only changes medium, and a newly set setuid bit high", () => {
    assert.equal(classify(changed(entry("/usr/bin/ls"), entry("/usr/bin/ls", { mtime: "2" }))).severity, "medium");
    assert.equal(classify(changed(entry("/usr/bin/find"), entry("/usr/bin/find", { mode: "4755" }))).severity, "high");
  });

  it("rates a system file that became group- or other-writable high: any user can now replace it", () => {
    // Missed severity: 0777 on /bin/bash or 0666 on /etc/passwd was medium "metadata changed", exit 0.
    const cases: Array<[string, string, string]> = [["/bin/bash", "0755", "0777"], ["/etc/passwd", "0644", "0666"], ["/usr/bin/sudo", "4755", "4777"], ["/etc/shadow", "0640", "0660"], ["/boot/vmlinuz", "0644", "0646"], ["/lib64/ld-linux-x86-64.so.2", "0755", "0775"]];
    for (const [path, from, to] of cases) {
      const c = classify(changed(entry(path, { mode: from }), entry(path, { mode: to, ctime: "2" })));
      assert.deepEqual([c.id, c.severity, c.reason], ["files.changed", "high", "group/other write permission added in a system directory"], path);
    }
    const sudoers = entry("/etc/sudoers.d", { type: "dir", mode: "0750", sha256: null });
    assert.equal(classify(changed(sudoers, { ...sudoers, mode: "0777" })).severity, "high", "a writable directory lets anyone add files");
  });

  it("keeps write permission that was already there, removed, or outside system paths medium", () => {
    assert.equal(classify(changed(entry("/etc/app", { mode: "0666" }), entry("/etc/app", { mode: "0666", uid: 1000 }))).severity, "medium");
    assert.equal(classify(changed(entry("/etc/app", { mode: "0666" }), entry("/etc/app", { mode: "0644" }))).severity, "medium");
    assert.equal(classify(changed(entry("/srv/www/index.html", { mode: "0644" }), entry("/srv/www/index.html", { mode: "0666" }))).severity, "medium");
    assert.equal(classify(changed(entry("/etcetera/x", { mode: "0644" }), entry("/etcetera/x", { mode: "0666" }))).severity, "medium");
    assert.equal(classify(changed(entry("/usr/bin/ls", { mode: "0755" }), entry("/usr/bin/ls", { mode: "0644" }))).severity, "medium", "no longer a program");
  });

  // Red team 36, finding 1: setcap beside a chmod, chgrp or a dropped setuid bit was medium "metadata changed".
  it("rates any mode, owner or group change of a program high: a file capability set with it is not recorded", () => {
    for (const over of [{ mode: "0700" }, { gid: 1000 }, { uid: 1000 }]) {
      const c = classify(changed(entry("/opt/app/bin/run", { mode: "0755" }), entry("/opt/app/bin/run", { mode: "0755", ...over })));
      assert.deepEqual([c.severity, c.reason], ["high", "program: its mode, owner or group changed, and an unrecorded attribute (a file capability, an ACL entry) set with it would move the same ctime"], JSON.stringify(over));
    }
    const dropped = classify(changed(entry("/opt/ping", { mode: "4755" }), entry("/opt/ping", { mode: "0755", ctime: "2" })));
    assert.equal(dropped.severity, "high", "a setuid bit dropped (a capability may replace it)");
  });

  it("rates added system executables and setuid files high, other additions low, removals medium", () => {
    const added = (e: FileEntry): DiffEvent => ({ kind: "added", path: e.path, before: null, after: e, changes: [], content: true });
    assert.equal(classify(added(entry("/usr/sbin/backdoor"))).severity, "high");
    assert.equal(classify(added(entry("/home/u/.x", { mode: "6755" }))).severity, "high");
    assert.equal(classify(added(entry("/etc/motd", { mode: "0644" }))).severity, "low");
    assert.equal(classify({ kind: "removed", path: "/x", before: entry("/x"), after: null, changes: [], content: true }).severity, "medium");
  });

  // ASVS 16.5.3. Was: a new webshell, .htaccess or cron job was "new entry", low, below the default --fail-on high.
  it("rates new server-side scripts, web server configuration, executable files and persistence files high; plain files stay low", () => {
    const added = (e: FileEntry): DiffEvent => ({ kind: "added", path: e.path, before: null, after: e, changes: [], content: true });
    const rate = (path: string, mode = "0644", type: FileEntry["type"] = "file"): string => {
      const c = classify(added(entry(path, { mode, type })));
      return `${c.severity}: ${c.reason}`;
    };
    for (const path of ["/srv/www/up/x.php", "/srv/www/a.PHTML", "/srv/www/a.php5", "/srv/www/s.phar", "/opt/tomcat/webapps/ROOT/c.jsp", "/inetpub/wwwroot/c.aspx", "/srv/www/cgi-bin/x.cgi"]) {
      assert.match(rate(path), /^high: new server-side script/, path);
    }
    for (const path of ["/srv/www/up/.htaccess", "/srv/www/.user.ini", "/inetpub/wwwroot/Web.config"]) assert.match(rate(path), /^high: new web server configuration/, path);
    // A .py or .pl runs through CGI only when executable: rated by its execute bit.
    assert.match(rate("/srv/www/cgi-bin/x.py", "0755"), /^high: new executable file/);
    assert.match(rate("/var/tmp/.x/kworker", "0700"), /^high: new executable file/);
    assert.match(rate("/srv/app/lib/util.py"), /^low/);
    assert.match(rate("/srv/www/logo.png"), /^low/);
    assert.match(rate("/srv/www/php"), /^low/, "a name without the extension is not a script");
    for (const path of ["/etc/cron.daily/x", "/etc/crontab", "/var/spool/cron/crontabs/www-data", "/etc/profile.d/z.sh", "/home/u/.bashrc", "/home/u/.config/systemd/user/x.service", "/etc/pam.d/sshd2", "/etc/ssh/sshd_config.d/99.conf", "/home/u/.ssh/authorized_keys2", "/etc/rc.local", "/etc/rc3.d/S99x"]) {
      assert.match(rate(path), /^high: new entry in a persistence location: /, path);
    }
    // `systemctl enable` is a new link in a .wants directory.
    assert.match(rate("/etc/systemd/system/multi-user.target.wants/x.service", "0777", "symlink"), /^high: new entry in a persistence location: a systemd unit/);
    // A new directory is rated by what it holds; text shown at login runs nothing.
    assert.match(rate("/etc/cron.d/sub", "0755", "dir"), /^low/);
    assert.match(rate("/etc/motd"), /^low/);
    assert.match(rate("/etc/motd.d/x"), /^low/);
  });

  it("rates a script in a persistence location switched on by chmod +x, or opened to others, like a new one", () => {
    const motd = "/etc/update-motd.d/50-landscape";
    const on = classify(changed(entry(motd, { mode: "0644" }), entry(motd, { mode: "0755", ctime: "2" })));
    assert.deepEqual([on.severity, on.reason], ["high", "execute permission added in a persistence location: run as root by pam_motd at every login (T1037)"]);
    assert.equal(classify(changed(entry("/srv/www/up/a.jpg", { mode: "0644" }), entry("/srv/www/up/a.jpg", { mode: "0755", ctime: "2" }))).severity, "high");
    const tab = "/var/spool/cron/crontabs/root";
    assert.match(classify(changed(entry(tab, { mode: "0600" }), entry(tab, { mode: "0666", ctime: "2" }))).reason, /^group\/other write permission added in a persistence location/);
    const edited = classify(changed(entry("/etc/sudoers.d/90-x", { mode: "0440" }), entry("/etc/sudoers.d/90-x", { mode: "0440", sha256: "b".repeat(64) })));
    assert.deepEqual([edited.severity, edited.reason], ["high", "content changed in a persistence location: grants root through sudo (T1548.003)"]);
    // Metadata only, with no new execute or write bit: still medium.
    assert.equal(classify(changed(entry(motd, { mode: "0755" }), entry(motd, { mode: "0755", mtime: "2" }))).severity, "medium");
  });

  it("does not invent changes for an entry that could not be examined", () => {
    const unknown = entry("/x", { type: "unknown", status: "unreadable", error: "EIO", mode: "0000", sha256: null });
    assert.deepEqual(diffEntry(entry("/x"), unknown), { changes: [], content: false });
  });

  it("rates a same-size file not hashed now whose times moved as changed content, never metadata only (ASVS 16.5.3)", () => {
    // A trojan written at the same size and kept `touch`ed while it is read ends up changed-during-scan, with no hash.
    const racing = (p: string, mode: string): FileEntry => entry(p, { mode, status: "changed-during-scan", sha256: null, mtime: "2", ctime: "2" });
    const d = changed(entry("/etc/passwd", { mode: "0644" }), racing("/etc/passwd", "0644"));
    assert.ok(d.content && d.changes.includes("content not verified"), d.changes.join(", "));
    assert.equal(classify(d).severity, "high");
    assert.match(classify(d).reason, /could not be verified/);
    const so = "/usr/lib/x86_64-linux-gnu/security/pam_unix.so";
    assert.equal(classify(changed(entry(so, { mode: "0644" }), racing(so, "0644"))).severity, "critical", "a patched 0644 library stays critical");
    // Unhashed in the baseline, hashed now, and written to since: nothing says the content is the same.
    assert.equal(classify(changed(entry("/srv/x", { sha256: null, status: "unreadable", error: "EIO" }), entry("/srv/x", { ctime: "2" }))).severity, "high");
  });

  // Red team 36, finding 2: an ACL entry on a directory moves only its ctime, which was never compared.
  it("notes a listed directory's ctime only when its mtime did not move, and rates it high in a home or persistence location", () => {
    const dir = (path: string, over: Partial<FileEntry> = {}): FileEntry => entry(path, { type: "dir", mode: "0775", uid: 1000, gid: 1000, size: 4096, sha256: null, ...over });
    const home = dir("/home/alice");
    assert.deepEqual(diffEntry(home, { ...home, mtime: "2", ctime: "2", size: 8192 }).changes, [], "an entry added: reported per entry");
    assert.deepEqual(diffEntry(home, { ...home, ctime: "2" }).changes, ["ctime"], "an attribute: nothing added or removed");
    const acl = classify(changed(home, { ...home, ctime: "2" }));
    assert.deepEqual([acl.severity, acl.reason], ["high", "its ctime changed with no recorded cause: an unrecorded attribute (a file capability, an ACL entry) or its links, in a persistence location: a home directory (or its .ssh, .config or .local): whoever may write it may put a shell start-up file or key of their own there (T1546.004, T1098.004)"]);
    assert.equal(classify(changed(dir("/srv/data"), dir("/srv/data", { ctime: "2" }))).severity, "medium", "elsewhere: metadata");
    // A file system mounted over a home directory moves its times and owner too: the mount is what the reason names.
    const mounted = classify(changed({ ...home, mount: false }, { ...home, mount: true, uid: 0, ino: "2", ctime: "2" }));
    assert.match(mounted.reason, /^a file system was mounted over this directory/);
  });

  it("rates a file hashed in the baseline and past a byte limit now as changed content, though nothing moved", () => {
    const big = entry("/srv/db", { status: "too-large-to-hash", error: "FILE_SIZE_LIMIT", sha256: null });
    assert.equal(classify(changed(entry("/srv/db"), big)).severity, "high");
    // Past the limit on both sides with nothing moved: no write since, and the scan itself reports it (high).
    assert.deepEqual(diffEntry({ ...big }, big), { changes: [], content: false });
    // Unreadable now (a compare run with fewer rights) with nothing moved: listed as unreadable, not as changed.
    assert.deepEqual(diffEntry(entry("/srv/db"), entry("/srv/db", { status: "unreadable", error: "EACCES", sha256: null })), { changes: [], content: false });
  });

  it("ignores directory size and times, which move whenever an entry is added", () => {
    const d = entry("/d", { type: "dir", sha256: null });
    assert.deepEqual(diffEntry(d, { ...d, size: 4096, mtime: "9", ctime: "9" }).changes, []);
    assert.deepEqual(diffEntry(d, { ...d, mode: "0777" }).changes, ["mode 0755→0777"]);
  });

  // ASVS 16.5.3. Was: a directory the scan could not list was one low "unreadable" whatever was planted in it.
  it("compares the times and inode of a directory not listable on either side, and rates a move high as entries not verified", () => {
    const d = entry("/var/spool/cron/crontabs", { type: "dir", mode: "1730", sha256: null });
    const denied = { ...d, status: "unreadable" as const, error: "EACCES" };
    for (const [before, after] of [[denied, denied], [denied, d], [d, denied]] as const) {
      assert.deepEqual(diffEntry(before, { ...after }).changes, [], "nothing moved: nothing to report");
      const moved = changed(before, { ...after, mtime: "9", ctime: "9" });
      assert.deepEqual(moved.changes, ["mtime", "ctime", "entries not verified"]);
      assert.deepEqual([classify(moved).severity, classify(moved).reason], ["high", "directory not listable and changed since: entries added or removed in it are not verified in a persistence location: a user's crontab or at job, run on a schedule (T1053.003, T1053.002)"]);
    }
    assert.deepEqual(diffEntry(denied, { ...denied, ino: "8" }).changes, ["inode", "entries not verified"], "replaced by another directory");
    assert.equal(classify(changed(entry("/srv/d", { type: "dir", sha256: null, status: "unreadable" }), entry("/srv/d", { type: "dir", sha256: null, status: "unreadable", mtime: "9" }))).severity, "high");
  });

  // ASVS 16.5.3. Was: a raw-disk node planted in a web root was a low "new entry" (and an info special file).
  it("rates a device node outside /dev high when added, critical when swapped in, high when replaced or opened up", () => {
    const added = (e: FileEntry): DiffEvent => ({ kind: "added", path: e.path, before: null, after: e, changes: [], content: true });
    const node = (path: string, over: Partial<FileEntry> = {}): FileEntry => entry(path, { type: "block", mode: "0660", gid: 6, size: 0, sha256: null, ...over });
    const planted = classify(added(node("/srv/www/up/.cache", { mode: "0666" })));
    assert.deepEqual([planted.severity, planted.reason], ["high", "new device node outside /dev (raw access to a disk or memory for whoever its mode lets open it)"]);
    assert.equal(classify(added(node("/srv/chroot/dev/mem", { type: "char", mode: "0600" }))).severity, "high", "a chroot's /dev is not /dev");
    assert.equal(classify(added(node("/dev/sdb"))).severity, "low", "new disks appear under /dev");
    const swapped = classify(changed(entry("/srv/www/logo.png", { mode: "0644" }), node("/srv/www/logo.png", { mode: "0666" })));
    assert.deepEqual([swapped.severity, swapped.reason], ["critical", "swapped for a device node outside /dev (file→block)"]);
    const chrootNull = node("/srv/chroot/dev/null", { type: "char", mode: "0600", gid: 0 });
    for (const over of [{ mode: "0666" }, { ino: "8" }, { uid: 1000 }, { mode: "0660", gid: 1000 }]) {
      assert.equal(classify(changed(chrootNull, { ...chrootNull, ...over, ctime: "2" })).severity, "high", JSON.stringify(over));
    }
    assert.equal(classify(changed(chrootNull, { ...chrootNull, mode: "0400", ctime: "2" })).severity, "medium", "access taken away");
    assert.equal(classify(changed(node("/dev/sda"), node("/dev/sda", { mode: "0666", ctime: "2" }))).severity, "medium", "/dev is out of this rule");
  });

  // ASVS 16.5.3. Was: handing root's .bashrc to uid 1000, or /root made 0777, was medium "metadata changed".
  it("rates a persistence file or a home directory handed to another user or writable group, or opened to others, high", () => {
    const rate = (before: FileEntry, over: Partial<FileEntry>): string => {
      const c = classify(changed(before, { ...before, ...over, ctime: "2" }));
      return `${c.severity}: ${c.reason}`;
    };
    assert.match(rate(entry("/root/.bashrc", { mode: "0644" }), { uid: 1000, gid: 1000 }), /^high: owner changed to a user other than root in a persistence location: a shell start-up file/);
    assert.match(rate(entry("/home/alice/.profile", { mode: "0644", uid: 1000, gid: 1000 }), { uid: 1001 }), /^high: owner changed to a user other than root/);
    assert.match(rate(entry("/var/spool/cron/crontabs/alice", { mode: "0620", uid: 1000, gid: 102 }), { gid: 1000 }), /^high: group-writable entry handed to another group in a persistence location/);
    assert.match(rate(entry("/home/alice", { type: "dir", mode: "0750", uid: 1000, gid: 1000, sha256: null }), { uid: 1001 }), /^high: owner changed to a user other than root in a persistence location: a home directory/);
    for (const path of ["/home", "/root/.config", "/home/alice/.config/systemd", "/home/alice/.local", "/home/alice/.local/share/systemd", "/srv/git/.ssh"]) {
      assert.match(rate(entry(path, { type: "dir", mode: "0755", sha256: null }), { mode: "0775" }), /^high: group\/other write permission added in a persistence location: a home directory/, path);
    }
    // To root, or to a group that may not write: high all the same, as any ctime move in a persistence location (an ACL
    // entry set with it is not recorded; red team 36, finding 3).
    assert.match(rate(entry("/home/alice/.bashrc", { mode: "0644", uid: 1000 }), { uid: 0 }), /^high: its mode, owner or group changed, .* in a persistence location: a shell start-up file/);
    assert.match(rate(entry("/root/.bashrc", { mode: "0644" }), { gid: 1000 }), /^high: its mode, owner or group changed/);
    assert.match(rate(entry("/root/.bashrc", { mode: "0644" }), {}), /^high: its ctime changed with no recorded cause: an unrecorded attribute \(a file capability, an ACL entry\) or its links, in a persistence location/);
    // Outside homes and persistence locations: medium, as documented.
    assert.equal(rate(entry("/srv/www", { type: "dir", mode: "0755", sha256: null }), { mode: "0777" }).split(":")[0], "medium");
    assert.equal(rate(entry("/home/alice/public_html", { type: "dir", mode: "0755", sha256: null }), { uid: 33 }).split(":")[0], "medium");
    assert.equal(rate(entry("/tmp", { type: "dir", mode: "1777", sha256: null }), { mode: "0777" }).split(":")[0], "medium");
  });

  it("rates new files where the system or a login runs them without an execute bit high (ASVS 16.5.3)", () => {
    const added = (path: string): string => {
      const c = classify({ kind: "added", path, before: null, after: entry(path, { mode: "0644" }), changes: [], content: true });
      return `${c.severity}: ${c.reason}`;
    };
    const cases: Array<[string, string]> = [
      ["/root/.ssh/rc", "T1037"],
      ["/home/alice/.bash_aliases", "T1546.004"],
      ["/usr/lib/udev/rules.d/99-x.rules", "T1546.017"],
      ["/etc/apt/apt.conf", "T1546.016"],
      ["/etc/logrotate.conf", "T1053"],
      ["/usr/local/lib/python3.12/dist-packages/zz.pth", "T1546.018"],
      ["/srv/app/venv/lib/python3.12/site-packages/sitecustomize.py", "T1546.018"],
    ];
    for (const [path, technique] of cases) assert.match(added(path), new RegExp(`^high: new entry in a persistence location: .*\\(${technique.replace(".", "\\.")}\\)$`), path);
    // Siblings of those (ASVS 16.5.3): every directory of systemd's unit search paths that survives a reboot, udev's
    // /usr/local rules, and a sitecustomize or usercustomize in any sys.path entry, the standard library's zip included.
    const siblings: Array<[string, string]> = [
      ["/usr/local/lib/udev/rules.d/99-x.rules", "T1546.017"],
      ["/etc/systemd/system.control/x.service.d/50-x.conf", "T1543.002"],
      ["/etc/systemd/system.attached/x.service", "T1543.002"],
      ["/etc/xdg/systemd/user/x.service", "T1543.002"],
      ["/usr/local/lib/systemd/user/x.service", "T1543.002"],
      ["/usr/share/systemd/user/default.target.wants/x.service", "T1543.002"],
      ["/usr/local/share/systemd/user/x.service", "T1543.002"],
      ["/root/.config/systemd/user.control/x.service", "T1543.002"],
      ["/home/alice/.local/share/systemd/user/default.target.wants/x.service", "T1543.002"],
      ["/usr/local/lib/python3.12/sitecustomize.py", "T1546.018"],
      ["/usr/lib64/python3.12/usercustomize.py", "T1546.018"],
      ["/opt/python/lib/python3.13t/lib-dynload/sitecustomize.py", "T1546.018"],
      ["/usr/local/lib/python312.zip", "T1546.018"],
    ];
    for (const [path, technique] of siblings) assert.match(added(path), new RegExp(`^high: new entry in a persistence location: .*\\(${technique.replace(".", "\\.")}\\)$`), path);
    // Only a .pth at the top of site-packages is read at start-up; a module is not a hook.
    assert.match(added("/usr/lib/python3/dist-packages/pkg/zz.pth"), /^low/);
    assert.match(added("/usr/local/lib/python3.12/json/sitecustomize.py"), /^low/, "a module of a package, not a sys.path entry's");
    assert.match(added("/usr/local/lib/python3.12/zz.pth"), /^low/, "no .pth is read from the standard library directory");
    assert.match(added("/home/alice/.local/share/systemd/timers/x.service"), /^low/);
    assert.match(added("/usr/lib/python3/dist-packages/requests/api.py"), /^low/);
    assert.match(added("/home/alice/.ssh/rc.bak"), /^low/);
  });
});

describe("compareBaseline on a real tree", () => {
  const signer = testSigner();
  const clock = new ManualClock();
  let root: string;
  let tree: string;
  let baseline: string;

  beforeEach(async () => {
    root = tempDir("bulwark-compare-");
    tree = join(root, "tree");
    mkdirSync(join(tree, "sub"), { recursive: true });
    writeFileSync(join(tree, "keep"), "same\n");
    writeFileSync(join(tree, "edit"), "before\n");
    writeFileSync(join(tree, "perm"), "p\n", { mode: 0o644 });
    writeFileSync(join(tree, "times"), "t\n");
    writeFileSync(join(tree, "gone"), "g\n");
    writeFileSync(join(tree, "sub/inner"), "i\n");
    symlinkSync("keep", join(tree, "link"));
    baseline = join(root, "b.jsonl");
    await createBaseline({ paths: [tree], out: baseline, signer, clock });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const byId = (fs: Array<{ id: string; severity: string; evidence: Record<string, unknown> }>, id: string, severity: string): string[] => {
    const f = fs.find((x) => x.id === id && x.severity === severity);
    return f ? (f.evidence["entries"] as Array<{ path: string }>).map((e) => e.path.slice(tree.length)) : [];
  };

  it("refuses a directory given as the baseline as bad input naming it (not an EISDIR crash)", async () => {
    await assert.rejects(compareBaseline({ baseline: tree, signer }), { code: "BULWARK_ERR_BASELINE_FORMAT", message: new RegExp(`${tree}: it is a directory`) });
    await assert.rejects(compareBaseline({ baseline: join(root, "absent"), signer }), { code: "BULWARK_ERR_BASELINE_FORMAT" });
  });

  it("reports nothing when nothing changed", async () => {
    const r = await compareBaseline({ baseline, signer });
    assert.deepEqual(r.findings, []);
    assert.equal(r.integrity.trusted, true);
  });

  it("reports created, modified, chmod-ed, touched, removed and retargeted entries", async () => {
    writeFileSync(join(tree, "new"), "n\n");
    writeFileSync(join(tree, "edit"), "after!\n");
    chmodSync(join(tree, "perm"), 0o600);
    utimesSync(join(tree, "times"), new Date("2020-01-01"), new Date("2020-01-01"));
    unlinkSync(join(tree, "gone"));
    unlinkSync(join(tree, "link"));
    symlinkSync("edit", join(tree, "link"));
    const r = await compareBaseline({ baseline, signer });
    assert.deepEqual(byId(r.findings, "files.added", "low"), ["/new"]);
    assert.deepEqual(byId(r.findings, "files.removed", "medium"), ["/gone"]);
    assert.deepEqual(byId(r.findings, "files.changed", "high"), ["/edit", "/link"]);
    assert.deepEqual(byId(r.findings, "files.changed", "medium"), ["/perm", "/times"]);
    const medium = r.findings.find((f) => f.id === "files.changed" && f.severity === "medium");
    const perm = (medium?.evidence["entries"] as Array<{ changes: string[] }>)[0];
    assert.ok(perm?.changes.includes("mode 0644→0600"));
    assert.deepEqual(r.totals, { added: 1, removed: 1, changed: 4, scanned: 9 });
  });

  it("compares only the PATHs given, without calling the rest removed", async () => {
    writeFileSync(join(tree, "edit"), "after!\n");
    writeFileSync(join(tree, "sub/inner"), "changed\n");
    const r = await compareBaseline({ baseline, signer, paths: [join(tree, "sub")] });
    assert.deepEqual(r.roots, [join(tree, "sub")]);
    assert.deepEqual(byId(r.findings, "files.changed", "high"), ["/sub/inner"]);
    assert.equal(r.findings.length, 1);
  });

  // ASVS 16.5.3. Was: every baseline entry was out of scope and every file "added" (low): the genuine baseline of another
  // tree swapped in passed a trojaned script as new, exit 0.
  it("refuses a PATH the baseline did not record (outside its roots, above one, or under a recorded exclusion) before scanning", async () => {
    for (const path of [join(root, "elsewhere"), root, "/"]) {
      await assert.rejects(compareBaseline({ baseline, signer, paths: [path] }), (error: Error & { code?: string }) => {
        assert.equal(error.code, "BULWARK_ERR_FILES_PATH");
        assert.equal(error.message, `cannot compare ${path} with the baseline ${baseline}: it did not record that path, only ${tree}; give PATHs it covers, or the baseline of that tree`);
        return true;
      });
    }
    const b2 = join(root, "excl.jsonl");
    await createBaseline({ paths: [tree], out: b2, signer, clock, exclude: [join(tree, "sub")] });
    await assert.rejects(compareBaseline({ baseline: b2, signer, paths: [join(tree, "sub", "inner"), join(tree, "keep")] }), {
      code: "BULWARK_ERR_FILES_PATH",
      message: `cannot compare ${join(tree, "sub", "inner")} with the baseline ${b2}: it did not record that path, only ${tree} (excluding ${join(tree, "sub")}); give PATHs it covers, or the baseline of that tree`,
    });
    // A PATH inside a recorded root, the root itself, and several: compared as before.
    assert.deepEqual((await compareBaseline({ baseline, signer, paths: [tree, join(tree, "keep")] })).findings, []);
  });

  it("reports a whole recorded root that disappeared as removed", async () => {
    rmSync(join(tree, "sub"), { recursive: true });
    const r = await compareBaseline({ baseline, signer, paths: [join(tree, "sub")] });
    assert.deepEqual(byId(r.findings, "files.removed", "medium"), ["/sub", "/sub/inner"]);
  });

  it("leaves excluded paths out of the baseline and the compare, by default with the recorded exclusions", async () => {
    const b2 = join(root, "excl.jsonl");
    await createBaseline({ paths: [tree], out: b2, signer, clock, exclude: [join(tree, "sub")] });
    writeFileSync(join(tree, "sub/inner"), "changed\n");
    writeFileSync(join(tree, "sub/added"), "a\n");
    const r = await compareBaseline({ baseline: b2, signer });
    assert.deepEqual(r.header.exclude, [join(tree, "sub")]);
    assert.deepEqual(r.findings, []);
    // Excluding more at compare time leaves out what is new there; what the baseline recorded there is still compared,
    // looked up by name (was: out of scope, a changed entry unreported). The exclusion itself is not compared.
    const narrower = await compareBaseline({ baseline, signer, exclude: [join(tree, "sub")] });
    assert.deepEqual(narrower.findings.map((f) => [f.id, f.severity]), [["files.changed", "high"]], JSON.stringify(narrower.findings));
    assert.deepEqual(byId(narrower.findings, "files.changed", "high"), ["/sub/inner"]);
    assert.equal(narrower.totals.scanned, 8, "the seven entries scanned and the one looked up");
    // The excluded directory itself: its times moved by what came and went (sub/added) are not reported; made
    // world-writable, it is, and then by its times too (what it holds is not verified).
    const changesOf = (findings: typeof narrower.findings): string[] =>
      findings.flatMap((f) => (f.evidence["entries"] as Array<{ path: string; changes: string[] }>).filter((x) => x.path === join(tree, "sub")).flatMap((x) => x.changes));
    assert.deepEqual(changesOf(narrower.findings), []);
    chmodSync(join(tree, "sub"), 0o777);
    const opened = await compareBaseline({ baseline, signer, exclude: [join(tree, "sub")] });
    assert.deepEqual(changesOf(opened.findings), ["mode 0755→0777", "mtime", "ctime", "entries not verified"], JSON.stringify(opened.findings));
    chmodSync(join(tree, "sub"), 0o755);
    // Removed there: reported as removed; the exclusion gone: everything recorded under it is removed.
    rmSync(join(tree, "sub/inner"));
    assert.deepEqual(byId((await compareBaseline({ baseline, signer, exclude: [join(tree, "sub")] })).findings, "files.removed", "medium"), ["/sub/inner"]);
    rmSync(join(tree, "sub"), { recursive: true });
    writeFileSync(join(tree, "sub"), "now a file\n");
    assert.deepEqual(byId((await compareBaseline({ baseline, signer, exclude: [join(tree, "sub")] })).findings, "files.removed", "medium"), ["/sub/inner"]);
  });

  it("records a mount point but does not enter it with oneFileSystem", async () => {
    const { nodeScanFS } = await import("./scan.ts");
    const fs = {
      ...nodeScanFS,
      // The mock puts tree/sub on another device, as a mounted file system would be.
      lstat: async (p: string) => {
        const s = await nodeScanFS.lstat(p);
        return p === join(tree, "sub") ? Object.assign(Object.create(Object.getPrototypeOf(s) as object) as typeof s, s, { dev: s.dev + 1n }) : s;
      },
    };
    const b2 = join(root, "xdev.jsonl");
    const made = await createBaseline({ paths: [tree], out: b2, signer, clock, oneFileSystem: true, fs });
    const text = (await import("node:fs")).readFileSync(b2, "utf8");
    assert.ok(text.includes(`"${join(tree, "sub")}"`));
    assert.ok(!text.includes("sub/inner"));
    assert.equal(made.entries, 8);
    const r = await compareBaseline({ baseline: b2, signer, fs });
    assert.deepEqual(r.findings, []);
  });

  it("keeps evidence bounded for thousands of changes while counting all of them", async () => {
    mkdirSync(join(tree, "many"));
    for (let i = 0; i < 1500; i++) writeFileSync(join(tree, "many", `f${i}`), `${i}`);
    const r = await compareBaseline({ baseline, signer });
    const added = r.findings.find((f) => f.id === "files.added");
    assert.equal(added?.evidence["count"], 1501);
    assert.equal((added?.evidence["entries"] as unknown[]).length, EVIDENCE_LIMIT);
    assert.equal(added?.evidence["omitted"], 1501 - EVIDENCE_LIMIT);
    assert.match(added?.detail ?? "", /and 1496 more/);
  });

  it("names a file past the byte limit high, in the compare and in the baseline, and calls its lost hash a change", async () => {
    // Hashed in the baseline, past --max-file-bytes now: not "unchanged".
    const r = await compareBaseline({ baseline, signer, maxFileBytes: 3 });
    assert.ok(byId(r.findings, "files.too-large-to-hash", "high").includes("/edit"));
    assert.ok(byId(r.findings, "files.changed", "high").includes("/edit"));
    // Recorded past the limit and compared with the same limit, nothing moved: only the scan's own finding remains.
    const small = join(root, "small.jsonl");
    const made = await createBaseline({ paths: [tree], out: small, signer, clock, maxFileBytes: 3 });
    assert.ok(made.findings.some((f) => f.id === "files.too-large-to-hash" && f.severity === "high"));
    const again = await compareBaseline({ baseline: small, signer, maxFileBytes: 3 });
    assert.ok(byId(again.findings, "files.too-large-to-hash", "high").includes("/edit"));
    assert.deepEqual(byId(again.findings, "files.changed", "high"), []);
  });

  it("reports special files, symlink loops and unreadable entries found in the scan", async () => {
    symlinkSync("l2", join(tree, "l1"));
    symlinkSync("l1", join(tree, "l2"));
    const r = await compareBaseline({
      baseline,
      signer,
      fs: {
        ...(await import("./scan.ts")).nodeScanFS,
        open: async () => {
          throw Object.assign(new Error("io"), { code: "EIO" });
        },
      },
    });
    assert.deepEqual(byId(r.findings, "files.symlink-loop", "info"), ["/l1", "/l2"]);
    assert.ok(byId(r.findings, "files.unreadable", "low").includes("/keep"));
    // Unreadable content is not compared, so an unreadable unchanged file is not "changed".
    assert.deepEqual(byId(r.findings, "files.changed", "high"), []);
  });
});
