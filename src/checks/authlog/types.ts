// Types shared by the auth-log analyzer, its findings and the CLI.
import type { OutOfOrderKey } from "./out-of-order.ts";

export interface AuthLogOptions {
  /** "Now" from a Clock: zone-less syslog stamps are placed in the year that ends before it. */
  referenceMs: number;
  /** Failures within `findTimeMs` that make an address an offender (fail2ban maxretry, default 5). */
  maxRetry?: number | undefined;
  /** Window in ms (fail2ban findtime, default 10 minutes). */
  findTimeMs?: number | undefined;
  /** Year of the first zone-less stamp of the first file, when known (later files continue from it). */
  year?: number | undefined;
  /** Zone of zone-less stamps, minutes east of UTC (default 0). */
  utcOffsetMinutes?: number | undefined;
  /** Longer lines are counted as overlong and skipped (default 8192 bytes). */
  maxLineLength?: number | undefined;
  /** How long after a brute force on a user a login by that user is suspect (default 24 h); also the slow rules' window. */
  compromiseWindowMs?: number | undefined;
  /**
   * Different user names an address (an IPv6 /64) failed on within the compromise window that make a password login
   * from it suspect at any pace: slow password spraying (default 20, as `check logins --spray-min`).
   */
  sprayMin?: number | undefined;
  /**
   * Failures on one user within the compromise window that make a password login by that user suspect at any pace:
   * slow guessing, spread over addresses (default 20).
   */
  guessMin?: number | undefined;
  /** Called for every counted failure, in order (`--matches`). */
  onFailure?: ((match: FailureMatch) => void) | undefined;
  /**
   * Split and read the lines in a worker thread while this one keeps the windows and rules (remote-lines.ts): the two
   * halves overlap on two cores. The analyzer then reads whole inputs only (analyzeFile, analyzeStream), not `line`.
   * Same result either way (test/authlog-workers.test.ts).
   */
  workers?: boolean | undefined;
  /** Memory bounds (defaults: 500,000 addresses, 100,000 users); smaller ones let tests reach them. */
  limits?: Partial<AuthLogLimits> | undefined;
}

export interface AuthLogLimits {
  /** Addresses tracked at once; idle ones that never became offenders are evicted to make room. */
  sources: number;
  /** User names tracked at once; idle ones that were never brute-forced are evicted to make room. */
  users: number;
  /** Accepted logins kept to be judged again at the end against brute force read later (files out of order). */
  logins: number;
  /** Failures kept, for all keys together, of keys logged out of time order, to judge them exactly (out-of-order.ts). */
  outOfOrder: number;
}

export interface LineRef {
  file: string;
  /** 1-based line number within `file`. */
  line: number;
}

export interface FailureMatch extends LineRef {
  address: string;
  kind: string;
  user: string | null;
  timeMs: number;
}

/** Whether a key's (address, /64, user) failures came in time order, and if not, all of them since (out-of-order.ts). */
export interface KeyOrder {
  /** The latest failure stamp read in file `fileNo` (a failure stamped more than --find-time before it is out of order). */
  fileMaxMs: number;
  fileNo: number;
  /** The earliest failure stamp read (how far back failures no longer held may lie). */
  earliestMs: number;
  /**
   * The range of the failures' stamps in the files read before `fileNo` (+∞, −∞ before a second file): a failure
   * stamped within it, less --find-time, is interleaved with another file's and out of order.
   */
  otherMinMs: number;
  otherMaxMs: number;
  /** Every failure since it was first read out of order, else null. */
  outOfOrder: OutOfOrderKey | null;
}

export interface SourceRecord extends KeyOrder {
  /** An address, or an IPv6 /64 in CIDR form ("2001:db8:1:2::/64") counting the failures of every address in it. */
  address: string;
  failures: number;
  firstMs: number;
  lastMs: number;
  /** Latest failure time (a maximum: lines can be out of order); eviction compares it with the window. */
  latestMs: number;
  first: LineRef;
  last: LineRef;
  users: Set<string>;
  moreUsers: boolean;
  /** Last user name seen from this address: skips the set lookup for runs of one name. */
  lastUser: string | null;
  /**
   * The window's failure times (time-window.ts): the last maxRetry read, then the latest maxRetry by stamp. Made small
   * and grown as failures come (newRing, ringFor).
   */
  ring: Float64Array;
  /** Failures read since the last ban (the read-order half of `ring`). */
  inWindow: number;
  /** The by-stamp half's count (time-window.ts pushByStamp), restarted at a ban as `inWindow` is. */
  byStamp: number;
  /** How many times fail2ban's rule would have banned this address. */
  bans: number;
  offenderSinceMs: number;
  offenderAt: LineRef | null;
  /** Which file (1-based, in the order read) `offenderAt` lies in: within one file, line order says what came first. */
  offenderFile: number;
  /** Where the bans fell file by file (null until the first), to judge logins read in another file. */
  bansByFile: BanSpan | null;
  /** For an IPv6 /64: the addresses in it that failed (at most 50; `moreMembers` when there were more). Null for an address. */
  members: Set<string> | null;
  moreMembers: boolean;
  /** The first user name that failed from here and its latest failure, until a second name makes `spray`. */
  firstName: string | null;
  firstNameMs: number;
  /** Slow-spraying state, made at the second user name (null for a single IPv6 address: its /64 holds it). */
  spray: SprayState | null;
}

/** The user names an address (or IPv6 /64) failed on most recently, for the slow-spraying rule. */
export interface SprayState {
  /** At most `sprayMin` distinct names, least recently tried first, and the latest failure of each. */
  names: string[];
  times: number[];
  /** The index of the oldest of those times. */
  oldest: number;
  /**
   * The same, kept by read order instead (a new name takes the place of the one read longest ago; absent until the
   * names are full): lines stamped after a spray and read before it fill the by-stamp list with names no spray name
   * can push out, and cannot fill this one (slow-rules.ts pushName).
   */
  read?: { names: string[]; times: number[]; next: number };
  /** Where it had failed on `sprayMin` names within the compromise window (null until then). */
  marks: SlowMarks | null;
}

/**
 * Where a slow rule (spraying from an address, guessing on a user) was met: the latest time and its file, for the
 * logins read after it, and runs by file (as a user's brute-force windows) for logins read in another file.
 */
export interface SlowMarks {
  lastMs: number;
  lastFile: number;
  runs: AttackRun[];
}

export interface UserRecord extends KeyOrder {
  user: string;
  failures: number;
  /** As an address's (SourceRecord): the last maxRetry failures read, then the latest maxRetry by stamp; grown as they come. */
  ring: Float64Array;
  count: number;
  byStamp: number;
  /** Latest failure time (a maximum); eviction compares it with the window. */
  latestMs: number;
  attackFirstMs: number;
  attackLastMs: number;
  /** Which file (1-based, in the order read) held the failure that set `attackLastMs`. */
  attackLastFile: number;
  /** Failures for this user up to the last failure that completed a brute-force window. */
  attackFailures: number;
  sources: Set<string>;
  moreSources: boolean;
  firstAttackAt: LineRef | null;
  /** The brute-force windows this user took, in runs by file (null until the first), to judge logins read in another file. */
  attacks: AttackRun[] | null;
  /** The slow-guessing rule's window over `guessMin` failures (time-window.ts: read order, then by stamp), and how many were read. */
  guessRing: Float64Array;
  guessCount: number;
  /** The by-stamp half of `guessRing` (time-window.ts). */
  guessByStamp: number;
  /** Where it had taken `guessMin` failures within the compromise window (null until then). */
  guessed: SlowMarks | null;
}

/**
 * The earliest ban stamp of an address (or /64) in any file, and the earliest in any other file than that one: enough
 * to give, for every file, the earliest ban outside it. `lastFile`: the file of the ban read last.
 */
export interface BanSpan {
  earliestMs: number;
  earliestFile: number;
  earliestAt: LineRef;
  /** NaN while every ban lies in `earliestFile`. */
  otherMs: number;
  otherFile: number;
  otherAt: LineRef | null;
  lastFile: number;
}

/** Brute-force windows a user took within one file, no two consecutive ones further apart than the compromise window. */
export interface AttackRun {
  file: number;
  firstMs: number;
  lastMs: number;
  firstAt: LineRef;
}

export interface SuccessRecord extends LineRef {
  timeMs: number;
  address: string;
  user: string;
  method: string;
  /** The address had already reached the offender threshold (snapshot at login time). */
  offender: SourceRecord | null;
  /** The user had been brute-forced within the compromise window (snapshot at login time). */
  targetedUser: UserRecord | null;
  /** A password login from an address (or /64) that had failed on `sprayMin` user names within the compromise window. */
  sprayer: SlowEvidence<SourceRecord> | null;
  /** A password login by a user who had taken `guessMin` failures within the compromise window. */
  guessedUser: SlowEvidence<UserRecord> | null;
  /** Further logins with the same address and user after this one. */
  repeats: number;
}

/** A snapshot of the record a slow rule was met on, and the run of marks that came before the login. */
export interface SlowEvidence<R> {
  record: R;
  run: AttackRun;
}

export interface AuthLogStats {
  files: number;
  lines: number;
  blank: number;
  malformed: number;
  overlong: number;
  sshdLines: number;
  events: number;
  failures: number;
  successes: number;
  rootLogins: number;
  /** Root logins by password or keyboard-interactive (the rest used keys or other methods). */
  rootPasswordLogins: number;
  /** Failures from new addresses that could not be tracked: the table was full of recent or offending ones. */
  untrackedSources: number;
  /** Failures for new user names that could not be tracked, likewise. */
  untrackedUsers: number;
  /** Failures from tracked IPv6 addresses whose /64 could not be tracked, likewise. */
  untrackedPrefixes: number;
  /** Idle addresses (never offenders) forgotten to make room. */
  evictedSources: number;
  /** Idle user names (never brute-forced) forgotten to make room. */
  evictedUsers: number;
  /** Suspect logins not kept because 1,000 distinct (address, user) pairs were already kept. */
  untrackedCompromises: number;
  /** Likewise for logins suspect by the slow rules only (reported high, not critical): counted apart. */
  untrackedSlowCompromises: number;
  /**
   * Accepted logins past `limits.logins`, judged only against the lines read before them: a brute force in a file read
   * later (files given newest first) cannot be matched to them.
   */
  loginsNotRejudged: number;
  /** Some of those may have followed a brute force read later (by the stamps): the report may miss a compromise. */
  loginsNotRejudgedMatter: boolean;
  /** Files most of whose non-blank lines were malformed or overlong: not read (authlog.log-not-read). */
  unreadFiles: number;
  /**
   * Journal entries that claim to be sshd's (and hold an sshd message) but that journald says another process wrote, or
   * sshd not as root (authlog.untrusted-entries): their failures are not counted, their logins are.
   */
  untrustedEntries: number;
  /** Failures among them, not counted (no ban, no brute force, no --format nft). */
  untrustedFailures: number;
  /** Accepted logins among them, reported all the same: a forged login is a false alarm, a missed one is not. */
  untrustedLogins: number;
  /** Addresses, /64s and users whose failures were logged out of time order (out-of-order.ts), judged exactly by stamp. */
  outOfOrderKeys: number;
  /**
   * Failures of those keys not kept (limits.outOfOrder reached: refused, or given up by a key holding the most, its
   * oldest by stamp, to a smaller one): their windows were judged as read only.
   */
  outOfOrderUnheld: number;
  /** The keys with such failures (`outOfOrder.unheld`), and of those the keys with an accepted login from or for them after their failures. */
  outOfOrderUnheldKeys: number;
  outOfOrderUnheldLogin: number;
  /** Those keys found in no window whose failures dropped before the disorder could have made one (`outOfOrder.uncertain`). */
  outOfOrderUncertain: number;
  /** Of those, the keys with an accepted login from or for them after their failures (or logins not all known). */
  outOfOrderUncertainLogin: number;
  byKind: Record<string, number>;
}

export interface AuthLogResult {
  stats: AuthLogStats;
  maxRetry: number;
  findTimeMs: number;
  /** The slow rules' thresholds and window. */
  sprayMin: number;
  guessMin: number;
  compromiseWindowMs: number;
  limits: AuthLogLimits;
  /**
   * Addresses that reached maxRetry within findTimeMs, and IPv6 /64s that did so from more than one address (an
   * attacker rotating source addresses; a /64 of one address would only repeat it).
   */
  offenders: SourceRecord[];
  /** Existing users whose failures reached maxRetry within findTimeMs, from any number of addresses. */
  attackedUsers: UserRecord[];
  /** Suspect logins: by the brute-force rules (`offender`, `targetedUser`), else by the slow rules only. */
  compromises: SuccessRecord[];
  /** Root logins by password or keyboard-interactive, and by any other method (keys), counted and sampled apart. */
  rootLogins: { password: RootLoginSample; key: RootLoginSample };
  /** Who wrote journal entries that claim to be sshd but are not sshd's, with how many each (the first 20 writers). */
  untrustedWriters: UntrustedWriter[];
  /** The first 100 files that were not read (`stats.unreadFiles` counts them all). */
  unreadFiles: UnreadFile[];
  /**
   * Keys logged out of time order that could not be judged exactly (out-of-order.ts): some of those that lost failures
   * to limits.outOfOrder (`unheld`: the keys holding the most when it was reached), and those found in no window whose
   * failures read before the disorder, no longer held, could have made one (`uncertain`). At most 20 each. Each lists first the keys with an accepted login
   * from or for them after their failures (`stats.outOfOrderUnheldLogin`, `stats.outOfOrderUncertainLogin` of them: the
   * names that matter, never crowded out by keys without one), then the others.
   */
  outOfOrder: { unheld: string[]; uncertain: string[] };
}

/**
 * Root logins of one kind (by password, or not): the count, and the logins kept as evidence, bounded however many a log
 * forges: the earliest and the latest by stamp, and the first from each of up to 1,000 addresses.
 */
export interface RootLoginSample {
  count: number;
  earliest: SuccessRecord | null;
  latest: SuccessRecord | null;
  /** The first login from each address, in the order read. */
  byAddress: Map<string, SuccessRecord>;
  /** Logins came from further addresses once `byAddress` was full: counted only. */
  moreAddresses: boolean;
  methods: Set<string>;
  moreMethods: boolean;
}

/** A writer of journal entries that claimed to be sshd, as journald recorded it ("uid 33, exe /usr/bin/logger, …"). */
export interface UntrustedWriter {
  writer: string;
  entries: number;
}

/** A file most of whose lines were in no format the check reads. */
export interface UnreadFile {
  file: string;
  /** Its lines, and how many of them were malformed or overlong. */
  lines: number;
  unread: number;
}
