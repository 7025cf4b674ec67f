// Third-look red-team round on the signing-key fixes d27e296 and b0e8e8b: the rotation reads the log's newest times as
// text and ignores what no number holds, the keyring honours notBefore at most an hour past its clock, a key added after
// a read began is never reported missing by that read (#addedAt), and a baseline signed by a retired key is its own
// finding, files.baseline-key-retired (critical: an honest one and a forged one look the same).
// Attackers: (1) an intruder who can write the database (every table) and holds the leaked signing key the operator is
// about to rotate (but not the master key), who wants the rotation to protect less, the log's verify to be stuck on a
// false alarm that hides later edits, or a tampered key table to go unreported; (2) the operator reading `bulwark check
// files` output after a rotation, who must be told the truth about the baseline. SQLite and PostgreSQL where the
// database matters. ASVS 16.4.2 (logs cannot be modified unseen), 16.3.4 (security control failures are logged),
// 11.1.1 (key lifecycle), 11.4.3 (integrity of stored files through signatures).
import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import { rotateSigningKey } from "../src/audit/rotate-signing-key.ts";
import { tempDir } from "../src/checks/files/test-helpers.ts";
import { NOT_BEFORE_AHEAD_MS } from "../src/crypto/keyring.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { appendEvents, installSigning, intruderAppend, signingNode } from "./helpers/signing-nodes.ts";
import { checkpointKeys, forgeCheckpoint, headSeq, rewrite } from "./helpers/audit-tamper.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The largest value a bigint column holds: no JavaScript number holds it exactly. */
const BIGINT_MAX = "9223372036854775807";






forEachDialect("signing-key rotation, third look: the log's newest times", (fx) => {
  it("attack: one planted row whose time no number holds, in each audit table, does not hide the honest times from the rotation: the newest time is taken over the rows a Date can hold (ASVS 16.4.2) (was: the whole table was ignored, and a slow clock dated the retirement before honest checkpoints)", async () => {
    const db = await fx.fresh();
    const server = await installSigning(db);
    server.clock.advance(DAY);
    await appendEvents(server.audit, 25); // checkpoints at #11 and #21 (init's at #1), signed with the soon-leaked key at the server's clock
    assert.deepEqual((await checkpointKeys(db)).map((c) => c.seq), [1, 11, 21]);
    // The intruder, who can write the database, plants one out-of-range time in each table, below the newest checkpoint
    // (#21) so that the rotation's own chain check, which starts there, does not walk over them.
    const original = await db.db.selectFrom("audit_events").select("at").where("seq", "=", 5).executeTakeFirstOrThrow();
    await db.db.updateTable("audit_events").set({ at: sql<number>`${sql.raw(BIGINT_MAX)}` }).where("seq", "=", 5).execute();
    const three = await db.db.selectFrom("audit_events").select("hash").where("seq", "=", 3).executeTakeFirstOrThrow();
    await db.db.insertInto("audit_checkpoints").values({ seq: 3, hash: three.hash, at: sql<number>`${sql.raw(BIGINT_MAX)}`, key_id: "sk_planted", signature: "AA" }).execute();
    // The operator rotates the key that may have leaked, from an admin host whose clock is 5 minutes slow: the case
    // notBefore exists for (test/signing-key-red-team.test.ts shows it holds without the planted rows).
    const admin = await signingNode(db, server.masterKey, new ManualClock(server.clock.now() - 5 * MINUTE));
    const { to } = await rotateSigningKey({ database: db, keyring: admin.keyring, audit: admin.audit }, "cli:ops");
    assert.ok(to);
    // The operator removes what the intruder planted (restores the row from a backup, deletes the bogus checkpoint).
    await db.db.deleteFrom("audit_checkpoints").where("seq", "=", 3).execute();
    await db.db.updateTable("audit_events").set({ at: Number(original.at) }).where("seq", "=", 5).execute();
    server.clock.advance(2 * SECOND);
    await appendEvents(server.audit, 15);
    const fresh = await signingNode(db, server.masterKey, new ManualClock(server.clock.now()));
    const report = await fresh.audit.verify();
    // Secure: the newest time the rotation honours is the newest a number holds among the rows, not "none" because one
    // row holds something else; the honest checkpoints #10 and #20 then predate the retirement.
    assert.equal(report.ok, true, `after the planted rows are gone, verify still says: ${report.problem?.problem}`);
  });

  it("attack: on SQLite, an event and a checkpoint dated with a fraction of a millisecond are honoured by the rotation, rounded up (was: discarded, with the same false alarm for good)", async (t) => {
    const db = await fx.fresh();
    if (db.dialect !== "sqlite") return t.skip("a bigint column rounds a fractional time on PostgreSQL");
    const server = await installSigning(db);
    server.clock.advance(DAY);
    await appendEvents(server.audit, 25);
    // The intruder holds the signing key that leaked (still current): they append one chain-valid event and vouch for
    // the head with the key, both dated half a millisecond past half an hour ahead. Nothing in the log is false.
    const leaked = await server.keyring.signer();
    const planted = server.clock.now() + 30 * MINUTE + 0.5;
    await intruderAppend(db, planted);
    await forgeCheckpoint(db, leaked, await headSeq(db), planted);
    const before = await server.audit.verify();
    assert.equal(before.ok, true, `the planted rows are visible: ${before.problem?.problem}`);
    const admin = await signingNode(db, server.masterKey, new ManualClock(server.clock.now() - 5 * MINUTE));
    const { to } = await rotateSigningKey({ database: db, keyring: admin.keyring, audit: admin.audit }, "cli:ops");
    assert.ok(to);
    server.clock.advance(2 * SECOND);
    await appendEvents(server.audit, 15);
    const fresh = await signingNode(db, server.masterKey, new ManualClock(server.clock.now()));
    const report = await fresh.audit.verify();
    assert.equal(report.ok, true, `an untouched log verified before the rotation; after it: ${report.problem?.problem}`);
  });

  it("attack: an event planted 59 minutes ahead (inside the hour the keyring honours) dates the retirement at most an hour ahead on each of two rotations, with no drift, and a checkpoint the leaked key signs after the rotation dated inside that window, which the time rule accepts, is refused by the position rule (ASVS 16.4.2, 11.1.1)", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock, masterKey } = await installSigning(db);
    await appendEvents(audit, 12);
    const leaked = await keyring.signer();
    for (let round = 1; round <= 2; round++) {
      clock.advance(round === 1 ? HOUR : 10 * MINUTE); // the second rotation inside the first one's planted lead
      await intruderAppend(db, clock.now() + 59 * MINUTE); // chain-valid: verify finds nothing wrong with it
      const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ops");
      assert.ok(to);
      const created = (await keyring.signer()).keyTimes(to.keyId)?.createdAt ?? null;
      assert.ok(created !== null && created <= clock.now() + NOT_BEFORE_AHEAD_MS, `rotation ${round}: the new key is dated ${created} ms, the clock says ${clock.now()}`);
      await appendEvents(audit, 5);
    }
    const retiredAt = (await keyring.signer()).keyTimes(leaked.keyId)?.retiredAt ?? null;
    assert.ok(retiredAt !== null && retiredAt > clock.now() - 2 * HOUR, "the leaked key's retirement is the first rotation's (plus the planted lead)");
    // The intruder rewrites the newest event and vouches for it with the leaked key, dated inside its (planted) window,
    // where the time rule ("no checkpoint dated after its key's retirement") lets it through.
    const head = await headSeq(db);
    await rewrite(db, head);
    await forgeCheckpoint(db, leaked, head, retiredAt - MINUTE);
    const fresh = await signingNode(db, masterKey, new ManualClock(clock.now()));
    const report = await fresh.audit.verify();
    assert.equal(report.ok, false, "a rewrite vouched for by the leaked key inside the planted window verified");
    assert.match(report.problem?.problem ?? "", new RegExp(`signed with signing key ${leaked.keyId}, which was retired before key sk_\\w+ signed`));
  });
});

forEachDialect("signing-key rotation, third look: held keys whose rows go", (fx) => {
  it("attack: the new signing key's row deleted, restored, then deleted again is reported each time it goes missing (ASVS 16.3.4) (was: reported once, the second deletion silent)", async () => {
    const db = await fx.fresh();
    const { keyring, audit, clock, reports } = await installSigning(db);
    await appendEvents(audit, 12);
    clock.advance(HOUR);
    // The key this process adopted after its own rotation (adoptSigningKey, #addedAt from the local rotation).
    const { to } = await rotateSigningKey({ database: db, keyring, audit }, "cli:ops");
    assert.ok(to);
    const row = await db.db.selectFrom("keyring_keys").selectAll().where("id", "=", to.keyId).executeTakeFirstOrThrow();
    const missing = (): number => reports.filter((r) => r.keyId === to.keyId && r.field === "row").length;
    // 1. The intruder deletes the new key's row (to roll nodes back to the leaked key): reported by the next read, once.
    await db.db.deleteFrom("keyring_keys").where("id", "=", to.keyId).execute();
    await db.db.updateTable("keyring_keys").set({ status: "current" }).where("purpose", "=", "signing").where("id", "!=", to.keyId).execute();
    clock.advance(2 * SECOND);
    await keyring.reload();
    assert.equal(missing(), 1, "the deletion of a key this process adopted was not reported");
    clock.advance(2 * SECOND);
    await keyring.reload();
    assert.equal(missing(), 1, "one deletion reported more than once");
    // 2. The operator, alerted, restores the row as it was.
    await db.db.updateTable("keyring_keys").set({ status: "retired" }).where("purpose", "=", "signing").execute();
    await db.db.insertInto("keyring_keys").values(row).execute();
    clock.advance(2 * SECOND);
    await keyring.reload();
    assert.equal(missing(), 1);
    // 3. Weeks later the intruder deletes it again: a new act of tampering that a node holding the key can see.
    clock.advance(30 * DAY);
    await db.db.deleteFrom("keyring_keys").where("id", "=", to.keyId).execute();
    clock.advance(2 * SECOND);
    await keyring.reload();
    assert.equal(missing(), 2, "the row deleted again after it was restored was not reported");
  });
});

describe("signing-key rotation, third look: `check files` on a baseline signed by a retired key (CLI, SQLite)", () => {
  const root = tempDir("bulwark-sk3-cli-");
  const env = { BULWARK_DATA_DIR: join(root, "data"), BULWARK_MASTER_KEY: "", BULWARK_DATABASE_URL: "" };
  const tree = join(root, "tree");
  const baseline = join(root, "tree.baseline");
  const run = (...args: string[]) => bulwarkInProcess(args, env);
  type JSONFinding = { id: string; severity: string; evidence: Record<string, unknown> };
  const ids = (stdout: string): JSONFinding[] => (JSON.parse(stdout) as { findings: JSONFinding[] }).findings;

  before(async () => {
    mkdirSync(join(tree, "bin"), { recursive: true });
    writeFileSync(join(tree, "bin/tool"), "original\n", { mode: 0o755 });
    const init = await run("init");
    assert.equal(init.code, 0, init.stderr);
    const made = await run("check", "files", "--baseline", baseline, tree);
    assert.equal(made.code, 0, made.stderr);
    const rotated = await run("audit", "rotate-signing-key"); // the yearly rotation, or after a leak
    assert.equal(rotated.code, 0, rotated.stderr);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("attack: the human summary of a compare against a baseline signed with a retired key names the finding actually raised, files.baseline-key-retired (was: it pointed at files.baseline-tampered, which was not raised)", async () => {
    const r = await run("check", "files", "--compare", baseline);
    assert.equal(r.code, 1, r.stderr);
    const reported = [...r.stdout.matchAll(/^\[[A-Z]+\] (\S+):/gm)].map((m) => m[1]);
    assert.ok(reported.includes("files.baseline-key-retired"), r.stdout);
    const named = [...r.stdout.matchAll(/see (files\.[a-z-]+)/g)].map((m) => m[1] as string);
    for (const id of named) assert.ok(reported.includes(id), `the summary says "see ${id}", but the findings are ${reported.join(", ")}:\n${r.stdout}`);
  });

  it("attack: a retired key's baseline is files.baseline-key-retired (critical, exit 1, in --json with its key and retirement) only while nothing else is wrong: with a line appended after its signed trailer, or an entry edited, it is files.baseline-tampered (critical) (ASVS 11.4.3)", async () => {
    const clean = await run("check", "files", "--compare", baseline, "--json");
    assert.equal(clean.code, 1, clean.stderr);
    const verdict = ids(clean.stdout).find((f) => f.id.startsWith("files.baseline-"));
    assert.equal(verdict?.id, "files.baseline-key-retired");
    assert.equal(verdict.severity, "critical");
    assert.match(String(verdict.evidence["keyId"]), /^sk_/);
    assert.equal(typeof verdict.evidence["retiredAt"], "number");
    assert.equal((JSON.parse(clean.stdout) as { trusted: boolean }).trusted, false);
    // Appended after the trailer: the signature still verifies (retiredKeyAt is set), but something else is wrong.
    const appended = join(root, "appended.baseline");
    writeFileSync(appended, readFileSync(baseline));
    appendFileSync(appended, `${JSON.stringify({ path: join(tree, "bin/tool"), type: "file" })}\n`);
    // An entry edited: the signature no longer verifies.
    const edited = join(root, "edited.baseline");
    writeFileSync(edited, readFileSync(baseline, "utf8").replace("\"mode\":\"0755\"", "\"mode\":\"0644\""));
    assert.notEqual(readFileSync(edited, "utf8"), readFileSync(baseline, "utf8"), "the edit changed a line");
    for (const file of [appended, edited]) {
      const r = await run("check", "files", "--compare", file, "--json");
      assert.equal(r.code, 1, r.stderr);
      const found = ids(r.stdout).filter((f) => f.id.startsWith("files.baseline-"));
      assert.deepEqual(found.map((f) => `${f.id}/${f.severity}`), ["files.baseline-tampered/critical"], `${file}: ${r.stdout}`);
    }
  });

  it("attack: files.baseline-key-retired is documented in the files check's findings table with its severity (was: missing)", () => {
    const readme = readFileSync(new URL("../src/checks/files/README.md", import.meta.url), "utf8");
    assert.match(readme, /files\.baseline-tampered/, "the table this test reads moved");
    assert.ok(/\|\s*`files\.baseline-key-retired`\s*\|\s*critical/.test(readme), "files.baseline-key-retired (critical) is missing from the findings table of src/checks/files/README.md");
  });
});
