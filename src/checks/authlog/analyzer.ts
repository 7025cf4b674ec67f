// The auth-log analysis: feeds lines through the syslog splitter, the sshd matcher and the
// connection tracker, and keeps per-address and per-user sliding windows (fail2ban's maxretry
// within findtime) to name offenders, brute-forced users, and logins that followed them.
import { ConnectionTracker, detach } from "./connection-tracker.ts";
import { AuthLogOptionError } from "./errors.ts";
import { ExpiringTable } from "./expiring-table.ts";
import { isPasswordMethod } from "./findings.ts";
import { classifySshdMessage, messageStart, repeatedMessage, type SshdEvent } from "./sshd-messages.ts";
import { splitLine, type SshdLine } from "./syslog-line.ts";
import { emptyStamp, YearResolver } from "./timestamp.ts";
import type { AuthLogLimits, AuthLogOptions, AuthLogResult, SourceRecord, SuccessRecord, UserRecord } from "./types.ts";

export const DEFAULTS = {
  maxRetry: 5,
  findTimeMs: 10 * 60_000,
  // Lines longer than this are counted as overlong and skipped: sshd's own lines stay far below
  // (user names are cut at 100 bytes), so only junk or an attack on the parser is that long.
  maxLineLength: 8192,
  compromiseWindowMs: 24 * 3_600_000,
} as const;

// Memory bounds against logs built to exhaust us (a botnet of IPv6 addresses, random user names).
// A full table evicts what has been idle for longer than --find-time and never offended, so a log
// that opens with 500,000 one-off addresses cannot hide a later attack; only more than that many
// active inside one window leaves failures untracked, and the findings then say so.
export const LIMITS: AuthLogLimits = { sources: 500_000, users: 100_000 };
const MAX_NAMES_PER_RECORD = 50;
const MAX_COMPROMISES = 1_000;
const MAX_ROOT_LOGINS_KEPT = 1_000;

function validate(options: AuthLogOptions): void {
  const { maxRetry, findTimeMs, year, maxLineLength } = options;
  if (maxRetry !== undefined && (!Number.isInteger(maxRetry) || maxRetry < 1 || maxRetry > 1000)) {
    throw new AuthLogOptionError(`max retry must be an integer from 1 to 1000, got ${maxRetry}`);
  }
  if (findTimeMs !== undefined && (!Number.isFinite(findTimeMs) || findTimeMs < 1000 || findTimeMs > 366 * 86_400_000)) {
    throw new AuthLogOptionError(`find time must be between 1 second and 366 days, got ${findTimeMs} ms`);
  }
  if (year !== undefined && (!Number.isInteger(year) || year < 1970 || year > 9999)) {
    throw new AuthLogOptionError(`year must be a four-digit year from 1970, got ${year}`);
  }
  if (maxLineLength !== undefined && (!Number.isInteger(maxLineLength) || maxLineLength < 256 || maxLineLength > 1 << 20)) {
    throw new AuthLogOptionError(`max line length must be from 256 to 1048576 bytes, got ${maxLineLength}`);
  }
  for (const [name, value] of Object.entries(options.limits ?? {})) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > 10_000_000)) {
      throw new AuthLogOptionError(`limit on ${name} must be an integer from 1 to 10000000, got ${value}`);
    }
  }
}

/** Log text is read as latin1 (one char per byte); names are turned back into UTF-8 here. */
function utf8(name: string): string {
  for (let i = 0; i < name.length; i++) {
    if (name.charCodeAt(i) > 0x7f) return Buffer.from(name, "latin1").toString("utf8");
  }
  return name;
}

/** Records one failure time in a ring of the last `n`; true when those n lie within `window`. */
function pushWindow(ring: Float64Array, count: number, t: number, window: number): boolean {
  const n = ring.length;
  ring[count % n] = t;
  if (count + 1 < n) return false;
  const oldest = ring[(count + 1) % n] ?? t;
  return Math.abs(t - oldest) <= window;
}

/**
 * Streaming analyzer: call `beginFile`, then `line` for every line in order, then `finish`.
 *
 * @example
 * const a = new AuthLogAnalyzer({ referenceMs: clock.now() });
 * a.beginFile("auth.log");
 * a.line("Nov 22 04:00:01 web sshd[9]: Failed password for root from 203.0.113.9 port 4242 ssh2", 1);
 * const result = a.finish();
 */
export class AuthLogAnalyzer {
  readonly maxRetry: number;
  readonly findTimeMs: number;
  readonly maxLineLength: number;
  readonly #options: AuthLogOptions;
  readonly #compromiseWindowMs: number;
  readonly #scratch: SshdLine = { stamp: emptyStamp(), hostStart: 0, hostEnd: 0, connection: "", messageAt: 0 };
  // The host field of the previous line: consecutive lines mostly share it, so no slice is made for them.
  #host = "";
  readonly #connections = new ConnectionTracker();
  readonly #limits: AuthLogLimits;
  readonly #sources: ExpiringTable<string, SourceRecord>;
  readonly #users: ExpiringTable<string, UserRecord>;
  readonly #compromises = new Map<string, SuccessRecord>();
  readonly #rootLogins: SuccessRecord[] = [];
  // A Map beats a dictionary-mode object for counters keyed at run time.
  readonly #byKind = new Map<string, number>();
  // Brute force comes in runs from one address: a one-entry cache skips most map lookups.
  #lastSource: SourceRecord | undefined;
  #lastUserRecord: UserRecord | undefined;
  #years: YearResolver;
  #file = "";
  readonly stats = {
    files: 0, lines: 0, blank: 0, malformed: 0, overlong: 0, sshdLines: 0, events: 0,
    failures: 0, successes: 0, rootLogins: 0, rootPasswordLogins: 0, untrackedSources: 0, untrackedUsers: 0,
    evictedSources: 0, evictedUsers: 0, untrackedCompromises: 0,
    byKind: {} as Record<string, number>,
  };

  constructor(options: AuthLogOptions) {
    validate(options);
    this.#options = options;
    this.maxRetry = options.maxRetry ?? DEFAULTS.maxRetry;
    this.findTimeMs = options.findTimeMs ?? DEFAULTS.findTimeMs;
    this.maxLineLength = options.maxLineLength ?? DEFAULTS.maxLineLength;
    this.#compromiseWindowMs = options.compromiseWindowMs ?? DEFAULTS.compromiseWindowMs;
    this.#limits = { sources: options.limits?.sources ?? LIMITS.sources, users: options.limits?.users ?? LIMITS.users };
    // Idle means no failure within find time: the record's window holds nothing that could still
    // complete a ban, so a fresh record later counts the same. Offenders and brute-forced users are
    // pinned: a later login from or for them is what the check exists to catch.
    this.#sources = new ExpiringTable({
      capacity: this.#limits.sources, windowMs: this.findTimeMs, lastSeen: (s) => s.latestMs, pinned: (s) => s.bans > 0,
    });
    this.#users = new ExpiringTable({
      capacity: this.#limits.users, windowMs: this.findTimeMs, lastSeen: (u) => u.latestMs, pinned: (u) => !Number.isNaN(u.attackFirstMs),
    });
    this.#years = this.#resolver();
  }

  #resolver(): YearResolver {
    const o = this.#options;
    return new YearResolver({ referenceMs: o.referenceMs, year: o.year, utcOffsetMinutes: o.utcOffsetMinutes });
  }

  /**
   * Starts a new file: line numbers restart. Without `year` each file's year is inferred afresh
   * from the reference time; with it, later files continue the first one's calendar (rotated
   * files given oldest first), so a given year is not re-applied to a file that crossed New Year.
   */
  beginFile(name: string): void {
    this.stats.files++;
    this.#file = name;
    if (this.#options.year === undefined && this.stats.files > 1) this.#years = this.#resolver();
  }

  /** A line longer than `maxLineLength`: counted, never parsed. */
  overlong(): void {
    this.stats.lines++;
    this.stats.overlong++;
  }

  /** Feeds one line (without its newline); `lineNo` is 1-based within the current file. */
  line(text: string, lineNo: number): void {
    const stats = this.stats;
    stats.lines++;
    if (text.length === 0) {
      stats.blank++;
      return;
    }
    if (text.length > this.maxLineLength) {
      stats.overlong++;
      return;
    }
    const parsed = this.#scratch;
    const shape = splitLine(text, parsed);
    if (shape === "malformed") {
      // journalctl writes "-- Boot …" / "-- No entries --" markers between entries.
      if (text.startsWith("-- ")) stats.blank++;
      else stats.malformed++;
      return;
    }
    // Every program's lines tell the time, but only its own host's lines steer a host's year.
    const t = this.#years.resolve(parsed.stamp, this.#hostOf(text, parsed));
    if (shape === "other") return;
    stats.sshdLines++;
    // "message repeated 5 times: [ Failed password …]" stands for five more of that message: an
    // rsyslog with $RepeatedMsgReduction on would otherwise hide most of a brute force.
    const repeated = repeatedMessage(text, parsed.messageAt);
    const at = messageStart(text, repeated === null ? parsed.messageAt : repeated.start);
    const end = repeated === null ? text.length : repeated.end;
    const classified = classifySshdMessage(at === 0 && end === text.length ? text : text.slice(at, end));
    if (classified === null) return;
    const event = this.#connections.resolve(parsed.connection, classified, t);
    for (let n = repeated === null ? 1 : repeated.count; n > 0; n--) {
      stats.events++;
      this.#byKind.set(event.kind, (this.#byKind.get(event.kind) ?? 0) + 1);
      const charged = this.#connections.apply(parsed.connection, event, t);
      if (charged !== null) this.#failure(charged, event, t, lineNo);
      if (event.effect === "gained" && event.address !== null && event.user) this.#success(event, t, lineNo);
    }
  }

  #hostOf(text: string, parsed: SshdLine): string {
    const length = parsed.hostEnd - parsed.hostStart;
    if (length !== this.#host.length || !text.startsWith(this.#host, parsed.hostStart)) this.#host = detach(text.slice(parsed.hostStart, parsed.hostEnd));
    return this.#host;
  }

  #failure(address: string, event: SshdEvent, t: number, lineNo: number): void {
    this.stats.failures++;
    const user = event.user ? utf8(event.user) : null;
    const onFailure = this.#options.onFailure;
    if (onFailure) onFailure({ file: this.#file, line: lineNo, address, kind: event.kind, user, timeMs: t });
    let src = this.#lastSource !== undefined && this.#lastSource.address === address ? this.#lastSource : this.#sources.get(address);
    if (src === undefined) {
      // Keys and names are copied out of the 1 MiB chunk they were sliced from, so that keeping
      // them does not keep every chunk of the log alive.
      address = detach(address);
      if (!this.#sources.makeRoom(t)) {
        // Full of addresses active within find time, or offenders: counted, and reported as an
        // incomplete analysis. The user is still charged, so a botnet on one account is still seen.
        this.stats.untrackedSources++;
        this.#lastSource = undefined;
        if (user !== null && !event.invalidUser) this.#userFailure(user, address, t, lineNo);
        return;
      }
      src = {
        address, failures: 0, firstMs: t, lastMs: t, latestMs: t, first: { file: this.#file, line: lineNo }, last: { file: this.#file, line: lineNo },
        users: new Set(), moreUsers: false, lastUser: null, ring: new Float64Array(this.maxRetry), inWindow: 0, bans: 0, offenderSinceMs: Number.NaN, offenderAt: null,
      };
      // Room was made above; the cached record may have been evicted, and the new one replaces it below.
      this.#sources.add(address, src, t);
    }
    this.#lastSource = src;
    src.failures++;
    src.lastMs = t;
    if (t > src.latestMs) src.latestMs = t;
    src.last.file = this.#file;
    src.last.line = lineNo;
    if (user !== null && user !== src.lastUser && !src.moreUsers) {
      src.lastUser = detach(user);
      if (!src.users.has(user)) {
        if (src.users.size < MAX_NAMES_PER_RECORD) src.users.add(detach(user));
        else src.moreUsers = true;
      }
    }
    if (pushWindow(src.ring, src.inWindow++, t, this.findTimeMs)) {
      // fail2ban bans here and starts counting afresh for this address.
      src.bans++;
      src.inWindow = 0;
      if (Number.isNaN(src.offenderSinceMs)) {
        src.offenderSinceMs = t;
        src.offenderAt = { file: this.#file, line: lineNo };
      }
    }
    if (user !== null && !event.invalidUser) this.#userFailure(user, src.address, t, lineNo);
  }

  #userFailure(user: string, address: string, t: number, lineNo: number): void {
    let rec = this.#lastUserRecord !== undefined && this.#lastUserRecord.user === user ? this.#lastUserRecord : this.#users.get(user);
    if (rec === undefined) {
      if (!this.#users.makeRoom(t)) {
        this.stats.untrackedUsers++;
        this.#lastUserRecord = undefined;
        return;
      }
      user = detach(user);
      rec = { user, failures: 0, ring: new Float64Array(this.maxRetry), count: 0, latestMs: t, attackFirstMs: Number.NaN, attackLastMs: Number.NaN, attackFailures: 0, sources: new Set(), moreSources: false, firstAttackAt: null };
      this.#users.add(user, rec, t);
    }
    this.#lastUserRecord = rec;
    rec.failures++;
    if (t > rec.latestMs) rec.latestMs = t;
    if (!rec.moreSources && !rec.sources.has(address)) {
      if (rec.sources.size < MAX_NAMES_PER_RECORD) rec.sources.add(address);
      else rec.moreSources = true;
    }
    if (pushWindow(rec.ring, rec.count++, t, this.findTimeMs)) {
      if (Number.isNaN(rec.attackFirstMs)) {
        rec.attackFirstMs = t;
        rec.firstAttackAt = { file: this.#file, line: lineNo };
      }
      rec.attackLastMs = t;
      rec.attackFailures = rec.failures;
    }
  }

  #success(event: SshdEvent, t: number, lineNo: number): void {
    this.stats.successes++;
    const user = detach(utf8(event.user ?? ""));
    const address = detach(event.address ?? "");
    const record: SuccessRecord = {
      file: this.#file, line: lineNo, timeMs: t, address, user, method: detach(utf8(event.method ?? "unknown")),
      offender: null, targetedUser: null, repeats: 0,
    };
    if (user === "root") {
      this.stats.rootLogins++;
      if (isPasswordMethod(record.method)) this.stats.rootPasswordLogins++;
      if (this.#rootLogins.length < MAX_ROOT_LOGINS_KEPT) this.#rootLogins.push(record);
    }
    const src = this.#sources.get(address);
    const fromOffender = src !== undefined && src.offenderSinceMs <= t;
    const rec = this.#users.get(user);
    // A brute force on the user explains only a login with a guessable secret: after a botnet has
    // hammered root's password, the admin's own key login from an address that never failed is not
    // its fruit (an address that failed is suspect whatever the method, see fromOffender).
    const targeted = rec !== undefined && isPasswordMethod(record.method) && rec.attackLastMs <= t + 1000 && t - rec.attackLastMs <= this.#compromiseWindowMs;
    if (!fromOffender && !targeted) return;
    const key = `${address}\u0000${user}`;
    const seen = this.#compromises.get(key);
    if (seen) {
      seen.repeats++;
      return;
    }
    if (this.#compromises.size >= MAX_COMPROMISES) {
      // Not kept, but counted: the findings say how many more suspect logins there were.
      this.stats.untrackedCompromises++;
      return;
    }
    record.offender = fromOffender && src ? { ...src, users: new Set(src.users) } : null;
    record.targetedUser = targeted && rec ? { ...rec, sources: new Set(rec.sources) } : null;
    this.#compromises.set(key, record);
  }

  /** Ends the analysis and returns offenders, suspicious logins and counters. */
  finish(): AuthLogResult {
    const offenders = [...this.#sources.values()].filter((s) => s.bans > 0).sort((a, b) => b.failures - a.failures || a.firstMs - b.firstMs);
    const attackedUsers = [...this.#users.values()].filter((u) => !Number.isNaN(u.attackFirstMs)).sort((a, b) => b.failures - a.failures || a.attackFirstMs - b.attackFirstMs);
    this.stats.byKind = Object.fromEntries([...this.#byKind].sort((a, b) => b[1] - a[1]));
    this.stats.evictedSources = this.#sources.evicted;
    this.stats.evictedUsers = this.#users.evicted;
    return {
      stats: this.stats,
      maxRetry: this.maxRetry,
      findTimeMs: this.findTimeMs,
      limits: { ...this.#limits },
      offenders,
      attackedUsers,
      compromises: [...this.#compromises.values()],
      rootLogins: this.#rootLogins,
    };
  }
}
