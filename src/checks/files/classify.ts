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
 * that became a mount point. added: a new system executable, setuid/setgid file or link in a system directory →
 * high, otherwise low. removed, or no longer examinable → medium.
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
    return { id: "files.changed", severity: "high", reason: `content changed${unverified}` };
  }
  if (after.type === "file" && gainedSetID(before, after)) return { id: "files.changed", severity: "high", reason: "setuid/setgid bit added" };
  if (after.type === "file" && setIDOwnerChanged(before, after)) return { id: "files.changed", severity: "high", reason: "setuid/setgid file now runs as another owner or group" };
  if (gainedSharedWrite(before, after)) return { id: "files.changed", severity: "high", reason: "group/other write permission added in a system directory" };
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
