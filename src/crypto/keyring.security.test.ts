// Attacks on the keyring that must fail: a wrong master key, ciphertexts moved between rows or columns,
// tampered tags, bodies and key ids, and forged signatures.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../lib/clock.ts";
import { systemRandom } from "../lib/random.ts";
import { Keyring, type KeyStore, type StoredKey } from "./keyring.ts";
import { constantTimeEqual } from "./constant-time.ts";

function memoryStore(): KeyStore & { keys: StoredKey[] } {
  const keys: StoredKey[] = [];
  const meta = new Map<string, string>();
  return {
    keys,
    listKeys: async () => keys.map((k) => ({ ...k })),
    addCurrentKey: async (key) => {
      for (const k of keys) if (k.purpose === key.purpose) k.status = "retired";
      keys.push({ ...key });
    },
    getMeta: async (n) => meta.get(n) ?? null,
    claimMeta: async (n, v) => {
      if (!meta.has(n)) meta.set(n, v);
      return meta.get(n) as string;
    },
  };
}

async function fresh(): Promise<{ keyring: Keyring; store: ReturnType<typeof memoryStore>; master: Uint8Array }> {
  const store = memoryStore();
  const master = systemRandom.bytes(32);
  const keyring = await Keyring.open({ masterKey: master, store, clock: new ManualClock(), random: systemRandom });
  await keyring.ensureKeys();
  return { keyring, store, master };
}

const ROW_A = { table: "mfa_totp", column: "secret", row: "usr_a" };
const ROW_B = { table: "mfa_totp", column: "secret", row: "usr_b" };

function flip(ct: string, index: number): string {
  const [v, k, body] = ct.split(".") as [string, string, string];
  const bytes = Buffer.from(body, "base64url");
  bytes[index < 0 ? bytes.length + index : index]! ^= 0x01;
  return `${v}.${k}.${bytes.toString("base64url")}`;
}

describe("keyring attacks", () => {
  it("refuses to open with a different master key", async () => {
    const { store } = await fresh();
    await assert.rejects(
      Keyring.open({ masterKey: systemRandom.bytes(32), store, clock: new ManualClock(), random: systemRandom }),
      (e: Error & { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_MISMATCH" && /wrapped by master key/.test(e.message),
    );
  });

  it("refuses a master key of the wrong length", async () => {
    await assert.rejects(
      Keyring.open({ masterKey: systemRandom.bytes(16), store: memoryStore(), clock: new ManualClock(), random: systemRandom }),
      (e: Error & { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_INVALID",
    );
  });

  it("does not decrypt a ciphertext copied to another row", async () => {
    const { keyring } = await fresh();
    const ct = keyring.encrypt("JBSWY3DPEHPK3PXP", ROW_A);
    assert.throws(() => keyring.decrypt(ct, ROW_B), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_DECRYPT");
    assert.throws(() => keyring.decrypt(ct, { ...ROW_A, column: "other" }), /does not decrypt/);
    assert.throws(() => keyring.decrypt(ct, { ...ROW_A, table: "sso_tokens" }), /does not decrypt/);
  });

  it("does not decrypt when the tag, the nonce or the body is tampered", async () => {
    const { keyring } = await fresh();
    const ct = keyring.encrypt("secret value", ROW_A);
    for (const index of [0, 12, -1, -16]) {
      assert.throws(() => keyring.decrypt(flip(ct, index), ROW_A), /does not decrypt/, `byte ${index}`);
    }
    const [v, k, body] = ct.split(".") as [string, string, string];
    assert.throws(() => keyring.decrypt(`${v}.${k}.${body.slice(0, 20)}`, ROW_A), /does not decrypt/);
  });

  it("does not decrypt under another key id (the key id is bound as associated data)", async () => {
    const { keyring } = await fresh();
    const ct = keyring.encrypt("x", ROW_A);
    const oldKey = ct.split(".")[1] as string;
    const newKey = await keyring.rotateDataKey();
    const forged = ct.replace(oldKey, newKey);
    assert.throws(() => keyring.decrypt(forged, ROW_A), /does not decrypt/);
  });

  it("refuses an unknown key id and a malformed ciphertext with distinct errors", async () => {
    const { keyring } = await fresh();
    const ct = keyring.encrypt("x", ROW_A);
    assert.throws(() => keyring.decrypt(ct.replace(/dk_[a-z0-9]+/, "dk_nosuchkey"), ROW_A), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_UNKNOWN_KEY");
    assert.throws(() => keyring.decrypt("plaintext", ROW_A), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_CIPHERTEXT_MALFORMED");
  });

  it("refuses to open when a stored key row was tampered with", async () => {
    const { store, master } = await fresh();
    const key = store.keys[0]!;
    const bytes = Buffer.from(key.wrapped, "base64url");
    bytes[20]! ^= 1;
    key.wrapped = bytes.toString("base64url");
    await assert.rejects(Keyring.open({ masterKey: master, store, clock: new ManualClock(), random: systemRandom }), /does not unwrap/);
  });

  it("rejects signatures over altered data, from unknown keys, or tampered", async () => {
    const { keyring } = await fresh();
    const signer = await keyring.signer();
    const data = new Uint8Array(Buffer.from("checkpoint 42"));
    const sig = signer.sign(data);
    assert.equal(signer.verify(signer.keyId, data, sig), true);
    assert.equal(signer.verify(signer.keyId, new Uint8Array(Buffer.from("checkpoint 43")), sig), false);
    assert.equal(signer.verify("sk_unknown", data, sig), false);
    const bad = new Uint8Array(sig);
    bad[5]! ^= 1;
    assert.equal(signer.verify(signer.keyId, data, bad), false);
  });

  it("compares secrets of different lengths as unequal", () => {
    assert.equal(constantTimeEqual(Buffer.from("abc"), Buffer.from("abcd")), false);
    assert.equal(constantTimeEqual(Buffer.from("abcd"), Buffer.from("abcd")), true);
    assert.equal(constantTimeEqual(Buffer.from("abce"), Buffer.from("abcd")), false);
  });
});

describe("keyring rotation", () => {
  it("keeps decrypting old ciphertexts after a new data key becomes current", async () => {
    const { keyring, master, store } = await fresh();
    const before = keyring.encrypt("old", ROW_A);
    const newId = await keyring.rotateDataKey();
    const after = keyring.encrypt("new", ROW_A);
    assert.equal(Keyring.keyIdOf(after), newId);
    assert.notEqual(Keyring.keyIdOf(before), newId);
    assert.equal(keyring.decryptString(before, ROW_A), "old");
    // A reopened keyring (another process) sees the same keys and the same current key.
    const reopened = await Keyring.open({ masterKey: master, store, clock: new ManualClock(), random: systemRandom });
    assert.equal(reopened.decryptString(before, ROW_A), "old");
    assert.equal(reopened.decryptString(after, ROW_A), "new");
    assert.equal(reopened.currentDataKeyId, newId);
  });

  it("never produces the same ciphertext twice for the same value", async () => {
    const { keyring } = await fresh();
    assert.notEqual(keyring.encrypt("same", ROW_A), keyring.encrypt("same", ROW_A));
  });
});
