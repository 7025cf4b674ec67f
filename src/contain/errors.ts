// Containment errors, each with a stable code (never reused).
import { BulwarkError, InputError } from "../lib/errors.ts";

/** A failure's message as recorded on the job and in its audit event (bounded: it may quote a whole statement). */
export function failureReason(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 500);
}

// The code of a job whose stored state cannot be trusted (containErrors.corruptJob).
const CORRUPT_JOB = "BULWARK_ERR_CONTAIN_JOB_CORRUPT";

/** True for the error of a job whose stored state was refused: recorded on the job as it is, never wrapped. */
export function isCorruptJobError(error: unknown): error is BulwarkError {
  return error instanceof BulwarkError && error.code === CORRUPT_JOB;
}

// The code of a job stopped because its creator no longer stands behind it (containErrors.creatorLost).
const CREATOR_LOST = "BULWARK_ERR_CONTAIN_CREATOR_LOST";

/**
 * True for the error of a job its creator no longer stands behind: recorded on the job as it is, never wrapped in
 * containErrors.failed, whose "it can be resumed" would hide that a plain resume stops it again.
 */
export function isCreatorLostError(error: unknown): error is BulwarkError {
  return error instanceof BulwarkError && error.code === CREATOR_LOST;
}

export const containErrors = {
  noScope: (): InputError =>
    new InputError("BULWARK_ERR_CONTAIN_NO_SCOPE", "no scope given: name the users to act on (--all, --role, --ids, --created-before/after, --last-login-before/after, --active-within, --active-between, --scheme); --all is never implied"),
  badScope: (message: string): InputError => new InputError("BULWARK_ERR_CONTAIN_SCOPE", message),
  unknownLever: (name: string, known: readonly string[]): InputError =>
    new InputError("BULWARK_ERR_CONTAIN_LEVER", `unknown lever "${name.slice(0, 60)}"; known levers: ${known.join(", ")}`),
  unknownRole: (names: readonly string[], known: readonly string[]): InputError =>
    new InputError("BULWARK_ERR_CONTAIN_ROLE", `unknown role${names.length > 1 ? "s" : ""} ${names.map((n) => `"${n.slice(0, 60)}"`).join(", ")}: nothing was done; known roles: ${known.join(", ") || "(none)"}`),
  unknownScheme: (name: string, known: readonly string[]): InputError =>
    new InputError("BULWARK_ERR_CONTAIN_SCHEME", `unknown password hash scheme "${name.slice(0, 64)}": nothing was done; known schemes: ${known.join(", ")}`),
  noLever: (known: readonly string[]): InputError => new InputError("BULWARK_ERR_CONTAIN_LEVER", `name at least one lever: ${known.join(", ")}`),
  notContainJob: (id: string): InputError => new InputError("BULWARK_ERR_CONTAIN_JOB", `job ${id} is not a containment job`),
  notUndoable: (id: string, why: string): InputError => new InputError("BULWARK_ERR_CONTAIN_UNDO", `job ${id} cannot be undone: ${why}`),
  notCancellable: (id: string, status: string): BulwarkError =>
    new BulwarkError("BULWARK_ERR_CONTAIN_NOT_CANCELLABLE", "conflict", `job ${id} is ${status.slice(0, 40)}: only a pending, running or failed job can be cancelled`),
  needsConfirmation: (count: number): InputError =>
    new InputError("BULWARK_ERR_CONTAIN_CONFIRM", `this job acts on ${count} users (more than 100): pass --yes to confirm (stdin is not a terminal, so it cannot ask)`),
  declined: (): InputError => new InputError("BULWARK_ERR_CONTAIN_DECLINED", "not confirmed: nothing was done"),
  scopeChanged: (counted: number, now: number): InputError =>
    new InputError("BULWARK_ERR_CONTAIN_SCOPE_CHANGED", `the scope held ${counted} users when it was counted and ${now} when the job was to be created (accounts created, changed or removed meanwhile): nothing was done; run it again to confirm the new count`),
  /**
   * The job's stored state (cursor, spec) is not what this code writes: corrupted, hand-edited or hostile. Refused
   * before anything more is applied; resuming cannot help until the row is repaired, so unlike `failed` this does
   * not suggest it.
   */
  corruptJob: (id: string, what: string, options: { cause?: unknown } = {}): BulwarkError =>
    new BulwarkError(CORRUPT_JOB, "runtime", `containment job ${id} is refused: ${what}. Nothing more is applied on its account, and nothing already applied is lost; its row must be repaired first`, options),
  /**
   * The job exists but its row cannot be read (its spec or counts is not a JSON object: jobErrors.unreadable, the
   * cause). A conflict, not "not found": the operator must learn that the row is there and must be repaired.
   */
  unreadableJob: (id: string, options: { cause: Error }): BulwarkError =>
    new BulwarkError("BULWARK_ERR_CONTAIN_JOB_UNREADABLE", "conflict", `containment job ${id} exists, but its stored record cannot be read (${failureReason(options.cause)})`, options),
  /**
   * The job was created through the API by `creator`, who no longer holds what it held then, or may no longer act
   * (src/contain/creator.ts): no further batch runs on their authority. What earlier batches applied stays.
   */
  creatorLost: (id: string, creator: string, why: string): BulwarkError =>
    new BulwarkError(CREATOR_LOST, "forbidden",
      `containment job ${id} stopped: its creator, user ${creator.slice(0, 64)}, ${why}, and no further batch runs on their authority (what earlier batches applied stays). ` +
      `An administrator may take it over with \`bulwark contain resume ${id}\` (the rest runs on the administrator's authority) or cancel it`),
  failed: (id: string, options: { cause: unknown; unrecorded?: boolean }): BulwarkError =>
    new BulwarkError("BULWARK_ERR_CONTAIN_FAILED", "runtime",
      `containment job ${id} failed (${failureReason(options.cause)})` +
        (options.unrecorded ? "; the failure could not be written either, so the job still reads as under way" : "") +
        `; it can be resumed with \`bulwark contain resume ${id}\``,
      { cause: options.cause }),
};
