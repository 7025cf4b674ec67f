// The site's address in mail sent from an operator's shell. Links in a mail (a reset link, a "choose your password"
// link) are built on BULWARK_PUBLIC_URL when the mail is queued, and the server delivers them as written; without the
// variable the address is http://localhost:PORT. A shell that lacks the server's settings — the usual case for a
// responder on the host, the settings living in the service unit — mailed every account a dead link while the
// passwords were already gone. Such commands refuse before changing anything; their dry runs say they would.
import type { App } from "../app/types.ts";
import { InputError } from "../lib/errors.ts";

/**
 * The refusal a command that mails links gets from a shell without BULWARK_PUBLIC_URL (exit 2, naming `what`), or null
 * when it is set. A dry run reports it (a note, and `realRunRefused` in --json) rather than throwing, so that it still
 * forecasts the rest while saying what the real run will answer: the same error, the same words.
 *
 * @example
 * const refusal = publicURLRefusal(app, "invalidate-passwords mails links"); // null when BULWARK_PUBLIC_URL is set
 */
export function publicURLRefusal(app: App, what: string): InputError | null {
  if (app.config.http.publicURLGiven) return null;
  return new InputError(
    "BULWARK_ERR_USAGE",
    `${what} built on BULWARK_PUBLIC_URL, which is not set here: the links would point at ${app.config.http.publicURL}. ` +
      "Set BULWARK_PUBLIC_URL to the address users reach the site at (as the server has it) and run the command again; nothing was changed",
  );
}

/** A dry run's --json field for `refusal` (publicURLRefusal): the real run's error code and message; nothing when there is none. */
export function realRunRefused(refusal: InputError | null): { realRunRefused?: { code: string; message: string } } {
  return refusal === null ? {} : { realRunRefused: { code: refusal.code, message: refusal.message } };
}

/**
 * Throws publicURLRefusal's usage error (exit 2) naming `what` when BULWARK_PUBLIC_URL is not set in this process.
 *
 * @example
 * requirePublicURL(app, "invalidate-passwords mails every account a reset link"); // before any change
 */
export function requirePublicURL(app: App, what: string): void {
  const refusal = publicURLRefusal(app, what);
  if (refusal !== null) throw refusal;
}
