// Compares a baseline with a fresh scan by merging the two sorted streams (bounded memory) and
// says, per path, whether it was added, removed, or changed in content or only in metadata.
import { comparePaths, isWithin, type FileEntry } from "./entry.ts";
import { NOT_LISTED } from "./scan.ts";

export type DiffKind = "added" | "removed" | "changed";

export interface DiffEvent {
  kind: DiffKind;
  path: string;
  /** For "added", null, or the baseline's record of a path it could not examine (type "unknown"). */
  before: FileEntry | null;
  after: FileEntry | null;
  /** For "changed": the fields that differ, e.g. ["sha256", "mode 0755→4755", "mtime"]. */
  changes: string[];
  /** For "changed": true when the content (hash, link target or type) differs, not only metadata. */
  content: boolean;
}

/** The change noted when a regular file's content could not be compared by hash: its bytes are not verified. */
export const UNVERIFIED_CONTENT = "content not verified";

/**
 * The `error` of an entry not looked up because the directory its lookups go through is no longer the one the scan
 * saw: swapped during the compare (check.ts pins it).
 */
export const DIR_REPLACED = "DIR_REPLACED";

/**
 * The change noted when a directory that could not be listed (in the baseline, now, or both) moved: its entries were
 * not compared one by one, so what was added or removed in it is not verified.
 */
export const UNVERIFIED_ENTRIES = "entries not verified";

/**
 * The fields that differ between two records of one path. Directories ignore size, mtime and
 * ctime: they change whenever an entry is added or removed, which is already reported per entry —
 * except for a directory unreadable (not listable) on either side, whose entries are not: there a moved mtime, ctime
 * or inode (which a new entry, a removal or a rename leaves) is noted as UNVERIFIED_ENTRIES; and a ctime that moved
 * while the mtime did not, which no entry added or removed explains (an ACL entry, an attribute), is noted as "ctime".
 * A hash is compared only when both sides have one. Without one (unreadable, changed during the scan, too large
 * to hash), a regular file counts as changed content — never as metadata only — when its size, mtime, ctime or
 * inode moved (a same-size trojan kept `touch`ed while it is read would otherwise pass as a new mtime), or when the
 * baseline had a hash that the scan now could not check (changed during the scan, too large to hash).
 */
export function diffEntry(before: FileEntry, after: FileEntry): { changes: string[]; content: boolean } {
  const changes: string[] = [];
  // An entry that could not even be examined (lstat failed) has no metadata to compare; it is
  // reported as unreadable instead of as a bogus change of every field.
  if (before.type === "unknown" || after.type === "unknown") return { changes, content: false };
  let content = false;
  if (before.type !== after.type) {
    changes.push(`type ${before.type}→${after.type}`);
    content = true;
  } else {
    if (before.sha256 !== null && after.sha256 !== null && before.sha256 !== after.sha256) {
      changes.push("sha256");
      content = true;
    }
    if (before.type === "file" && (before.sha256 === null || after.sha256 === null) && unverifiedContentMayDiffer(before, after)) {
      changes.push(UNVERIFIED_CONTENT);
      content = true;
    }
    if (before.target !== after.target) {
      changes.push("target");
      content = true;
    }
  }
  if (before.mode !== after.mode) changes.push(`mode ${before.mode}→${after.mode}`);
  if (before.uid !== after.uid) changes.push(`uid ${before.uid}→${after.uid}`);
  if (before.gid !== after.gid) changes.push(`gid ${before.gid}→${after.gid}`);
  if (before.ino !== after.ino) changes.push("inode");
  // Compared only when both sides recorded it: a version 1 baseline did not, and must not raise an alarm.
  if (before.mount !== undefined && after.mount !== undefined && before.mount !== after.mount) {
    changes.push(`mount point ${before.mount ? "yes" : "no"}→${after.mount ? "yes" : "no"}`);
  }
  if (after.type !== "dir" || before.type !== "dir") {
    if (before.size !== after.size) changes.push(`size ${before.size}→${after.size}`);
    if (before.mtime !== after.mtime) changes.push("mtime");
    if (before.ctime !== after.ctime) changes.push("ctime");
  } else if (before.status === "unreadable" || after.status === "unreadable") {
    // Its times are the one trace of what was done inside (ctime: no user can set it back after a `touch -r`).
    if (before.mtime !== after.mtime) changes.push("mtime");
    if (before.ctime !== after.ctime) changes.push("ctime");
    if (before.mtime !== after.mtime || before.ctime !== after.ctime || before.ino !== after.ino) changes.push(UNVERIFIED_ENTRIES);
  } else if (before.mtime === after.mtime && before.ctime !== after.ctime) {
    // Listed on both sides, its entries compared one by one: a ctime that moved while the mtime did not is no entry
    // added or removed (that moves both) but an attribute: a chmod, chown, ACL entry or extended attribute.
    changes.push("ctime");
  }
  return { changes, content };
}

/**
 * One side of a regular file has no hash. Its content may differ when anything a write moves has moved: size,
 * mtime, ctime (which no user can set back), inode (another file renamed over it). And when the baseline's hash can
 * no longer be checked because of something an intruder can cause — a file kept moving while it is read, or one past
 * a byte limit: that must not read as "unchanged". A file unreadable now (EACCES for a compare run with fewer rights
 * than the baseline had) with nothing moved has not been written since; it is listed as unreadable, not as changed.
 */
function unverifiedContentMayDiffer(before: FileEntry, after: FileEntry): boolean {
  if (before.sha256 !== null && after.sha256 === null && after.status !== "unreadable") return true;
  return before.size !== after.size || before.mtime !== after.mtime || before.ctime !== after.ctime || before.ino !== after.ino;
}

async function nextOf<T>(it: AsyncIterator<T>): Promise<T | null> {
  const r = await it.next();
  return r.done ? null : r.value;
}

/**
 * The event for a path recorded in the baseline that is, or is under, a directory this compare excludes (and the
 * baseline did not), examined by name now. A directory there is compared as one listed on both sides, its inode
 * aside: what comes and goes in it, and its being made afresh, are what the compare was told to leave out, and the
 * baseline's own entries under it are looked up one by one. But when its owner, mode or attributes moved (a chmod
 * 0700 that keeps a monitor without root from its entries; an ACL, which moves the ctime alone), what it holds is not
 * verified: it is compared by its times as one not listable. Any other type is compared as usual.
 */
function excludedPair(b: FileEntry, now: FileEntry): DiffEvent | null {
  if (b.type !== "dir" || now.type !== "dir") return pairEvent(b, now);
  const listed = pairEvent(b, { ...now, status: b.status, error: b.error, ino: b.ino });
  return listed === null ? null : pairEvent(b, { ...now, status: "unreadable", error: now.error ?? NOT_LISTED });
}

/** The event for one path recorded in the baseline and found now, or null when nothing differs. */
function pairEvent(b: FileEntry, c: FileEntry): DiffEvent | null {
  // Nothing was recorded of what this path held (lstat failed then): what it holds now is new to the baseline,
  // and rated as an addition (a setuid file there is high), never passed over as "no change".
  if (b.type === "unknown" && c.type !== "unknown") return { kind: "added", path: c.path, before: b, after: c, changes: [], content: true };
  // What was recorded can no longer be examined (lstat fails now): it cannot be verified, as if it were gone.
  if (b.type !== "unknown" && c.type === "unknown") return { kind: "changed", path: c.path, before: b, after: c, changes: [`type ${b.type}→unknown`], content: true };
  const { changes, content } = diffEntry(b, c);
  return changes.length > 0 ? { kind: "changed", path: c.path, before: b, after: c, changes, content } : null;
}

/**
 * Merges baseline entries and scanned entries (both in comparePaths order). Baseline entries
 * outside `roots` are ignored, so a compare of one sub-tree does not report the rest as removed.
 * Scanned entries that vanished mid-scan count as absent. A path unexaminable in the baseline and examinable now
 * is "added"; the reverse is "changed" to type unknown; unexaminable on both sides, it is not compared.
 * With `lookUp`, what the baseline recorded under a directory the scan could not list is examined by name
 * (scan.ts lookUpEntry) and compared, not reported as removed: a setuid program trojaned in place there is a change.
 * With `excludedNow` as well, so is what it recorded under a directory this compare excludes and the baseline did not
 * (the directory examined now, as lookUpEntry has it; directories there, the exclusion's own included, as excludedPair
 * compares them): a compare's exclusion leaves out what is new under it, never what the signed baseline covers.
 *
 * @example
 * for await (const d of diffEntries(reader.entries(), scanTree(roots), roots)) console.log(d.kind, d.path);
 */
export async function* diffEntries(
  baseline: AsyncIterable<FileEntry>,
  current: AsyncIterable<FileEntry>,
  roots: readonly string[],
  lookUp?: (path: string, under: FileEntry) => Promise<FileEntry>,
  excludedNow?: (path: string) => Promise<FileEntry | null>,
): AsyncGenerator<DiffEvent> {
  const inScope = (e: FileEntry): boolean => roots.some((r) => isWithin(e.path, r));
  const bIt = baseline[Symbol.asyncIterator]();
  const cIt = current[Symbol.asyncIterator]();
  const nextB = async (): Promise<FileEntry | null> => {
    for (let e = await nextOf(bIt); e !== null; e = await nextOf(bIt)) if (inScope(e)) return e;
    return null;
  };
  const nextC = async (): Promise<FileEntry | null> => {
    for (let e = await nextOf(cIt); e !== null; e = await nextOf(cIt)) if (e.status !== "vanished") return e;
    return null;
  };
  let b = await nextB();
  let c = await nextC();
  // The last directory the scan reached but could not list: the baseline's entries under it were not scanned.
  let unlisted: FileEntry | null = null;
  // The last directory recorded under it that a lookup found gone or no longer a directory: what was under it is gone.
  let gone: string | null = null;
  const advanceC = async (): Promise<void> => {
    if (c !== null && c.type === "dir" && c.status === "unreadable") unlisted = c;
    c = await nextC();
  };
  const lookedUp = async (e: FileEntry): Promise<FileEntry | null> => {
    if (lookUp === undefined || unlisted === null || e.path === unlisted.path || !isWithin(e.path, unlisted.path)) return null;
    if (gone !== null && isWithin(e.path, gone)) return null;
    const found = await lookUp(e.path, unlisted);
    if (e.type === "dir" && (found.status === "vanished" || (found.type !== "unknown" && found.type !== "dir"))) gone = e.path;
    return found;
  };
  // A recorded entry the scan did not reach: looked up by name under an unlistable directory or an exclusion of this
  // compare only; else removed.
  const unmatched = async (e: FileEntry): Promise<DiffEvent | null> => {
    const removed: DiffEvent = { kind: "removed", path: e.path, before: e, after: null, changes: [], content: true };
    let found = await lookedUp(e);
    if (found === null && lookUp !== undefined && excludedNow !== undefined) {
      const exclusion = await excludedNow(e.path);
      if (exclusion !== null) {
        if (exclusion.path === e.path) return exclusion.status === "vanished" ? removed : excludedPair(e, exclusion);
        // Gone or no longer a directory: what was recorded under it is gone too.
        if (exclusion.type !== "dir" || exclusion.status === "vanished") return removed;
        found = await lookUp(e.path, exclusion);
        if (found.status !== "vanished") return excludedPair(e, found);
      }
    }
    if (found === null || found.status === "vanished") return removed;
    return pairEvent(e, found);
  };
  // Both sides are closed however the merge ends (a baseline line that throws, a consumer that stops): a scan left
  // suspended would keep its directories open, and its descriptors stale, for the life of the process.
  try {
    while (b !== null || c !== null) {
      const order = b === null ? 1 : c === null ? -1 : comparePaths(b.path, c.path);
      if (order < 0 && b !== null) {
        const event = await unmatched(b);
        if (event !== null) yield event;
        b = await nextB();
      } else if (order > 0 && c !== null) {
        yield { kind: "added", path: c.path, before: null, after: c, changes: [], content: true };
        await advanceC();
      } else if (b !== null && c !== null) {
        const event = pairEvent(b, c);
        if (event !== null) yield event;
        b = await nextB();
        await advanceC();
      }
    }
  } finally {
    await Promise.allSettled([cIt.return?.(), bIt.return?.()]);
  }
}
