// Addresses kept out of the --format nft blocklist: loopback and the host's own addresses always, and what --ignore names. A line anyone can
// write (`logger -t 'sshd[1]'`, a forged packet to a central syslog) must not get the host cut off from itself.
import { BlockList, isIP } from "node:net";
import type { NetworkInterfaceInfo } from "node:os";
import { AuthLogOptionError } from "./errors.ts";

/**
 * Never blocked: the host's own loopback traffic (SSH tunnels, onion services, local automation). Forging its
 * failures takes only a local `logger`; fail2ban's ignoreself keeps the host's own addresses unbanned for the same reason.
 */
const LOOPBACK: ReadonlyArray<readonly [string, number, "ipv4" | "ipv6"]> = [
  ["127.0.0.0", 8, "ipv4"],
  ["::1", 128, "ipv6"],
];

const LOOPBACK_REASON = "loopback, this host itself";

/**
 * The addresses of this host's own interfaces, as os.networkInterfaces() lists them (loopback aside: always kept out).
 * A local user forging sshd's failures from the server's public address would otherwise have the nft set cut the host
 * off from itself (its own monitoring, a reverse proxy, a jump through its public address).
 *
 * @example
 * new IgnoreList(opts.ignore, hostAddresses(networkInterfaces()));
 */
export function hostAddresses(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): Array<{ address: string; name: string }> {
  const found: Array<{ address: string; name: string }> = [];
  for (const [name, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) if (!info.internal && isIP(info.address) !== 0) found.push({ address: info.address, name });
  }
  return found;
}

interface Rule {
  list: BlockList;
  address: string;
  family: "ipv4" | "ipv6";
  reason: string;
}

function rule(address: string, prefix: number, family: "ipv4" | "ipv6", reason: string): Rule {
  const list = new BlockList();
  list.addSubnet(address, prefix, family);
  return { list, address, family, reason };
}

/** One --ignore value: an IPv4 or IPv6 address, or a CIDR range of either. */
function parseEntry(entry: string): Rule {
  const slash = entry.indexOf("/");
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const version = isIP(address);
  const max = version === 4 ? 32 : 128;
  const bits = slash < 0 ? String(max) : entry.slice(slash + 1);
  if (version === 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    throw new AuthLogOptionError(`--ignore must be an IP address or CIDR range (e.g. 192.0.2.7, 10.0.0.0/8, 2001:db8::/32), got "${entry.slice(0, 80)}"`);
  }
  return rule(address, Number(bits), version === 4 ? "ipv4" : "ipv6", `--ignore ${entry}`);
}

/**
 * Says why an address stays out of the blocklist: loopback, or the --ignore entry that covers it.
 *
 * @example
 * const ignore = new IgnoreList(["10.0.0.0/8"]);
 * ignore.reason("127.0.0.1"); // "loopback, this host itself"
 * ignore.reason("10.1.2.3"); // "--ignore 10.0.0.0/8"
 * ignore.reason("203.0.113.9"); // null
 */
export class IgnoreList {
  readonly #rules: Rule[];

  /**
   * Throws AuthLogOptionError for an entry that is neither an address nor a CIDR range. `own` are this host's
   * addresses (hostAddresses), each kept out as loopback is.
   */
  constructor(entries: readonly string[] = [], own: ReadonlyArray<{ address: string; name: string }> = []) {
    this.#rules = [
      ...LOOPBACK.map(([a, p, f]) => rule(a, p, f, LOOPBACK_REASON)),
      ...own.map(({ address, name }) => (isIP(address) === 4 ? rule(address, 32, "ipv4", `this host's own address (${name})`) : rule(address, 128, "ipv6", `this host's own address (${name})`))),
      ...entries.map(parseEntry),
    ];
  }

  /**
   * Why `address` (as the analyzer normalises it, or an IPv6 network such as "2001:db8:1:2::/64") is not to be
   * blocked, or null. A network is kept out when it overlaps a rule at all: blocking it would block what the rule
   * protects. Host names are never matched.
   */
  reason(address: string): string | null {
    const slash = address.indexOf("/");
    if (slash >= 0) return this.#networkReason(address.slice(0, slash), address.slice(slash + 1));
    const version = isIP(address);
    if (version === 0) return null;
    const family = version === 4 ? "ipv4" : "ipv6";
    return this.#rules.find((r) => r.list.check(address, family))?.reason ?? null;
  }

  #networkReason(base: string, bits: string): string | null {
    if (isIP(base) !== 6 || !/^\d{1,3}$/.test(bits) || Number(bits) > 128) return null;
    const network = rule(base, Number(bits), "ipv6", "");
    // CIDR ranges are nested or disjoint: they overlap exactly when one holds a point of the other.
    return this.#rules.find((r) => r.family === "ipv6" && (r.list.check(base, "ipv6") || network.list.check(r.address, "ipv6")))?.reason ?? null;
  }
}
