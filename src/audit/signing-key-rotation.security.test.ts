// Attacks on the audit log by someone holding a signing key that was rotated out (it leaked: a backup of the key
// table with the master key, a memory dump), who can also write the database. `audit rotate-signing-key` stores the
// new key, the event recording it and a checkpoint the new key signs in one commit; verify then refuses every
// checkpoint the old key signs after that one, whatever time it claims (ASVS 16.4.2: logs cannot be modified unseen;
// 11.2.2: keys can be replaced). On SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { Keyring } from "../crypto/keyring.ts";
import { ManualClock } from "../lib/clock.ts";
import { systemRandom } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { createKeyStore, keyStoreIn } from "../store/key-store.ts";
import { migrate } from "../store/migrator.ts";
import { AuditLog } from "./audit-log.ts";
import { rotateSigningKey } from "./rotate-signing-key.ts";
import { RETIRED_KEY_GRACE_MS } from "./signing-keys.ts";
import { checkpointKeys, forgeCheckpoint, rewrite } from "../../test/helpers/audit-tamper.ts";

const EVERY = 10;
const HOUR = 3_600_000;

async function ready(db: Database) {
  const clock = new ManualClock();
  assert.equal((await migrate(db, clock)).error, undefined);
  const masterKey = systemRandom.bytes(32);
  const keyring = await Keyring.open({ masterKey, store: createKeyStore(db), clock, random: systemRandom });
  await keyring.ensureKeys();
  const audit = new AuditLog({ database: db, clock, random: systemRandom, signer: () => keyring.signer(), checkpointEvery: EVERY });
  return { keyring, audit, clock, masterKey };
}

async function append(audit: AuditLog, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await audit.append({ type: "t", actor: "a", data: { i } });
}

forEachDialect("audit signing key rotation under attack", (fx) => {
  it("rotation stores the key, an audit.signing-key-rotated event and the new key's first checkpoint at that event, together; the old key's checkpoints keep verifying", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock } = await ready(db);
    await append(audit, 25);
    const old = (await keyring.signer()).keyId;
    clock.advance(HOUR);
    const r = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    assert.equal(r.from.keyId, old);
    assert.equal(r.from.checkpoints, 2, "the two scheduled checkpoints the old key signed");
    assert.ok(r.to && r.to.keyId !== old && /^sha256:[0-9a-f]{64}$/.test(r.to.fingerprint));
    assert.equal((await keyring.signer()).keyId, r.to.keyId);
    const event = (await audit.tail(1))[0];
    assert.equal(event?.type, "audit.signing-key-rotated");
    assert.deepEqual(event?.data, { from: old, to: r.to.keyId, fingerprint: r.to.fingerprint });
    assert.deepEqual(await checkpointKeys(db), [{ seq: 10, key: old }, { seq: 20, key: old }, { seq: event.seq, key: r.to.keyId }]);
    await append(audit, 15);
    assert.equal((await checkpointKeys(db)).at(-1)?.key, r.to.keyId, "the schedule goes on with the new key");
    const report = await audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
    assert.equal(report.checkpointsChecked, 4);
  });

  it("a dry run meets the checks the real rotation meets: a head moved back or a deleted head row fail both, naming the head; an intact log passes both; the dry run changes nothing", async () => {
    const db = await fx.fresh();
    const { keyring, audit } = await ready(db);
    await append(audit, 25);
    const deps = { database: db, keyring, audit };
    const rows = async (): Promise<number[]> => [
      (await db.db.selectFrom("audit_events").select("seq").execute()).length,
      (await db.db.selectFrom("audit_checkpoints").select("seq").execute()).length,
      (await db.db.selectFrom("keyring_keys").select("id").execute()).length,
    ];
    const before = await rows();
    const row = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", 22).executeTakeFirstOrThrow();
    await db.db.updateTable("audit_head").set({ seq: 22, hash: row.hash }).where("id", "=", 1).execute();
    await assert.rejects(rotateSigningKey(deps, "cli:ana", { dryRun: true }), (e: Error & { code?: string }) =>
      e.code === "BULWARK_ERR_AUDIT_HEAD_BEHIND" && /cannot rotate the signing key.*event #23 is already stored.*records #22.*repair-head/.test(e.message));
    await assert.rejects(rotateSigningKey(deps, "cli:ana"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_HEAD_BEHIND");
    await db.db.deleteFrom("audit_head").execute();
    await assert.rejects(rotateSigningKey(deps, "cli:ana", { dryRun: true }), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_HEAD_MISSING" && /repair-head/.test(e.message));
    await assert.rejects(rotateSigningKey(deps, "cli:ana"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_HEAD_MISSING");
    assert.deepEqual(await rows(), before, "neither the dry runs nor the refused rotations stored anything");
    await audit.repairHead("cli:ana");
    // A head with a checkpoint stored at it (the rotation's base is then that one): passes the dry run as the real run.
    await audit.checkpoint();
    const dry = await rotateSigningKey(deps, "cli:ana", { dryRun: true });
    assert.equal(dry.to, null);
    const real = await rotateSigningKey(deps, "cli:ana");
    assert.equal(real.from.keyId, dry.from.keyId);
    assert.equal((await audit.verify()).ok, true);
  });

  it("attack: a checkpoint the leaked old key signs after the rotation fails verify, even dated before the rotation (ASVS 16.4.2)", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock } = await ready(db);
    await append(audit, 12);
    const leaked = await keyring.signer();
    const before = clock.now();
    clock.advance(HOUR);
    await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    await append(audit, 5);
    // The intruder rewrites an event after the rotation and vouches for the result with the key they hold, dated
    // an hour before the rotation so that no time rule sees it.
    const head = Number((await db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow()).seq);
    await rewrite(db, head - 1);
    await forgeCheckpoint(db, leaked, head, before);
    const report = await audit.verify();
    assert.equal(report.ok, false);
    assert.match(report.problem?.problem ?? "", new RegExp(`signed with signing key ${leaked.keyId}, which was retired before key sk_\\w+ signed the checkpoint at #13`));
  });

  it("attack: deleting the new key's checkpoints and putting the old key's in their place fails verify, and the honest writer refuses to sign over them (no laundering)", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock } = await ready(db);
    await append(audit, 12);
    const leaked = await keyring.signer();
    const before = clock.now();
    clock.advance(HOUR);
    const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    await append(audit, 12);
    await db.db.deleteFrom("audit_checkpoints").where("key_id", "=", to?.keyId as string).execute();
    const head = Number((await db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow()).seq);
    await rewrite(db, head - 3);
    await forgeCheckpoint(db, leaked, 20, before);
    await forgeCheckpoint(db, leaked, head, before);
    const report = await audit.verify();
    assert.equal(report.ok, false);
    assert.match(report.problem?.problem ?? "", new RegExp(`no stored checkpoint is signed with the current signing key ${to?.keyId}`));
    // The next scheduled checkpoint and a manual one would vouch for the forged chain with the new key: refused. A
    // writer opened after the rewrite (no cached head to break the chain on its own) appends on the forged chain.
    const honest = new AuditLog({ database: db, clock, random: systemRandom, signer: () => keyring.signer(), checkpointEvery: EVERY });
    const stored = (await checkpointKeys(db)).length;
    await append(honest, 15);
    assert.equal((await checkpointKeys(db)).length, stored, "no checkpoint was signed over the retired key's");
    await assert.rejects(honest.checkpoint(), /signed with the retired signing key .* refusing to vouch/);
    assert.equal((await honest.verify()).ok, false);
  });

  it("attack: an old checkpoint re-signed by the retired key with a time after its retirement fails verify", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock } = await ready(db);
    await append(audit, 12);
    const leaked = await keyring.signer();
    clock.advance(HOUR);
    await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    clock.advance(RETIRED_KEY_GRACE_MS + 1);
    // Checkpoint #10 replaced with one the leaked key signs now (over a rewritten #10, say).
    await db.db.deleteFrom("audit_checkpoints").where("seq", "=", 10).execute();
    await forgeCheckpoint(db, leaked, 10, clock.now());
    const report = await audit.verify();
    assert.equal(report.ok, false);
    assert.match(report.problem?.problem ?? "", new RegExp(`checkpoint at event #10 is dated .* after its signing key ${leaked.keyId} was retired`));
  });

  it("a node that has not seen the rotation yet signs its next scheduled checkpoint with the new key, not the retired one", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock, masterKey } = await ready(db);
    // Node B: its own keyring and audit log on the same database, its key table read before the rotation.
    const keyringB = await Keyring.open({ masterKey, store: createKeyStore(db), clock, random: systemRandom });
    // Inside a transaction the key table is read through it, as openApp's signer does (on SQLite anything else hangs).
    const auditB = new AuditLog({
      database: db, clock, random: systemRandom, signer: (executor, options) => keyringB.signer({ ...options, ...(executor ? { store: keyStoreIn(executor, db.dialect, "test") } : {}) }), checkpointEvery: EVERY,
    });
    await append(auditB, 3);
    const old = (await keyringB.signer()).keyId;
    const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    // Within B's freshness window (the clock does not move): B still holds the old key as current.
    assert.equal((await keyringB.signer()).keyId, old);
    await append(auditB, EVERY + 2);
    const keys = await checkpointKeys(db);
    assert.equal(keys.at(-1)?.key, to?.keyId, `B signed with ${keys.at(-1)?.key}`);
    const report = await audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
  });

  it("a rotation that cannot sign (the stored chain does not hold) stores no key and leaves the old one current", async () => {
    const db = await fx.fresh();
    const { keyring, audit } = await ready(db);
    await append(audit, 12);
    const old = (await keyring.signer()).keyId;
    const keysBefore = await db.db.selectFrom("keyring_keys").select(["id", "status"]).orderBy("id").execute();
    await db.db.updateTable("audit_events").set({ data: JSON.stringify({ altered: true }) }).where("seq", "=", 11).execute();
    await assert.rejects(rotateSigningKey({ database: db, keyring, audit }, "cli:ana"), /BULWARK_ERR_AUDIT|altered|does not match/);
    assert.deepEqual(await db.db.selectFrom("keyring_keys").select(["id", "status"]).orderBy("id").execute(), keysBefore);
    assert.equal((await keyring.signer({ reload: true })).keyId, old);
    assert.equal((await audit.tail(1))[0]?.type, "t", "no rotation event either");
  });

  it("--dry-run changes nothing and names the key it would retire", async () => {
    const db = await fx.fresh();
    const { keyring, audit } = await ready(db);
    await append(audit, 12);
    const old = (await keyring.signer()).keyId;
    const r = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana", { dryRun: true });
    assert.deepEqual(r, { from: { keyId: old, checkpoints: 1 }, to: null, checkpoint: null });
    assert.equal((await keyring.signer({ reload: true })).keyId, old);
    assert.equal((await db.db.selectFrom("keyring_keys").select("id").where("purpose", "=", "signing").execute()).length, 1);
  });
});
