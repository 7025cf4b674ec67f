// Counts the statements node:sqlite runs, for tests that bound the database work of an operation (timing
// belongs to the benchmarks; a statement count is deterministic).
import { StatementSync } from "node:sqlite";

/** Records the SQL of every statement node:sqlite runs while `fn` runs (Kysely and the audit log's fast path alike). */
export async function statementsDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const proto = StatementSync.prototype as unknown as Record<"run" | "all" | "get", (...args: unknown[]) => unknown>;
  const originals = { run: proto.run, all: proto.all, get: proto.get };
  for (const name of ["run", "all", "get"] as const) {
    const original = originals[name];
    proto[name] = function (this: StatementSync, ...args: unknown[]) {
      seen.push(this.sourceSQL.trim().toLowerCase());
      return original.apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    Object.assign(proto, originals);
  }
  return seen;
}
