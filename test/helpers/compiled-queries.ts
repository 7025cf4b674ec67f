// A view of a Database whose Kysely records every root query it compiles, with its parameters, as the database runs
// them: for tests that count a piece of work's statements or read the plan of the exact query it sends.
import type { CompiledQuery, KyselyPlugin, QueryId, RootOperationNode } from "kysely";
import type { Database } from "../../src/store/database.ts";

/**
 * `database` as seen through a recording plugin: pass `spied.database` to the code under test, read `spied.compiled`.
 *
 * @example
 * const spied = spyOn(database);
 * await checkLogins(spied.database, options);
 * assert.ok(spied.compiled.length < 10);
 */
export function spyOn(database: Database): { database: Database; compiled: CompiledQuery[] } {
  const compiled: CompiledQuery[] = [];
  const plugin: KyselyPlugin = {
    transformQuery(args: { node: RootOperationNode; queryId: QueryId }): RootOperationNode {
      compiled.push(database.db.getExecutor().compileQuery(args.node, args.queryId));
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  };
  const spied: Database = {
    dialect: database.dialect, db: database.db.withPlugin(plugin), where: database.where, sqlite: database.sqlite,
    transaction: (fn) => database.transaction(fn), close: () => database.close(),
  };
  return { database: spied, compiled };
}
