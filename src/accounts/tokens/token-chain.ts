// The ancestry of an API token minted by tokens: a bounded recursive walk up parent_id (SQLite and PostgreSQL
// alike), so that verify can refuse a token when any token above it is gone, revoked, expired or stamped.
import { sql, type Kysely, type QueryCreator } from "kysely";
import type { Schema } from "../../store/schema.ts";

/**
 * The most ancestors a usable token may have. The walk stops here, so verify does at most this many primary-key
 * lookups; a deeper token is refused (fail closed) and create refuses to mint one. Every ancestor of a usable
 * token was live when it was minted, so through the HTTP API (50 live tokens per user) no real chain comes near.
 */
export const MAX_TOKEN_ANCESTORS = 64;

/** One token of a chain: the token the walk started from (depth 0), its parent (1), and so on up. */
export interface ChainLink {
  id: string;
  user_id: string;
  /** Undefined only in the table type (inserts from before migration 12 leave it out); read, it is null or an id. */
  parent_id: string | null | undefined;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  issued_epoch: number;
  depth: number;
}

/**
 * A query creator with the CTE `chain`: the token `tokenId` and its ancestors, up to MAX_TOKEN_ANCESTORS above it.
 * Each step follows parent_id by primary key and only to a token of the same user: a parent_id naming another
 * user's token (only a tampered row can) ends the walk like a missing parent. UNION ALL with the depth bound ends
 * even a cycle written into the database.
 *
 * @example
 * const rows = await withChain(db, id).selectFrom("chain").selectAll().execute();
 */
export function withChain(db: Kysely<Schema>, tokenId: string): QueryCreator<Schema & { chain: ChainLink }> {
  return db.withRecursive("chain(id, user_id, parent_id, created_at, expires_at, revoked_at, issued_epoch, depth)", (qc) =>
    qc
      .selectFrom("api_tokens")
      .select(["id", "user_id", "parent_id", "created_at", "expires_at", "revoked_at", "issued_epoch", sql<number>`0`.as("depth")])
      .where("id", "=", tokenId)
      .unionAll((qb) =>
        qb
          .selectFrom("api_tokens as p")
          .innerJoin("chain as c", (join) => join.onRef("p.id", "=", "c.parent_id").onRef("p.user_id", "=", "c.user_id"))
          .select(["p.id", "p.user_id", "p.parent_id", "p.created_at", "p.expires_at", "p.revoked_at", "p.issued_epoch", sql<number>`c.depth + 1`.as("depth")])
          .where("c.depth", "<", MAX_TOKEN_ANCESTORS),
      ),
  );
}

/**
 * Whether a walk (its row count and how many of its rows name a parent) reached a token minted by a session.
 * Only that top token has no parent, so a complete chain has exactly one row without one; otherwise the walk
 * ended at a parent that is gone, belongs to someone else, or lies beyond MAX_TOKEN_ANCESTORS.
 */
export function chainIsComplete(links: number, withParent: number): boolean {
  return links > 0 && withParent === links - 1;
}
