// Helpers the levers share: a sample of ids for dry runs, and chunking of id lists.
import type { Kysely } from "kysely";
import type { ScopeQuery } from "../lever.ts";
import type { ContainSchema } from "../tables.ts";

/** How many ids a dry run shows: enough to recognise the scope, few enough to read. */
export const SAMPLE_SIZE = 5;

export const DAY_MS = 86_400_000;

/** Counts the users of `scope` matching `narrow`, and samples a few of their ids. */
export async function countUsers(
  db: Kysely<ContainSchema>,
  scope: ScopeQuery,
  narrow: (q: ReturnType<typeof base>) => ReturnType<typeof base>,
): Promise<{ users: number; sample: string[] }> {
  const q = narrow(base(db, scope));
  const row = await q.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
  const sample = await q.select("users.id").orderBy("users.id").limit(SAMPLE_SIZE).execute();
  return { users: Number(row?.n ?? 0), sample: sample.map((r) => r.id) };
}

function base(db: Kysely<ContainSchema>, scope: ScopeQuery) {
  return db.selectFrom("users").where("users.id", "in", scope);
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
