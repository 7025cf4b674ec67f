// Processes over one shared store for the signing-key tests: each its own keyring (tamper reports collected), audit log
// (a checkpoint every EVERY events) and clock; the store installed as init leaves it; the appends of honest writers and
// of an intruder who can write the database but holds no key.
import assert from "node:assert/strict";
import { AuditLog } from "../../src/audit/audit-log.ts";
import { Keyring, type KeyStore, type TamperedKey } from "../../src/crypto/keyring.ts";
import { ManualClock } from "../../src/lib/clock.ts";
import { systemRandom } from "../../src/lib/random.ts";
import type { Database } from "../../src/store/database.ts";
import { createKeyStore, keyStoreIn } from "../../src/store/key-store.ts";
import { migrate } from "../../src/store/migrator.ts";

/** The checkpoint interval of every node here: small, so that a few appends reach a scheduled checkpoint. */
export const EVERY = 10;

export type SigningNode = { keyring: Keyring; audit: AuditLog; clock: ManualClock; reports: TamperedKey[] };

/** An audit log over `db` signing with `keyring` (through a caller's transaction when there is one), every EVERY events. */
export function auditOver(db: Database, keyring: Keyring, clock: ManualClock): AuditLog {
  return new AuditLog({
    database: db, clock, random: systemRandom, checkpointEvery: EVERY,
    signer: (executor, options) => keyring.signer({ ...options, ...(executor ? { store: keyStoreIn(executor, db.dialect, "test") } : {}) }),
  });
}

/** One process over the shared database: its own keyring (tamper reports collected), audit log and clock. */
export async function signingNode(db: Database, masterKey: Uint8Array, clock: ManualClock, store: KeyStore = createKeyStore(db)): Promise<SigningNode> {
  const reports: TamperedKey[] = [];
  const keyring = await Keyring.open({ masterKey, store, clock, random: systemRandom, onTamperedKey: (e) => reports.push(e) });
  return { keyring, audit: auditOver(db, keyring, clock), clock, reports };
}

/**
 * A migrated store with its keys, and the first node on it. As init does, an event and then the first checkpoint at
 * once (a log with none passes for young only in its keys' first hour); with `genesis: false`, a store from a Bulwark
 * that signed none at init. `store` builds the node's key store (a test's wrapper), `clock` is the node's.
 */
export async function installSigning(db: Database, options: { clock?: ManualClock; store?: (db: Database) => KeyStore; genesis?: boolean } = {}): Promise<SigningNode & { masterKey: Uint8Array }> {
  const clock = options.clock ?? new ManualClock();
  assert.equal((await migrate(db, clock)).error, undefined);
  const masterKey = systemRandom.bytes(32);
  const n = await signingNode(db, masterKey, clock, options.store?.(db));
  await n.keyring.ensureKeys();
  if (options.genesis !== false) {
    await n.audit.append({ type: "bulwark.init", actor: "test" });
    assert.ok(await n.audit.checkpoint());
  }
  return { ...n, masterKey };
}

/** `n` honest appends. */
export async function appendEvents(audit: AuditLog, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await audit.append({ type: "t", actor: "a", data: { i } });
}

/**
 * The intruder's own append, linked to the head and hashed like any other (no key is needed), dated `at` (the manual
 * clock's default when absent): every honest writer's cached head then collides and is read again.
 */
export async function intruderAppend(db: Database, at?: number): Promise<void> {
  await new AuditLog({ database: db, clock: new ManualClock(at), random: systemRandom }).append({ type: "t", actor: "a", data: { filler: true } });
}
