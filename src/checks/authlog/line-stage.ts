// The first half of the auth-log analysis, which depends on the lines alone: each line through the syslog splitter
// and the sshd matcher, the connection tracker (fail2ban's multi-line semantics), the year of zone-less stamps and the
// events held for BSD repeat lines. What comes out is the failures to count against an address and the logins, handed
// to a sink: the analyzer's windows and rules (analyzer.ts), in the same thread or across a worker (line-worker.ts).
import { ConnectionTracker, detach } from "./connection-tracker.ts";
import { HeldEvents } from "./held-events.ts";
import { journalEntry } from "./journal-json.ts";
import { afterSyslogdTag, bsdRepeatCount, classifySshdMessage, messageStart, repeatedMessage, type SshdEvent } from "./sshd-messages.ts";
import { splitLine, type SshdLine } from "./syslog-line.ts";
import { emptyStamp, YearResolver } from "./timestamp.ts";
import { fileReferenceMs } from "./year-resolver.ts";
import type { AuthLogStats, UnreadFile, UntrustedWriter } from "./types.ts";
import { mostlyUnread, UNREAD_FILES_KEPT } from "./unread-files.ts";

// Writers of untrusted journal entries named in authlog.untrusted-entries; later ones are counted only.
const MAX_UNTRUSTED_WRITERS = 20;

/** The counters this stage keeps (the rest of AuthLogStats is the analyzer's). */
export const LINE_STATS = ["lines", "blank", "malformed", "overlong", "sshdLines", "events", "untrustedEntries", "untrustedFailures", "untrustedLogins", "unreadFiles"] as const;
export type LineStats = Pick<AuthLogStats, (typeof LINE_STATS)[number]>;

/** The counters at zero. */
export function emptyLineStats(): LineStats {
  return { lines: 0, blank: 0, malformed: 0, overlong: 0, sshdLines: 0, events: 0, untrustedEntries: 0, untrustedFailures: 0, untrustedLogins: 0, unreadFiles: 0 };
}

/** What the stage finds, in line order: the analyzer's windows and rules take it from here. */
export interface SshdEventSink {
  /** A failure charged to `address` (sshd wrote it: untrusted journal entries are counted apart, never here). */
  failure(address: string, event: SshdEvent, t: number, lineNo: number): void;
  /** An accepted login (`event.address` and `event.user` are set), sshd's or an untrusted entry's. */
  success(event: SshdEvent, t: number, lineNo: number): void;
}

/** What the stage has counted and kept so far: what the analyzer's result takes from it. */
export interface LineSnapshot {
  stats: LineStats;
  byKind: Record<string, number>;
  untrustedWriters: UntrustedWriter[];
  unreadFiles: UnreadFile[];
}

/** What the year resolver needs from the options (AuthLogOptions). */
export interface LineStageOptions {
  referenceMs: number;
  year?: number | undefined;
  utcOffsetMinutes?: number | undefined;
  maxLineLength: number;
}

/**
 * @example
 * const stage = new LineStage(options, emptyLineStats(), sink);
 * stage.beginFile("auth.log", 1);
 * stage.line("Nov 22 04:00:01 web sshd[9]: Failed password for root from 203.0.113.9 port 4242 ssh2", 1);
 * stage.endFile();
 */
export class LineStage {
  readonly maxLineLength: number;
  readonly stats: LineStats;
  readonly #options: LineStageOptions;
  readonly #sink: SshdEventSink;
  readonly #scratch: SshdLine = { stamp: emptyStamp(), hostStart: 0, hostEnd: 0, connection: "", messageAt: 0 };
  // The host field of the previous line: consecutive lines mostly share it, so no slice is made for them.
  #host = "";
  readonly #connections = new ConnectionTracker();
  // The BSD syslogd (FreeBSD, NetBSD, OpenBSD, macOS, sysklogd) folds a connection's identical "Failed password"
  // lines into "HOST last message repeated N times", with no program tag: dropped, an attacker trying five
  // passwords per connection was charged one. Each host's last sshd event is held for such a line (#otherLine).
  readonly #held = new HeldEvents();
  readonly #untrustedWriters = new Map<string, UntrustedWriter>();
  // A Map beats a dictionary-mode object for counters keyed at run time.
  readonly #byKind = new Map<string, number>();
  #years: YearResolver;
  #file = "";
  // The counters when the current file began, to tell at its end whether it was read at all (endFile).
  #fileStart = { lines: 0, blank: 0, unread: 0 };
  #fileOpen = false;
  readonly unreadFiles: UnreadFile[] = [];

  /** `stats`: the object to count in (the analyzer's own stats, or the stage's when it runs in a worker). */
  constructor(options: LineStageOptions, stats: LineStats, sink: SshdEventSink) {
    this.#options = options;
    this.maxLineLength = options.maxLineLength;
    this.stats = stats;
    this.#sink = sink;
    this.#years = this.#resolver();
  }

  /** A resolver for a file last modified at `modifiedMs` (year-resolver.ts fileReferenceMs), if known. */
  #resolver(modifiedMs?: number): YearResolver {
    const o = this.#options;
    return new YearResolver({ referenceMs: fileReferenceMs(o.referenceMs, modifiedMs), year: o.year, utcOffsetMinutes: o.utcOffsetMinutes });
  }

  /**
   * Starts file number `number` (1-based): line numbers restart. Without `year` each file's year is inferred afresh
   * from the reference time, or from the file's modification time `modifiedMs` when that is earlier (a rotated file:
   * fileReferenceMs); with it, later files continue the first one's calendar (rotated files given oldest first), so a
   * given year is not re-applied to a file that crossed New Year.
   */
  beginFile(name: string, number: number, modifiedMs?: number): void {
    this.endFile();
    this.#file = name;
    const s = this.stats;
    this.#fileStart = { lines: s.lines, blank: s.blank, unread: s.malformed + s.overlong };
    this.#fileOpen = true;
    if (this.#options.year === undefined && (number > 1 || modifiedMs !== undefined)) this.#years = this.#resolver(modifiedMs);
    this.#held.clear();
  }

  /**
   * Notes the current file as not read when most of its lines were in no format the check knows: its attacks were
   * never looked at, and the findings say so (authlog.log-not-read) rather than pass it as clean.
   */
  endFile(): void {
    if (!this.#fileOpen) return;
    this.#fileOpen = false;
    const s = this.stats;
    const start = this.#fileStart;
    const lines = s.lines - start.lines;
    const unread = s.malformed + s.overlong - start.unread;
    if (!mostlyUnread(lines, s.blank - start.blank, unread)) return;
    s.unreadFiles++;
    if (this.unreadFiles.length < UNREAD_FILES_KEPT) this.unreadFiles.push({ file: this.#file, lines, unread });
  }

  /** The counters, the counts by message kind (most frequent first), the untrusted writers and the unread files. */
  snapshot(): LineSnapshot {
    return {
      stats: this.stats,
      byKind: Object.fromEntries([...this.#byKind].sort((a, b) => b[1] - a[1])),
      untrustedWriters: [...this.#untrustedWriters.values()],
      unreadFiles: this.unreadFiles,
    };
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
    // journalctl -o json: the entry is read as the short-unix line journalctl would print for it, and journald's record of
    // its writer says whether sshd wrote it (a syslog line says nothing of that: anyone can `logger -t sshd`).
    const first = text.charCodeAt(0);
    let untrusted: string | null = null;
    let journal = false;
    if (first === 123 /* { */ || first === 30 /* RS, json-seq */) {
      const entry = journalEntry(text);
      if (entry !== null) {
        text = entry.line;
        untrusted = entry.untrustedWriter;
        journal = true;
      }
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
    const host = this.#hostOf(text, parsed);
    const t = this.#years.resolve(parsed.stamp, host);
    this.#held.seen(host);
    if (shape === "other") {
      // journald never folds repeats (it rate-limits, and says "Suppressed N messages"): in a journal export a "last
      // message repeated N times" entry is someone's `logger -t syslogd`, replaying the host's last sshd failure N
      // times as sshd's own. It ends the held event as any other program's line does.
      if (journal) this.#held.forget(host);
      else if (this.#held.active) this.#otherLine(text, parsed, host, t, lineNo);
      return;
    }
    stats.sshdLines++;
    // "message repeated 5 times: [ Failed password …]" stands for five more of that message: an
    // rsyslog with $RepeatedMsgReduction on would otherwise hide most of a brute force.
    const repeated = repeatedMessage(text, parsed.messageAt);
    const at = messageStart(text, repeated === null ? parsed.messageAt : repeated.start);
    const end = repeated === null ? text.length : repeated.end;
    const classified = classifySshdMessage(at === 0 && end === text.length ? text : text.slice(at, end));
    if (classified === null) {
      this.#held.forget(host);
      return;
    }
    if (untrusted !== null) {
      this.#untrustedEntry(parsed.connection, classified, untrusted, t, lineNo, repeated === null ? 1 : repeated.count);
      this.#held.forget(host);
      return;
    }
    const event = this.#connections.resolve(parsed.connection, classified, t);
    this.#apply(parsed.connection, event, t, lineNo, repeated === null ? 1 : repeated.count, null);
    this.#held.hold(host, parsed.connection, event);
  }

  /**
   * A journal entry that claims to be sshd's but that journald says `writer` wrote: followed as a connection of its own
   * (keyed apart, so it can neither join nor end a real sshd connection), its failures not counted, its logins counted
   * as any: a forged login is a false alarm, while a real one written some way this check does not vouch for (sshd
   * under another unit, in a container) must not go unreported.
   */
  #untrustedEntry(connection: string, classified: SshdEvent, writer: string, t: number, lineNo: number, times: number): void {
    this.stats.untrustedEntries++;
    let w = this.#untrustedWriters.get(writer);
    if (w === undefined && this.#untrustedWriters.size < MAX_UNTRUSTED_WRITERS) {
      w = { writer: detach(writer), entries: 0 };
      this.#untrustedWriters.set(w.writer, w);
    }
    if (w !== undefined) w.entries++;
    const key = `untrusted ${connection}`;
    const event = this.#connections.resolve(key, classified, t);
    this.#apply(key, event, t, lineNo, times, writer);
  }

  /**
   * Counts `event` of `connection` `times` times, logged at `t` on line `lineNo`; the failures of an entry journald says
   * `untrustedWriter` wrote (null: sshd, or nothing says otherwise) are not.
   */
  #apply(connection: string, event: SshdEvent, t: number, lineNo: number, times: number, untrustedWriter: string | null): void {
    const untrusted = untrustedWriter !== null;
    for (let n = times; n > 0; n--) {
      this.stats.events++;
      this.#byKind.set(event.kind, (this.#byKind.get(event.kind) ?? 0) + 1);
      const charged = this.#connections.apply(connection, event, t);
      if (charged !== null) {
        if (untrusted) this.stats.untrustedFailures++;
        else this.#sink.failure(charged, event, t, lineNo);
      }
      if (event.effect === "gained" && event.address !== null && event.user) {
        if (untrusted) this.stats.untrustedLogins++;
        this.#sink.success(event, t, lineNo);
      }
    }
  }

  /** A line of another program: a BSD repeat line replays its host's last sshd event; any other line ends it. */
  #otherLine(text: string, parsed: SshdLine, host: string, t: number, lineNo: number): void {
    // In a log written without host names, the "host" field is the repeat line's first word; those lines form host "".
    const hostless = bsdRepeatCount(text, parsed.hostStart);
    let at = parsed.hostEnd;
    while (text.charCodeAt(at) === 32) at++;
    // FreeBSD 12 and later tag the line as syslogd's own message: "HOST syslogd: last message repeated N times".
    const count = hostless > 0 ? hostless : bsdRepeatCount(text, afterSyslogdTag(text, at));
    const key = hostless > 0 ? "" : host;
    if (count === 0) {
      this.#held.forget(key);
      return;
    }
    const held = this.#held.get(key);
    if (held !== undefined) this.#apply(held.connection, held.event, t, lineNo, count, null);
  }

  #hostOf(text: string, parsed: SshdLine): string {
    const length = parsed.hostEnd - parsed.hostStart;
    if (length !== this.#host.length || !text.startsWith(this.#host, parsed.hostStart)) this.#host = detach(text.slice(parsed.hostStart, parsed.hostEnd));
    return this.#host;
  }
}
