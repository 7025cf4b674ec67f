// Matchers for sshd's connection-level messages: PAM failures, disconnects and closes during
// authentication, failed key exchange and protocol negotiation (fail2ban's ddos/extra modes).
import { scanAddress } from "./address.ts";
import { skipOnPort, suffixToEnd } from "./scan.ts";
import { ev, type SshdEvent } from "./sshd-event.ts";

/** "Received disconnect from HOST[ port N]: CODE: …" — 3 (JSch "Auth fail"), 11 (bye), 14 (no methods). */
export function receivedDisconnect(m: string): SshdEvent | null {
  const a = scanAddress(m, 25);
  if (!a) return null;
  let i = skipOnPort(m, a.end);
  if (m.charCodeAt(i) !== 58) return null;
  i++;
  while (m.charCodeAt(i) === 32) i++;
  if (m.startsWith("3: ", i)) {
    const k = m.lastIndexOf(": Auth fail");
    return k > i && suffixToEnd(m, k + 11) ? ev("disconnect-auth-fail", "fail", true, a.address, null) : null;
  }
  if (m.startsWith("11:", i)) return ev("disconnect-bye", "nofail", true, a.address, null);
  if (m.startsWith("14: No authentication methods available", i) || m.startsWith("14: No supported authentication methods available", i)) {
    return ev("no-auth-methods", "fail", true, a.address, null);
  }
  return null;
}

/** Index after the run of non-blank characters at i. */
function tokenEnd(s: string, i: number): number {
  while (i < s.length && s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 9) i++;
  return i;
}

function blanks(s: string, i: number): number {
  while (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9) i++;
  return i;
}

/** "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=H user=U". */
export function pamFailure(m: string): SshdEvent | null {
  let i = 4;
  while (i < m.length && m.charCodeAt(i) >= 97 && m.charCodeAt(i) <= 122) i++;
  if (i === 4 || !m.startsWith("(sshd:auth):", i)) return null;
  i = blanks(m, i + 12);
  if (!m.startsWith("authentication failure;", i)) return null;
  i = blanks(m, i + 23);
  // Up to four of logname= uid= euid= tty=, in any order, then ruser= and rhost= (fail2ban's order).
  for (let k = 0; k < 4 && pamField(m, i); k++) i = blanks(m, tokenEnd(m, i));
  if (!m.startsWith("ruser=", i)) return null;
  const ruserEnd = tokenEnd(m, i);
  const ruser = m.slice(i + 6, ruserEnd);
  i = blanks(m, ruserEnd);
  if (!m.startsWith("rhost=", i)) return null;
  const hostEnd = tokenEnd(m, i + 6);
  const a = scanAddress(m, i + 6);
  if (!a || a.end !== hostEnd) return null;
  let user: string | null = ruser === "" ? null : ruser;
  i = hostEnd;
  const j = blanks(m, i);
  if (m.startsWith("user=", j)) {
    const userEnd = tokenEnd(m, j);
    if (userEnd > j + 5) user = m.slice(j + 5, userEnd);
    i = userEnd;
  }
  return suffixToEnd(m, i) ? ev("pam-failure", "nofail", false, a.address, user) : null;
}

function digitsBetween(s: string, from: number, to: number): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function pamField(m: string, i: number): boolean {
  return m.startsWith("uid=", i) || m.startsWith("euid=", i) || m.startsWith("tty=", i) || m.startsWith("logname=", i);
}

/**
 * Start of the " port DIGITS" that ends at `e`, or `e` when the text before `e` does not end so.
 * Only sshd writes after the address, so this is its own port and never part of a user name.
 */
function portBefore(m: string, e: number, floor: number): number {
  const sp = m.lastIndexOf(" ", e - 1);
  return sp - 5 >= floor && digitsBetween(m, sp + 1, e) && m.startsWith(" port", sp - 5) ? sp - 5 : e;
}

/**
 * "Connection closed by …", "Connection reset by …", "Disconnected from …": parsed from the right. sshd writes
 * "[invalid |authenticating ]user USER ADDR port N[ [preauth]]", USER as the client sent it (spaces allowed), and the
 * address is the token just before its own " port N". Nothing else is stripped: fail2ban's optional " on IFACE" tail
 * would let a user name ending in " on" ("x VICTIM on") pass VICTIM off as the client, and sshd never writes it here.
 */
export function closed(m: string, prefixEnd: number): SshdEvent | null {
  let e = m.length;
  while (e > prefixEnd && (m.charCodeAt(e - 1) === 32 || m.charCodeAt(e - 1) === 9)) e--;
  let preauth = false;
  if (m.startsWith("[preauth]", e - 9) && m.charCodeAt(e - 10) === 32) {
    preauth = true;
    e -= 10;
    while (e > prefixEnd && m.charCodeAt(e - 1) === 32) e--;
  }
  e = portBefore(m, e, prefixEnd);
  const sp = m.lastIndexOf(" ", e - 1);
  if (sp < prefixEnd) return null;
  const a = scanAddress(m, sp + 1);
  if (!a || a.end !== e) return null;
  let user: string | null = null;
  const who = m.slice(prefixEnd + 1, Math.max(prefixEnd + 1, sp));
  if (who.startsWith("invalid user ")) user = who.slice(13);
  else if (who.startsWith("authenticating user ")) user = who.slice(20);
  // Closing during authentication is a failure (aggressive mode); after it, it only ends the connection.
  return preauth ? ev("preauth-close", "fail", true, a.address, user) : ev("connection-closed", "nofail", true, a.address, user);
}

/**
 * The address of "USER ADDR[ port N]: REST" where USER starts at `from`, and where REST starts. sshd cuts a user
 * name at its first ':' (what follows is a BSD auth style), so the first ':' is either inside an IPv6 ADDR or ends
 * ADDR / its port: the user name, whatever spaces or address-like words it holds, lies entirely before that token.
 */
function addressBeforeColon(m: string, from: number): { address: string; userEnd: number; rest: number } | null {
  const c = m.indexOf(":", from);
  if (c < 0) return null;
  const tokenStart = Math.max(from, m.lastIndexOf(" ", c - 1) + 1);
  let start: number;
  let a = scanAddress(m, tokenStart);
  if (a && a.end > c) start = tokenStart;
  else {
    // IPv4 or a host name: the colon follows the port (or the address itself).
    const e = portBefore(m, c, from);
    start = m.lastIndexOf(" ", e - 1) + 1;
    a = start > from ? scanAddress(m, start) : null;
    if (!a || a.end !== e) return null;
  }
  if (start - 1 < from || m.charCodeAt(start - 1) !== 32) return null;
  let j = a.end;
  if (m.startsWith(" port ", j)) {
    const p = j + 6;
    j = p;
    while (m.charCodeAt(j) >= 48 && m.charCodeAt(j) <= 57) j++;
    if (j === p) return null;
  }
  if (m.charCodeAt(j) !== 58) return null;
  j++;
  while (m.charCodeAt(j) === 32) j++;
  return { address: a.address, userEnd: start - 1, rest: j };
}

export function disconnecting(m: string): SshdEvent | null {
  if (m.startsWith("Disconnecting: Too many authentication failures")) {
    let user: string | null = null;
    if (m.startsWith(" for ", 47)) {
      const end = m.indexOf(" ", 52);
      user = m.slice(52, end < 0 ? m.length : end);
    }
    return ev("too-many-failures", "fail", false, null, user);
  }
  let i = 13;
  if (m.startsWith(" from", i)) i += 5;
  let who = "";
  if (m.startsWith(" invalid user ", i)) who = " invalid user ";
  else if (m.startsWith(" authenticating user ", i)) who = " authenticating user ";
  if (who === "") return null;
  i += who.length;
  const at = addressBeforeColon(m, i);
  if (!at) return null;
  if (!m.startsWith("Change of username or service not allowed:", at.rest) || !m.trimEnd().endsWith("[preauth]")) return null;
  return ev("change-of-user", "fail", true, at.address, m.slice(i, at.userEnd));
}

/** 1–3 words of an algorithm class ("cipher", "key exchange method", "host key type"). */
export function algWords(s: string): boolean {
  const words = s.split(" ");
  return words.length >= 1 && words.length <= 3 && words.every((w) => /^\w+$/.test(w)) && !words.slice(0, -1).includes("found");
}

export function negotiate(m: string): SshdEvent | null {
  if (m.startsWith("Unable to negotiate a ")) return /^\w/.test(m.slice(22, 23)) ? ev("negotiation-failed", "fail", false, null, null) : null;
  if (!m.startsWith("Unable to negotiate with ")) return null;
  const a = scanAddress(m, 25);
  if (!a) return null;
  const i = skipOnPort(m, a.end);
  if (!m.startsWith(": no matching ", i)) return null;
  const end = m.indexOf(" found.", i + 14);
  return end > 0 && algWords(m.slice(i + 14, end)) ? ev("negotiation-failed", "fail", false, a.address, null) : null;
}

export function connectionLine(m: string): SshdEvent | null {
  if (m.startsWith("Connection closed by ") || m.startsWith("Connection reset by ")) return closed(m, m.indexOf(" by ") + 3);
  if (m.startsWith("Connection from ")) {
    const a = scanAddress(m, 16);
    return a ? ev("connection-from", "nofail", false, a.address, null) : null;
  }
  return null;
}

export function addressAfter(m: string, prefix: string, kind: string): SshdEvent | null {
  if (!m.startsWith(prefix)) return null;
  const a = scanAddress(m, prefix.length);
  return a ? ev(kind, "fail", false, a.address, null) : null;
}

export function kex(m: string): SshdEvent | null {
  let i = 29;
  if (!m.startsWith("kex_exchange_identification: ")) return null;
  if (m.startsWith("read: ", i)) i += 6;
  const rest = m.slice(i + 1);
  const c = m.charCodeAt(i);
  if (c !== 67 && c !== 99) return null;
  const ok = rest.startsWith("lient sent invalid protocol identifier") || rest.startsWith("onnection closed by remote host") || rest.startsWith("onnection reset by peer");
  return ok ? ev("kex-identification", "fail", false, null, null) : null;
}

export function serverLog(m: string): SshdEvent | null {
  // Some builds log "SSH: Server;Ltype: Version;Remote: 1.2.3.4-PORT;…": tells who is connecting.
  const m2 = /^SSH: Server;Ltype: (?:Authname|Version|Kex);Remote: ([0-9A-Za-z.:_]{1,253})-\d+;[A-Z]\w*:/.exec(m);
  const a = m2?.[1] ? scanAddress(m2[1], 0) : null;
  return a && a.end === m2?.[1]?.length ? ev("connection-from", "nofail", false, a.address, null) : null;
}
