// Splits a syslog line into time stamp, connection key (host and sshd PID) and message, for the
// formats auth logs come in: BSD syslog (with FreeBSD syslogd -v/-vv's "<4.6>"/"<auth.info>" before the host, or
// BusyBox syslogd's "auth.info" after it), rsyslog's RFC 3339 file format, journalctl's short formats, and RFC 5424.
// Lines of other programs are recognised cheaply and skipped.
import { parseStamp, type ParsedStamp } from "./timestamp.ts";

export type LineShape = "sshd" | "other" | "malformed";

/** Filled in by `splitLine` (`connection` and `messageAt` only when it returns "sshd"). Reused between lines: no allocation. */
export interface SshdLine {
  stamp: ParsedStamp;
  /**
   * Where the syslog host field lies in the line (start === end when the line has none, as in "sshd[1]: …"), for
   * "sshd" and "other" lines: the year of zone-less stamps is inferred host by host.
   */
  hostStart: number;
  hostEnd: number;
  /** Host and program token, e.g. "srv sshd[123]:": identifies one sshd connection process. */
  connection: string;
  /** Index in the line where sshd's message starts. */
  messageAt: number;
}

const SSHD_NAMES = ["sshd", "sshd-session", "sshd-auth"];

/**
 * Index just after a program token naming sshd at i ("sshd[123]:", "sshd:", "[sshd]:", "[sshd]",
 * "sshd-session[9]:" — the forms fail2ban's prefix accepts), or -1.
 */
function sshdProgram(s: string, i: number): number {
  let j = i;
  const open = s.charCodeAt(j);
  if (open === 91 || open === 40) j++;
  if (!s.startsWith("sshd", j)) return -1;
  j += 4;
  // OpenSSH 9.8+ logs from "sshd-session", 10.x also from "sshd-auth".
  if (s.charCodeAt(j) === 45) {
    if (s.startsWith("-session", j)) j += 8;
    else if (s.startsWith("-auth", j)) j += 5;
  }
  let c = s.charCodeAt(j);
  if (c === 40 /* ( */) {
    // "sshd(pam_unix)[123]:"
    const close = s.indexOf(")", j);
    if (close < 0 || close - j > 64) return -1;
    j = close + 1;
    c = s.charCodeAt(j);
  }
  if (c === 93 || c === 41) c = s.charCodeAt(++j);
  if (c === 58) c = s.charCodeAt(++j);
  if (c === 91 /* [PID] */) {
    j++;
    const start = j;
    while (s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
    if (j === start || s.charCodeAt(j) !== 93) return -1;
    c = s.charCodeAt(++j);
    if (c === 58) c = s.charCodeAt(++j);
  }
  return c === 32 || c === 9 || Number.isNaN(c) ? j : -1;
}

/**
 * Sets the host field's bounds: the token at i, unless it is the program ("CRON[12]:", "sshd:", "[sshd]"), as in
 * a log written without host names. A host name never ends with ':' or ']'.
 */
function hostField(s: string, i: number, out: SshdLine): void {
  let j = i;
  while (j < s.length && s.charCodeAt(j) !== 32 && s.charCodeAt(j) !== 9) j++;
  const last = s.charCodeAt(j - 1);
  out.hostStart = i;
  out.hostEnd = j === i || last === 58 || last === 93 ? i : j;
}

function skipSpaces(s: string, i: number): number {
  while (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9) i++;
  return i;
}

function tokenEnd(s: string, i: number): number {
  while (i < s.length && s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 9) i++;
  return i;
}

// syslog's facility and level names (<syslog.h> facilitynames and prioritynames, FreeBSD's "console" and "ntp" too).
const FACILITIES = [
  "auth", "authpriv", "console", "cron", "daemon", "ftp", "kern", "lpr", "mail", "mark", "news", "ntp", "security", "syslog", "user", "uucp",
  "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];
const LEVELS = ["alert", "crit", "debug", "emerg", "err", "error", "info", "none", "notice", "panic", "warn", "warning"];

/** Whether s[i, end) is exactly one of `names`, or with `digits` a number of one to three digits. Allocates nothing. */
function nameOrNumber(s: string, i: number, end: number, names: readonly string[], digits: boolean): boolean {
  if (digits && end > i && end - i <= 3) {
    let j = i;
    while (j < end && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
    if (j === end) return true;
  }
  return names.some((n) => n.length === end - i && s.startsWith(n, i));
}

/**
 * Whether s[i, end) is "FACILITY.LEVEL" ("auth.info"), with `digits` also in numbers ("4.6"): the facility and
 * priority some syslog daemons write into each line.
 */
function facilityLevel(s: string, i: number, end: number, digits: boolean): boolean {
  const dot = s.indexOf(".", i);
  return dot > i && dot < end - 1 && nameOrNumber(s, i, dot, FACILITIES, digits) && nameOrNumber(s, dot + 1, end, LEVELS, digits);
}

/**
 * Index of the host after FreeBSD syslogd's "<4.6> " (-v) or "<auth.info> " (-vv) at i, which it writes between the
 * stamp and the host (fail2ban's sshd prefregex skips it); `i` when there is none.
 */
function afterPriority(s: string, i: number): number {
  const end = tokenEnd(s, i);
  return s.charCodeAt(end - 1) === 62 /* > */ && facilityLevel(s, i + 1, end - 1, true) ? skipSpaces(s, end) : i;
}

/** RFC 5424 after the time stamp: HOST APP PROCID MSGID SD MSG. */
function rfc5424(s: string, i: number, out: SshdLine): LineShape {
  const fields: number[] = [];
  let j = i;
  for (let k = 0; k < 4; k++) {
    j = skipSpaces(s, j);
    const start = j;
    while (j < s.length && s.charCodeAt(j) !== 32) j++;
    if (j === start) return "malformed";
    fields.push(start, j);
  }
  const app = s.slice(fields[2], fields[3]);
  if (!SSHD_NAMES.includes(app)) return "other";
  j = skipSpaces(s, j);
  if (s.charCodeAt(j) === 45 /* - */) j++;
  else {
    // Structured data: one or more [ID param="value"…]; ']' inside a quoted value does not close.
    while (s.charCodeAt(j) === 91) {
      let quoted = false;
      j++;
      for (; j < s.length; j++) {
        const c = s.charCodeAt(j);
        if (c === 92 /* \ */) j++;
        else if (c === 34) quoted = !quoted;
        else if (c === 93 && !quoted) break;
      }
      if (j >= s.length) return "malformed";
      j++;
    }
  }
  j = skipSpaces(s, j);
  // A UTF-8 byte-order mark before MSG, as latin1 text.
  if (s.startsWith("\u00ef\u00bb\u00bf", j)) j += 3;
  out.connection = `${s.slice(fields[0], fields[1])} ${app}[${s.slice(fields[4], fields[5])}]`;
  out.messageAt = j;
  return "sshd";
}

/**
 * Parses the prefix of `line`. Returns "malformed" when there is no time stamp, "other" for
 * other programs, and "sshd" with `out` filled in otherwise.
 *
 * @example
 * const out = { stamp: emptyStamp(), hostStart: 0, hostEnd: 0, connection: "", messageAt: 0 };
 * splitLine("Nov 22 23:44:31 web sshd[77]: Invalid user x from 192.0.2.1", out); // "sshd"
 */
export function splitLine(line: string, out: SshdLine): LineShape {
  if (!parseStamp(line, out.stamp)) return "malformed";
  // Cheap rejection first: most lines of an auth log come from other programs.
  const hint = line.indexOf("sshd", out.stamp.end);
  let i = skipSpaces(line, out.stamp.end);
  if (i === out.stamp.end && i < line.length) return "malformed";
  if (line.charCodeAt(0) === 60) {
    hostField(line, i, out);
    return hint < 0 ? "other" : rfc5424(line, i, out);
  }
  if (line.charCodeAt(i) === 60) i = afterPriority(line, i);
  hostField(line, i, out);
  if (hint < 0) return "other";
  const hostAt = i;
  let end = sshdProgram(line, i);
  if (end < 0) {
    // The first token is the host name; the program follows it.
    i = skipSpaces(line, tokenEnd(line, i));
    end = sshdProgram(line, i);
    if (end < 0) {
      // BusyBox syslogd (Alpine's /var/log/messages) writes "HOST auth.info sshd[N]: …" unless started with -S.
      const word = tokenEnd(line, i);
      if (!facilityLevel(line, i, word, false)) return "other";
      const programAt = skipSpaces(line, word);
      end = sshdProgram(line, programAt);
      if (end < 0) return "other";
      // Without the level: sshd logs one connection at several ("error: PAM: …" at auth.err), and it is one connection.
      out.connection = `${line.slice(hostAt, out.hostEnd)} ${line.slice(programAt, end)}`;
      out.messageAt = skipSpaces(line, end);
      return "sshd";
    }
  }
  out.connection = line.slice(hostAt, end);
  out.messageAt = skipSpaces(line, end);
  return "sshd";
}
