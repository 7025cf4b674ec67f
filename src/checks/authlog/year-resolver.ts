// Infers the year that BSD syslog stamps ("Nov 21 04:00:00") leave out, host by host: a log that crosses New Year
// rolls over, while a line whose stamp is off by weeks or months (another host's wrong clock, a forged syslog packet)
// neither moves the year nor is moved a year away.
import type { ParsedStamp } from "./timestamp.ts";

const DAY_MS = 86_400_000;

/** Time going back by more than this is no longer lines slightly out of order: New Year, or a wrong stamp. */
const BACKWARDS_MS = 31 * DAY_MS;

/**
 * Half a year. A rollover is believed only when the next year's reading lies less than this after the host's last
 * stamp (December, then January); farther, the line is a straggler that keeps the year. A forward jump of more than
 * this is a line of the previous year (a late December line after January ones).
 */
const HALF_YEAR_MS = 183 * DAY_MS;

/** Without --year, no zone-less stamp of a followed host is placed more than this before the reference. */
const YEAR_MS = 365 * DAY_MS;

/**
 * The years a zone-less stamp can be given: those --year accepts. Past 9999 a log of alternating "Jul 1" and
 * "Jan 1" lines once carried the year beyond the largest Date, and writing the findings threw.
 */
const MIN_YEAR = 1970;
const MAX_YEAR = 9999;

/**
 * Hosts followed one by one. A central syslog file holds a few hundred hosts; a flood of forged host names must not
 * grow memory. Lines of further hosts are placed line by line as a host's first line is (by the reference time, or
 * with --year near the file's latest stamp) and steer nothing.
 */
const MAX_HOSTS = 4096;

/** Longer "host names" (DNS names stop at 253) are junk: such lines are placed like those of an unfollowed host. */
const MAX_HOST_LENGTH = 255;

/**
 * Modification times at or before this (1 January 1971) say nothing of when a file was written: build systems and stores
 * set 0 or 1 second, and such a file read as written in 1970 would put every line there.
 */
const MEANINGLESS_MTIME_MS = Date.UTC(1971, 0, 1);

/**
 * The reference time for one file's zone-less stamps (without --year): the earlier of the reference time and the file's
 * modification time. No line of a file was written after the file was last written, so "not more than a day after the
 * reference" holds for its stamps against that time too. Read on 7 December, a year of monthly rotated files put
 * auth.log.12's "Dec  1" (last year: the file was last written on 1 January) in this year, and last December's brute
 * force on deploy beside this December's own login of deploy, a critical compromise; against its mtime, "Dec  1" of
 * this year lies in the file's future and is read last year. A file copied without its mtime (now) or a stream (stdin,
 * none) falls back to the reference time, as before; a meaningless mtime (1970) is ignored.
 *
 * @example
 * fileReferenceMs(Date.UTC(2026, 11, 7), Date.UTC(2026, 0, 1)); // 1 January 2026
 */
export function fileReferenceMs(referenceMs: number, modifiedMs: number | undefined): number {
  if (modifiedMs === undefined || !Number.isFinite(modifiedMs) || modifiedMs <= MEANINGLESS_MTIME_MS) return referenceMs;
  return Math.min(referenceMs, modifiedMs);
}

export interface YearResolverOptions {
  /** Reference "now" in ms: a zone-less stamp is never placed more than a day after it. */
  referenceMs: number;
  /** The year of the first zone-less stamp, when the caller knows it (--year). */
  year?: number | undefined;
  /** Zone of zone-less stamps, minutes east of UTC (default 0: read as UTC). */
  utcOffsetMinutes?: number | undefined;
}

/** One host's running year and the stamp it last accepted. */
interface Track {
  year: number;
  lastMs: number;
}

function clampYear(year: number): number {
  return Math.min(MAX_YEAR, Math.max(MIN_YEAR, year));
}

/**
 * Turns stamps into epoch milliseconds, inferring the missing year of BSD stamps. Each host has its own running
 * year. Without --year a host's first zone-less stamp takes the reference year, or the previous one when it would
 * otherwise lie in the future: never another host's stamps, which in a central log any sender chooses (one line
 * stamped "May 20" at the top of a file placed every host that joined after it a year back). With --year (an
 * archive, read as written) the file's first stamp takes that year and a host that joins later the year nearest the
 * file's latest stamp. After that, time going back by more than a month rolls the host's year over when the new
 * year's reading is plausibly close (less than half a year after its last stamp, and without --year not after the
 * reference time); otherwise the line is a straggler that keeps the year and steers nothing. Without --year a line is
 * never placed more than a day after the reference (it is read a year back, steering nothing), nor, for a followed
 * host, more than a year before it (it is read a year later): a line written in the year before the reference is placed
 * in its true year whatever other lines say. With --year a jump forward of more than half a year is a late line from
 * the previous year. Lines with a full date are placed as written and steer no host's zone-less year: a sender can
 * forge one under any host's name, with any year. Inferred years stay within 1970–9999.
 *
 * @example
 * const years = new YearResolver({ referenceMs: clock.now() });
 * const stamp = emptyStamp();
 * if (parseStamp(line, stamp)) console.log(new Date(years.resolve(stamp, "web")));
 */
export class YearResolver {
  readonly #referenceMs: number;
  readonly #offsetMs: number;
  readonly #fixed: boolean;
  readonly #hosts = new Map<string, Track>();
  /** The file as a whole: the year and time of the latest stamp a host's track took (NaN before the first). */
  readonly #file: Track;
  // One-entry caches: consecutive lines nearly always come from the same host, on the same day.
  #lastHost: string | undefined;
  #lastTrack: Track | undefined;
  #cacheKey = -1;
  #cacheDayMs = 0;

  constructor(options: YearResolverOptions) {
    this.#referenceMs = options.referenceMs;
    this.#offsetMs = (options.utcOffsetMinutes ?? 0) * 60_000;
    this.#fixed = options.year !== undefined;
    this.#file = { year: clampYear(options.year ?? new Date(options.referenceMs).getUTCFullYear()), lastMs: Number.NaN };
  }

  #dayStart(year: number, month: number, day: number): number {
    const key = (year * 16 + month) * 32 + day;
    if (key !== this.#cacheKey) {
      this.#cacheKey = key;
      this.#cacheDayMs = Date.UTC(year, month, day);
    }
    return this.#cacheDayMs;
  }

  /** A zone-less stamp read in `year`. */
  #at(year: number, stamp: ParsedStamp): number {
    return this.#dayStart(year, stamp.month, stamp.day) + stamp.msOfDay - this.#offsetMs;
  }

  /** Whether a reading can be right: a log is read after it was written (with --year, the caller knows better). */
  #notFuture(ms: number): boolean {
    return this.#fixed || ms <= this.#referenceMs + DAY_MS;
  }

  /** The year of a host's first zone-less stamp (and of each line of a host not followed). */
  #firstYear(stamp: ParsedStamp): number {
    const file = this.#file;
    if (!this.#fixed || Number.isNaN(file.lastMs)) {
      // The reference year, or the previous one for a December line read in January. Without --year for every host:
      // placed by other hosts' stamps, a host's first line went wherever a forged line of another "host" put the file.
      return this.#notFuture(this.#at(file.year, stamp)) ? file.year : clampYear(file.year - 1);
    }
    // With --year, a host that joins later is placed nearest to the file's latest stamp (a host whose first line is
    // Jan 1 after others' Dec 31 lines): an archive has no reference time to go by.
    let best = clampYear(file.year - 1);
    let bestGap = Number.POSITIVE_INFINITY;
    for (let y = best; y <= clampYear(file.year + 1); y++) {
      const ms = this.#at(y, stamp);
      const gap = Math.abs(ms - file.lastMs);
      if (gap < bestGap && this.#notFuture(ms)) {
        best = y;
        bestGap = gap;
      }
    }
    return best;
  }

  /** The track of `host`, created when there is room (undefined for an unfollowed host). */
  #track(host: string, year: number): Track | undefined {
    if (host.length > MAX_HOST_LENGTH || this.#hosts.size >= MAX_HOSTS) return undefined;
    const track = { year, lastMs: Number.NaN };
    // Copied: `host` may be a slice of a 1 MiB chunk of the log, which the key would keep alive.
    this.#hosts.set(` ${host}`.slice(1), track);
    return track;
  }

  #accept(track: Track, year: number, ms: number): number {
    track.year = year;
    track.lastMs = ms;
    // Only --year's placement of a joining host goes by the file's latest stamp; without it the file's year stays the
    // reference year.
    if (this.#fixed) {
      this.#file.year = year;
      this.#file.lastMs = ms;
    }
    return ms;
  }

  /** Epoch milliseconds of `stamp`, a line of `host` (the syslog host field; "" when the line has none). */
  resolve(stamp: ParsedStamp, host = ""): number {
    // A full date is its own year. It steers no host's zone-less track: a forged line under a host's name could
    // otherwise put that host's later lines in any year (three lines a year apart split a brute force in two).
    if (stamp.year >= 0) return this.#fullDate(stamp);
    let track = host === this.#lastHost ? this.#lastTrack : this.#hosts.get(host);
    if (track === undefined) {
      const year = this.#firstYear(stamp);
      track = this.#track(host, year);
      const ms = this.#at(year, stamp);
      if (track === undefined) return ms;
      this.#lastHost = host;
      this.#lastTrack = track;
      return this.#accept(track, year, ms);
    }
    this.#lastHost = host;
    this.#lastTrack = track;
    const year = track.year;
    const ms = this.#at(year, stamp);
    if (!this.#fixed && ms < this.#referenceMs - YEAR_MS && year < MAX_YEAR) {
      // Without --year the log is taken to be of the year before it is read, as a host's first line is: a track begun
      // by a line stamped a little after the reference date (a forged "Dec 20" read on 7 December, placed the year
      // before) would otherwise keep the host's real lines of the days before in that year too.
      return this.#accept(track, year + 1, this.#at(year + 1, stamp));
    }
    if (!this.#notFuture(ms)) {
      // Without --year a line is never placed after the reference: it was written before the log was read. Taken, a
      // line stamped a little ahead (a forged "Sep 1" after June lines read in January) let the track's next lines
      // follow it into the future, and a real late December line after it stayed there.
      return year > MIN_YEAR ? this.#at(year - 1, stamp) : ms;
    }
    if (ms < track.lastMs - BACKWARDS_MS) {
      // New Year, or a stamp weeks behind. Only a next-year reading close after the last stamp is New Year: one line
      // six weeks back would otherwise move every later line of the file a year ahead.
      if (year < MAX_YEAR) {
        const next = this.#at(year + 1, stamp);
        if (next - track.lastMs < HALF_YEAR_MS && this.#notFuture(next)) return this.#accept(track, year + 1, next);
      }
      return ms;
    }
    if (ms > track.lastMs + HALF_YEAR_MS && this.#fixed) {
      // A straggler from last December after January lines: place it, keep the running year. Without --year only
      // when the running year's reading cannot be right (it lies in the future, above): a track begun by one line
      // stamped months back (a forged "May 20" at the top of the file) put all the host's real lines a year back.
      return year > MIN_YEAR ? this.#at(year - 1, stamp) : ms;
    }
    return this.#accept(track, year, ms);
  }

  #fullDate(stamp: ParsedStamp): number {
    const offset = stamp.offsetMinutes === null ? this.#offsetMs : stamp.offsetMinutes * 60_000;
    return this.#dayStart(stamp.year, stamp.month, stamp.day) + stamp.msOfDay - offset;
  }
}
