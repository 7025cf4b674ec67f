// Time stamps of auth-log lines: BSD syslog "Mon DD HH:MM:SS" (no year, no zone), ISO 8601 /
// RFC 3339 as rsyslog and `journalctl -o short-iso` write them, the RFC 5424 header, and journalctl's -o short-full
// ("Sat 2026-12-05 10:00:00 UTC") and -o short-unix ("1796464800.000123").
// Hand-written scanners over char codes: no regex, no allocation on the hot path. The missing year of BSD stamps is
// inferred in year-resolver.ts.

// Keyed by the three char codes packed in one number, so looking a month up allocates nothing.
const MONTHS: ReadonlyMap<number, number> = new Map(
  ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map((m, i) => [monthKey(m, 0), i]),
);

function monthKey(s: string, i: number): number {
  return s.charCodeAt(i) * 65536 + s.charCodeAt(i + 1) * 256 + s.charCodeAt(i + 2);
}

/** What a time stamp at the start of a line gave. `end` is the index just after it. */
export interface ParsedStamp {
  /** BSD stamps carry no year: `year` is -1 and the caller resolves it. */
  year: number;
  month: number;
  day: number;
  /** Milliseconds since local midnight. */
  msOfDay: number;
  /** Offset from UTC in minutes when the stamp says it; null for zone-less stamps. */
  offsetMinutes: number | null;
  end: number;
}

function digit(s: string, i: number): number {
  const c = s.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : -1;
}

function two(s: string, i: number): number {
  const a = digit(s, i);
  const b = digit(s, i + 1);
  return a < 0 || b < 0 ? -1 : a * 10 + b;
}

/** Parses "HH:MM:SS[.frac]" at i; returns ms of day and the end, or null. */
function clock(s: string, i: number, out: ParsedStamp): boolean {
  const h = two(s, i);
  const m = two(s, i + 3);
  const sec = two(s, i + 6);
  if (h < 0 || m < 0 || sec < 0 || s.charCodeAt(i + 2) !== 58 || s.charCodeAt(i + 5) !== 58) return false;
  // 60 allows a leap second; anything larger is not a clock.
  if (h > 23 || m > 59 || sec > 60) return false;
  let end = i + 8;
  let ms = 0;
  if (s.charCodeAt(end) === 46 /* . */ || s.charCodeAt(end) === 44 /* , */) {
    let scale = 100;
    let j = end + 1;
    // Bounded: at most 9 fraction digits are read, the rest of a long digit run is skipped.
    while (j < s.length && j - end <= 12 && digit(s, j) >= 0) {
      if (scale >= 1) ms += digit(s, j) * scale;
      scale /= 10;
      j++;
    }
    if (j === end + 1) return false;
    end = j;
  }
  out.msOfDay = ((h * 60 + m) * 60 + sec) * 1000 + Math.floor(ms);
  out.end = end;
  return true;
}

function bsd(s: string, out: ParsedStamp): boolean {
  const month = MONTHS.get(monthKey(s, 0));
  if (month === undefined || s.charCodeAt(3) !== 32) return false;
  // "Feb  7", "Feb 07" and the unpadded "Feb 7" all occur in the wild.
  let i = 4;
  if (s.charCodeAt(i) === 32) i++;
  let day = digit(s, i);
  if (day < 0) return false;
  i++;
  const d2 = digit(s, i);
  if (d2 >= 0) {
    day = day * 10 + d2;
    i++;
  }
  if (day < 1 || day > 31 || s.charCodeAt(i) !== 32) return false;
  if (!clock(s, i + 1, out)) return false;
  out.year = -1;
  out.month = month;
  out.day = day;
  out.offsetMinutes = null;
  return true;
}

function iso(s: string, start: number, out: ParsedStamp): boolean {
  const y = two(s, start) * 100 + two(s, start + 2);
  if (two(s, start) < 0 || two(s, start + 2) < 0 || s.charCodeAt(start + 4) !== 45 || s.charCodeAt(start + 7) !== 45) return false;
  const month = two(s, start + 5);
  const day = two(s, start + 8);
  const sep = s.charCodeAt(start + 10);
  if (month < 1 || month > 12 || day < 1 || day > 31 || (sep !== 84 /* T */ && sep !== 32)) return false;
  if (!clock(s, start + 11, out)) return false;
  let i = out.end;
  let offset: number | null = null;
  const c = s.charCodeAt(i);
  if (c === 90 /* Z */) {
    offset = 0;
    i++;
  } else if (c === 43 || c === 45) {
    // "+01:00" (RFC 3339) and "+0100" (journalctl short-iso).
    const oh = two(s, i + 1);
    const colon = s.charCodeAt(i + 3) === 58 ? 1 : 0;
    const om = two(s, i + 3 + colon);
    if (oh < 0 || om < 0 || oh > 23 || om > 59) return false;
    offset = (c === 45 ? -1 : 1) * (oh * 60 + om);
    i += 5 + colon;
  }
  out.year = y;
  out.month = month - 1;
  out.day = day;
  out.offsetMinutes = offset;
  out.end = i;
  return true;
}

// journalctl -o short-full writes the weekday first ("Sat 2026-12-05 10:00:00 UTC").
const WEEKDAYS: ReadonlySet<number> = new Set(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map((d) => monthKey(d, 0)));

/**
 * journalctl -o short-full: "Sat 2026-12-05 10:00:00 CET", the zone as strftime's %Z. An abbreviation does not say its
 * offset (IST is three zones): UTC and GMT are read as such, a numeric one ("+03", tzdata's name for zones without an
 * abbreviation) as its offset, any other leaves the stamp zone-less (read in --utc-offset's zone, as BSD stamps are).
 */
function shortFull(s: string, out: ParsedStamp): boolean {
  if (!WEEKDAYS.has(monthKey(s, 0)) || s.charCodeAt(3) !== 32 || !iso(s, 4, out) || out.offsetMinutes !== null) return false;
  let i = out.end;
  if (s.charCodeAt(i) !== 32) return false;
  const start = ++i;
  const sign = s.charCodeAt(i);
  if (sign === 43 || sign === 45) {
    const oh = two(s, i + 1);
    if (oh < 0 || oh > 23) return false;
    i += 3;
    const colon = s.charCodeAt(i) === 58 ? 1 : 0;
    const om = two(s, i + colon);
    if (om >= 0) {
      if (om > 59) return false;
      i += 2 + colon;
    }
    out.offsetMinutes = (sign === 45 ? -1 : 1) * (oh * 60 + Math.max(om, 0));
  } else {
    // Abbreviations are letters, at most six of them ("ChST").
    while (i - start <= 6 && ((s.charCodeAt(i) | 32) >= 97 && (s.charCodeAt(i) | 32) <= 122)) i++;
    if (i === start || i - start > 6) return false;
    if ((i - start === 3 && (s.startsWith("UTC", start) || s.startsWith("GMT", start))) || (i - start === 1 && s.charCodeAt(start) === 90)) out.offsetMinutes = 0;
  }
  if (i < s.length && s.charCodeAt(i) !== 32) return false;
  out.end = i;
  return true;
}

/** Days since 1970-01-01 to a UTC calendar date (Hinnant's civil_from_days), without a Date. */
function civil(days: number, out: ParsedStamp): void {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 3 : mp - 9;
  out.year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  out.month = month - 1;
  out.day = doy - Math.floor((153 * mp + 2) / 5) + 1;
}

/** The last second of 9999: dates stay within the years --year accepts, as inferred ones do. */
const MAX_UNIX_SECONDS = 253_402_300_799;

/**
 * journalctl -o short-unix: "1796464800.000123 host …", seconds since the epoch and always six digits of microseconds
 * (the six digits are what tell it from a line that merely starts with a number).
 */
function unix(s: string, out: ParsedStamp): boolean {
  let i = 0;
  let seconds = 0;
  while (i < 12 && digit(s, i) >= 0) seconds = seconds * 10 + digit(s, i++);
  if (i === 0 || s.charCodeAt(i) !== 46 || seconds > MAX_UNIX_SECONDS) return false;
  let micros = 0;
  for (let k = 1; k <= 6; k++) {
    const d = digit(s, i + k);
    if (d < 0) return false;
    micros = micros * 10 + d;
  }
  i += 7;
  if (i < s.length && s.charCodeAt(i) !== 32) return false;
  const days = Math.floor(seconds / 86_400);
  civil(days, out);
  out.msOfDay = (seconds - days * 86_400) * 1000 + Math.floor(micros / 1000);
  out.offsetMinutes = 0;
  out.end = i;
  return true;
}

/**
 * Parses the time stamp a syslog line starts with, into `out`. Returns false when the line does
 * not start with a known stamp. RFC 5424 lines ("<PRI>1 2026-…") are recognised by their header, journalctl's
 * short-full by its weekday, short-unix by its six digits of microseconds.
 *
 * @example
 * const out = emptyStamp();
 * parseStamp("Nov 22 23:44:31 host sshd[1]: x", out); // true, out.month === 10
 */
export function parseStamp(s: string, out: ParsedStamp): boolean {
  const c = s.charCodeAt(0);
  if (c >= 65 && c <= 90) return bsd(s, out) || shortFull(s, out);
  if (c >= 48 && c <= 57) return iso(s, 0, out) || unix(s, out);
  if (c === 60 /* < */) {
    // RFC 5424: "<PRI>VERSION SP TIMESTAMP"; PRI is at most 3 digits, VERSION is 1 (or 2 digits).
    const close = s.indexOf(">", 1);
    if (close < 2 || close > 4) return false;
    let i = close + 1;
    while (i < s.length && i < close + 4 && digit(s, i) >= 0) i++;
    if (i === close + 1 || s.charCodeAt(i) !== 32) return false;
    return iso(s, i + 1, out);
  }
  return false;
}

/**
 * A scratch stamp for `parseStamp` to fill (reused between lines).
 *
 * @example
 * const stamp = emptyStamp();
 */
export function emptyStamp(): ParsedStamp {
  return { year: -1, month: 0, day: 1, msOfDay: 0, offsetMinutes: null, end: 0 };
}

export { YearResolver, type YearResolverOptions } from "./year-resolver.ts";
