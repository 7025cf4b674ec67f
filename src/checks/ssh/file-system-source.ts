// The real file system as a ConfigSource, globbing Include patterns as sshd's glob(3) does. Paths are byte
// strings (one character per byte, as the configuration text is read, latin1): a name that is not ASCII,
// or not UTF-8 at all, reaches stat(2), open(2) and readdir(3) as the very bytes sshd passes them.
import { lstatSync, readFileSync, readdirSync, realpathSync, statSync } from "node:fs";
import { SshConfigUnreadableError } from "./errors.ts";
import { globMatch, hasWildcard, unescapeSegment } from "./glob.ts";
import type { ConfigSource, GlobBudget, GlobOptions, ReadOptions } from "./parser.ts";

/** Largest file read: a hostile Include of a huge file (or /dev/zero) must not exhaust memory. */
export const MAX_FILE_BYTES = 1 << 20;
/**
 * Directory reads all Include patterns of one load may make together: a pattern such as /a*\/b*\/c* must
 * not walk the whole disk, nor one line repeating a pattern that walks 1,500 directories (results are
 * cached per pattern too). About 60 µs a directory: the whole budget is well under a second.
 */
export const GLOB_DIRECTORY_BUDGET = 10_000;
/** More matches than this are never used (the include count bound is lower). */
const GLOB_MATCH_LIMIT = 1_000;

const bytes = (path: string): Buffer => Buffer.from(path, "latin1");

/** A byte-string path as text for messages (UTF-8; bytes that are not UTF-8 show as U+FFFD). */
function shown(path: string): string {
  return bytes(path).toString("utf8");
}

/** glob(3) without GLOB_ERR: a missing name or a non-directory on the way means no match. */
function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

function unreadable(path: string, error: unknown): SshConfigUnreadableError {
  if (error instanceof SshConfigUnreadableError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const reason = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied (EACCES)" : String(code ?? error);
  return new SshConfigUnreadableError(shown(path), reason, { cause: error });
}

/** True when a name exists (lstat: glob(3) returns a dangling link, which sshd then fails to open). */
function exists(path: string): boolean {
  try {
    lstatSync(bytes(path));
    return true;
  } catch (error) {
    // Anything but "not there" (EACCES when the scanner runs unprivileged): sshd, as root, may well read a
    // file there, so the check fails closed rather than evaluating without it.
    if (isMissing(error)) return false;
    throw unreadable(path, error);
  }
}

/** Where a walk is going: the pattern's segments, and whether it ends in "/" (then only directories match). */
interface Walk {
  segments: readonly string[];
  slash: "" | "/";
  out: string[];
  budget: GlobBudget;
}

function walk(dir: string, at: number, w: Walk): void {
  const { segments, out, budget } = w;
  const head = segments[at];
  if (head === undefined || out.length >= GLOB_MATCH_LIMIT) return;
  const last = at === segments.length - 1;
  if (!hasWildcard(head)) {
    const name = unescapeSegment(head);
    if (name === null) return;
    // Joined as text, not normalised: "link/.." is the parent of the link's target, as the kernel resolves it.
    const next = `${dir}/${name}`;
    if (!last) walk(next, at + 1, w);
    else if (exists(next + w.slash)) out.push(next + w.slash);
    return;
  }
  if (--budget.directories < 0) {
    throw new SshConfigUnreadableError(shown(dir || "/"), `the Include patterns read more than ${GLOB_DIRECTORY_BUDGET} directories`);
  }
  let names: string[];
  try {
    names = readdirSync(bytes(dir || "/"), { encoding: "buffer" }).map((b) => b.toString("latin1"));
  } catch (error) {
    if (isMissing(error)) return;
    throw unreadable(dir || "/", error);
  }
  // readdir(3) also lists "." and ".." (Node leaves them out); glob(3) matches them with a leading literal dot.
  if (head.startsWith(".") || head.startsWith("\\.")) names.push(".", "..");
  for (const name of names) {
    if (!globMatch(name, head)) continue;
    const next = `${dir}/${name}`;
    if (!last) walk(next, at + 1, w);
    else if (w.slash === "") out.push(next);
    else if (exists(next + w.slash)) out.push(next + w.slash);
  }
}

/** Reads from the real file system. */
export const fileSystemSource: ConfigSource = {
  read(path: string, options: ReadOptions = {}): string {
    try {
      const st = statSync(bytes(path));
      if (st.isDirectory()) {
        // sshd opens an included directory and getline() fails at once: it reads as empty.
        if (options.directory === "empty") return "";
        throw new SshConfigUnreadableError(shown(path), "is a directory");
      }
      if (!st.isFile()) throw new SshConfigUnreadableError(shown(path), "is not a regular file");
      if (st.size > MAX_FILE_BYTES) throw new SshConfigUnreadableError(shown(path), `is larger than ${MAX_FILE_BYTES} bytes`);
      return readFileSync(bytes(path), "latin1");
    } catch (error) {
      throw unreadable(path, error);
    }
  },
  glob(pattern: string, options: GlobOptions = {}): string[] {
    const out: string[] = [];
    const segments = pattern.split("/").filter((s) => s !== "");
    walk("", 0, { segments, slash: pattern.endsWith("/") ? "/" : "", out, budget: options.budget ?? { directories: GLOB_DIRECTORY_BUDGET } });
    // glob(3) sorts whole paths in the C locale, by bytes: for byte strings that is code-unit order.
    return out.sort();
  },
  realpath(path: string): string {
    try {
      return realpathSync(bytes(path), { encoding: "buffer" }).toString("latin1");
    } catch {
      return path;
    }
  },
  encodePath(path: string): string {
    return Buffer.from(path, "utf8").toString("latin1");
  },
  decodePath: shown,
};
