// Shared pieces of the check tests: what the nft output would block, whether setcap is installed, a file digest, a
// verify run that watches what it opens.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { verifyDownloads, type VerifyDownloadsOptions, type VerifyDownloadsResult } from "../../src/checks/downloads/index.ts";
import { nodeScanFS } from "../../src/checks/files/hash-file.ts";
import type { LightMyRequestResponse } from "fastify";
import type { AuthFixture } from "../../src/http/auth/test-client.ts";

/**
 * The addresses inside the `elements = { … }` blocks of the nft output: what `nft -f` would block.
 *
 * @example
 * nftElements("  elements = {\n    203.0.113.9,\n  }") // ["203.0.113.9"]
 */
export function nftElements(text: string): string[] {
  const out: string[] = [];
  let inside = false;
  for (const line of text.split("\n")) {
    if (/elements = \{$/.test(line)) inside = true;
    else if (inside && /^\s*\}$/.test(line)) inside = false;
    else if (inside) out.push(line.trim().replace(/,$/, ""));
  }
  return out;
}

/** Whether `setcap` is installed (`setcap -h` exits 1 after its usage; only a missing binary, ENOENT, means it is not). */
export const setcapAvailable: boolean = (() => {
  try {
    execFileSync("setcap", ["-h"], { stdio: "ignore" });
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ENOENT";
  }
})();

/** The hex SHA-256 of `data`, as a SHA256SUMS line records it. */
export const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

/**
 * Runs verifyDownloads with `onOpen` called before each file the verifier opens (nodeScanFS.open), then puts the
 * real open back: where a test counts opens, or plays an attacker swapping a path at the instant it is opened.
 */
export async function verifyWatchingOpens(input: VerifyDownloadsOptions, onOpen: (path: string) => void): Promise<VerifyDownloadsResult> {
  const open = nodeScanFS.open;
  nodeScanFS.open = async (p, flags) => {
    onOpen(p);
    return open(p, flags);
  };
  try {
    return await verifyDownloads(input);
  } finally {
    nodeScanFS.open = open;
  }
}

/**
 * A sign-in attempt from the client address `address`, same-origin, as JSON: the audit events `check logins` reads.
 *
 * @example
 * await loginFrom(fx, "ana@example.org", "wrong", "203.0.113.9") // 401, one auth.login.failed from that address
 */
export function loginFrom(fx: AuthFixture, identifier: string, password: string, address: string): Promise<LightMyRequestResponse> {
  return fx.server.inject({ method: "POST", url: "/auth/login", remoteAddress: address, headers: { host: "bulwark.test", origin: "https://bulwark.test", "content-type": "application/json" }, payload: JSON.stringify({ identifier, password }) });
}
