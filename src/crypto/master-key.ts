// Loading and creating the master key: from BULWARK_MASTER_KEY (base64, 32 bytes) or a 0600 key file owned by
// this account in the data dir. An existing key file is never overwritten, but for the one rename that ends a master
// key rotation (`bulwark keys rotate-master`), which replaces it with the pending key file it wrote first.
import { closeSync, constants, fstatSync, fsyncSync, linkSync, lstatSync, openSync, readFileSync, renameSync, rmSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { fromBase64Strict, toBase64 } from "../lib/encoding.ts";
import { foreignOwner, thisUser } from "../lib/os-user.ts";
import { writeAllSync } from "../lib/write-all.ts";
import type { RandomSource } from "../lib/random.ts";
import { constantTimeEqualString } from "./constant-time.ts";
import { cryptoErrors, KeyringError } from "./errors.ts";
import { masterKeyCheck, masterKeyId } from "./keyring.ts";
import { base32 } from "./tokens.ts";

/** Parses a base64 master key; the error names the problem but never echoes the value. */
export function parseMasterKey(text: string, source: string): Uint8Array {
  const bytes = fromBase64Strict(text);
  if (bytes === null) throw cryptoErrors.masterKeyInvalid(`${source} is not valid base64`);
  if (bytes.byteLength !== 32) {
    throw cryptoErrors.masterKeyInvalid(`${source} must decode to 32 bytes (256 bits), got ${bytes.byteLength}; generate one with: openssl rand -base64 32`);
  }
  // A placeholder (32 zero bytes, "AAAA…=", a word repeated) has the right length and none of the secrecy: whoever
  // guesses it decrypts every secret of a copied database (ASVS 11.5.1). 32 random bytes hold ~30 distinct values;
  // fewer than 16 has a chance below 2^-40, so only made-up keys are refused.
  const distinct = new Set(bytes).size;
  if (distinct < MIN_DISTINCT_BYTES) {
    throw cryptoErrors.masterKeyInvalid(`${source} holds only ${distinct} distinct byte values: a placeholder, not a random key; generate one with: openssl rand -base64 32`);
  }
  // A phrase ("my-super-secret-master-key-1234!") is all printable ASCII, which 32 random bytes are with a chance of
  // 2^-46; a counter (0, 1, 2 …) steps by a constant, which they never do.
  if (bytes.every((b) => b >= 0x20 && b <= 0x7e)) {
    throw cryptoErrors.masterKeyInvalid(`${source} is text (every byte printable ASCII): a phrase, not a random key; generate one with: openssl rand -base64 32`);
  }
  const step = ((bytes[1] as number) - (bytes[0] as number)) & 0xff;
  if (bytes.every((b, i) => i === 0 || ((b - (bytes[i - 1] as number)) & 0xff) === step)) {
    throw cryptoErrors.masterKeyInvalid(`${source} is a counting sequence, not a random key; generate one with: openssl rand -base64 32`);
  }
  return bytes;
}

/** Distinct byte values a master key must hold (see parseMasterKey). */
const MIN_DISTINCT_BYTES = 16;

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

function isALink(path: string): string {
  return `the master key file ${path} is a symbolic link; replace it with the key file itself (mode 600), or set BULWARK_MASTER_KEY`;
}

/**
 * Why the key file `path` (lstat or fstat `stats`) cannot be trusted, as the operator's next step, or null. A key
 * someone else could have written is worse than none: every data key would be wrapped under a key they know. So
 * it must be a regular file (not a link: whoever can write the link's directory chooses the key), owned by this
 * process's user or root (root can replace any file anyway; root itself accepts only its own), and readable by
 * nobody else.
 */
function keyFileProblem(path: string, stats: Stats): string | null {
  if (stats.isSymbolicLink()) return isALink(path);
  if (!stats.isFile()) {
    const what = stats.isDirectory() ? "a directory" : "not a regular file";
    return `the master key file ${path} is ${what}; move it away and restore the key file (mode 600), or set BULWARK_MASTER_KEY`;
  }
  const foreign = foreignOwner(stats);
  if (foreign) {
    return (
      `the master key file ${path} is owned by uid ${foreign.uid}, not by ${foreign.expected}: that account could have chosen the key; ` +
      `if the file is known to be yours, run: chown ${foreign.chownTo} ${path}; otherwise remove it and restore your key file (mode 600), or set BULWARK_MASTER_KEY`
    );
  }
  if ((stats.mode & 0o077) !== 0) {
    return `the master key file ${path} is readable or writable by other users (mode ${(stats.mode & 0o777).toString(8)}); run: chmod 600 ${path}`;
  }
  return null;
}

/**
 * Reads a key file, refusing one that another account could have written or can read (see keyFileProblem).
 * Returns null when the file does not exist. Checked before it is opened (so a FIFO or a link is never opened),
 * and again on the descriptor opened with O_NOFOLLOW.
 */
export function readMasterKeyFile(path: string): Uint8Array | null {
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw unreadable(path, error);
  }
  const problem = keyFileProblem(path, stats);
  if (problem !== null) throw cryptoErrors.masterKeyInvalid(problem);
  let text: string;
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO swapped in after the lstat must not hang the process on open.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOOP") throw cryptoErrors.masterKeyInvalid(isALink(path), { cause: error }); // swapped in after lstat
    throw unreadable(path, error);
  }
  try {
    // What was opened is what counts: a file swapped in after the lstat above is checked the same way.
    const problemNow = keyFileProblem(path, fstatSync(fd));
    if (problemNow !== null) throw cryptoErrors.masterKeyInvalid(problemNow);
    text = readFileSync(fd, "utf8");
  } catch (error) {
    if (error instanceof KeyringError) throw error;
    throw unreadable(path, error);
  } finally {
    closeSync(fd);
  }
  return parseMasterKey(text, `the master key file ${path}`);
}

/** Writes `key` (base64, one line) to the open file `fd`, every byte (writeAllSync), syncs it to disk and closes it, whatever happens. */
function writeKeyAndClose(fd: number, key: Uint8Array): void {
  try {
    writeAllSync(fd, Buffer.from(`${toBase64(key)}\n`, "latin1")); // a short write would leave a key cut short to be linked into place
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates the key file with mode 0600, or adopts the one another process created first; never overwrites one. The key
 * is written and synced under a private temporary name, then linked into place: link() refuses an existing name, so of
 * two processes initialising the same data dir at once one creates the file and the other reads the winner's whole
 * key (never a half-written one) instead of failing with a raw EEXIST. `created` says which.
 *
 * @example
 * const { key, created } = createMasterKeyFile(join(dataDir, "master.key"), systemRandom);
 */
export function createMasterKeyFile(path: string, random: RandomSource): { key: Uint8Array; created: boolean } {
  const key = random.bytes(32);
  const temporary = `${path}.${base32(random.bytes(10))}.new`;
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  let created = false;
  try {
    // On disk before any key is wrapped under it: after a power loss the database may keep keys wrapped by a
    // master key whose file never reached the disk, and everything sealed under them would be lost for good.
    writeKeyAndClose(fd, key);
    try {
      linkSync(temporary, path);
      created = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  } finally {
    rmSync(temporary, { force: true });
  }
  syncDirectoryOf(path);
  if (created) return { key, created };
  // Another process won: its key, checked like any key file (owner, mode, no link).
  const theirs = readMasterKeyFile(path);
  if (theirs === null) throw cryptoErrors.masterKeyMissing(`the master key file ${path} appeared and vanished while it was being created; run the command again`);
  return { key: theirs, created: false };
}

/** Syncs the directory holding `path`: a new name (a created, renamed or removed file) is durable only once it is. */
function syncDirectoryOf(path: string): void {
  const dir = openSync(dirname(path), constants.O_RDONLY);
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** Where a master key rotation keeps the new key until its transaction has committed: beside the key file. */
export function pendingMasterKeyPath(path: string): string {
  return `${path}.pending`;
}

/**
 * Writes `key` as the pending key file of a rotation (mode 0600, created, never a link followed nor a file replaced),
 * synced with its directory, before the rotation's transaction commits: once the store records the new key, a power
 * loss must not leave it only in memory. Refuses when a pending file is already there: one the store's key check does
 * not match (open would have taken it otherwise) is left by a rotation that did not commit, and is not removed here
 * unasked, being key material.
 *
 * @example
 * writePendingMasterKey(join(dataDir, "master.key"), random.bytes(32));
 */
export function writePendingMasterKey(path: string, key: Uint8Array): string {
  const pending = pendingMasterKeyPath(path);
  let fd: number;
  try {
    fd = openSync(pending, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw unreadable(pending, error);
    let which = "";
    try {
      const left = readMasterKeyFile(pending);
      if (left !== null) which = ` (master key ${masterKeyId(left)})`;
    } catch {
      // Its name is enough to act on: the message below says what to do with it.
    }
    throw cryptoErrors.masterRotationRefused(
      `a pending master key file ${pending}${which} is already there, left by a rotation that did not commit (the store does not record its key); ` +
        "move it out of the data dir (keep it until you are sure nothing needs it) and run the command again",
      { cause: error },
    );
  }
  try {
    writeKeyAndClose(fd, key);
    syncDirectoryOf(pending);
  } catch (error) {
    rmSync(pending, { force: true });
    throw error;
  }
  return pending;
}

/**
 * Moves the pending key file, which must hold `key`, over the key file `path` (rename: atomic, so the file holds the
 * old key or the new one, never neither nor half of one; the old key is gone the same instant) and syncs the
 * directory. The pending file is checked first like any key file (owner, mode, no link). Done already when the
 * pending file is gone and the key file holds `key`: a process that met the rotation's check in the store moved it
 * into place first (findRotatedMasterKey), between the COMMIT and this rename.
 */
export function installPendingMasterKey(path: string, key: Uint8Array): void {
  const pending = pendingMasterKeyPath(path);
  const holds = (found: Uint8Array | null): boolean => found !== null && constantTimeEqualString(masterKeyCheck(found), masterKeyCheck(key));
  try {
    const found = readMasterKeyFile(pending);
    if (found === null) throw cryptoErrors.masterKeyMissing(`the pending master key file ${pending} is gone; nothing to move into place`);
    if (!holds(found)) {
      throw cryptoErrors.masterKeyInvalid(`the pending master key file ${pending} holds master key ${masterKeyId(found)}, not ${masterKeyId(key)}; it is left in place, and ${path} unchanged`);
    }
    renameSync(pending, path);
  } catch (error) {
    // Gone before the read or between it and the rename: moved into place by another process, if the key file says so.
    const gone = (error as NodeJS.ErrnoException).code === "ENOENT" || (error instanceof KeyringError && error.code === "BULWARK_ERR_MASTER_KEY_MISSING");
    if (!gone || !holds(readMasterKeyFile(path))) throw error;
  }
  syncDirectoryOf(path);
}

/** Removes the pending key file of a rotation that did not commit (the store still records the old key). */
export function discardPendingMasterKey(path: string): void {
  rmSync(pendingMasterKeyPath(path), { force: true });
  syncDirectoryOf(path);
}

/**
 * KeyringOptions.findMasterKey for a key file: the master key the store records (`recordedCheck`), from the key file
 * `path` when another process has moved a rotation's key into place since this one read it, else from the pending file
 * when a rotation committed and stopped before its rename: that file is then moved into place, and `log` told. A
 * pending file whose key is not the recorded one is never taken (it would wrap new keys under a key the store does not
 * use); `log` is told it was ignored. Null when neither holds the recorded key.
 *
 * @example
 * Keyring.open({ masterKey, store, clock, random, findMasterKey: (check) => findRotatedMasterKey(keyFile, check, { log: (m) => logger.warn(m) }) });
 */
export function findRotatedMasterKey(path: string, recordedCheck: string, options: { log?: (message: string) => void } = {}): Uint8Array | null {
  const matches = (key: Uint8Array | null): key is Uint8Array => key !== null && constantTimeEqualString(masterKeyCheck(key), recordedCheck);
  const current = readMasterKeyFile(path);
  if (matches(current)) return current;
  const pendingPath = pendingMasterKeyPath(path);
  const pending = readMasterKeyFile(pendingPath);
  if (pending === null) return null;
  if (!matches(pending)) {
    options.log?.(`ignored ${pendingPath}: its master key ${masterKeyId(pending)} is not the one the store records (${recordedCheck.slice(0, 16)}); it is left by a rotation that did not commit`);
    return null;
  }
  installPendingMasterKey(path, pending); // done already if another process recovering at the same moment moved it first
  options.log?.(
    `master key rotation to ${masterKeyId(pending)} had committed but its key file was not moved into place (the process stopped in between, ` +
      "or had not got to it yet): " +
      `${pendingPath} is now ${path}; the old key file is gone`,
  );
  return pending;
}
