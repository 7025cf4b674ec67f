// End-to-end attacks on `bulwark audit …`: exports cut short or re-signed, altered rows, a head left behind, a
// failed export. Each must now be caught or refused. ASVS 16.4.2 (logs cannot be modified unseen).
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { chainFieldsFromExport, checkpointMessage, eventHash } from "../src/audit/index.ts";
import { bulwark, bulwarkHere, bulwarkInProcess } from "./helpers/cli.ts";


let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-audit-cli-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;

/** A data dir initialised by the CLI, then grown to about `n` events by an app (checkpoints every 1,000). */
async function dataDir(n: number): Promise<{ dir: string; env: { BULWARK_DATA_DIR: string } }> {
  const dir = join(root, `d${++counter}`);
  const init = await bulwarkHere(["init"], { env: { BULWARK_DATA_DIR: dir } });
  assert.equal(init.code, 0, init.stderr);
  const app = await openApp({ env: { BULWARK_DATA_DIR: dir, BULWARK_LOG_LEVEL: "silent" }, mode: "open" });
  const have = (await app.audit.tail(1))[0]?.seq ?? 0;
  for (let i = have; i < n; i++) await app.audit.append({ type: "demo.event", actor: `user${i % 7}`, subject: `s${i}`, data: { i }, requestId: `req${i}` });
  await app.close();
  return { dir, env: { BULWARK_DATA_DIR: dir } };
}

function lines(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
}

function write(name: string, rows: unknown[]): string {
  const path = join(root, name);
  writeFileSync(path, rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
  return path;
}

describe("audit verify --file (offline)", () => {
  let exportFile: string;
  let cpFile: string;
  let fingerprint: string;
  before(async () => {
    const { env } = await dataDir(2500);
    exportFile = join(root, "whole.jsonl");
    cpFile = join(root, "checkpoints.jsonl");
    assert.equal((await bulwarkHere(["audit", "export", "--output", exportFile], { env: env })).code, 0);
    const cp = await bulwarkHere(["audit", "checkpoint", "--export", cpFile], { env: env });
    assert.equal(cp.code, 0, cp.stderr);
    fingerprint = /signing key sk_\w+: (sha256:[0-9a-f]{64})/.exec(cp.stderr)?.[1] ?? "(none printed)";
  });

  it("verifies a whole export against its checkpoints and prints the fingerprint of the key it trusted", async () => {
    assert.match(fingerprint, /^sha256:/, "checkpoint --export names its key's fingerprint");
    const r = await bulwark(["audit", "verify", "--file", exportFile, "--checkpoints", cpFile]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // Init's first checkpoint, the scheduled ones 1,000 and 2,000 events past it, and the one signed for the export.
    assert.match(r.stdout, /4 checkpoint\(s\) verified/);
    // A log cut back to a stored checkpoint verifies intact: the times are what shows it ends early.
    assert.match(r.stdout, /newest event #\d+ appended \d{4}-\d\d-\d\dT[\d:.]+Z; newest verified checkpoint #\d+ signed \d{4}-\d\d-\d\dT[\d:.]+Z \(a log ending earlier than you expect was cut back\)/);
    assert.ok(r.stdout.includes(`verified with key ${fingerprint} (taken from the checkpoint file`), r.stdout);
  });

  it("attack: a line carrying forged data beside the original text as rawData is refused, not verified (rawData only ever replaces data: null)", async () => {
    const rows = lines(exportFile);
    const target = rows[15] as Record<string, unknown>;
    rows[15] = { ...target, rawData: JSON.stringify(target["data"]), data: { purpose: "FORGED-by-attacker" } };
    const r = await bulwarkInProcess(["audit", "verify", "--file", write("forged-rawdata.jsonl", rows), "--checkpoints", cpFile]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /line 16: not a line audit export writes: rawData .* must be text, and data must then be null/);
  });

  it("attack: a line that repeats a key (a forged value shown first, the hashed one last) is refused by line, at the top and nested in data", async () => {
    const text = readFileSync(exportFile, "utf8").split("\n").filter((l) => l !== "");
    // Lines of the demo events (init writes one event per migration before them, so their place moves with each one).
    const at = text.findIndex((l) => l.includes('"type":"demo.event"')) + 20;
    const nestedAt = at + 10;
    const original = JSON.parse(text[at]!) as { actor: string; data: { i: number } };
    // A reader (or a parser that keeps the first value) sees "mallory"; JSON.parse keeps the real actor, so the hash matches.
    const topForged = [...text];
    topForged[at] = text[at]!.replace(/^\{/, '{"actor":"mallory",');
    assert.equal((JSON.parse(topForged[at]!) as { actor: string }).actor, original.actor, "the forged line still parses to the original event");
    const top = join(root, "dup-top.jsonl");
    writeFileSync(top, `${topForged.join("\n")}\n`);
    const r = await bulwarkInProcess(["audit", "verify", "--file", top, "--checkpoints", cpFile]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`line ${at + 1}: has the key "actor" more than once; Bulwark never writes a repeated key`));
    assert.doesNotMatch(r.stdout, /intact/);

    const nestedForged = [...text];
    nestedForged[nestedAt] = text[nestedAt]!.replace(/"data":\{"i":/, '"data":{"i":999999,"i":');
    const nested = join(root, "dup-nested.jsonl");
    writeFileSync(nested, `${nestedForged.join("\n")}\n`);
    const n = await bulwarkInProcess(["audit", "verify", "--file", nested, "--checkpoints", cpFile]);
    assert.equal(n.code, 2, n.stdout + n.stderr);
    assert.match(n.stderr, new RegExp(`line ${nestedAt + 1}: has the key "data\\.i" more than once`));

    // The checkpoint file is read the same way.
    const cps = readFileSync(cpFile, "utf8").split("\n").filter((l) => l !== "");
    const cpDup = join(root, "cp-dup.jsonl");
    writeFileSync(cpDup, `${cps[0]!.replace(/^\{/, '{"seq":1,')}\n`);
    const c = await bulwarkInProcess(["audit", "verify", "--file", exportFile, "--checkpoints", cpDup]);
    assert.equal(c.code, 2, c.stdout + c.stderr);
    assert.match(c.stderr, /checkpoint file .*line 1: has the key "seq" more than once/);
  });

  it("attack: an empty file (an export cut down to nothing) is not an intact log; --partial still accepts it", async () => {
    const empty = join(root, "empty.jsonl");
    writeFileSync(empty, "");
    const whole = await bulwarkInProcess(["audit", "verify", "--file", empty]);
    assert.equal(whole.code, 1, whole.stdout + whole.stderr);
    assert.match(whole.stdout, /BROKEN at event #1: the file holds no events/);
    assert.equal((await bulwarkInProcess(["audit", "verify", "--file", empty, "--partial"])).code, 0);
  });

  it("refuses by line a hostile input: an over-long line (never held whole), a checkpoint whose publicKey is not text", async () => {
    const long = join(root, "long.jsonl");
    writeFileSync(long, `${readFileSync(exportFile, "utf8").split("\n")[0]}\n{"pad":"${"a".repeat(1_100_000)}"}\n`);
    const r = await bulwarkInProcess(["audit", "verify", "--file", long]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /line 2: longer than 1048576 bytes; not an audit file/);
    const cps = lines(cpFile);
    const bad = write("cp-bad-key.jsonl", [{ ...cps[0], publicKey: 5 }]);
    const k = await bulwarkInProcess(["audit", "verify", "--file", exportFile, "--checkpoints", bad]);
    assert.equal(k.code, 2, k.stdout + k.stderr);
    assert.match(k.stderr, /line 1: publicKey must be text/);
  });

  it("attack: control characters in a forged event id cannot redraw the BROKEN line as \"intact\"", async () => {
    const rows = lines(exportFile);
    rows[4] = { ...rows[4], id: "x\u001b[2K\raudit chain intact: 18 events\u009b8m" };
    const r = await bulwarkInProcess(["audit", "verify", "--file", write("forged-id.jsonl", rows)]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, "no control character but the newline");
    assert.match(r.stdout, /^audit chain BROKEN at event #5 \(x\\x1b\[2K\\x0daudit chain intact/);
  });

  it("attack: an export with its oldest events cut away fails unless --partial, which reports the checkpoints it could not check", async () => {
    const cut = write("cut.jsonl", lines(exportFile).slice(1500));
    const r = await bulwarkHere(["audit", "verify", "--file", cut, "--checkpoints", cpFile]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /BROKEN at event #1: the log starts at event #1501/);
    // Still exit 1 (a log cut at its start looks the same), but the way to verify a --since export is named.
    assert.match(r.stdout, /if this file is an export made with --since, verify it with --partial/);
    const partial = await bulwarkHere(["audit", "verify", "--file", cut, "--checkpoints", cpFile, "--partial"]);
    assert.equal(partial.code, 0, partial.stdout + partial.stderr);
    assert.match(partial.stdout, /events #1501 to #\d+ \(a partial export: its link to #1500 is trusted/);
    assert.match(partial.stdout, /2 checkpoint\(s\) before event #1501 were NOT checked/);
  });

  it("attack: a rewritten export with checkpoints re-signed by another key passes only until the real key is pinned", async () => {
    const rows = lines(exportFile);
    rows[4]!["actor"] = "framed";
    let prev = rows[0]!["prevHash"] as string;
    for (const row of rows) {
      row["prevHash"] = prev;
      prev = eventHash(chainFieldsFromExport(row as never));
      row["hash"] = prev;
    }
    const rewritten = write("rewritten.jsonl", rows);
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const last = rows.at(-1)!;
    const seq = last["seq"] as number;
    const forged = write("forged-checkpoints.jsonl", [{
      seq, hash: prev, at: 1, keyId: "sk_real_looking", publicKey: publicKey.export({ format: "der", type: "spki" }).toString("base64url"),
      signature: sign(null, checkpointMessage(seq, prev, 1), privateKey).toString("base64url"),
    }]);
    const trusting = await bulwarkHere(["audit", "verify", "--file", rewritten, "--checkpoints", forged]);
    assert.equal(trusting.code, 0, "a key inside the file proves nothing by itself");
    assert.ok(!trusting.stdout.includes(fingerprint), "but the fingerprint printed is not the one recorded at export");
    for (const pin of [fingerprint, (lines(cpFile)[0]!["publicKey"] as string)]) {
      const pinned = await bulwarkHere(["audit", "verify", "--file", rewritten, "--checkpoints", forged, "--public-key", pin]);
      assert.equal(pinned.code, 1, pinned.stdout + pinned.stderr);
      assert.match(pinned.stdout, /invalid signature/);
    }
    const genuine = await bulwarkHere(["audit", "verify", "--file", exportFile, "--checkpoints", cpFile, "--public-key", fingerprint]);
    assert.equal(genuine.code, 0, genuine.stdout + genuine.stderr);
    assert.ok(genuine.stdout.includes(`${fingerprint} (pinned by --public-key)`));
    assert.equal((await bulwarkHere(["audit", "verify", "--file", exportFile, "--public-key", "sha256:00"])).code, 2);
  });
});

describe("audit export, tail and verify on an altered row", () => {
  it("attack: data that is not JSON is exported verbatim and flagged, shown by tail, and named by both verifies", async () => {
    const { dir, env } = await dataDir(10);
    const db = new DatabaseSync(join(dir, "bulwark.db"));
    db.exec("UPDATE audit_events SET data = '{not json' WHERE seq = 3");
    const stored = (db.prepare("SELECT count(*) AS n FROM audit_events").get() as { n: number }).n;
    db.close();
    const out = join(root, "altered.jsonl");
    const ex = await bulwark(["audit", "export", "--output", out], { env });
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stderr, /1 event\(s\) hold stored data that is not a JSON object, or not in canonical form .*first #3/);
    const exported = lines(out);
    assert.equal(exported.length, stored, "the export is complete");
    assert.deepEqual([exported[2]!["data"], exported[2]!["rawData"]], [null, "{not json"]);
    const tail = await bulwarkHere(["audit", "tail", "-n", "100"], { env: env });
    assert.equal(tail.code, 0, tail.stderr);
    assert.match(tail.stdout, /#3 .*DATA NOT AS BULWARK WRITES IT \(altered row\) "\{not json"/);
    const tailJSON = await bulwarkHere(["audit", "tail", "-n", "100", "--json"], { env: env });
    assert.equal(JSON.parse(tailJSON.stdout.split("\n")[2]!).rawData, "{not json");
    for (const args of [["audit", "verify"], ["audit", "verify", "--file", out]]) {
      const r = await bulwarkHere(args, { env: env });
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stdout, /BROKEN at event #3 .*altered/, args.join(" "));
    }
  });

  it("stored data in another key order, with a hash made to match, gets the same verdict from the database and from an export", async () => {
    // Past init's events, which its first checkpoint signs: the rewritten event is one no checkpoint covers yet.
    const { dir, env } = await dataDir(60);
    const db = new DatabaseSync(join(dir, "bulwark.db"));
    const last = db.prepare("SELECT seq, id, type, actor, subject, at, request_id, prev_hash FROM audit_events ORDER BY seq DESC LIMIT 1").get() as Record<string, string | number>;
    // Rewritten by hand as whoever holds the database could: non-canonical text, its hash and the head made consistent.
    const text = '{"z":1,"a":2}';
    const fields = { seq: Number(last["seq"]), id: String(last["id"]), type: String(last["type"]), actor: String(last["actor"]), subject: String(last["subject"]), at: Number(last["at"]), requestId: String(last["request_id"]), prevHash: String(last["prev_hash"]), data: text };
    const hash = eventHash(fields);
    db.prepare("UPDATE audit_events SET data = ?, hash = ? WHERE seq = ?").run(text, hash, fields.seq);
    db.prepare("UPDATE audit_head SET hash = ? WHERE id = 1").run(hash);
    db.close();
    const out = join(root, "noncanonical.jsonl");
    assert.equal((await bulwarkHere(["audit", "export", "--output", out], { env: env })).code, 0);
    assert.deepEqual([lines(out).at(-1)!["data"], lines(out).at(-1)!["rawData"]], [null, text], "exported verbatim, as an altered row");
    const inDatabase = await bulwarkInProcess(["audit", "verify"], env);
    const offline = await bulwarkInProcess(["audit", "verify", "--file", out]);
    assert.equal(offline.code, inDatabase.code, `database: ${inDatabase.stdout}; offline: ${offline.stdout}`);
  });

  it("attack: a user agent holding C1 controls (8-bit CSI/OSC) reaches tail's terminal output escaped, never raw", async () => {
    const { dir, env } = await dataDir(3);
    const app = await openApp({ env: { BULWARK_DATA_DIR: dir, BULWARK_LOG_LEVEL: "silent" }, mode: "open" });
    // What Node hands over for header bytes 0x9b and 0x9d: the latin1 characters U+009B and U+009D.
    await app.audit.append({ type: "auth.login.failed", actor: "anonymous", subject: "id:x", data: { userAgent: "ua\u009b2J\u009d0;pwned\u009c" } });
    await app.close();
    const tail = await bulwarkHere(["audit", "tail", "-n", "1"], { env: env });
    assert.equal(tail.code, 0, tail.stderr);
    assert.doesNotMatch(tail.stdout, /[\u0080-\u009f]/, "no C1 control on the terminal");
    assert.match(tail.stdout, /ua\\x9b2J\\x9d0;pwned\\x9c/);
    const json = await bulwarkInProcess(["audit", "tail", "-n", "1", "--json"], env);
    assert.equal(json.code, 0, json.stderr);
    assert.doesNotMatch(json.stdout, /[\u0080-\u009f]/, "--json writes C1 as \\u escapes");
    assert.equal((JSON.parse(json.stdout) as { data: { userAgent: string } }).data.userAgent, "ua\u009b2J\u009d0;pwned\u009c", "and parses to the same text");
  });

  it("an export that fails halfway leaves no file behind", async () => {
    const { dir, env } = await dataDir(10);
    const db = new DatabaseSync(join(dir, "bulwark.db"));
    // Enough rows for more than one page, then one no JavaScript number can hold: reading it fails mid-export.
    db.exec(`WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < 26000)
      INSERT INTO audit_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) SELECT i, 'evt_' || i, 't', 'a', '', '{}', 0, '', '', '' FROM n`);
    db.exec("INSERT INTO audit_events (seq, id, type, actor, subject, data, at, request_id, prev_hash, hash) VALUES (9007199254740993, 'evt_big', 't', 'a', '', '{}', 0, '', '', '')");
    db.close();
    const outDir = mkdtempSync(join(root, "out-"));
    const out = join(outDir, "export.jsonl");
    const ex = await bulwarkHere(["audit", "export", "--output", out], { env: env });
    assert.equal(ex.code, 3, ex.stderr);
    assert.equal(existsSync(out), false, "no partial export presented as complete");
    assert.deepEqual(readdirSync(outDir), [], "and no temporary file left");
  });
});

describe("audit repair-head", () => {
  it("attack: a head moved back stops appends with a message naming the repair, which moves it and records itself", async () => {
    // Well past what init writes (one event per migration), so the log's end is this test's own.
    const { dir, env } = await dataDir(60);
    const db = new DatabaseSync(join(dir, "bulwark.db"));
    db.exec("UPDATE audit_head SET seq = 20, hash = (SELECT hash FROM audit_events WHERE seq = 20) WHERE id = 1");
    db.close();
    const verify = await bulwarkHere(["audit", "verify"], { env: env });
    assert.equal(verify.code, 1);
    assert.match(verify.stdout, /head records #20, but the log continues to #60/);
    const app = await openApp({ env: { ...env, BULWARK_LOG_LEVEL: "silent" }, mode: "open" });
    await assert.rejects(app.audit.append({ type: "t" }), /bulwark audit repair-head/);
    await app.close();
    const repair = await bulwark(["audit", "repair-head"], { env });
    assert.equal(repair.code, 0, repair.stderr);
    assert.match(repair.stdout, /moved from #20 to #60/);
    const after = await bulwarkHere(["audit", "verify"], { env: env });
    assert.equal(after.code, 0, after.stdout);
    const again = await bulwarkHere(["audit", "repair-head"], { env: env });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /nothing to repair/);
  });
});

describe("audit rotate-signing-key", () => {
  it("rotates the checkpoint signing key: --dry-run changes nothing; the rotation prints the new fingerprint, a checkpoint it signed, and verify holds old and new checkpoints (ASVS 11.2.2)", async () => {
    const { env } = await dataDir(1200);
    const dry = await bulwarkHere(["audit", "rotate-signing-key", "--dry-run", "--json"], { env: env });
    assert.equal(dry.code, 0, dry.stderr);
    const planned = JSON.parse(dry.stdout) as { dryRun: boolean; from: { keyId: string; checkpoints: number }; to: null };
    assert.equal(planned.dryRun, true);
    assert.equal(planned.to, null);
    assert.equal(planned.from.checkpoints, 2, "init's first checkpoint and the scheduled one");
    const again = await bulwarkHere(["audit", "rotate-signing-key", "--dry-run", "--json"], { env: env });
    assert.deepEqual(JSON.parse(again.stdout), planned, "a dry run changed nothing");

    const done = await bulwark(["audit", "rotate-signing-key"], { env });
    assert.equal(done.code, 0, done.stderr);
    const fingerprint = /new signing key (sk_\w+): (sha256:[0-9a-f]{64})/.exec(done.stdout);
    assert.ok(fingerprint, done.stdout);
    assert.match(done.stdout, new RegExp(`signing key ${planned.from.keyId} retired; ${fingerprint[1]} is current and signed the checkpoint at event #\\d+`));
    assert.match(done.stderr, /record the new fingerprint apart from the database/);
    const verify = await bulwarkHere(["audit", "verify", "--json"], { env: env });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.equal((JSON.parse(verify.stdout) as { checkpointsChecked: number }).checkpointsChecked, 3);

    // Exported, the checkpoints carry both keys, and the fingerprint of each is printed to record.
    const cpFile = join(root, `rotated-${counter}.jsonl`);
    const exported = await bulwarkHere(["audit", "checkpoint", "--export", cpFile], { env: env });
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stderr, new RegExp(`signing key ${fingerprint[1]}: ${fingerprint[2]}`));
    assert.match(exported.stderr, new RegExp(`signing key ${planned.from.keyId}: sha256:`));
  });
});
