// Parses the times users type: ISO 8601 dates and times (UTC unless they carry an offset), or an age such as 30m, 24h, 7d.
import { impossibleDate } from "../lib/calendar.ts";
import { InputError } from "../lib/errors.ts";

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Throws when the date names a day that does not exist (see impossibleDate). */
function checkCalendarDate(text: string, option: string): void {
  const why = impossibleDate(text);
  if (why !== null) throw new InputError("BULWARK_ERR_USAGE", `${option}: "${text.slice(0, 40)}" is not a date: ${why}`);
}

/**
 * Returns epoch milliseconds. `now` anchors relative ages. A date or date-time without an offset is UTC, whatever
 * the host's time zone: a date alone always was, and a date-time read in the host's zone named a window hours away
 * from the same text given as a date (`2026-11-01` and `2026-11-01T00:00` differed by five hours in New York), and
 * from what the same command meant on another server. An explicit offset (`Z`, `+02:00`) is honoured.
 *
 * @example
 * parseTime("2026-11-01T04:00", "--created-after", now) // Date.UTC(2026, 10, 1, 4)
 */
export function parseTime(text: string, option: string, now: number): number {
  const trimmed = text.trim();
  const age = /^(\d{1,6})([smhdw])$/.exec(trimmed);
  if (age) return now - Number(age[1]) * (UNITS[age[2] as string] as number);
  const iso = /^(\d{4}-\d{2}-\d{2})(?:[T ]([\d:.]+)(Z|[+-]\d{2}:?\d{2})?)?$/.exec(trimmed);
  if (iso) {
    checkCalendarDate(trimmed, option);
    const [, date, time, offset] = iso;
    const ms = Date.parse(`${date}T${time ?? "00:00:00"}${offset ?? "Z"}`);
    if (!Number.isNaN(ms)) return ms;
  }
  throw new InputError("BULWARK_ERR_USAGE", `${option} must be an ISO 8601 date/time (2026-11-01, 2026-11-01T04:00:00Z; UTC unless an offset is given) or an age such as 30m, 24h, 7d; got "${trimmed.slice(0, 40)}"`);
}

/** Parses a duration such as 10m, 6h, 30d into milliseconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d{1,9})([smhdw])$/.exec(text.trim());
  if (!m) throw new InputError("BULWARK_ERR_USAGE", `${option} must be a duration such as 90s, 10m, 6h, 30d; got "${text.trim().slice(0, 40)}"`);
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}
