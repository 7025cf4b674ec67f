// Which outbox messages carry a single-use link, and what their bodies become once delivered. The reset and
// email-change services store only a hash of a link's secret; the mail is the one place the secret sits, sealed at
// rest by the outbox (LinkCipher) and opened only to send. After delivery the outbox replaces its bodies (markSent).

/**
 * The kinds of mail whose body holds a single-use link: the one list the outbox goes by (the composers live
 * outside src/notify and set only `kind`). A new link mail must add its kind here; link-redaction.security.test.ts
 * fails when a kind in the source speaks of a link but is missing.
 */
export const SINGLE_USE_LINK_KINDS: readonly string[] = Object.freeze([
  "account.password-reset-link", // src/accounts/password-reset/reset-mail.ts, reason "reset"
  "account.registration-link", // reason "register"
  "account.containment-reset-link", // reason "containment" (a containment run: 24-hour links for every user in scope)
  "account.email-change-link", // src/accounts/email-change/email-change-mail.ts, to the new address
]);

/** Whether a message of `kind` carries a single-use link (its body is replaced once it is sent). */
export function carriesSingleUseLink(kind: string): boolean {
  return SINGLE_USE_LINK_KINDS.includes(kind);
}

/**
 * Marks a sealed body in `outbox_messages.body_text`/`body_html`; the rest is the keyring's ciphertext, bound to
 * (outbox_messages, column, message id), whose plaintext begins with the recipient, kind and subject it was sealed
 * for (outbox.ts sealedFor, ADR 0020). Key rotation re-encrypts these too (src/contain/encrypted-columns.ts).
 */
export const SEALED_BODY_MARKER = "sealed:";

/**
 * Stands for BULWARK_PUBLIC_URL in the stored body of a link mail: the outbox puts it in place of the configured origin
 * when it queues the mail, and the origin configured when the mail is sent back in its place (outbox.ts,
 * withoutLinkOrigin, withLinkOrigin). A mail queued while the relay was down goes out after a restart that corrected
 * the URL on the corrected origin, never on the one the operator left: a typo domain someone else can register, a
 * host since decommissioned, whose holder would read the token from the page the link opens (ASVS 13.2.4).
 */
export const PUBLIC_URL_SLOT = "{bulwark-public-url}";

/** The text body of a sent link mail: fixed, so it says why the content is gone and holds nothing to redeem. */
export const DELIVERED_LINK_TEXT = "The content of this message was removed after delivery because it held a single-use link.";

/** The HTML body of a sent link mail that had one (one without keeps none). */
export const DELIVERED_LINK_HTML = `<p>${DELIVERED_LINK_TEXT}</p>`;
