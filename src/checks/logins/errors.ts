// Errors of `check logins`' state file (`--state FILE`, window-state.ts): each names the file and what is wrong with it.
import { InputError, RuntimeFailure, type BulwarkErrorOptions } from "../../lib/errors.ts";

/** A state file refused before anything is judged (exit 2): the file is left as it was. */
export class LoginsStateError extends InputError {
  readonly file: string;
  constructor(file: string, problem: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_LOGINS_STATE", `--state ${JSON.stringify(file)}: ${problem}`, { ...options, details: { file } });
    this.file = file;
  }
}

/** The state could not be written after the report was (exit 3): the old state stands (or the new one, if only the directory's sync failed). */
export class LoginsStateWriteError extends RuntimeFailure {
  constructor(file: string, problem: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_LOGINS_STATE_WRITE", `--state ${JSON.stringify(file)}: cannot write it (${problem}); the report stands, and the next run with this file may judge this window again: nothing is skipped`, { ...options, details: { file } });
  }
}
