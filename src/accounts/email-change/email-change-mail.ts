// The three mails of an email change: the confirmation link (to the new address), the "someone tried to use
// this address" note (to a new address that already has an account: no link), and the security notice to
// the old address that a change was requested (so a hijacker is noticed before the change completes).
import { PRIORITY, type NewMessage } from "../../notify/index.ts";
import { noticeAddress } from "../../notify/notice-address.ts";

export interface EmailChangeMailContext {
  /** BULWARK_PUBLIC_URL: the link is built from configuration, never from a request's Host (link poisoning). */
  publicURL: string;
  serviceName: string;
}

/** The confirmation link: in the fragment, so it reaches neither server logs nor a Referer header. */
export function emailChangeLink(publicURL: string, token: string): string {
  return `${publicURL}/confirm-email#token=${token}`;
}

function minutes(ms: number): string {
  return `${Math.round(ms / 60_000)} minutes`;
}

/** The mail carrying the link, to the new address. */
export function composeConfirmMail(to: string, token: string, context: EmailChangeMailContext, lifetimeMs: number, key: string): NewMessage {
  const name = context.serviceName;
  const text = [
    "Hello,", "",
    `Someone (hopefully you) asked to make this the email address of their ${name} account.`,
    `Open this link within ${minutes(lifetimeMs)} to confirm; it works once:`, "",
    emailChangeLink(context.publicURL, token), "",
    "If you did not ask for this, ignore this message: nothing changes unless the link is opened.", "",
  ].join("\n");
  return { idempotencyKey: key, to, subject: `${name}: confirm your new email address`, text, kind: "account.email-change-link", priority: PRIORITY.link, linkLifetimeMs: lifetimeMs };
}

/**
 * The note to an address that already belongs to an account: no link (it could only fail), and the same
 * HTTP answer as for a free address, so the form does not tell whether an address is registered (ASVS 6.3.8).
 */
export function composeAttemptMail(to: string, context: EmailChangeMailContext, key: string): NewMessage {
  const name = context.serviceName;
  const text = [
    "Hello,", "",
    `Someone asked to move another ${name} account to this email address. This address already belongs to an account, so nothing was changed.`, "",
    "If this was you, sign in with this address instead. If it was not, there is nothing to do; your account is unaffected.", "",
  ].join("\n");
  return { idempotencyKey: key, to, subject: `${name}: someone tried to use your email address`, text, kind: "account.email-change-attempt", priority: PRIORITY.link };
}

/**
 * The security notice to the current (old) address when a change is requested (ASVS 6.3.7). The new address is named
 * as every notice names one (noticeAddress): in full only when its local part is plain, else by its domain ("an address
 * at evil.test"), and by a fixed phrase when the outbox would not mail it. A requester types it, and a local part may
 * spell a link ("www.bulwark-help.example/keep-account?case=7731@…", which the outbox mails): this genuine notice must
 * not carry it, a link for the owner to click, as its own. request() refuses an unmailable address first; this is the
 * second guard.
 */
export function composeRequestedNotice(to: string, newEmail: string, context: EmailChangeMailContext & { at: number; withheld?: boolean }, key: string): NewMessage {
  const name = context.serviceName;
  const when = new Date(context.at).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, " UTC");
  const shown = noticeAddress(newEmail);
  const text = [
    "Hello,", "",
    `Someone signed in to your ${name} account asked to change its email address to ${shown}.`,
    `When: ${when}.`,
    ...(context.withheld
      // The mailbox's own hourly count (whoever spent it): the owner is told, rather than left waiting for a link.
      ? ["No link was sent to that address: it was named in too many such requests in the last hour.", "", "If this was you, ask again in an hour."]
      : ["The change happens only if the link sent to that address is opened.", "", "If this was you, there is nothing to do."]),
    "If it was not you, your account may be compromised: reset your password now, which signs out every session and cancels the pending change.", "",
    `This is an automatic security notice from ${name}. You receive it whatever your mail preferences, because it concerns the security of your account.`, "",
  ].join("\n");
  return { idempotencyKey: key, to, subject: `${name}: a change of your email address was requested`, text, kind: "security.email-change-requested", priority: PRIORITY.security };
}
