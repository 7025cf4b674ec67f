// Several processes on one key table (the server, the CLI, other nodes): each keyring must notice the keys the
// others create and retire — values sealed elsewhere open, seals move to the new current key — and never lose
// a retired key, which still holds values until everything is re-encrypted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../lib/clock.ts";
import { systemRandom } from "../lib/random.ts";
import { KEY_FRESHNESS_MS, Keyring, type KeyStore, type StoredKey } from "./keyring.ts";

/** One key table shared by every keyring opened on it; counts the reads of the key list. */
function sharedStore(): KeyStore & { keys: StoredKey[]; reads: number; hold(): () => void } {
  const keys: StoredKey[] = [];
  const meta = new Map<string, string>();
  let gate: Promise<void> | null = null;
  const store = {
    keys,
    reads: 0,
    listKeys: async () => {
      store.reads++;
      const snapshot = keys.map((k) => ({ ...k }));
      const held = gate;
      gate = null;
      if (held) await held;
      return snapshot;
    },
    addCurrentKey: async (key: StoredKey) => {
      for (const k of keys) if (k.purpose === key.purpose) k.status = "retired";
      keys.push({ ...key });
    },
    getMeta: async (n: string) => meta.get(n) ?? null,
    claimMeta: async (n: string, v: string) => {
      if (!meta.has(n)) meta.set(n, v);
      return meta.get(n) as string;
    },
    /**
     * Holds the next key-list read (a slow one) until the returned function is called; reads after it go through,
     * as they would on a real store (a rotation reads the table too).
     */
    hold(): () => void {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = null;
        release();
      };
    },
  };
  return store;
}

const MASTER = systemRandom.bytes(32);
const ROW = { table: "mfa_totp", column: "secret_ct", row: "usr_a" };

async function twoProcesses(): Promise<{ server: Keyring; cli: Keyring; store: ReturnType<typeof sharedStore>; clock: ManualClock }> {
  const store = sharedStore();
  const clock = new ManualClock();
  const server = await Keyring.open({ masterKey: MASTER, store, clock, random: systemRandom });
  await server.ensureKeys();
  const cli = await Keyring.open({ masterKey: MASTER, store, clock: new ManualClock(), random: systemRandom });
  return { server, cli, store, clock };
}

describe("keyring shared by several processes", () => {
  it("opens a value sealed under a key another process created after this keyring was loaded", async () => {
    const { server, cli } = await twoProcesses();
    await cli.rotateDataKey();
    const ct = cli.encrypt("JBSWY3DPEHPK3PXP", ROW);
    assert.equal(await server.unsealString(ct, ROW), "JBSWY3DPEHPK3PXP");
    assert.equal(server.decryptString(ct, ROW), "JBSWY3DPEHPK3PXP", "the synchronous path holds the key from then on");
  });

  it("moves its seals to the key another process made current once the freshness window has passed", async () => {
    const { server, cli, clock } = await twoProcesses();
    const retired = server.currentDataKeyId;
    const fresh = await cli.rotateDataKey();
    clock.advance(KEY_FRESHNESS_MS);
    assert.equal(Keyring.keyIdOf(await server.seal("secret", ROW)), fresh);
    assert.equal(server.currentDataKeyId, fresh);
    assert.notEqual(fresh, retired);
  });

  it("reads the key table at most once per freshness window when sealing, not once per value", async () => {
    const { server, store, clock } = await twoProcesses();
    clock.advance(KEY_FRESHNESS_MS);
    const before = store.reads;
    for (let i = 0; i < 50; i++) await server.seal(`value ${i}`, ROW);
    assert.equal(store.reads - before, 1);
  });

  it("keeps opening values under keys another process retired, and a process started later opens them too", async () => {
    const { server, cli, store, clock } = await twoProcesses();
    const old = await server.seal("under the first key", ROW);
    await cli.rotateDataKey();
    const newest = await cli.rotateDataKey();
    clock.advance(KEY_FRESHNESS_MS);
    assert.equal(Keyring.keyIdOf(await server.seal("x", ROW)), newest);
    assert.equal(await server.unsealString(old, ROW), "under the first key");
    const later = await Keyring.open({ masterKey: MASTER, store, clock: new ManualClock(), random: systemRandom });
    assert.equal(await later.unsealString(old, ROW), "under the first key");
  });

  it("starts a reload when the synchronous decrypt meets an unknown key, so the next attempt succeeds", async () => {
    const { server, cli, store } = await twoProcesses();
    await cli.rotateDataKey();
    const ct = cli.encrypt("s", ROW);
    const before = store.reads;
    assert.throws(() => server.decrypt(ct, ROW), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_UNKNOWN_KEY");
    assert.equal(store.reads, before + 1);
    await server.reload(); // joins the reload the failed decrypt started
    assert.equal(store.reads, before + 1);
    assert.equal(server.decryptString(ct, ROW), "s");
  });

  it("refuses a key id the store does not have, after one look, and looks nowhere for a malformed one", async () => {
    const { server, store } = await twoProcesses();
    const ct = server.encrypt("x", ROW);
    const before = store.reads;
    await assert.rejects(server.unseal(ct.replace(/dk_[a-z2-7]+/, "dk_aaaaaaaaaaaaaaaa"), ROW), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_UNKNOWN_KEY");
    assert.equal(store.reads, before + 1);
    await assert.rejects(server.unseal(ct.replace(/dk_[a-z2-7]+/, "dk_NOT-OURS"), ROW), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_UNKNOWN_KEY");
    assert.equal(store.reads, before + 1);
  });

  it("seals under an explicit key id it learns from the store (a rotation job's target)", async () => {
    const { server, cli } = await twoProcesses();
    const target = await cli.rotateDataKey();
    const ct = await server.seal("moved", ROW, { keyId: target });
    assert.equal(Keyring.keyIdOf(ct), target);
    assert.equal(cli.decryptString(ct, ROW), "moved");
  });

  it("does not let a reload that started before a rotation in the same process undo it", async () => {
    const { server, store } = await twoProcesses();
    const release = store.hold();
    const reading = server.reload(); // reads the table before the rotation below
    const rotated = await server.rotateDataKey();
    release();
    await reading;
    assert.equal(server.currentDataKeyId, rotated);
  });

  it("picks the same current key in every process when two rotations raced (two rows marked current)", async () => {
    const { server, cli, store } = await twoProcesses();
    const a = await cli.rotateDataKey();
    const b = await cli.rotateDataKey();
    for (const k of store.keys) if (k.id === a) k.status = "current"; // what two PostgreSQL nodes at once can leave
    await server.reload();
    const later = await Keyring.open({ masterKey: MASTER, store, clock: new ManualClock(), random: systemRandom });
    assert.equal(server.currentDataKeyId, b);
    assert.equal(later.currentDataKeyId, b);
  });

  it("does not create keys another process created since this keyring was opened", async () => {
    const store = sharedStore();
    const first = await Keyring.open({ masterKey: MASTER, store, clock: new ManualClock(), random: systemRandom });
    const second = await Keyring.open({ masterKey: MASTER, store, clock: new ManualClock(), random: systemRandom });
    assert.equal((await first.ensureKeys()).length, 2);
    assert.deepEqual(await second.ensureKeys(), []);
    assert.equal(store.keys.length, 2);
  });

  it("signs with the signing key another process made current, and verifies with the one it retired", async () => {
    const { server, cli, clock } = await twoProcesses();
    const before = await server.signer();
    const data = new Uint8Array(Buffer.from("checkpoint 7"));
    const oldSig = before.sign(data);
    const rotated = await cli.rotateSigningKey();
    clock.advance(KEY_FRESHNESS_MS);
    const after = await server.signer();
    assert.equal(after.keyId, rotated);
    assert.equal(after.verify(before.keyId, data, oldSig), true);
    assert.equal((await cli.signer()).verify(rotated, data, after.sign(data)), true);
  });
});

describe("identifierTag", () => {
  it("gives every process holding the master key the same tag for the same text, and no tag without the key (ASVS 16.2.5)", async () => {
    const { server, cli } = await twoProcesses();
    const typed = "Sunshine2024!";
    assert.equal(server.identifierTag(typed), cli.identifierTag(typed), "events from two nodes correlate");
    assert.match(server.identifierTag(typed), /^[0-9a-f]{16}$/);
    assert.notEqual(server.identifierTag(typed), server.identifierTag("sunshine2024!"), "the text as given, not folded");
    const other = await Keyring.open({ masterKey: systemRandom.bytes(32), store: sharedStore(), clock: new ManualClock(), random: systemRandom });
    assert.notEqual(other.identifierTag(typed), server.identifierTag(typed), "another master key, another tag");
    // Attack: what a plain hash of the text would give is not what the log holds.
    const { fingerprint } = await import("./tokens.ts");
    assert.ok(!server.identifierTag(typed).startsWith(fingerprint(typed)), "a word list hashed without the key matches nothing");
  });
});
