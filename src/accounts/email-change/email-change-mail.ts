// The three mails of an email change: the confirmation link (to the new address), the "someone tried to use
// this address" note (to a new address that already has an account: no link), and the security notice to
// the old address that a change was requested (so a hijacker is noticed before the change completes).
import { domainToASCII } from "node:url";
import { addressProblem, PRIORITY, type NewMessage } from "../../notify/index.ts";
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

/**
 * How the confirmation mail, and the page its link opens, name the account a link moves (ASVS 6.3.7): its current
 * address with the local part cut to its first letters or digits (one, two from four characters on) and "***", enough
 * for the owner to recognise their own, not enough to harvest, and the domain in full, so that an account at a
 * look-alike domain shows as one. A domain that is not a plain host name is shown in its ASCII form ("xn--…": a
 * look-alike in another script shows as what it is); an address with neither (a bare host, or a "domain" that spells a
 * link) is named by the phrase noticeAddress uses.
 *
 * @example
 * maskedAddress("jane.doe@corp.example") // "ja***@corp.example"
 * maskedAddress("jd@corp.example")       // "j***@corp.example"
 * maskedAddress("jane@соrp.example")     // "ja***@xn--rp-emcl.example" (Cyrillic "со")
 */
export function maskedAddress(address: string): string {
  const at = address.lastIndexOf("@");
  const local = at > 0 ? address.slice(0, at) : "";
  const raw = at > 0 ? address.slice(at + 1) : "";
  const plain = (domain: string): boolean => domain !== "" && addressProblem(`x@${domain}`) === null;
  // Letters, digits, marks, dots and hyphens only: domainToASCII would cut "evil.example/keep?x=1" down to a host.
  const domain = plain(raw) ? raw : /^[\p{L}\p{N}\p{M}.-]+$/u.test(raw) ? domainToASCII(raw) : "";
  if (!plain(domain)) return "an address this server cannot send mail to";
  // Only letters and digits are shown: a local part may hold characters that would read as something else. Always
  // fewer than it has: two of four or more, one of three or two, none of one (`***@…` hides all of `q@…`).
  const shown = /^[A-Za-z0-9]{0,2}/.exec(local.slice(0, local.length >= 4 ? 2 : local.length >= 2 ? 1 : 0))?.[0] ?? "";
  return `${shown}***@${domain}`;
}

/**
 * The mail carrying the link, to the new address. It names the account the link moves (`account`: that account's
 * current address, shown by maskedAddress), and tells a reader whose account it is not to leave the link alone: an
 * outsider may ask to move their own account to an address an employee announced, and a link that read like the
 * employee's own would give the outsider's account that address (test/squatters-red-team.test.ts). `sharedWith`: another
 * account's link to the same mailbox still works (its request came first), said so that the two are not mistaken for
 * each other.
 */
export function composeConfirmMail(to: string, token: string, context: EmailChangeMailContext & { account?: string; sharedWith?: boolean }, lifetimeMs: number, key: string): NewMessage {
  const name = context.serviceName;
  const account = context.account === undefined ? [] : [
    `Someone asked to make this the email address of the ${name} account that now uses ${maskedAddress(context.account)}`,
    "(part of that address is hidden here; its domain is shown in full).", "",
    "If this is not your account, do not open the link: it would give this address to someone else's account.", "",
  ];
  const text = [
    "Hello,", "",
    ...(account.length > 0 ? account : [`Someone (hopefully you) asked to make this the email address of their ${name} account.`]),
    ...(context.sharedWith === true
      ? ["Another account also asked, a little earlier, to move to this address, and the link sent for it still works.",
        "Each link moves a different account: open only the one that names yours.", ""]
      : []),
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
