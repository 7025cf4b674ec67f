// Red-team round on the audit signing-key rotation (`bulwark audit rotate-signing-key`, commit 2716e83, ADR 0014).
// Attackers: (1) an intruder who holds a leaked, since-rotated signing key and can write the database (every table)
// and the files Bulwark reads (a file baseline), but not the master key, and wants a rewritten log or a trojaned
// tree to verify; (2) plain honest operation around a rotation (several nodes, clocks that differ, two rotations at
// once, rotating twice, repair-head), which must never end in a "tampered" verdict on an intact log or a node that
// stops signing. On SQLite and PostgreSQL where the database matters. ASVS 16.4.2 (logs cannot be modified unseen),
// 11.2.2 (keys can be replaced), 11.4.3 (integrity of stored files through signatures). Tests named "(was: …)" were
// this round's findings, fixed the same day; the others pin a defence that holds.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { rotateSigningKey, type SigningKeyRotation } from "../src/audit/rotate-signing-key.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import { tempDir } from "../src/checks/files/test-helpers.ts";
import { seal } from "../src/crypto/aead.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { base32 } from "../src/crypto/tokens.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { toBase64URL, utf8 } from "../src/lib/encoding.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { appendEvents, auditOver, EVERY, installSigning, intruderAppend, signingNode } from "./helpers/signing-nodes.ts";
import { checkpointKeys, forgeCheckpoint, headSeq, rewrite } from "./helpers/audit-tamper.ts";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;







forEachDialect("signing-key rotation, red team", (fx) => {
  it("attack: a rotation run from a host whose clock is 5 minutes behind leaves an intact log intact: the new key is dated no earlier than the newest time the log holds (was: verify called it forged, for good)", async () => {
    const db = await fx.fresh();
    // The server: the signing key made at install, a day of events, scheduled checkpoints signed just now.
    const server = await installSigning(db);
    server.clock.advance(DAY);
    await appendEvents(server.audit, 25);
    // The operator runs the rotation from an admin host whose clock is 5 minutes slow (the CLI never compares its
    // clock with anyone's; only servers on PostgreSQL warn about their own skew).
    const admin = await signingNode(db, server.masterKey, new ManualClock(server.clock.now() - 5 * MINUTE));
    const { to } = await rotateSigningKey({ database: db, keyring: admin.keyring, audit: admin.audit }, "cli:ops");
    assert.ok(to);
    server.clock.advance(2_000); // the server notices the rotation
    await appendEvents(server.audit, 15);
    assert.equal((await checkpointKeys(db)).at(-1)?.key, to.keyId, "the server signs with the new key");
    // Nothing was tampered with: every checkpoint the old key signed was signed before the rotation, by position.
    const report = await server.audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
    const fresh = await signingNode(db, server.masterKey, new ManualClock(server.clock.now()));
    const again = await fresh.audit.verify();
    assert.equal(again.ok, true, again.problem?.problem);
  });

  it("attack: a leaked v1 key (wrapped before creation times were bound) is retired by the rotation like any other: it ranks below every key that binds a time, and a rewrite it signs after the rotation fails verify and is not signed over (ASVS 16.4.2, 11.2.2) (was: the rules skipped it; the rewrite verified and was laundered)", async () => {
    const db = await fx.fresh();
    const clock = new ManualClock();
    assert.equal((await migrate(db, clock)).error, undefined);
    const masterKey = systemRandom.bytes(32);
    const keyring = await Keyring.open({ masterKey, store: createKeyStore(db), clock, random: systemRandom });
    // The signing key of an install from before v2 wraps: its wrap binds id and purpose only.
    const id = `sk_${base32(systemRandom.bytes(10))}`;
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const der = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }));
    const spki = toBase64URL(new Uint8Array(publicKey.export({ format: "der", type: "spki" })));
    const wrapped = toBase64URL(seal(masterKey, der, utf8(`bulwark-keyring-v1|${id}|signing`), systemRandom));
    await db.db.insertInto("keyring_keys").values({ id, purpose: "signing", status: "current", created_at: clock.now() - 400 * DAY, wrapped, public_key: spki }).execute();
    await keyring.ensureKeys();
    const audit = auditOver(db, keyring, clock);
    await appendEvents(audit, 12);
    // An older store with no checkpoint: the operator signs its log once, after checking it (`audit checkpoint --first`).
    assert.ok(await audit.checkpoint({ first: true }));
    const leaked = await keyring.signer();
    assert.equal(leaked.keyId, id, "the v1 key is the one that signs");
    const before = clock.now();
    clock.advance(HOUR);
    const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    assert.ok(to && to.keyId !== id);
    await appendEvents(audit, 5);
    // The intruder rewrites an event after the rotation and vouches for it with the leaked v1 key.
    const head = await headSeq(db);
    await rewrite(db, head - 1);
    await forgeCheckpoint(db, leaked, head, before);
    await intruderAppend(db);
    const report = await audit.verify();
    assert.equal(report.ok, false, "a checkpoint the retired v1 key signed after the new key's must be refused");
    // Nor may the honest schedule sign over it with the new key (laundering it).
    const stored = (await checkpointKeys(db)).length;
    await appendEvents(audit, EVERY + 2);
    assert.equal((await checkpointKeys(db)).length, stored, "the new key countersigned the retired v1 key's forgery");
  });

  it("attack: deleting the new key's row (and its checkpoints) does not roll a node that holds the new key back to the leaked one: its verify fails, it signs nothing with the leaked key, and the missing row is reported (ASVS 16.4.2, 11.2.2) (was: the node signed with the leaked key and called the rewrite intact)", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock } = await installSigning(db);
    await appendEvents(audit, 12);
    const leaked = await keyring.signer();
    const before = clock.now();
    clock.advance(HOUR);
    // The server rotates (or a node that has noticed the rotation: either holds the new key, its creation time bound).
    const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    assert.ok(to);
    await appendEvents(audit, 12);
    // The intruder makes the key table look as if the rotation never happened, then rewrites everything after the
    // old key's last checkpoint (the rotation event included) and signs it with the leaked key.
    await db.db.deleteFrom("keyring_keys").where("id", "=", to.keyId).execute();
    await db.db.deleteFrom("audit_checkpoints").where("key_id", "=", to.keyId).execute();
    await rewrite(db, 13);
    const head = await headSeq(db);
    await forgeCheckpoint(db, leaked, 20, before);
    await forgeCheckpoint(db, leaked, head, before);
    await intruderAppend(db);
    clock.advance(2_000);
    // This process created the new key and still holds it: the key table going back to the leaked key is a fact it
    // can see, not one to follow.
    const report = await audit.verify();
    assert.equal(report.ok, false, "the node that holds the newer key called a log rewritten under the retired key intact");
    await appendEvents(audit, EVERY + 2);
    // Past the intruder's own forged checkpoint at the head: nothing signed with the leaked key (the node keeps the newer
    // key it holds, and refuses to sign over a retired key's checkpoint that its key has not followed).
    const later = (await checkpointKeys(db)).filter((c) => c.seq > head);
    assert.deepEqual(later.filter((c) => c.key === leaked.keyId), [], `the node went back to signing with the leaked key ${leaked.keyId}`);
    assert.equal((await keyring.signer()).keyId, to.keyId, "the node's current key is still the one it holds, not the table's");
  });

  it("attack: a rotation racing another one either records the key it really retired, read under the rotation lock, or stops cleanly with nothing changed (was: the event named the key read before the other rotation committed)", async () => {
    const db = await fx.fresh();
    const a = await installSigning(db);
    await appendEvents(a.audit, 12);
    const k0 = (await a.keyring.signer()).keyId;
    const b = await signingNode(db, a.masterKey, new ManualClock(a.clock.now()));
    // B reads the current key (k0); A's rotation commits before B prepares its key: B's rotation then retires A's key.
    const seen: { first?: SigningKeyRotation } = {};
    const racing = {
      signer: (o?: { reload?: boolean }) => b.keyring.signer(o),
      prepareSigningKey: async () => {
        seen.first = await rotateSigningKey({ database: db, keyring: a.keyring, audit: a.audit }, "cli:ana");
        return b.keyring.prepareSigningKey();
      },
      adoptSigningKey: (p: Parameters<Keyring["adoptSigningKey"]>[0]) => b.keyring.adoptSigningKey(p),
    } as unknown as Keyring;
    const second = await rotateSigningKey({ database: db, keyring: racing, audit: b.audit }, "cli:bob");
    const k1 = seen.first?.to?.keyId;
    assert.ok(k1 && second.to);
    const events = (await a.audit.tail(2)).map((e) => e.data);
    assert.deepEqual(events[0], { from: k0, to: k1, fingerprint: seen.first?.to?.fingerprint });
    const report = await (await signingNode(db, a.masterKey, new ManualClock(a.clock.now()))).audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
    assert.equal(events[1]?.["from"], k1, `the second rotation retired ${k1}, but its event says it retired ${String(events[1]?.["from"])}`);
  });

  it("attack: a key table edited to mark the retired key current (and the new one retired) does not let the leaked key vouch for a rewrite after the rotation", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock, masterKey } = await installSigning(db);
    await appendEvents(audit, 12);
    const leaked = await keyring.signer();
    const before = clock.now();
    clock.advance(HOUR);
    const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    assert.ok(to);
    await appendEvents(audit, 5);
    await db.db.updateTable("keyring_keys").set({ status: "retired" }).where("id", "=", to.keyId).execute();
    await db.db.updateTable("keyring_keys").set({ status: "current" }).where("id", "=", leaked.keyId).execute();
    const head = await headSeq(db);
    await rewrite(db, head - 1);
    await forgeCheckpoint(db, leaked, head, before);
    // A process started after the edit (`bulwark audit verify`): the bound creation times decide, not the status.
    const fresh = await signingNode(db, masterKey, new ManualClock(clock.now()));
    assert.equal((await fresh.keyring.signer()).keyId, to.keyId);
    const report = await fresh.audit.verify();
    assert.equal(report.ok, false);
    assert.match(report.problem?.problem ?? "", new RegExp(`signed with signing key ${leaked.keyId}, which was retired before key ${to.keyId}`));
  });

  it("attack: a node that has not seen the rotation, appending only inside containment transactions and then taking its stop checkpoint, never signs with the retired key, and the log verifies", async () => {
    const db = await fx.fresh();
    const a = await installSigning(db);
    // Node B (a containment worker), its key table read before the rotation; its clock does not move, so it stays
    // inside its freshness window and holds the old key as current throughout.
    const b = await signingNode(db, a.masterKey, new ManualClock(a.clock.now()));
    await db.transaction((trx) => b.audit.appendIn(trx, { type: "contain.batch", data: { n: 0 } }));
    const old = (await b.keyring.signer()).keyId;
    const { to } = await rotateSigningKey({ database: db, keyring: a.keyring, audit: a.audit }, "cli:ana");
    assert.ok(to);
    assert.equal((await b.keyring.signer()).keyId, old, "B has not noticed yet");
    for (let i = 1; i <= EVERY + 3; i++) await db.transaction((trx) => b.audit.appendIn(trx, { type: "contain.batch", data: { n: i } }));
    await b.audit.append({ type: "contain.done" });
    const cp = await b.audit.checkpoint(); // the server's stop checkpoint
    assert.equal(cp?.keyId, to.keyId);
    const keys = await checkpointKeys(db);
    const rotation = keys.find((k) => k.key === to.keyId)?.seq ?? Infinity;
    assert.deepEqual(keys.filter((k) => k.seq > rotation && k.key !== to.keyId), [], "nothing after the rotation is signed by the old key");
    const report = await a.audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
  });

  it("attack: two rotations started at once from two nodes leave one current key that signed the newest checkpoint, and an intact log", async (t) => {
    const db = await fx.fresh();
    if (db.dialect !== "postgres") return t.skip("concurrent transactions need separate connections (PostgreSQL)");
    const a = await installSigning(db);
    await appendEvents(a.audit, 12);
    const b = await signingNode(db, a.masterKey, new ManualClock(a.clock.now()));
    const c = await signingNode(db, a.masterKey, new ManualClock(a.clock.now()));
    const results = await Promise.allSettled([
      rotateSigningKey({ database: db, keyring: b.keyring, audit: b.audit }, "cli:bob"),
      rotateSigningKey({ database: db, keyring: c.keyring, audit: c.audit }, "cli:carol"),
    ]);
    const done = results.filter((r) => r.status === "fulfilled");
    assert.ok(done.length >= 1, `no rotation succeeded: ${results.map((r) => (r.status === "rejected" ? String(r.reason) : "ok")).join("; ")}`);
    for (const r of results) if (r.status === "rejected") assert.match(String((r.reason as Error).message), /BULWARK_ERR|signing key/);
    const current = (await a.keyring.signer({ reload: true })).keyId;
    assert.equal((await checkpointKeys(db)).at(-1)?.key, current, "the newest checkpoint is the current key's");
    assert.equal((await db.db.selectFrom("keyring_keys").select("id").where("purpose", "=", "signing").where("status", "=", "current").execute()).length, 1);
    await appendEvents(a.audit, 15);
    const report = await a.audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
  });

  it("attack: on a fresh install with no checkpoint yet, rotating twice in a row and then repair-head leaves a log that verifies", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock } = await installSigning(db, { genesis: false });
    await appendEvents(audit, 3);
    assert.deepEqual(await checkpointKeys(db), [], "no checkpoint yet");
    const first = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    const second = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana"); // the same clock reading: keys a millisecond apart
    assert.equal(second.from.keyId, first.to?.keyId);
    assert.equal(second.from.checkpoints, 1);
    assert.equal((await audit.verify()).ok, true);
    // A head left one event behind (a restore from a copy taken mid-write): repair-head verifies and moves it.
    const rows = await db.db.selectFrom("audit_events").select(["seq", "hash"]).orderBy("seq", "desc").limit(2).execute();
    await db.db.updateTable("audit_head").set({ seq: Number(rows[1]!.seq), hash: rows[1]!.hash }).where("id", "=", 1).execute();
    clock.advance(5_000);
    const repaired = await audit.repairHead("cli:ana");
    assert.equal(repaired.to.seq, Number(rows[0]!.seq));
    await appendEvents(audit, EVERY + 1);
    assert.equal((await checkpointKeys(db)).at(-1)?.key, second.to?.keyId);
    const report = await audit.verify();
    assert.equal(report.ok, true, report.problem?.problem);
  });
});

describe("signing-key rotation and file baselines, red team", () => {
  const root = tempDir("bulwark-skrt-");
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;

  /** A store whose key was rotated after it leaked, with a tree whose tool was trojaned since the last honest baseline. */
  async function rotatedAfterLeak() {
    const dir = join(root, `case-${++n}`);
    const tree = join(dir, "tree");
    mkdirSync(join(tree, "bin"), { recursive: true });
    writeFileSync(join(tree, "bin/tool"), "original\n", { mode: 0o755 });
    const db = openSQLite(join(dir, "db.sqlite"), { create: true });
    const { keyring, audit, clock } = await installSigning(db);
    await appendEvents(audit, 3);
    const leaked = await keyring.signer();
    const honest = join(dir, "honest.jsonl");
    await createBaseline({ paths: [tree], out: honest, signer: leaked, clock });
    const rotatedAt = clock.now() + HOUR;
    clock.set(rotatedAt);
    const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ana");
    assert.ok(to);
    writeFileSync(join(tree, "bin/tool"), "trojan\n", { mode: 0o755 });
    return { dir, tree, db, keyring, clock, leaked, honest, rotatedAt, newKey: to.keyId };
  }

  it("attack: after the rotation, a file baseline the leaked key signs, dated after the rotation, is not trusted (ASVS 11.4.3, 11.2.2) (was: trusted, hiding a trojaned binary)", async () => {
    const { dir, tree, db, keyring, clock, leaked, honest, newKey } = await rotatedAfterLeak();
    try {
      // Sanity: against the honest baseline, the trojan shows.
      const signer = await keyring.signer();
      assert.equal(signer.keyId, newKey);
      assert.ok((await compareBaseline({ baseline: honest, signer })).totals.changed > 0);
      clock.advance(DAY);
      const forged = join(dir, "forged-later.jsonl");
      await createBaseline({ paths: [tree], out: forged, signer: leaked, clock });
      const r = await compareBaseline({ baseline: forged, signer });
      const flagged = !r.integrity.trusted || r.findings.some((f) => /retired|rotat/i.test(`${f.id} ${f.title} ${f.detail}`));
      assert.ok(flagged, `a baseline signed ${r.header.createdAt} with ${leaked.keyId}, retired before, is trusted (${r.totals.changed} changes shown)`);
    } finally {
      await db.close();
    }
  });

  it("attack: after the rotation, a file baseline the leaked key signs and backdates before the rotation is not trusted either: no baseline signed by a retired key is (ASVS 11.4.3, 11.2.2) (was: trusted just the same)", async () => {
    const { dir, tree, db, keyring, clock, leaked, rotatedAt } = await rotatedAfterLeak();
    try {
      const signer = await keyring.signer();
      const forged = join(dir, "forged-backdated.jsonl");
      await createBaseline({ paths: [tree], out: forged, signer: leaked, clock: new ManualClock(rotatedAt - DAY) });
      clock.advance(DAY);
      const r = await compareBaseline({ baseline: forged, signer });
      assert.equal(r.totals.changed, 0, "the forged baseline records the trojan as the expected state");
      const flagged = !r.integrity.trusted || r.findings.some((f) => /retired|rotat/i.test(`${f.id} ${f.title} ${f.detail}`));
      assert.ok(flagged, `a baseline signed by the retired (leaked) key ${leaked.keyId} is trusted without a word`);
    } finally {
      await db.close();
    }
  });
});
