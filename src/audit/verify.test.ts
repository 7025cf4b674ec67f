// verifyChain and the checkpoint rules on hand-built chains: each case is a tampering (or a trust gap) that
// must now be reported, never passed in silence. ASVS 16.4.2 (logs cannot be modified unseen).
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { describe, it } from "node:test";
import { GENESIS_HASH, checkpointMessage, eventHash, type ChainFields } from "./chain.ts";
import { checkpointKeyCheck, keyFingerprint, parseTrustedKey } from "./trusted-keys.ts";
import { chainFieldsFromExport, checkCheckpointSchedule, verifyChain, type Checkpoint } from "./verify.ts";

type Row = ChainFields & { hash: string };

function chain(n: number): Row[] {
  const rows: Row[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const fields: ChainFields = { seq, id: `evt_${seq}`, type: "t", actor: "a", subject: "s", at: 1000 + seq, requestId: "", prevHash: prev, data: `{"i":${seq}}` };
    prev = eventHash(fields);
    rows.push({ ...fields, hash: prev });
  }
  return rows;
}

async function* from(rows: Row[]): AsyncGenerator<Row> {
  yield* rows;
}

function keyPair(): { publicKey: string; signCheckpoint: (row: Row) => Checkpoint } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const spki = publicKey.export({ format: "der", type: "spki" }).toString("base64url");
  return {
    publicKey: spki,
    signCheckpoint: (row) => ({
      seq: row.seq, hash: row.hash, at: 5, keyId: "sk_test", publicKey: spki,
      signature: sign(null, checkpointMessage(row.seq, row.hash, 5), privateKey).toString("base64url"),
    }),
  };
}

describe("verifyChain: where the chain starts", () => {
  it("attack: an export with its oldest events cut away fails unless it is declared partial", async () => {
    const rows = chain(30).slice(10);
    const report = await verifyChain(from(rows));
    assert.equal(report.ok, false);
    assert.equal(report.problem?.seq, 1);
    assert.match(report.problem?.problem ?? "", /starts at event #11 \(evt_11\), not #1/);
  });

  it("in partial mode, reports the checkpoints before the first event instead of skipping them silently", async () => {
    const rows = chain(30);
    const key = keyPair();
    const checkpoints = [key.signCheckpoint(rows[9]!), key.signCheckpoint(rows[19]!)];
    const keys = checkpointKeyCheck([]);
    const report = await verifyChain(from(rows.slice(14)), { partial: true, checkpoints, verifySignature: (cp) => keys.verify(cp) });
    assert.equal(report.ok, true, report.problem?.problem);
    assert.equal(report.firstSeq, 15);
    assert.equal(report.checkpointsBeforeStart, 1, "the checkpoint at #10 precedes the file");
    assert.equal(report.checkpointsChecked, 1);
    assert.equal(report.uncovered, 10, "events #21 to #30 follow the last verified checkpoint");
  });

  it("attack: a partial export that claims to start at #1 must still link to the genesis hash", async () => {
    const rows = chain(3);
    const forged = { ...rows[0]!, prevHash: "f".repeat(64) };
    forged.hash = eventHash(forged);
    const report = await verifyChain(from([forged]), { partial: true });
    assert.equal(report.ok, false);
    assert.match(report.problem?.problem ?? "", /does not link/);
  });

  it("attack: an event stored at position 0 or below fails", async () => {
    const rows = chain(3);
    const stray = { ...rows[0]!, seq: 0, id: "evt_stray" };
    const report = await verifyChain(from([stray, ...rows]));
    assert.equal(report.ok, false);
    assert.equal(report.problem?.id, "evt_stray");
    assert.match(report.problem?.problem ?? "", /outside the chain/);
  });
});

describe("verifyChain: head and checkpoints", () => {
  it("attack: a head behind the newest event fails", async () => {
    const rows = chain(5);
    const report = await verifyChain(from(rows), { head: { seq: 3, hash: rows[2]!.hash } });
    assert.equal(report.ok, false);
    assert.equal(report.problem?.seq, 4);
    assert.match(report.problem?.problem ?? "", /head records #3, but the log continues to #5/);
  });

  it("never counts a checkpoint whose signature could not be checked as verified", async () => {
    const rows = chain(10);
    const garbage: Checkpoint = { seq: 10, hash: rows[9]!.hash, at: 1, keyId: "sk_x", signature: "AAAA" };
    const report = await verifyChain(from(rows), { checkpoints: [garbage], verifySignature: () => null });
    assert.equal(report.ok, true);
    assert.equal(report.checkpointsChecked, 0);
    assert.equal(report.checkpointsUnchecked, 1);
    assert.equal(report.uncovered, 10, "an unchecked checkpoint covers nothing");
  });

  it("states how many of the newest events no verified checkpoint covers", async () => {
    const rows = chain(25);
    const key = keyPair();
    const keys = checkpointKeyCheck([]);
    const report = await verifyChain(from(rows), { checkpoints: [key.signCheckpoint(rows[9]!), key.signCheckpoint(rows[19]!)], verifySignature: (cp) => keys.verify(cp) });
    assert.equal(report.ok, true);
    assert.equal(report.lastCheckpointSeq, 20);
    assert.equal(report.lastCheckpointAt, key.signCheckpoint(rows[19]!).at, "when the newest verified checkpoint was signed");
    assert.equal(report.lastEventAt, rows[24]!.at, "when the newest event was appended");
    assert.equal(report.uncovered, 5);
  });

  it("attack: checkpoints re-signed with the attacker's own key fail once the real key is pinned, by key or by fingerprint", async () => {
    const rows = chain(10);
    const real = keyPair();
    const attacker = keyPair();
    const forged = attacker.signCheckpoint(rows[9]!);
    const unpinned = checkpointKeyCheck([]);
    assert.equal((await verifyChain(from(rows), { checkpoints: [forged], verifySignature: (cp) => unpinned.verify(cp) })).ok, true, "the file's own key is trusted when nothing is pinned");
    assert.deepEqual(unpinned.used(), [{ fingerprint: keyFingerprint(attacker.publicKey), pinned: false }], "and its fingerprint is shown for comparison");
    for (const pin of [real.publicKey, keyFingerprint(real.publicKey)]) {
      const keys = checkpointKeyCheck([parseTrustedKey(pin)]);
      const report = await verifyChain(from(rows), { checkpoints: [forged], verifySignature: (cp) => keys.verify(cp) });
      assert.equal(report.ok, false, pin);
      assert.match(report.problem?.problem ?? "", /invalid signature/);
    }
    const keys = checkpointKeyCheck([parseTrustedKey(keyFingerprint(real.publicKey))]);
    assert.equal((await verifyChain(from(rows), { checkpoints: [real.signCheckpoint(rows[9]!)], verifySignature: (cp) => keys.verify(cp) })).ok, true);
    assert.deepEqual(keys.used(), [{ fingerprint: keyFingerprint(real.publicKey), pinned: true }]);
    assert.throws(() => parseTrustedKey("sha256:abc"), /64 hex digits/);
    assert.throws(() => parseTrustedKey("not-a-key"), /not an Ed25519 public key/);
  });
});

describe("checkCheckpointSchedule", () => {
  it("passes the schedule an intact log keeps, with checkpoints taken off it too", () => {
    assert.equal(checkCheckpointSchedule([10, 20, 30], 39, 10), null);
    assert.equal(checkCheckpointSchedule([10, 14, 24, 34], 40, 10), null);
    assert.equal(checkCheckpointSchedule([], 9, 10), null);
  });

  it("attack: a deleted checkpoint in the middle, at the start or at the end fails", () => {
    assert.match(checkCheckpointSchedule([10, 30], 35, 10)?.problem ?? "", /#11 to #29 \(19 in a row/);
    assert.equal(checkCheckpointSchedule([20, 30], 35, 10)?.seq, 1);
    assert.match(checkCheckpointSchedule([10], 25, 10)?.problem ?? "", /#11 to #25 .*up to the newest event.*rewritten/);
    assert.ok(checkCheckpointSchedule([], 15, 10), "every stored checkpoint deleted");
  });
});

describe("chainFieldsFromExport", () => {
  it("hashes an altered row's verbatim rawData, so offline verify agrees with the database", () => {
    const row = chain(1)[0]!;
    const altered = { ...row, data: "{not json" };
    altered.hash = eventHash(altered);
    const exported = { ...altered, data: null, rawData: "{not json" };
    assert.equal(eventHash(chainFieldsFromExport(exported)), altered.hash);
  });

  it("attack: a field added to an exported line (covered by no hash) is refused, not carried along under a verified verdict", () => {
    const row = chain(1)[0]!;
    const line = { ...row, data: JSON.parse(row.data) as unknown };
    assert.equal(eventHash(chainFieldsFromExport(line)), row.hash);
    assert.throws(() => chainFieldsFromExport({ ...line, approvedBy: "ciso@example.com" } as never), /"approvedBy" is not a field of an exported event/);
  });
});
