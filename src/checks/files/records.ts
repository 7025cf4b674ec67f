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

/**
 * The newest baseline recorded of `tree` (the last such event), or null when none is, or its data was altered out
 * of shape (the audit log's verify reports that).
 *
 * @example
 * const newest = await newestRecorded(app.db.db, header);
 */
export async function newestRecorded(db: Kysely<Schema>, tree: Tree): Promise<RecordedBaseline | null> {
  const row = await db.selectFrom("audit_events").select("data").where("type", "=", BASELINE_RECORDED).where("subject", "=", treeKey(tree))
    .orderBy("seq", "desc").limit(1).executeTakeFirst();
  if (row === undefined) return null;
  const data = parseStoredData(row.data).data;
  const { digest, createdAt, path } = data ?? {};
  if (typeof digest !== "string" || !/^[0-9a-f]{64}$/.test(digest) || typeof createdAt !== "string" || typeof path !== "string") return null;
  return { digest, createdAt, path };
}
