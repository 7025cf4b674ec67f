// The keyring's storage (KeyStore) over the Bulwark database: keys and meta values, and the one transaction of a
// master key rotation (every key wrapped again, the master key check replaced).
import { cryptoErrors } from "../crypto/errors.ts";
import { MASTER_CHECK_META, TAG_KEY_PURPOSE, type Keyring, type KeyPurpose, type KeyStore, type MasterRotation, type StoredKey } from "../crypto/keyring.ts";
import type { Kysely, Transaction } from "kysely";
import { lockKeyOf, serialiseTransactions, serialiseTransactionsMany, type Database, type DialectName } from "./database.ts";
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
  await assertWrappedByRecorded(trx, key);
  await trx.updateTable("keyring_keys").set({ status: "retired" }).where("purpose", "=", key.purpose).where("status", "=", "current").execute();
  await trx
    .insertInto("keyring_keys")
    .values({ id: key.id, purpose: key.purpose, status: "current", created_at: key.createdAt, wrapped: key.wrapped, public_key: key.publicKey })
    .execute();
}

/**
 * Refuses a new key wrapped under another master key than the one the store records (StoredKey.wrappedBy), read under
 * the rotation lock, which a master key rotation takes too: a process that opened before a rotation and made its key
 * while the rotation committed would otherwise store a key that only the old, perhaps stolen, master key unwraps.
 */
async function assertWrappedByRecorded(trx: Kysely<Schema>, key: StoredKey): Promise<void> {
  if (key.wrappedBy === undefined) return;
  const row = await trx.selectFrom("bulwark_meta").select("value").where("name", "=", MASTER_CHECK_META).executeTakeFirst();
  if (row !== undefined && row.value !== key.wrappedBy) {
    throw cryptoErrors.masterKeyRotated(
      `key ${key.id} was wrapped under master key ${key.wrappedBy.slice(0, 16)}, but the store's master key is now ${row.value.slice(0, 16)} ` +
        "(`bulwark keys rotate-master` ran meanwhile); restart this process with the new master key and try again",
    );
  }
}

/** Every lock a key is added under (addCurrentKeyIn, addFirstKey): a master key rotation holds them all. */
const ROTATION_LOCKS = (["data", "signing", TAG_KEY_PURPOSE] satisfies KeyPurpose[]).map((p) => lockKeyOf(`keyring-rotation:${p}`));

export interface MasterKeyRotation {
  /** masterKeyId of the key replaced and of the new one (fingerprints, never the keys). */
  from: string;
  to: string;
  /** Keys wrapped again, by purpose (the identifier tag key stored by this rotation not included). */
  rewrapped: Record<string, number>;
  /** True when this rotation stored the identifier tag key (the store's first rotation). */
  tagKeyStored: boolean;
  /** True for a dry run: everything was checked (each key unwraps), nothing written. */
  dryRun: boolean;
}

/**
 * Moves the store to `newMaster`: every stored key (data, signing, identifier tag; current and retired) is wrapped again
 * under it and the master key check replaced, in one transaction, so a crash leaves either master key in force, never
 * a mix. Refused first, before any key is unwrapped, when the store records another master key than the keyring's
 * (another rotation committed meanwhile). `inTransaction` runs last inside it (the audit event commits with the keys);
 * a read of the key table through it unwraps with the new key in memory and touches no key file
 * (Keyring.beginMasterRotation). After the commit the keyring adopts the new key. With `dryRun`, every key is
 * unwrapped and wrapped again in memory (so a dry run that succeeds promises a rotation that can be made) and nothing
 * is written. The key file is the caller's (crypto/master-key.ts).
 *
 * @example
 * const r = await rotateMasterKey(database, keyring, random.bytes(32), { inTransaction: (trx, r) => audit.appendIn(trx, …) });
 */
export async function rotateMasterKey(
  database: Database,
  keyring: Keyring,
  newMaster: Uint8Array,
  options: { dryRun?: boolean; inTransaction?: (trx: Transaction<Schema>, rotation: MasterKeyRotation) => Promise<void> } = {},
): Promise<MasterKeyRotation> {
  const summarise = (plan: ReturnType<Keyring["prepareMasterRotation"]>, dryRun: boolean): MasterKeyRotation => {
    const rewrapped: Record<string, number> = { data: 0, signing: 0, [TAG_KEY_PURPOSE]: 0 };
    for (const key of plan.rewrapped) rewrapped[key.purpose] = (rewrapped[key.purpose] ?? 0) + 1;
    return { from: plan.fromCheck.slice(0, 16), to: plan.toCheck.slice(0, 16), rewrapped, tagKeyStored: plan.tagKey !== null, dryRun };
  };
  if (options.dryRun) return summarise(keyring.prepareMasterRotation(newMaster, await createKeyStore(database).listKeys()), true);
  let begun: MasterRotation | null = null;
  const { plan, rotation } = await database.transaction(async (trx) => {
    // No key is added meanwhile (each addition takes its purpose's lock and then compares its wrap with the check this
    // transaction replaces; SQLite: the write lock), so every key is read here, and wrapped again.
    await serialiseTransactionsMany(database, trx, ROTATION_LOCKS);
    const view = keyStoreIn(trx, database.dialect, "keys rotate-master");
    // Compared before any key is unwrapped: after another rotation committed, every key is wrapped under its key, and
    // preparing first failed on the first key with "does not unwrap (tampered key row?)", sending a responder after a
    // tampering that never happened.
    const recorded = await view.getMeta(MASTER_CHECK_META);
    const held = keyring.masterCheck;
    if (recorded !== held) {
      throw cryptoErrors.masterRotationRefused(
        `the store's master key is ${recorded === null ? "not recorded" : recorded.slice(0, 16)}, not ${held.slice(0, 16)} held here: another rotation committed meanwhile; nothing was changed`,
      );
    }
    const plan = keyring.prepareMasterRotation(newMaster, await view.listKeys());
    // From here a read through this transaction (the audit event's signer, in inTransaction) sees the new check: the
    // keyring takes the new key from the plan, never from the key files, whose rename waits for the COMMIT (the caller's).
    keyring.beginMasterRotation(plan);
    begun = plan;
    for (const key of plan.rewrapped) {
      // Compare-and-set: a row changed since it was read (it cannot be, under the locks; a writer of the database by
      // hand) rolls the whole rotation back rather than overwrite a wrap nobody checked.
      const done = await trx.updateTable("keyring_keys").set({ wrapped: key.to }).where("id", "=", key.id).where("wrapped", "=", key.from).executeTakeFirst();
      if (Number(done.numUpdatedRows) !== 1) throw cryptoErrors.masterRotationRefused(`key ${key.id} changed while it was being wrapped again; nothing was changed, run the command again`);
    }
    if (plan.tagKey !== null) {
      const { id, purpose, status, createdAt, wrapped, publicKey } = plan.tagKey;
      await trx.insertInto("keyring_keys").values({ id, purpose, status, created_at: createdAt, wrapped, public_key: publicKey }).execute();
    }
    const replaced = await trx.updateTable("bulwark_meta").set({ value: plan.toCheck }).where("name", "=", MASTER_CHECK_META).where("value", "=", plan.fromCheck).executeTakeFirst();
    if (Number(replaced.numUpdatedRows) !== 1) throw cryptoErrors.masterRotationRefused("the master key check changed while the keys were being wrapped again; nothing was changed");
    const rotation = summarise(plan, false);
    await options.inTransaction?.(trx, rotation);
    return { plan, rotation };
  }).catch((error: unknown) => {
    if (begun !== null) keyring.abandonMasterRotation(begun); // rolled back: the master key held stays in force
    throw error;
  });
  keyring.adoptMaster(plan);
  return rotation;
}

/**
 * The check (masterKeyCheck) of the master key the store records, or null when none is: after a rotation whose commit
 * failed in a way that leaves its outcome unknown (the connection lost on COMMIT), this says which key is in force.
 */
export async function recordedMasterKeyCheck(database: Database): Promise<string | null> {
  return createKeyStore(database).getMeta(MASTER_CHECK_META);
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
        await assertWrappedByRecorded(trx, key);
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
