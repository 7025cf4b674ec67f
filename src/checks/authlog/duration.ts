// Parses the --find-time value: fail2ban accepts plain seconds ("600") and suffixed forms ("10m").
import { AuthLogOptionError } from "./errors.ts";

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Milliseconds of "600", "90s", "10m", "1h", "1d" or "1w".
 *
 * @example
 * parseDuration("10m"); // 600000
 */
export function parseDuration(text: string): number {
  const m = /^\s*(\d{1,9})\s*([smhdw]?)\s*$/i.exec(text);
  if (!m) throw new AuthLogOptionError(`--find-time must be a number of seconds or a number with s, m, h, d or w; got "${text}"`);
  return Number(m[1]) * (UNITS[(m[2] || "s").toLowerCase()] ?? 1000);
}
