// Shared set-up of the `check downloads` attack files: a scratch root removed after the file's tests, fresh
// directories under it, and the digest a checksum list records.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

/** The hex SHA-256 of `data`, as a SHA256SUMS line records it. */
export const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

/**
 * A temp root (its real path: the verifier compares resolved paths) removed after the calling file's tests, and
 * `fresh(name)`: a new directory under it, never the same twice.
 *
 * @example
 * const { root, fresh } = scratchRoot("bulwark-redteam-downloads-");
 * const release = fresh("release");
 */
export function scratchRoot(prefix: string): { root: string; fresh: (name: string) => string } {
  const root = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  after(() => rmSync(root, { recursive: true, force: true }));
  let seq = 0;
  return {
    root,
    fresh: (name) => {
      const dir = join(root, `${name}-${++seq}`);
      mkdirSync(dir);
      return dir;
    },
  };
}
