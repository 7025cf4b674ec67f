// Where a ten-minute bucket falls in the site's day. check logins judges each hour of the day by its own usual
// (ADR 0026); a site whose users keep local time sees its morning rush move an hour in UTC at each daylight-saving
// change, and judged in UTC's hours that rush was a wave every day until the baseline periods held it at its new hour
// (about 18 days, twice a year: red team 40). In the site's time zone it does not move. UTC by default.

/** Buckets are ten minutes (waves.ts BUCKET_MS). */
const BUCKET_MS = 600_000;
const BUCKETS_A_DAY = 144;

/** The IANA name of a time zone the platform knows, as it spells it (`europe/berlin` → `Europe/Berlin`), or null. */
export function canonicalZone(zone: string): string | null {
  if (zone.length === 0 || zone.length > 64) return null;
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

export class DayClock {
  /** The zone's IANA name. */
  readonly zone: string;
  /** UTC itself or a fixed offset (`+05:30`): no change of offset within a span (other zones: Bars' lowest bar allows for one). */
  readonly fixed: boolean;
  readonly #format: Intl.DateTimeFormat | null;
  /** Each UTC day's offset where it holds all day, or null where it changes within the day (by day number). */
  readonly #days = new Map<number, number | null>();
  /** Offsets of the buckets of days when it changes, by bucket number. */
  readonly #offsets = new Map<number, number>();

  /** @throws RangeError naming the zone when the platform does not know it. */
  constructor(zone = "UTC") {
    const name = canonicalZone(zone);
    if (name === null) throw new RangeError(`unknown time zone ${JSON.stringify(zone)}: an IANA name such as UTC, Europe/Berlin or America/New_York`);
    this.zone = name;
    const utc = name === "UTC" || name === "Etc/UTC" || name === "Etc/GMT";
    this.fixed = utc || /^[+-]\d\d:\d\d$/.test(name);
    this.#format = utc ? null : new Intl.DateTimeFormat("en-US", {
      timeZone: name, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric",
    });
  }

  /**
   * The zone's offset from UTC at the start of bucket `b`, in whole buckets (rounded down: a zone at +05:45 is taken
   * as +05:40, one bucket's worth of its day off). Read through Intl (about 5 µs) once a UTC day where the offset is
   * the same at its start and the next day's (no zone changes twice within a day), else once a bucket of that day.
   */
  offset(b: number): number {
    if (this.#format === null) return 0;
    const day = Math.floor(b / BUCKETS_A_DAY);
    let whole = this.#days.get(day);
    if (whole === undefined) {
      const start = this.#read(day * BUCKETS_A_DAY);
      whole = start === this.#read((day + 1) * BUCKETS_A_DAY) ? start : null;
      if (this.#days.size > 100_000) this.#days.clear();
      this.#days.set(day, whole);
    }
    if (whole !== null) return whole;
    const known = this.#offsets.get(b);
    if (known !== undefined) return known;
    const offset = this.#read(b);
    if (this.#offsets.size > 100_000) this.#offsets.clear();
    this.#offsets.set(b, offset);
    return offset;
  }

  #read(b: number): number {
    const at = b * BUCKET_MS;
    const parts: Record<string, number> = {};
    for (const p of this.#format!.formatToParts(at)) if (p.type !== "literal") parts[p.type] = Number(p.value);
    const local = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!);
    return Math.floor(Math.round((local - at) / 60_000) / 10);
  }

  /** Bucket `b` counted in the zone's time: its place in the day is this number's remainder by a day's buckets. */
  local(b: number): number {
    return b + this.offset(b);
  }

  /** The place of bucket `b` in the zone's day, 0 (00:00–00:10) to 143. */
  placeOf(b: number): number {
    const l = this.local(b);
    return l - Math.floor(l / BUCKETS_A_DAY) * BUCKETS_A_DAY;
  }
}
