// Errors of the audit log, each with a stable code (never reused).
import { BulwarkError, type BulwarkErrorOptions } from "../lib/errors.ts";

export class AuditError extends BulwarkError {}

export const auditErrors = {
  fieldTooLong: (name: string, max: number): AuditError =>
    new AuditError("BULWARK_ERR_AUDIT_FIELD", "runtime", `audit ${name} is longer than ${max} characters`),
  fieldNotWellFormed: (name: string): AuditError =>
    new AuditError("BULWARK_ERR_AUDIT_FIELD", "runtime", `audit ${name} is not well-formed Unicode (it holds a lone UTF-16 surrogate, which the database cannot store as given)`),
  dataTooLarge: (max: number): AuditError =>
    new AuditError("BULWARK_ERR_AUDIT_FIELD", "runtime", `audit data is larger than ${max} bytes`),
  contention: (): AuditError =>
    new AuditError("BULWARK_ERR_AUDIT_CONTENTION", "runtime", "could not append to the audit log: the chain head kept moving"),
  // `doing`: what was refused ("append to the audit log" unless said), so a checkpoint or a rotation refused for the
  // head says so rather than claim an append failed. `stored`: the first event past the head, when known.
  headBehind: (head: { seq: number }, options: BulwarkErrorOptions & { doing?: string; stored?: number } = {}): AuditError =>
    new AuditError(
      "BULWARK_ERR_AUDIT_HEAD_BEHIND",
      "runtime",
      `cannot ${options.doing ?? "append to the audit log"}: event #${options.stored ?? head.seq + 1} is already stored, but the chain head (table audit_head) still records #${head.seq}. ` +
        "The head is behind the stored events: it was moved back, or events were inserted without its trigger. " +
        "Run `bulwark audit verify` to see the state of the chain, then `bulwark audit repair-head` to move the head to the newest stored event",
      options,
    ),
  headMissing: (options: { doing?: string } = {}): AuditError =>
    new AuditError(
      "BULWARK_ERR_AUDIT_HEAD_MISSING",
      "runtime",
      `cannot ${options.doing ?? "append to the audit log"}: the chain head row (table audit_head, id 1) is missing. ` +
        "Run `bulwark audit verify` to see the state of the chain, then `bulwark audit repair-head` to recreate it at the newest stored event",
    ),
  headNotBehind: (head: { seq: number }, lastSeq: number): AuditError =>
    new AuditError(
      "BULWARK_ERR_AUDIT_HEAD_OK",
      "input",
      head.seq === lastSeq
        ? `the chain head records #${head.seq}, the newest stored event: there is nothing to repair`
        : `the chain head records #${head.seq}, but the log ends at #${lastSeq}: the newest events were deleted, and the head is the evidence; it is not moved back`,
    ),
  // `known`: an event this process appended (or signed) and saw committed; `found`: the hash the log has at its position
  // now (the stored event's, or the head row's; null: no event there), and the head as read. Only a writer of the tables
  // gets here: the process keeps no such fact past a rollback, and a restore from backup restarts it.
  committedAltered: (known: { seq: number; hash: string }, found: { hash: string | null; head: { seq: number } }, options: { doing?: string } = {}): AuditError =>
    new AuditError(
      "BULWARK_ERR_AUDIT_COMMITTED_ALTERED",
      "runtime",
      `cannot ${options.doing ?? "append to the audit log"}: event #${known.seq} (hash ${known.hash}), which this process appended or signed and saw committed, ` +
        (found.hash === null
          ? `is no longer stored (the chain head records #${found.head.seq}): it was deleted${found.head.seq < known.seq ? ` with every event after #${found.head.seq}, and the head moved back` : ""}. `
          : `is not what the log holds: it now has hash ${found.hash} at #${known.seq} (the chain head records #${found.head.seq}), so that event, or one before it, was rewritten and the chain re-linked. `) +
        "Someone with write access to the database altered the audit log, and this process refuses to sign a checkpoint over it or link an event to it. " +
        "Keep the database as found, compare it with an export or exported checkpoints kept elsewhere (`bulwark audit verify --checkpoints FILE`), " +
        "and restore the log before restarting the server: a restarted process no longer knows what it committed, and its next checkpoint would sign the log as it is",
      { details: { committedSeq: known.seq, committedHash: known.hash, storedHash: found.hash, headSeq: found.head.seq } },
    ),
  badExportLine: (why: string): AuditError => new AuditError("BULWARK_ERR_AUDIT_EXPORT_LINE", "input", `not a line audit export writes: ${why}`),
  unsignable: (problem: string): AuditError =>
    new AuditError("BULWARK_ERR_AUDIT_UNSIGNABLE", "runtime", `refusing to sign a checkpoint over what the stored log holds: ${problem}; run \`bulwark audit verify\``),
  rotationRaced: (current: string): AuditError =>
    new AuditError("BULWARK_ERR_AUDIT_ROTATION_RACED", "conflict", `another rotation made ${current} the signing key while this one was being prepared; nothing was changed: run \`bulwark audit rotate-signing-key\` again if a further rotation is wanted`),
  chainBroken: (problem: string): AuditError =>
    new AuditError("BULWARK_ERR_AUDIT_CHAIN_BROKEN", "runtime", `refusing to move the chain head over a broken chain: ${problem}`),
  headTriggerMissing: (): AuditError =>
    new AuditError(
      "BULWARK_ERR_AUDIT_HEAD_TRIGGER",
      "runtime",
      "the trigger audit_events_advance_head is missing, so the chain head no longer follows appends; recreate it (migration 1 defines it) before repairing the head",
    ),
};
