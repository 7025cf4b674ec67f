// Checks and creates the data dir. It holds the master key and the database, so it is trusted only when nobody but
// this account (or root) could have put anything in it: see docs/decisions/0008-private-data-dir.md.
import { lstatSync, mkdirSync, mkdtempSync, rmdirSync, type Stats } from "node:fs";
import { join } from "node:path";
import { InputError } from "../lib/errors.ts";
import { foreignOwner, writableBy } from "../lib/os-user.ts";

function dataDirError(message: string, cause?: unknown): InputError {
  return new InputError("BULWARK_ERR_DATA_DIR", message, cause === undefined ? {} : { cause });
}

function explain(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EROFS":
      return "read-only file system";
    case "ENOSPC":
      return "no space left on device";
    case "ENOTDIR":
      return "a part of the path is a file, not a directory";
    default:
      return (error as Error).message;
  }
}

/**
 * The data dir's own entry (lstat), or null when nothing is there; throws when it cannot be looked at, is a symbolic
 * link (whoever can write the link's directory can point it at a dir holding their own master key) or is not a
 * directory.
 */
function dataDirStats(dir: string): Stats | null {
  let stats: Stats;
  try {
    stats = lstatSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw dataDirError(`cannot use the data dir ${dir}: ${explain(error)}; set BULWARK_DATA_DIR to a writable directory`, error);
  }
  if (stats.isSymbolicLink()) {
    throw dataDirError(`the data dir ${dir} is a symbolic link; set BULWARK_DATA_DIR to the directory itself (see: realpath ${dir})`);
  }
  if (!stats.isDirectory()) throw dataDirError(`the data dir ${dir} exists but is not a directory; set BULWARK_DATA_DIR to a directory`);
  return stats;
}

/** True when `dir` exists as a directory, false when nothing is there; throws when it is something else (dataDirStats). */
export function dataDirExists(dir: string): boolean {
  return dataDirStats(dir) !== null;
}

/**
 * Refuses a data dir another account could change: not owned by this process's user (root-owned is accepted,
 * as root can replace any file anyway, the rule sshd applies to ~/.ssh), or writable by group or others (the
 * sticky bit does not help: it stops others renaming our files, not adding a master.key we have not created yet).
 * Root is held to the same rule, so root never adopts a dir another account prepared.
 */
export function assertPrivateDataDir(dir: string): void {
  const stats = dataDirStats(dir);
  if (stats === null) throw dataDirError(`cannot use the data dir ${dir}: it does not exist (removed while in use?); set BULWARK_DATA_DIR to a writable directory`);
  const foreign = foreignOwner(stats);
  if (foreign) {
    throw dataDirError(
      `the data dir ${dir} is owned by uid ${foreign.uid}, not by ${foreign.expected}: that account could replace master.key or bulwark.db; ` +
        `run Bulwark as that account, or, if the dir and everything in it are known to be yours, run: chown ${foreign.chownTo} ${dir}; or set BULWARK_DATA_DIR to a new directory`,
    );
  }
  const who = writableBy(stats.mode);
  if (who !== null) {
    throw dataDirError(
      `the data dir ${dir} is writable by ${who} (mode ${(stats.mode & 0o7777).toString(8)}): anyone who can write it could replace master.key or bulwark.db; ` +
        `run: chmod 700 ${dir} (and check what is inside)`,
    );
  }
}

/**
 * Proves `dir` is writable by creating and removing a directory under a random name. Root can write almost
 * anywhere, so permission bits prove nothing; mkdtemp never follows a link and never opens an existing entry,
 * so a link planted in the dir cannot turn the probe into a write elsewhere.
 */
export function assertWritable(dir: string): void {
  let probe: string;
  try {
    probe = mkdtempSync(join(dir, ".bulwark-probe-"));
  } catch (error) {
    throw dataDirError(`the data dir ${dir} is not writable (${explain(error)}); fix its permissions or set BULWARK_DATA_DIR to a writable directory`, error);
  }
  rmdirSync(probe);
}

/**
 * Creates the data dir (and missing parents) with mode 0700, then checks it like an existing one: if another
 * account created it first, or it appeared as a link, it is refused rather than adopted.
 */
export function createDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw dataDirError(`cannot create the data dir ${dir}: ${explain(error)}; set BULWARK_DATA_DIR to a writable directory`, error);
  }
  assertPrivateDataDir(dir);
}
