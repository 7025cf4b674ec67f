// Errors of the bucket-exposure check: bad input files (malformed JSON, wrong shape, too large).
import { InputError } from "../../lib/errors.ts";

/** An input file (policy, ACL, public-access block) is malformed; the message names the file and the problem. */
export class BucketInputError extends InputError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("BULWARK_ERR_BUCKET_INPUT", message, options);
  }
}
