// The keyring's store on SQLite and PostgreSQL: one current key per purpose, whatever the timing. Two
// rotations at once (two nodes, or the CLI next to a server) must not leave two keys current.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { ManualClock } from "../lib/clock.ts";
import { Keyring } from "../crypto/keyring.ts";
import { systemRandom } from "../lib/random.ts";
import { createKeyStore } from "./key-store.ts";
import { MIGRATIONS } from "./migrations/index.ts";
import { migrate } from "./migrator.ts";

const key = (id: string, at: number) => ({ id, purpose: "data" as const, status: "current" as const, createdAt: at, wrapped: `wrapped-${id}`, publicKey: null });

forEachDialect("keyring key store", (fx) => {
  it("attack: rotations racing each other leave exactly one current key; every key is kept", async () => {
    const db = await fx.empty();
    await migrate(db, new ManualClock());
    const store = createKeyStore(db);
    await store.addCurrentKey(key("k0", 1));
    await Promise.all(Array.from({ length: 12 }, (_, i) => store.addCurrentKey(key(`k${i + 1}`, 10 + i))));
    const keys = await store.listKeys();
    assert.equal(keys.length, 13, "no key lost: retired keys keep decrypting");
    assert.equal(keys.filter((k) => k.status === "current").length, 1);
  });

  it("settles two current keys left by an earlier race when the one-current-key migration runs", async () => {
    const db = await fx.empty();
    const before = MIGRATIONS.filter((m) => m.name !== "one-current-key");
    await migrate(db, new ManualClock(), before);
    await db.db.insertInto("keyring_keys").values([
      { id: "old", purpose: "data", status: "current", created_at: 1, wrapped: "w1", public_key: null },
      { id: "new", purpose: "data", status: "current", created_at: 2, wrapped: "w2", public_key: null },
      { id: "sig", purpose: "signing", status: "current", created_at: 1, wrapped: "w3", public_key: "p" },
    ]).execute();
    await migrate(db, new ManualClock());
    const rows = await db.db.selectFrom("keyring_keys").select(["id", "status"]).orderBy("id").execute();
    assert.deepEqual(rows.map((r) => [r.id, r.status]), [["new", "current"], ["old", "retired"], ["sig", "current"]]);
    await assert.rejects(
      db.db.insertInto("keyring_keys").values({ id: "third", purpose: "data", status: "current", created_at: 3, wrapped: "w4", public_key: null }).execute(),
      "the database itself refuses a second current key",
    );
  });

  it("attack: two first opens with different master keys (two nodes initialising one database) — the second is refused, the first's keys stay openable", async () => {
    const db = await fx.empty();
    await migrate(db, new ManualClock());
    const store = createKeyStore(db);
    const [keyA, keyB] = [systemRandom.bytes(32), systemRandom.bytes(32)];
    const open = (masterKey: Uint8Array, s = store) => Keyring.open({ masterKey, store: s, clock: new ManualClock(), random: systemRandom });
    const a = await open(keyA);
    await a.ensureKeys();
    // Node B read the database before A wrote anything: no master key check, no keys.
    const stale = { ...store, getMeta: async () => null, listKeys: async () => [] };
    await assert.rejects(open(keyB, stale), (e: { code?: string }) => e.code === "BULWARK_ERR_MASTER_KEY_MISMATCH");
    const again = await open(keyA);
    await again.ensureKeys();
    const sealed = await again.seal("secret", { table: "t", column: "c", row: "r" });
    assert.equal(await (await open(keyA)).unsealString(sealed, { table: "t", column: "c", row: "r" }), "secret", "A's master key still opens the database");
    assert.equal(await store.claimMeta("master_key_check_probe", "first"), "first");
    assert.equal(await store.claimMeta("master_key_check_probe", "second"), "first", "first writer wins, never overwritten");
  });
});
