// Small helpers shared by the /auth routes: cookies, the session a route needs, audit + security notices.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { mfaErrors } from "../../accounts/mfa/index.ts";
import { deviceCookieFor, knownDevice, readDeviceCookie, SESSION_COOKIE, sessionCookie, sessionErrors, type DeviceAccount, type DeviceCookie } from "../../accounts/sessions/index.ts";
import type { FloodReason } from "../../accounts/flood/index.ts";
import type { App } from "../../app/types.ts";
import { addressProblem, queueSecurityNotice, type SecurityEvent } from "../../notify/index.ts";
import { NEW_DEVICE_FOLLOW_UP_NAMED, type NewDeviceSignIn } from "../../notify/security-notices.ts";
import { datedAheadToleranceFor } from "../../store/clock-skew.ts";
import { lockKeyOf, serialiseTransactions } from "../../store/database.ts";
import { NO_CONTROL } from "../api/common.ts";
import type { RequestAuth } from "../auth-context.ts";
import type { Schema } from "../../store/schema.ts";
import type { GenuineLinkRefusal } from "../../crypto/link-token.ts";
import { unrecordedCounts } from "../../accounts/login/refusal-sampler.ts";
import { httpAuthErrors } from "./errors.ts";
import { clientIP, userAgent } from "./request-info.ts";
import { ALL_PENDING, type CookieSession } from "./state.ts";

/**
 * Installs a session token as the cookie; the response must not be cached (ASVS 14.3.2). Any Set-Cookie line already
 * queued for the session cookie goes first: authenticate() clears a dead cookie the request presented, and two lines
 * for one name in one answer are what RFC 6265 §4.1.1 says servers SHOULD NOT send — a hop that keeps only the first
 * would turn a login into a sign-out. Other cookies' lines (the known-device cookie) stay.
 */
export function setSessionCookie(reply: FastifyReply, token: string): void {
  const pending = reply.getHeader("set-cookie");
  if (pending !== undefined) {
    const others = (Array.isArray(pending) ? pending : [String(pending)]).filter((line) => !line.startsWith(`${SESSION_COOKIE}=`));
    void reply.removeHeader("set-cookie");
    if (others.length > 0) void reply.header("set-cookie", others);
  }
  void reply.header("set-cookie", sessionCookie(token));
  void reply.header("cache-control", "no-store");
}

/** The caller's browser session, or a 401: routes that act on "this session" refuse API tokens. */
export function requireSession(request: FastifyRequest): { auth: RequestAuth; cs: CookieSession } {
  const auth = request.auth;
  const cs = request.cookieSession;
  if (!auth && request.sessionReplaced) throw sessionErrors.refused("replaced");
  if (!auth || auth.via !== "session" || !cs) throw httpAuthErrors.sessionRequired();
  return { auth, cs };
}

/** Route config of a route every signed-in session may reach, whatever its gate. */
export const ANY_GATE = { access: "authenticated", allowPending: ALL_PENDING } as const;

/** The request context the account core records (IP, user agent, request id). */
export function requestContext(request: FastifyRequest): { ip: string | null; userAgent: string | null; requestId: string } {
  return { ip: clientIP(request), userAgent: userAgent(request), requestId: request.id };
}

/**
 * Who acted and from where, as every /auth event of a signed-in account names it (ASVS 16.2.1): the client address
 * (`ip`, as Fastify resolved it: the trust-proxy setting applies) and the session the request rode (`sessionId`, its
 * public id, never its secret), as /api/v1 events do (callerContext). A thief signed in from the owner's own network
 * and browser build reads exactly as the owner but for the session, and the session is what a responder ends
 * (ASVS 7.5.2). No `sessionId` for a request without a session, or with another account's (a link opened in a browser
 * signed in to someone else names nobody's session as the account's).
 */
export function actingContext(request: FastifyRequest, userId: string): { ip: string | null; sessionId?: string } {
  const auth = request.auth;
  const ip = clientIP(request);
  return auth && auth.via === "session" && auth.sessionId !== null && auth.userId === userId ? { ip, sessionId: auth.sessionId } : { ip };
}

/**
 * Records `auth.session.replaced`: the change `reason` replaced the caller's session (`sessionId`) by a new one
 * (`newSessionId`, the one now live). For the changes whose own event is written before the new session exists (a
 * factor's enrolment, a password change: the event and the owner's notice commit with the change, the new session's
 * id is drawn after it): without this, the session a thief's enrolment stepped up to aal 2 was named by no event, and
 * a responder could not end it from the log (ASVS 16.2.1, 7.5.2). Call it before the new cookie is set: a session
 * whose record failed never reaches the browser. With `executor` (the rotation's transaction, RotateOptions.record) it
 * commits with the change or not at all: written after the commit, a record that failed (the audit head held past the
 * store's wait bound) answered 503 about a change that had been made, its new session never sent and the old one gone,
 * so the retry it asked for was refused as "replaced" (test/bounded-waits-c-red-team.test.ts).
 */
export async function recordReplacedSession(app: App, request: FastifyRequest, userId: string, newSessionId: string, data: { reason: string } & Record<string, unknown>, executor?: Kysely<Schema>): Promise<void> {
  const entry = { type: "auth.session.replaced", actor: userId, subject: userId, requestId: request.id, data: { ...data, ...actingContext(request, userId), newSessionId } };
  await (executor ? app.audit.appendIn(executor, entry) : app.audit.append(entry));
}

/**
 * Appends an audit event and queues the matching security notice (ASVS 6.3.7) to the account's address.
 * The notice's idempotency key is the audit event id, so a retry never mails twice. With `executor` (the change's
 * own transaction) the event and the notice commit with the change or not at all: a crash or a database error
 * between them can no longer leave a changed password or factor that nobody was told about. An address the outbox
 * cannot mail (the account store accepts more, e.g. a non-ASCII local part from an import) must not turn the change
 * into an error answer: the missed notice is audited and logged instead. The event names the address and the acting
 * session (actingContext; last, so an event's own data cannot overwrite them).
 */
export async function auditAndNotify(
  app: App, request: FastifyRequest, input: { type: string; userId: string; data?: Record<string, unknown>; notice?: SecurityEvent }, executor?: Kysely<Schema>,
): Promise<void> {
  const entry = { type: input.type, actor: input.userId, subject: input.userId, requestId: request.id, data: { ...input.data, ...actingContext(request, input.userId) } };
  const event = executor ? await app.audit.appendIn(executor, entry) : await app.audit.append(entry);
  if (input.notice) await notifyOwner(app, request, input.userId, event.id, input.notice, executor);
}

/**
 * Queues the security notice of audit event `eventId` to the account's owner (its id is the idempotency key), in
 * `executor` when given (the change's transaction; then nothing else may be queried, see FactorChangeOptions). An
 * address the outbox cannot mail, or any other notice the outbox refuses as input (NotifyInputError), is logged and
 * audited as NOTICE_REFUSED instead: the change it reports stands, so it never becomes an error answer. Returns
 * false when the notice was queued before (its idempotency key was taken) or the account is gone; true otherwise.
 * `withoutAddress`: the notice does not say where the request came from — for a change an administrator made, whose
 * network is none of the mailbox's business (after a takeover the intruder may be reading it), as the administrator's
 * change of address leaves it out (set-by-administrator.ts). `gatherUntil`: a notice that gathers events until then
 * (NoticeOptions.gatherUntil); true when this call's text is the one queued (new, or rewritten in place), false when a
 * sender had taken it already.
 */
export async function notifyOwner(app: App, request: FastifyRequest, userId: string, eventId: string, notice: SecurityEvent, executor?: Kysely<Schema>, options: { withoutAddress?: boolean; gatherUntil?: number } = {}): Promise<boolean> {
  const user = await (executor ?? app.db.db).selectFrom("users").select(["id", "email"]).where("id", "=", userId).executeTakeFirst();
  if (!user) return false;
  const refused = async (recipient: "account" | "previous", reason: string, code?: string): Promise<void> => {
    request.log.warn({ userId: user.id, notice: notice.type, recipient, ...(code ? { code } : {}) }, "security notice not sent: the outbox refused it");
    const entry = { type: NOTICE_REFUSED, actor: "system", subject: user.id, requestId: request.id, data: { notice: notice.type, recipient, event: eventId, reason } };
    await (executor ? app.audit.appendIn(executor, entry) : app.audit.append(entry));
  };
  const told = await queueSecurityNotice(
    app.accounts.outbox,
    { eventId, to: user.email, accountId: user.id, at: app.clock.now(), ip: options.withoutAddress === true ? null : clientIP(request), event: notice },
    { appName: app.config.serviceName, ...(executor ? { executor } : {}), ...(options.gatherUntil === undefined ? {} : { gatherUntil: options.gatherUntil }) },
    (reason, code) => refused("account", reason, code),
  );
  if (told === "refused") return true;
  const queued = told === "queued";
  // An email change also tells the old address, unless the outbox cannot mail it (the notice then leaves it out).
  const previous = notice.type === "email-changed" ? addressProblem(notice.oldEmail) : null;
  if (previous !== null) await refused("previous", previous);
  return queued;
}

/**
 * Failed attempts in a row after which the right password is mailed to the owner: as many as Drupal's per-account
 * window allows (5 in 6 hours), so an owner who mistypes once or twice is not told, one whose password was guessed is.
 */
export const FAILURES_WORTH_A_NOTICE = 5;

const HOUR = 3_600_000;

/**
 * The notices of suspicious authentication (ASVS 6.3.5), the same from every route that checks a password or a
 * factor (login, step-up, re-authentication, password change). `eventId` makes a notice about one event once; the
 * ones an attacker holding the password could repeat at will (a refused factor, a new device) are keyed by the
 * account and the hour instead, so at most one of each kind an hour reaches the owner.
 */
export const suspiciousSignIn = {
  /** The right password after `failures` failed attempts in a row (a guess that finally worked), if that is many. */
  async afterFailures(app: App, request: FastifyRequest, userId: string, failures: number, eventId: string): Promise<void> {
    if (failures < FAILURES_WORTH_A_NOTICE) return;
    await notifyOwner(app, request, userId, `after-failures:${eventId}`, { type: "signed-in-after-failures", failures });
  },
  /** The right password, then a refused second factor: a partly successful authentication. */
  async factorRefused(app: App, request: FastifyRequest, userId: string): Promise<void> {
    await notifyOwner(app, request, userId, `mfa-refused:${userId}:${Math.floor(app.clock.now() / HOUR)}`, { type: "second-factor-refused" });
  },
  /** A recovery code stood in for the second factor; `left` codes remain. With `executor`, queued in its transaction. */
  async recoveryCodeUsed(app: App, request: FastifyRequest, userId: string, left: number, eventId: string, executor?: Kysely<Schema>): Promise<void> {
    await notifyOwner(app, request, userId, `recovery-code:${eventId}`, { type: "signed-in-with-recovery-code", left }, executor);
  },
  /**
   * A sign-in from a browser that never signed in to the account. False when this hour's notice went out already
   * (for another browser): the sign-in then goes into the hour's follow-up (newDeviceFollowUp), and the caller does not
   * remember this browser — the owner was not told of it at the time — so it counts as new again at its next login.
   * The account's first sign-in of all (`first`) is keyed apart: it happens once, so it cannot flood the owner, and it
   * must not spend the hour's notice a thief signing in after the owner would otherwise get.
   */
  async newDevice(app: App, request: FastifyRequest, userId: string, options: { first?: boolean } = {}): Promise<boolean> {
    const notice = { type: "signed-in-from-new-device" } as const;
    // Two "first" sign-ins at once both read no last login: the one that loses the first's key is a sign-in of the hour
    // like any other, told at once if the hour's notice is unspent (it went to the follow-up, up to an hour late,
    // test/race-twentyone-red-team.test.ts).
    const told = (options.first === true && (await notifyOwner(app, request, userId, `new-device:${userId}:first`, notice))) ||
      (await notifyOwner(app, request, userId, `new-device:${userId}:${Math.floor(app.clock.now() / HOUR)}`, notice));
    if (!told) await newDeviceFollowUp(app, request, userId);
    return told;
  },
};

/**
 * The audit event of a sign-in from a new browser made after the hour's new-device notice had gone out (for another
 * browser): what the hour's follow-up notice is written from. Its request id is the login's (auth.login.succeeded, which
 * names the session).
 */
export const NEW_DEVICE_LEFT_OUT = "auth.login.new-device-left-out";

/**
 * Records a sign-in from a new browser that the hour's notice left out, and writes the hour's one follow-up notice
 * (`new-device:<user>:<hour>:more`, security.new-device-follow-up) anew from the hour's records: the first
 * NEW_DEVICE_FOLLOW_UP_NAMED named (time, address, browser), the rest counted. With one notice an hour and nothing
 * else, a throwaway sign-in from an address the attacker picked spent it, and the real browser signing in minutes later
 * was named to the owner never (test/notice-suppression-red-team.test.ts). The follow-up is not sent before the hour
 * ends (and the skew two nodes may have between them, datedAheadToleranceFor), and until a sender takes it each left-out
 * sign-in rewrites it in place (Outbox.queueOrRevise): it gathers every one of the hour, so a second throwaway cannot
 * spend it either, and the owner gets at most two such notices an hour. Written from the records, not appended to:
 * nothing of the mail's text is parsed back. One writer per account at a time, so of two sign-ins racing the later
 * writes a text that names both.
 */
async function newDeviceFollowUp(app: App, request: FastifyRequest, userId: string): Promise<void> {
  const { ip, userAgent } = requestContext(request);
  const kept = await app.db.transaction(async (trx) => {
    await serialiseTransactions(app.db, trx, lockKeyOf(`new-device-follow-up:${userId}`));
    const left = await app.audit.appendIn(trx, { type: NEW_DEVICE_LEFT_OUT, actor: userId, subject: userId, requestId: request.id, data: { ip, userAgent } });
    // The hour of the record, not of the notice's look: a login straddling the hour's end goes into the next hour's.
    const hour = Math.floor(left.at / HOUR) * HOUR;
    const ofHour = trx.selectFrom("audit_events").where("type", "=", NEW_DEVICE_LEFT_OUT).where("subject", "=", userId).where("at", ">=", hour).where("at", "<", hour + HOUR);
    const named = await ofHour.select(["at", "data"]).orderBy("seq").limit(NEW_DEVICE_FOLLOW_UP_NAMED).execute();
    const { n } = await ofHour.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    const signIns = named.map((r): NewDeviceSignIn => {
      const data = JSON.parse(r.data) as Record<string, unknown>;
      return { at: Number(r.at), ip: typeof data["ip"] === "string" ? data["ip"] : null, userAgent: typeof data["userAgent"] === "string" ? data["userAgent"] : null };
    });
    const gatherUntil = hour + HOUR + datedAheadToleranceFor(app.config.maxClockSkewMs);
    const event = { type: "new-device-follow-up", hour, signIns, more: Number(n) - signIns.length } as const;
    return !(await notifyOwner(app, request, userId, `new-device:${userId}:${hour}:more`, event, trx, { gatherUntil }));
  });
  // Only a node whose clock is further behind than the deployment allows can find the follow-up sent already: the
  // record stays in the audit log for a responder.
  if (kept) request.log.warn({ userId, notice: "new-device-follow-up" }, "a sign-in from a new browser came after its hour's follow-up notice was sent: recorded, not mailed");
}

/** The server's keyed tag for known-device cookies (device-cookie.ts): the keyring's device tag. */
export function deviceTagger(app: App): (text: string) => string {
  // Its own key, not identifierTag's: the audit log holds identifierTag of any text typed as a login name or a reset
  // address, so a reader of the log could have typed a cookie's text and read its tag back (ASVS 6.3.5).
  return (text) => app.keyring.deviceTag(text);
}

/**
 * Sets the known-device cookie of this browser (device-cookie.ts) from the one it sent (`sent`, as read from the
 * request), remembering it for `account` when given (else renewing what it holds). The tag is bound to the account's
 * password change time, so call it with the account as stored after a change.
 */
export function setDeviceCookie(app: App, reply: FastifyReply, sent: DeviceCookie | null, account: DeviceAccount | null): void {
  const cookie = deviceCookieFor(sent, account, deviceTagger(app), () => Buffer.from(app.random.bytes(16)).toString("base64url"));
  void reply.header("set-cookie", cookie);
}

/** Remembers this browser for the account `userId` as it is stored now (after a password change, reset or step-up). */
export async function rememberThisDevice(app: App, request: FastifyRequest, reply: FastifyReply, userId: string): Promise<void> {
  const user = await app.accounts.users.getById(userId);
  if (user) setDeviceCookie(app, reply, readDeviceCookie(request.headers.cookie), { id: user.id, passwordChangedAt: user.passwordChangedAt });
}

/**
 * What names a browser known to `account` for flood control (Attempt.known): its device id, with the password change
 * its cookie's tag is bound to (a new password, a new window), when the cookie `sent` is valid for the account; null
 * otherwise. Not the tag itself: flood control keys this text under its own key, and no tag is stored anywhere.
 */
export function knownBrowserOf(sent: DeviceCookie | null, account: DeviceAccount, tagger: (text: string) => string): string | null {
  return sent !== null && knownDevice(sent, account, tagger) ? `device:${sent.deviceId}:${account.passwordChangedAt ?? 0}` : null;
}

/**
 * For a route a live session of the account calls with its password (re-authentication, password change): where flood
 * control may hold the attempt apart from the account's 100-failure stop (Attempt.known), or null. A browser known to
 * the account (knownBrowserOf); otherwise a session at full assurance (aal 2), which passed the password and a second
 * factor: failures others send naming the account never touched it, and its own window dies with the session, so a
 * thief on a copy of its cookie still gets ten guesses a window, and none once the streak reaches the stop for known
 * attempts (FloodPolicy.knownMaxConsecutive). A session of the password alone in a browser the account does not know
 * stays under the stop: that is the sign-in a guesser with a stuffed password makes, and it proves nothing a guess
 * would not.
 */
export async function knownHolder(app: App, request: FastifyRequest, account: DeviceAccount, session: { id: string; aal: number }): Promise<string | null> {
  await app.keyring.fresh(); // the device key in force (Keyring.fresh)
  return knownBrowserOf(readDeviceCookie(request.headers.cookie), account, deviceTagger(app)) ?? (session.aal >= 2 ? `session:${session.id}` : null);
}

/** The audit event of a security notice that could not be queued because the outbox refuses it (the account's address, or other input). */
export const NOTICE_REFUSED = "auth.notice.refused";

/**
 * JSON schema of a bounded string field without control characters (NUL, tab, newline…): none belongs in an
 * address, a token, a code or a path, and PostgreSQL refuses a NUL in text outright (a login with one in the
 * identifier answered 500). Passwords take `secret()` instead.
 */
export function str(maxLength: number, minLength: number = 1): { type: "string"; minLength: number; maxLength: number; pattern: string } {
  return { type: "string", minLength, maxLength, pattern: NO_CONTROL };
}

/**
 * JSON schema of a password field: any characters, bounded. A password is hashed, never stored or shown, and one
 * set elsewhere (an import) may hold any character: refusing some would lock its owner out.
 */
export function secret(maxLength: number): { type: "string"; minLength: number; maxLength: number } {
  return { type: "string", minLength: 1, maxLength };
}

/**
 * The 429 of a throttled password guess (login, password change, re-authentication). A window runs out, so its answer
 * says when (`Retry-After`). The stop after 100 consecutive failures does not lift with time — only a password reset
 * or an administrator clears it — so its answer promises no wait (ASVS 6.3.1). Either answer is the same for a known
 * and an unknown identifier: it tells which stop, never whether the account exists. A known browser's (or session's)
 * own window ("known", flood.ts) is a window like the others: told to wait, never that the account is blocked, which
 * for that browser it is not. Only a browser holding a valid cookie for the account, or its session, ever gets it.
 */
export function throttledAnswer(reply: FastifyReply, verdict: { reason: FloodReason; retryAfterMs: number }, code: string, what: string): FastifyReply {
  if (verdict.reason === "consecutive") {
    return reply.status(429).send({ error: { code, message: `too many ${what} in a row: this account stays blocked until its password is reset by mail or an administrator clears the block` } });
  }
  const seconds = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
  const from = verdict.reason === "known" ? " from this browser" : "";
  return reply.status(429).header("retry-after", String(seconds)).send({ error: { code, message: `too many ${what}${from}; try again in ${seconds} seconds` } });
}

/**
 * The 429 of a throttled second-factor code (step-up, re-authentication, a reset link, enrolment confirmation): the
 * code was not evaluated. The factor's window is the MFA flood policy's, so the answer names no exact time.
 */
export async function mfaThrottledAnswer(app: App, reply: FastifyReply, userId: string): Promise<FastifyReply> {
  const { code, message } = mfaErrors.throttled();
  // The stop after 100 failures in a row does not lift with time, as the password's does not (throttledAnswer): its
  // answer promises no wait, where "Retry-After: 300" had a client retry every five minutes for ever.
  if (await app.accounts.mfa.stopped(userId)) {
    return reply.status(429).send({ error: { code, message: "too many wrong codes in a row: the account's codes stay blocked until an administrator clears the block (POST /api/v1/users/:id/throttles/clear)" } });
  }
  return reply.status(429).header("retry-after", "300").send({ error: { code, message } });
}

/**
 * Records a refused use of a genuine link (its secret matched: used, expired, voided, or its account locked) against
 * the account as event `type`, once a minute per link (the refusal sampler; the rest are counted on the next event).
 * Whoever holds a genuine link reads the owner's mail or took a session: the responder scoping an incident needs to see
 * the attempt. Junk and guessed links (no `genuine`) are not recorded. The answer to the client does not change.
 */
export async function recordLinkRefusal(app: App, request: FastifyRequest, type: string, genuine: GenuineLinkRefusal | undefined): Promise<void> {
  if (!genuine) return;
  const sample = app.accounts.refusals.take(`${type}:${genuine.tokenId}`, app.clock.now());
  if (!sample.record) return;
  await app.audit.append({
    type, actor: "anonymous", subject: genuine.userId, requestId: request.id,
    data: { ip: clientIP(request), link: genuine.tokenId, reason: genuine.reason, ...unrecordedCounts(sample) },
  });
}
