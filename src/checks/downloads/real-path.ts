// Listed names resolved under the download directory on their bytes. A Linux name may hold any byte but "/" and NUL,
// and realpath() as a string writes U+FFFD for one that is not UTF-8: a link app.iso -> "blob\xff.bin" then resolved
// to "blob\ufffd.bin", and the verifier read that file, a twin the mirror planted with the genuine bytes. Here every
// real path is text that stands for exactly its bytes (nameFromBytes), which nodeScanFS turns back into them.
import { realpath } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { isWithin } from "../files/entry.ts";
import { nameFromBytes } from "../files/hash-file.ts";
import { nodeScanFS } from "../files/scan.ts";

/** The real directory: its path as text (nameFromBytes), and its exact bytes. */
export interface RealDir {
  text: string;
  bytes: Buffer;
}

/** The bytes of `path`, `base.text` followed by Unicode names from the list: the directory's own need not be UTF-8. */
export function bytesUnder(base: RealDir, path: string): Buffer {
  return Buffer.concat([base.bytes, Buffer.from(path.slice(base.text.length), "utf8")]);
}

/**
 * The real path of the directory `dir`, taken as bytes.
 *
 * @example
 * const base = await realDirOf("/srv/release"); // { text: "/srv/release", bytes: <Buffer …> }
 */
export async function realDirOf(dir: string): Promise<RealDir> {
  const bytes = await realpath(dir, { encoding: "buffer" });
  return { text: nameFromBytes(bytes), bytes };
}

/** realpath() of `path` (under `base`) on its bytes, as text that stands for the resolved bytes exactly. */
export async function realpathExact(base: RealDir, path: string): Promise<string> {
  return nameFromBytes(await realpath(bytesUnder(base, path), { encoding: "buffer" }));
}

/**
 * Whether `target` (inside `realDir`, not resolvable) passes through a symbolic link on its way: "outside" when the
 * first such link points out of the directory, "inside" when it points within it; when no component is a link, the
 * first component that does not exist and the directory (real, inside) it is missing from; null otherwise. Paths
 * are text that stands for their bytes (nodeScanFS), so a link to a name that is not UTF-8 is followed exactly.
 */
export async function danglingLink(target: string, realDir: string, depth = 0): Promise<"outside" | "inside" | { dir: string; part: string } | null> {
  const parts = relative(realDir, target).split(sep).filter((p) => p !== "");
  let at = realDir;
  for (const [i, part] of parts.entries()) {
    const parent = at;
    at = join(at, part);
    let info;
    try {
      info = await nodeScanFS.lstat(at);
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "ENOENT" ? { dir: parent, part } : null;
    }
    if (info.isSymbolicLink()) {
      const to = await nodeScanFS.readlink(at).catch(() => null);
      // A chain longer than the kernel follows (40 links), or a link that cannot be read, is judged the worst way.
      if (to === null || depth >= 40) return "outside";
      const next = resolve(dirname(at), to, ...parts.slice(i + 1));
      if (!isWithin(next, realDir)) return "outside";
      // A link inside may lead to another link, and that one out.
      return (await danglingLink(next, realDir, depth + 1)) === "outside" ? "outside" : "inside";
    }
  }
  return null;
}

/** Whether `target` still leads to a file inside the real directory, and to the very file that was read (device and inode). */
export async function stillInside(base: RealDir, target: string, read: { dev: bigint; ino: bigint }): Promise<boolean> {
  try {
    const now = await realpathExact(base, target);
    if (!isWithin(now, base.text)) return false;
    const s = await nodeScanFS.stat(now);
    return s.dev === read.dev && s.ino === read.ino;
  } catch {
    return false;
  }
}
