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
