// Deleting most of a large SQLite table, fast and atomically: copy the rows that stay aside, drop the table,
// create it again from its own stored DDL (indexes and triggers included), and put the kept rows back, all in
// the caller's transaction. A DELETE visits every doomed row and every index entry it owns; the rebuild costs
// the rows kept plus freeing the pages, so deleting two million sessions of which a handful stay takes a
// fraction of a second instead of seconds of write lock (docs/decisions/0005-bulk-containment-on-sqlite.md).
// Readers on other connections keep their snapshot until the commit; prepared statements re-prepare
// themselves after the schema change. Where a rebuild could change meaning — another table references this
// one (foreign key actions), AUTOINCREMENT (its counter lives with the table), or no rowid — it is a plain
// DELETE instead.
import { sql, type Kysely, type RawBuilder } from "kysely";

const KEEP = "bulwark_bulk_keep";

export interface BulkDeleteResult {
  deleted: number;
  /** "rebuild" when the table was rebuilt around the kept rows, "delete" when a plain DELETE ran. */
  method: "rebuild" | "delete";
}

function quoteId(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Deletes the rows of `table` for which `condition` is true, inside the caller's (write) transaction.
 * `condition` is an SQL boolean expression over the table's columns.
 *
 * @example
 * await bulkDeleteSQLite(trx, "sessions", sql`user_id is not null and created_at < ${at}`)
 *
 * `beforeDelete` runs in the transaction once the doomed rows are counted (and described, with `describe`), before any
 * is deleted.
 */
export async function bulkDeleteSQLite(
  trx: Kysely<any>, table: string, condition: RawBuilder<unknown>,
  options: { beforeDelete?: (doomed: number, described: Record<string, unknown>) => Promise<void>; describe?: RawBuilder<unknown> } = {},
): Promise<BulkDeleteResult> {
  const t = sql.table(table);
  const count = async (query: RawBuilder<{ n: number }>): Promise<number> => Number((await query.execute(trx)).rows[0]?.n ?? 0);
  // `describe`: more aggregates over the doomed rows for beforeDelete (select-list items, each with its alias).
  const first = (await sql<Record<string, unknown>>`select count(*) as n${options.describe ? sql`, ${options.describe}` : sql``} from ${t} where ${condition}`.execute(trx)).rows[0] ?? {};
  const doomed = Number(first["n"] ?? 0);
  // The caller's last look at the rows about to go, in the transaction (a count it made before it, checked).
  await options.beforeDelete?.(doomed, first);
  if (doomed === 0) return { deleted: 0, method: "delete" };

  const ddl = (await sql<{ type: string; name: string; sql: string }>`
    select type, name, sql from sqlite_master where tbl_name = ${table} and sql is not null and type in ('table', 'index', 'trigger')`.execute(trx)).rows;
  const create = ddl.find((d) => d.type === "table");
  if (!create) throw new Error(`bulk delete: there is no table named ${table}`);
  const referenced = await count(sql`
    select count(*) as n from sqlite_master m, pragma_foreign_key_list(m.name) f
    where m.type = 'table' and m.name <> ${table} and lower(f."table") = lower(${table})`);
  if (referenced > 0 || /\bautoincrement\b/i.test(create.sql) || /\bwithout\s+rowid\b/i.test(create.sql)) {
    const r = await sql`delete from ${t} where ${condition}`.execute(trx);
    return { deleted: Number(r.numAffectedRows ?? 0n), method: "delete" };
  }

  // table_xinfo lists generated columns too (hidden 2 or 3); they are computed, never inserted.
  const columns = (await sql<{ name: string; hidden: number }>`select name, hidden from pragma_table_xinfo(${table})`.execute(trx)).rows
    .filter((c) => Number(c.hidden) === 0).map((c) => quoteId(c.name));
  const list = sql.raw(columns.join(", "));
  const keep = sql.raw(`temp.${KEEP}`);
  await sql`drop table if exists ${keep}`.execute(trx);
  // "is not true": a row whose condition is null stays, as it would with DELETE … WHERE.
  await sql`create table ${keep} as select rowid as bulwark_rowid, ${list} from ${t} where (${condition}) is not true`.execute(trx);
  const kept = await count(sql`select count(*) as n from ${keep}`);

  await sql`drop table ${t}`.execute(trx);
  // The table and its indexes, the kept rows, and only then its triggers: putting a row back is not an insert
  // anyone asked for, so no INSERT trigger may see it.
  for (const d of ddl.filter((x) => x.type === "table")) await sql.raw(d.sql).execute(trx);
  for (const d of ddl.filter((x) => x.type === "index")) await sql.raw(d.sql).execute(trx);
  await sql`insert into ${t} (rowid, ${list}) select bulwark_rowid, ${list} from ${keep}`.execute(trx);
  for (const d of ddl.filter((x) => x.type === "trigger")) await sql.raw(d.sql).execute(trx);
  await sql`drop table ${keep}`.execute(trx);

  const now = await count(sql`select count(*) as n from ${t}`);
  if (now !== kept) throw new Error(`bulk delete of ${table}: ${kept} rows were to stay but ${now} are there; the transaction is rolled back`);
  return { deleted: doomed, method: "rebuild" };
}
