// Service names as sshd's a2port() reads a port that is not a number ("Port ssh", "Match LocalPort ssh"):
// getservbyname(name, "tcp"), which on Debian reads /etc/services (nsswitch.conf "services: files").
import { readFileSync } from "node:fs";

/** The TCP port a service name (or alias) stands for, compared exactly as getservbyname() does, or null when unknown. */
export type ServiceLookup = (name: string) => number | null;

/**
 * services(5) text to a lookup: "name port/protocol [aliases…] [# comment]", TCP entries only, the first
 * entry naming a service winning (glibc's files backend reads the file in order and stops at the first).
 *
 * @example
 * parseServices("ssh\t\t22/tcp\t\t# SSH Remote Login Protocol\n")("ssh"); // 22
 */
export function parseServices(text: string): ServiceLookup {
  const ports = new Map<string, number>();
  for (const line of text.split("\n")) {
    const fields = (line.split("#")[0] as string).trim().split(/[ \t]+/);
    const m = /^(\d{1,5})\/(\S+)$/.exec(fields[1] ?? "");
    if (m === null || m[2] !== "tcp" || Number(m[1]) > 65535) continue;
    for (const name of [fields[0] as string, ...fields.slice(2)]) if (!ports.has(name)) ports.set(name, Number(m[1]));
  }
  return (name) => ports.get(name) ?? null;
}

/**
 * The lookup sshd gets on this machine: /etc/services, read once on first use. When it cannot be read no name
 * is known, and a port given by name is refused, as sshd refuses it then.
 */
export function systemServices(path = "/etc/services"): ServiceLookup {
  let lookup: ServiceLookup | undefined;
  return (name) => {
    if (lookup === undefined) {
      try {
        lookup = parseServices(readFileSync(path, "latin1"));
      } catch {
        lookup = () => null;
      }
    }
    return lookup(name);
  };
}
