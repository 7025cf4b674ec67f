// Reads one entry of a journald export in `journalctl -o json` (or json-seq): one JSON object a line. The entry is
// turned into the syslog line journalctl -o short-unix would print for it, which the rest of the check reads.

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

/**
 * The line `journalctl -o short-unix` prints for the entry `line` holds ("SECONDS.MICROS HOST IDENT[PID]: MESSAGE"),
 * or null when `line` is no journal entry (not JSON, or no MESSAGE or __REALTIME_TIMESTAMP). The program is
 * SYSLOG_IDENTIFIER (else _COMM), the PID SYSLOG_PID (else _PID), the host _HOSTNAME: the fields journalctl's short
 * formats print.
 *
 * @example
 * journalLine('{"__REALTIME_TIMESTAMP":"1796464800000123","_HOSTNAME":"web","SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"7","MESSAGE":"Failed password for root from 203.0.113.9 port 22 ssh2"}');
 * // "1796464800.000123 web sshd[7]: Failed password for root from 203.0.113.9 port 22 ssh2"
 */
export function journalLine(line: string): string | null {
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
  const pid = text(e["SYSLOG_PID"]) ?? text(e["_PID"]);
  const tag = pid !== null && /^\d{1,10}$/.test(pid) ? `${ident}[${pid}]:` : `${ident}:`;
  return `${seconds}.${fraction} ${host === null ? "" : `${host} `}${tag} ${message}`;
}
