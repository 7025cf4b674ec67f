// The hash chain: each event's hash covers its content and the previous event's hash, so altering,
// removing or reordering any event breaks every hash after it.
import { hash } from "node:crypto";

export const GENESIS_HASH = "0".repeat(64);
const VERSION = "bulwark-audit-v1";

/** The fields an event's hash covers, as stored. `data` is its canonical JSON text. */
export interface ChainFields {
  seq: number;
  id: string;
  type: string;
  actor: string;
  subject: string;
  at: number;
  requestId: string;
  prevHash: string;
  data: string;
}

/** SHA-256 over an unambiguous encoding (a JSON array of the fields), hex. */
export function eventHash(e: ChainFields): string {
  const encoded = JSON.stringify([VERSION, e.seq, e.id, e.type, e.actor, e.subject, e.at, e.requestId, e.prevHash, e.data]);
  // crypto.hash is the one-shot form: same SHA-256, without a Hash object per event (verify hashes millions).
  return hash("sha256", encoded, "hex");
}

/** The message a checkpoint signature covers. */
export function checkpointMessage(seq: number, hash: string, at: number): Uint8Array {
  return new Uint8Array(Buffer.from(`bulwark-audit-checkpoint-v1|${seq}|${hash}|${at}`, "utf8"));
}
