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
