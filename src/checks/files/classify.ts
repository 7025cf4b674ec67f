// How serious a difference is. A changed program in a system binary or library directory is what a
// rootkit or a trojaned package looks like (Drupal.org had to check its binaries, seed 000).
import type { Severity } from "../finding.ts";
import { UNVERIFIED_CONTENT, type DiffEvent } from "./compare.ts";
import { isExecutableMode, isSetID, isWithin, modeBits, type FileEntry } from "./entry.ts";

/** Directories whose files are run as programs by the system and its administrators. */
export const SYSTEM_BINARY_DIRS: readonly string[] = [
  "/bin",
  "/sbin",
  "/usr/bin",
  "/usr/sbin",
  "/usr/local/bin",
  "/usr/local/sbin",
  "/usr/libexec",
  "/usr/local/libexec",
];

/**
 * Library directories: /lib, /lib32, /lib64, /libx32 and the same under /usr and /usr/local. Shared
 * objects there are mode 0644 on Debian yet run in every process that loads them (an LD_PRELOAD-less
 * rootkit replaces libc or a PAM module), so there a ".so" name counts as executable too.
 */
const SYSTEM_LIBRARY_DIR = /^\/(?:usr\/(?:local\/)?)?lib(?:32|64|x32)?\//;
const SHARED_OBJECT = /\.so(?:\.\d+)*$/;

/**
 * Trees only root should be able to write: programs, libraries, configuration, the boot loader.
 * A file or directory there that becomes group- or other-writable (chmod o+w /etc/passwd, 0777 on
 * /bin/bash) lets any local user replace what root runs or reads, without changing a byte today.
 */
export const WRITE_PROTECTED_DIRS: readonly string[] = ["/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/boot"];

/**
 * Where a new file gives its writer a way back in, each with why (the MITRE ATT&CK technique): what the
 * system runs in every process, on a schedule, at boot or at a login, with root's rights, or what lets a key
 * or a login in. A string is a file or directory (itself and everything below it); a pattern is matched
 * against the whole path, for places under any home directory. Paths are matched as recorded: a tree
 * scanned where it is mounted elsewhere (/mnt/disk/etc/cron.d) is not matched, as for SYSTEM_BINARY_DIRS.
 * /etc/motd is not one: a text shown at login runs nothing (the scripts of /etc/update-motd.d do).
 */
export const PERSISTENCE_LOCATIONS: readonly { at: string | RegExp; why: string }[] = [
  // T1574.006: the dynamic linker loads every library named there into every dynamically linked process.
  { at: "/etc/ld.so.preload", why: "loaded into every dynamically linked process, root's included (T1574.006)" },
  { at: "/etc/ld.so.conf", why: "library search path of every program (T1574.006)" },
  { at: "/etc/ld.so.conf.d", why: "library search path of every program (T1574.006)" },
  // T1053.003: /etc/crontab, cron.d and cron.hourly…monthly run as root; anacrontab runs the periodic ones.
  { at: /^\/etc\/(?:cron[^/]*|anacrontab)(?:\/|$)/, why: "run by cron on a schedule, as root for the system tables (T1053.003)" },
  // Debian keeps users' crontabs in /var/spool/cron/crontabs and at jobs in /var/spool/cron/atjobs.
  { at: "/var/spool/cron", why: "a user's crontab or at job, run on a schedule (T1053.003, T1053.002)" },
  { at: "/etc/sudoers", why: "grants root through sudo (T1548.003)" },
  { at: "/etc/sudoers.d", why: "grants root through sudo (T1548.003)" },
  // T1543.002: a unit there (or its enabling link in a .wants directory) is started by systemd, as root for system units.
  ...["/etc/systemd/system", "/etc/systemd/user", "/lib/systemd/system", "/lib/systemd/user", "/usr/lib/systemd/system", "/usr/lib/systemd/user", "/usr/local/lib/systemd/system"].map(
    (at) => ({ at, why: "a systemd unit, started at boot or login (T1543.002)" }),
  ),
  { at: /^\/(?:root|home\/[^/]+)\/\.config\/systemd\/user(?:\/|$)/, why: "a user's systemd unit, started at login (T1543.002)" },
  // T1546.004: shells read these at every login or interactive start.
  { at: "/etc/profile", why: "run by login shells (T1546.004)" },
  { at: "/etc/profile.d", why: "run by login shells (T1546.004)" },
  { at: "/etc/bash.bashrc", why: "run by interactive bash shells (T1546.004)" },
  { at: "/etc/zsh", why: "run by zsh shells (T1546.004)" },
  { at: /\/\.(?:bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zshenv|zprofile|zlogin)$/, why: "a shell start-up file, run at every login (T1546.004)" },
  // pam_motd runs each executable script there as root at every SSH and console login.
  { at: "/etc/update-motd.d", why: "run as root by pam_motd at every login (T1037)" },
  // T1037.004: SysV init scripts, their runlevel links, and rc.local run at boot.
  { at: "/etc/init.d", why: "run at boot (T1037.004)" },
  { at: "/etc/rc.local", why: "run at boot (T1037.004)" },
  { at: /^\/etc\/rc[0-6S]\.d(?:\/|$)/, why: "run at boot (T1037.004)" },
  // T1556.003: a line there decides how every login is authenticated (pam_exec, a module that accepts any password).
  { at: "/etc/pam.d", why: "decides how logins are authenticated (T1556.003)" },
  // T1098.004: a key there logs in as the user; sshd reads /etc/ssh for Include'd drop-ins and the key files they name.
  { at: /\/\.ssh\/authorized_keys2?$/, why: "a public key that logs in as this user (T1098.004)" },
  { at: "/etc/ssh", why: "sshd configuration and the key and CA files it names (T1098.004)" },
  // T1547.013: started at every desktop login.
  { at: "/etc/xdg/autostart", why: "started at every desktop login (T1547.013)" },
  { at: /^\/(?:root|home\/[^/]+)\/\.config\/autostart(?:\/|$)/, why: "started at the user's desktop login (T1547.013)" },
  // T1547.006: kernel modules named there are loaded at boot (and modprobe.d can run a command on a load).
  { at: "/etc/modules", why: "kernel modules loaded at boot (T1547.006)" },
  { at: "/etc/modules-load.d", why: "kernel modules loaded at boot (T1547.006)" },
  { at: "/etc/modprobe.d", why: "kernel module options and install commands (T1547.006)" },
];

/** Why `path` is a persistence location, or null when it is not one (PERSISTENCE_LOCATIONS). */
export function persistenceReason(path: string): string | null {
  const hit = PERSISTENCE_LOCATIONS.find(({ at }) => (typeof at === "string" ? isWithin(path, at) : at.test(path)));
  return hit?.why ?? null;
}

/**
 * Scripts a web server runs by their name alone, wherever they are in the tree it serves: PHP as Debian's
 * handler maps it (`.+\.ph(?:ar|p|tml)$`) and as older setups do (.php3–.php8, .pht),
 * JSP, ASP and ASP.NET handlers, ColdFusion, server-side includes (`<!--#exec cmd=…-->`) and .cgi. Other
 * interpreted scripts (.pl, .py, .rb, .sh) run through CGI, which executes the file: they need an execute bit,
 * and are rated by it. Matched without regard to case, as IIS does.
 */
const SERVER_SCRIPT = /\.(?:php[3-8]?|pht|phtml|phar|shtml|jspx?|aspx?|ashx|asmx|cfm|cgi)$/i;

/** Per-directory server configuration a web server reads from the tree it serves: `AddType application/x-httpd-php .jpg` makes every upload PHP. */
const SERVER_CONFIG = /(?:^|\/)(?:\.htaccess|\.user\.ini|web\.config)$/i;

export function isSystemPath(path: string): boolean {
  return SYSTEM_BINARY_DIRS.some((d) => isWithin(path, d)) || SYSTEM_LIBRARY_DIR.test(path);
}

/** True for a regular file that the system runs: executable or a shared object, in a system directory. */
export function isSystemExecutable(entry: FileEntry): boolean {
  if (entry.type !== "file") return false;
  if (SYSTEM_BINARY_DIRS.some((d) => isWithin(entry.path, d))) return isExecutableMode(entry.mode);
  if (SYSTEM_LIBRARY_DIR.test(entry.path)) return isExecutableMode(entry.mode) || SHARED_OBJECT.test(entry.path);
  return false;
}

export interface Classification {
  id: "files.added" | "files.removed" | "files.changed";
  severity: Severity;
  /** Why this severity, in a few words, for the evidence. */
  reason: string;
}

function gainedSetID(before: FileEntry, after: FileEntry): boolean {
  return (modeBits(after.mode) & 0o6000 & ~modeBits(before.mode)) !== 0;
}

/**
 * A setuid (setgid) file that now runs as another owner (group): a setuid helper of an ordinary user chowned to
 * root, u+s set again, is a root backdoor with no new byte and no new bit.
 */
function setIDOwnerChanged(before: FileEntry, after: FileEntry): boolean {
  const bits = modeBits(after.mode);
  return ((bits & 0o4000) !== 0 && before.uid !== after.uid) || ((bits & 0o2000) !== 0 && before.gid !== after.gid);
}

/**
 * A file or directory under WRITE_PROTECTED_DIRS that its group may write, handed to another group (chgrp, mode
 * kept): that whole group may now replace what root runs or reads, as after chmod g+w (unless anyone could already).
 */
function writableGroupChanged(before: FileEntry, after: FileEntry): boolean {
  if ((after.type !== "file" && after.type !== "dir") || before.type !== after.type) return false;
  if ((modeBits(before.mode) & 0o002) !== 0 || (modeBits(after.mode) & 0o020) === 0) return false;
  return before.gid !== after.gid && WRITE_PROTECTED_DIRS.some((d) => isWithin(after.path, d));
}

/**
 * A file or directory under WRITE_PROTECTED_DIRS taken from root by another owner, who may now rewrite it (unless
 * anyone could already: that was reported when it became so).
 */
function leftRoot(before: FileEntry, after: FileEntry): boolean {
  if ((after.type !== "file" && after.type !== "dir") || before.type !== after.type) return false;
  if ((modeBits(before.mode) & 0o002) !== 0) return false;
  return before.uid === 0 && after.uid !== 0 && WRITE_PROTECTED_DIRS.some((d) => isWithin(after.path, d));
}

/**
 * A file or directory in a persistence location newly writable by its group or by others (outside
 * WRITE_PROTECTED_DIRS: root's or a user's crontab, authorized_keys, a shell start-up file): whoever may
 * write it may add their own job or key.
 */
function gainedSharedWriteInPersistence(before: FileEntry, after: FileEntry): boolean {
  if ((after.type !== "file" && after.type !== "dir") || before.type !== after.type) return false;
  if (persistenceReason(after.path) === null) return false;
  return (modeBits(after.mode) & 0o022 & ~modeBits(before.mode)) !== 0;
}

/** A regular file that had no execute bit and has one now. */
function gainedExecute(before: FileEntry, after: FileEntry): boolean {
  return before.type === "file" && after.type === "file" && !isExecutableMode(before.mode) && isExecutableMode(after.mode);
}

/** Recorded changes that move a ctime by themselves (chmod, chown, chgrp); content changes are rated before. */
const EXPLAINS_CTIME = /^(?:mode|uid|gid) /;

/**
 * The ctime of a program moved and nothing recorded explains it: what changed is something the baseline does not
 * record — an extended attribute such as a file capability (`setcap cap_setuid+ep` makes it able to become root
 * with no setuid bit), an ACL, or its hard links. A new mtime or inode does not explain it: `touch -m` after setcap
 * sets both times, and a copy given the capability renamed over the program has a new inode and the same bytes.
 */
function hiddenChangeOfProgram(event: DiffEvent, after: FileEntry): boolean {
  if (after.type !== "file" || !isExecutableMode(after.mode) || !event.changes.includes("ctime")) return false;
  return !event.changes.some((c) => EXPLAINS_CTIME.test(c));
}

/** A directory that became a mount point: what the baseline recorded under it is hidden, and not entered with --one-file-system. */
function mountedOver(before: FileEntry, after: FileEntry): boolean {
  return before.type === "dir" && after.type === "dir" && before.mount === false && after.mount === true;
}

/** A file or directory under WRITE_PROTECTED_DIRS newly writable by its group or by others (symlinks are always 0777). */
function gainedSharedWrite(before: FileEntry, after: FileEntry): boolean {
  if ((after.type !== "file" && after.type !== "dir") || before.type !== after.type) return false;
  if (!WRITE_PROTECTED_DIRS.some((d) => isWithin(after.path, d))) return false;
  return (modeBits(after.mode) & 0o022 & ~modeBits(before.mode)) !== 0;
}

/**
 * Severity of one difference. changed: content of a system executable, a setuid/setgid file, or a
 * link or type swap in a system directory → critical; other content → high; metadata only → medium,
 * except a newly set setuid/setgid bit → high (chmod u+s on a shell is a backdoor without a new byte)
 * and group/other write newly allowed under WRITE_PROTECTED_DIRS → high (0666 on /etc/passwd is one too), and so
 * are a setuid/setgid file's new owner or group, a system file or directory taken from root or (group-writable)
 * handed to another group, a program whose ctime moved with no recorded cause (a file capability), and a directory
 * that became a mount point, and a file that gained an execute bit, or group/other write in a persistence location.
 * added: a new system executable, setuid/setgid file or link in a system directory, any entry but a directory in a
 * persistence location (PERSISTENCE_LOCATIONS), a server-side script or web server configuration (SERVER_SCRIPT,
 * SERVER_CONFIG), or any file with an execute bit → high, otherwise low. removed, or no longer examinable → medium.
 *
 * @example
 * classify({ kind: "changed", path: "/usr/bin/ls", before, after, changes: ["sha256"], content: true }).severity; // "critical"
 */
export function classify(event: DiffEvent): Classification {
  const { before, after } = event;
  if (event.kind === "added" && after) {
    if (isSystemExecutable(after)) return { id: "files.added", severity: "high", reason: "new executable in a system directory" };
    if (after.type === "file" && isSetID(after.mode)) return { id: "files.added", severity: "high", reason: "new setuid/setgid file" };
    // A name that cannot be examined (not UTF-8) in a system directory is a classic hiding trick.
    if (after.type === "unknown" && isSystemPath(after.path)) return { id: "files.added", severity: "high", reason: "new unexaminable entry in a system directory" };
    // A link named like a program, first in root's PATH (/usr/local/bin/sudo), runs what it points at.
    if (after.type === "symlink" && isSystemPath(after.path)) return { id: "files.added", severity: "high", reason: "new link in a system directory" };
    // A cron job, a sudoers drop-in, a key in authorized_keys, a unit or its enabling link: a way back in that
    // survives the intruder's session, as a new .so under /lib would (directories are rated by what they hold).
    const persistence = after.type === "dir" ? null : persistenceReason(after.path);
    if (persistence !== null) return { id: "files.added", severity: "high", reason: `new entry in a persistence location: ${persistence}` };
    if (after.type === "file" || after.type === "symlink") {
      // A changed index.php is already high (content changed); a new cache.php beside it is the webshell itself.
      if (SERVER_SCRIPT.test(after.path)) return { id: "files.added", severity: "high", reason: "new server-side script (a web server runs it by its name)" };
      if (SERVER_CONFIG.test(after.path)) return { id: "files.added", severity: "high", reason: "new web server configuration (can make any file in its directory run as a script)" };
    }
    // A new program anywhere (an implant in /var/tmp, a CGI script made executable in a web root) runs when called.
    if (after.type === "file" && isExecutableMode(after.mode)) return { id: "files.added", severity: "high", reason: "new executable file" };
    return { id: "files.added", severity: "low", reason: before ? "new entry (unexaminable when the baseline was recorded)" : "new entry" };
  }
  if (event.kind === "removed" || !before || !after) return { id: "files.removed", severity: "medium", reason: "entry removed" };
  // It may still be there, but nothing recorded of it can be checked: rated like a removal, which hides as much.
  if (after.type === "unknown") return { id: "files.changed", severity: "medium", reason: "no longer examinable: what the baseline recorded cannot be verified" };
  if (event.content) {
    // Content that could not be hashed now (or then) is rated as changed content: that is what it may be, and an
    // intruder chooses whether a file can be hashed (kept moving while read, padded past the size limit).
    const unverified = event.changes.includes(UNVERIFIED_CONTENT) ? " (content could not be verified by hash and may differ)" : "";
    if (isSystemExecutable(before) || isSystemExecutable(after)) return { id: "files.changed", severity: "critical", reason: `system executable changed${unverified}` };
    if ((before.type === "file" && isSetID(before.mode)) || (after.type === "file" && isSetID(after.mode))) {
      return { id: "files.changed", severity: "critical", reason: `setuid/setgid file changed${unverified}` };
    }
    if (isSystemPath(event.path) && (before.type !== after.type || before.type === "symlink")) {
      return { id: "files.changed", severity: "critical", reason: "link or file type swapped in a system directory" };
    }
    const persistence = persistenceReason(event.path);
    if (persistence !== null) return { id: "files.changed", severity: "high", reason: `content changed in a persistence location: ${persistence}${unverified}` };
    return { id: "files.changed", severity: "high", reason: `content changed${unverified}` };
  }
  if (after.type === "file" && gainedSetID(before, after)) return { id: "files.changed", severity: "high", reason: "setuid/setgid bit added" };
  if (after.type === "file" && setIDOwnerChanged(before, after)) return { id: "files.changed", severity: "high", reason: "setuid/setgid file now runs as another owner or group" };
  if (gainedSharedWrite(before, after)) return { id: "files.changed", severity: "high", reason: "group/other write permission added in a system directory" };
  if (gainedSharedWriteInPersistence(before, after)) {
    return { id: "files.changed", severity: "high", reason: `group/other write permission added in a persistence location: ${persistenceReason(after.path)}` };
  }
  // chmod +x is how a disabled update-motd.d or cron.daily script is switched on (run-parts runs executable files
  // only), and how an uploaded file becomes a CGI program: rated as a new executable file is.
  if (gainedExecute(before, after)) {
    const persistence = persistenceReason(after.path);
    return { id: "files.changed", severity: "high", reason: persistence === null ? "execute permission added" : `execute permission added in a persistence location: ${persistence}` };
  }
  if (leftRoot(before, after)) return { id: "files.changed", severity: "high", reason: "owner changed from root in a system directory" };
  if (writableGroupChanged(before, after)) return { id: "files.changed", severity: "high", reason: "group-writable entry handed to another group in a system directory" };
  if (hiddenChangeOfProgram(event, after)) {
    return { id: "files.changed", severity: "high", reason: "ctime of a program changed with no recorded cause: an unrecorded attribute (a file capability, an ACL) or its links" };
  }
  if (mountedOver(before, after)) {
    return { id: "files.changed", severity: "high", reason: "a file system was mounted over this directory: what the baseline recorded under it is hidden" };
  }
  return { id: "files.changed", severity: "medium", reason: "metadata changed" };
}
