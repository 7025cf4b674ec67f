// Verifies a hash chain from any ordered source of events (the database or an exported file), and
// checks it against signed checkpoints: an attacker who rewrites the whole table cannot also match a
// checkpoint exported earlier, nor sign a new one without the master key.
import { canonicalJSON } from "./canonical.ts";
import { GENESIS_HASH, checkpointMessage, eventHash, type ChainFields } from "./chain.ts";

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
  lastSeq: number;
  lastHash: string;
  checkpointsChecked: number;
  problem: VerifyProblem | null;
}

export interface VerifyOptions {
  /** The chain head as recorded (seq and hash of the newest event), when known. */
  head?: { seq: number; hash: string } | null;
  /** Checkpoints to hold the chain against (from the database and/or an export). */
  checkpoints?: Checkpoint[];
  /** Checks a checkpoint's signature; return false when it does not verify. */
  verifySignature?: (checkpoint: Checkpoint) => boolean;
  onProgress?: (events: number) => void;
  /** Accept a chain that starts after event #1 (a partial export), trusting its first link. */
  partial?: boolean;
}

/**
 * Takes events in seq order — one by one, or in pages (arrays), which avoids an await per event — and stops
 * at the first problem, naming it.
 */
export async function verifyChain(events: AsyncIterable<ChainFields | ChainFields[]>, options: VerifyOptions = {}): Promise<VerifyReport> {
  const pending = new Map<number, Checkpoint[]>();
  let checkpointsChecked = 0;
  for (const cp of options.checkpoints ?? []) {
    const list = pending.get(cp.seq) ?? [];
    list.push(cp);
    pending.set(cp.seq, list);
  }
  let expected = 1;
  let prev = GENESIS_HASH;
  let count = 0;
  const fail = (seq: number, id: string | null, problem: string): VerifyReport => ({
    ok: false, events: count, lastSeq: expected - 1, lastHash: prev, checkpointsChecked, problem: { seq, id, problem },
  });

  for await (const item of events) {
   const page = Array.isArray(item) ? item : [item];
   for (const e of page) {
    if (count === 0 && options.partial) {
      expected = e.seq;
      prev = e.prevHash;
    }
    if (e.seq !== expected) {
      if (e.seq > expected) {
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
    const cps = pending.get(e.seq);
    if (cps) {
      for (const cp of cps) {
        if (cp.hash !== actual) {
          return fail(e.seq, e.id, `event #${e.seq} (${e.id}) differs from the signed checkpoint taken at that position (the chain was rewritten)`);
        }
        if (options.verifySignature && !options.verifySignature(cp)) {
          return fail(e.seq, e.id, `the checkpoint at event #${e.seq} has an invalid signature (forged or tampered checkpoint)`);
        }
        checkpointsChecked++;
      }
      pending.delete(e.seq);
    }
    prev = actual;
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
  if (head && head.seq === last && head.hash !== prev) {
    return fail(last, null, `the chain head's hash does not match event #${last} (the newest event was altered)`);
  }
  for (const [seq] of pending) {
    if (seq > last) return fail(last + 1, null, `a signed checkpoint covers event #${seq}, but the log ends at #${last} (events deleted)`);
  }
  return { ok: true, events: count, lastSeq: last, lastHash: prev, checkpointsChecked, problem: null };
}

/** Re-encodes an exported event's data to the canonical text its hash covers. */
export function chainFieldsFromExport(e: {
  seq: number; id: string; type: string; actor: string; subject: string; at: number; requestId: string; prevHash: string; hash: string; data: unknown;
}): ChainFields & { hash: string } {
  return { seq: e.seq, id: e.id, type: e.type, actor: e.actor, subject: e.subject, at: e.at, requestId: e.requestId, prevHash: e.prevHash, hash: e.hash, data: canonicalJSON(e.data) };
}

export { checkpointMessage };
