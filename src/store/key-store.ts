// The keyring's storage (KeyStore) over the Bulwark database: keys and meta values.
import type { KeyPurpose, KeyStore, StoredKey } from "../crypto/keyring.ts";
import type { Database } from "./database.ts";

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
      await database.transaction(async (trx) => {
        await trx.updateTable("keyring_keys").set({ status: "retired" }).where("purpose", "=", key.purpose).execute();
        await trx
          .insertInto("keyring_keys")
          .values({ id: key.id, purpose: key.purpose, status: "current", created_at: key.createdAt, wrapped: key.wrapped, public_key: key.publicKey })
          .execute();
      });
    },
    async getMeta(name: string): Promise<string | null> {
      const row = await db.selectFrom("bulwark_meta").select("value").where("name", "=", name).executeTakeFirst();
      return row?.value ?? null;
    },
    async setMeta(name: string, value: string): Promise<void> {
      await db
        .insertInto("bulwark_meta")
        .values({ name, value })
        .onConflict((oc) => oc.column("name").doUpdateSet({ value }))
        .execute();
    },
  };
}
