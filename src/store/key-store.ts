// The keyring's storage (KeyStore) over the Bulwark database: keys and meta values.
import type { KeyPurpose, KeyStore, StoredKey } from "../crypto/keyring.ts";
import type { Kysely } from "kysely";
import { lockKeyOf, serialiseTransactions, type Database, type DialectName } from "./database.ts";
import type { Schema } from "./schema.ts";

/** A unique violation on the one-current-key index (SQLite and PostgreSQL word it differently). */
function isCurrentKeyClash(error: unknown): boolean {
  const e = error as { code?: string; message?: string; constraint?: string };
  return e.constraint === "keyring_keys_one_current" || /keyring_keys_one_current|UNIQUE constraint failed: keyring_keys\.purpose/.test(e.message ?? "");
}

/**
 * KeyStore.addCurrentKey's statements inside the caller's transaction `trx` (of `database`): the key commits or rolls
 * back with the caller's other writes (the audit signing-key rotation stores its key, its event and the checkpoint the
 * key signs in one commit). Rotations of one purpose take turns on a lock, as in addCurrentKey.
 */
export async function addCurrentKeyIn(database: Pick<Database, "dialect">, trx: Kysely<Schema>, key: StoredKey): Promise<void> {
  await serialiseTransactions(database, trx, lockKeyOf(`keyring-rotation:${key.purpose}`));
  await trx.updateTable("keyring_keys").set({ status: "retired" }).where("purpose", "=", key.purpose).where("status", "=", "current").execute();
  await trx
    .insertInto("keyring_keys")
    .values({ id: key.id, purpose: key.purpose, status: "current", created_at: key.createdAt, wrapped: key.wrapped, public_key: key.publicKey })
    .execute();
}

export function createKeyStore(database: Database): KeyStore {
  const { db } = database;
  return {
    async listKeys(): Promise<StoredKey[]> {
      const rows = await db.selectFrom("keyring_keys").selectAll().orderBy("created_at").orderBy("id").execute();
      return rows.map((r) => ({
        id: r.id,
        purpose: r.purpose as KeyPurpose,
        status: r.status === "current" ? "current" : "retired",
        createdAt: Number(r.created_at),
        wrapped: r.wrapped,
        publicKey: r.public_key,
      }));
    },
    async addCurrentKey(key: StoredKey): Promise<void> {
      // The unique index on the current key of a purpose (migration 13) refuses a second current key. Rotations
      // of one purpose take turns (PostgreSQL: an advisory lock, so the retire step runs after the previous
      // rotation committed and sees its key; SQLite: the write lock). Before the lock, six racing rotations could
      // each lose five retries in a row to the others, and the last one failed. The retry stays for a rotation
      // racing a writer that does not take the lock (a Bulwark from before it, during an upgrade).
      for (let attempt = 1; ; attempt++) {
        try {
          await database.transaction((trx) => addCurrentKeyIn(database, trx, key));
          return;
        } catch (error) {
          if (attempt >= 5 || !isCurrentKeyClash(error)) throw error;
        }
      }
    },
    async addFirstKey(key: StoredKey): Promise<boolean> {
      // In turn with rotations of the purpose (the same lock): of processes running init on one fresh store at once,
      // one stores the first key and the others find it.
      return database.transaction(async (trx) => {
        await serialiseTransactions(database, trx, lockKeyOf(`keyring-rotation:${key.purpose}`));
        const held = await trx.selectFrom("keyring_keys").select("id").where("purpose", "=", key.purpose).where("status", "=", "current").limit(1).executeTakeFirst();
        if (held) return false;
        await trx.insertInto("keyring_keys")
          .values({ id: key.id, purpose: key.purpose, status: "current", created_at: key.createdAt, wrapped: key.wrapped, public_key: key.publicKey })
          .execute();
        return true;
      }).catch((error: unknown) => {
        // A writer that does not take the lock (a Bulwark from before it) stored one first: the unique index says so.
        if (isCurrentKeyClash(error)) return false;
        throw error;
      });
    },
    async getMeta(name: string): Promise<string | null> {
      const row = await db.selectFrom("bulwark_meta").select("value").where("name", "=", name).executeTakeFirst();
      return row?.value ?? null;
    },
    async claimMeta(name: string, value: string): Promise<string> {
      await db.insertInto("bulwark_meta").values({ name, value }).onConflict((oc) => oc.column("name").doNothing()).execute();
      const row = await db.selectFrom("bulwark_meta").select("value").where("name", "=", name).executeTakeFirst();
      const stored = row?.value ?? null;
      if (stored === null) throw new Error(`bulwark_meta ${name} vanished right after it was claimed`);
      return stored;
    },
  };
}

/**
 * The key table as a caller's transaction sees it, read-only, for Keyring.reload's `store` (ReloadOptions): on SQLite
 * the transaction holds the process's only connection, so the keyring reading through its own store would wait for
 * the transaction to end. `who` names the caller in the error a write would raise (keys are never created inside).
 *
 * @example
 * await keyring.seal(body, ctx, { store: keyStoreIn(trx, database.dialect, "outbox enqueue") });
 */
export function keyStoreIn(executor: Kysely<Schema>, dialect: DialectName, who: string): KeyStore {
  return createKeyStore({
    dialect, db: executor, where: `(${who})`, sqlite: null,
    transaction: async () => {
      throw new Error(`${who} reads the key table only`);
    },
    close: async () => {},
  });
}
