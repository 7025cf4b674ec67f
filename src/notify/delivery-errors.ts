// What the sender writes about a failed delivery: the relay's reply stripped of mailboxes and link tokens (a log or
// a row must never hold the secret the mail carried), and the warning an operator gets at once when the connection
// to the relay could not be set up (TLS that failed, a connection cut, a relay out of reach).
import type { OutboxMessage } from "./outbox.ts";
import { LOCAL_CHARS } from "./validate.ts";

/** `ana@example.org` → `example.org`: logs say where mail went wrong, not to whom. */
export function recipientDomain(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

// Anything shaped like local@domain, the local part drawn from every character the address check allows
// (an apostrophe included: o'hara@…), so no part of a mailbox survives.
const MAILBOX = new RegExp(`[${LOCAL_CHARS}]+@([A-Za-z0-9.-]+)`, "g");

/**
 * A server's reply often quotes the recipient ("550 5.1.1 <ana@example.org>: unknown user"): keep the domain.
 * The message's own recipient goes first, verbatim and in any case, so even an address written into the row
 * behind enqueue's checks is hidden; then every other address-shaped text.
 */
export function withoutMailboxes(text: string, recipient: string): string {
  // Link tokens too: every log line passes here, whatever the text's origin.
  text = withoutLinkTokens(text);
  // An empty recipient (only a row written behind enqueue's back has one) would match between every character.
  const own = recipient === "" ? text : text.replace(new RegExp(recipient.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"), "gi"), `…@${recipientDomain(recipient)}`);
  return own.replace(MAILBOX, "…@$1");
}

// A single-use link's token (src/crypto/link-token.ts: `<prefix>_<26 base32>.<43 base64url>`), and whatever follows
// `token=` in a link (the fragment `#token=…` our mails carry, a query, either percent-encoded). A content filter that
// refuses a message often quotes the URL it refused ("554 5.7.1 URL https://…/auth/reset#token=… is listed"), and that
// token is live: whoever reads the log line or `bulwark outbox status` could reset the account's password with it
// (ASVS 16.2.5). Matched loosely (any prefix, either case) so a relay's rewriting of the link does not slip through;
// a token cut short at the end of the text (the transport keeps 500 characters) goes too, its secret half a secret still.
const LINK_TOKEN = /[A-Za-z0-9]+_[A-Za-z2-7]{26}\.(?:[A-Za-z0-9_-]{43,}|[A-Za-z0-9_-]*$)/g;
const TOKEN_PARAMETER = /((?:#|%23|[?&;])token(?:=|%3D))[^\s"'<>&#]+/gi;

/** A relay's answer with every link token replaced by "…", the rest left readable. */
function withoutLinkTokens(text: string): string {
  return text.replace(LINK_TOKEN, "…").replace(TOKEN_PARAMETER, "$1…");
}

/** The shortest run of a link's secret taken out of a relay's answer: what is left of the secret is ≤ 7 characters a piece. */
const SECRET_RUN = 8;

/**
 * A relay's answer about `message` with every run of SECRET_RUN characters of the message's own link secrets taken
 * out, then withoutLinkTokens. A filter on the undecoded body quotes it as sent: quoted-printable breaks a link every
 * 76 characters with "=" and a line end, so the secret arrives in pieces no pattern of a token's shape matches, and the
 * row's idempotency key names the link's id (the other half). The sender knows what it sent, so it looks for that.
 */
export function withoutSecretsOf(error: string, message: Pick<OutboxMessage, "text" | "html">): string {
  const runs = new Set<string>();
  for (const body of [message.text, message.html ?? ""]) {
    for (const token of body.match(LINK_TOKEN) ?? []) {
      const secret = token.slice(token.indexOf(".") + 1);
      for (let i = 0; i + SECRET_RUN <= secret.length; i++) runs.add(secret.slice(i, i + SECRET_RUN));
    }
  }
  if (runs.size > 0) {
    const cut = new Uint8Array(error.length);
    for (let i = 0; i + SECRET_RUN <= error.length; i++) {
      if (runs.has(error.slice(i, i + SECRET_RUN))) cut.fill(1, i, i + SECRET_RUN);
    }
    let kept = "";
    for (let i = 0; i < error.length; i++) {
      if (cut[i] === 0) kept += error[i];
      else if (i === 0 || cut[i - 1] === 0) kept += "…";
    }
    error = kept;
  }
  return withoutLinkTokens(error);
}

/**
 * A delivery failure that says TLS to the relay could not be set up: a certificate that does not verify (wrong
 * name, unknown issuer, self-signed), no STARTTLS where it is required, or a handshake that never completed
 * ("Client network socket disconnected before secure TLS connection was established", "TLS handshake timed out").
 * An interception on the path to the relay looks exactly like this, so it is logged at once rather than only retried
 * until the message goes dead (ASVS 16.3.4).
 */
const TLS_FAILURE = /certificate|altnames|self[- ]signed|unable to verify|ERR_TLS|ETLS|CERT_|SSL routines|wrong version number|STARTTLS|\bTLS\b/i;

/**
 * The connection failed below SMTP, no reply code given: nodemailer's command "CONN" with a socket error, a close, a
 * timeout or a failed DNS look-up (transport.ts classifyFailure writes `<code> CONN <message>`). A handshake an
 * attacker on the path cuts with a TCP reset reads "ESOCKET CONN read ECONNRESET", the very words of a relay that
 * resets the connection for another reason: the error says nothing of TLS, so TLS_FAILURE cannot tell, and it is
 * warned about too (ASVS 16.3.4).
 */
const CONNECTION_FAILURE = /^(?:ESOCKET|ECONNECTION|ETIMEDOUT|EDNS) CONN (?!\d{3}\b)/;
/** Of those, the relay's silence once the session was up (socketTimeout): a slow relay, not a connection that failed. */
const IDLE_TIMEOUT = /^ETIMEDOUT CONN Timeout$/;
/** Of those, a relay that could not be reached at all (refused, no route, no such host, no answer to the connect). */
const UNREACHABLE = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|^EDNS|Connection timeout|connect ETIMEDOUT/;

const TLS_WARNING = "TLS to the mail relay failed (its certificate does not verify, it offers no TLS, or the TLS handshake was cut off): messages wait for a retry; check the relay's host name and certificate in BULWARK_SMTP_URL, and whether something sits between this server and the relay";
const CUT_WARNING = "the connection to the mail relay was cut before its reply to the message (a reset or a close, perhaps during the TLS handshake): messages wait for a retry; a relay that restarts does this once, something between this server and the relay that cuts TLS does it every time";
const UNREACHABLE_WARNING = "the mail relay could not be reached (connection refused, no route, or no answer; with smtps, no answer to the TLS handshake looks the same): messages wait for a retry; check that the relay in BULWARK_SMTP_URL is up and reachable from this server";

/**
 * The warning an operator gets at once for a transient failure in setting up the connection to the relay, or null
 * when a retry is all it needs. A relay that is down is told apart from TLS that failed (a relay that is down is not
 * an interception) where the error allows; both are warned about.
 */
export function connectionWarning(error: string): string | null {
  if (TLS_FAILURE.test(error)) return TLS_WARNING;
  if (!CONNECTION_FAILURE.test(error) || IDLE_TIMEOUT.test(error)) return null;
  return UNREACHABLE.test(error) ? UNREACHABLE_WARNING : CUT_WARNING;
}
