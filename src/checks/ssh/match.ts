// Match blocks: parsing a "Match" line into criteria and testing them against a connection, with
// sshd's semantics (servconf.c match_cfg_line): all criteria must hold, a criterion whose connection
// field is unknown does not hold, "All" stands alone.
import { SshMatchSpecError } from "./errors.ts";
import { strdelim } from "./lexer.ts";
import { strtonum } from "./numbers.ts";
import { addressMatchList, matchPatternList } from "./patterns.ts";
import type { ServiceLookup } from "./services.ts";

/** The connection a configuration is evaluated for (sshd -T -C user=..,host=..,addr=..). */
export interface MatchContext {
  user?: string;
  host?: string;
  addr?: string;
  laddr?: string;
  lport?: number;
  rdomain?: string;
  /** Groups of the user, for "Match Group" (sshd looks them up in the system databases). */
  groups?: readonly string[];
}

export type Attribute = "all" | "user" | "group" | "host" | "address" | "localaddress" | "localport" | "rdomain";

export interface Criterion {
  attribute: Attribute;
  /** As written, e.g. "10.0.0.0/8,!10.9.0.0/16"; empty for "all". */
  value: string;
  /** LocalPort: the port the value names, a number or a service name (criterionPort); see localPort(). */
  port?: number;
}

export interface ParseCriteriaOptions {
  /** How a LocalPort given by service name resolves (sshd's getservbyname); default: no names known. */
  services?: ServiceLookup;
}

const ATTRIBUTES = new Set<string>(["user", "group", "host", "address", "localaddress", "localport", "rdomain"]);

/**
 * Parses what follows "Match". Returns the criteria, or an error message as sshd words it.
 *
 * @example
 * parseCriteria("User alice Address 10.0.0.0/8"); // [{attribute:"user",value:"alice"},{attribute:"address",value:"10.0.0.0/8"}]
 */
export function parseCriteria(rest: string, options: ParseCriteriaOptions = {}): Criterion[] | string {
  const out: Criterion[] = [];
  let pos = 0;
  for (;;) {
    const attr = pos < 0 ? null : strdelim(rest, pos);
    if (attr === null || attr.token === "") break;
    if (attr.token.startsWith("#")) break;
    const name = attr.token.toLowerCase();
    if (name === "all") {
      const after = attr.next < 0 ? null : strdelim(rest, attr.next);
      if (out.length > 0 || (after !== null && after.token !== "" && !after.token.startsWith("#"))) {
        return "'all' cannot be combined with other Match attributes";
      }
      return [{ attribute: "all", value: "" }];
    }
    if (!ATTRIBUTES.has(name)) return `Unsupported Match attribute ${attr.token}`;
    const value = attr.next < 0 ? null : strdelim(rest, attr.next);
    if (value === null || value.token === "" || value.token.startsWith("#")) return `Missing Match criteria for ${attr.token}`;
    if (name === "address" || name === "localaddress") {
      if (addressMatchList(null, value.token) !== 0) return `Invalid Match ${name === "address" ? "address" : "localaddress"} argument '${value.token}'`;
    }
    if (name === "localport") {
      const port = criterionPort(value.token, options.services);
      if (port === null) return `Invalid LocalPort '${value.token}' on Match line`;
      out.push({ attribute: "localport", value: value.token, port });
    } else {
      out.push({ attribute: name as Attribute, value: value.token });
    }
    pos = value.next;
  }
  if (out.length === 0) return "One or more attributes required for Match";
  return out;
}

/**
 * A port as sshd's a2port() reads it: strtonum 0-65535, which takes leading blanks, a sign and any number of leading
 * zeros as strtoll does ("-0" is 0, "000…022" is 22; a LocalPort 0 never matches, a Port 0 is refused), else (a
 * number out of range too) a service name getservbyname(name, "tcp") knows ("ssh" is 22 in /etc/services; names
 * compare exactly, "SSH" is unknown).
 */
export function criterionPort(text: string, services?: ServiceLookup): number | null {
  return strtonum(text, 0, 65535) ?? services?.(text) ?? null;
}

/** The port a LocalPort criterion names: as parsed (a service name resolved), else its digits. */
export function localPort(c: Criterion): number | null {
  return c.port ?? criterionPort(c.value);
}

function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

/** Whether one criterion holds for `ctx`. Without a connection (load time) only "All" holds. */
export function criterionHolds(c: Criterion, ctx: MatchContext | undefined): boolean {
  if (c.attribute === "all") return true;
  if (ctx === undefined) return false;
  switch (c.attribute) {
    case "user":
      return ctx.user !== undefined && matchPatternList(ctx.user, c.value, false) === 1;
    case "group":
      return ctx.groups !== undefined && ctx.groups.some((g) => matchPatternList(g, c.value, false) === 1) && !ctx.groups.some((g) => matchPatternList(g, c.value, false) === -1);
    case "host":
      return ctx.host !== undefined && matchPatternList(ctx.host, c.value, true) === 1;
    case "address":
      return ctx.addr !== undefined && addressMatchList(ctx.addr, c.value) === 1;
    case "localaddress":
      return ctx.laddr !== undefined && addressMatchList(ctx.laddr, c.value) === 1;
    case "localport":
      // Compared by number: "LocalPort ssh" and "LocalPort 22" are one port.
      return ctx.lport !== undefined && ctx.lport === localPort(c);
    case "rdomain":
      return ctx.rdomain !== undefined && matchPatternList(ctx.rdomain, c.value, false) === 1;
  }
}

/** "Address 10.0.0.0/8 User alice": how a block is named in findings. */
export function describeCriteria(criteria: readonly Criterion[]): string {
  const name: Record<Attribute, string> = {
    all: "All", user: "User", group: "Group", host: "Host", address: "Address", localaddress: "LocalAddress", localport: "LocalPort", rdomain: "RDomain",
  };
  return criteria.map((c) => (c.attribute === "all" ? "All" : `${name[c.attribute]} ${c.value}`)).join(" ");
}

/**
 * Parses a --match / sshd -C specification: "user=U,host=H,addr=A[,laddr=L,lport=P,rdomain=R]".
 *
 * @example
 * parseMatchSpec("user=alice,host=example.org,addr=10.1.2.3"); // { user: "alice", host: "example.org", addr: "10.1.2.3" }
 */
export function parseMatchSpec(spec: string): MatchContext {
  const ctx: MatchContext = {};
  if (spec.length > 4096) throw new SshMatchSpecError("--match is longer than 4096 characters");
  for (const part of spec.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new SshMatchSpecError(`--match entries look like user=U,host=H,addr=A; got "${part}"`);
    const key = part.slice(0, eq).toLowerCase();
    const value = part.slice(eq + 1);
    if (value === "") throw new SshMatchSpecError(`--match ${key}= needs a value`);
    switch (key) {
      case "user": ctx.user = value; break;
      case "host": ctx.host = value; break;
      case "addr": ctx.addr = value; break;
      case "laddr": ctx.laddr = value; break;
      case "rdomain": ctx.rdomain = value; break;
      case "lport": {
        const port = parsePort(value);
        if (port === null) throw new SshMatchSpecError(`--match lport must be a port number 1-65535, got "${value}"`);
        ctx.lport = port;
        break;
      }
      default:
        throw new SshMatchSpecError(`--match knows user, host, addr, laddr, lport and rdomain; got "${key}"`);
    }
  }
  return ctx;
}
