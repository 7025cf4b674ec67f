// Who runs this process, as the operating system knows it: for the audit log's actor of a command run from the
// shell, and for messages about permissions. Never $USER, which whoever runs a command sets at will.
import { userInfo } from "node:os";

/**
 * The OS account name of this process, or null when the system has no entry for its uid (a container run
 * under an arbitrary uid).
 *
 * @example
 * osUserName() // "ops"
 */
export function osUserName(): string | null {
  try {
    return userInfo().username;
  } catch {
    return null;
  }
}

/** "this user (ops)", or "this user (uid 1000)" without a name: who lacks a permission, for an operator to act on. */
export function thisUser(): string {
  return `this user (${osUserName() ?? `uid ${process.getuid?.() ?? "unknown"}`})`;
}

/** The audit log's actor for work started from the shell (a CLI command, `init`): `cli:` and the OS account. */
export function shellActor(): string {
  // No name for this uid: "cli" alone rather than a guess.
  const name = osUserName();
  return name === null ? "cli" : `cli:${name}`;
}

/** Who owns a file this process should not trust, for a message: the owner's uid, who should, and whom to chown to. */
export interface ForeignOwner {
  uid: number;
  /** "this user (ops) or root", or "this user (root)" when root runs. */
  expected: string;
  chownTo: string;
}

/**
 * The owner of a file or directory holding Bulwark's secrets (the data dir, master.key, the database), when this
 * process should not trust it; null when it may. Trusted: this process's user, or root (root can replace any file
 * anyway, the rule sshd applies to ~/.ssh); root itself trusts only its own, so it never adopts what another account
 * prepared. Always null on a platform without uids.
 *
 * @example
 * const foreign = foreignOwner(lstatSync(path)); // { uid: 65534, expected: "this user (ops) or root", chownTo: "ops" }
 */
export function foreignOwner(stats: { uid: number }): ForeignOwner | null {
  const euid = process.geteuid?.();
  if (euid === undefined || stats.uid === euid || stats.uid === 0) return null;
  return { uid: stats.uid, expected: `${thisUser()}${euid === 0 ? "" : " or root"}`, chownTo: osUserName() ?? String(euid) };
}

/** "group" or "others" when `mode` lets them write (others named first, the wider grant), else null. */
export function writableBy(mode: number): "group" | "others" | null {
  if ((mode & 0o002) !== 0) return "others";
  return (mode & 0o020) !== 0 ? "group" : null;
}
