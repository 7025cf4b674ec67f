// `bulwark keys rotate-master`: after an intruder copied master.key (SourceLair 2014, seed 001), the store moves to a new
// master key, every stored key wrapped again in one transaction, and the copied key opens nothing written afterwards
// (with `contain rotate-keys`, nothing at all). Attacks that must fail, and the rotation's own promises: identifier tags
// unchanged, a crash between the commit and the key file's rename recovered, a wrong pending file refused, the
// environment key printed once, a dry run that writes nothing, the audit event. Store-level cases run on both dialects.
// ASVS 11.1.1 (key management), 13.3.4 (secrets can be rotated).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import { totpCipherContext } from "../src/accounts/mfa/totp.ts";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { Keyring, masterKeyCheck, masterKeyId, type KeyStore } from "../src/crypto/keyring.ts";
import { findRotatedMasterKey, parseMasterKey, pendingMasterKeyPath, writePendingMasterKey } from "../src/crypto/master-key.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { toBase64 } from "../src/lib/encoding.ts";
import { systemRandom } from "../src/lib/random.ts";
import { createKeyStore, rotateMasterKey } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { authFixture, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { bulwark, bulwarkHere } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { testMasterKey } from "./helpers/master-key.ts";

const CTX = { table: "mfa_totp", column: "secret_ct", row: "u1" };

/** A key store that reports `check` as the recorded master key check: the intruder editing bulwark_meta back. */
function withForgedCheck(store: KeyStore, check: string): KeyStore {
  return { ...store, getMeta: async (name) => (name === "keyring.master_check" ? check : store.getMeta(name)) };
}

forEachDialect("master key rotation", (fx) => {
  async function freshRing(masterKey = systemRandom.bytes(32)) {
    const db = await fx.fresh();
    await migrate(db, new ManualClock());
    const store = createKeyStore(db);
    const ring = await Keyring.open({ masterKey, store, clock: new ManualClock(Date.now()), random: systemRandom });
    await ring.ensureKeys();
    return { db, store, ring, masterKey };
  }

  it("attack: the old master key unwraps no stored key after the rotation, even with the recorded check edited back to its own", async () => {
    const { db, store, ring, masterKey: stolen } = await freshRing();
    const before = await ring.seal("JBSWY3DPEHPK3PXP", CTX);
    await ring.rotateDataKey(); // a retired key too: every key is wrapped again, not only the current ones
    const rotation = await rotateMasterKey(db, ring, systemRandom.bytes(32));
    assert.deepEqual([rotation.rewrapped["data"], rotation.rewrapped["signing"], rotation.tagKeyStored], [2, 1, true]);
    const open = (s: KeyStore) => Keyring.open({ masterKey: stolen, store: s, clock: new ManualClock(), random: systemRandom });
    await assert.rejects(open(store), (e: { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_MISMATCH");
    await assert.rejects(open(withForgedCheck(store, masterKeyCheck(stolen))), (e: { code?: string }) => e.code === "BULWARK_ERR_DECRYPT");
    // The keyring that rotated goes on: same data keys, so what it sealed before still opens, and new seals too.
    assert.equal(await ring.unsealString(before, CTX), "JBSWY3DPEHPK3PXP");
    assert.equal(await ring.unsealString(await ring.seal("after", CTX), CTX), "after");
  });

  it("keeps identifier tags: a tag made before the first rotation is the same after it, after a reopen with the new key and after a second rotation", async () => {
    const { db, store, ring } = await freshRing();
    const tag = ring.identifierTag("ana@example.org");
    const first = systemRandom.bytes(32);
    await rotateMasterKey(db, ring, first);
    assert.equal(ring.identifierTag("ana@example.org"), tag, "in the process that rotated");
    const reopened = await Keyring.open({ masterKey: first, store, clock: new ManualClock(Date.now()), random: systemRandom });
    assert.equal(reopened.identifierTag("ana@example.org"), tag, "reopened with the new master key");
    const second = systemRandom.bytes(32);
    const again = await rotateMasterKey(db, reopened, second);
    assert.equal(again.tagKeyStored, false, "the tag key is stored once, then wrapped again like any key");
    const third = await Keyring.open({ masterKey: second, store, clock: new ManualClock(Date.now()), random: systemRandom });
    assert.equal(third.identifierTag("ana@example.org"), tag, "after a second rotation");
    const tagRows = (await store.listKeys()).filter((k) => k.purpose === "identifier-tag");
    assert.equal(tagRows.length, 1);
  });

  it("a dry run checks every key and writes nothing", async () => {
    const { db, store, ring, masterKey } = await freshRing();
    const rows = await store.listKeys();
    const r = await rotateMasterKey(db, ring, systemRandom.bytes(32), { dryRun: true });
    assert.deepEqual([r.dryRun, r.rewrapped["data"], r.rewrapped["signing"], r.tagKeyStored], [true, 1, 1, true]);
    assert.deepEqual(await store.listKeys(), rows);
    assert.equal(await store.getMeta("keyring.master_check"), masterKeyCheck(masterKey));
    assert.equal(ring.masterKeyId, masterKeyId(masterKey));
  });

  it("attack: a process holding the old master key (from the environment) fails clearly on a key made after the rotation, and cannot add a key only the old master unwraps; what it sealed before stays readable", async () => {
    const { db, store, ring, masterKey } = await freshRing();
    const old = await Keyring.open({ masterKey, store, clock: new ManualClock(Date.now()), random: systemRandom });
    const sealedByOld = await old.seal("sealed by a server opened before", CTX);
    const newMaster = systemRandom.bytes(32);
    await rotateMasterKey(db, ring, newMaster);
    // The old process's seals use data keys the rotation wrapped again, unchanged: readable under the new master.
    const fresh = await Keyring.open({ masterKey: newMaster, store, clock: new ManualClock(Date.now()), random: systemRandom });
    assert.equal(await fresh.unsealString(sealedByOld, CTX), "sealed by a server opened before");
    // It cannot make a key wrapped under the old master: refused before it wraps (and by the store, had it raced).
    await assert.rejects(old.rotateDataKey(), (e: { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_ROTATED");
    const sealedAfter = await fresh.seal("x", CTX, { keyId: await fresh.rotateDataKey() });
    await assert.rejects(old.unseal(sealedAfter, CTX), (e: { code?: string; message?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_ROTATED" && /restart/.test(e.message ?? ""));
  });

  it("attack: a rotation by another process is followed at the next read of the key table, not only when a key made since fails to unwrap — the device key with it, so a known-device tag the copied master computes is no longer one the process takes (ASVS 13.3.4) (was: a running server kept the old master's device key until a new key appeared)", async () => {
    const { db, store, ring, masterKey } = await freshRing();
    const newMaster = systemRandom.bytes(32);
    const reads = new ManualClock(Date.now());
    const running = await Keyring.open({ masterKey, store, clock: reads, random: systemRandom, findMasterKey: (check) => (check === masterKeyCheck(newMaster) ? newMaster : null) });
    const text = "known-device:devA:usr_x:0";
    const copiedTag = running.deviceTag(text);
    await rotateMasterKey(db, ring, newMaster);
    reads.advance(2_000);
    await running.fresh();
    const opened = await Keyring.open({ masterKey: newMaster, store, clock: new ManualClock(Date.now()), random: systemRandom });
    assert.equal(running.masterKeyId, masterKeyId(newMaster), "the running process follows the rotation the store records");
    assert.notEqual(running.deviceTag(text), copiedTag, "a tag under the copied master's device key still matched");
    assert.equal(running.deviceTag(text), opened.deviceTag(text), "every process on the new master agrees on the device key");
  });

  it("attack: a process given the old master key in the environment, after a rotation it cannot follow, knows no browser: its device tags match neither the old master's nor the new one's, while what it holds keeps working until a key made since (ASVS 13.3.4)", async () => {
    const { db, store, ring, masterKey } = await freshRing();
    const reads = new ManualClock(Date.now());
    const running = await Keyring.open({ masterKey, store, clock: reads, random: systemRandom });
    const text = "known-device:devA:usr_x:0";
    const copiedTag = running.deviceTag(text);
    const newMaster = systemRandom.bytes(32);
    await rotateMasterKey(db, ring, newMaster);
    reads.advance(2_000);
    await running.fresh();
    const opened = await Keyring.open({ masterKey: newMaster, store, clock: new ManualClock(Date.now()), random: systemRandom });
    assert.notEqual(running.deviceTag(text), copiedTag);
    assert.notEqual(running.deviceTag(text), opened.deviceTag(text));
    const tag = running.deviceTag(text);
    reads.advance(2_000);
    await running.fresh();
    assert.equal(running.deviceTag(text), tag, "one random device key, not a new one at every read (cookies it set meanwhile stay its own)");
    assert.equal(await opened.unsealString(await running.seal("still sealing", CTX), CTX), "still sealing");
  });

  it("attack: a rotation committing between a running process's read of the key list and its read of the master check: the read follows it and the key made just before opens (was: a DECRYPT error on that read)", async () => {
    const { db, store, ring, masterKey } = await freshRing();
    const newMaster = systemRandom.bytes(32);
    let between: (() => Promise<unknown>) | null = null;
    const racing: KeyStore = {
      ...store,
      listKeys: async () => {
        const listed = await store.listKeys();
        const step = between;
        between = null;
        if (step !== null) await step();
        return listed;
      },
    };
    const reads = new ManualClock(Date.now());
    const running = await Keyring.open({ masterKey, store: racing, clock: reads, random: systemRandom, findMasterKey: (check) => (check === masterKeyCheck(newMaster) ? newMaster : null) });
    await ring.rotateDataKey(); // a key the running process has not read yet, wrapped under the master before the rotation
    const sealed = await ring.seal("made just before", CTX);
    between = () => rotateMasterKey(db, ring, newMaster);
    reads.advance(2_000);
    await running.fresh();
    assert.equal(between, null, "the rotation ran between the two reads");
    assert.equal(running.masterKeyId, masterKeyId(newMaster));
    assert.equal(await running.unsealString(sealed, CTX), "made just before");
  });

  it("attack: the store refuses a key wrapped under a master key other than the recorded one (a rotation committing while it was made)", async () => {
    const { store } = await freshRing();
    const key = { id: "dk_aaaaaaaaaaaaaaaa", purpose: "data" as const, status: "current" as const, createdAt: Date.now() + 10, wrapped: "w", publicKey: null, wrappedBy: "0".repeat(64) };
    await assert.rejects(store.addCurrentKey(key), (e: { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_ROTATED");
    assert.equal((await store.listKeys()).some((k) => k.id === key.id), false);
  });

});

describe("keys rotate-master from the CLI", () => {
  const roots: string[] = [];
  const apps: OpenedApp[] = [];
  const fixtures: AuthFixture[] = [];
  after(async () => {
    for (const app of apps) await app.close().catch(() => {});
    for (const f of fixtures) await f.close();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  function dataDir(): string {
    const root = mkdtempSync(join(tmpdir(), "bulwark-rotate-master-"));
    roots.push(root);
    return join(root, "data");
  }
  const env = (dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: dir, BULWARK_LOG_LEVEL: "silent", ...extra });
  async function open(dir: string, extra: NodeJS.ProcessEnv = {}, logs?: string[]): Promise<OpenedApp> {
    const sink = new Writable({ write: (chunk, _enc, done) => (logs?.push(String(chunk)), done()) });
    const app = await openApp({ env: env(dir, { BULWARK_LOG_LEVEL: "warn", ...extra }), mode: "open", logDestination: sink as never });
    apps.push(app);
    return app;
  }

  it("attack: SourceLair replayed — with rotate-master then rotate-keys the master key copied with root opens nothing, a second factor enrolled after the response included; the running server follows the new key file", async () => {
    const fx = await authFixture({ BULWARK_REQUIRE_MFA: "none" });
    fixtures.push(fx);
    const flows = authFlows(() => fx);
    const operator = { BULWARK_DATA_DIR: fx.app.config.dataDir, BULWARK_PUBLIC_URL: ORIGIN, BULWARK_LOG_LEVEL: "silent" };
    const stolen = parseMasterKey(readFileSync(join(fx.app.config.dataDir, "master.key"), "utf8").trim(), "the copied master.key");
    const master = await bulwark(["keys", "rotate-master", "--yes"], { env: operator });
    assert.equal(master.code, 0, master.stderr);
    assert.match(master.stdout, /contain rotate-keys/, "it says what to run next");
    const keys = await bulwark(["contain", "rotate-keys", "--all", "--yes", "--incident", "sourcelair-2014"], { env: operator });
    assert.equal(keys.code, 0, keys.stderr);

    fx.clock.set(Date.now() + 2000); // past KEY_FRESHNESS_MS: the server reads the key table, meets the new data key
    const user = await flows.withTOTP("after.rebuild@example.org");
    const row = await fx.app.db.db.selectFrom("mfa_totp").select("secret_ct").where("user_id", "=", user.id).executeTakeFirstOrThrow();
    const store = createKeyStore(fx.app.db);
    const current = (await store.listKeys()).find((k) => k.purpose === "data" && k.status === "current")?.id;
    assert.equal(Keyring.keyIdOf(row.secret_ct as string), current, "the server sealed under the data key made after the rotation");
    for (const s of [store, withForgedCheck(store, masterKeyCheck(stolen))]) {
      await assert.rejects(
        (async () => (await Keyring.open({ masterKey: stolen, store: s, clock: fx.clock, random: systemRandom })).unseal(row.secret_ct as string, totpCipherContext(user.id)))(),
        (e: { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_MISMATCH" || e.code === "BULWARK_ERR_DECRYPT",
      );
    }
  });

  it("recovers a crash between the commit and the rename: the next open takes the pending key file, moves it into place and says so", async () => {
    const dir = dataDir();
    assert.equal((await bulwarkHere(["init"], { env: env(dir) })).code, 0);
    const app = await open(dir);
    const tag = app.keyring.identifierTag("ana@example.org");
    const keyFile = join(dir, "master.key");
    const oldFile = readFileSync(keyFile, "utf8");
    const newMaster = parseMasterKey(testMasterKey("crash"), "test");
    // The command's steps, stopped where a crash would stop them: pending file written, transaction committed, no rename.
    writePendingMasterKey(keyFile, newMaster);
    await rotateMasterKey(app.db, app.keyring, newMaster);
    await app.close();
    assert.equal(readFileSync(keyFile, "utf8"), oldFile, "the key file still holds the old key");

    const logs: string[] = [];
    const reopened = await open(dir, {}, logs);
    assert.equal(reopened.keyring.masterKeyId, masterKeyId(newMaster));
    assert.equal(reopened.keyring.identifierTag("ana@example.org"), tag);
    assert.equal(readFileSync(keyFile, "utf8").trim(), toBase64(newMaster), "the pending file was moved into place");
    assert.equal(existsSync(pendingMasterKeyPath(keyFile)), false);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(logs.join(""), /had committed but its key file was not moved into place/);
  });

  it("attack: a pending key file whose key is not the recorded one is never taken, at open or by a rotation", async () => {
    const dir = dataDir();
    assert.equal((await bulwarkHere(["init"], { env: env(dir) })).code, 0);
    const keyFile = join(dir, "master.key");
    const app = await open(dir);
    const recorded = masterKeyCheck(parseMasterKey(readFileSync(keyFile, "utf8").trim(), "test"));
    // Planted (or left by a rotation that never committed): a key the store does not record.
    writeFileSync(pendingMasterKeyPath(keyFile), `${testMasterKey("planted")}\n`, { mode: 0o600 });
    const logs: string[] = [];
    assert.equal(findRotatedMasterKey(keyFile, "f".repeat(64), { log: (m) => logs.push(m) }), null, "a check neither file matches");
    assert.match(logs.join(""), /ignored .*master\.key\.pending/);
    assert.equal(findRotatedMasterKey(keyFile, recorded)?.byteLength, 32, "the key file itself still answers");
    await app.close();
    // The store records another key than both files: the open is refused, the files are left as they are.
    const stray = dataDir();
    assert.equal((await bulwarkHere(["init"], { env: env(stray) })).code, 0);
    writeFileSync(pendingMasterKeyPath(join(stray, "master.key")), `${testMasterKey("planted")}\n`, { mode: 0o600 });
    const other = await open(stray);
    await other.db.db.updateTable("bulwark_meta").set({ value: masterKeyCheck(parseMasterKey(testMasterKey("elsewhere"), "t")) }).where("name", "=", "keyring.master_check").execute();
    await other.close();
    await assert.rejects(open(stray), (e: { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_MISMATCH");
    assert.equal(existsSync(pendingMasterKeyPath(join(stray, "master.key"))), true);

    const r = await bulwarkHere(["keys", "rotate-master", "--yes"], { env: env(dir) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /pending master key file .* is already there/);
    const after = await open(dir);
    assert.equal(await after.db.db.selectFrom("audit_events").select("id").where("type", "=", "keys.master-rotated").executeTakeFirst(), undefined, "nothing rotated");
  });

  it("with BULWARK_MASTER_KEY: refuses without --print-key; with it prints the new key once, writes no file, and only the new key opens the store", async () => {
    const dir = dataDir();
    const oldKey = testMasterKey("env-old");
    assert.equal((await bulwarkHere(["init"], { env: env(dir, { BULWARK_MASTER_KEY: oldKey }) })).code, 0);
    const refused = await bulwarkHere(["keys", "rotate-master", "--yes"], { env: env(dir, { BULWARK_MASTER_KEY: oldKey }) });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--print-key/);

    const r = await bulwarkHere(["keys", "rotate-master", "--yes", "--print-key"], { env: env(dir, { BULWARK_MASTER_KEY: oldKey }) });
    assert.equal(r.code, 0, r.stderr);
    const printed = [...r.stdout.matchAll(/[A-Za-z0-9+/]{43}=/g)].map((m) => m[0]);
    assert.equal(printed.length, 1, `the key is printed exactly once:\n${r.stdout}`);
    assert.match(r.stderr, /WARNING: the new master key/);
    assert.match(r.stdout, /secret store/);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith("master.key")), [], "no key file written");
    await assert.rejects(open(dir, { BULWARK_MASTER_KEY: oldKey }), (e: { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_MISMATCH");
    const app = await open(dir, { BULWARK_MASTER_KEY: printed[0] as string });
    assert.equal(app.keyring.masterKeyId, masterKeyId(parseMasterKey(printed[0] as string, "printed")));
  });

  it("a dry run counts by purpose and writes nothing: no key row, no check, no file, no event", async () => {
    const dir = dataDir();
    assert.equal((await bulwarkHere(["init"], { env: env(dir) })).code, 0);
    const snapshot = async () => {
      const app = await open(dir);
      const state = JSON.stringify([
        await app.db.db.selectFrom("keyring_keys").selectAll().orderBy("id").execute(),
        await app.db.db.selectFrom("bulwark_meta").selectAll().orderBy("name").execute(),
        (await app.db.db.selectFrom("audit_events").select("id").execute()).length,
        readdirSync(dir).sort(), readFileSync(join(dir, "master.key"), "utf8"),
      ]);
      await app.close();
      return state;
    };
    const before = await snapshot();
    const r = await bulwarkHere(["keys", "rotate-master", "--dry-run", "--json"], { env: env(dir) });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { dryRun: boolean; rewrapped: Record<string, number>; tagKeyStored: boolean };
    assert.deepEqual([out.dryRun, out.rewrapped["data"], out.rewrapped["signing"], out.tagKeyStored], [true, 1, 1, true]);
    assert.equal(await snapshot(), before);
  });

  it("records keys.master-rotated with the old and new master key ids, and no key", async () => {
    const dir = dataDir();
    assert.equal((await bulwarkHere(["init"], { env: env(dir) })).code, 0);
    const oldKey = readFileSync(join(dir, "master.key"), "utf8").trim();
    const r = await bulwarkHere(["keys", "rotate-master", "--yes", "--json"], { env: env(dir) });
    assert.equal(r.code, 0, r.stderr);
    const newKey = readFileSync(join(dir, "master.key"), "utf8").trim();
    const app = await open(dir);
    const events = await app.db.db.selectFrom("audit_events").select(["data", "actor"]).where("type", "=", "keys.master-rotated").execute();
    assert.equal(events.length, 1);
    const data = JSON.parse(events[0]?.data as string) as { from: string; to: string; source: string };
    assert.deepEqual([data.from, data.to, data.source], [masterKeyId(parseMasterKey(oldKey, "old")), masterKeyId(parseMasterKey(newKey, "new")), "file"]);
    assert.equal(JSON.stringify(events).includes(oldKey) || JSON.stringify(events).includes(newKey), false, "no key in the event");
    assert.equal(r.stdout.includes(newKey), false, "a key from the file is never printed");
    assert.equal((await app.audit.verify()).ok, true, "the chain verifies after the rotation");
  });
});
