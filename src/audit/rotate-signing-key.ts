// Rotates the signing key that signs audit checkpoints (and file baselines), for when it may have leaked: a new
// Ed25519 key becomes current, and the key, the event recording the rotation and a checkpoint the new key signs at
// that event commit together. From then on verify refuses any checkpoint the old key signs (signing-keys.ts), while
// the checkpoints it signed before keep verifying.
import type { Keyring } from "../crypto/keyring.ts";
import type { Database } from "../store/database.ts";
import { addCurrentKeyIn } from "../store/key-store.ts";
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
 * Rotates the signing key; with `dryRun`, says which key would be retired and changes nothing.
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
  // Read fresh: another node may have rotated moments ago, and the event must name the key really retired.
  const current = await keyring.signer({ reload: true });
  const signed = await database.db.selectFrom("audit_checkpoints").select((eb) => eb.fn.countAll<number | string>().as("n")).where("key_id", "=", current.keyId).executeTakeFirstOrThrow();
  const from = { keyId: current.keyId, checkpoints: Number(signed.n) };
  if (options.dryRun) return { from, to: null, checkpoint: null };
  // Made (and the key table read) before the transaction opens: on SQLite a read outside it would wait for it.
  const pending = await keyring.prepareSigningKey();
  const fingerprint = keyFingerprint(pending.key.publicKey as string);
  const { checkpoint } = await database.transaction(async (trx) => {
    await addCurrentKeyIn(database, trx, pending.key);
    return audit.recordSigningKeyRotation(trx, pending.signer, {
      type: "audit.signing-key-rotated", actor, subject: pending.key.id,
      data: { from: from.keyId, to: pending.key.id, fingerprint },
    });
  });
  keyring.adoptSigningKey(pending);
  return { from, to: { keyId: pending.key.id, fingerprint }, checkpoint };
}
