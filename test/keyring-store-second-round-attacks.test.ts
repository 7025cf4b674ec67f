// Second-round attacks on secrets at rest and the store: what the first round (test/keyring-config-attacks.test.ts,
// src/crypto/keyring.security.test.ts, test/datadir-ownership.test.ts, test/migrations-attacks.test.ts) did not
// reach. Mostly interactions: a key row tampered with while a process is already running (the first round only
// tampered before start), keys created in the same millisecond, a server's synchronous seal after the CLI's
// rotate-keys, a damaged database with a migration pending, and a side file SQLite reads besides -wal and -shm. Each test is an attack that must fail on correct code.
// Temp dirs only; no network.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../src/app/open-app.ts";
import { KEY_FRESHNESS_MS, Keyring } from "../src/crypto/keyring.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { SEALED_BODY_MARKER } from "../src/notify/link-kinds.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { tamper } from "./helpers/tamper.ts";

const ENV = { BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
const ROW = { table: "mfa_totp", column: "secret_ct", row: "usr_redteam" };
const NOW = Date.UTC(2026, 10, 20, 12);

interface Raised extends Error {
  code?: string;
}

let root: string;
before(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), "bulwark-redteam-keystore2-")));
});
after(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
function freshDir(): string {
  return join(root, `d${++dirs}`);
}

async function init(dir: string, clock: ManualClock): Promise<OpenedApp> {
  return openApp({ env: { ...ENV, BULWARK_DATA_DIR: dir }, mode: "init", clock, actor: "server" });
}

describe("the key table edited while a process runs (ASVS 11.3.3, 11.2.2)", () => {
  // Keyring.#apply picks the newest key by the row's created_at. The wrap binds created_at (v2), but only when a key is
  // first unwrapped: a key this process already holds is not unwrapped again (#unwrap returns early), so on every later
  // reload the row's created_at is read unchecked. test/keyring-config-attacks.test.ts tampers before the process
  // starts, where the unwrap catches it.
  it("attack: retired data and signing keys made newest in their rows (created_at, status) are not taken as current by a running server on its next reload (was: a held key's row was read unchecked on reload, and the newest by the row's created_at became current)", async () => {
    const dir = freshDir();
    const clock = new ManualClock(NOW);
    const server = await init(dir, clock);
    try {
      const retired = { data: server.keyring.currentDataKeyId as string, signing: (await server.keyring.signer()).keyId };
      clock.advance(10);
      // contain rotate-keys after the old keys leaked (the signing key too: it signs the audit checkpoints)
      const current = { data: await server.keyring.rotateDataKey(), signing: await server.keyring.rotateSigningKey() };
      for (const purpose of ["data", "signing"] as const) {
        tamper(
          dir,
          ["UPDATE keyring_keys SET status = 'retired' WHERE id = ?", current[purpose]],
          ["UPDATE keyring_keys SET status = 'current', created_at = (SELECT max(created_at) + 1 FROM keyring_keys) WHERE id = ?", retired[purpose]],
        );
      }
      clock.advance(KEY_FRESHNESS_MS); // the server checks the key table again before its next seal
      const used = {
        data: Keyring.keyIdOf(await server.keyring.seal("JBSWY3DPEHPK3PXP", ROW)),
        signing: (await server.keyring.signer()).keyId,
      };
      assert.deepEqual(used, current, `new secrets and checkpoints went under the retired (leaked) keys ${JSON.stringify(retired)}`);
    } finally {
      await server.close();
    }
  });
});

describe("rotate-keys and the outbox's synchronous seal (ASVS 11.3.3)", () => {
  // The outbox seals link mails with keyring.encrypt (src/notify/outbox.ts #row), which, when its key check is stale,
  // "seals under the key it holds and starts a reload". A server idle for a second or more when the CLI's rotate-keys
  // job ends seals its next reset link under the key the job just retired, and nothing moves it afterwards.
  it("attack: the first password-reset link a server queues after the CLI's rotate-keys job is sealed under the new key, not the retired one (was: the outbox sealed with the synchronous encrypt, under the key held, and only started a reload)", async () => {
    const dir = freshDir();
    const clock = new ManualClock(NOW);
    const server = await init(dir, clock);
    const cli = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: dir }, mode: "open", actor: "cli" });
    try {
      const retired = server.keyring.currentDataKeyId;
      clock.advance(KEY_FRESHNESS_MS); // the server has sealed nothing for a second
      const deps = containDeps(cli);
      const job = await createContainJob(deps, { levers: ["rotate-keys"], scope: { all: true }, actor: "cli" });
      assert.equal((await runJob(deps, job.id)).status, "done");
      const current = (await createKeyStore(server.db).listKeys()).find((k) => k.purpose === "data" && k.status === "current")?.id;
      assert.ok(current && current !== retired, "the job made a new key current");
      const { id } = await server.accounts.outbox.enqueue({
        idempotencyKey: "reset:usr_redteam", to: "ana@example.org", subject: "Reset your password",
        text: "https://bulwark.example/reset#s3cret-link-token", kind: "account.password-reset-link",
      });
      const row = await server.db.db.selectFrom("outbox_messages").select("body_text").where("id", "=", id).executeTakeFirstOrThrow();
      assert.ok(row.body_text.startsWith(SEALED_BODY_MARKER), "the link is sealed at rest");
      assert.equal(Keyring.keyIdOf(row.body_text.slice(SEALED_BODY_MARKER.length)), current, `the reset link was sealed under the retired key ${retired}`);
    } finally {
      await cli.close();
      await server.close();
    }
  });
});

describe("data keys created in the same millisecond (ASVS 11.3.3)", () => {
  // #apply: "the current key of a purpose is the newest whose wrap binds its creation time (v2), the one marked current
  // first among equals". Among keys of equal created_at the status column decides, and it is bound by nothing: two
  // rotations in one millisecond (two nodes running rotate-keys at once, a rotation right after init) leave a choice a
  // database writer makes.
  it("attack: a retired data key with the same created_at as the current one is not made current by editing the status column (was: keys could share a millisecond and the unbound status column broke the tie)", async () => {
    const dir = freshDir();
    const clock = new ManualClock(NOW); // never advanced: init's data key and the rotation share one millisecond
    const app = await init(dir, clock);
    const retired = app.keyring.currentDataKeyId as string;
    const current = await app.keyring.rotateDataKey();
    await app.close();
    tamper(dir, ["UPDATE keyring_keys SET status = 'retired' WHERE id = ?", current], ["UPDATE keyring_keys SET status = 'current' WHERE id = ?", retired]);
    let sealedUnder: string | null = null;
    try {
      const reopened = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: dir }, mode: "open", clock });
      try {
        sealedUnder = Keyring.keyIdOf(await reopened.keyring.seal("JBSWY3DPEHPK3PXP", ROW));
      } finally {
        await reopened.close();
      }
    } catch (error) {
      assert.match((error as Raised).code ?? "", /^BULWARK_ERR_/, (error as Raised).message); // refusing a tampered table is secure too
      return;
    }
    assert.notEqual(sealedUnder, retired, `a new secret was sealed under the retired key ${retired}; ${current} had replaced it`);
  });
});

describe("a damaged database that also has a migration pending (BULWARK_ERR_DB_DAMAGED)", () => {
  // open-app.ts checks that every table is there only when no migration is pending ("At the latest version every table
  // must be there"). A database one version behind (a backup restored after an upgrade) with a table lost is migrated
  // by `serve`/`init` and then used without that check: the missing table surfaces later as a raw driver error.
  it("attack: a version-21 database without its mfa_totp table is refused by name when `serve` migrates it, not opened (was: the missing-table check ran only when no migration was pending, and not after migrating)", async () => {
    const dir = freshDir();
    const clock = new ManualClock(NOW);
    await (await init(dir, clock)).close();
    // Migration 22 undone (a database as version 21 left it), and one table lost.
    tamper(
      dir,
      ["DROP INDEX jobs_request_key"],
      ["ALTER TABLE jobs DROP COLUMN request_fingerprint"],
      ["ALTER TABLE jobs DROP COLUMN request_key"],
      ["DELETE FROM bulwark_migrations WHERE version = 22"],
      ["DROP TABLE mfa_totp"],
    );
    let opened: OpenedApp | null = null;
    let refused: Raised | null = null;
    try {
      opened = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: dir }, mode: "migrate", clock });
    } catch (error) {
      refused = error as Raised;
    }
    await opened?.close();
    assert.ok(refused, "a database without mfa_totp was migrated and opened");
    assert.equal(refused.code, "BULWARK_ERR_DB_DAMAGED", refused.message);
    assert.match(refused.message, /mfa_totp/);
  });
});

describe("SQLite side files besides -wal and -shm (ASVS 13.3.2)", () => {
  // openSQLite (src/store/database.ts, assertSideFilesTrusted) checks bulwark.db-wal and bulwark.db-shm: "SQLite replays the
  // write-ahead log into the database on open, so whoever controls it writes the database". SQLite does the same with a
  // hot rollback journal, bulwark.db-journal, even for a database in WAL mode: it is played back on the first read,
  // before the WAL is even looked at. Nothing checks that file.
  it("attack: a bulwark.db-journal writable by every account (a planted hot journal) is refused, not played back into the database (was: only -wal and -shm were checked, and SQLite played the journal back)", async () => {
    const dir = freshDir();
    const clock = new ManualClock(NOW);
    const app = await init(dir, clock);
    const user = await app.accounts.users.create({ email: "ana@example.org" });
    await app.close();
    // The attacker's journal: a copy of the database with Ana's password hash replaced, turned into a hot journal
    // (a transaction on the copy cut off by SIGKILL leaves the copy's pages in it as the "original" ones).
    const lab = join(root, "lab");
    mkdirSync(lab);
    const copy = join(lab, "copy.db");
    copyFileSync(join(dir, "bulwark.db"), copy);
    const db = new DatabaseSync(copy);
    db.exec("PRAGMA journal_mode = DELETE");
    db.prepare("UPDATE users SET password_hash = ? WHERE id = ?").run("$attacker$chosen-hash", user.id);
    db.close();
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", `
      import { DatabaseSync } from "node:sqlite";
      const db = new DatabaseSync(${JSON.stringify(copy)});
      db.exec("PRAGMA synchronous = OFF");
      db.exec("BEGIN IMMEDIATE");
      db.exec("UPDATE users SET password_hash = 'x' || password_hash");
      process.kill(process.pid, "SIGKILL");
    `]);
    assert.equal(child.signal, "SIGKILL", child.stderr.toString());
    assert.ok(existsSync(`${copy}-journal`), "the lab made a hot journal");
    const journal = join(dir, "bulwark.db-journal");
    copyFileSync(`${copy}-journal`, journal);
    chmodSync(journal, 0o666);
    let opened: OpenedApp | null = null;
    let refused: Raised | null = null;
    try {
      opened = await openApp({ env: { ...ENV, BULWARK_DATA_DIR: dir }, mode: "open", clock });
    } catch (error) {
      refused = error as Raised;
    }
    if (opened) {
      const row = await opened.db.db.selectFrom("users").select("password_hash").where("id", "=", user.id).executeTakeFirstOrThrow();
      await opened.close();
      assert.notEqual(row.password_hash, "$attacker$chosen-hash", "the planted journal rewrote Ana's password hash");
    }
    assert.ok(refused, "a journal every account may write was not refused, as bulwark.db-wal is");
    assert.equal(refused.code, "BULWARK_ERR_DB_UNTRUSTED", refused.message);
  });
});
