// The site's address in mail sent from an operator's shell. Links in a mail (a reset link, a "choose your password"
// link) are built on BULWARK_PUBLIC_URL when the mail is queued, and the server delivers them as written; without the
// variable the address is http://localhost:PORT. A shell that lacks the server's settings — the usual case for a
// responder on the host, the settings living in the service unit — mailed every account a dead link while the
// passwords were already gone. Such commands refuse before changing anything.
import type { App } from "../app/types.ts";
import { InputError } from "../lib/errors.ts";

/**
 * Throws a usage error (exit 2) naming `what` when BULWARK_PUBLIC_URL is not set in this process.
 *
 * @example
 * requirePublicURL(app, "invalidate-passwords mails every account a reset link"); // before any change
 */
export function requirePublicURL(app: App, what: string): void {
  if (app.config.http.publicURLGiven) return;
  throw new InputError(
    "BULWARK_ERR_USAGE",
    `${what} built on BULWARK_PUBLIC_URL, which is not set here: the links would point at ${app.config.http.publicURL}. ` +
      "Set BULWARK_PUBLIC_URL to the address users reach the site at (as the server has it) and run the command again; nothing was changed",
  );
}
