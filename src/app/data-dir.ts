// Checks and creates the data dir. Root can write almost anywhere, so writability is proven by
// creating and removing a probe file, not by reading permission bits.
import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { InputError } from "../lib/errors.ts";

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

/** True when `dir` exists (and is a directory); throws when it is something else. */
export function dataDirExists(dir: string): boolean {
  try {
    if (!statSync(dir).isDirectory()) throw dataDirError(`the data dir ${dir} exists but is not a directory; set BULWARK_DATA_DIR to a directory`);
    return true;
  } catch (error) {
    if (error instanceof InputError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return false;
    throw dataDirError(`cannot use the data dir ${dir}: ${explain(error)}; set BULWARK_DATA_DIR to a writable directory`, error);
  }
}

/** Proves `dir` is writable by writing a probe file. */
export function assertWritable(dir: string): void {
  const probe = join(dir, `.bulwark-probe-${process.pid}`);
  try {
    writeFileSync(probe, "");
    rmSync(probe, { force: true });
  } catch (error) {
    throw dataDirError(`the data dir ${dir} is not writable (${explain(error)}); fix its permissions or set BULWARK_DATA_DIR to a writable directory`, error);
  }
}

/** Checks, before anything is created, that `dir` could be created: its nearest existing ancestor is a writable directory. */
export function assertCreatable(dir: string): void {
  let parent = dirname(dir);
  while (!dataDirExists(parent)) {
    const up = dirname(parent);
    if (up === parent) break;
    parent = up;
  }
  assertWritable(parent);
}

export function createDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw dataDirError(`cannot create the data dir ${dir}: ${explain(error)}; set BULWARK_DATA_DIR to a writable directory`, error);
  }
}
