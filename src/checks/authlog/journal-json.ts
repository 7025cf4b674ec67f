// Reads one entry of a journald export in `journalctl -o json` (or json-seq): one JSON object a line. The entry is
// turned into the syslog line journalctl -o short-unix would print for it, which the rest of the check reads, and
// journald's own record of the writer (_UID, _EXE, _SYSTEMD_UNIT) says whether sshd wrote it.

/**
 * A field's value as log text (one char per byte, as the check decodes files): journalctl writes a value that is not
 * UTF-8 as an array of its bytes, a valid one as a string (its UTF-8 bytes are already one char each, since the line
 * was decoded as latin1). Null for anything else: a missing field, null (a value above journalctl's size limit), or
 * an array of values (a field the entry holds more than once: which one sshd meant cannot be told).
 */
function text(value: unknown): string | null {
  if (typeof value === "string") {
    // A \u escape above U+00FF (journalctl writes none: it escapes control characters only) as its UTF-8 bytes.
    for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0xff) return Buffer.from(value, "utf8").toString("latin1");
    return value;
  }
  if (!Array.isArray(value)) return null;
  let out = "";
  for (const b of value) {
    if (typeof b !== "number" || !Number.isInteger(b) || b < 0 || b > 255) return null;
    out += String.fromCharCode(b);
  }
  return out;
}

/** A host name or program name as one word of a syslog line: no white space, else not taken. */
function word(value: unknown): string | null {
  const t = text(value);
  return t !== null && t.length > 0 && t.length <= 255 && !/\s/.test(t) ? t : null;
}

/** What `journalEntry` makes of one entry. */
export interface JournalEntry {
  /** The line `journalctl -o short-unix` prints for it ("SECONDS.MICROS HOST IDENT[PID]: MESSAGE"). */
  line: string;
  /**
   * Who journald says wrote it ("uid 33, exe /usr/bin/logger, unit php8.2-fpm.service") when that is not sshd running as
   * root; null when it is, or when the export carries none of journald's fields about the writer (nothing to go by).
   */
  untrustedWriter: string | null;
}

// The fields journald sets from the writing process's credentials and /proc: the writer cannot choose them (systemd.journal-fields(7)).
const TRUSTED_FIELDS = ["_UID", "_EXE", "_SYSTEMD_UNIT", "_TRANSPORT"];
// OpenSSH's binaries: sshd, and from 9.8 sshd-session (10.x also sshd-auth) for each connection.
const SSHD_BINARIES = new Set(["sshd", "sshd-session", "sshd-auth"]);
// ssh.service (Debian), sshd.service (Fedora, Arch), and the per-connection units of socket activation (ssh@….service).
const SSHD_UNIT = /^sshd?(?:@[^/]*)?\.service$/;

/**
 * Null when journald's fields say sshd wrote the entry, else who did. sshd's when its executable is an OpenSSH binary or
 * its unit sshd's, and it ran as root: the monitor, root, writes every authentication message (the privsep child logs
 * through it); a process of a logged-in user's session runs as that user and writes none. _COMM is not looked at: a
 * process names itself (prctl PR_SET_NAME). SYSLOG_IDENTIFIER and SYSLOG_PID are the writer's own words (logger -t).
 */
function untrustedWriter(e: Record<string, unknown>): string | null {
  const uid = text(e["_UID"]);
  const exe = text(e["_EXE"]);
  const unit = text(e["_SYSTEMD_UNIT"]);
  const binary = exe === null ? null : exe.slice(exe.lastIndexOf("/") + 1);
  const sshd = (binary !== null && SSHD_BINARIES.has(binary)) || (unit !== null && SSHD_UNIT.test(unit));
  if (sshd && (e["_UID"] === undefined || uid === "0")) return null;
  const transport = text(e["_TRANSPORT"]);
  const parts = [`uid ${uid ?? "?"}`, `exe ${exe ?? "?"}`, `unit ${unit ?? "?"}`];
  if (transport !== null) parts.push(`transport ${transport}`);
  return parts.join(", ");
}

/**
 * The entry `line` holds, or null when it is no journal entry (not JSON, or no MESSAGE or __REALTIME_TIMESTAMP). The
 * program is SYSLOG_IDENTIFIER (else _COMM), the host _HOSTNAME: the fields journalctl's short formats print. The PID is
 * _PID when the export carries journald's fields about the writer (the process that wrote it, which it cannot choose:
 * a forged entry cannot join a real sshd connection), else SYSLOG_PID (else _PID), as journalctl prints it.
 *
 * @example
 * journalEntry('{"__REALTIME_TIMESTAMP":"1796464800000123","_HOSTNAME":"web","SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"7","_PID":"7","_UID":"33","_EXE":"/usr/bin/logger","MESSAGE":"Failed password for root from 192.0.2.10 port 22 ssh2"}');
 * // { line: "1796464800.000123 web sshd[7]: Failed password for root from 192.0.2.10 port 22 ssh2",
 * //   untrustedWriter: "uid 33, exe /usr/bin/logger, unit ?" }
 */
export function journalEntry(line: string): JournalEntry | null {
  // json-seq (RFC 7464) starts each record with RS.
  const start = line.charCodeAt(0) === 30 ? 1 : 0;
  if (line.charCodeAt(start) !== 123 /* { */) return null;
  let entry: unknown;
  try {
    entry = JSON.parse(start === 0 ? line : line.slice(start));
  } catch {
    return null;
  }
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) return null;
  const e = entry as Record<string, unknown>;
  const message = text(e["MESSAGE"]);
  const micros = e["__REALTIME_TIMESTAMP"];
  // Microseconds since the epoch; more than 17 digits would lie past the year 5000 (the stamp parser bounds it further).
  if (message === null || typeof micros !== "string" || !/^\d{1,17}$/.test(micros)) return null;
  const seconds = micros.length > 6 ? micros.slice(0, -6) : "0";
  const fraction = micros.slice(-6).padStart(6, "0");
  const host = word(e["_HOSTNAME"]);
  const ident = word(e["SYSLOG_IDENTIFIER"]) ?? word(e["_COMM"]) ?? "-";
  const attributed = TRUSTED_FIELDS.some((f) => e[f] !== undefined);
  const pid = attributed ? (text(e["_PID"]) ?? text(e["SYSLOG_PID"])) : (text(e["SYSLOG_PID"]) ?? text(e["_PID"]));
  const tag = pid !== null && /^\d{1,10}$/.test(pid) ? `${ident}[${pid}]:` : `${ident}:`;
  // An export stripped of journald's fields (--output-fields) has nothing to go by: read as before, as a syslog file is.
  return { line: `${seconds}.${fraction} ${host === null ? "" : `${host} `}${tag} ${message}`, untrustedWriter: attributed ? untrustedWriter(e) : null };
}

/**
 * The line `journalctl -o short-unix` prints for the entry `line` holds, or null (see `journalEntry`).
 *
 * @example
 * journalLine('{"__REALTIME_TIMESTAMP":"1796464800000123","_HOSTNAME":"web","SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"7","MESSAGE":"Failed password for root from 203.0.113.9 port 22 ssh2"}');
 * // "1796464800.000123 web sshd[7]: Failed password for root from 203.0.113.9 port 22 ssh2"
 */
export function journalLine(line: string): string | null {
  return journalEntry(line)?.line ?? null;
}
