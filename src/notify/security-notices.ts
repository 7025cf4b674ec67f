// Security notifications (ASVS 6.3.7): the user is told when their password, email address, MFA factors
// or recovery codes change, and when their account gives (or is given) an administrative role; and of suspicious sign-ins (ASVS 6.3.5): a recovery code used, the right password
// with a refused second factor, a success after a run of failures, a sign-in from a new device or browser. Small plain-text templates; the only variable parts are validated values (an address as noticeAddress names it).
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import type { Kysely } from "kysely";
import { NotifyInputError, notifyErrors } from "./errors.ts";
import { PRIORITY, type EnqueueResult, type NewMessage, type Outbox } from "./outbox.ts";
import { addressProblem, checkAddress, checkSubject, checkToken } from "./validate.ts";
import { browserLabel } from "./browser-label.ts";
import { noticeAddress } from "./notice-address.ts";

export type MFAFactor = "totp" | "webauthn" | "recovery-codes";

export type SecurityEvent =
  | { type: "password-changed" }
  // With a recovery code beside the link (how many are left): the owner learns a code was spent.
  | { type: "password-reset"; recoveryCodesLeft?: number }
  | { type: "email-changed"; oldEmail: string; newEmail: string }
  // An administrator set the address (the way back after a hijack): the old address is not told the new one.
  | { type: "email-set-by-administrator"; oldEmail: string; newEmail: string }
  | { type: "mfa-factor-added"; factor: MFAFactor }
  | { type: "mfa-factor-removed"; factor: MFAFactor }
  // A replacement of the authenticator app was begun (it takes effect only when confirmed, before `expiresAt`).
  | { type: "mfa-replacement-begun"; expiresAt: number }
  // The authenticator app was swapped for a new one in one step (the old one never removed first).
  | { type: "mfa-factor-replaced"; factor: "totp" }
  // A passkey signed with a counter that had not grown (a copy of it is in use) and was suspended; its name is left out
  // (whoever registered it chose it, perhaps the copy's holder).
  | { type: "passkey-suspended" }
  | { type: "recovery-codes-regenerated" }
  // A sign-in through an outside provider (SSO) was removed; the provider's name is left out (it comes from a row).
  | { type: "sign-in-provider-removed" }
  // The password must be changed at the next sign-in (containment's expire-passwords): whoever signs in first with it
  // chooses the next one, so the owner is told at once, not at that sign-in.
  | { type: "password-expired" }
  // The token's name is left out: whoever created it chose it, and it must not speak in a genuine notice.
  | { type: "api-token-created"; scopes: string[]; expiresAt: number | null }
  // ASVS 6.3.5, suspicious authentication: a sign-in completed with a recovery code (how many are left) ...
  | { type: "signed-in-with-recovery-code"; left: number }
  // ... the right password followed by a second factor that was refused (a partly successful sign-in) ...
  | { type: "second-factor-refused" }
  // ... a sign-in after a run of failed attempts (how many) ...
  | { type: "signed-in-after-failures"; failures: number }
  // ... and a sign-in from a device or browser that never signed in to the account before ...
  | { type: "signed-in-from-new-device" }
  // ... and, once after the clock hour starting at `hour`, the sign-ins from new browsers that hour's notice had gone out
  // without (for another browser): the first NEW_DEVICE_FOLLOW_UP_NAMED named (when, the address, the browser as a label
  // from a fixed list, never the User-Agent's text), `more` counted.
  | { type: "new-device-follow-up"; hour: number; signIns: NewDeviceSignIn[]; more: number }
  // ASVS 6.4.5: an API token expires soon; renew it before (the token's name is left out, as above).
  | { type: "api-token-expiring"; expiresAt: number }
  // The account granted a role carrying administrative permissions to another account (ASVS 8.2.2, 6.3.7's spirit): an
  // intruder at an administrator's unlocked computer makes a confederate an administrator in one request, and nothing of
  // the owner's own cleanup (password, sessions, tokens) takes that role away. The role is named (role names are
  // identifiers: a lower-case letter, then letters, digits, _ or -); the other account by its id only, never its
  // address (whoever created it chose that text, and it must not speak in a genuine notice).
  | { type: "administrative-role-given"; role: string; permissions: string[]; grantee: string }
  // ... and the account given the role is told too: a genuine account suddenly made an administrator should know.
  | { type: "administrative-role-received"; role: string; permissions: string[] };

/** A sign-in a new-device follow-up names: when, from where, and the User-Agent it sent (only ever shown as a fixed label). */
export interface NewDeviceSignIn {
  at: number;
  ip: string | null;
  userAgent: string | null;
}

/**
 * The most sign-ins a new-device follow-up names, one line each; the rest are counted ("and 3 more"). Bounded so the
 * notice stays short to read whatever a password holder does; the count is exact, and GET /auth/sessions lists each.
 */
export const NEW_DEVICE_FOLLOW_UP_NAMED = 10;

export interface SecurityNotice {
  /** The id of the event that caused it (e.g. the audit event id): makes re-enqueueing idempotent. */
  eventId: string;
  /** The account's current address (for email-changed, the new one; the old one is taken from the event). */
  to: string;
  /** When it happened, ms since the epoch. */
  at: number;
  /** Where the request came from, shown when it is a well-formed IP address. */
  ip?: string | null;
  event: SecurityEvent;
  /**
   * The account's id: its notice to `to` is sent only while the account still has that address (NewMessage.accountId).
   * Every caller about an account passes it (a lookup by `to` here cost a scan of the users table per notice: a
   * containment's 200,000 notices never finished). Left out, the notice is sent to `to` as composed. The notices of an
   * address change never carry it: they are meant for the addresses as such, the one left and the one set.
   */
  accountId?: string;
}

export interface NoticeOptions {
  /** The service's name as users know it, e.g. "Example Cloud". */
  appName: string;
  /** Where to turn if it was not them, e.g. "security@example.org" or a URL. */
  supportContact?: string;
  /** A transaction to enqueue in, so the notice commits with the change it reports. */
  executor?: Kysely<any>;
  /**
   * For a notice that gathers what happens until it is sent (the new-device follow-up): not sent before this time, and
   * each later call puts its text in place of the queued one while no sender has taken it (Outbox.queueOrRevise),
   * where a notice is otherwise left as first queued.
   */
  gatherUntil?: number;
}

// Fixed labels: the factor name in a mail never comes from user input.
const FACTOR_LABEL: Record<MFAFactor, string> = {
  totp: "an authenticator app (TOTP)",
  webauthn: "a passkey or security key",
  "recovery-codes": "recovery codes",
};

const KINDS: Record<SecurityEvent["type"], string> = {
  "password-changed": "password-changed",
  "password-reset": "password-reset",
  "email-changed": "email-changed",
  "email-set-by-administrator": "email-set-by-admin",
  "mfa-factor-added": "mfa-added",
  "mfa-factor-removed": "mfa-removed",
  "mfa-factor-replaced": "mfa-replaced",
  "mfa-replacement-begun": "mfa-replacement-begun",
  "passkey-suspended": "passkey-suspended",
  "recovery-codes-regenerated": "recovery-codes-regenerated",
  "sign-in-provider-removed": "sign-in-provider-removed",
  "password-expired": "password-expired",
  "api-token-created": "api-token-created",
  "signed-in-with-recovery-code": "recovery-code-sign-in",
  "second-factor-refused": "second-factor-refused",
  "signed-in-after-failures": "sign-in-after-failures",
  "api-token-expiring": "api-token-expiring",
  "signed-in-from-new-device": "new-device-sign-in",
  "new-device-follow-up": "new-device-follow-up",
  "administrative-role-given": "admin-role-given",
  "administrative-role-received": "admin-role-received",
};

// A permission name as the catalogue spells them (accounts.read, admin): nothing else reaches a notice as a scope.
const SCOPE = /^[a-z]+(\.[a-z]+)*$/;
// A role name as the role store accepts them (role-store.ts) and an account id as the API's paths do: identifiers, so
// neither can carry a sentence, a link or a phone number into a genuine notice.
const ROLE_NAME = /^[a-z][a-z0-9_-]{0,39}$/;
const ACCOUNT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** How many recovery codes are left, as a notice says it. */
function recoveryLeft(left: number): string {
  return left === 0 ? "no recovery code is left: generate new ones once you are signed in" : `${left} ${left === 1 ? "code is" : "codes are"} left`;
}

// The last time isoDay wrote: a containment's batch tells thousands of owners of one time, and the Date and the two
// replacements cost more than the rest of a notice's text.
let lastDay: { ms: number; text: string } = { ms: Number.NaN, text: "" };

function isoDay(ms: number): string {
  if (ms !== lastDay.ms) lastDay = { ms, text: new Date(ms).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, " UTC") };
  return lastDay.text;
}

/**
 * " from the IP address …", or nothing. A plain address only: Node's isIP accepts an IPv6 zone id
 * ("fe80::1%anything-at-all"), and behind a proxy the client writes X-Forwarded-For — free text in a genuine security
 * notice would be a phishing lure.
 */
function fromAddress(ip: string | null | undefined): string {
  return ip && isIP(ip) && !ip.includes("%") ? ` from the IP address ${ip}` : "";
}

/** The clock hour starting at `hour`, as a follow-up names it ("2026-12-05 16:00 to 17:00 UTC"). */
function clockHour(hour: number): string {
  const start = new Date(hour).toISOString();
  const end = new Date(hour + 3_600_000).toISOString();
  return `${start.slice(0, 10)} ${start.slice(11, 16)} to ${end.slice(11, 16)} UTC`;
}

interface Template {
  subject: string;
  what: string;
  /** A reminder of something due, not a report of something done: no "if this was not you" advice. */
  reminder?: true;
  /**
   * What to do if it was not them, when a password reset would not help: the notice to the address an account was
   * moved away from (a reset asked for there mails nothing; the account's links go to the new address).
   */
  movedAway?: true;
  /** Done by an administrator, not by the account: "if this was you" does not fit; the reader asks them, quoting the reference. */
  byAdministrator?: true;
  /** What the "When:" line says in place of the notice's time and address (a follow-up names several of each). */
  when?: string;
  /**
   * A precaution the administrators took that the owner must act on: what to do now, and what to do if it went wrong,
   * in place of "if this was you". Given the support contact (or the administrators) and the reference to quote.
   */
  precaution?: (contact: string, reference: string) => string[];
}

function template(event: SecurityEvent, recipient: "current" | "old"): Template {
  switch (event.type) {
    case "password-changed":
      return { subject: "your password was changed", what: "The password of your account was changed." };
    case "password-reset":
      return event.recoveryCodesLeft === undefined
        ? { subject: "your password was reset", what: "The password of your account was reset using a password reset link. All your sessions were signed out." }
        : {
          subject: "your password was reset with a recovery code",
          what: "The password of your account was reset using a password reset link and one of your recovery codes instead of your authenticator app or passkey. " +
            `All your sessions were signed out. That code no longer works; ${recoveryLeft(event.recoveryCodesLeft)}.`,
        };
    case "email-changed":
      return recipient === "old"
        ? { subject: "your email address was changed", what: `The email address of your account was changed from ${noticeAddress(event.oldEmail)} to ${noticeAddress(event.newEmail)}. This address will no longer receive messages about the account.`, movedAway: true }
        : { subject: "your email address was changed", what: `This is now the email address of your account (it was ${noticeAddress(event.oldEmail)}).` };
    case "email-set-by-administrator":
      return recipient === "old"
        ? { subject: "your email address was removed from an account", what: "An administrator changed the email address of the account that used this address. This address will no longer receive messages about the account.", byAdministrator: true }
        : {
          subject: "an administrator set your email address",
          what: `An administrator made this the email address of your account (it was ${noticeAddress(event.oldEmail)}). Every session of the account was signed out, ` +
            "links mailed to the old address no longer work, and so does the account's password (whoever held the account may have set it): " +
            "choose a new one with the link in the separate message sent to this address, or ask for a password reset.",
          byAdministrator: true,
        };
    case "mfa-factor-added":
      return { subject: "a sign-in factor was added", what: `${FACTOR_LABEL[event.factor]} was added as a sign-in factor to your account.` };
    case "mfa-factor-removed":
      return event.factor === "recovery-codes"
        ? { subject: "your recovery codes were removed", what: "The recovery codes of your account were removed: with no authenticator app or passkey left, there is no second factor for them to stand in for." }
        : { subject: "a sign-in factor was removed", what: `${FACTOR_LABEL[event.factor]} was removed from the sign-in factors of your account.` };
    case "mfa-replacement-begun":
      return {
        subject: "a replacement of your authenticator app was started",
        what: "Someone signed in to your account started replacing its authenticator app. Nothing has changed yet: your current app " +
          `keeps working, and the new one takes its place only if it is confirmed from the same session before ${isoDay(event.expiresAt)}. ` +
          "Changing your password cancels it.",
      };
    case "mfa-factor-replaced":
      return {
        subject: "your authenticator app was replaced",
        what: "The authenticator app of your account was replaced by a new one. Codes from the previous app no longer work, and the sessions " +
          "it had confirmed must confirm again.",
      };
    case "passkey-suspended":
      return {
        subject: "one of your passkeys was suspended",
        what: "One of your passkeys signed with a counter that had not moved on since its last use. A genuine key never does that, so a copy " +
          "of it is in use somewhere, and either of the two may have been the copy. The passkey was suspended: it no longer confirms a sign-in, " +
          "and the sessions it had confirmed must confirm again with another factor.",
        // Not "if this was you": nobody does this on purpose. What to do now, and what to do if it was not a restore.
        precaution: (contact, reference) => [
          "Sign in with your authenticator app or a recovery code, remove the suspended passkey (it is marked as suspended in your list of " +
            `passkeys) and register a new one. If you have neither, ask ${contact} to restore your account's sign-in, quoting the reference ${reference}.`,
          "Unless you copied or restored that key yourself, someone holds a copy of it and may know your password too: change your password, " +
            `and tell ${contact}, quoting the reference ${reference}.`,
        ],
      };
    case "recovery-codes-regenerated":
      return { subject: "your recovery codes were replaced", what: "New recovery codes were generated for your account. The old ones no longer work." };
    case "password-expired":
      return {
        subject: "choose a new password at your next sign-in",
        what: "As a security precaution, the password of your account must be changed: the next sign-in with it asks for a new password before anything else. " +
          "Sign in soon and choose a new password that you use nowhere else.",
        // The danger is someone else signing in first with the old password (it may have leaked) and choosing the new
        // one: the owner then finds the old password refused, and the reset form (their address) is the way back.
        precaution: (contact, reference) => [
          `This message holds no link: sign in the way you usually do. If you did not expect it, ask ${contact}, quoting the reference ${reference}.`,
          "If your password is refused when you sign in, someone else may have signed in first and chosen a new one: " +
            `reset it at once with "forgot password" on the sign-in page, and tell ${contact}.`,
          "If you sign in and are not asked for a new password, the precaution was withdrawn: there is nothing to do.",
        ],
      };
    case "sign-in-provider-removed":
      return { subject: "a way to sign in was removed", what: "Signing in to your account through an outside provider (single sign-on) was turned off, and the access to that provider stored with it was deleted. To sign in that way again, connect the provider again." };
    case "api-token-created":
      return {
        subject: "an API token was created",
        what: `An API token was created for your account, with these permissions: ${event.scopes.join(", ")}. ` +
          `It acts as you ${event.expiresAt === null ? "until it is revoked" : `until ${isoDay(event.expiresAt)} or until it is revoked`}; ` +
          "a password reset does not end it. Your tokens are listed (and revoked) at GET/DELETE /api/v1/tokens.",
      };
    case "signed-in-with-recovery-code":
      return {
        subject: "a recovery code was used to sign in",
        what: `Someone signed in to your account with your password and one of your recovery codes instead of your authenticator app or passkey. ` +
          `That code no longer works; ${recoveryLeft(event.left)}.`,
      };
    case "second-factor-refused":
      return {
        subject: "your password was used, but the second factor was refused",
        what: "Someone entered the right password for your account, then a code or passkey that was refused, so they were not signed in. " +
          "If it was not you, whoever it was knows your password: change it now. (At most one such notice is sent per hour.)",
      };
    case "signed-in-after-failures":
      return {
        subject: "your password was entered after failed attempts",
        what: `Someone entered the right password for your account after ${event.failures} failed attempts in a row.`,
      };
    case "signed-in-from-new-device":
      return {
        subject: "a sign-in from a new device or browser",
        what: "Someone signed in to your account with your password from a device or browser that had not signed in to it before. " +
          "(One such notice is sent at once per hour; sign-ins from other new devices in the same hour follow in one message after the hour.)",
      };
    case "new-device-follow-up": {
      const lines = event.signIns.map((x) => `- ${isoDay(x.at)}${fromAddress(x.ip) || " from an address not shown"}, ${browserLabel(x.userAgent)}`);
      return {
        subject: "more sign-ins from new devices or browsers",
        what: "More sign-ins to your account with your password came from devices or browsers that had not signed in to it before, " +
          "in the same clock hour as the one your previous notice of a new device told of (one is told at once each hour; the others " +
          "of the hour are gathered here):\n" + lines.join("\n") +
          (event.more > 0 ? `\n- and ${event.more} more such ${event.more === 1 ? "sign-in" : "sign-ins"} in that hour.` : "") +
          "\nYour account's list of signed-in sessions shows each with its address and browser, and ends any you do not recognise.",
        when: clockHour(event.hour),
      };
    }
    case "api-token-expiring":
      return {
        subject: "an API token expires soon",
        what: `An API token of your account expires on ${isoDay(event.expiresAt)}; programs that use it stop working then. ` +
          "To keep them working, create a new token (POST /api/v1/tokens), put it in their place, and revoke the old one. " +
          "Your tokens, with their expiry, are listed at GET /api/v1/tokens.",
        reminder: true,
      };
    case "administrative-role-given":
      return {
        subject: "your account gave another account an administrator's role",
        what: `Your account granted the role ${event.role} to another account, the one with the id ${event.grantee}. The role carries ` +
          `administrative permissions (${event.permissions.join(", ")}): that account can now change other accounts with them. ` +
          "The role stays with it whatever you do to your own account: changing your password, signing out everywhere or " +
          "revoking your API tokens does not take it away.",
        // Not the generic "reset your password": the grant outlives every change to this account, so the advice starts
        // with taking the role back, and sends the reader to the other administrators (what else was done as them).
        precaution: (contact, reference) => [
          "If this was you, there is nothing to do.",
          `If it was not you, someone acted as you with an administrator's rights: take the role back at once (DELETE /api/v1/users/${event.grantee}/roles/${event.role}), ` +
            "change your password, sign out your other sessions and revoke your API tokens, " +
            `then tell ${contact}, quoting the reference ${reference}: they can check in the audit log what else was done from your account.`,
        ],
      };
    case "administrative-role-received":
      return {
        subject: "your account was given an administrator's role",
        what: `An administrator gave your account the role ${event.role}, which carries administrative permissions (${event.permissions.join(", ")}). ` +
          "Whoever signs in to your account can now use them: keep your password and second factor to yourself.",
        byAdministrator: true,
      };
  }
}

// The idempotency key names the recipient by a digest of its lower-cased address, not by the address: a legal
// address has up to 254 characters and the outbox's keys at most 200, so a long one would make the notice
// impossible to queue. 32 hex characters (128 bits of SHA-256) cannot collide between the one or two recipients
// of an event. The longest kind (35) + eventId (128) + digest (32) + 2 separators = 197 characters.
const MAX_EVENT_ID = 128;
const RECIPIENT_DIGEST_HEX = 32;

/**
 * The idempotency key of the notice of event `eventId` to `to`: one message per (kind, event, address), the
 * address compared without case, whatever its length.
 *
 * @example
 * noticeKey("security.password-changed", "evt_1", "Ana@example.org") // "security.password-changed:evt_1:" + 32 hex
 */
export function noticeKey(kind: string, eventId: string, to: string): string {
  const digest = createHash("sha256").update(to.toLowerCase(), "utf8").digest("hex").slice(0, RECIPIENT_DIGEST_HEX);
  return `${kind}:${eventId}:${digest}`;
}

/**
 * The idempotency key the notice of a `type` event `eventId` to `to` is queued under (noticeKey with that event's
 * kind): lets a caller see whether it was queued already without building it.
 *
 * @example
 * securityNoticeKey("api-token-expiring", "token-expiry:tok_1", "ana@example.org")
 */
export function securityNoticeKey(type: SecurityEvent["type"], eventId: string, to: string): string {
  return noticeKey(`security.${KINDS[type]}`, eventId, to);
}

/** Builds the messages for one security event (two for an email change: old and new address). */
export function securityMessages(notice: SecurityNotice, options: Omit<NoticeOptions, "executor">): NewMessage[] {
  checkToken("eventId", notice.eventId, MAX_EVENT_ID);
  const appName = checkSubject(options.appName);
  if (options.supportContact !== undefined) checkSubject(options.supportContact);
  const type = notice.event.type;
  if (!Object.hasOwn(KINDS, type)) throw notifyErrors.badMessage(`unknown security event type ${JSON.stringify(type)}`);
  if (type === "mfa-factor-added" || type === "mfa-factor-removed") {
    const factor = (notice.event as { factor: string }).factor;
    if (!Object.hasOwn(FACTOR_LABEL, factor)) throw notifyErrors.badMessage(`unknown MFA factor ${JSON.stringify(factor)}`);
  }
  if (type === "mfa-replacement-begun" && !Number.isFinite((notice.event as { expiresAt: unknown }).expiresAt)) throw notifyErrors.badMessage("expiresAt must be a time in ms since the epoch");
  if (type === "mfa-factor-replaced" && (notice.event as { factor: unknown }).factor !== "totp") throw notifyErrors.badMessage("only an authenticator app (totp) is replaced in one step");
  if (type === "api-token-created") {
    const { scopes, expiresAt } = notice.event as { scopes: unknown; expiresAt: unknown };
    if (!Array.isArray(scopes) || scopes.length === 0 || scopes.length > 16 || !scopes.every((x) => typeof x === "string" && x.length <= 40 && SCOPE.test(x))) {
      throw notifyErrors.badMessage("api-token-created needs 1 to 16 permission names as scopes");
    }
    if (expiresAt !== null && !Number.isFinite(expiresAt)) throw notifyErrors.badMessage("expiresAt must be a time in ms since the epoch, or null");
  }
  if (type === "signed-in-with-recovery-code") {
    const { left } = notice.event as { left: unknown };
    if (!Number.isSafeInteger(left) || (left as number) < 0 || (left as number) > 100) throw notifyErrors.badMessage("left must be a whole number from 0 to 100");
  }
  if (type === "password-reset") {
    const { recoveryCodesLeft: left } = notice.event as { recoveryCodesLeft?: unknown };
    if (left !== undefined && (!Number.isSafeInteger(left) || (left as number) < 0 || (left as number) > 100)) throw notifyErrors.badMessage("recoveryCodesLeft must be a whole number from 0 to 100");
  }
  if (type === "signed-in-after-failures") {
    const { failures } = notice.event as { failures: unknown };
    if (!Number.isSafeInteger(failures) || (failures as number) < 1 || (failures as number) > 1_000_000) throw notifyErrors.badMessage("failures must be a whole number from 1 to 1000000");
  }
  if (type === "administrative-role-given" || type === "administrative-role-received") {
    const { role, permissions, grantee } = notice.event as { role: unknown; permissions: unknown; grantee?: unknown };
    if (typeof role !== "string" || !ROLE_NAME.test(role)) throw notifyErrors.badMessage("role must be a role name: a lower-case letter, then up to 39 letters, digits, _ or -");
    if (!Array.isArray(permissions) || permissions.length === 0 || permissions.length > 16 || !permissions.every((x) => typeof x === "string" && x.length <= 40 && SCOPE.test(x))) {
      throw notifyErrors.badMessage(`${type} needs 1 to 16 permission names`);
    }
    if (type === "administrative-role-given" && (typeof grantee !== "string" || !ACCOUNT_ID.test(grantee))) throw notifyErrors.badMessage("grantee must be an account id (1 to 64 letters, digits, _ or -)");
  }
  if (type === "new-device-follow-up") {
    const { hour, signIns, more } = notice.event as { hour: unknown; signIns: unknown; more: unknown };
    if (!Number.isSafeInteger(hour) || (hour as number) % 3_600_000 !== 0) throw notifyErrors.badMessage("hour must be the start of a clock hour in ms since the epoch");
    if (!Array.isArray(signIns) || signIns.length === 0 || signIns.length > NEW_DEVICE_FOLLOW_UP_NAMED) throw notifyErrors.badMessage(`new-device-follow-up names 1 to ${NEW_DEVICE_FOLLOW_UP_NAMED} sign-ins`);
    for (const x of signIns as Array<Record<string, unknown>>) {
      const ok = typeof x === "object" && x !== null && Number.isFinite(x["at"]) && (x["ip"] === null || typeof x["ip"] === "string") && (x["userAgent"] === null || typeof x["userAgent"] === "string");
      if (!ok) throw notifyErrors.badMessage("each sign-in of a new-device follow-up needs at (ms since the epoch), ip and userAgent (strings or null)");
    }
    if (!Number.isSafeInteger(more) || (more as number) < 0) throw notifyErrors.badMessage("more must be a whole number, 0 or more");
  }
  if (type === "api-token-expiring" && !Number.isFinite((notice.event as { expiresAt: unknown }).expiresAt)) {
    throw notifyErrors.badMessage("expiresAt must be a time in ms since the epoch");
  }
  if (!Number.isFinite(notice.at)) throw notifyErrors.badMessage("at must be a time in ms since the epoch");
  const recipients: Array<{ to: string; role: "current" | "old" }> = [{ to: checkAddress("to", notice.to), role: "current" }];
  const event = notice.event;
  if (event.type === "email-changed" || event.type === "email-set-by-administrator") {
    checkAddress("newEmail", event.newEmail);
    // ASVS 6.3.7: the OLD address is told too — if an attacker changed it, that is where the owner still reads. One
    // this server cannot mail (the account store accepts more, e.g. from an import) cannot be told, and the new
    // address's notice does not quote its text either (noticeAddress names it by a fixed phrase).
    if (addressProblem(event.oldEmail) === null && event.oldEmail.toLowerCase() !== notice.to.toLowerCase()) recipients.push({ to: event.oldEmail, role: "old" });
  }
  const when = isoDay(notice.at);
  const from = fromAddress(notice.ip);
  const kind = `security.${KINDS[type]}`;
  const changesAddress = type === "email-changed" || type === "email-set-by-administrator";
  return recipients.map(({ to, role }) => {
    const t = template(event, role);
    const lines = [
      "Hello,",
      "",
      t.what,
      ...(t.reminder
        ? ["", ...(options.supportContact ? [`Questions: ${options.supportContact}.`, ""] : [])]
        : [
          `When: ${t.when ?? `${when}${from}`}.`,
          "",
          ...(t.precaution ? t.precaution(options.supportContact ?? `the administrators of ${appName}`, notice.eventId) : []),
          ...(t.precaution ? [] : t.byAdministrator
            ? [`If you did not expect this, contact ${options.supportContact ?? `the administrators of ${appName}`} and quote the reference ${notice.eventId}.`]
            : ["If this was you, there is nothing to do."]),
          ...(t.byAdministrator || t.precaution ? [] : t.movedAway
            // A reset asked for from this address would mail nothing (the account no longer has it), and the account's
            // own reset links go to the new address: the way back is a person who can check and restore it.
            ? [
              "If it was not you, someone has taken over your account and moved it away from this address, so a password reset " +
                `cannot reach you here any more. Contact ${options.supportContact ?? `the administrators of ${appName}`} at once and quote the ` +
                `reference ${notice.eventId}: they can lock the account and end its sessions while they check it with you.`,
            ]
            : [`If it was not you, your account may be compromised: reset your password now${options.supportContact ? ` and contact ${options.supportContact}` : ""}.`]),
          "",
        ]),
      `This is an automatic security notice from ${appName}. You receive it whatever your mail preferences, because it concerns the security of your account.`,
      "",
    ];
    return {
      idempotencyKey: noticeKey(kind, notice.eventId, to),
      to,
      subject: `${appName}: ${t.subject}`,
      text: lines.join("\n"),
      kind,
      priority: PRIORITY.security,
      // A notice of an address change is meant for each address as such, the one set as much as the one left (a second
      // change may follow before it goes, and its address is told of both); any other, for the account's address now.
      ...(role === "current" && !changesAddress && notice.accountId !== undefined ? { accountId: notice.accountId } : {}),
    };
  });
}

/**
 * Enqueues the notice(s) for a security event. Idempotent per (event, recipient).
 *
 * @example
 * await notifySecurityEvent(outbox, { eventId: evt.id, to: user.email, at: clock.now(), ip, event: { type: "password-changed" } }, { appName: "Example" });
 */
export async function notifySecurityEvent(outbox: Outbox, notice: SecurityNotice, options: NoticeOptions): Promise<EnqueueResult[]> {
  const results: EnqueueResult[] = [];
  for (const message of securityMessages(notice, options)) {
    if (options.gatherUntil === undefined) {
      results.push(await outbox.enqueue(message, options.executor));
      continue;
    }
    // A gathering notice counts as queued when its text reaches the mail that will go: new, or rewritten in place.
    const { id, outcome } = await outbox.queueOrRevise({ ...message, notBefore: options.gatherUntil }, options.executor);
    results.push({ id, created: outcome !== "kept" });
  }
  return results;
}

/**
 * notifySecurityEvent for a change that stands whether or not its owner can be told: an address the outbox cannot
 * mail (addressProblem), or any notice it refuses as input (NotifyInputError; its message names the field, never the
 * address), goes to `refused` (the caller audits it, in the change's transaction) instead of failing the change.
 * Anything else (the database) is raised. "taken" when the notice was queued before (its idempotency key).
 *
 * @example
 * await queueSecurityNotice(outbox, notice, { appName, executor: trx }, (reason) => audit.appendIn(trx, { type: "…notice.refused", … }));
 */
export async function queueSecurityNotice(
  outbox: Outbox, notice: SecurityNotice, options: NoticeOptions, refused: (reason: string, code?: string) => Promise<void>,
): Promise<"queued" | "taken" | "refused"> {
  const problem = addressProblem(notice.to);
  if (problem !== null) {
    await refused(problem);
    return "refused";
  }
  try {
    return (await notifySecurityEvent(outbox, notice, options)).some((r) => r.created) ? "queued" : "taken";
  } catch (error) {
    if (!(error instanceof NotifyInputError)) throw error;
    await refused(error.message, error.code);
    return "refused";
  }
}
