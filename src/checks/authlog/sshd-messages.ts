// Recognises sshd's messages (the part after "sshd[PID]: ") that fail2ban's sshd filter in
// aggressive mode acts on. Dispatch is on the first character and fixed prefixes; the few regexes
// (rare message kinds only) have no nested quantifiers, so a hostile line costs linear time.
import { scanAddress } from "./address.ts";
import { atEnd, findFrom, skipOnPort, skipSshTag, suffixToEnd } from "./scan.ts";
import {
  addressAfter, algWords, closed, connectionLine, disconnecting, kex, negotiate, pamFailure, receivedDisconnect, serverLog,
} from "./sshd-connection-messages.ts";
import { ev, type Effect, type SshdEvent } from "./sshd-event.ts";

export type { Effect, SshdEvent } from "./sshd-event.ts";

/** Kind of a "Failed METHOD" line. A switch, not an object lookup: "constructor" is a method too. */
function failedKind(method: string): string {
  switch (method) {
    case "password":
      return "failed-password";
    case "publickey":
      return "failed-publickey";
    case "keyboard-interactive":
    case "keyboard-interactive/pam":
      return "failed-keyboard-interactive";
    case "hostbased":
      return "failed-hostbased";
    case "none":
      return "failed-none";
    default:
      return "failed-other";
  }
}

const NOT_ALLOWED = [
  " not allowed because not listed in AllowUsers",
  " not allowed because listed in DenyUsers",
  " not allowed because not in any group",
  " not allowed because a group is listed in DenyGroups",
  " not allowed because none of user's groups are listed in AllowGroups",
];

/** Tail of "Failed METHOD for USER from HOST": port/on, ssh tag, then the end or ": details". */
function failedTail(s: string, i: number): boolean {
  const j = skipSshTag(s, skipOnPort(s, i));
  return j === s.length || s.startsWith(": ", j);
}

/**
 * "USER from HOST…" at `userStart`, as sshd writes it in Failed and Accepted lines ("%s for %s%.100s from %.200s port %d
 * ssh2%s%s": the user name as the client sent it, spaces and all, and an auth-info after it). The leftmost "from HOST"
 * that sshd's own format can end with: a user name such as "x from 6.6.6.6 port 1 ssh2" is then followed by the real
 * " from …" and is not taken. `other` is the rightmost such reading when it names another address: a user name holding
 * " from VICTIM port 22 ssh2: ", or an auth-info holding " from HOST port N ssh2", makes the line read two ways (the
 * connection tracker picks the one its sshd process already logged).
 */
function userFrom(m: string, userStart: number): { address: string; user: string; other: { address: string; user: string } | null } | null {
  const f = findFrom(m, userStart, failedTail, "first");
  if (!f) return null;
  // Only a line with a second " from " can read two ways: the common line pays one indexOf, not a second scan.
  const last = m.indexOf(" from ", f.at + 6) < 0 ? null : findFrom(m, f.at + 1, failedTail, "last");
  const other = last && last.at !== f.at && last.address !== f.address ? { address: last.address, user: m.slice(userStart, last.at) } : null;
  return { address: f.address, user: m.slice(userStart, Math.max(userStart, f.at)), other };
}

function failed(m: string): SshdEvent | null {
  const sp = m.indexOf(" ", 7);
  if (sp < 8 || !m.startsWith(" for ", sp)) return null;
  const method = m.slice(7, sp);
  let userStart = sp + 5;
  const invalid = m.startsWith("invalid user ", userStart);
  if (invalid) userStart += 13;
  const f = userFrom(m, userStart);
  if (!f) return null;
  const kind = failedKind(method);
  // A failed public key of an existing user is normal (clients offer several keys): like
  // fail2ban (publickey=nofail) it counts only if the connection then fails or changes user.
  const effect: Effect = method === "publickey" && !invalid ? "nofail" : "fail";
  const e = ev(kind, effect, false, f.address, f.user);
  e.method = method;
  e.invalidUser = invalid;
  if (f.other) e.otherReading = f.other;
  return e;
}

/**
 * "Accepted METHOD for USER from HOST port N ssh2[: INFO]". The user name is read as in failed(): a directory account
 * (SSSD, winbind) can hold a space ("john smith"), and taking one word after " for " dropped the login altogether.
 */
function accepted(m: string): SshdEvent | null {
  const sp = m.indexOf(" ", 9);
  if (sp < 10 || !m.startsWith(" for ", sp)) return null;
  const method = m.slice(9, sp);
  const f = userFrom(m, sp + 5);
  if (!f || f.user === "") return null;
  const kind = method.startsWith("keyboard-interactive") ? "accepted-keyboard-interactive" : method === "password" || method === "publickey" ? `accepted-${method}` : "accepted-other";
  const e = ev(kind, "gained", true, f.address, f.user);
  e.method = method;
  if (f.other) e.otherReading = f.other;
  return e;
}

function viaSuffixTail(s: string, i: number): boolean {
  if (s.startsWith(" via ", i)) {
    let j = i + 5;
    while (j < s.length && s.charCodeAt(j) !== 32) j++;
    i = j;
  }
  return suffixToEnd(s, i);
}

/** "Authentication failure for USER from HOST" (PAM through sshd, also "error"/"failed"). */
function authFailure(m: string): SshdEvent | null {
  const rest = m.slice(1);
  let i = -1;
  for (const p of ["uthentication failure for ", "uthentication error for ", "uthentication failed for "]) {
    if (rest.startsWith(p)) i = p.length + 1;
  }
  if (i < 0) return null;
  const f = findFrom(m, i - 1, viaSuffixTail, "last");
  return f ? ev("auth-failure", "fail", false, f.address, m.slice(i, Math.max(i, f.at))) : null;
}

function invalidUser(m: string): SshdEvent | null {
  const f = findFrom(m, 12, suffixToEnd, "first");
  if (!f) return null;
  const e = ev("invalid-user", "fail", false, f.address, m.slice(13, Math.max(13, f.at)));
  e.invalidUser = true;
  return e;
}

function userLine(m: string): SshdEvent | null {
  const unknown = "User not known to the underlying authentication module for ";
  if (m.startsWith(unknown)) {
    const f = findFrom(m, unknown.length - 1, suffixToEnd, "last");
    if (!f) return null;
    const e = ev("unknown-user", "fail", false, f.address, m.slice(unknown.length, Math.max(unknown.length, f.at)));
    e.invalidUser = true;
    return e;
  }
  const locked = m.indexOf(" not allowed because account is locked", 5);
  if (locked >= 0) return ev("account-locked", "fail", false, null, m.slice(5, locked));
  const f = findFrom(m, 4, (s, i) => NOT_ALLOWED.some((r) => s.startsWith(r, i) && suffixToEnd(s, i + r.length)), "first");
  return f ? ev("user-not-allowed", "fail", false, f.address, m.slice(5, Math.max(5, f.at))) : null;
}

/**
 * Index where the message proper starts, after the prefixes sshd and some platforms add
 * (Solaris "[ID …]", a journal's "kernel:[…]", sshd's "error: " / "fatal: " and "PAM: ").
 *
 * @example
 * messageStart("error: PAM: Authentication failure for x from 1.2.3.4", 0); // 12
 */
export function messageStart(m: string, i: number): number {
  // Fast path: most messages start with none of the optional prefixes below.
  const c = m.charCodeAt(i);
  if (c !== 91 /* [ */ && c !== 107 /* k */ && c !== 101 /* e */ && c !== 102 /* f */) return i;
  // Solaris: "[ID 800047 auth.info] ".
  if (m.startsWith("[ID ", i)) {
    const close = m.indexOf("] ", i);
    if (close > 0 && close - i < 64) i = close + 2;
  }
  // systemd journals can carry a kernel time prefix: "kernel:[  970.699396]: " or "kernel: [12.5] ".
  if (m.startsWith("kernel:", i)) {
    let j = i + 7;
    if (m.charCodeAt(j) === 32) j++;
    const close = m.charCodeAt(j) === 91 ? m.indexOf("]", j) : -1;
    if (close > 0 && close - j < 32 && /^\[ *\d+\.\d+$/.test(m.slice(j, close))) {
      j = close + 1;
      if (m.charCodeAt(j) === 58) j++;
      while (m.charCodeAt(j) === 32) j++;
      i = j;
    }
  }
  if (m.startsWith("error: ", i) || m.startsWith("fatal: ", i)) {
    i += 7;
    if (m.startsWith("PAM: ", i)) i += 5;
  }
  return i;
}

/** rsyslog's "$RepeatedMsgReduction" wrapper (on in Ubuntu's default rsyslog.conf). */
const REPEATED = "message repeated ";
/**
 * A larger count is read as this many: one sshd connection logs at most MaxAuthTries failures, and
 * rsyslog merges only identical consecutive messages of one process, so real counts stay far below;
 * the bound keeps a forged line from costing more than this many updates.
 */
export const MAX_REPEAT = 1000;

/**
 * rsyslog replaces identical consecutive messages of one process with
 * "message repeated N times: [ MSG]" (its format "message repeated %d times: [%.800s]", MSG keeping
 * its leading space). Returns where MSG starts and ends in `m` and N (capped at MAX_REPEAT), or null
 * when the message at `i` is not such a line. The first copy was logged normally: the N are more.
 *
 * @example
 * repeatedMessage("message repeated 5 times: [ Failed password for root from 192.0.2.7 port 22 ssh2]", 0); // { start: 28, end: 80, count: 5 }
 */
export function repeatedMessage(m: string, i: number): { start: number; end: number; count: number } | null {
  if (m.charCodeAt(i) !== 109 /* m */ || !m.startsWith(REPEATED, i)) return null;
  let j = i + REPEATED.length;
  const digits = j;
  while (j - digits < 10 && m.charCodeAt(j) >= 48 && m.charCodeAt(j) <= 57) j++;
  if (j === digits || !m.startsWith(" times: [", j)) return null;
  const count = Math.min(Number(m.slice(digits, j)), MAX_REPEAT);
  let end = m.length;
  while (end > j && (m.charCodeAt(end - 1) === 32 || m.charCodeAt(end - 1) === 9)) end--;
  if (m.charCodeAt(end - 1) !== 93 /* ] */ || count < 1) return null;
  let start = j + 9;
  while (m.charCodeAt(start) === 32) start++;
  return start < end - 1 ? { start, end: end - 1, count } : null;
}

const LAST_REPEATED = "last message repeated ";

/**
 * Where the message starts after an optional "syslogd:" or "syslogd[PID]:" tag and its space at `i` (FreeBSD 12 and
 * later write the repeat line as syslogd's own message); `i` when there is none.
 *
 * @example
 * afterSyslogdTag("web syslogd: last message repeated 4 times", 4); // 13
 */
export function afterSyslogdTag(line: string, i: number): number {
  if (!line.startsWith("syslogd", i)) return i;
  let j = i + 7;
  if (line.charCodeAt(j) === 91 /* [ */) {
    const digits = ++j;
    while (j - digits < 10 && line.charCodeAt(j) >= 48 && line.charCodeAt(j) <= 57) j++;
    if (j === digits || line.charCodeAt(j) !== 93 /* ] */) return i;
    j++;
  }
  if (line.charCodeAt(j) !== 58 /* : */ || line.charCodeAt(j + 1) !== 32) return i;
  return j + 2;
}

/**
 * The classic BSD syslogd (FreeBSD, NetBSD, OpenBSD, sysklogd; macOS between "--- " and " ---") folds identical
 * consecutive messages of a host into "HOST last message repeated N time(s)", a line with no program tag that
 * stands for N more of the host's previous message. Returns N (capped at MAX_REPEAT) when the message at `i` is
 * such a line, else 0.
 *
 * @example
 * bsdRepeatCount("Nov 21 04:00:13 web last message repeated 4 times", 20); // 4
 */
export function bsdRepeatCount(line: string, i: number): number {
  if (line.startsWith("--- ", i)) i += 4;
  if (line.charCodeAt(i) !== 108 /* l */ || !line.startsWith(LAST_REPEATED, i)) return 0;
  let j = i + LAST_REPEATED.length;
  const digits = j;
  while (j - digits < 10 && line.charCodeAt(j) >= 48 && line.charCodeAt(j) <= 57) j++;
  if (j === digits || !line.startsWith(" time", j)) return 0;
  const count = Math.min(Number(line.slice(digits, j)), MAX_REPEAT);
  j += 5;
  if (line.charCodeAt(j) === 115 /* s */) j++;
  if (line.startsWith(" ---", j)) j += 4;
  return atEnd(line, j) ? count : 0;
}

/**
 * Classifies one sshd message (without the syslog prefix). Returns null for messages that say
 * nothing about authentication (session opened, Postponed publickey, …).
 *
 * @example
 * classifySshdMessage("Failed password for root from 203.0.113.9 port 4242 ssh2");
 * // { kind: "failed-password", effect: "fail", address: "203.0.113.9", user: "root", … }
 */
export function classifySshdMessage(m: string): SshdEvent | null {
  switch (m.charCodeAt(0)) {
    case 70 /* F */:
      return m.startsWith("Failed ") ? failed(m) : null;
    case 65 /* A */:
      return m.startsWith("Accepted ") ? accepted(m) : authFailure(m);
    case 97 /* a */:
      return authFailure(m);
    case 73 /* I */:
    case 105 /* i */:
      return m.startsWith("nvalid user ", 1) || m.startsWith("llegal user ", 1) ? invalidUser(m) : null;
    case 85 /* U */:
      return m.startsWith("User ") ? userLine(m) : negotiate(m);
    case 82 /* R */:
      if (m.startsWith("ROOT LOGIN REFUSED FROM ")) {
        const a = scanAddress(m, 24);
        return a ? ev("root-refused", "fail", false, a.address, "root") : null;
      }
      if (m.startsWith("Received disconnect from ")) return receivedDisconnect(m);
      return m.startsWith("Read from socket failed: Connection reset by peer") ? ev("socket-reset", "fail", true, null, null) : null;
    case 114 /* r */: {
      if (!m.startsWith("refused connect from ")) return null;
      const open = m.indexOf(" (", 21);
      const a = open > 0 ? scanAddress(m, open + 2) : null;
      return a && m.charCodeAt(a.end) === 41 ? ev("refused-connect", "fail", false, a.address, null) : null;
    }
    case 112 /* p */:
      return m.startsWith("pam_") ? pamFailure(m) : null;
    case 109 /* m */: {
      const p = "maximum authentication attempts exceeded for ";
      if (!m.startsWith(p)) return null;
      const f = findFrom(m, p.length - 1, (s, i) => suffixToEnd(s, skipSshTag(s, skipOnPort(s, i))), "last");
      return f ? ev("max-auth-attempts", "fail", false, f.address, m.slice(p.length, Math.max(p.length, f.at))) : null;
    }
    case 68 /* D */:
      if (m.startsWith("Disconnecting")) return disconnecting(m);
      if (m.startsWith("Disconnected from ")) return closed(m, 17);
      if (m.startsWith("Disconnected by ")) return closed(m, 15);
      return addressAfter(m, "Did not receive identification string from ", "no-identification");
    case 67 /* C */:
      return connectionLine(m);
    case 66 /* B */: {
      if (!m.startsWith("Bad protocol version identification '")) return null;
      const k = m.lastIndexOf("' from ");
      const a = k > 36 ? scanAddress(m, k + 7) : null;
      return a ? ev("bad-protocol", "fail", false, a.address, null) : null;
    }
    case 107 /* k */:
      return kex(m);
    case 83 /* S */:
      return m.startsWith("SSH: Server;Ltype: ") ? serverLog(m) : null;
    case 84 /* T */:
      // "fatal: Timeout before authentication for HOST port N" (LoginGraceTime ran out): the connection is over.
      return m.startsWith("Timeout before authentication") ? ev("auth-timeout", "end", true, null, null) : null;
    case 115 /* s */:
      // "ssh_dispatch_run_fatal: Connection from … : message authentication code incorrect [preauth]" and the like.
      return m.startsWith("ssh_dispatch_run_fatal: ") ? ev("dispatch-fatal", "end", true, null, null) : null;
    case 98 /* b */: {
      if (!m.startsWith("banner exchange: Connection from ")) return null;
      const a = scanAddress(m, 33);
      return a && m.startsWith(": invalid format", skipOnPort(m, a.end)) ? ev("banner-invalid", "fail", false, a.address, null) : null;
    }
    case 110 /* n */: {
      if (!m.startsWith("no matching ")) return null;
      const end = m.indexOf(" found:", 12);
      return end > 0 && algWords(m.slice(12, end)) ? ev("negotiation-failed", "fail", false, null, null) : null;
    }
    default:
      return null;
  }
}

