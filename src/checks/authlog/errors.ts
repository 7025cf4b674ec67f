// Errors of the auth-log check. Only things the caller must fix are errors; malformed log lines
// are counted, never thrown.
import { InputError, type BulwarkErrorOptions } from "../../lib/errors.ts";

/** A log file that cannot be opened or read (missing, a directory, permission denied, bad gzip). */
export class AuthLogUnreadableError extends InputError {
  constructor(path: string, reason: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_AUTHLOG_UNREADABLE", `cannot read auth log "${path}": ${reason}`, options);
  }
}

/** An option of the analysis is out of range (--max-retry 0, --find-time "soon", --year 99). */
export class AuthLogOptionError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_AUTHLOG_OPTION", message, options);
  }
}
