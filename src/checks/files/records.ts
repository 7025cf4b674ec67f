// Which baseline of a tree is the newest. A signature proves who wrote a baseline, not that it is the latest: an
// intruder who kept a copy of a genuine older baseline can put it back after a fix (and revert the fix), and against it
// the reverted file has its recorded bytes. So every baseline the CLI writes is an audit event keyed by its tree, and a
// compare given an older one than the newest recorded is told so (files.baseline-superseded).
import { createHash } from "node:crypto";
import { sql, type Kysely } from "kysely";
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

/** A LIKE pattern matching `text` literally (escape character "\\"), on both dialects. */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * The record of a later baseline that supersedes the one given, or null. Later is by the audit log's order, not by
 * the baselines' own dates (a clock set ahead, or two baselines in one millisecond, would make a replayed one look
 * newest): a baseline whose digest was recorded is superseded by any record after its own of the same tree or at the
 * same path (a tree widened, or an exclusion added, and written over the old file's name; `paths`: each name the file
 * given is known by, so a symlink put at the compared name, or over its directory, does not hide it). A baseline
 * never recorded (made by the library, or with another database) is judged by dates: superseded when the newest such
 * record is dated after it. Each question is one query on the log's (type, seq) index, however many baselines of
 * other trees were recorded since. Records whose data was altered out of shape are passed over (the log's verify
 * reports them).
 *
 * @example
 * const newer = await supersedingRecord(app.db.db, { header, digest: integrity.digest, paths: [resolve(file), realpathSync(file)] });
 */
export async function supersedingRecord(db: Kysely<Schema>, given: { header: BaselineHeader; digest: string; paths: readonly string[] }): Promise<RecordedBaseline | null> {
  const key = treeKey(given.header);
  const paths = new Set(given.paths);
  const ofType = db.selectFrom("audit_events").select(["seq", "subject", "data"]).where("type", "=", BASELINE_RECORDED);
  // Canonical JSON writes each string as JSON.stringify does: the digest and the path appear in the data so.
  const digestText = `%${likeLiteral(`"digest":${JSON.stringify(given.digest)}`)}%`;
  const own = await ofType.where(sql<boolean>`data LIKE ${digestText} ESCAPE '\\'`).orderBy("seq", "desc").limit(1).executeTakeFirst();
  const ownRecord = own === undefined ? null : recordOf(parseStoredData(own.data).data);
  const ownSeq = own !== undefined && ownRecord?.digest === given.digest ? Number(own.seq) : null;
  // Where this baseline was written counts as one of its names: whatever the names lead to now (a baseline directory
  // that was a link all along, re-pointed at kept copies), a later record there is the newer file at the old name.
  if (ownSeq !== null && ownRecord !== null) paths.add(ownRecord.path);
  const pathTexts = [...paths].map((path) => `%${likeLiteral(`"path":${JSON.stringify(path)}`)}%`);
  const rows = await ofType
    .where((eb) => eb.or([eb("subject", "=", key), ...pathTexts.map((text) => sql<boolean>`data LIKE ${text} ESCAPE '\\'`)]))
    .$if(ownSeq !== null, (q) => q.where("seq", ">", ownSeq ?? 0))
    .orderBy("seq", "desc").limit(100).execute();
  for (const row of rows) {
    const record = recordOf(parseStoredData(row.data).data);
    // LIKE matched the path's text (SQLite ignores ASCII case there): only the same tree or the exact path counts.
    if (record === null || record.digest === given.digest || (row.subject !== key && !paths.has(record.path))) continue;
    if (ownSeq === null && !(Date.parse(record.createdAt) > Date.parse(given.header.createdAt))) return null;
    return record;
  }
  return null;
}

function recordOf(data: Record<string, unknown> | null): RecordedBaseline | null {
  const { digest, createdAt, path } = data ?? {};
  if (typeof digest !== "string" || !/^[0-9a-f]{64}$/.test(digest) || typeof createdAt !== "string" || typeof path !== "string") return null;
  return { digest, createdAt, path };
}
