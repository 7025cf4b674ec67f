// A batch of rows as a derived table, for statements that handle a whole batch at once (an undo's UPDATE … FROM, the
// outbox's bulk insert): a parameter per column (PostgreSQL) or one in all (SQLite), whatever the batch size.
import { sql, type RawBuilder } from "kysely";
import type { DialectName } from "./database.ts";

/** A column of a valuesQuery: its name and its PostgreSQL type (SQLite takes the JSON value's own type). */
export interface ValuesColumn {
  name: string;
  type: "text" | "bigint" | "integer";
}

/**
 * A batch of rows as a query with the given columns, for one set-based statement per batch (an undo's `UPDATE … FROM`,
 * with each row's own conditions) instead of one statement per row: `unnest` of one typed array per column on
 * PostgreSQL, `json_each` over one JSON text on SQLite — a parameter or a few, whatever the batch size. Use it as a
 * materialized CTE (`with v as materialized (…) update t … from v`): SQLite then reads the rows once and looks each
 * one up in the target's index, instead of rescanning them for every target row its own filters leave.
 *
 * @example
 * sql`with v as materialized (${valuesQuery(dialect, [{ name: "id", type: "text" }], [["usr_1"]])}) update users set x = 0 from v where users.id = v.id`
 */
export function valuesQuery(dialect: DialectName, columns: readonly ValuesColumn[], rows: ReadonlyArray<ReadonlyArray<string | number | null>>): RawBuilder<unknown> {
  if (dialect === "postgres") {
    const arrays = columns.map((c, i) => sql`${rows.map((r) => r[i] ?? null)}::${sql.raw(c.type)}[]`);
    return sql`select * from unnest(${sql.join(arrays)}) as t(${sql.join(columns.map((c) => sql.ref(c.name)))})`;
  }
  const picks = columns.map((c, i) => sql`value ->> ${sql.raw(String(i))} as ${sql.ref(c.name)}`);
  return sql`select ${sql.join(picks)} from json_each(${JSON.stringify(rows)})`;
}
