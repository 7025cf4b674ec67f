// Errors of the files check, each with a stable code. Findings (tampering, changes) are values, not errors.
import { InputError, RuntimeFailure, type BulwarkErrorOptions } from "../../lib/errors.ts";

export const filesErrors = {
  /** The file given as a baseline is not one (wrong first line): the operator named the wrong file. */
  notABaseline: (message: string, options?: BulwarkErrorOptions): InputError =>
    new InputError("BULWARK_ERR_BASELINE_FORMAT", message, options),
  /** A PATH given to scan does not exist or cannot be examined. */
  badRoot: (message: string, options?: BulwarkErrorOptions): InputError => new InputError("BULWARK_ERR_FILES_PATH", message, options),
  /** Reading or writing the baseline failed (disk full, permissions). */
  io: (message: string, options?: BulwarkErrorOptions): RuntimeFailure => new RuntimeFailure("BULWARK_ERR_FILES_IO", message, options),
};
