// How serious a difference is. A changed program in a system binary or library directory is what a
// rootkit or a trojaned package looks like (Drupal.org had to check its binaries, seed 000).
import type { Severity } from "../finding.ts";
import { DIR_REPLACED, UNVERIFIED_CONTENT, UNVERIFIED_ENTRIES, type DiffEvent } from "./compare.ts";
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
  // Every directory of the unit search paths that survives a reboot (systemd.unit(5); systemd 252's path-lookup): the
  // system's, with its .control (systemctl set-property) and .attached (portablectl) directories, and the user
  // manager's for every user — $XDG_CONFIG_DIRS (/etc/xdg) and $XDG_DATA_DIRS (/usr/local/share, /usr/share) included.
  ...[
    "/etc/systemd/system",
    "/etc/systemd/system.control",
    "/etc/systemd/system.attached",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/usr/local/lib/systemd/system",
    "/etc/systemd/user",
    "/etc/xdg/systemd/user",
    "/lib/systemd/user",
    "/usr/lib/systemd/user",
    "/usr/local/lib/systemd/user",
    "/usr/share/systemd/user",
    "/usr/local/share/systemd/user",
  ].map((at) => ({ at, why: "a systemd unit, started at boot or login (T1543.002)" })),
  // The user's own: $XDG_CONFIG_HOME/systemd/user(.control) and $XDG_DATA_HOME/systemd/user, each with its own .wants.
  {
    at: /^\/(?:root|home\/[^/]+)\/(?:\.config\/systemd\/user(?:\.control)?|\.local\/share\/systemd\/user)(?:\/|$)/,
    why: "a user's systemd unit, started at login (T1543.002)",
  },
  // T1546.004: shells read these at every login or interactive start.
  { at: "/etc/profile", why: "run by login shells (T1546.004)" },
  { at: "/etc/profile.d", why: "run by login shells (T1546.004)" },
  { at: "/etc/bash.bashrc", why: "run by interactive bash shells (T1546.004)" },
  { at: "/etc/zsh", why: "run by zsh shells (T1546.004)" },
  // .bash_aliases too: the stock .bashrc of Debian and Ubuntu (/etc/skel, copied into every new home) sources it.
  { at: /\/\.(?:bashrc|bash_aliases|bash_profile|bash_login|bash_logout|profile|zshrc|zshenv|zprofile|zlogin|zlogout)$/, why: "a shell start-up file, run at every login (T1546.004)" },
  // Shell code sourced without an execute bit: bash-completion sources every file there in each interactive bash (root's
  // too on Fedora and RHEL, from /etc/profile.d); Xsession sources Xsession.d and ~/.xsessionrc at every graphical login.
  ...["/etc/bash_completion.d", "/usr/share/bash-completion/completions"].map((at) => ({ at, why: "sourced by every interactive bash shell (T1546.004)" })),
  { at: "/etc/X11/Xsession.d", why: "sourced at every graphical login (T1546.004)" },
  { at: /^\/(?:root|home\/[^/]+)\/\.(?:xsessionrc|xsession|xprofile)$/, why: "sourced at the user's graphical login (T1546.004)" },
  // dhclient-script sources these as root at every DHCP event (a lease, a renewal: every boot and every few hours).
  { at: /^\/etc\/dhcp\/dhclient-(?:enter|exit)-hooks\.d(?:\/|$)/, why: "sourced as root by dhclient-script at every DHCP event (T1037)" },
  // systemd-tmpfiles runs as root at every boot: an f+/w+/L+ line writes or links any file (a sudoers drop-in, an
  // ld.so.preload). sysctl.d: kernel.core_pattern=|PROG runs PROG as root at every crash. binfmt.d registers an
  // interpreter run for every matching program (flag C: with a setuid program's credentials). None needs an execute bit.
  ...["/etc/tmpfiles.d", "/usr/lib/tmpfiles.d", "/usr/local/lib/tmpfiles.d", "/lib/tmpfiles.d"].map((at) => ({ at, why: "a tmpfiles.d rule, applied as root at every boot: it writes or links any file (T1037)" })),
  ...["/etc/sysctl.conf", "/etc/sysctl.d", "/usr/lib/sysctl.d", "/usr/local/lib/sysctl.d", "/lib/sysctl.d"].map((at) => ({ at, why: "kernel settings applied at boot: kernel.core_pattern=|PROG runs PROG as root at every crash (T1037)" })),
  ...["/etc/binfmt.d", "/usr/lib/binfmt.d", "/usr/local/lib/binfmt.d", "/lib/binfmt.d"].map((at) => ({ at, why: "an interpreter registered at boot and run for every matching program, with a setuid program's credentials under flag C (T1546)" })),
  // polkit runs the rules' JavaScript for every authorisation: `return polkit.Result.YES` lets any user pkexec as root.
  ...["/etc/polkit-1/rules.d", "/usr/share/polkit-1/rules.d", "/etc/polkit-1/localauthority", "/var/lib/polkit-1/localauthority"].map((at) => ({ at, why: "a polkit rule, which can let any user act as root through pkexec (T1548)" })),
  // sshd(8) runs ~/.ssh/rc through the user's shell at every SSH login (PermitUserRC defaults to yes); no execute bit needed.
  { at: /\/\.ssh\/rc$/, why: "run by sshd through the user's shell at every SSH login (T1037)" },
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
  // T1546.017: a rule's RUN+= runs as root when a device event matches it (a USB stick, `udevadm trigger`, every boot).
  // udev(7) reads /usr/local/lib/udev/rules.d beside /usr/lib/udev/rules.d.
  ...["/etc/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d", "/usr/local/lib/udev/rules.d"].map((at) => ({
    at,
    why: "a udev rule, whose RUN+= runs as root on a device event (T1546.017)",
  })),
  // T1546.016: APT::Update::Pre-Invoke and DPkg::Post-Invoke run a command as root at every apt run (unattended-upgrades runs apt daily).
  { at: "/etc/apt/apt.conf", why: "an APT hook, run as root at every apt run (T1546.016)" },
  { at: "/etc/apt/apt.conf.d", why: "an APT hook, run as root at every apt run (T1546.016)" },
  // logrotate runs prerotate and postrotate scripts as root, daily (from cron or a systemd timer).
  { at: "/etc/logrotate.conf", why: "a logrotate script, run as root every day (T1053)" },
  { at: "/etc/logrotate.d", why: "a logrotate script, run as root every day (T1053)" },
  // T1546.018: the `import` lines of a .pth file at the top of site-packages, and sitecustomize/usercustomize, run at every
  // start of that Python (unattended-upgrades' and every root cron job's included). Matched anywhere, virtualenvs too.
  { at: /\/(?:site|dist)-packages\/(?:[^/]+\.pth|(?:site|user)customize\.py)$/, why: "a Python start-up hook, run at every start of that Python (T1546.018)" },
  // site.py imports sitecustomize and usercustomize from any sys.path entry, the standard library directory and its
  // lib-dynload first (lib64 on Fedora; a "t" for free-threaded builds): a Python that has none there (pyenv's, a source
  // build's /usr/local/lib/python3.N, the official Docker images') runs the one planted there.
  { at: /\/lib(?:64)?\/python\d+\.\d+t?\/(?:lib-dynload\/)?(?:site|user)customize\.py$/, why: "a Python start-up hook, run at every start of that Python (T1546.018)" },
  // The standard library's zip (lib/python311.zip), first in sys.path and absent unless made: a module in it (sitecustomize,
  // or any standard one not frozen in) shadows the standard library's own at every start.
  { at: /\/lib(?:64)?\/python\d{2,}t?\.zip$/, why: "a Python standard library archive, imported before the standard library at every start (T1546.018)" },
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
 * Directories that hold a home's start-up files and keys: /home, a home (/root, /home/NAME), its .config and
 * .config/systemd, its .local, .local/share and .local/share/systemd (above its other user unit directory), and any
 * .ssh. Whoever may write one may rename a .bashrc, .ssh, .config or .local of their own over the one there, or add a
 * missing .bash_aliases (a sticky bit does not stop that), as surely as if the files were theirs.
 */
const HOME_DIRS = /^\/(?:root|home(?:\/[^/]+)?)(?:\/\.config(?:\/systemd)?|\/\.local(?:\/share(?:\/systemd)?)?)?$|\/\.ssh$/;

/**
 * Why who may write `entry` matters as for a persistence file: a persistence location (PERSISTENCE_LOCATIONS), or a
 * directory of HOME_DIRS; null otherwise.
 */
function persistenceWriters(entry: FileEntry): string | null {
  const reason = persistenceReason(entry.path);
  if (reason !== null || entry.type !== "dir" || !HOME_DIRS.test(entry.path)) return reason;
  return "a home directory (or its .ssh, .config or .local): whoever may write it may put a shell start-up file or key of their own there (T1546.004, T1098.004)";
}

/** A file that stayed a file, or a directory that stayed one, that others could not write (if they could, that was reported when it became so). */
function wasClosedToOthers(before: FileEntry, after: FileEntry): boolean {
  return (after.type === "file" || after.type === "dir") && before.type === after.type && (modeBits(before.mode) & 0o002) === 0;
}

/**
 * Handed to another group while its group may write it (chgrp, mode kept): that whole group may now replace it, as
 * after chmod g+w. Rated under WRITE_PROTECTED_DIRS and in persistence locations.
 */
function writableGroupChanged(before: FileEntry, after: FileEntry): boolean {
  return wasClosedToOthers(before, after) && (modeBits(after.mode) & 0o020) !== 0 && before.gid !== after.gid;
}

/** Taken from root by another owner, who may now rewrite it. Rated under WRITE_PROTECTED_DIRS. */
function leftRoot(before: FileEntry, after: FileEntry): boolean {
  return wasClosedToOthers(before, after) && before.uid === 0 && after.uid !== 0;
}

/**
 * Handed to an owner other than root (root's .bashrc to uid 1000, alice's to bob), who may now rewrite it whatever its
 * mode (an owner may chmod): bash checks no owner of the file it sources. Rated in persistence locations.
 */
function ownerChangedToUser(before: FileEntry, after: FileEntry): boolean {
  return wasClosedToOthers(before, after) && before.uid !== after.uid && after.uid !== 0;
}

/**
 * A file or directory in a persistence location (or a directory of HOME_DIRS) newly writable by its group or by
 * others (outside WRITE_PROTECTED_DIRS: root's or a user's crontab, authorized_keys, a shell start-up file, a home):
 * whoever may write it may add their own job or key.
 */
function gainedSharedWriteInPersistence(before: FileEntry, after: FileEntry): boolean {
  if ((after.type !== "file" && after.type !== "dir") || before.type !== after.type) return false;
  if (persistenceWriters(after) === null) return false;
  return (modeBits(after.mode) & 0o022 & ~modeBits(before.mode)) !== 0;
}

/**
 * A block or character device node outside /dev. It is opened by its mode wherever it lies: a node of the root disk
 * or of /dev/mem, mode 0666, in a web root lets the web shell and every local user read /etc/shadow and rewrite any
 * file — root for everyone, as a setuid shell is. Its device numbers are not recorded, so a replaced node is
 * seen by its inode.
 */
function isStrayDevice(entry: FileEntry): boolean {
  return (entry.type === "block" || entry.type === "char") && !isWithin(entry.path, "/dev");
}

/** A device node outside /dev replaced (new inode), handed to an owner other than root or to another group, or newly open to group or others. */
function strayDeviceOpened(before: FileEntry, after: FileEntry): boolean {
  if (!isStrayDevice(after) || before.type !== after.type) return false;
  return before.ino !== after.ino || (before.uid !== after.uid && after.uid !== 0) || (before.gid !== after.gid && (modeBits(after.mode) & 0o060) !== 0) || (modeBits(after.mode) & 0o066 & ~modeBits(before.mode)) !== 0;
}

/** A regular file that had no execute bit and has one now. */
function gainedExecute(before: FileEntry, after: FileEntry): boolean {
  return before.type === "file" && after.type === "file" && !isExecutableMode(before.mode) && isExecutableMode(after.mode);
}

/** Recorded changes that move a ctime by themselves (chmod, chown, chgrp); content changes are rated before. */
const MOVES_CTIME = /^(?:mode|uid|gid) /;

/**
 * The ctime of a program, of a file or directory in a persistence location, or of a home directory moved without a
 * content change. What moves a ctime and is not recorded — an extended attribute such as a file capability
 * (`setcap cap_setuid+ep` makes a program able to become root with no setuid bit), an ACL entry giving another user
 * write (`setfacl -m u:bob:rwx`, mode unchanged when the group bits already allow it), its hard links — may have
 * changed with it, and a recorded mode, owner or group change beside it does not rule that out: the intruder adds the
 * capability and a harmless-looking chmod, chgrp or dropped setuid bit. A new mtime or inode does not explain it
 * either: `touch -m` after setcap sets both times, and a copy given the capability renamed over the program has a new
 * inode and the same bytes. `persistence` is persistenceWriters(after). Returns the reason, or null. (A directory's
 * ctime is compared only when its mtime did not move: entries added or removed move both and are reported one by one;
 * compare.ts diffEntry.)
 */
function unrecordedChange(event: DiffEvent, after: FileEntry, persistence: string | null): string | null {
  const moved = event.changes.includes("ctime");
  const explained = event.changes.some((c) => MOVES_CTIME.test(c));
  if (!moved && !explained) return null;
  const cause = explained
    ? "its mode, owner or group changed, and an unrecorded attribute (a file capability, an ACL entry) set with it would move the same ctime"
    : "its ctime changed with no recorded cause: an unrecorded attribute (a file capability, an ACL entry) or its links";
  if (after.type === "file" && isExecutableMode(after.mode)) return `program: ${cause}`;
  if (after.type !== "file" && after.type !== "dir") return null;
  return persistence === null ? null : `${cause}, in a persistence location: ${persistence}`;
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
 * link or type swap in a system directory, or an entry swapped for a device node outside /dev → critical; other
 * content, and a directory not listable (then or now) whose mtime, ctime or inode moved → high; metadata only → medium,
 * except a newly set setuid/setgid bit → high (chmod u+s on a shell is a backdoor without a new byte)
 * and group/other write newly allowed under WRITE_PROTECTED_DIRS → high (0666 on /etc/passwd is one too), and so
 * are a setuid/setgid file's new owner or group, a system file or directory taken from root or (group-writable)
 * handed to another group, a program whose ctime moved with no recorded cause (a file capability), and a directory
 * that became a mount point, and a file that gained an execute bit, and in a persistence location (or a home
 * directory, HOME_DIRS) group/other write, an owner other than root, or (group-writable) another group, and a device
 * node outside /dev replaced, re-owned or opened to group or others.
 * added: a new system executable, setuid/setgid file or link in a system directory, a device node outside /dev, any
 * entry but a directory in a persistence location (PERSISTENCE_LOCATIONS), a server-side script or web server
 * configuration (SERVER_SCRIPT, SERVER_CONFIG), or any file with an execute bit → high, otherwise low. removed, or no
 * longer examinable → medium.
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
    if (isStrayDevice(after)) return { id: "files.added", severity: "high", reason: "new device node outside /dev (raw access to a disk or memory for whoever its mode lets open it)" };
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
  // The directory its lookups go through was swapped for something else during the compare (compare.ts): done so that
  // a setuid program trojaned in it is not examined, so rated as changed content is.
  if (after.type === "unknown" && after.error === DIR_REPLACED) {
    return { id: "files.changed", severity: "high", reason: "the directory holding it, not listable, was replaced during the compare: what the baseline recorded cannot be verified" };
  }
  // A directory on its path is no longer one (ENOTDIR: a file or a symlink stands there now; ELOOP: a symlink where a
  // directory was opened without following): the path was replaced above it, as a swapped directory is, and the
  // swap of an ancestor must not rate lower than the swap of the entry itself (a changed type, high).
  if (after.type === "unknown" && (after.error === "ENOTDIR" || after.error === "ELOOP")) {
    return { id: "files.changed", severity: "high", reason: `a directory on its path was replaced (${after.error}: a symlink or a file stands where a directory was): what the baseline recorded cannot be verified` };
  }
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
    // As a setuid file changed: whoever its mode lets open it reads and writes the disk or memory behind it.
    if (before.type !== after.type && isStrayDevice(after)) return { id: "files.changed", severity: "critical", reason: `swapped for a device node outside /dev (${before.type}→${after.type})` };
    const persistence = persistenceReason(event.path);
    if (persistence !== null) return { id: "files.changed", severity: "high", reason: `content changed in a persistence location: ${persistence}${unverified}` };
    return { id: "files.changed", severity: "high", reason: `content changed${unverified}` };
  }
  // A directory the scan could not list (then or now) whose mtime, ctime or inode moved: entries were added, removed or
  // renamed in it, and none of them could be examined — a setuid shell planted there is not named.
  if (event.changes.includes(UNVERIFIED_ENTRIES)) {
    const persistence = persistenceWriters(after);
    const where = persistence === null ? "" : ` in a persistence location: ${persistence}`;
    return { id: "files.changed", severity: "high", reason: `directory not listable and changed since: entries added or removed in it are not verified${where}` };
  }
  if (strayDeviceOpened(before, after)) return { id: "files.changed", severity: "high", reason: "device node outside /dev replaced, re-owned or opened to group or others" };
  if (after.type === "file" && gainedSetID(before, after)) return { id: "files.changed", severity: "high", reason: "setuid/setgid bit added" };
  if (after.type === "file" && setIDOwnerChanged(before, after)) return { id: "files.changed", severity: "high", reason: "setuid/setgid file now runs as another owner or group" };
  if (gainedSharedWrite(before, after)) return { id: "files.changed", severity: "high", reason: "group/other write permission added in a system directory" };
  if (gainedSharedWriteInPersistence(before, after)) {
    return { id: "files.changed", severity: "high", reason: `group/other write permission added in a persistence location: ${persistenceWriters(after)}` };
  }
  // chmod +x is how a disabled update-motd.d or cron.daily script is switched on (run-parts runs executable files
  // only), and how an uploaded file becomes a CGI program: rated as a new executable file is.
  if (gainedExecute(before, after)) {
    const persistence = persistenceReason(after.path);
    return { id: "files.changed", severity: "high", reason: persistence === null ? "execute permission added" : `execute permission added in a persistence location: ${persistence}` };
  }
  const inSystem = WRITE_PROTECTED_DIRS.some((d) => isWithin(after.path, d));
  if (inSystem && leftRoot(before, after)) return { id: "files.changed", severity: "high", reason: "owner changed from root in a system directory" };
  if (inSystem && writableGroupChanged(before, after)) return { id: "files.changed", severity: "high", reason: "group-writable entry handed to another group in a system directory" };
  // Handing root's .bashrc to uid 1000 grants that account what chmod o+w on it would, with no mode bit changed.
  const persistence = persistenceWriters(after);
  if (persistence !== null && ownerChangedToUser(before, after)) {
    return { id: "files.changed", severity: "high", reason: `owner changed to a user other than root in a persistence location: ${persistence}` };
  }
  if (persistence !== null && writableGroupChanged(before, after)) {
    return { id: "files.changed", severity: "high", reason: `group-writable entry handed to another group in a persistence location: ${persistence}` };
  }
  if (mountedOver(before, after)) {
    return { id: "files.changed", severity: "high", reason: "a file system was mounted over this directory: what the baseline recorded under it is hidden" };
  }
  const unrecorded = unrecordedChange(event, after, persistence);
  if (unrecorded !== null) return { id: "files.changed", severity: "high", reason: unrecorded };
  return { id: "files.changed", severity: "medium", reason: "metadata changed" };
}
