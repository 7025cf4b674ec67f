// Attacks on the audit log by someone with write access to the database (seeds 000 and 001: Drupal.org
// and Sentry scoped their breaches from logs an intruder could have edited) and checked by an auditor who must
// trust `audit verify`. Each test is an attack that must fail on correct code. ASVS 16.4.2 unless told.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { GENESIS_HASH, eventHash, type ChainFields } from "../src/audit/chain.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { fingerprint } from "../src/crypto/tokens.ts";
import { totpCode } from "../src/http/auth/test-client.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { bulwark, bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const EVERY = 10;

async function ready(db: Database): Promise<{ audit: AuditLog; reopen: () => AuditLog }> {
  const clock = new ManualClock();
  assert.equal((await migrate(db, clock)).error, undefined);
  const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(db), clock, random: systemRandom });
  await keyring.ensureKeys();
  const reopen = (): AuditLog => new AuditLog({ database: db, clock, random: systemRandom, signer: () => keyring.signer(), checkpointEvery: EVERY });
  return { audit: reopen(), reopen };
}

/** 25 events: stored checkpoints at #10 and #20 (EVERY = 10). */
async function grown(db: Database): Promise<{ reopen: () => AuditLog }> {
  const { audit, reopen } = await ready(db);
  for (let i = 0; i < 25; i++) await audit.append({ type: "auth.login.succeeded", actor: `usr_${i % 3}`, subject: `usr_${i % 3}`, data: { i } });
  assert.deepEqual(await checkpointSeqs(db), [10, 20]);
  return { reopen };
}

async function checkpointSeqs(db: Database): Promise<number[]> {
  return (await db.db.selectFrom("audit_checkpoints").select("seq").orderBy("seq").execute()).map((r) => Number(r.seq));
}

type Row = ChainFields & { hash: string };

async function storedRows(db: Database): Promise<Row[]> {
  const rows = await db.db.selectFrom("audit_events").selectAll().orderBy("seq").execute();
  return rows.map((r) => ({ seq: Number(r.seq), id: r.id, type: r.type, actor: r.actor, subject: r.subject, at: Number(r.at), requestId: r.request_id, prevHash: r.prev_hash, data: r.data, hash: r.hash }));
}

/** The attacker's offline tool: the chain with `edit` applied to some rows and every hash recomputed from #1. */
function forge(rows: Row[], edit: (r: Row) => Row): Row[] {
  let prev = GENESIS_HASH;
  return rows.map((r) => {
    const fields = { ...edit(r), prevHash: prev };
    prev = eventHash(fields);
    return { ...fields, hash: prev };
  });
}

/** Writes forged rows over the stored ones and points the head at the last, as whoever holds the database can. */
async function store(db: Database, rows: Row[]): Promise<void> {
  for (const r of rows) {
    await db.db.updateTable("audit_events").set({ actor: r.actor, subject: r.subject, type: r.type, data: r.data, prev_hash: r.prevHash, hash: r.hash }).where("seq", "=", r.seq).execute();
  }
  await setHead(db, rows.at(-1)!.seq, rows.at(-1)!.hash);
}

async function setHead(db: Database, seq: number, hash: string): Promise<void> {
  await db.db.updateTable("audit_head").set({ seq, hash }).where("id", "=", 1).execute();
}

forEachDialect("red team: the stored audit chain", (fx) => {
  it("attack: one event's actor rewritten and every later hash and the head recomputed is caught by the next stored checkpoint, and the report names no later position (ASVS 16.4.2)", async () => {
    const db = await fx.fresh();
    const { reopen } = await grown(db);
    await store(db, forge(await storedRows(db), (r) => (r.seq === 3 ? { ...r, actor: "usr_innocent" } : r)));
    const report = await reopen().verify();
    assert.equal(report.ok, false);
    assert.equal(report.problem?.seq, 10, "the first position a signature vouches for");
    assert.match(report.problem?.problem ?? "", /event #10 .* differs from the signed checkpoint .*rewritten/);
    assert.equal(report.checkpointsChecked, 0, "nothing before the break is counted as verified");
  });

  it("attack: forged checkpoint rows — a signature reused for a rewritten tail, a time pushed forward, a key id swapped, a checkpoint renumbered — all fail as invalid signatures (ASVS 16.4.2)", async () => {
    const cases: Array<{ name: string; at: number; tamper: (db: Database) => Promise<void> }> = [
      {
        name: "the checkpoint at #20 copied to a rewritten #25", at: 25, tamper: async (db) => {
          const forged = forge(await storedRows(db), (r) => (r.seq === 23 ? { ...r, data: '{"i":0}' } : r));
          await store(db, forged);
          const cp = await db.db.selectFrom("audit_checkpoints").selectAll().where("seq", "=", 20).executeTakeFirstOrThrow();
          await db.db.insertInto("audit_checkpoints").values({ ...cp, seq: 25, hash: forged[24]!.hash }).execute();
        },
      },
      { name: "signed time moved a day on", at: 20, tamper: async (db) => void (await db.db.updateTable("audit_checkpoints").set({ at: 86_400_000 * 400 }).where("seq", "=", 20).execute()) },
      { name: "key id of no key", at: 10, tamper: async (db) => void (await db.db.updateTable("audit_checkpoints").set({ key_id: "sk_attackerskey000000" }).where("seq", "=", 10).execute()) },
      {
        name: "checkpoint #10 renumbered to #11", at: 11, tamper: async (db) => {
          const eleventh = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", 11).executeTakeFirstOrThrow();
          await db.db.updateTable("audit_checkpoints").set({ seq: 11, hash: eleventh.hash }).where("seq", "=", 10).execute();
        },
      },
    ];
    for (const c of cases) {
      const db = await fx.fresh();
      const { reopen } = await grown(db);
      await c.tamper(db);
      const report = await reopen().verify();
      assert.equal(report.ok, false, c.name);
      assert.equal(report.problem?.seq, c.at, c.name);
      assert.match(report.problem?.problem ?? "", /invalid signature/, c.name);
    }
  });

  it("attack: oversized events (data over 64 KiB in UTF-8 bytes though under it in characters, a 513-character field) are refused and leave no row, gap or moved head", async () => {
    const db = await fx.fresh();
    const { audit, reopen } = await ready(db);
    await audit.append({ type: "t" });
    const tooBig: Array<Parameters<AuditLog["append"]>[0]> = [
      { type: "t", data: { blob: "€".repeat(22_000) } }, // 22,000 characters, 66,000 bytes
      { type: "t", data: { lone: "\ud800".repeat(11_000) } }, // stored as 6-character escapes
      { type: "t", actor: "a".repeat(513) },
      { type: "t".repeat(513) },
    ];
    for (const input of tooBig) {
      await assert.rejects(audit.append(input), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_AUDIT_FIELD", JSON.stringify(input).slice(0, 60));
    }
    assert.equal((await audit.append({ type: "t", data: { fits: "é".repeat(30_000) } })).seq, 2, "the chain goes on with no gap");
    const head = await db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow();
    assert.equal(Number(head.seq), 2);
    assert.equal((await reopen().verify()).ok, true);
  });

  // A checkpoint commits with its event, which moves the head to it, and the head never moves back: a stored one
  // above the head covers events that were cut away (verify used to drop it silently).
  it("attack: the newest events deleted and the head moved back, the signed checkpoint that covers them left in place, fails verify (ASVS 16.4.2)", async () => {
    const db = await fx.fresh();
    const { reopen } = await grown(db);
    const fifteenth = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", 15).executeTakeFirstOrThrow();
    await db.db.deleteFrom("audit_events").where("seq", ">", 15).execute();
    await setHead(db, 15, fifteenth.hash);
    assert.deepEqual(await checkpointSeqs(db), [10, 20], "the checkpoint signed at #20 is still stored");
    const report = await reopen().verify();
    assert.equal(report.ok, false, `a validly signed checkpoint at #20 proves events #16 to #20 existed; verify said intact: ${JSON.stringify(report)}`);
    assert.match(report.problem?.problem ?? "", /checkpoint covers event #20/);
  });

  // The key holder must not sign a head the stored rows do not hold: otherwise it is a signing oracle for whoever can
  // write the tables (aim the head at a forged hash, wait for a routine checkpoint, swap the forged rows in).
  it("attack: the head pointed at a forged chain while the operator's routine checkpoints run, then the forged rows swapped in: verify must not call the rewrite intact (ASVS 16.4.2)", async () => {
    const db = await fx.fresh();
    const { reopen } = await grown(db);
    const forged = forge(await storedRows(db), (r) => (r.seq === 3 ? { ...r, actor: "usr_innocent" } : r));
    const refused: string[] = [];
    for (const seq of [10, 20]) {
      // Each round: the stored checkpoint at that position removed, the head aimed at the forged hash, then a routine
      // checkpoint (`bulwark audit checkpoint`, server stop) by the process that holds the key.
      await db.db.deleteFrom("audit_checkpoints").where("seq", "=", seq).execute();
      await setHead(db, seq, forged[seq - 1]!.hash);
      await reopen().checkpoint().catch((e: Error) => refused.push(e.message));
    }
    await store(db, forged);
    const report = await reopen().verify();
    assert.equal(report.ok, false,
      `a chain rewritten at #3 verified intact with ${report.checkpointsChecked} checkpoint(s) signed over the forged hashes (refusals: ${refused.length})`);
  });
});

forEachDialect("red team: the appends' scheduled checkpoint", (fx) => {
  it("attack: the head aimed at a forged hash while the service keeps appending: the scheduled checkpoint signs nothing over it, the appends go on, and verify fails (ASVS 16.4.2)", async () => {
    const db = await fx.fresh();
    const { reopen } = await grown(db);
    // Rewrite #21–#25 (after the newest checkpoint) offline and aim the head at the forged #25.
    const forged = forge(await storedRows(db), (r) => (r.seq === 22 ? { ...r, actor: "usr_innocent" } : r));
    await setHead(db, 25, forged[24]!.hash);
    const service = reopen();
    // The service appends on: #26–#35 link to the forged head, and #30 is due a checkpoint.
    for (let i = 0; i < 10; i++) await service.append({ type: "auth.login.succeeded", actor: "usr_1", subject: "usr_1" });
    assert.deepEqual(await checkpointSeqs(db), [10, 20], "no checkpoint was signed over a head the stored rows do not hold");
    await store(db, [...forged, ...(await storedRows(db)).slice(25)].slice(0, 25));
    await setHead(db, 35, (await storedRows(db))[34]!.hash);
    const report = await reopen().verify();
    assert.equal(report.ok, false, `the rewrite of #22 verified intact: ${JSON.stringify(report)}`);
  });
});

describe("red team: hash encoding", () => {
  it("attack: text moved across a field boundary, or between a field and data, never keeps the hash (ASVS 16.4.2)", () => {
    const base: ChainFields = { seq: 7, id: "evt_x", type: "auth.login", actor: "usr_a", subject: "usr_b", at: 1_700_000_000_000, requestId: "req", prevHash: GENESIS_HASH, data: '{"ip":"1.2.3.4"}' };
    const variants: Array<Partial<ChainFields>> = [
      { actor: "usr_ausr_b", subject: "" }, { actor: "", subject: "usr_ausr_b" }, { actor: 'usr_a","usr_b', subject: "" },
      { type: "auth.login\",\"usr_a", actor: "" }, { data: '{"ip":"1.2.3.4"} ' }, { data: '{"ip": "1.2.3.4"}' },
      { requestId: "", data: '{"ip":"1.2.3.4","req":""}' }, { seq: 70, at: 170_000_000_000 }, { at: 1_700_000_000_000.5 },
    ];
    const seen = new Set([eventHash(base)]);
    for (const v of variants) {
      const h = eventHash({ ...base, ...v });
      assert.ok(!seen.has(h), JSON.stringify(v));
      seen.add(h);
    }
  });
});

describe("red team: the whole table replaced, checked with `bulwark audit verify`", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "bulwark-redteam-audit-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("attack: the log and its checkpoints replaced by a plausible fresh chain pass the database alone (documented) but fail against exported checkpoints, with exit 1, the first bad position and no secret printed (ASVS 16.4.2, 16.4.3)", async () => {
    const dir = join(root, "data");
    const env = { BULWARK_DATA_DIR: dir };
    assert.equal((await bulwark(["init"], { env })).code, 0);
    const app = await openApp({ env: { ...env, BULWARK_LOG_LEVEL: "silent" }, mode: "open" });
    for (let i = 0; i < 30; i++) await app.audit.append({ type: "role.granted", actor: "cli:root", subject: `usr_${i}`, data: { role: "admin" } });
    await app.close();
    const cpFile = join(root, "checkpoints.jsonl");
    const cp = await bulwarkInProcess(["audit", "checkpoint", "--export", cpFile], env);
    assert.equal(cp.code, 0, cp.stderr);
    const pin = /signing key sk_\w+: (sha256:[0-9a-f]{64})/.exec(cp.stderr)?.[1];
    assert.ok(pin, cp.stderr);

    // The intruder rebuilds the table from #1 with events of their own choosing and empties the checkpoints.
    const sqlite = new DatabaseSync(join(dir, "bulwark.db"));
    const old = sqlite.prepare("SELECT * FROM audit_events WHERE seq <= 12 ORDER BY seq").all() as Array<Record<string, string | number>>;
    sqlite.exec("DELETE FROM audit_checkpoints; DELETE FROM audit_events");
    let prev = GENESIS_HASH;
    const insert = sqlite.prepare("INSERT INTO audit_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const o of old) {
      const f: ChainFields = { seq: Number(o["seq"]), id: String(o["id"]), type: String(o["type"]), actor: String(o["actor"]), subject: String(o["subject"]), at: Number(o["at"]), requestId: String(o["request_id"]), prevHash: prev, data: o["type"] === "role.granted" ? '{"role":"viewer"}' : String(o["data"]) };
      prev = eventHash(f);
      insert.run(f.seq, f.id, f.type, f.actor, f.subject, f.data, f.at, f.requestId, f.prevHash, prev);
    }
    sqlite.close();

    const alone = await bulwarkInProcess(["audit", "verify", "--json"], env);
    assert.equal(alone.code, 0, `the database alone cannot show a rewrite this short (docs/audit-log.md): ${alone.stdout}`);
    const said = JSON.parse(alone.stdout) as { checkpointsChecked: number; uncovered: number; lastSeq: number };
    assert.deepEqual([said.checkpointsChecked, said.uncovered], [0, said.lastSeq], "but it says no signature covers any event");

    const held = await bulwarkInProcess(["audit", "verify", "--checkpoints", cpFile, "--public-key", pin], env);
    assert.equal(held.code, 1, held.stdout + held.stderr);
    assert.match(held.stdout, /^audit chain BROKEN at event #\d+/);
    const first = (JSON.parse(readFileSync(cpFile, "utf8").split("\n")[0]!) as { seq: number }).seq;
    const json = await bulwarkInProcess(["audit", "verify", "--json", "--checkpoints", cpFile, "--public-key", pin], env);
    assert.equal(json.code, 1);
    const problem = (JSON.parse(json.stdout) as { problem: { seq: number } }).problem;
    assert.ok(problem.seq <= Math.min(first, 13), `named #${problem.seq}: the first position the rewrite cannot match`);
    const masterKey = join(dir, "master.key");
    if (existsSync(masterKey)) {
      const secret = readFileSync(masterKey, "utf8").trim();
      for (const out of [alone, held, json]) assert.ok(!`${out.stdout}${out.stderr}`.includes(secret), "the master key is never printed");
    }
  });
});

describe("red team: what audit events contain (ASVS 16.2.5)", () => {
  const fx = sharedFixture();

  async function logText(): Promise<string> {
    const rows = await fx.app.db.db.selectFrom("audit_events").selectAll().execute();
    return JSON.stringify(rows);
  }

  it("attack: an audit reader finds no TOTP secret, recovery code, reset link, or new password in the log after enrolment, recovery codes and a reset", async () => {
    const user = await fx.user("ana.redteam@example.org");
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const begin = await b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(begin.statusCode, 200, begin.body);
    const { secret } = begin.json() as { secret: string };
    assert.equal((await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(30_000);
    const codes = (await b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json() as { codes: string[] };
    assert.ok(codes.codes.length > 0);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: user.email } })).statusCode, 202);
    await fx.deliver();
    // The newest mail carrying a link: the notices (the first sign-in, the factor, the codes) go out around it.
    const link = fx.mailTo(user.email).map((m) => /reset-password#token=(prt_[a-z2-7]{26})\.([A-Za-z0-9_-]{43})/.exec(m.body)).filter((m) => m !== null).at(-1);
    assert.ok(link, "a reset link was mailed");
    const newPassword = "copper meadow whistles softly";
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: `${link[1]}.${link[2]}`, newPassword, totp: totpCode(secret, fx.clock.now()) } });
    assert.equal(done.statusCode, 200, done.body);
    const text = await logText();
    assert.ok(text.includes("auth.mfa.recovery-codes-generated"), "the events were recorded");
    const secrets: Array<[string, string]> = [["TOTP secret", secret], ["reset link secret", link[2]!], ["old password", user.password], ["new password", newPassword], ...codes.codes.map((c): [string, string] => ["recovery code", c])];
    for (const [what, value] of secrets) assert.equal(text.includes(value), false, `${what} appears in the audit log`);
  });

  // An unknown identifier is recorded as a keyed tag (Keyring.identifierTag), not a plain hash: people type their
  // password into the login name field, and a word list hashed without the key must match nothing in the log.
  it("attack: a password typed into the identifier field cannot be recovered from the log by hashing a wordlist", async () => {
    const user = await fx.user("bob.redteam@example.org", { password: "Sunshine2024!" });
    const mistyped = await fx.browser().login(user.password, user.password);
    assert.equal(mistyped.statusCode, 401);
    const rows = await fx.app.db.db.selectFrom("audit_events").select(["type", "subject", "data"]).where("type", "like", "auth.login.%").execute();
    assert.ok(rows.some((r) => r.type === "auth.login.failed"), "the failure is audited");
    const wordlist = ["password", "123456", "sunshine2024!", "Sunshine2024!", "letmein"];
    const cracked = wordlist.filter((w) => JSON.stringify(rows).includes(fingerprint(w)) || JSON.stringify(rows).includes(fingerprint(w.toLowerCase())));
    assert.deepEqual(cracked, [], "a wordlist entry's fingerprint matches a logged identifier: the password is recovered");
  });
});
