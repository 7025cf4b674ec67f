// Prints offenders as an nftables ruleset fragment ready for `nft -f`: one table with an IPv4
// and an IPv6 set. Host names (UseDNS) cannot go into an address set, and loopback and --ignore'd
// addresses must not: both are listed as comments.
import { addressFamily } from "./address.ts";
import { IgnoreList } from "./ignore-list.ts";

export interface NftOptions {
  /** Table name (default "bulwark"). */
  table?: string;
  /** Set name prefix; "_v4" and "_v6" are appended (default "authlog_offenders"). */
  set?: string;
  /** What stays out of the sets (default: loopback only; --ignore adds to it). */
  ignore?: IgnoreList;
}

function elements(addresses: string[]): string[] {
  if (addresses.length === 0) return [];
  // nft rejects "elements = { }", so an empty set simply has no elements line.
  const lines = ["    elements = {"];
  addresses.forEach((a, i) => lines.push(`      ${a}${i < addresses.length - 1 ? "," : ""}`));
  lines.push("    }");
  return lines;
}

/**
 * Renders the sets. Load with `nft -f FILE`, then match with e.g.
 * `ip saddr @authlog_offenders_v4 tcp dport 22 drop`.
 *
 * @example
 * renderNft(["203.0.113.9", "2001:db8::7"]);
 */
export function renderNft(addresses: readonly string[], options: NftOptions = {}): string {
  const table = options.table ?? "bulwark";
  const set = options.set ?? "authlog_offenders";
  const ignore = options.ignore ?? new IgnoreList();
  const kept: string[] = [];
  const skipped: string[] = [];
  for (const a of new Set(addresses)) {
    const reason = ignore.reason(a);
    // Only a valid IP address (net.isIP) has a reason: no newline can end the comment early.
    if (reason === null) kept.push(a);
    else skipped.push(`# not blocked (${reason}): ${a}`);
  }
  const v4 = kept.filter((a) => addressFamily(a) === 4).sort();
  const v6 = kept.filter((a) => addressFamily(a) === 6).sort();
  const names = addresses.filter((a) => addressFamily(a) === 0);
  const out = [
    `# SSH offenders found by bulwark check authlog: ${v4.length} IPv4, ${v6.length} IPv6.`,
    ...skipped.sort(),
    ...names.map((n) => `# not an address, resolve and block by hand: ${n}`),
    `table inet ${table} {`,
    `  set ${set}_v4 {`,
    "    type ipv4_addr",
    ...elements(v4),
    "  }",
    `  set ${set}_v6 {`,
    "    type ipv6_addr",
    ...elements(v6),
    "  }",
    "}",
  ];
  return `${out.join("\n")}\n`;
}
