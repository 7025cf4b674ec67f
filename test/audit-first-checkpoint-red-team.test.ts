// Red-team round on c650263 (init signs the first checkpoint; every maintenance pass signs the head; a log with events
// and no checkpoint passes verify only while its current signing key is at most an hour old; routine signing refuses
// such a log; `audit checkpoint --first` signs it on the operator's word).
// Attacker: an intruder who can write every table of the database (SQLite file or PostgreSQL) but holds neither the
// master key nor any signing key. They want to rewrite or delete audit events without verify (with the keyring)
// noticing, or to get a routine signature (maintenance, rotation, init) to vouch for a rewrite. The "young log" rule is
// attacked through the age it is judged by (the current key's), through the paths that skip it (rotation, init, v1
// keys), through the process's own memory of what it signed, and with planted checkpoint and key rows. Also pinned: a
// maintenance checkpoint racing appends on both dialects. ASVS 16.4.2 (logs protected from modification), 16.4.3.
// Five findings were fixed the same day (the rule judged by the store's oldest key, v1 keys counted old, rotations held
// to it, a process refusing to sign once a checkpoint it knew is gone); their tests say "(was: …)".
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { OpenedApp } from "../src/app/index.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { rotateSigningKey } from "../src/audit/rotate-signing-key.ts";
import { seal } from "../src/crypto/aead.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { base32 } from "../src/crypto/tokens.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { toBase64URL, utf8 } from "../src/lib/encoding.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { createKeyStore, keyStoreIn } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { initStore, rewriteFrom, rewriteWhole } from "./helpers/audit-tamper.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The stores' time: a month before the CLI's real clock, so that the CLI sees keys over an hour old. */
const PAST = Date.now() - 30 * DAY;
let root: string;
let n = 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-first-cp-red-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A store made by init at the clock's time in a fresh directory (initStore). */
function store(clock: ManualClock): ReturnType<typeof initStore> {
  return initStore(join(root, `d${++n}`), clock);
}

async function appendSome(app: { audit: AuditLog }, count: number, tag = "honest"): Promise<void> {
  for (let i = 0; i < count; i++) await app.audit.append({ type: "auth.login.succeeded", actor: `usr_${i}`, subject: `usr_${i}`, data: { tag, i } });
}



/** Runs one maintenance pass of a server over `app`; returns what the audit checkpoint step reported (-1: failed). */
async function maintenancePass(app: OpenedApp): Promise<number | undefined> {
  const maintenance = startMaintenance(app, { firstPassDelayMs: HOUR });
  try {
    return (await maintenance.runOnce())["auditCheckpoint"];
  } finally {
    await maintenance.stop();
  }
}

async function headSeq(db: Database): Promise<number> {
  return Number((await db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow()).seq);
}

describe("first checkpoint, red team: the age the young-log rule goes by", () => {
  it("attack: within an hour of a signing-key rotation, a log rewritten whole with every checkpoint deleted fails verify and no maintenance pass signs it: the young-log rule goes by the store's oldest key, not the new signing key (ASVS 16.4.2) (was: it passed and was signed)", async () => {
    const clock = new ManualClock(PAST);
    const { app } = await store(clock);
    try {
      await appendSome(app, 20);
      clock.advance(2 * DAY);
      // The operator rotates the signing key (a suspected leak: exactly when an intruder is about).
      await rotateSigningKey({ database: app.db, keyring: app.keyring, audit: app.audit }, "cli:ops");
      assert.equal((await app.audit.verify()).ok, true, "intact after the rotation");
      clock.advance(10 * MINUTE);
      // The intruder rewrites the two-day-old log whole and deletes every checkpoint (init's, the rotation's).
      await rewriteWhole(app.db);
      const report = await app.audit.verify();
      const step = await maintenancePass(app);
      const signed = (await app.audit.checkpoints()).length;
      // A store that holds a retired signing key was rotated, and a rotation signs a checkpoint at once: it is not young.
      assert.deepEqual(
        { verifyOk: report.ok, maintenanceStep: step, checkpointsSignedOverTheRewrite: signed },
        { verifyOk: false, maintenanceStep: -1, checkpointsSignedOverTheRewrite: 0 },
        `verify said: ${report.problem?.problem ?? "intact"}`,
      );
    } finally {
      await app.close();
    }
  });

  it("attack: an intruder deletes the signing-key rows (and the checkpoints) of a month-old store; `bulwark init` makes a new signing key, but the store's data key keeps it old: init's checkpoint refuses and verify fails (ASVS 16.4.2) (was: init signed the rewritten log with the new key)", async () => {
    const clock = new ManualClock(PAST);
    const { app, env } = await store(clock);
    await appendSome(app, 10);
    await rewriteWhole(app.db);
    // The data key stays (encrypted data keeps decrypting); only the signing keys go.
    await app.db.db.deleteFrom("keyring_keys").where("purpose", "=", "signing").execute();
    await app.close();
    const before = await bulwarkInProcess(["audit", "verify"], env);
    assert.notEqual(before.code, 0, "no signing key: verify cannot pass");
    // The operator, told there is no current signing key, runs the idempotent init that "creates whatever key is missing".
    const init = await bulwarkInProcess(["init"], env);
    const after = await bulwarkInProcess(["audit", "verify", "--json"], env);
    // Secure: init refuses to make a signing key for a store whose log already holds events (its keys were deleted), or
    // at least the new key's youth does not make a month-old log young; either way verify keeps failing.
    assert.notEqual(after.code, 0, `init exited ${init.code}; verify after it: ${after.stdout}${after.stderr}`);
  });

  it("attack: on a store whose signing key predates bound creation times (a v1 wrap), a log rewritten whole with its checkpoints deleted fails verify and a routine checkpoint refuses (ASVS 16.4.2) (was: the rule never applied to v1 keys)", async () => {
    const dir = mkdtempSync(join(root, "v1-"));
    const db = openSQLite(join(dir, "bulwark.db"), { create: true });
    try {
      const clock = new ManualClock(PAST);
      assert.equal((await migrate(db, clock)).error, undefined);
      const masterKey = systemRandom.bytes(32);
      // As an older release stored its signing key: a wrap that binds id and purpose only.
      const id = `sk_${base32(systemRandom.bytes(10))}`;
      const { privateKey, publicKey } = generateKeyPairSync("ed25519");
      const der = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }));
      const wrapped = toBase64URL(seal(masterKey, der, utf8(`bulwark-keyring-v1|${id}|signing`), systemRandom));
      const spki = toBase64URL(new Uint8Array(publicKey.export({ format: "der", type: "spki" })));
      const keyring = await Keyring.open({ masterKey, store: createKeyStore(db), clock, random: systemRandom });
      await db.db.insertInto("keyring_keys").values({ id, purpose: "signing", status: "current", created_at: clock.now() - 200 * DAY, wrapped, public_key: spki }).execute();
      await keyring.ensureKeys(); // reads the table (the v1 signing key), and adds a data key
      const audit = new AuditLog({
        database: db, clock, random: systemRandom,
        signer: (executor, options) => keyring.signer({ ...options, ...(executor ? { store: keyStoreIn(executor, db.dialect, "test") } : {}) }),
      });
      assert.equal((await keyring.signer()).keyId, id, "the v1 key is current");
      await appendSome({ audit }, 30);
      // The old release's server stop signed the head (it knew no first-checkpoint rule; today's needs --first for it).
      assert.ok(await audit.checkpoint({ first: true }), "the old release's server stop signed the head");
      clock.advance(30 * DAY);
      assert.equal((await audit.verify()).ok, true);
      await rewriteWhole(db);
      const report = await audit.verify();
      let routine: string;
      try {
        routine = (await audit.checkpoint()) ? "signed" : "nothing";
      } catch (error) {
        routine = `refused: ${(error as Error).message.slice(0, 60)}`;
      }
      assert.deepEqual(
        { verifyOk: report.ok, routineCheckpoint: routine.startsWith("refused") ? "refused" : routine },
        { verifyOk: false, routineCheckpoint: "refused" },
        `verify said: ${report.problem?.problem ?? "intact"}`,
      );
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("first checkpoint, red team: signatures that vouch for a rewrite", () => {
  it("attack: `audit rotate-signing-key` on a log verify reports as rewritten whole (no checkpoint, keys a month old) refuses to sign it with the new key (ASVS 16.4.2) (was: the rotation vouched for the rewrite)", async () => {
    const clock = new ManualClock(PAST);
    const { app } = await store(clock);
    try {
      await appendSome(app, 10);
      clock.advance(2 * HOUR);
      await rewriteWhole(app.db);
      const found = await app.audit.verify();
      assert.equal(found.ok, false);
      assert.match(found.problem?.problem ?? "", /holds events but no checkpoint/);
      // The operator reads "checkpoints deleted" and does what a suspected compromise calls for: rotates the signing key.
      let rotation = "rotated";
      try {
        await rotateSigningKey({ database: app.db, keyring: app.keyring, audit: app.audit }, "cli:ops");
      } catch (error) {
        rotation = `refused: ${(error as Error).message.slice(0, 80)}`;
      }
      const report = await app.audit.verify();
      // Secure: the rotation refuses to vouch (or the log still fails verify): only `--first`, on the operator's word
      // after comparing with an export, may sign a log with no checkpoint whose store is over an hour old.
      assert.equal(report.ok, false, `rotation: ${rotation}; verify after it: intact, ${report.checkpointsChecked} checkpoint(s), uncovered ${report.uncovered}`);
    } finally {
      await app.close();
    }
  });

  it("attack: the intruder deletes the checkpoint a server's maintenance pass signed and rewrites the events it covered; the same server's next pass refuses, as a checkpoint it stored is gone (ASVS 16.4.2) (was: it signed the rewrite)", async () => {
    const clock = new ManualClock(PAST);
    const { app } = await store(clock);
    try {
      await appendSome(app, 5);
      clock.advance(15 * MINUTE);
      const maintenance = startMaintenance(app, { firstPassDelayMs: HOUR });
      try {
        assert.equal((await maintenance.runOnce())["auditCheckpoint"], 0);
        const signedAt = await headSeq(app.db);
        const checkpoints = await app.audit.checkpoints();
        assert.equal(checkpoints.at(-1)?.seq, signedAt, "the pass signed the head");
        const initCheckpoint = checkpoints[0]!.seq;
        assert.ok(initCheckpoint < signedAt);
        // The intruder: delete the pass's checkpoint, rewrite every event after init's checkpoint (fewer than the
        // schedule's 1,500, so the database alone shows nothing, as docs/audit-log.md says).
        await app.db.db.deleteFrom("audit_checkpoints").where("seq", ">", initCheckpoint).execute();
        await rewriteFrom(app.db, initCheckpoint + 1);
        clock.advance(15 * MINUTE);
        // The next pass of the same server, which committed a checkpoint at #signedAt itself and finds it gone.
        const step = (await maintenance.runOnce())["auditCheckpoint"];
        const vouched = (await app.audit.checkpoints()).filter((c) => c.seq >= signedAt);
        assert.deepEqual(
          { maintenanceStep: step, checkpointsOverTheRewrite: vouched.length },
          { maintenanceStep: -1, checkpointsOverTheRewrite: 0 },
          "a server that signed #" + signedAt + " signed a rewritten #" + signedAt + " after its checkpoint was deleted",
        );
      } finally {
        await maintenance.stop();
      }
    } finally {
      await app.close();
    }
  });

  it("attack: planted checkpoint rows, so that 'no checkpoint' is never asked, are refused: verify names the signature and no routine checkpoint (maintenance, stop) signs over them", async () => {
    const clock = new ManualClock(PAST);
    const { app } = await store(clock);
    try {
      await appendSome(app, 6);
      clock.advance(2 * HOUR);
      await rewriteWhole(app.db);
      const current = (await app.keyring.signer()).keyId;
      const row = await app.db.db.selectFrom("audit_events").select("hash").where("seq", "=", 1).executeTakeFirstOrThrow();
      // A row at #1 matching the rewritten hash, under the current key's id and under a made-up key's, with any signature.
      for (const keyId of [current, "sk_invented00000000"]) {
        await app.db.db.deleteFrom("audit_checkpoints").execute();
        await app.db.db.insertInto("audit_checkpoints").values({ seq: 1, hash: row.hash, at: clock.now(), key_id: keyId, signature: toBase64URL(systemRandom.bytes(64)) }).execute();
        const report = await app.audit.verify();
        assert.equal(report.ok, false, keyId);
        assert.match(report.problem?.problem ?? "", /invalid signature/);
        assert.equal(await maintenancePass(app), -1, `the maintenance step refused (${keyId})`);
        await assert.rejects(app.audit.checkpoint());
        assert.equal((await app.audit.checkpoints()).length, 1, "nothing signed over the planted row");
      }
    } finally {
      await app.close();
    }
  });

  it("attack: the key table cannot make a month-old log young: a signing key's created_at moved to now, or its row copied under a new id dated now, does not let the rewritten log verify", async () => {
    const clock = new ManualClock(PAST);
    const { app, env } = await store(clock);
    await appendSome(app, 6);
    await rewriteWhole(app.db);
    const key = await app.db.db.selectFrom("keyring_keys").selectAll().where("purpose", "=", "signing").executeTakeFirstOrThrow();
    await app.close();
    const verifyWith = async (tamper: (db: Database) => Promise<void>): Promise<{ code: number; out: string }> => {
      const db = openSQLite(join(env.BULWARK_DATA_DIR as string, "bulwark.db"), { create: false });
      try {
        await tamper(db);
      } finally {
        await db.close();
      }
      const r = await bulwarkInProcess(["audit", "verify"], env);
      return { code: r.code, out: r.stdout + r.stderr };
    };
    const moved = await verifyWith((db) => db.db.updateTable("keyring_keys").set({ created_at: Date.now() }).where("id", "=", key.id).execute().then(() => {}));
    assert.notEqual(moved.code, 0, moved.out);
    assert.doesNotMatch(moved.out, /intact/);
    const copied = await verifyWith(async (db) => {
      await db.db.updateTable("keyring_keys").set({ created_at: key.created_at }).where("id", "=", key.id).execute();
      await db.db.updateTable("keyring_keys").set({ status: "retired" }).where("id", "=", key.id).execute();
      await db.db.insertInto("keyring_keys").values({ ...key, id: `sk_${base32(systemRandom.bytes(10))}`, status: "current", created_at: Date.now() }).execute();
    });
    assert.notEqual(copied.code, 0, copied.out);
    assert.doesNotMatch(copied.out, /intact/);
  });
});

forEachDialect("first checkpoint, red team: the maintenance checkpoint racing appends", (fx) => {
  it("attack: checkpoints signed on demand by two nodes while both append (scheduled checkpoints due on the way) are never refused and leave a log that verifies, every checkpoint on its own event", async () => {
    const db = await fx.fresh();
    const clock = new ManualClock();
    assert.equal((await migrate(db, clock)).error, undefined);
    const masterKey = systemRandom.bytes(32);
    const node = async (): Promise<AuditLog> => {
      const keyring = await Keyring.open({ masterKey, store: createKeyStore(db), clock, random: systemRandom });
      await keyring.ensureKeys();
      return new AuditLog({
        database: db, clock, random: systemRandom, checkpointEvery: 7,
        signer: (executor, options) => keyring.signer({ ...options, ...(executor ? { store: keyStoreIn(executor, db.dialect, "test") } : {}) }),
      });
    };
    const a = await node();
    const b = await node();
    await a.append({ type: "bulwark.init", actor: "test" });
    assert.ok(await a.checkpoint());
    const work = (audit: AuditLog, tag: string): Promise<unknown> =>
      Promise.all([
        (async () => {
          for (let i = 0; i < 40; i++) await audit.append({ type: "t", actor: tag, data: { i } });
        })(),
        (async () => {
          for (let i = 0; i < 8; i++) {
            await audit.checkpoint();
            await new Promise((r) => setImmediate(r));
          }
        })(),
        // Appends inside callers' transactions too (their scheduled checkpoints are taken there).
        (async () => {
          for (let i = 0; i < 10; i++) await db.transaction((trx) => audit.appendIn(trx, { type: "tx", actor: tag, data: { i } }));
        })(),
      ]);
    const results = await Promise.allSettled([work(a, "a"), work(b, "b")]);
    for (const r of results) assert.equal(r.status, "fulfilled", r.status === "rejected" ? String(r.reason) : "");
    const report = await a.verify();
    assert.equal(report.ok, true, report.problem?.problem);
    assert.equal(report.lastSeq, 1 + 2 * 50);
    assert.ok(report.checkpointsChecked >= 10, `checkpoints verified: ${report.checkpointsChecked}`);
    assert.equal(report.checkpointsChecked, (await a.checkpoints()).length, "every stored checkpoint verified");
  });
});
