// Finds, for a listed name that is absent, a present name that differs from it only in Unicode normalisation or
// letter case: the download a user holds as "cafe\u0301.iso" (NFD, as macOS tools and some archivers write names)
// while the list names "café.iso" (NFC). sha256sum --ignore-missing skips such a name as absent, and the file the
// user installs, the same name on screen, is never read.
import type { OpenDirOptions } from "node:fs";
import { opendir } from "node:fs/promises";
import { nameFromBytes } from "../files/hash-file.ts";

/**
 * Directory entries read in all, per run, to look for look-alike names: a hostile list naming absent files in many
 * large directories must not make the check list them for hours (or hold millions of names). A release directory
 * has a few hundred entries; past the limit, names are no longer compared.
 */
export const LOOKALIKE_SCAN_LIMIT = 200_000;

// Entry names as Buffers: Node takes encoding "buffer" here as in readdir, though @types/node types only text names.
const NAMES_AS_BYTES = { encoding: "buffer" } as unknown as OpenDirOptions;

/**
 * The form two names share when they differ only in normalisation or case: Unicode's canonical caseless match
 * (NFD, case-fold, NFC), with toLowerCase standing in for full case folding.
 *
 * @example
 * foldedName("Cafe\u0301.ISO") === foldedName("caf\u00e9.iso") // true
 */
export function foldedName(name: string): string {
  return name.normalize("NFD").toLowerCase().normalize("NFC");
}

/** Looks up look-alikes of names in directories, listing each directory once (entries folded and kept by form). */
export interface LookalikeFinder {
  /**
   * The names in the directory `dir` (its path as text, and as the bytes to open) that fold to what `name` folds to,
   * `name` itself left out; empty when the directory cannot be listed or the run's listing budget is spent.
   */
  find(dir: string, dirBytes: Buffer, name: string): Promise<string[]>;
}

/**
 * A finder for one run, with its own cache and budget of LOOKALIKE_SCAN_LIMIT entries.
 *
 * @example
 * const twins = await lookalikeFinder().find("/srv/rel", Buffer.from("/srv/rel"), "caf\u00e9.iso"); // ["cafe\u0301.iso"]
 */
export function lookalikeFinder(): LookalikeFinder {
  const listed = new Map<string, Map<string, string[]>>();
  let budget = LOOKALIKE_SCAN_LIMIT;

  async function list(dirBytes: Buffer): Promise<Map<string, string[]>> {
    const byForm = new Map<string, string[]>();
    if (budget <= 0) return byForm;
    try {
      // Names as bytes: one that is not UTF-8 gets its own text (nameFromBytes), never a U+FFFD shared with another.
      for await (const entry of await opendir(dirBytes, NAMES_AS_BYTES)) {
        const name = nameFromBytes(entry.name as unknown as Buffer);
        const form = foldedName(name);
        byForm.set(form, [...(byForm.get(form) ?? []), name]);
        if (--budget <= 0) break;
      }
    } catch {
      // Not listable (permissions, removed meanwhile): no look-alike is found, and the name stays absent.
    }
    return byForm;
  }

  return {
    async find(dir, dirBytes, name) {
      let byForm = listed.get(dir);
      if (byForm === undefined) {
        byForm = await list(dirBytes);
        listed.set(dir, byForm);
      }
      return (byForm.get(foldedName(name)) ?? []).filter((n) => n !== name);
    },
  };
}
