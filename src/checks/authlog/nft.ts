// Prints offenders as an nftables ruleset fragment ready for `nft -f`: one table with an IPv4
// and an IPv6 address set, and an interval set for IPv6 /64s. Host names (UseDNS) cannot go into an
// address set, and loopback and --ignore'd addresses must not: both are listed as comments.
import { isIP } from "node:net";
import { addressFamily, clientKeyOf } from "./address.ts";
import { IgnoreList } from "./ignore-list.ts";

export interface NftOptions {
  /** Table name (default "bulwark"). */
  table?: string;
  /** Set name prefix; "_v4" and "_v6" are appended (default "authlog_offenders"). */
  set?: string;
  /** What stays out of the sets (default: loopback only; --ignore adds to it). */
  ignore?: IgnoreList;
}

/**
 * The set of IPv6 /64s (with the default names). A set of its own, not the address set with `flags interval`: an
 * address set loaded by an earlier run keeps its definition (nft refuses to redeclare a set with other flags), and
 * an interval set refuses a /64 next to an address inside it ("conflicting intervals") — in one file, or against
 * what an earlier run loaded — failing the whole load. /64s never overlap one another.
 */
export const NFT_NETS_SET = "authlog_offenders_v6_nets";

/** An IPv6 /64 in CIDR form, as the analyzer reports a network offender. */
function isIPv6Prefix(entry: string): boolean {
  const slash = entry.indexOf("/");
  return slash > 0 && entry.slice(slash) === "/64" && isIP(entry.slice(0, slash)) === 6;
}

function elements(addresses: string[]): string[] {
  if (addresses.length === 0) return [];
  // nft rejects "elements = { }", so an empty set simply has no elements line.
  const lines = ["    elements = {"];
  addresses.forEach((a, i) => lines.push(`      ${a}${i < addresses.length - 1 ? "," : ""}`));
  lines.push("    }");
  return lines;
}

/** The 64:ff9b::/96 address of the IPv4 address next to `ipv4` (its last bit flipped). */
function translatedNeighbour(ipv4: string): string {
  const [a, b, c, d] = ipv4.split(".").map(Number) as [number, number, number, number];
  return `64:ff9b::${((a << 8) | b).toString(16)}:${((c << 8) | (d ^ 1)).toString(16)}`;
}

/**
 * Renders the sets. Load with `nft -f FILE`, then match with e.g.
 * `ip saddr @authlog_offenders_v4 tcp dport 22 drop` (and likewise `ip6 saddr` for the _v6 and _v6_nets sets).
 * An IPv6 /64 ("2001:db8:1:2::/64") goes into the _v6_nets set.
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
  // The IPv4 clients of the 64:ff9b::/96 addresses, decided on their own (below).
  const embedded = new Set<string>();
  for (const a of new Set(addresses)) {
    // A link-local address is kept with its zone (address.ts): fe80::1 on eth0 and on eth1 are two hosts, and an
    // ipv6_addr set has no interface, so the set would block the address on every link (a guest on eth0 could give
    // itself the admin's address on eth1 and have it blocked). Listed instead, for a rule with iifname by hand; the
    // zone is [A-Za-z0-9_.-] only (scanAddress), so it cannot end the comment.
    const zone = a.indexOf("%");
    // A 64:ff9b::/96 address is one IPv4 client (address.ts clientKeyOf): what keeps that IPv4 address out keeps both
    // forms out; what keeps the translated form out (an --ignore of the translator's prefix) keeps only that form out,
    // and the IPv4 client, which may have offended natively too, is still blocked.
    const client = clientKeyOf(a);
    const clientReason = client === a ? null : ignore.reason(client);
    // An --ignore of this translated address alone names the client: both forms out. One covering its neighbours too
    // (the translator's prefix) says nothing of the client.
    if (client !== a && clientReason === null && (ignore.reason(a) === null || ignore.reason(translatedNeighbour(client)) !== null)) embedded.add(client);
    const reason = zone > 0 ? `link-local, on interface ${a.slice(zone + 1)} only: block with iifname by hand` : (ignore.reason(a) ?? (clientReason && `its IPv4 client ${client}: ${clientReason}`));
    // Only a valid IP address or /64 (net.isIP) has a reason: no newline can end the comment early.
    if (reason === null) kept.push(a);
    else skipped.push(`# not blocked (${reason}): ${a}`);
  }
  // A NAT64 client (64:ff9b::/96, 64:ff9b:1::/48) is an address of its own, not a /64 (address.ts ipv6GroupOf): its
  // IPv6 form, what the translated packets carry here, goes into the _v6 set, blocking that one IPv4 client. For the
  // well-known /96 the IPv4 address it embeds goes into the _v4 set too: the analyzer counts the two as one client and
  // shows the translated form once a failure came that way, so both ways in are blocked (on a host the translator
  // alone reaches, the IPv4 element matches nothing).
  const v4 = [...new Set([...kept.filter((a) => addressFamily(a) === 4), ...embedded])].sort();
  const nets = kept.filter(isIPv6Prefix).sort();
  const v6 = kept.filter((a) => addressFamily(a) === 6 && !isIPv6Prefix(a)).sort();
  const names = addresses.filter((a) => addressFamily(a) === 0);
  const out = [
    `# SSH offenders found by bulwark check authlog: ${v4.length} IPv4, ${v6.length} IPv6${nets.length > 0 ? `, ${nets.length} IPv6 /64` : ""}.`,
    ...(nets.length > 0 ? [`# IPv6 /64s from which several addresses failed are in set ${set}_v6_nets: match it too, e.g. ip6 saddr @${set}_v6_nets tcp dport 22 drop`] : []),
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
    `  set ${set}_v6_nets {`,
    "    type ipv6_addr",
    "    flags interval",
    ...elements(nets),
    "  }",
    "}",
  ];
  return `${out.join("\n")}\n`;
}
