// Files the check could not read: most of their lines in no format it knows (a journald export in another -o format,
// the wrong file, binary junk). Their attacks were never looked at, so a run over them must not pass as clean:
// authlog.log-not-read (high) names them.
import type { Finding } from "../finding.ts";
import type { AuthLogResult, UnreadFile } from "./types.ts";

/** Files listed in the finding's evidence; the rest are counted in `omitted` (and in stats.unreadFiles). */
export const UNREAD_FILES_KEPT = 100;

/**
 * Whether a file of `lines` lines, `blank` of them blank (or journal markers), was not read: more than half of the
 * others were malformed or overlong (`unread`). A log holding a few foreign lines among its own is still read; a file
 * that holds no line at all says nothing either way.
 *
 * @example
 * mostlyUnread(7, 0, 7); // true
 */
export function mostlyUnread(lines: number, blank: number, unread: number): boolean {
  return unread > 0 && unread * 2 > lines - blank;
}

/**
 * The finding for files whose lines were mostly not read (before, every line was counted as malformed and a brute
 * force and the login after it passed as a clean run, exit 0: the fail-open refused xz, bzip2 and lz4 closed for
 * compressed logs). High, so the default --fail-on fails the run; the other files' findings stand.
 */
export function notReadFinding(result: AuthLogResult): Finding {
  const files = result.unreadFiles;
  const count = result.stats.unreadFiles;
  const f = files[0] as UnreadFile;
  const shown = files.slice(0, 5).map((u) => `${u.file} (${u.unread} of ${u.lines} lines)`);
  return {
    id: "authlog.log-not-read",
    severity: "high",
    title: count === 1 ? `Auth log not read: ${f.unread} of ${f.lines} line(s) of ${f.file} are in no format this check reads` : `${count} auth logs not read: most of their lines are in no format this check reads`,
    detail:
      `Most lines of ${shown.join(", ")}${count > shown.length ? ` and ${count - shown.length} more file(s)` : ""} have no time stamp this check knows, or are longer than ` +
      "the line limit: any brute force or login in them was not looked at, and no finding about them means nothing. Read are BSD syslog (with " +
      "FreeBSD syslogd -v/-vv and BusyBox syslogd's facility and level), rsyslog's RFC 3339 and RFC 5424 formats, and journalctl's short, " +
      "short-precise, short-iso, short-iso-precise, short-full, short-unix and json output.",
    evidence: {
      count,
      files: files.map((u) => ({ file: u.file, lines: u.lines, unread: u.unread })),
      omitted: count - files.length,
    },
    remediation:
      "Check that the file is the auth log; export the journal in a format the check reads (journalctl -o short-iso, or -o json) " +
      "and run the check again on it.",
  };
}
