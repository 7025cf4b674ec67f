// Errors of the sshd_config evaluator: every one names the file and line, as sshd's own messages do,
// so an operator can fix the configuration that sshd itself would refuse to start with.
import { InputError, type BulwarkErrorOptions } from "../../lib/errors.ts";

/** A configuration sshd would reject (unknown keyword, bad value, bad Match, include loop...). */
export class SshConfigError extends InputError {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_SSH_CONFIG", `${file} line ${line}: ${message}`, { ...options, details: { file, line } });
    this.file = file;
    this.line = line;
  }
}

/** The configuration file (or an explicitly named input) cannot be read at all. */
export class SshConfigUnreadableError extends InputError {
  constructor(path: string, reason: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_SSH_CONFIG_UNREADABLE", `cannot read sshd configuration "${path}": ${reason}`, options);
  }
}

/** A --match specification that is not user=U,host=H,addr=A,... */
export class SshMatchSpecError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_SSH_MATCH_SPEC", message, options);
  }
}
