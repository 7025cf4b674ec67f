// Shared pieces of the check tests: what the nft output would block, and whether setcap is installed.
import { execFileSync } from "node:child_process";

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
