// Scratch space for a test file: a temp root removed after the file's tests, with fresh directories and fresh data
// dir paths under it; a test's own temp dir; a wait with a safety net; and the argon2 settings of tests that are
// not about hash cost.
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, type TestContext } from "node:test";

/**
 * The temp dir for tests whose subject judges paths under /dev: the downloads check refuses a checksum file there
 * (it would look the listed files up in /dev) and the files check rates a device node under /dev as expected.
 * `npm test` puts TMPDIR on /dev/shm when it can (test/run.ts) and passes the disk temp dir it replaced as
 * BULWARK_TEST_DISK_TMPDIR; a file run alone uses the temp dir.
 */
export function diskTmpdir(): string {
  return process.env["BULWARK_TEST_DISK_TMPDIR"] || tmpdir();
}

/** argon2id settings for tests that are not about hash cost (BULWARK_ARGON2_*; start-up warns about them). */
export const CHEAP_ARGON2 = { BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" } as const;

export interface ScratchRoot {
  /** The temp root, by its real path (verifiers compare resolved paths). */
  root: string;
  /** A new directory under the root, never the same twice. */
  fresh: (name: string) => string;
  /** A new data dir path, `<root>/site-N/data`, not created (bulwark init creates it and its parent). */
  dataDir: () => string;
}

/**
 * Call at a test file's top level: the root is removed after the file's tests. `outsideDev`: under diskTmpdir().
 *
 * @example
 * const { root, fresh, dataDir } = scratchRoot("bulwark-redteam-downloads-");
 * const release = fresh("release");
 */
export function scratchRoot(prefix: string, options: { outsideDev?: boolean } = {}): ScratchRoot {
  const root = realpathSync(mkdtempSync(join(options.outsideDev ? diskTmpdir() : tmpdir(), prefix)));
  after(() => rmSync(root, { recursive: true, force: true }));
  let dirs = 0;
  let sites = 0;
  return {
    root,
    fresh: (name) => {
      const dir = join(root, `${name}-${++dirs}`);
      mkdirSync(dir);
      return dir;
    },
    dataDir: () => join(root, `site-${++sites}`, "data"),
  };
}

/** A temp directory removed when test `t` ends. */
export function testDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Resolves with `promise`'s value, or with "timeout" when it has not settled within `ms` (a safety net, not a timing assertion). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
