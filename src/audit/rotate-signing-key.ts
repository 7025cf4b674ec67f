// Rotates the signing key that signs audit checkpoints (and file baselines), for when it may have leaked: a new
// Ed25519 key becomes current, and the key, the event recording the rotation and a checkpoint the new key signs at
// that event commit together. From then on verify refuses any checkpoint the old key signs (signing-keys.ts), while
// the checkpoints it signed before keep verifying.
import type { Keyring } from "../crypto/keyring.ts";
import type { Database } from "../store/database.ts";
import { sql, type Kysely } from "kysely";
import { lockKeyOf, serialiseTransactions } from "../store/database.ts";
import { addCurrentKeyIn, keyStoreIn } from "../store/key-store.ts";
import type { Schema } from "../store/schema.ts";
import { auditErrors } from "./errors.ts";
import { MAX_EVENT_TIME_MS } from "./event-time.ts";
import { keyOrder } from "./signing-keys.ts";
import type { AuditLog } from "./audit-log.ts";
import { keyFingerprint } from "./trusted-keys.ts";
import type { Checkpoint } from "./verify.ts";

export interface SigningKeyRotation {
  /** The key retired, and the checkpoints stored that it signed (they keep verifying). */
  from: { keyId: string; checkpoints: number };
  /** The new current key, with the fingerprint of its public key (record it apart from the database); null on a dry run. */
  to: { keyId: string; fingerprint: string } | null;
  /** The new key's first checkpoint, at the event recording the rotation; null on a dry run. */
  checkpoint: Checkpoint | null;
}

/**
 * Rotates the signing key; with `dryRun`, says which key would be retired and changes nothing, after the checks the real
 * run would meet (AuditLog.checkRotation), so a dry run that succeeds promises a rotation that can be made.
 *
 * @example
 * const r = await rotateSigningKey({ database, keyring, audit }, "cli:ana");
 * console.log(`${r.from.keyId} → ${r.to?.keyId} ${r.to?.fingerprint}`);
 */
export async function rotateSigningKey(
  deps: { database: Database; keyring: Keyring; audit: AuditLog },
  actor: string,
  options: { dryRun?: boolean } = {},
): Promise<SigningKeyRotation> {
  const { database, keyring, audit } = deps;
  const signedBy = async (db: Kysely<Schema>, keyId: string): Promise<number> =>
    Number((await db.selectFrom("audit_checkpoints").select((eb) => eb.fn.countAll<number | string>().as("n")).where("key_id", "=", keyId).executeTakeFirstOrThrow()).n);
  if (options.dryRun) {
    const current = await keyring.signer({ reload: true });
    // The checks the real run meets before it commits (the head it appends its event at, a log its checkpoint may vouch
    // for), read-only: a dry run that said "would be retired" over a head moved back promised a rotation the real run
    // then refused. Throws as the real run would.
    await audit.checkRotation(current);
    return { from: { keyId: current.keyId, checkpoints: await signedBy(database.db, current.keyId) }, to: null, checkpoint: null };
  }
  // The new key is dated no earlier than anything the log holds: its creation time is the old key's retirement, which
  // verify holds checkpoints to, and a host whose clock is behind would otherwise date it before checkpoints the old
  // key signed honestly (a false alarm for ever, the time being bound into the key's wrap).
  // The keyring honours it up to an hour ahead of its clock: the times are rows anyone who can write the database may
  // have set (an event dated 2100 would otherwise date the retirement, bound for good, in 2100).
  const newest = async (table: "audit_events" | "audit_checkpoints"): Promise<number> => {
    // Over the rows a time can be read from (a Date's range; on SQLite this leaves out a value stored as text): one bad
    // row must not hide every honest time of its table. A fraction is rounded up, never dropped.
    const row = await database.db.selectFrom(table).select(sql<number | string | null>`MAX(at)`.as("at"))
      .where("at", ">=", -MAX_EVENT_TIME_MS).where("at", "<=", MAX_EVENT_TIME_MS).executeTakeFirst();
    const at = Number(row?.at ?? Number.NaN);
    return Number.isFinite(at) ? Math.ceil(at) : Number.NEGATIVE_INFINITY;
  };
  const notBefore = Math.max(await newest("audit_events"), await newest("audit_checkpoints")) + 1;
  // Made (and the key table read) before the transaction opens: on SQLite a read outside it would wait for it.
  const pending = await keyring.prepareSigningKey({ notBefore });
  const fingerprint = keyFingerprint(pending.key.publicKey as string);
  const { checkpoint, from } = await database.transaction(async (trx) => {
    // Rotations take turns from here (PostgreSQL: the rotation lock; SQLite: the write lock), and the key they retire is
    // read under it, through this transaction: the event names the key really retired, not one read before another
    // rotation committed; and a rotation that lost that race stops cleanly instead of storing an older "new" key.
    await serialiseTransactions(database, trx, lockKeyOf("keyring-rotation:signing"));
    const current = await keyring.signer({ reload: true, store: keyStoreIn(trx, database.dialect, "audit rotate-signing-key") });
    // The new key must be newer than the one current now (the keyring has just read the table through this transaction).
    if (keyOrder(pending.signer, current.keyId) !== "newer") throw auditErrors.rotationRaced(current.keyId);
    const retired = { keyId: current.keyId, checkpoints: await signedBy(trx, current.keyId) };
    await addCurrentKeyIn(database, trx, pending.key);
    const recorded = await audit.recordSigningKeyRotation(trx, pending.signer, {
      type: "audit.signing-key-rotated", actor, subject: pending.key.id,
      data: { from: retired.keyId, to: pending.key.id, fingerprint },
    });
    return { checkpoint: recorded.checkpoint, from: retired };
  });
  keyring.adoptSigningKey(pending);
  return { from, to: { keyId: pending.key.id, fingerprint }, checkpoint };
}
