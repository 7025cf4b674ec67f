// Turns differences and scan statuses into Findings: one finding per id and severity, listing the
// first paths and counting the rest — thousands of changes after an upgrade read as a few findings,
// not thousands, and the output stays bounded.
import { inertJSON } from "../../lib/terminal.ts";
import type { Finding, Severity } from "../finding.ts";
import type { BaselineIntegrity } from "./baseline-read.ts";
import { classify } from "./classify.ts";
import type { DiffEvent } from "./compare.ts";
import type { FileEntry } from "./entry.ts";
import type { RecordedBaseline } from "./records.ts";

/** Paths listed in one finding's evidence; the rest are counted in `omitted`. */
export const EVIDENCE_LIMIT = 100;

interface Group {
  id: string;
  severity: Severity;
  count: number;
  items: Array<Record<string, unknown>>;
}

const SPECIAL = new Set(["fifo", "socket", "block", "char"]);

const TEXT: Record<string, { title: (n: number) => string; detail: string; remediation: string }> = {
  "files.changed/critical": {
    title: (n) => `${n} system executable(s), setuid file(s) or device node(s) changed since the baseline`,
    detail:
      "Programs in system binary or library directories or setuid files changed in content, or could not be hashed now while written to since the baseline, or an entry outside /dev was swapped for a device node (each entry's reason says which). Outside a package upgrade this is how a trojaned binary or rootkit looks.",
    remediation: "Check each file against its package (dpkg --verify / rpm -Va); if no upgrade explains it, treat the host as compromised and rebuild it.",
  },
  "files.changed/high": {
    title: (n) => `${n} file(s) changed in content or gained dangerous permissions since the baseline`,
    detail:
      "The SHA-256, the link target or the type of these entries differs from the baseline, or their content could not be hashed (changed during the scan, unreadable, too large) while the baseline had a hash or they were written to since, or a directory that could not be listed was written to since (what it holds now is not verified), or they became setuid/setgid or executable, or writable by another user or group in a system directory, a persistence location or a home directory, or a device node outside /dev was replaced or opened up (each entry's reason says which).",
    remediation: "Confirm each change was intended (deployment, upgrade, configuration change); then record a new baseline.",
  },
  "files.changed/medium": {
    title: (n) => `${n} entr(ies) changed metadata only`,
    detail: "Mode, owner, group, inode or times differ; the content is the same.",
    remediation: "Confirm the permission and ownership changes were intended; then record a new baseline.",
  },
  "files.added/high": {
    title: (n) => `${n} new executable(s), setuid file(s), device node(s), server-side script(s) or persistence file(s) since the baseline`,
    detail:
      "New programs, setuid/setgid files, device nodes outside /dev (raw access to a disk or memory), web scripts (a PHP webshell) and web server configuration (.htaccess), and new files where the system runs them or lets a login in (cron, sudoers.d, systemd units, udev rules, APT hooks, update-motd.d, authorized_keys, ~/.ssh/rc: each entry's reason says which) are how attackers keep access.",
    remediation: "Find which package or deployment installed each one; remove anything unexplained and investigate the host.",
  },
  "files.added/low": {
    title: (n) => `${n} entr(ies) added since the baseline`,
    detail: "These paths did not exist when the baseline was recorded.",
    remediation: "Confirm the new files were expected; then record a new baseline.",
  },
  "files.removed/medium": {
    title: (n) => `${n} entr(ies) removed since the baseline`,
    detail: "These paths were in the baseline and are gone. Removed logs or tools can be an attacker covering tracks.",
    remediation: "Confirm the removals were intended; restore from backup otherwise.",
  },
  "files.unreadable/low": {
    title: (n) => `${n} entr(ies) could not be read`,
    detail: "Their metadata is recorded but their content could not be hashed, so a content change would go unseen.",
    remediation: "Run the check with enough privileges (root) and look at the errors listed.",
  },
  "files.changed-during-scan/low": {
    title: (n) => `${n} entr(ies) changed or vanished while being scanned`,
    detail: "Size or modification time moved while the file was read, even after retries, so no hash was recorded.",
    remediation: "Scan again when the system is quiet; a file that always changes (a log, a database) belongs outside the baseline.",
  },
  "files.too-large-to-hash/high": {
    title: (n) => `${n} file(s) not hashed: past the per-file size limit or the scan's byte budget`,
    detail:
      "Their content is not verified: a change to them would go unseen. A file's size costs its writer nothing (truncate -s 4T makes a sparse file that takes no disk), so an intruder can pad a file past the limit, or plant large ones to make a scan read for hours; both are bounded, and the files left unhashed are named here (error FILE_SIZE_LIMIT: larger than --max-file-bytes; SCAN_BYTE_LIMIT: the scan had read --max-scan-bytes).",
    remediation:
      "Compare each file's size with its disk use (ls -ls, du): a sparse file nobody made on purpose is planted; remove it and investigate. A genuine large file is verified by raising --max-file-bytes / --max-scan-bytes (for the baseline and the compare), or left out with --exclude.",
  },
  "files.dir-loop/low": {
    title: (n) => `${n} directory loop(s) found`,
    detail: "A directory is its own ancestor (a bind mount of a parent); it was recorded and not entered again.",
    remediation: "Check the mounts (findmnt); exclude the looping mount point from the paths scanned.",
  },
  "files.symlink-loop/info": {
    title: (n) => `${n} symbolic link loop(s) found`,
    detail: "These links resolve to themselves through a chain of links; they were recorded, not followed.",
    remediation: "Remove or fix the links if they are not intended.",
  },
  "files.special/info": {
    title: (n) => `${n} special file(s) found (FIFO, socket or device)`,
    detail: "Special files are recorded by metadata only; a device node outside /dev can give raw access to a disk (a new one is also files.added, high).",
    remediation: "Confirm each special file outside /dev and /run is expected.",
  },
};

/** Paths named in a finding's one-line detail (human output); the evidence has up to EVIDENCE_LIMIT. */
const DETAIL_PATHS = 5;

function describeItems(g: Group): string {
  const shown = g.items.slice(0, DETAIL_PATHS).map((item) => {
    const changes = Array.isArray(item["changes"]) ? ` (${(item["changes"] as string[]).join(", ")})` : "";
    const error = typeof item["error"] === "string" ? ` (${item["error"]})` : "";
    return `${inertJSON(item["path"])}${changes}${error}`;
  });
  const more = g.count - shown.length;
  return `${shown.length === 1 ? "Path" : "Paths"}: ${shown.join("; ")}${more > 0 ? `; and ${more} more (all counted in --json evidence, first ${EVIDENCE_LIMIT} listed)` : ""}.`;
}

/** Collects findings while the compare or the scan streams by; memory stays bounded by EVIDENCE_LIMIT. */
export class FindingCollector {
  readonly #groups = new Map<string, Group>();
  #tamper: Finding | null = null;
  #superseded: Finding | null = null;
  /** Totals per finding id, for the human summary. */
  readonly totals = { added: 0, removed: 0, changed: 0, scanned: 0 };

  #add(id: string, severity: Severity, item: Record<string, unknown>): void {
    const key = `${id}/${severity}`;
    let g = this.#groups.get(key);
    if (!g) {
      g = { id, severity, count: 0, items: [] };
      this.#groups.set(key, g);
    }
    g.count++;
    if (g.items.length < EVIDENCE_LIMIT) g.items.push(item);
  }

  addDiff(event: DiffEvent): void {
    const c = classify(event);
    this.totals[event.kind]++;
    const item: Record<string, unknown> = { path: event.path, reason: c.reason };
    if (event.kind === "changed") item["changes"] = event.changes;
    this.#add(c.id, c.severity, item);
  }

  /** Records the scan status of an entry (unreadable, changed during the scan, loops, special files). */
  addScanned(entry: FileEntry): void {
    this.totals.scanned++;
    const item = { path: entry.path, ...(entry.error ? { error: entry.error } : {}) };
    if (entry.status === "unreadable") this.#add("files.unreadable", "low", item);
    else if (entry.status === "changed-during-scan" || entry.status === "vanished") this.#add("files.changed-during-scan", "low", item);
    else if (entry.status === "dir-loop") this.#add("files.dir-loop", "low", item);
    // High, as a content change is: an intruder decides whether a file passes the limit (padding it costs nothing).
    else if (entry.status === "too-large-to-hash") this.#add("files.too-large-to-hash", "high", { ...item, size: entry.size });
    else if (entry.status === "symlink-loop") this.#add("files.symlink-loop", "info", { path: entry.path, target: entry.target });
    if (SPECIAL.has(entry.type)) this.#add("files.special", "info", { path: entry.path, type: entry.type });
  }

  /** Records the baseline's verdict: an untrusted baseline is itself a critical finding. */
  setIntegrity(integrity: BaselineIntegrity, baselinePath: string): void {
    if (integrity.trusted) return;
    if (integrity.retiredKeyAt !== null && integrity.problemCount === 1) {
      // Intact, but signed with a key since rotated: not evidence of tampering, yet no longer proof of anything (whoever
      // held the retired key could have signed it). Its own finding, so a routine rotation raises no tamper alarm.
      this.#tamper = {
        id: "files.baseline-key-retired",
        // Critical like a tampered one: an honest baseline and one the leaked key's holder signed look the same.
        severity: "critical",
        title: "The baseline is signed with a retired signing key: this comparison cannot be trusted",
        detail: `${baselinePath} ${integrity.problems[0] ?? ""}. The differences below were computed against it anyway; a signing key is rotated when it may have leaked, and whoever held it could have signed this baseline.`,
        evidence: { baseline: baselinePath, keyId: integrity.keyId, retiredAt: integrity.retiredKeyAt },
        remediation: "Record a new baseline from a known-good state (check files --baseline) with the current key; keep it where the monitored host cannot write it.",
      };
      return;
    }
    this.#tamper = {
      id: "files.baseline-tampered",
      severity: "critical",
      title: "The baseline has been tampered with: this comparison cannot be trusted",
      detail: `${baselinePath} does not verify: ${integrity.problems.slice(0, 3).join("; ")}${integrity.problemCount > 3 ? `; and ${integrity.problemCount - 3} more` : ""}. The differences below were computed against it anyway, but an attacker who can edit the baseline can hide any change.`,
      evidence: { baseline: baselinePath, keyId: integrity.keyId, problems: integrity.problems, problemCount: integrity.problemCount, skippedLines: integrity.skippedLines },
      remediation: "Keep baselines where the monitored host cannot write them; restore the baseline from a trusted copy, or treat the host as compromised and record a new baseline from known-good media.",
    };
  }

  /**
   * Records that a newer baseline of the same tree was recorded (records.ts): the one compared against may be a
   * genuine older baseline put back, which hides every change since the newer one (a fix reverted reads as unchanged).
   */
  setSuperseded(newest: RecordedBaseline, baselinePath: string, createdAt: string): void {
    this.#superseded = {
      id: "files.baseline-superseded",
      severity: "critical",
      title: "A newer baseline of this tree was recorded: this comparison may hide what changed since",
      detail: `${baselinePath} was made ${createdAt}; a baseline of the same tree was recorded ${newest.createdAt} at ${newest.path} (digest ${newest.digest.slice(0, 16)}…). ` +
        "A signature proves who wrote a baseline, not that it is the latest: a genuine older baseline put back hides every change made since the newer one (a fix reverted reads as unchanged). If you chose the older baseline on purpose, to see everything since then, this is expected.",
      evidence: { baseline: baselinePath, createdAt, newest: { path: newest.path, createdAt: newest.createdAt, digest: newest.digest } },
      remediation: `Compare with the newest baseline (${newest.path}); if the file there is not the one recorded, treat the host as compromised. Keep baselines where the monitored host cannot write them.`,
    };
  }

  findings(): Finding[] {
    const out: Finding[] = [...(this.#tamper ? [this.#tamper] : []), ...(this.#superseded ? [this.#superseded] : [])];
    for (const [key, g] of this.#groups) {
      const text = TEXT[key];
      out.push({
        id: g.id,
        severity: g.severity,
        title: text ? text.title(g.count) : `${g.count} × ${g.id}`,
        detail: `${text?.detail ?? ""} ${describeItems(g)}`.trim(),
        evidence: { count: g.count, entries: g.items, omitted: g.count - g.items.length },
        remediation: text?.remediation ?? "",
      });
    }
    return out;
  }
}

/** Passes scanned entries through while recording their statuses. */
export async function* tapScan(entries: AsyncIterable<FileEntry>, collector: FindingCollector): AsyncGenerator<FileEntry> {
  for await (const e of entries) {
    collector.addScanned(e);
    yield e;
  }
}
