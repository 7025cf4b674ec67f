// Errors of the CSRF module. A missing or wrong token is an expected outcome (verifyCSRF returns false);
// `refused` is what the HTTP layer throws, and the rest are programming mistakes.
import { BulwarkError, InputError } from "../../lib/errors.ts";

export class CSRFError extends BulwarkError {}

export const csrfErrors = {
  refused: (why: string): CSRFError => new CSRFError("BULWARK_ERR_CSRF", "forbidden", `request refused: ${why}`),
  badAction: (why: string): InputError => new InputError("BULWARK_ERR_CSRF_ACTION", `CSRF action id ${why}`),
  noSecret: (): InputError => new InputError("BULWARK_ERR_CSRF_SECRET", "a CSRF token needs the session secret, and it is empty"),
};
