// Which signing key may sign which checkpoint. A signing key is rotated (`audit rotate-signing-key`) when it may
// have leaked; the rotation stores the new key, the event recording it and a checkpoint the new key signs in one
// commit, and from then on every checkpoint is signed by the new key. So a stored log keeps three rules, which
// verify checks with the keyring (the creation times it holds are bound by the master key, not by the row):
// - no checkpoint is signed by a key older than one that signed a checkpoint before it (whoever holds the leaked
//   key cannot sign anything after the rotation, whatever time they write into the checkpoint);
// - a checkpoint dated after its key was retired (beyond the grace below: the skew two nodes' clocks may have) is refused;
// - once checkpoints exist, the current key has signed one (deleting the new key's checkpoints to put forged
//   ones signed by the old key in their place leaves none);
// - a log with events holds a checkpoint once the store's keys are an hour old (the oldest key held, not the current
//   signing key, which a rotation makes new): `bulwark init` signs one at once, a rotation signs one, and a running
//   server signs the head on every maintenance pass and at its stop. A log rewritten whole, its checkpoints deleted,
//   cannot pass for a young one, nor can one whose keys are dated ahead of the clock (made while it ran ahead); nor is
//   it signed by a routine checkpoint or a rotation (see firstCheckpointProblem).
import type { Signer, SigningKeyTimes } from "../crypto/signer.ts";
import { isoOrNull } from "../lib/calendar.ts";
import { DEFAULT_DATED_AHEAD_TOLERANCE_MS } from "../store/clock-skew.ts";
import type { Checkpoint, VerifyProblem } from "./verify.ts";

/**
 * How long after its retirement a checkpoint may still carry a retired key's signature, for a checkpointKeyProblem
 * caller that gives none: DEFAULT_DATED_AHEAD_TOLERANCE_MS (60 s). AuditLog passes its own `aheadToleranceMs`, which the
 * app derives from BULWARK_MAX_CLOCK_SKEW_SECONDS (datedAheadToleranceFor): the same bound as for keys dated ahead, since
 * both are one node's clock against another's. A rotation dates the new key (the old one's retirement) after every
 * checkpoint stored (rotateSigningKey's notBefore), and a writer signs with the new key once the rotation's checkpoint
 * is below (the keyring's freshness window plays no part), so only a checkpoint another node commits between that
 * dating and the rotation's commit (milliseconds) can be dated later: by how far that node's clock is ahead of the
 * rotating node's, at most twice the skew each may have. Fixed at 60 s, it was a false alarm of tampering with more
 * skew allowed, and let the retired key sign up to a minute after its retirement with less
 * (test/audit-retired-grace.test.ts).
 */
export const RETIRED_KEY_GRACE_MS = DEFAULT_DATED_AHEAD_TOLERANCE_MS;

type Timed = { keyId: string; times: SigningKeyTimes };

/**
 * True when `a` is a newer signing key than `b` (by bound creation time, then id). A key with no bound time (a v1 wrap,
 * from before times were bound) is older than every key with one; between two such keys the order is unknown (false).
 */
export function newerKey(a: Timed, b: Timed): boolean {
  const ta = a.times.createdAt;
  const tb = b.times.createdAt;
  if (ta === null) return false;
  if (tb === null) return true;
  return ta > tb || (ta === tb && a.keyId > b.keyId);
}

/** `keyId` with its times as `signer` knows them, or null for a key it does not hold. */
export function timed(signer: Pick<Signer, "keyTimes">, keyId: string): Timed | null {
  const times = signer.keyTimes(keyId);
  return times === null ? null : { keyId, times };
}

/**
 * How the stored key `keyId` stands to `signer`'s own: "older" when `keyId` is the newer one (or one `signer` does not
 * hold: another node made it since), "newer" when `signer`'s is newer, null when they are the same or cannot be ordered
 * (two keys from before creation times were bound).
 */
export function keyOrder(signer: Pick<Signer, "keyId" | "keyTimes">, keyId: string): "older" | "newer" | null {
  if (keyId === signer.keyId) return null;
  const theirs = timed(signer, keyId);
  const mine = timed(signer, signer.keyId);
  if (theirs === null) return "older";
  if (mine === null) return null;
  return newerKey(theirs, mine) ? "older" : newerKey(mine, theirs) ? "newer" : null;
}

/**
 * How old the store's keys (the oldest held, by bound creation time, on the verifying or signing process's clock) may
 * be while a log with events holds no checkpoint at all. Init signs one at once; an hour covers a store opened by an
 * older Bulwark, which signed none at init, until its server's first maintenance pass.
 */
export const FIRST_CHECKPOINT_WITHIN_MS = 60 * 60_000;

/**
 * Why a log holding events but no checkpoint cannot be taken as young, or null: the store's oldest key (Signer.keysSince)
 * was created more than FIRST_CHECKPOINT_WITHIN_MS before `now`, or binds no time (a v1 wrap, older than any that does),
 * or is dated ahead of `now` by more than `aheadToleranceMs` (the skew two nodes may have and still serve: AuditLog passes
 * its own, which the app derives from BULWARK_MAX_CLOCK_SKEW_SECONDS with datedAheadToleranceFor in src/store/clock-skew.ts;
 * DEFAULT_DATED_AHEAD_TOLERANCE_MS by default). Keys made while the
 * host's clock ran ahead, judged once it was corrected, have no age to go by: taken as young, a log whose checkpoints
 * were deleted verified for as long as the clock had been ahead (test/clock-jumps-red-team.test.ts).
 * Not the current signing key's age: a rotation makes that new, and rewriting the log just after one must not pass.
 * Null for a signer that does not say. Verify reports it; routine signing (an append on the schedule, a maintenance pass,
 * a server stop) and a rotation refuse to sign over such a log, since that would vouch for a log rewritten whole; `bulwark
 * audit checkpoint --first` signs it on an operator's word.
 */
export function firstCheckpointProblem(signer: Pick<Signer, "keysSince">, now: number, options: { aheadToleranceMs?: number } = {}): string | null {
  if (signer.keysSince === undefined) return null;
  const since = signer.keysSince;
  const aheadToleranceMs = options.aheadToleranceMs ?? DEFAULT_DATED_AHEAD_TOLERANCE_MS;
  if (since !== null && now - since >= -aheadToleranceMs && now - since <= FIRST_CHECKPOINT_WITHIN_MS) return null;
  const unsigned = "init signs one at once, a signing-key rotation signs one, and a running server signs the head on every maintenance pass and at its stop, " +
    "so its checkpoints were deleted (and the log possibly rewritten whole)";
  const compare = "If this store comes from a Bulwark that signed none at init and never ran a server, compare the log with an export kept elsewhere, " +
    "then sign it with `bulwark audit checkpoint --first`";
  if (since !== null && since > now) {
    return `the log holds events but no checkpoint, and this store's keys, the signing keys among them, are dated ahead of this clock (${iso(since)}, ` +
      `${duration(since - now)} ahead of ${iso(now)}): they were made while a clock ran ahead, so the store's age cannot be told from them, ` +
      `and a store with events holds a checkpoint from its start: ${unsigned}. ${compare}`;
  }
  const when = since === null ? "before key creation times were bound" : iso(since);
  return `the log holds events but no checkpoint, though this store's keys date from ${when}, more than an hour ago: ${unsigned}. ${compare}`;
}

/** A difference of times for a message, in the largest whole unit that fits (seconds, minutes, hours or days). */
function duration(ms: number): string {
  const units: Array<[number, string]> = [[86_400_000, "day"], [3_600_000, "hour"], [60_000, "minute"], [1000, "second"]];
  for (const [size, name] of units) {
    const n = Math.floor(ms / size);
    if (n >= 1) return `${n} ${name}${n === 1 ? "" : "s"}`;
  }
  return `${Math.round(ms)} ms`;
}

/** A time for a message; one no Date holds (a row written by hand) as the number it is, never a throw. */
function iso(ms: number): string {
  return isoOrNull(ms) ?? `${ms} ms`;
}

/**
 * The first stored checkpoint (in position order) that breaks the signing-key rules above, or null. Checkpoints
 * signed by a key `signer` does not hold are left alone: their signatures do not verify, which verify reports.
 * `aheadToleranceMs`: how late after its key's retirement a checkpoint may be dated (RETIRED_KEY_GRACE_MS by default;
 * AuditLog passes its own dated-ahead tolerance).
 */
export function checkpointKeyProblem(
  checkpoints: readonly Checkpoint[],
  signer: Pick<Signer, "keyId" | "keyTimes">,
  options: { aheadToleranceMs?: number } = {},
): VerifyProblem | null {
  const graceMs = options.aheadToleranceMs ?? RETIRED_KEY_GRACE_MS;
  let newest: (Timed & { seq: number }) | null = null;
  let signedByOlder = 0;
  for (const cp of [...checkpoints].sort((x, y) => x.seq - y.seq)) {
    const key = timed(signer, cp.keyId);
    if (key === null) continue;
    const retiredAt = key.times.retiredAt;
    if (retiredAt !== null && cp.at > retiredAt + graceMs) {
      return {
        seq: cp.seq, id: null,
        problem: `the checkpoint at event #${cp.seq} is dated ${iso(cp.at)}, more than ${duration(graceMs)} after its signing key ${cp.keyId} was retired ` +
          `(${iso(retiredAt)}), further than two nodes' clocks may differ: a retired key signs nothing (forged with a leaked key?)`,
      };
    }
    if (newest !== null && newerKey(newest, key)) {
      return {
        seq: cp.seq, id: null,
        problem: `the checkpoint at event #${cp.seq} is signed with signing key ${cp.keyId}, which was retired before key ${newest.keyId} signed the checkpoint ` +
          `at #${newest.seq}: after a rotation only the new key signs (forged with a leaked retired key?)`,
      };
    }
    if (newest === null || newerKey(key, newest)) newest = { ...key, seq: cp.seq };
  }
  const current = timed(signer, signer.keyId);
  if (newest !== null && current !== null && newerKey(current, newest)) {
    for (const cp of checkpoints) if (cp.keyId !== signer.keyId) signedByOlder++;
    return {
      seq: newest.seq, id: null,
      problem: `no stored checkpoint is signed with the current signing key ${signer.keyId} (created ${iso(current.times.createdAt as number)}), though ${signedByOlder} ` +
        `are signed with older keys, the newest at #${newest.seq} by ${newest.keyId}: a rotation signs one at once, so the current key's checkpoints were ` +
        "deleted (and the log after them possibly rewritten with a retired key)",
    };
  }
  return null;
}
