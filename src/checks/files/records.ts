// Which baseline of a tree is the newest. A signature proves who wrote a baseline, not that it is the latest: an
// intruder who kept a copy of a genuine older baseline can put it back after a fix (and revert the fix), and against it
// the reverted file has its recorded bytes. So every baseline the CLI writes is an audit event keyed by its tree, and a
// compare given an older one than the newest recorded is told so (files.baseline-superseded).
import { createHash } from "node:crypto";
import type { Kysely } from "kysely";
import type { AuditLog } from "../../audit/audit-log.ts";
import { parseStoredData } from "../../audit/read-events.ts";
import type { Schema } from "../../store/schema.ts";
import type { BaselineHeader } from "./baseline-format.ts";

/** The audit event of a baseline written. */
export const BASELINE_RECORDED = "files.baseline.recorded";

/** What the record of a written baseline says: its signed digest, when it was made and where it was written. */
export interface RecordedBaseline {
  digest: string;
  createdAt: string;
  path: string;
}

type Tree = Pick<BaselineHeader, "roots" | "exclude" | "oneFileSystem">;

/** Roots named in the event's data; the key covers every one. */
const ROOTS_NAMED = 20;

/**
 * The tree a baseline records (roots, exclusions, one file system or not) as one key: baselines of the same tree, and
 * only those, supersede one another.
 *
 * @example
 * treeKey({ roots: ["/usr"], exclude: [], oneFileSystem: false }); // "files-tree:3b1f…"
 */
export function treeKey(tree: Tree): string {
  return `files-tree:${createHash("sha256").update(JSON.stringify([tree.roots, tree.exclude, tree.oneFileSystem])).digest("hex")}`;
}

/**
 * Appends the audit event of a baseline just published at `path`.
 *
 * @example
 * await recordBaseline(app.audit, cliActor(), r.header, { digest: r.digest, path: "/var/lib/bulwark/usr.baseline", entries: r.entries, keyId: r.keyId });
 */
export async function recordBaseline(audit: Pick<AuditLog, "append">, actor: string, header: BaselineHeader, written: { digest: string; path: string; entries: number; keyId: string }): Promise<void> {
  await audit.append({
    type: BASELINE_RECORDED,
    actor,
    subject: treeKey(header),
    data: {
      digest: written.digest,
      createdAt: header.createdAt,
      path: written.path,
      entries: written.entries,
      keyId: written.keyId,
      roots: header.roots.slice(0, ROOTS_NAMED),
      rootCount: header.roots.length,
    },
  });
}

/** Records read back, newest first: every baseline written for years at a few a day. */
const RECORDS_READ = 10_000;

/**
 * The record of a later baseline that supersedes the one given, or null. Later is by the audit log's order, not by
 * the baselines' own dates (a clock set ahead, or two baselines in one millisecond, would make a replayed one look
 * newest): a baseline whose digest was recorded is superseded by any record after its own of the same tree or at the
 * same path (a tree widened, or an exclusion added, and written over the old file's name). A baseline never recorded
 * (made by the library, or with another database) is judged by dates: superseded when such a record is dated after it.
 * Records whose data was altered out of shape are passed over (the log's verify reports them).
 *
 * @example
 * const newer = await supersedingRecord(app.db.db, { header, digest: integrity.digest, path: resolve(file) });
 */
export async function supersedingRecord(db: Kysely<Schema>, given: { header: BaselineHeader; digest: string; path: string }): Promise<RecordedBaseline | null> {
  const key = treeKey(given.header);
  const rows = await db.selectFrom("audit_events").select(["seq", "subject", "data"]).where("type", "=", BASELINE_RECORDED)
    .orderBy("seq", "desc").limit(RECORDS_READ).execute();
  let own: number | null = null;
  let newest: (RecordedBaseline & { seq: number }) | null = null;
  for (const row of rows) {
    const record = recordOf(parseStoredData(row.data).data);
    if (record === null) continue;
    if (record.digest === given.digest) {
      own ??= Number(row.seq);
      continue;
    }
    if (newest === null && (row.subject === key || record.path === given.path)) newest = { ...record, seq: Number(row.seq) };
  }
  if (newest === null) return null;
  const later = own !== null ? newest.seq > own : Date.parse(newest.createdAt) > Date.parse(given.header.createdAt);
  return later ? { digest: newest.digest, createdAt: newest.createdAt, path: newest.path } : null;
}

function recordOf(data: Record<string, unknown> | null): RecordedBaseline | null {
  const { digest, createdAt, path } = data ?? {};
  if (typeof digest !== "string" || !/^[0-9a-f]{64}$/.test(digest) || typeof createdAt !== "string" || typeof path !== "string") return null;
  return { digest, createdAt, path };
}
