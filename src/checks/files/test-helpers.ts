// Helpers for the files and downloads tests: an Ed25519 Signer like the keyring's, and temp dirs.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, sign, verify } from "node:crypto";
import { mkdirSync, mkdtempSync, realpathSync } from "node:fs";
import { diskTmpdir } from "../../../test/helpers/scratch.ts";
import { join } from "node:path";
import { after } from "node:test";
import type { Signer } from "../../crypto/signer.ts";
import type { Finding } from "../finding.ts";

/** A Signer holding one fresh Ed25519 key under `keyId`; verifies only that key, as a keyring would. */
export function testSigner(keyId: string = "sk_test"): Signer {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    keyId,
    sign: (data: Uint8Array): Uint8Array => new Uint8Array(sign(null, data, privateKey)),
    verify: (id: string, data: Uint8Array, signature: Uint8Array): boolean => {
      if (id !== keyId) return false;
      try {
        return verify(null, data, publicKey, signature);
      } catch {
        return false;
      }
    },
    // The only key, current since the start.
    keyTimes: (id: string) => (id === keyId ? { createdAt: 0, retiredAt: null } : null),
  };
}

/**
 * A new temporary directory, with symlinks resolved so recorded paths match what tests expect. Outside /dev
 * (diskTmpdir): the checks under test judge paths under /dev.
 */
export function tempDir(prefix: string): string {
  return realpathSync(mkdtempSync(join(diskTmpdir(), prefix)));
}

/**
 * A new temporary directory (tempDir) holding an empty `tree/` to scan, with room beside it for a baseline
 * (`baseline`, not created). The caller removes `root`.
 */
export function treeSandbox(prefix: string): { root: string; tree: string; baseline: string } {
  const root = tempDir(prefix);
  const tree = join(root, "tree");
  mkdirSync(tree);
  return { root, tree, baseline: join(root, "b.jsonl") };
}

/** "id/severity" of every finding whose evidence lists the entry `path`: how a compare rated it. */
export function ratingsOf(findings: readonly Finding[], path: string): string[] {
  return findings
    .filter((f) => ((f.evidence["entries"] as Array<{ path: string }> | undefined) ?? []).some((e) => e.path === path))
    .map((f) => `${f.id}/${f.severity}`);
}

/**
 * A maker of tree sandboxes (treeSandbox) under `prefix`, every one removed after the calling test file's tests, with
 * `rm -rf` rather than rmSync: it removes trees deeper than PATH_MAX (openat), which some tests build. Call it at the
 * top of a test file.
 *
 * @example
 * const sandbox = treeSandboxes("bulwark-files-");
 * const { tree, baseline } = sandbox();
 */
export function treeSandboxes(prefix: string): () => { root: string; tree: string; baseline: string } {
  const roots: string[] = [];
  after(() => {
    for (const root of roots) execFileSync("rm", ["-rf", root]);
  });
  return () => {
    const box = treeSandbox(prefix);
    roots.push(box.root);
    return box;
  };
}
