// Calendar dates as people type them. Date.parse rolls a day that does not exist over (2026-02-30 becomes
// 2026-03-02), which would silently move a scope's bound or an expiry by days: callers check first.

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/** Days in `month` (1-12) of `year`, in the proleptic Gregorian calendar. */
function daysInMonth(year: number, month: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0); // day 0 of the next month: the last day of this one
  return d.getUTCDate();
}

/**
 * Why the `YYYY-MM-DD` a text starts with is not a real day, or null when it is (or the text does not start
 * with such a date).
 *
 * @example
 * impossibleDate("2026-02-30") // "February 2026 has 28 days"
 * impossibleDate("2026-13-01T00:00:00Z") // "there is no month 13"
 */
export function impossibleDate(text: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(text);
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12) return `there is no month ${month}`;
  const days = daysInMonth(year, month);
  return day < 1 || day > days ? `${MONTHS[month - 1]} ${year} has ${days} days` : null;
}

/**
 * ISO 8601 text of an epoch-ms time, or null for one no Date can hold (NaN, or past ±8.64e15 ms, ECMA-262 "Time
 * Values and Time Range"), where `toISOString` would throw a RangeError: times read back from a row or a log line an
 * attacker may have altered are formatted with it, so one bad value cannot fail a whole listing.
 *
 * @example
 * isoOrNull(0)    // "1970-01-01T00:00:00.000Z"
 * isoOrNull(9e15) // null
 */
export function isoOrNull(ms: number): string | null {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
