// Loading and creating the master key: from BULWARK_MASTER_KEY (base64, 32 bytes) or a 0600 key file
// in the data dir. An existing key file is never overwritten.
import { closeSync, constants, fsyncSync, openSync, readFileSync, statSync, writeSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { fromBase64Strict, toBase64 } from "../lib/encoding.ts";
import { thisUser } from "../lib/os-user.ts";
import type { RandomSource } from "../lib/random.ts";
import { cryptoErrors } from "./errors.ts";

/** Parses a base64 master key; the error names the problem but never echoes the value. */
export function parseMasterKey(text: string, source: string): Uint8Array {
  const bytes = fromBase64Strict(text);
  if (bytes === null) throw cryptoErrors.masterKeyInvalid(`${source} is not valid base64`);
  if (bytes.byteLength !== 32) {
    throw cryptoErrors.masterKeyInvalid(`${source} must decode to 32 bytes (256 bits), got ${bytes.byteLength}; generate one with: openssl rand -base64 32`);
  }
  return bytes;
}

/** Why the key file cannot be read, as the operator's next step; permission problems name the user. */
function unreadable(path: string, error: unknown): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== "EACCES" && code !== "EPERM") return cryptoErrors.masterKeyUnreadable(path, (error as Error).message, { cause: error });
  return cryptoErrors.masterKeyUnreadable(
    path,
    `permission denied for ${thisUser()}; run Bulwark as the account that owns the data dir (the file must stay mode 600), or give this process the key in BULWARK_MASTER_KEY`,
    { cause: error },
  );
}

/** Reads a key file, refusing one that other users can read. Returns null when the file does not exist. */
export function readMasterKeyFile(path: string): Uint8Array | null {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw unreadable(path, error);
  }
  if (!stats.isFile()) {
    const what = stats.isDirectory() ? "a directory" : "not a regular file";
    throw cryptoErrors.masterKeyInvalid(`the master key file ${path} is ${what}; move it away and restore the key file (mode 600), or set BULWARK_MASTER_KEY`);
  }
  const mode = stats.mode;
  if ((mode & 0o077) !== 0) {
    throw cryptoErrors.masterKeyInvalid(`the master key file ${path} is readable by other users (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw unreadable(path, error);
  }
  return parseMasterKey(text, `the master key file ${path}`);
}

/** Creates a new key file with mode 0600; fails if the file exists (O_EXCL), so a key is never overwritten. */
export function createMasterKeyFile(path: string, random: RandomSource): Uint8Array {
  const key = random.bytes(32);
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeSync(fd, `${toBase64(key)}\n`);
    // On disk before any key is wrapped under it: after a power loss the database may keep keys wrapped by a
    // master key whose file never reached the disk, and everything sealed under them would be lost for good.
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The file's directory entry too (a new name is durable only once its directory is synced).
  const dir = openSync(dirname(path), constants.O_RDONLY);
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  return key;
}
