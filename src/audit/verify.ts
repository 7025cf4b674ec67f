// Verifies a hash chain from any ordered source of events (the database or an exported file), and
// checks it against signed checkpoints: an attacker who rewrites the whole table cannot also match a
// checkpoint exported earlier, nor sign a new one without the master key.
import { canonicalJSON } from "./canonical.ts";
import { auditErrors } from "./errors.ts";
import { GENESIS_HASH, checkpointMessage, eventHash, type ChainFields } from "./chain.ts";
import { isEventTime } from "./event-time.ts";

export interface Checkpoint {
  seq: number;
  hash: string;
  at: number;
  keyId: string;
  /** base64url Ed25519 signature over checkpointMessage(seq, hash, at). */
  signature: string;
  /** SPKI DER, base64url; present in exports so they verify without the keyring. */
  publicKey?: string;
}

export interface VerifyProblem {
  /** Position of the first broken event. */
  seq: number;
  /** The event's id, when the row exists. */
  id: string | null;
  problem: string;
}

export interface VerifyReport {
  ok: boolean;
  events: number;
  /** Position of the first event read (1 for a whole log; later for a partial export), 0 when there is none. */
  firstSeq: number;
  lastSeq: number;
  lastHash: string;
  /** Checkpoints whose hash matched and whose signature verified. */
  checkpointsChecked: number;
  /** Checkpoints whose hash matched but whose signature could not be checked here (no key): not counted as verified. */
  checkpointsUnchecked: number;
  /** Partial exports only: checkpoints before the first event, which could not be checked at all. */
  checkpointsBeforeStart: number;
  /** Position of the newest checkpoint that was verified (hash and signature), 0 when none was. */
  lastCheckpointSeq: number;
  /**
   * When that checkpoint was signed, and when the newest event read was appended (ms; null when none). A log cut
   * back to a stored checkpoint ends at it, intact: these times are what lets an operator see it ends too early.
   */
  lastCheckpointAt: number | null;
  lastEventAt: number | null;
  /**
   * Events after `lastCheckpointSeq`: held only by the chain and the head row, which an attacker with the
   * database can rewrite together. Only a checkpoint exported (or anchored) later covers them.
   */
  uncovered: number;
  problem: VerifyProblem | null;
}

export interface VerifyOptions {
  /** The chain head as recorded (seq and hash of the newest event), when known. */
  head?: { seq: number; hash: string } | null;
  /** Checkpoints to hold the chain against (from the database and/or an export). */
  checkpoints?: Checkpoint[];
  /**
   * Checks a checkpoint's signature: true when it verifies, false when it does not (the chain fails), null when
   * it cannot be checked here (no key): then only its hash is held against the chain and it is not counted as
   * verified.
   */
  verifySignature?: (checkpoint: Checkpoint) => boolean | null;
  onProgress?: (events: number) => void;
  /**
   * Accept a chain that starts after event #1 (a partial export), trusting its first link. Checkpoints before
   * its first event cannot be checked; they are counted in `checkpointsBeforeStart`, never silently passed.
   */
  partial?: boolean;
}

/**
 * Takes events in seq order — one by one, or in pages (arrays), which avoids an await per event — and stops
 * at the first problem, naming it.
 */
export async function verifyChain(events: AsyncIterable<ChainFields | ChainFields[]>, options: VerifyOptions = {}): Promise<VerifyReport> {
  const pending = new Map<number, Checkpoint[]>();
  let checkpointsChecked = 0;
  let checkpointsUnchecked = 0;
  let checkpointsBeforeStart = 0;
  let lastCheckpointSeq = 0;
  let lastCheckpointAt: number | null = null;
  let lastEventAt: number | null = null;
  for (const cp of options.checkpoints ?? []) {
    const list = pending.get(cp.seq) ?? [];
    list.push(cp);
    pending.set(cp.seq, list);
  }
  let expected = 1;
  let prev = GENESIS_HASH;
  let count = 0;
  let firstSeq = 0;
  const report = (problem: VerifyProblem | null): VerifyReport => {
    const lastSeq = expected - 1;
    return {
      ok: problem === null, events: count, firstSeq, lastSeq, lastHash: prev, checkpointsChecked, checkpointsUnchecked,
      checkpointsBeforeStart, lastCheckpointSeq, lastCheckpointAt, lastEventAt, uncovered: Math.max(0, lastSeq - Math.max(lastCheckpointSeq, firstSeq - 1)), problem,
    };
  };
  const fail = (seq: number, id: string | null, problem: string): VerifyReport => report({ seq, id, problem });

  for await (const item of events) {
   const page = Array.isArray(item) ? item : [item];
   for (const e of page) {
    // Positions start at 1. A row below it is outside every page a reader walks, so it must be named, not skipped.
    if (!(e.seq >= 1)) return fail(e.seq, e.id, `event #${e.seq} (${e.id}) is outside the chain: positions start at #1 (an inserted or renumbered row)`);
    if (count === 0) {
      firstSeq = e.seq;
      // A partial export's first event links to one that is not in the file: its prev_hash is trusted. One that
      // starts at #1 is whole, so its first link is checked against the genesis hash like any other.
      if (options.partial && e.seq > 1) {
        expected = e.seq;
        prev = e.prevHash;
        for (const [seq, list] of pending) {
          if (seq < e.seq) {
            checkpointsBeforeStart += list.length;
            pending.delete(seq);
          }
        }
      }
    }
    if (e.seq !== expected) {
      if (e.seq > expected) {
        if (count === 0) return fail(1, null, `the log starts at event #${e.seq} (${e.id}), not #1: events #1 to #${e.seq - 1} are missing`);
        return fail(expected, null, `event #${expected} is missing: the chain jumps from #${expected - 1} to #${e.seq} (${e.id})`);
      }
      return fail(e.seq, e.id, `event #${e.seq} (${e.id}) is out of order: expected #${expected}`);
    }
    if (e.prevHash !== prev) {
      return fail(e.seq, e.id, `event #${e.seq} (${e.id}) does not link to event #${e.seq - 1}: its prev_hash differs from that event's hash (removed, reordered or rewritten events)`);
    }
    const actual = eventHash(e);
    if (actual !== (e as ChainFields & { hash: string }).hash) {
      return fail(e.seq, e.id, `event #${e.seq} (${e.id}) was altered: its content does not match its hash`);
    }
    // Re-hashed with a time no append writes (past what a Date holds): named here too, so an offline verify of an
    // export reaches the database's verdict, and no report carries a time that cannot be shown.
    if (!isEventTime(e.at)) return fail(e.seq, e.id, untimelyProblem(e.seq, e.id, String(e.at)));
    const cps = pending.get(e.seq);
    if (cps) {
      for (const cp of cps) {
        if (cp.hash !== actual) {
          return fail(e.seq, e.id, `event #${e.seq} (${e.id}) differs from the signed checkpoint taken at that position (the chain was rewritten)`);
        }
        const signature = options.verifySignature ? options.verifySignature(cp) : null;
        if (signature === false) {
          return fail(e.seq, e.id, `the checkpoint at event #${e.seq} has an invalid signature (forged or tampered checkpoint, or signed by a key that is not trusted)`);
        }
        // An unchecked signature proves nothing: anyone who can write the table can write a checkpoint row.
        if (signature === null) {
          checkpointsUnchecked++;
        } else {
          checkpointsChecked++;
          lastCheckpointSeq = e.seq;
          lastCheckpointAt = cp.at;
        }
      }
      pending.delete(e.seq);
    }
    prev = actual;
    lastEventAt = e.at;
    expected++;
    count++;
    if (options.onProgress && count % 50_000 === 0) options.onProgress(count);
   }
  }
  const last = expected - 1;
  const head = options.head;
  if (head && head.seq > last) {
    return fail(last + 1, null, `event #${last + 1} is missing: the chain head records ${head.seq} events but the log ends at #${last} (newest events deleted)`);
  }
  if (head && head.seq < last) {
    // Appends link to the head, so a head behind the log also stops every append (they collide with stored rows).
    return fail(head.seq + 1, null, `the chain head records #${head.seq}, but the log continues to #${last} (the head was moved back, or events were inserted without its trigger)`);
  }
  if (head && head.seq === last && head.hash !== prev) {
    return fail(last, null, `the chain head's hash does not match event #${last} (the newest event was altered)`);
  }
  for (const [seq] of pending) {
    if (seq > last) return fail(last + 1, null, `a signed checkpoint covers event #${seq}, but the log ends at #${last} (events deleted)`);
    // Below the first event of a whole log (a checkpoint at #0 or less): it matches no event at all.
    return fail(seq, null, `a checkpoint names position #${seq}, which no event can hold (forged checkpoint)`);
  }
  return report(null);
}

/**
 * The most consecutive events that may go without a stored checkpoint when one is taken every `every` events.
 * The schedule (see AuditLog) signs the append that reaches `every` events past the newest checkpoint, in the
 * same transaction, so an intact log never has more than `every - 1` such events in a row. One deleted
 * scheduled checkpoint leaves `2 × every - 1`. The limit sits halfway between, so the rule has room for
 * checkpoints taken off the schedule (shutdown, `audit checkpoint`) and still catches a single deletion.
 */
export function checkpointRunLimit(every: number): number {
  return every + Math.floor(every / 2);
}

/**
 * Holds stored checkpoint positions to the schedule: fails when `checkpointRunLimit(every)` or more events in
 * a row (from the start, between two checkpoints, or after the last one) have no stored checkpoint.
 *
 * @example
 * checkCheckpointSchedule([10, 30], 35, 10) // a problem: events #11 to #29 (19 in a row) have none
 */
export function checkCheckpointSchedule(seqs: number[], lastSeq: number, every: number): VerifyProblem | null {
  const limit = checkpointRunLimit(every);
  let previous = 0;
  for (const seq of [...seqs.filter((s) => s <= lastSeq).sort((a, b) => a - b), lastSeq + 1]) {
    const run = seq - previous - 1;
    if (run >= limit) {
      const before = previous === 0 ? "from the start of the log" : `after the one at #${previous}`;
      const after = seq > lastSeq ? "up to the newest event" : `before the next at #${seq}`;
      return {
        seq: previous + 1,
        id: null,
        problem: `events #${previous + 1} to #${seq - 1} (${run} in a row, ${before}, ${after}) have no stored checkpoint, though one is signed ` +
          `every ${every} events: a stored checkpoint was deleted${seq > lastSeq ? ", or the newest events were rewritten" : ""}`,
      };
    }
    previous = seq;
  }
  return null;
}

/** The fields of an exported event line (AuditEvent). */
const EXPORT_FIELDS = new Set(["seq", "id", "type", "actor", "subject", "data", "rawData", "at", "requestId", "prevHash", "hash"]);

/**
 * Re-encodes an exported event's data to the text its hash covers: the canonical JSON of `data`, or, for an
 * event whose stored data was not a JSON object (an altered row, exported verbatim), its `rawData`.
 */
export function chainFieldsFromExport(e: {
  seq: number; id: string; type: string; actor: string; subject: string; at: number; requestId: string; prevHash: string; hash: string; data: unknown; rawData?: unknown;
}): ChainFields & { hash: string } {
  // Only the fields export writes: anything else (`"approvedBy": …` added to a line) is covered by no hash, yet a
  // reader of a file that verified would take it as part of the record.
  for (const key of Object.keys(e)) {
    if (!EXPORT_FIELDS.has(key)) throw auditErrors.badExportLine(`"${key.slice(0, 40)}" is not a field of an exported event (no hash covers it)`);
  }
  // rawData stands in for data only as export writes it: with data null. A line carrying both would have its
  // rawData hashed while a reader of the file sees data — forged values under a "verified" verdict.
  if (e.rawData !== undefined && (typeof e.rawData !== "string" || e.data !== null)) {
    throw auditErrors.badExportLine("rawData (an altered row's verbatim data) must be text, and data must then be null");
  }
  const data = typeof e.rawData === "string" ? e.rawData : canonicalJSON(e.data);
  return { seq: e.seq, id: e.id, type: e.type, actor: e.actor, subject: e.subject, at: e.at, requestId: e.requestId, prevHash: e.prevHash, hash: e.hash, data };
}

export { checkpointMessage };

/** The problem of an event holding a time no append writes (`time` as stored). */
export function untimelyProblem(seq: number, id: string, time: string): string {
  return `event #${seq} (${id}) holds the time ${time}, which no append writes (an altered row)`;
}

/** A report for a problem found before any event was read (a row stored outside the chain): an empty chain's, failed. */
export async function brokenReport(problem: VerifyProblem): Promise<VerifyReport> {
  return { ...(await verifyChain((async function* () {})())), ok: false, problem };
}
