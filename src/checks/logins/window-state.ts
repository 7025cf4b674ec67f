// `check logins --state FILE`: where the last successful run's window ended, so the next run starts there however
// late cron starts it (two `--since 24h` runs, the second five minutes late, left four minutes to no run).
// The file decides which sign-ins are judged: one that another account could write, or a time moved ahead, would
// skip them in silence, so it is read as strictly as the master key file, and written only whole (temp, fsync, rename).
import { constants, type Stats } from "node:fs";
import { access, lstat, open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { foreignOwner, writableBy } from "../../lib/os-user.ts";
import { writeAll } from "../../lib/write-all.ts";
import { kindOf } from "../input-file.ts";
import { LoginsStateError, LoginsStateWriteError } from "./errors.ts";

/** The `format` member of every state file this writes; another value is not ours (or a later version's). */
export const STATE_FORMAT = "bulwark-check-logins-state/2";
/** The format before the state recorded the log's position (read still: its `seq` is unknown). */
const STATE_FORMAT_1 = "bulwark-check-logins-state/1";

/** Where the last successful run ended. */
export interface WindowState {
  /** The end of its window (epoch ms). */
  until: number;
  /**
   * The audit log's position (the newest event's seq) before that run read it, or null (a state of format 1): an
   * event written after it and stamped before `until` was never judged (a clock stepped back, a cron host ahead).
   */
  seq: number | null;
}
/** A state is about 80 bytes: a file past this is not one, and is not read into memory. */
const MAX_STATE_BYTES = 1024;
/** The only spelling of `until` this writes (Date#toISOString): anything else was edited by hand or is not ours. */
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * A window from the state longer than this is judged whole, and the report says so: a run meant to be daily (or
 * hourly) that has not succeeded for a week failed unnoticed, and the spraying and guessed-account rules then count
 * failures over all of it, not over any 48 hours.
 */
export const LONG_WINDOW_MS = 7 * 24 * 3_600_000;

const mode = (st: Stats): string => (st.mode & 0o7777).toString(8).padStart(3, "0");

/**
 * Why the state file (lstat or fstat `st`) cannot be trusted, or null. A regular file, not a link (whoever can write
 * the link's directory would choose the window), owned by this user or root, and writable by nobody else: another
 * account able to write it could move the window's start past the sign-ins it wants no run to judge.
 */
function fileProblem(path: string, st: Stats): string | null {
  if (st.isSymbolicLink()) return "it is a symbolic link; a state file is never read through one (replace the link with the file, or remove it)";
  if (!st.isFile()) return `it is ${kindOf(st)}, not a regular file`;
  const foreign = foreignOwner(st);
  if (foreign) return `it is owned by uid ${foreign.uid}, not by ${foreign.expected}: that account could move the window past sign-ins; if the file is yours, run: chown ${foreign.chownTo} ${path}; otherwise remove it`;
  const who = writableBy(st.mode);
  if (who) return `it is writable by ${who} (mode ${mode(st)}): another user could move the window past sign-ins; run: chmod 600 ${path}`;
  return null;
}

/**
 * Refuses a directory the state cannot be written in, or in which another account could replace the file (rename
 * over it): missing, not a directory, owned by another account, or writable by group or others without the sticky bit.
 */
async function checkDirectory(path: string): Promise<void> {
  const dir = dirname(resolve(path));
  let st: Stats;
  try {
    st = await stat(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new LoginsStateError(path, `its directory ${dir} ${code === "ENOENT" ? "does not exist" : code === "ENOTDIR" ? "is not a directory" : `cannot be read (${code ?? (error as Error).message})`}`, { cause: error });
  }
  if (!st.isDirectory()) throw new LoginsStateError(path, `${dir} is not a directory`);
  const foreign = foreignOwner(st);
  if (foreign) throw new LoginsStateError(path, `its directory ${dir} is owned by uid ${foreign.uid}, not by ${foreign.expected}: that account could replace the file; keep it in a directory of your own`);
  const who = writableBy(st.mode);
  if (who && (st.mode & 0o1000) === 0) throw new LoginsStateError(path, `its directory ${dir} is writable by ${who} (mode ${mode(st)}): another user could replace the file; keep it in a directory only you can write`);
  try {
    await access(dir, constants.W_OK);
  } catch (error) {
    throw new LoginsStateError(path, `its directory ${dir} is not writable by this user: the state could not be written after the run`, { cause: error });
  }
}

/** The last run recorded in `text`, strictly as stateText writes it (or wrote it, format 1). */
function parseState(path: string, text: string): WindowState {
  const notOurs = (why: string): LoginsStateError => new LoginsStateError(path, `it is not a state file of \`check logins\`: ${why}; remove it to start again from --since`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw notOurs(text.trim() === "" ? "it is empty" : "it is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw notOurs("it is not a JSON object");
  const { format, until, seq } = value as { format: unknown; until: unknown; seq: unknown };
  if (format !== STATE_FORMAT && format !== STATE_FORMAT_1) throw notOurs(`its format is ${JSON.stringify(format).slice(0, 60)}, not "${STATE_FORMAT}"`);
  const expected = format === STATE_FORMAT ? "format,seq,until" : "format,until";
  const members = Object.keys(value).sort();
  if (members.join(",") !== expected) throw notOurs(`its members are ${JSON.stringify(members).slice(0, 80)}, not ${expected.split(",").map((m) => `"${m}"`).join(", ")}`);
  const ms = typeof until === "string" && ISO_UTC.test(until) ? Date.parse(until) : Number.NaN;
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== until) throw notOurs(`its until ${JSON.stringify(until).slice(0, 60)} is not a UTC time as this command writes it (2026-12-06T02:00:00.000Z)`);
  if (format === STATE_FORMAT_1) return { until: ms, seq: null };
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) throw notOurs(`its seq ${JSON.stringify(seq).slice(0, 60)} is not a position in the audit log (a whole number)`);
  return { until: ms, seq };
}

/** The file's content for a window that ended at `until` (epoch ms), the log read from position `seq` on. */
export function stateText(state: WindowState & { seq: number }): string {
  return `${JSON.stringify({ format: STATE_FORMAT, until: new Date(state.until).toISOString(), seq: state.seq })}\n`;
}

/**
 * Where the last successful run with the state file `path` ended (its window's end, and the log's position it read
 * from), or null when the file does not exist yet (the first run: its window is --since's). Throws LoginsStateError (exit 2, the file untouched) for a directory
 * the state cannot be kept in safely, a path that is not a regular file of this user's that only it can write, or
 * content this did not write. Checked on the path, then again on the descriptor opened (O_NOFOLLOW, O_NONBLOCK: a
 * link or a FIFO swapped in meanwhile is refused, never followed nor waited on).
 *
 * @example
 * const last = await readWindowState("/var/lib/bulwark-cron/logins.state"); // { until: 1796522400000, seq: 5120 }, or null
 */
export async function readWindowState(path: string): Promise<WindowState | null> {
  await checkDirectory(path);
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new LoginsStateError(path, `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
  const problem = fileProblem(path, st);
  if (problem !== null) throw new LoginsStateError(path, problem);
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new LoginsStateError(path, code === "ELOOP" ? "it is a symbolic link; a state file is never read through one" : `cannot read it (${code ?? (error as Error).message})`, { cause: error });
  }
  let bytes: Buffer;
  try {
    const opened = await handle.stat();
    const problemNow = fileProblem(path, opened);
    if (problemNow !== null) throw new LoginsStateError(path, problemNow);
    const buffer = Buffer.alloc(MAX_STATE_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_STATE_BYTES) throw new LoginsStateError(path, `it is larger than a state file (${opened.size} bytes, at most ${MAX_STATE_BYTES}): it is not one; remove it to start again from --since`);
    bytes = buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new LoginsStateError(path, "it is not a state file of `check logins`: it is not UTF-8 text; remove it to start again from --since");
  }
  return parseState(path, text);
}

/**
 * Refuses a recorded end ahead of `now` by more than the clock skew tolerated (`aheadToleranceMs`): the next window
 * would start there, past the sign-ins stamped until then (a file edited, or this host's clock set back).
 */
export function checkWindowState(path: string, until: number, options: { now: number; aheadToleranceMs: number }): void {
  if (until <= options.now + options.aheadToleranceMs) return;
  throw new LoginsStateError(
    path,
    `it says the last run ended at ${new Date(until).toISOString()}, ahead of this host's clock (${new Date(options.now).toISOString()}) by more than the ` +
      `${options.aheadToleranceMs / 1000} s of clock skew tolerated: the window would skip every sign-in until then. Set the clock right, or remove the file and run with --since covering the time since the last run you trust`,
  );
}

/**
 * Records `state` (the window's end, epoch ms, and the log's position before it was read) as the last successful run:
 * written whole under a temporary name in the same directory (created exclusively, owner-only), synced, renamed over
 * `path`, and the directory synced, so a crash leaves the old state or the new one, never a partial file. Call it only
 * once the run's report and --ids-out are written: a crash before then leaves the old state, and the next run judges
 * the window again. Throws LoginsStateWriteError (exit 3), the old state left in place.
 *
 * @example
 * await writeWindowState("/var/lib/bulwark-cron/logins.state", { until, seq });
 */
export async function writeWindowState(path: string, state: WindowState & { seq: number }): Promise<void> {
  const dir = dirname(resolve(path));
  const temp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const code = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  let handle: FileHandle;
  try {
    // wx: never through a link, a FIFO or a file planted at the temporary name.
    handle = await open(temp, "wx", 0o600);
  } catch (error) {
    throw new LoginsStateWriteError(path, `cannot create ${temp}: ${code(error)}`, { cause: error });
  }
  try {
    await writeAll(handle, Buffer.from(stateText(state), "utf8"));
    await handle.sync(); // on disk before it has the name: after a power loss the name holds the old state or this one
    await handle.close();
    await rename(temp, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temp, { force: true });
    throw new LoginsStateWriteError(path, code(error), { cause: error });
  }
  try {
    const directory = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await directory.sync(); // the rename itself on disk
    } finally {
      await directory.close();
    }
  } catch (error) {
    // A file system that cannot sync a directory (EINVAL) has done what it can.
    if ((error as NodeJS.ErrnoException).code !== "EINVAL") throw new LoginsStateWriteError(path, `syncing ${dir}: ${code(error)}`, { cause: error });
  }
}
