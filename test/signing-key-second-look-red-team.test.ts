// Second-look red-team round on the signing-key rotation fixes (commits c2cb3e2 and 8fc2188, ADR 0014): the new key
// dated no earlier than the newest time the log holds (`notBefore`), v1 keys ranked below every v2 key, a keyring that
// keeps the newest key it holds and reports a held key's missing row (onTamperedKey, field "row"), and file baselines
// signed by a retired key no longer trusted.
// Attackers: (1) an intruder who can write the database (every table) but holds no master key, possibly with a leaked
// signing or data key, who wants the operator's rotation to fail, to protect less, or the detection tools to crash;
// (2) honest operation (a routine rotation, a data-key rotation while the server serves requests, installs from before
// v2 wraps), which must not end in a false "tampered" verdict or a crash. SQLite and PostgreSQL where the database
// matters. ASVS 11.1.1 (key lifecycle: a key can be replaced when it may have leaked), 16.4.2 (logs cannot be modified
// unseen), 16.3.4 (security control failures are logged, truthfully). Tests named "(was: …)" were this round's findings, fixed the same day.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import { rotateSigningKey } from "../src/audit/rotate-signing-key.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import { tempDir } from "../src/checks/files/test-helpers.ts";
import { seal } from "../src/crypto/aead.ts";
import { Keyring, type KeyStore } from "../src/crypto/keyring.ts";
import { base32 } from "../src/crypto/tokens.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { toBase64URL, utf8 } from "../src/lib/encoding.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { appendEvents, EVERY, installSigning, intruderAppend, signingNode } from "./helpers/signing-nodes.ts";
import { forgeCheckpoint, headSeq } from "./helpers/audit-tamper.ts";

const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** The last instant a JavaScript Date holds (ECMA-262): a stored time up to it passes verify's "untimely" test. */
const LAST_DATE_MS = 8.64e15;






/** A signing key as an install from before v2 wraps stored it (its wrap binds id and purpose only), made current by its row. */
async function insertV1SigningKey(db: Database, masterKey: Uint8Array, rowCreatedAt: number): Promise<string> {
  const id = `sk_${base32(systemRandom.bytes(10))}`;
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const der = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }));
  const spki = toBase64URL(new Uint8Array(publicKey.export({ format: "der", type: "spki" })));
  const wrapped = toBase64URL(seal(masterKey, der, utf8(`bulwark-keyring-v1|${id}|signing`), systemRandom));
  await db.db.updateTable("keyring_keys").set({ status: "retired" }).where("purpose", "=", "signing").execute();
  await db.db.insertInto("keyring_keys").values({ id, purpose: "signing", status: "current", created_at: rowCreatedAt, wrapped, public_key: spki }).execute();
  return id;
}

forEachDialect("signing-key rotation, second look: the times the log holds", (fx) => {
  it("attack: one audit row whose time is past what a bigint holds does not stop `audit rotate-signing-key`: the log's times are read as text and one no number holds is ignored (ASVS 11.1.1, 16.4.2) (was: the rotation failed every time, the leaked key stayed current)", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock } = await installSigning(db);
    await appendEvents(audit, 12);
    const leaked = (await keyring.signer()).keyId;
    // The intruder, who can write the database, edits one event's time to the largest bigint. Verify calls the chain
    // broken (the time is hashed): exactly when the operator rotates the key that may have leaked.
    await db.db.updateTable("audit_events").set({ at: sql<number>`9223372036854775807` }).where("seq", "=", 5).execute();
    clock.advance(HOUR);
    let failure: unknown = null;
    try {
      await rotateSigningKey({ database: db, keyring, audit }, "cli:ops");
    } catch (error) {
      failure = error;
    }
    assert.ok(failure === null, `the rotation failed: ${String((failure as Error | null)?.message)}`);
    assert.notEqual((await keyring.signer({ reload: true })).keyId, leaked, "the leaked key is still the current signing key");
  });

  it("attack: an event the intruder appends dated in 2100 does not date the new signing key, or the leaked key's retirement, in 2100: the log's newest time pushes it at most an hour past the rotating host's clock (ASVS 16.4.2) (was: dated 2100, bound into the wrap for good)", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock } = await installSigning(db);
    await appendEvents(audit, 12);
    const leaked = (await keyring.signer()).keyId;
    // A chain-valid event (no key is needed to append one) dated in 2100: verify finds nothing wrong with it.
    await intruderAppend(db, Date.UTC(2100, 0, 1));
    assert.equal((await audit.verify()).ok, true, "the planted event passes verify");
    clock.advance(HOUR);
    const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ops");
    assert.ok(to);
    const signer = await keyring.signer();
    const created = signer.keyTimes(to.keyId)?.createdAt ?? null;
    const retired = signer.keyTimes(leaked)?.retiredAt ?? null;
    assert.ok(created !== null && retired !== null);
    // A host whose clock is behind is what notBefore is for; a day covers any honest skew with room.
    assert.ok(created <= clock.now() + DAY, `the new key is dated ${new Date(created).toISOString()}, the rotating host's clock says ${new Date(clock.now()).toISOString()}`);
    assert.ok(retired <= clock.now() + DAY, `the leaked key ${leaked} counts as retired only at ${new Date(retired).toISOString()}`);
  });
});

forEachDialect("signing-key rotation, second look: keys held and rows read", (fx) => {
  it("attack: a key-table read that started before this process's own data-key rotation committed does not report the new key's row as deleted, and a later real deletion is reported once (ASVS 16.3.4) (was: a false 'row deleted' alarm, and the real deletion then never reported)", async () => {
    const db = await fx.fresh();
    // A read of the key table that is slow to come back (a PostgreSQL round trip): rows read before, applied after.
    const gate: { armed: boolean; release: (() => void) | null } = { armed: false, release: null };
    const slow = (d: Database): KeyStore => {
      const real = createKeyStore(d);
      return {
        ...real,
        async listKeys() {
          const rows = await real.listKeys();
          if (gate.armed) {
            gate.armed = false;
            await new Promise<void>((resolve) => (gate.release = resolve));
          }
          return rows;
        },
      };
    };
    const { keyring, reports, clock } = await installSigning(db, { store: slow });
    // The server: a request seals a value (its keys are a second old: it reads the table) while the rotate-keys job
    // (contain rotate-keys, run by the same server) makes a new data key.
    clock.advance(2 * SECOND);
    gate.armed = true;
    const sealing = keyring.seal("JBSWY3DPEHPK3PXP", { table: "mfa_totp", column: "secret", row: "u1" });
    while (gate.release === null) await new Promise((r) => setImmediate(r));
    const fresh = await keyring.rotateDataKey();
    gate.release();
    await sealing;
    const stored = await db.db.selectFrom("keyring_keys").select("id").where("id", "=", fresh).execute();
    assert.equal(stored.length, 1, "the new data key's row is in the table");
    assert.deepEqual(reports.filter((r) => r.keyId === fresh).map((r) => r.message), [], "a key whose row is in the table was reported as deleted in the database");
    // And the report that matters: the row really deleted later.
    const before = reports.length;
    await db.db.deleteFrom("keyring_keys").where("id", "=", fresh).execute();
    clock.advance(2 * SECOND);
    await keyring.reload();
    assert.equal(reports.slice(before).filter((r) => r.keyId === fresh && r.field === "row").length, 1, "the real deletion of the row went unreported");
  });

  it("attack: deleting the new data key's row (to make a leaked older data key current again) does not make a node that holds the new key seal under the leaked one, and the deletion is reported once, not on every reload", async () => {
    const db = await fx.fresh();
    const { keyring, clock, reports } = await installSigning(db);
    const leaked = keyring.currentDataKeyId;
    const rotated = await keyring.rotateDataKey(); // contain rotate-keys, after the old data key leaked
    await db.db.deleteFrom("keyring_keys").where("id", "=", rotated).execute();
    for (let i = 0; i < 3; i++) {
      clock.advance(2 * SECOND);
      const ct = await keyring.seal("JBSWY3DPEHPK3PXP", { table: "mfa_totp", column: "secret", row: `u${i}` });
      assert.equal(Keyring.keyIdOf(ct), rotated, `a new secret was sealed under ${Keyring.keyIdOf(ct)} (the leaked key is ${leaked})`);
    }
    assert.deepEqual(reports.map((r) => `${r.keyId}:${r.field}`), [`${rotated}:row`]);
  });
});

forEachDialect("signing-key rotation, second look: keys from before bound creation times (v1)", (fx) => {
  it("attack: on an install with two v1 signing keys, the rotation to a v2 key verifies, a node that never saw it signs with the new key, and a rewrite the older (leaked) v1 key vouches for after it is refused", async () => {
    const db = await fx.fresh();
    const clock = new ManualClock();
    assert.equal((await migrate(db, clock)).error, undefined);
    const masterKey = systemRandom.bytes(32);
    const a = await signingNode(db, masterKey, clock);
    const first = await insertV1SigningKey(db, masterKey, clock.now() - 800 * DAY);
    await a.keyring.ensureKeys(); // a v2 data key; the signing key stays the v1 one
    await appendEvents(a.audit, 12);
    // An older store with no checkpoint: the operator signs its log once, after checking it (`audit checkpoint --first`).
    assert.ok(await a.audit.checkpoint({ first: true }));
    const leaked = await a.keyring.signer();
    assert.equal(leaked.keyId, first);
    // The old release's own rotation: a second v1 key, current by its row (v1 keys alone go by status).
    const second = await insertV1SigningKey(db, masterKey, clock.now() - 400 * DAY);
    clock.advance(2 * SECOND);
    await appendEvents(a.audit, 10);
    assert.equal((await a.keyring.signer()).keyId, second);
    const b = await signingNode(db, masterKey, new ManualClock(clock.now())); // a server that will not notice the rotation by the clock
    clock.advance(HOUR);
    const { to, from } = await rotateSigningKey({ database: db, keyring: a.keyring, audit: a.audit }, "cli:ops");
    assert.ok(to);
    assert.equal(from.keyId, second);
    for (let i = 0; i < EVERY + 2; i++) await b.audit.append({ type: "b" });
    const keys = (await db.db.selectFrom("audit_checkpoints").select(["seq", "key_id"]).orderBy("seq").execute()).map((r) => r.key_id);
    assert.equal(keys.at(-1), to.keyId, "the node that never saw the rotation signed with a v1 key after it");
    const honest = await (await signingNode(db, masterKey, new ManualClock(clock.now()))).audit.verify();
    assert.equal(honest.ok, true, honest.problem?.problem);
    // The older v1 key leaked: its holder vouches for the head, dated before the rotation.
    await forgeCheckpoint(db, leaked, await headSeq(db), clock.now() - DAY);
    const forged = await (await signingNode(db, masterKey, new ManualClock(clock.now()))).audit.verify();
    assert.equal(forged.ok, false);
    assert.match(forged.problem?.problem ?? "", new RegExp(`signed with signing key ${first}, which was retired before key ${to.keyId}`));
  });
});

describe("signing-key rotation, second look: file baselines after a rotation", () => {
  const root = tempDir("bulwark-sk2-");
  after(() => rmSync(root, { recursive: true, force: true }));

  it("attack: after a routine rotation an honest baseline is reported as signed with a retired key (files.baseline-key-retired, high), with the remedy that works, not as tampered (was: a critical 'The baseline has been tampered with', telling the operator to restore a copy signed by the same retired key)", async () => {
    const dir = join(root, "routine");
    mkdirSync(join(dir, "tree/bin"), { recursive: true });
    writeFileSync(join(dir, "tree/bin/tool"), "original\n", { mode: 0o755 });
    const db = openSQLite(join(dir, "db.sqlite"), { create: true });
    try {
      const { keyring, audit, clock } = await installSigning(db);
      const baseline = join(dir, "tree.jsonl");
      await createBaseline({ paths: [join(dir, "tree")], out: baseline, signer: await keyring.signer(), clock });
      clock.advance(30 * DAY);
      await rotateSigningKey({ database: db, keyring, audit }, "cli:ops"); // the yearly rotation, nothing leaked
      const r = await compareBaseline({ baseline, signer: await keyring.signer() });
      assert.equal(r.integrity.trusted, false, "a baseline signed by a retired key is not trusted (ADR 0014)");
      const verdict = r.findings.find((f) => f.evidence && (f.evidence as { keyId?: unknown }).keyId === r.integrity.keyId);
      assert.ok(verdict, "the untrusted baseline is reported");
      assert.doesNotMatch(verdict.title, /tampered/i, `an untouched baseline signed before a rotation is reported as: ${verdict.title}`);
      assert.doesNotMatch(verdict.remediation, /trusted copy|treat the host as compromised/i, `remediation: ${verdict.remediation}`);
    } finally {
      await db.close();
    }
  });
});

describe("signing-key rotation, second look: a log time at the edge of what a Date holds (CLI, SQLite)", () => {
  const root = tempDir("bulwark-sk2-cli-");
  const env = { BULWARK_DATA_DIR: join(root, "data"), BULWARK_MASTER_KEY: "", BULWARK_DATABASE_URL: "" };
  const tree = join(root, "tree");
  const baseline = join(root, "tree.baseline");
  const run = (...args: string[]) => bulwarkInProcess(args, env);
  before(() => mkdirSync(join(tree, "bin"), { recursive: true }));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("attack: an event the intruder appends dated at the last instant a Date holds neither dates the rotated key past what a Date holds nor makes `check files` or `audit verify` crash: they report, exit 1 (ASVS 16.4.2) (was: exit 3, internal error: Invalid time value)", async () => {
    const init = await run("init");
    assert.equal(init.code, 0, init.stderr);
    writeFileSync(join(tree, "bin/tool"), "original\n", { mode: 0o755 });
    const made = await run("check", "files", "--baseline", baseline, tree);
    assert.equal(made.code, 0, made.stderr);
    const signed = await run("audit", "checkpoint"); // the old key's checkpoint, as a day of scheduled ones would leave
    assert.equal(signed.code, 0, signed.stderr);
    // The intruder appends one chain-valid event at the edge of the Date range, straight into the database.
    const db = openSQLite(join(env.BULWARK_DATA_DIR, "bulwark.db"), { create: false });
    try {
      await intruderAppend(db, LAST_DATE_MS);
    } finally {
      await db.close();
    }
    const planted = await run("audit", "verify");
    assert.equal(planted.code, 0, `the planted event passes verify: ${planted.stdout}${planted.stderr}`);
    const rotated = await run("audit", "rotate-signing-key", "--json");
    assert.equal(rotated.code, 0, rotated.stderr);
    const newKey = (JSON.parse(rotated.stdout) as { to: { keyId: string } }).to.keyId;
    // A pre-rotation baseline: not trusted (ADR 0014), which must be said, with exit 1.
    const compared = await run("check", "files", "--compare", baseline);
    assert.equal(compared.code, 1, `check files --compare: exit ${compared.code}: ${compared.stderr.trim()}`);
    // The intruder deletes the new key's checkpoints (to replace them): verify's third rule must report it, exit 1.
    const again = openSQLite(join(env.BULWARK_DATA_DIR, "bulwark.db"), { create: false });
    try {
      await again.db.deleteFrom("audit_checkpoints").where("key_id", "=", newKey).execute();
    } finally {
      await again.close();
    }
    const verified = await run("audit", "verify");
    assert.equal(verified.code, 1, `audit verify: exit ${verified.code}: ${verified.stderr.trim()}`);
  });
});
