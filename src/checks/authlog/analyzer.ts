// The auth-log analysis: feeds lines through the syslog splitter, the sshd matcher and the
// connection tracker, and keeps per-address and per-user sliding windows (fail2ban's maxretry
// within findtime) to name offenders, brute-forced users, and logins that followed them; and, over
// the compromise window, the slow rules (spraying, guessing) that catch the same attacks paced under it.
import { clientKeyOf, ipv6GroupOf } from "./address.ts";
import { detach } from "./connection-tracker.ts";
import { AuthLogOptionError } from "./errors.ts";
import { ExpiringTable } from "./expiring-table.ts";
import { attackBefore, earliestBanOutside, recordAttack, recordBan } from "./file-order.ts";
import { addRootLogin, rootLoginSample } from "./root-logins.ts";
import { isPasswordMethod } from "./findings.ts";
import { markSlow, pushName, slowRunBefore } from "./slow-rules.ts";
import { LineSplitter } from "./line-splitter.ts";
import { LineStage, type SshdEventSink } from "./line-stage.ts";
import { droppedCouldComplete, exactWindows, OUT_OF_ORDER_LIMIT, OutOfOrder, type OutOfOrderKey } from "./out-of-order.ts";
import { RemoteLines } from "./remote-lines.ts";
import { newRing, NOT_KEPT, pushByStamp, pushReadOrder, ringFor, withinWindowByStamp } from "./time-window.ts";
import type { SshdEvent } from "./sshd-messages.ts";
import type { AttackRun, AuthLogLimits, AuthLogOptions, AuthLogResult, SlowEvidence, SlowMarks, SourceRecord, SuccessRecord, UserRecord } from "./types.ts";

export const DEFAULTS = {
  maxRetry: 5,
  findTimeMs: 10 * 60_000,
  // Lines longer than this are counted as overlong and skipped: sshd's own lines stay far below
  // (user names are cut at 100 bytes), so only junk or an attack on the parser is that long.
  maxLineLength: 8192,
  compromiseWindowMs: 24 * 3_600_000,
  // The slow rules, at any pace within the compromise window. 20 names from one address, as `check logins
  // --spray-min`: no one mistypes their way through 20 accounts. 20 failures on one account, above `check logins
  // --streak` (5): sshd on the internet takes a steady trickle of guesses at common account names, and at 5 every
  // password login of those accounts would be reported; a guessing campaign needs far more than 20 tries.
  sprayMin: 20,
  guessMin: 20,
} as const;

// Memory bounds against logs built to exhaust us (a botnet of IPv6 addresses, random user names).
// A full table evicts what has been idle for longer than --find-time and never offended, so a log
// that opens with 500,000 one-off addresses cannot hide a later attack; only more than that many
// active inside one window leaves failures untracked, and the findings then say so. (An address that tried two
// names, or a user with two failures, counts as active for the compromise window: the slow rules' window.)
// Accepted logins are kept (about 300 bytes each) to be judged again at the end, against brute force read after them:
// files given newest first, or overlapping. A log can forge any number of "Accepted" lines (logger), so they are
// bounded too; past the bound a login is judged only against what was read before it, and the output says so.
// Keys logged out of time order keep every failure to be judged exactly (out-of-order.ts): 2,000,000 for all together,
// shared fairly (at the bound the largest key gives up its oldest), so a forged key cannot crowd out a smaller one.
export const LIMITS: AuthLogLimits = { sources: 500_000, users: 100_000, logins: 20_000, outOfOrder: OUT_OF_ORDER_LIMIT };
const MAX_NAMES_PER_RECORD = 50;
const MAX_COMPROMISES = 1_000;

function validate(options: AuthLogOptions): void {
  const { maxRetry, findTimeMs, year, maxLineLength, compromiseWindowMs, sprayMin, guessMin } = options;
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
  if (compromiseWindowMs !== undefined && (!Number.isFinite(compromiseWindowMs) || compromiseWindowMs < 1000 || compromiseWindowMs > 366 * 86_400_000)) {
    throw new AuthLogOptionError(`compromise window must be between 1 second and 366 days, got ${compromiseWindowMs} ms`);
  }
  // Bounded like max retry: each address that tries two names keeps up to sprayMin of them, each user a ring of
  // guessMin times. One name is no spray.
  if (sprayMin !== undefined && (!Number.isInteger(sprayMin) || sprayMin < 2 || sprayMin > 1000)) {
    throw new AuthLogOptionError(`spray min must be an integer from 2 to 1000, got ${sprayMin}`);
  }
  if (guessMin !== undefined && (!Number.isInteger(guessMin) || guessMin < 1 || guessMin > 1000)) {
    throw new AuthLogOptionError(`guess min must be an integer from 1 to 1000, got ${guessMin}`);
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

/** One suspect record per address/user pair. */
const pairKey = (r: SuccessRecord): string => `${r.address}\u0000${r.user}`;

/** A login a brute force is sometimes only a few stamps' worth behind: a sending host's clock can lag by a second. */
const CLOCK_SLACK_MS = 1000;

/**
 * An accepted login not suspect by the brute-force rules when read, and the file (1-based, in the order read) it came
 * from. `counted`: suspect by the slow rules when read, so already recorded (or counted) as such.
 */
interface KeptLogin {
  login: SuccessRecord;
  file: number;
  counted: boolean;
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Names past ASCII longer than this are keyed lower-cased only (userKey): account names are far shorter (useradd's
 * limit is 32, Active Directory's logon name 20), and Unicode normalisation of a forged name of 3,900 combining marks
 * cost 100 times the check's per-byte cost on that line (red team 39).
 */
const MAX_FOLDED_NAME = 256;

/**
 * sshd's escapes in a name: an escaped backslash, or a run of octal escapes (log.c's strnvis with VIS_OCTAL writes every
 * byte past ASCII as "\ooo"). Left to right, so "\\303" is a backslash and "303", not a byte.
 */
const SSHD_ESCAPES = /\\\\|(?:\\[0-3][0-7]{2})+/g;

/** A run of octal escapes as the UTF-8 text its bytes spell, or the run as it is when they spell none. */
function unescapeRun(run: string): string {
  if (run.length === 2) return run;
  const bytes = new Uint8Array(run.length / 4);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(4 * i + 1, 4 * i + 4), 8);
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return run;
  }
}

/**
 * A user name as the per-user rules count it: folded to lower case. Where the account lookup ignores case (SSSD's AD
 * provider by default, winbind) "admin", "Admin" and "ADMIN" are one account whose password PAM checks, and sshd logs
 * the name as the client typed it: keyed as logged, a botnet's guesses in six spellings stayed below every rule. On a
 * system where two accounts differ only by case, folding adds their failures up: it can only add findings. (V8 gives
 * back the same string when nothing changes: a lower-case ASCII name costs no copy.)
 *
 * Past ASCII the name is first read as the client sent it: sshd writes each such byte as an octal escape ("jürgen" is
 * "j\303\274rgen", "JÜRGEN" "J\303\234RGEN"), which lower-casing left apart (red team 38b, finding 5: each non-ASCII
 * letter doubled the guesses every per-user rule allowed). A run of escapes that spells UTF-8 is decoded (else kept
 * as written), and the name is put in Unicode's composed form (NFC: "u" and a combining diaeresis are "ü") and folded
 * through upper case, so the escaped, the raw and the decomposed spellings of one name meet, and so do the letters
 * lower-casing alone leaves apart (a final sigma "ς" and "σ", the long s "ſ" and "s", the micro sign "µ" and "μ";
 * red team 39). Only the key: the name shown is the name as logged.
 */
function userKey(user: string): string {
  for (let i = 0; i < user.length; i++) {
    const c = user.charCodeAt(i);
    if (c === 92 /* \ */ || c > 0x7f) {
      const name = user.replace(SSHD_ESCAPES, unescapeRun);
      // No account has such a name; and NFC reorders a run of combining marks in time that grows with its square.
      if (name.length > MAX_FOLDED_NAME) return name.toLowerCase();
      return name.normalize("NFC").toUpperCase().toLowerCase().normalize("NFC");
    }
  }
  return user.toLowerCase();
}

/** A copy of an address record as it stands, for a finding's evidence: the live record goes on counting. */
function snapshotSource(s: SourceRecord): SourceRecord {
  return { ...s, first: { ...s.first }, last: { ...s.last }, users: new Set(s.users), members: s.members && new Set(s.members), spray: null };
}

/** Likewise for a user record (its ring and runs are not evidence). */
function snapshotUser(u: UserRecord): UserRecord {
  return { ...u, sources: new Set(u.sources), guessed: null };
}

/** A slow rule's evidence: the record as it stands and a copy of the run of marks before the login. */
function slowEvidence<R>(record: R, run: AttackRun | undefined): SlowEvidence<R> | null {
  return run === undefined ? null : { record, run: { ...run } };
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
  readonly #sprayMin: number;
  readonly #guessMin: number;
  // The lines' half of the analysis: splitter, matcher, connections, years, held repeat events (line-stage.ts), in this
  // thread, or in a worker (`workers: true`: remote-lines.ts) while this one keeps the windows and rules.
  readonly #lines: LineStage | null = null;
  readonly #remote: RemoteLines | null = null;
  readonly #limits: AuthLogLimits;
  readonly #sources: ExpiringTable<string, SourceRecord>;
  // IPv6 failures are also counted per /64: one host is routed a whole /64 and can use a new address per connection.
  readonly #prefixes: ExpiringTable<string, SourceRecord>;
  readonly #users: ExpiringTable<string, UserRecord>;
  readonly #compromises = new Map<string, SuccessRecord>();
  readonly #rootLogins = { password: rootLoginSample(), key: rootLoginSample() };
  // Logins that were not suspect when read, judged again in finish() (at most limits.logins).
  readonly #kept: KeptLogin[] = [];
  // Keys whose failures were logged out of time order, kept to be judged exactly at the end; the files' names by number.
  readonly #outOfOrder: OutOfOrder;
  readonly #fileNames: string[] = [""];
  // Keys logged out of time order that could not be judged exactly (AuthLogResult.outOfOrder).
  // Those with an accepted login from or for them after their failures first (finish()).
  #uncertain: Array<{ name: string; login: boolean }> = [];
  // Keys that lost failures to the bound on failures kept for them (the largest), likewise: those with a login first.
  #unheld: Array<{ name: string; login: boolean }> = [];
  // For logins past that bound: the file of the first, the latest stamp among them, and the earliest ban or attack read
  // in a later file (or found by stamp for a key out of order). An attack read later but stamped before one of them may
  // have been missed.
  #firstUnkeptFile = 0;
  #unkeptLatestMs = Number.NEGATIVE_INFINITY;
  #lateAttackMs = Number.POSITIVE_INFINITY;
  // Brute force comes in runs from one address: a one-entry cache skips most map lookups.
  #lastSource: SourceRecord | undefined;
  #lastPrefix: SourceRecord | undefined;
  #lastUserRecord: UserRecord | undefined;
  #lastUserKey = "";
  #file = "";
  // The current file's modification time, when the caller knows it (beginFile).
  #fileModifiedMs: number | undefined;
  readonly stats = {
    files: 0, lines: 0, blank: 0, malformed: 0, overlong: 0, sshdLines: 0, events: 0,
    failures: 0, successes: 0, rootLogins: 0, rootPasswordLogins: 0, untrackedSources: 0, untrackedUsers: 0, untrackedPrefixes: 0,
    evictedSources: 0, evictedUsers: 0, untrackedCompromises: 0, untrackedSlowCompromises: 0, loginsNotRejudged: 0, loginsNotRejudgedMatter: false, unreadFiles: 0,
    untrustedEntries: 0, untrustedFailures: 0, untrustedLogins: 0, outOfOrderKeys: 0, outOfOrderUnheld: 0, outOfOrderUncertain: 0, outOfOrderUncertainLogin: 0, outOfOrderUnheldKeys: 0, outOfOrderUnheldLogin: 0,
    byKind: {} as Record<string, number>,
  };

  constructor(options: AuthLogOptions) {
    validate(options);
    this.#options = options;
    this.maxRetry = options.maxRetry ?? DEFAULTS.maxRetry;
    this.findTimeMs = options.findTimeMs ?? DEFAULTS.findTimeMs;
    this.maxLineLength = options.maxLineLength ?? DEFAULTS.maxLineLength;
    this.#compromiseWindowMs = options.compromiseWindowMs ?? DEFAULTS.compromiseWindowMs;
    this.#sprayMin = options.sprayMin ?? DEFAULTS.sprayMin;
    this.#guessMin = options.guessMin ?? DEFAULTS.guessMin;
    this.#limits = {
      sources: options.limits?.sources ?? LIMITS.sources, users: options.limits?.users ?? LIMITS.users, logins: options.limits?.logins ?? LIMITS.logins,
      outOfOrder: options.limits?.outOfOrder ?? LIMITS.outOfOrder,
    };
    this.#outOfOrder = new OutOfOrder(this.#limits.outOfOrder);
    // Idle means no failure within find time: the record's window holds nothing that could still
    // complete a ban, so a fresh record later counts the same. Offenders and brute-forced users are
    // pinned: a later login from or for them is what the check exists to catch. So are sprayers and slowly guessed
    // users, for the same reason.
    // The slow rules count over the compromise window, so an address that failed on two names, or a user that took
    // two failures, stays that much longer after its last failure: forgotten after --find-time, a slow campaign
    // paced under it would start afresh with every try. One-off addresses, most of a log, still go after --find-time;
    // only more records than the limit active in one compromise window leave failures untracked (and say so).
    const slowHold = Math.max(0, this.#compromiseWindowMs - this.findTimeMs);
    const sourceSeen = (s: SourceRecord): number => (s.spray === null ? s.latestMs : s.latestMs + slowHold);
    // A key logged out of order holds failures to be judged at the end: kept until then (its failures are bounded).
    const sourcePinned = (s: SourceRecord): boolean => s.bans > 0 || (s.spray !== null && s.spray.marks !== null) || s.outOfOrder !== null;
    this.#sources = new ExpiringTable({ capacity: this.#limits.sources, windowMs: this.findTimeMs, lastSeen: sourceSeen, pinned: sourcePinned });
    // As many /64s as addresses: each active /64 holds at least one active address.
    this.#prefixes = new ExpiringTable({ capacity: this.#limits.sources, windowMs: this.findTimeMs, lastSeen: sourceSeen, pinned: sourcePinned });
    this.#users = new ExpiringTable({
      capacity: this.#limits.users,
      windowMs: this.findTimeMs,
      lastSeen: (u) => (u.guessCount > 1 ? u.latestMs + slowHold : u.latestMs),
      pinned: (u) => !Number.isNaN(u.attackFirstMs) || u.guessed !== null || u.outOfOrder !== null,
    });
    const sink: SshdEventSink = {
      failure: (address, event, t, lineNo) => this.#failure(address, event, t, lineNo),
      success: (event, t, lineNo) => this.#success(event, t, lineNo),
    };
    const stageOptions = { referenceMs: options.referenceMs, year: options.year, utcOffsetMinutes: options.utcOffsetMinutes, maxLineLength: this.maxLineLength };
    if (options.workers === true) this.#remote = new RemoteLines(stageOptions, sink);
    else this.#lines = new LineStage(stageOptions, this.stats, sink);
  }

  /** The stage in this thread; an analyzer with a worker reads whole inputs only (feed). */
  #local(): LineStage {
    if (this.#lines === null) throw new Error("an auth-log analyzer with a worker reads whole inputs (analyzeFile, analyzeStream), not lines");
    return this.#lines;
  }

  /**
   * Starts a new file: line numbers restart. Without `year` each file's year is inferred afresh
   * from the reference time, or from `modifiedMs` (the file's mtime, as analyzeFile gives it) when that is earlier: no
   * line of a rotated file was written after the file was (year-resolver.ts fileReferenceMs). With `year`, later files
   * continue the first one's calendar (rotated files given oldest first), so a given year is not re-applied to a file
   * that crossed New Year.
   */
  beginFile(name: string, modifiedMs?: number): void {
    this.stats.files++;
    this.#file = name;
    this.#fileNames.push(name);
    this.#fileModifiedMs = modifiedMs;
    // The worker's stage begins the file when its bytes come (feed).
    this.#lines?.beginFile(name, this.stats.files, modifiedMs);
  }

  /** A line longer than `maxLineLength`: counted, never parsed. */
  overlong(): void {
    this.#local().overlong();
  }

  /** Feeds one line (without its newline); `lineNo` is 1-based within the current file. */
  line(text: string, lineNo: number): void {
    this.#local().line(text, lineNo);
  }

  /**
   * Feeds the bytes of the current file (after `beginFile`), split into lines here or in the worker; returns the
   * number of lines. When `chunks` throws, the lines before are counted and the error is thrown.
   */
  async feed(chunks: AsyncIterable<Buffer>): Promise<number> {
    if (this.#remote !== null) {
      try {
        return await this.#remote.feed(this.#file, this.stats.files, chunks, this.#fileModifiedMs);
      } finally {
        const snapshot = this.#remote.snapshot;
        if (snapshot !== null) Object.assign(this.stats, snapshot.stats);
      }
    }
    this.#local();
    const splitter = new LineSplitter(this);
    for await (const chunk of chunks) splitter.push(chunk);
    splitter.end();
    return splitter.lines;
  }

  #failure(address: string, event: SshdEvent, t: number, lineNo: number): void {
    this.stats.failures++;
    const user = event.user ? utf8(event.user) : null;
    const onFailure = this.#options.onFailure;
    if (onFailure) onFailure({ file: this.#file, line: lineNo, address, kind: event.kind, user, timeMs: t });
    // An address of NAT64's 64:ff9b::/96 is counted under the IPv4 address it embeds (clientKeyOf): one client, whichever
    // way it came. A record shows the address its failures came from, the translated form once one came that way.
    // (A record's address always has the record's key as its own key, so the one-entry cache below stays right.)
    let key = clientKeyOf(address);
    let src = this.#lastSource !== undefined && this.#lastSource.address === address ? this.#lastSource : this.#sources.get(key);
    if (src === undefined) {
      // Keys and names are copied out of the 1 MiB chunk they were sliced from, so that keeping
      // them does not keep every chunk of the log alive.
      address = detach(address);
      key = key === address ? address : clientKeyOf(address);
      // Full of addresses active within find time, or offenders: counted, and reported as an
      // incomplete analysis. The user is still charged, so a botnet on one account is still seen.
      src = this.#newRecord(this.#sources, key, t, lineNo, null);
      if (src === undefined) this.stats.untrackedSources++;
    }
    if (src !== undefined && key !== address && src.address !== address) src.address = detach(address);
    this.#lastSource = src;
    // Host names (UseDNS) never hold a colon. Link-local and NAT64 addresses are counted alone (ipv6GroupOf).
    const prefix = address.includes(":") ? ipv6GroupOf(address) : null;
    if (src !== undefined) {
      address = src.address;
      this.#count(src, user, t, lineNo);
      // A single IPv6 address is left to its /64, which sees every name any of its addresses tried.
      if (user !== null && prefix === null) this.#sprayCount(src, user, t, lineNo);
    }
    if (prefix !== null) this.#prefixFailure(address, prefix, user, t, lineNo, src !== undefined);
    if (user !== null && !event.invalidUser) this.#userFailure(user, address, t, lineNo);
  }

  /** A new record for `key` in `table`, or undefined when the table has no room. */
  #newRecord(table: ExpiringTable<string, SourceRecord>, key: string, t: number, lineNo: number, members: Set<string> | null): SourceRecord | undefined {
    if (!table.makeRoom(t)) return undefined;
    const rec: SourceRecord = {
      address: key, failures: 0, firstMs: t, lastMs: t, latestMs: t, first: { file: this.#file, line: lineNo }, last: { file: this.#file, line: lineNo },
      users: new Set(), moreUsers: false, lastUser: null, ring: newRing(this.maxRetry), inWindow: 0, byStamp: 0, bans: 0, offenderSinceMs: Number.NaN, offenderAt: null,
      offenderFile: 0, bansByFile: null, members, moreMembers: false, firstName: null, firstNameMs: Number.NaN, spray: null,
      fileMaxMs: t, fileNo: this.stats.files, earliestMs: t, otherMinMs: Number.POSITIVE_INFINITY, otherMaxMs: Number.NEGATIVE_INFINITY, outOfOrder: null,
    };
    // Room was made above; a cached record may have been evicted, and the caller replaces the cache.
    table.add(key, rec, t);
    return rec;
  }

  /** One failure from `src` (an address or a /64): fail2ban's sliding window. */
  #count(src: SourceRecord, user: string | null, t: number, lineNo: number): void {
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
    const n = this.maxRetry;
    // The ring grows as failures come (time-window.ts ringFor): a one-off address keeps a few numbers, not 2n.
    const ring = (src.ring = ringFor(src.ring, n, src.inWindow));
    this.#order(src, src.address, ring, src.inWindow, src.byStamp, t, lineNo);
    const byStamp = pushByStamp(ring, n, src.byStamp, t);
    if (byStamp !== NOT_KEPT) src.byStamp = byStamp;
    // Read order (fail2ban's), or by stamp: failures read out of time order (a sender of forged lines chooses where)
    // cannot keep a burst's failures apart both ways (time-window.ts).
    if (pushReadOrder(ring, n, src.inWindow++, t, this.findTimeMs) || (byStamp !== NOT_KEPT && withinWindowByStamp(ring, n, byStamp, this.findTimeMs))) {
      // fail2ban bans here and starts counting afresh for this address.
      src.bans++;
      src.inWindow = 0;
      src.byStamp = 0;
      if (Number.isNaN(src.offenderSinceMs)) {
        src.offenderSinceMs = t;
        src.offenderAt = { file: this.#file, line: lineNo };
        src.offenderFile = this.stats.files;
      }
      src.bansByFile = recordBan(src.bansByFile, t, this.stats.files, this.#file, lineNo);
      this.#attackRead(t);
    }
  }

  /**
   * Notes a failure at `t` of a key (before its window's ring takes it): a failure stamped more than --find-time before
   * the latest one read for the key in this file is out of order, and from it on the key's failures are all kept, the
   * ring's times first, to be judged exactly at the end (out-of-order.ts, #judgeOutOfOrder). Files given in any order
   * (auth.log*, newest first) are each in order; but a failure stamped within the range of the key's failures in the
   * files read before (from --find-time before their earliest to --find-time before their latest) is interleaved with
   * them: read after them, a burst split by logrotate and forged lines stamped after it in the newer file would keep
   * both windows apart (red team 40b, finding 4). Honest rotated files meet at most within --find-time of the rotation:
   * those keys are judged exactly, which costs memory only.
   */
  #order(rec: SourceRecord | UserRecord, name: string, ring: Float64Array, readCount: number, byStamp: number, t: number, lineNo: number): void {
    const file = this.stats.files;
    const ft = this.findTimeMs;
    if (rec.fileNo !== file) {
      // Every failure read so far lies in files before this one.
      if (rec.fileMaxMs > rec.otherMaxMs) rec.otherMaxMs = rec.fileMaxMs;
      rec.otherMinMs = rec.earliestMs;
      rec.fileNo = file;
      rec.fileMaxMs = t;
    }
    const late = t < rec.fileMaxMs - ft || (t >= rec.otherMinMs - ft && t < rec.otherMaxMs - ft);
    if (t > rec.fileMaxMs) rec.fileMaxMs = t;
    if (rec.outOfOrder === null && late) {
      rec.outOfOrder = this.#outOfOrder.open(detach(name), ring, this.maxRetry, readCount, byStamp, rec.earliestMs, file, lineNo);
    }
    if (t < rec.earliestMs) rec.earliestMs = t;
    if (rec.outOfOrder !== null) this.#outOfOrder.add(rec.outOfOrder, t, file, lineNo);
  }

  /**
   * Judges the keys logged out of order by stamp over every failure kept, as fail2ban judges a log in time order: each
   * window found is a ban of the address (or an attack on the user) in no file (file-order.ts), so a login is judged
   * against it by the stamps alone (#rejudgeKept), line order being what the disorder made worthless. Windows only add
   * to what the read-order and by-stamp halves found as the lines came.
   */
  #judgeOutOfOrder(): void {
    // Each key opened hangs on its record, which it pins in its table (a table's `pinned`) until judged here.
    if (this.#outOfOrder.keys === 0) return;
    const n = this.maxRetry;
    const records: Array<SourceRecord | UserRecord> = [];
    for (const table of [this.#sources, this.#prefixes, this.#users] as const) {
      for (const rec of table.values()) if (rec.outOfOrder !== null) records.push(rec);
    }
    const loggedIn = this.#loginsAfter();
    const uncertain = (rec: SourceRecord | UserRecord, name: string): void => {
      this.#uncertain.push({ name, login: loggedIn(rec) });
    };
    for (const rec of records) {
      const key = rec.outOfOrder as OutOfOrderKey;
      rec.outOfOrder = null;
      if (key.partial) this.#unheld.push({ name: key.name, login: loggedIn(rec) });
      const windows = exactWindows(key, n, this.findTimeMs);
      // A window in no file may precede any login past limits.logins, read before or after it, in this file or
      // another, and those are not judged again: noted as #attackRead notes an attack read in a later file, it makes
      // loginsNotRejudgedMatter when stamped at or before the latest of them (red team 40b, finding 3).
      for (const w of windows) if (w.ms < this.#lateAttackMs) this.#lateAttackMs = w.ms;
      const at = (w: { file: number; line: number }) => ({ file: this.#fileNames[w.file] ?? "", line: w.line });
      if ("bans" in rec) {
        for (const w of windows) {
          if (!(w.ms >= rec.offenderSinceMs)) {
            rec.offenderSinceMs = w.ms;
            rec.offenderAt = at(w);
            rec.offenderFile = w.file;
          }
          rec.bansByFile = recordBan(rec.bansByFile, w.ms, 0, at(w).file, w.line);
        }
        if (windows.length > rec.bans) rec.bans = windows.length;
        if (rec.bans === 0 && droppedCouldComplete(key, n, this.findTimeMs)) uncertain(rec, key.name);
      } else {
        for (const w of windows) {
          if (!(w.ms >= rec.attackFirstMs)) {
            rec.attackFirstMs = w.ms;
            rec.firstAttackAt = at(w);
          }
          if (!(w.ms <= rec.attackLastMs)) rec.attackLastMs = w.ms;
          rec.attackFailures = rec.failures;
          rec.attacks = recordAttack(rec.attacks, w.ms, 0, this.#compromiseWindowMs, at(w).file, w.line);
        }
        if (Number.isNaN(rec.attackFirstMs) && droppedCouldComplete(key, n, this.findTimeMs)) uncertain(rec, key.name);
      }
    }
    // Stable: table order within each group.
    this.#uncertain.sort((a, b) => Number(b.login) - Number(a.login));
    this.#unheld.sort((a, b) => Number(b.login) - Number(a.login));
    this.stats.outOfOrderUnheldKeys = this.#unheld.length;
    this.stats.outOfOrderUnheldLogin = this.#unheld.filter((u) => u.login).length;
    this.stats.outOfOrderUncertain = this.#uncertain.length;
    this.stats.outOfOrderUncertainLogin = this.#uncertain.filter((u) => u.login).length;
  }

  /**
   * Whether a key (an address, a /64, a user) had an accepted login from it (for a user: a password login for it)
   * stamped no earlier than its earliest failure: what an uncertain window could have made a compromise. Every login is
   * kept (#kept) or suspect (#compromises) unless one of the bounds was passed; then any key may have had one.
   */
  #loginsAfter(): (rec: SourceRecord | UserRecord) => boolean {
    const s = this.stats;
    if (s.loginsNotRejudged > 0 || s.untrackedCompromises > 0 || s.untrackedSlowCompromises > 0) return () => true;
    // The latest login stamp per key (a suspect pair's repeats are later ones: +∞).
    const sources = new Map<string, number>();
    const prefixes = new Map<string, number>();
    const users = new Map<string, number>();
    const note = (map: Map<string, number>, key: string, t: number): void => {
      if (!((map.get(key) ?? Number.NEGATIVE_INFINITY) >= t)) map.set(key, t);
    };
    const add = (login: SuccessRecord, t: number): void => {
      note(sources, clientKeyOf(login.address), t);
      const prefix = login.address.includes(":") ? ipv6GroupOf(login.address) : null;
      if (prefix !== null) note(prefixes, prefix, t);
      if (isPasswordMethod(login.method)) note(users, userKey(login.user), t);
    };
    for (const { login } of this.#kept) add(login, login.timeMs);
    for (const login of this.#compromises.values()) add(login, login.repeats > 0 ? Number.POSITIVE_INFINITY : login.timeMs);
    return (rec) => {
      const latest = "bans" in rec ? (rec.members !== null ? prefixes.get(rec.address) : sources.get(clientKeyOf(rec.address))) : users.get(userKey(rec.user));
      return latest !== undefined && latest >= rec.earliestMs - CLOCK_SLACK_MS;
    };
  }

  /**
   * The slow-spraying rule: `sprayMin` different names (invalid ones too, as `check logins` counts unknown identifiers)
   * failed from `src` within the compromise window, at any pace. Most addresses try one name: the list is made at the
   * second, so they cost no more than before and are still forgotten after --find-time.
   */
  #sprayCount(src: SourceRecord, user: string, t: number, lineNo: number): void {
    let s = src.spray;
    if (s === null) {
      if (src.firstName === null || src.firstName === user) {
        src.firstName ??= detach(user);
        if (!(t < src.firstNameMs)) src.firstNameMs = t;
        return;
      }
      s = src.spray = { names: [src.firstName], times: [src.firstNameMs], oldest: 0, marks: null };
    }
    if (pushName(s, user, t, this.#sprayMin, this.#compromiseWindowMs)) {
      s.marks = markSlow(s.marks, t, this.stats.files, this.#compromiseWindowMs, this.#file, lineNo);
      this.#attackRead(t);
    }
  }

  /**
   * Charges the /64 of an IPv6 `address` (detached) too: an attacker who gives each connection another address of
   * its /64 (RFC 7421) stays under the threshold address by address. The login flood control keys IPv6 on the /64
   * for the same reason (docs/password-policy.md).
   */
  #prefixFailure(address: string, key: string, user: string | null, t: number, lineNo: number, addressTracked: boolean): void {
    let p = this.#lastPrefix !== undefined && this.#lastPrefix.address === key ? this.#lastPrefix : this.#prefixes.get(key);
    if (p === undefined) {
      p = this.#newRecord(this.#prefixes, key, t, lineNo, new Set());
      if (p === undefined) {
        this.#lastPrefix = undefined;
        // A failure whose address went untracked is counted as that already.
        if (addressTracked) this.stats.untrackedPrefixes++;
        return;
      }
    }
    this.#lastPrefix = p;
    this.#count(p, user, t, lineNo);
    if (user !== null) this.#sprayCount(p, user, t, lineNo);
    const members = p.members;
    if (members !== null && !p.moreMembers && !members.has(address)) {
      if (members.size < MAX_NAMES_PER_RECORD) members.add(address);
      else p.moreMembers = true;
    }
  }

  #userFailure(user: string, address: string, t: number, lineNo: number): void {
    let key = userKey(user);
    let rec = this.#lastUserRecord !== undefined && this.#lastUserKey === key ? this.#lastUserRecord : this.#users.get(key);
    if (rec === undefined) {
      if (!this.#users.makeRoom(t)) {
        this.stats.untrackedUsers++;
        this.#lastUserRecord = undefined;
        return;
      }
      // The record shows the name as first logged; it is found by the folded key.
      user = detach(user);
      key = detach(key);
      rec = {
        user, failures: 0, ring: newRing(this.maxRetry), count: 0, byStamp: 0, latestMs: t, attackFirstMs: Number.NaN, attackLastMs: Number.NaN, attackLastFile: 0,
        attackFailures: 0, sources: new Set(), moreSources: false, firstAttackAt: null, attacks: null, guessRing: newRing(this.#guessMin), guessCount: 0, guessByStamp: 0, guessed: null,
        fileMaxMs: t, fileNo: this.stats.files, earliestMs: t, otherMinMs: Number.POSITIVE_INFINITY, otherMaxMs: Number.NEGATIVE_INFINITY, outOfOrder: null,
      };
      this.#users.add(key, rec, t);
    }
    this.#lastUserRecord = rec;
    this.#lastUserKey = key;
    rec.failures++;
    if (t > rec.latestMs) rec.latestMs = t;
    if (!rec.moreSources && !rec.sources.has(address)) {
      if (rec.sources.size < MAX_NAMES_PER_RECORD) rec.sources.add(address);
      else rec.moreSources = true;
    }
    const n = this.maxRetry;
    const ring = (rec.ring = ringFor(rec.ring, n, rec.count));
    this.#order(rec, `user ${rec.user}`, ring, rec.count, rec.byStamp, t, lineNo);
    const byStamp = pushByStamp(ring, n, rec.byStamp, t);
    if (byStamp !== NOT_KEPT) rec.byStamp = byStamp;
    if (pushReadOrder(ring, n, rec.count++, t, this.findTimeMs) || (byStamp !== NOT_KEPT && withinWindowByStamp(ring, n, byStamp, this.findTimeMs))) {
      if (Number.isNaN(rec.attackFirstMs)) {
        rec.attackFirstMs = t;
        rec.firstAttackAt = { file: this.#file, line: lineNo };
      }
      rec.attackLastMs = t;
      rec.attackLastFile = this.stats.files;
      rec.attackFailures = rec.failures;
      rec.attacks = recordAttack(rec.attacks, t, this.stats.files, this.#compromiseWindowMs, this.#file, lineNo);
      this.#attackRead(t);
    }
    // The slow-guessing rule: guessMin failures within the compromise window, from anywhere, at any pace.
    const g = this.#guessMin;
    const guessRing = (rec.guessRing = ringFor(rec.guessRing, g, rec.guessCount));
    const guesses = pushByStamp(guessRing, g, rec.guessByStamp, t);
    if (guesses !== NOT_KEPT) rec.guessByStamp = guesses;
    if (pushReadOrder(guessRing, g, rec.guessCount++, t, this.#compromiseWindowMs) || (guesses !== NOT_KEPT && withinWindowByStamp(guessRing, g, guesses, this.#compromiseWindowMs))) {
      rec.guessed = markSlow(rec.guessed, t, this.stats.files, this.#compromiseWindowMs, this.#file, lineNo);
      this.#attackRead(t);
    }
  }

  #success(event: SshdEvent, t: number, lineNo: number): void {
    this.stats.successes++;
    const user = detach(utf8(event.user ?? ""));
    const address = detach(event.address ?? "");
    const record: SuccessRecord = {
      file: this.#file, line: lineNo, timeMs: t, address, user, method: detach(utf8(event.method ?? "unknown")),
      offender: null, targetedUser: null, sprayer: null, guessedUser: null, repeats: 0,
    };
    if (user === "root") {
      this.stats.rootLogins++;
      const byPassword = isPasswordMethod(record.method);
      if (byPassword) this.stats.rootPasswordLogins++;
      // Apart: a flood of forged key logins must not crowd out a password login (the graver finding), nor the reverse.
      addRootLogin(byPassword ? this.#rootLogins.password : this.#rootLogins.key, record);
    }
    const offender = this.#offenderBefore(address, t);
    const rec = this.#users.get(userKey(user));
    // A brute force on the user explains only a login with a guessable secret: after a botnet has
    // hammered root's password, the admin's own key login from an address that never failed is not
    // its fruit (an address that failed is suspect whatever the method, see #offenderBefore).
    // "After" as in #offenderBefore: line order within the file, the stamps across files.
    const targeted =
      rec !== undefined && isPasswordMethod(record.method) && (rec.attackLastFile === this.stats.files || rec.attackLastMs <= t + CLOCK_SLACK_MS) && t - rec.attackLastMs <= this.#compromiseWindowMs;
    if (offender === undefined && !targeted) {
      // Suspect by the slow rules only, it is still kept: a brute force in a file read later makes it critical.
      const counted = this.#slowSuspect(record, rec, (marks) => slowRunBefore(marks, t, this.stats.files, this.#compromiseWindowMs, CLOCK_SLACK_MS));
      this.#keep({ login: record, file: this.stats.files, counted });
      return;
    }
    // A snapshot: the live record goes on counting (its `last` is updated in place) after the login.
    this.#suspect(record, offender === undefined ? null : snapshotSource(offender), targeted && rec ? snapshotUser(rec) : null);
  }

  /**
   * The slow rules, for a password login not suspect by the brute-force ones: from an address (else its IPv6 /64) that
   * had failed on sprayMin names, or by a user who had taken guessMin failures, within the compromise window before it
   * (`before` finds the run of marks that came before the login). A key login is left alone: a slow campaign wins by
   * guessing a password, and an address shared by many (a NAT, a bastion) fails on many names while its users log in
   * with their keys. "Before" as for a ban: line order in one file, the stamps across files.
   */
  #slowSuspect(login: SuccessRecord, user: UserRecord | undefined, before: (marks: SlowMarks | null) => AttackRun | undefined): boolean {
    if (!isPasswordMethod(login.method)) return false;
    const prefix = login.address.includes(":") ? ipv6GroupOf(login.address) : null;
    const src = prefix !== null ? this.#prefixes.get(prefix) : this.#sources.get(clientKeyOf(login.address));
    const sprayer = src?.spray ? slowEvidence(src, before(src.spray.marks)) : null;
    const guessed = user ? slowEvidence(user, before(user.guessed)) : null;
    if (sprayer === null && guessed === null) return false;
    login.sprayer = sprayer && { ...sprayer, record: snapshotSource(sprayer.record) };
    login.guessedUser = guessed && { ...guessed, record: snapshotUser(guessed.record) };
    this.#suspect(login, null, null);
    return true;
  }

  /**
   * Keeps a login that was not suspect by the brute-force rules when read: a file read later (auth.log before
   * auth.log.1, as the shell expands auth.log*) can hold the brute force that came before it. Bounded: past
   * limits.logins it is counted instead.
   */
  #keep(kept: KeptLogin): void {
    const login = kept.login;
    if (this.#kept.length < this.#limits.logins) {
      this.#kept.push(kept);
      return;
    }
    this.stats.loginsNotRejudged++;
    if (this.#firstUnkeptFile === 0) this.#firstUnkeptFile = this.stats.files;
    if (login.timeMs > this.#unkeptLatestMs) this.#unkeptLatestMs = login.timeMs;
  }

  /** A ban, a brute-force window or a slow rule's mark at `t`: noted when it is read in a file after a login that was not kept. */
  #attackRead(t: number): void {
    if (this.#firstUnkeptFile > 0 && this.stats.files > this.#firstUnkeptFile && t < this.#lateAttackMs) this.#lateAttackMs = t;
  }

  /**
   * Records a suspect login: one record per address/user pair, later ones counted as its repeats. A login suspect by
   * the brute-force rules (`offender`, `targetedUser`) raises a pair first suspect by the slow rules only: it is the
   * graver finding.
   */
  #suspect(record: SuccessRecord, offender: SourceRecord | null, targetedUser: UserRecord | null): void {
    const seen = this.#compromises.get(pairKey(record));
    const bruteForce = offender !== null || targetedUser !== null;
    if (seen) {
      seen.repeats++;
      this.#raise(seen, offender, targetedUser);
      return;
    }
    if (this.#compromises.size >= MAX_COMPROMISES) {
      // Not kept, but counted: the findings say how many more suspect logins there were, at the severity of each rule.
      if (bruteForce) this.stats.untrackedCompromises++;
      else this.stats.untrackedSlowCompromises++;
      return;
    }
    record.offender = offender;
    record.targetedUser = targetedUser;
    this.#compromises.set(pairKey(record), record);
  }

  /** Gives a pair suspect by the slow rules only the brute force found before one of its logins. */
  #raise(seen: SuccessRecord, offender: SourceRecord | null, targetedUser: UserRecord | null): void {
    if (seen.offender !== null || seen.targetedUser !== null) return;
    seen.offender = offender;
    seen.targetedUser = targetedUser;
  }

  /**
   * A login already recorded as suspect by the slow rules when read, found suspect by the brute-force ones at the
   * second look: its pair is raised, and it is not counted a second time.
   */
  #raiseCounted(login: SuccessRecord, offender: SourceRecord | null, targetedUser: UserRecord | null): void {
    const seen = this.#compromises.get(pairKey(login));
    if (seen !== undefined) {
      this.#raise(seen, offender, targetedUser);
      return;
    }
    // Counted only (the pairs were full): it moves to the count of the graver rule.
    this.stats.untrackedSlowCompromises--;
    this.stats.untrackedCompromises++;
  }

  /**
   * Judges the kept logins again against every file, by the stamps: a ban in another file stamped before the login, or
   * (for a password login) a brute-force window on its user in another file within the compromise window before it;
   * else the slow rules' marks likewise. Their own file was judged as it was read, in line order. With one file there
   * is nothing new to learn.
   */
  #rejudgeKept(): void {
    // Within one file line order decided, unless keys were logged out of order: their windows are judged by stamp.
    if (this.stats.files < 2 && this.stats.outOfOrderKeys === 0) return;
    const window = this.#compromiseWindowMs;
    for (const { login, file, counted } of this.#kept) {
      const t = login.timeMs;
      const offender = this.#offenderInOtherFile(login.address, t, file);
      const rec = isPasswordMethod(login.method) ? this.#users.get(userKey(login.user)) : undefined;
      const run = rec?.attacks ? attackBefore(rec.attacks, t, file, window, CLOCK_SLACK_MS) : undefined;
      if (offender === null && run === undefined) {
        // Suspect by the slow rules when read, it stays so, with that evidence; else their marks in other files decide.
        if (!counted) this.#slowSuspect(login, this.#users.get(userKey(login.user)), (marks) => (marks === null ? undefined : attackBefore(marks.runs, t, file, window, CLOCK_SLACK_MS)));
        continue;
      }
      // The evidence names the attack that came before the login, not the first one read.
      const targeted = rec && run ? { ...snapshotUser(rec), attackFirstMs: run.firstMs, attackLastMs: run.lastMs, firstAttackAt: run.firstAt } : null;
      if (counted) this.#raiseCounted(login, offender, targeted);
      else this.#suspect(login, offender, targeted);
    }
    // Judged once: a second finish() must not count them again as repeats.
    this.#kept.length = 0;
  }

  /** A snapshot of the address (else its /64) with a ban in a file other than `file` stamped at or before `t`, or null. */
  #offenderInOtherFile(address: string, t: number, file: number): SourceRecord | null {
    const prefix = address.includes(":") ? ipv6GroupOf(address) : null;
    const candidates = [this.#sources.get(clientKeyOf(address)), prefix !== null ? this.#prefixes.get(prefix) : undefined];
    for (const s of candidates) {
      if (s?.bansByFile == null) continue;
      const ban = earliestBanOutside(s.bansByFile, file);
      if (ban !== undefined && ban.ms <= t) return { ...snapshotSource(s), offenderSinceMs: ban.ms, offenderAt: ban.at };
    }
    return null;
  }

  /**
   * The record (the address, else its IPv6 /64) that had become an offender before a login at `t`, if any. Within one
   * file the order of lines decides: syslog writes them as they come, so a threshold reached on a line above the
   * login's came first, whatever the stamps say (local-time stamps repeat an hour when DST ends; a sending host's
   * clock can lag). Across files, which may be given out of order, only the stamps can tell.
   */
  #offenderBefore(address: string, t: number): SourceRecord | undefined {
    const files = this.stats.files;
    // A ban read in this file so far lies above the login; one in another file must be stamped before it.
    const before = (s: SourceRecord | undefined): s is SourceRecord =>
      s?.bansByFile != null && (s.bansByFile.lastFile === files || (earliestBanOutside(s.bansByFile, files)?.ms ?? Number.POSITIVE_INFINITY) <= t);
    const src = this.#sources.get(clientKeyOf(address));
    if (before(src)) return src;
    const key = address.includes(":") ? ipv6GroupOf(address) : null;
    if (key === null) return undefined;
    const prefix = this.#prefixes.get(key);
    return before(prefix) ? prefix : undefined;
  }

  /** Ends the analysis and returns offenders, suspicious logins and counters. */
  finish(): AuthLogResult {
    this.#lines?.endFile();
    this.#remote?.close();
    // The line stage's counters (its own in a worker: taken at the end of each input, by feed), kinds and lists.
    const lines = this.#lines?.snapshot() ?? this.#remote?.snapshot ?? null;
    this.#judgeOutOfOrder();
    this.stats.outOfOrderKeys = this.#outOfOrder.keys;
    this.stats.outOfOrderUnheld = this.#outOfOrder.unheld;
    this.#rejudgeKept();
    this.stats.loginsNotRejudgedMatter = this.stats.loginsNotRejudged > 0 && this.#lateAttackMs <= this.#unkeptLatestMs + CLOCK_SLACK_MS;
    const offenders = [...this.#sources.values()].filter((s) => s.bans > 0);
    // A /64 says more than its addresses only when several of them failed: one address's /64 would repeat it.
    for (const p of this.#prefixes.values()) if (p.bans > 0 && ((p.members?.size ?? 0) > 1 || p.moreMembers)) offenders.push(p);
    offenders.sort((a, b) => b.failures - a.failures || a.firstMs - b.firstMs);
    const attackedUsers = [...this.#users.values()].filter((u) => !Number.isNaN(u.attackFirstMs)).sort((a, b) => b.failures - a.failures || a.attackFirstMs - b.attackFirstMs);
    this.stats.byKind = lines?.byKind ?? {};
    this.stats.evictedSources = this.#sources.evicted;
    this.stats.evictedUsers = this.#users.evicted;
    return {
      stats: this.stats,
      maxRetry: this.maxRetry,
      findTimeMs: this.findTimeMs,
      sprayMin: this.#sprayMin,
      guessMin: this.#guessMin,
      compromiseWindowMs: this.#compromiseWindowMs,
      limits: { ...this.#limits },
      offenders,
      attackedUsers,
      compromises: [...this.#compromises.values()],
      rootLogins: this.#rootLogins,
      untrustedWriters: lines?.untrustedWriters ?? [],
      unreadFiles: lines?.unreadFiles ?? [],
      outOfOrder: { unheld: this.#unheld.slice(0, 20).map((u) => u.name), uncertain: this.#uncertain.slice(0, 20).map((u) => u.name) },
    };
  }
}
