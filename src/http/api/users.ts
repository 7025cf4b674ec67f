// /api/v1/users: list and search (accounts.read), create, lock, unlock, require a password change, end every
// session of an account and set its email address (accounts.write). Ids in paths are the random user ids (never sequential).
// Lock, set-email, sessions/revoke and throttles/clear refuse the caller's own account: each has an owner's way (or none).
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { adminRemovalGuard, holdActing, holdGrantsTo, isPermission } from "../../accounts/roles/index.ts";
import { endUserSessions } from "../../accounts/sessions/index.ts";
import type { User } from "../../accounts/users/user-store.ts";
import type { App } from "../../app/types.ts";
import type { Schema } from "../../store/schema.ts";
import { auditAPI, callerContext, ID, PAGE_QUERY, SMALL_BODY, text } from "./common.ts";
import { openCursor, sealCursor } from "./cursor.ts";
import { apiErrors } from "./errors.ts";
import { callerOf, callerWithin, can, type Caller } from "./guard.ts";
import { lockUser, requirePasswordChange, unlockUser } from "../../accounts/users/admin-changes.ts";
import { userViews } from "./user-queries.ts";
import { PASSWORD_CHANGE_REQUIRED } from "../../contain/levers/expire-passwords.ts";
import { notifyOwner } from "../auth/helpers.ts";
import { accountPasswordContext, throwIfRefused } from "../../accounts/password-policy/index.ts";
import { outsidePasswordWork, withPasswordWork } from "../auth/password-work.ts";
import { identifierKey } from "../../accounts/users/normalise.ts";
import { createOverSignUps, forecastSetEmail, setEmailByAdministrator } from "../../accounts/email-change/index.ts";

const USER_PARAMS = { type: "object", required: ["id"], additionalProperties: false, properties: { id: ID } } as const;

// The lock's optional body: absent, or {"reason": "…"} (null as a type lets an absent body through the validator;
// lockReason below trims and checks the reason again).
const LOCK_BODY = { type: ["object", "null"], additionalProperties: false, properties: { reason: text(1, 200) } } as const;

/** Loads the account a path names; 404 when there is none. */
export async function targetUser(app: App, id: string): Promise<User> {
  const user = await app.accounts.users.getById(id);
  if (!user) throw apiErrors.userNotFound(id);
  return user;
}

/**
 * Refuses a change to an account that holds a permission the caller does not: someone with accounts.write
 * cannot lock out, or take over through a reset, an administrator (ASVS 8.2.2: no privilege escalation
 * through the objects one is allowed to change). Returns the permissions the target holds.
 */
export async function assertOutranks(app: App, caller: Caller, target: User, executor?: Kysely<Schema>): Promise<ReadonlySet<string>> {
  const held = await app.accounts.roles.permissionsOf(target.id, executor);
  for (const p of held) {
    if (isPermission(p) && !can(caller, p)) throw apiErrors.outranked(target.id, p);
  }
  return held;
}

/**
 * The outranking check again, inside the change's transaction `trx` and after waiting for any grant to the target
 * in progress: without it, a role granted between the first check and the change (an accounts.write caller locking
 * someone an administrator is promoting at that moment) let the change through. The caller is read again there too
 * (callerWithin): one demoted or locked while the change waited must not finish it. Returns what the target holds.
 */
async function assertOutranksWithin(app: App, trx: Kysely<Schema>, caller: Caller, target: User): Promise<ReadonlySet<string>> {
  await holdGrantsTo(app.db, trx, target.id);
  const now = await callerWithin(app, trx, caller);
  if (!can(now, "accounts.write")) throw apiErrors.missingPermission("accounts.write");
  return assertOutranks(app, now, target, trx);
}

/** Registers the user routes on the API plugin. */
export function registerUserRoutes(api: FastifyInstance, app: App): void {
  api.get("/users", {
    config: { access: "accounts.read" },
    schema: {
      querystring: { type: "object", additionalProperties: false, properties: { ...PAGE_QUERY, q: text(1, 254) } },
    },
  }, async (request) => {
    const query = request.query as { limit: number; cursor?: string; q?: string };
    const q = query.q ?? null;
    // Searched on its lookup key, which is trimmed: blank text would be an empty prefix, every account.
    if (q !== null && identifierKey(q) === "") throw apiErrors.badBody("q must hold more than white space (leave it out to list every account)");
    // The cursor is bound to the search text: a cursor from one search cannot page through another.
    const filter = `q=${q ?? ""}`;
    const position = query.cursor === undefined ? null : await openCursor(app.keyring, "users", filter, query.cursor);
    // `exact`: the page before ended among the search's exact matches, which are listed first (UserStore.page).
    if (position !== null && (typeof position["after"] !== "string" || (position["exact"] !== undefined && position["exact"] !== 1))) throw apiErrors.badCursor();
    const after = position === null ? null : { id: position["after"] as string, exact: position["exact"] === 1 };
    // The store's page: each account with the initial-password expiry in force, as its other reads carry it.
    const page = await app.accounts.users.page({ q, after, limit: query.limit });
    const next = page.next;
    const nextCursor = next === null ? null : await sealCursor(app.keyring, "users", filter, { after: next.id, ...(next.exact ? { exact: 1 } : {}) });
    return { users: await userViews(app.db.db, page.users), nextCursor };
  });

  api.get("/users/:id", { config: { access: "accounts.read" }, schema: { params: USER_PARAMS } }, async (request) => {
    const user = await targetUser(app, (request.params as { id: string }).id);
    const [view] = await userViews(app.db.db, [user]);
    return { user: { ...view, roles: await app.accounts.roles.rolesOf(user.id) } };
  });

  api.post("/users", {
    config: { access: "accounts.write" },
    bodyLimit: SMALL_BODY,
    schema: {
      body: {
        type: "object", required: ["email"], additionalProperties: false,
        properties: {
          email: text(3, 254),
          username: text(1, 64),
          displayName: text(1, 200),
          // Bounded well above any passphrase; the policy applies its own rules (NIST SP 800-63B-4 allows ≥ 64).
          // Control characters are not printable characters (SP 800-63B asks for those): an initial password with
          // a NUL or a tab could not be typed at the first login anyway.
          password: text(1, 1024),
        },
      },
    },
  }, withPasswordWork(app, async (request, reply) => {
    const caller = callerOf(request);
    const body = request.body as { email: string; username?: string; displayName?: string; password?: string };
    let passwordHash: string | null = null;
    if (body.password !== undefined) {
      // The same check and refusal as every other new password (accountPasswordContext, throwIfRefused).
      throwIfRefused(await outsidePasswordWork(app, request, () => app.accounts.policy.check(body.password as string, accountPasswordContext(body, app.config.serviceName))));
      passwordHash = await app.accounts.passwords.hash(body.password);
    }
    // Without a password the account cannot log in until its owner completes a password reset.
    // An address held only by an unfinished sign-up (anyone may start one: an outsider squatting the address of someone
    // about to join) is the administrator's to give: the sign-up goes in this transaction, recorded (sign-up-shell.ts).
    const removal = { actor: caller.userId, via: "api" as const, requestId: request.id, detail: callerContext(request, caller) };
    const { created: user, signUpRemoved } = await app.db.transaction((trx) => createOverSignUps(app.db, trx, app.audit, body.email, removal, async (signUpRemoved) => {
      const created = await app.accounts.users.create({
        email: body.email, username: body.username ?? null, displayName: body.displayName ?? null,
        passwordHash, passwordScheme: passwordHash === null ? null : app.accounts.passwords.defaultScheme,
        // ASVS 6.4.1: a password chosen by someone other than the owner is only a first-login credential; the
        // login gates hold the account at POST /auth/password/change until the owner picks their own, and past
        // BULWARK_INITIAL_PASSWORD_HOURS it signs nobody in.
        passwordMustChange: passwordHash !== null,
        passwordInitialExpiresAt: passwordHash === null ? null : app.clock.now() + app.config.initialPasswordMs,
      }, trx);
      await auditAPI(app, request, caller, { type: "user.created", subject: created.id, data: { via: "api", withPassword: passwordHash !== null, mustChangePassword: passwordHash !== null, ...(signUpRemoved !== null ? { signUpRemoved } : {}) } }, trx);
      return created;
    }));
    const [view] = await userViews(app.db.db, [user]);
    return reply.status(201).header("location", `/api/v1/users/${user.id}`).send({ user: { ...view, roles: [] }, signUpRemoved });
  }));

  /** A change to one account, already checked once for outranking; a change with a transaction checks again within it. */
  type Change = (app: App, request: FastifyRequest, caller: Caller, user: User) => Promise<Record<string, unknown>>;
  // Without `body` the route takes none: any field sent is refused (strict-fields.ts), never ignored.
  const change = (path: string, change: Change, body?: Record<string, unknown>): void => {
    api.post(`/users/:id/${path}`, {
      config: { access: "accounts.write" },
      bodyLimit: SMALL_BODY,
      schema: { params: USER_PARAMS, ...(body ? { body } : {}) },
    }, async (request) => {
      const caller = callerOf(request);
      const user = await targetUser(app, (request.params as { id: string }).id);
      await assertOutranks(app, caller, user);
      const result = await change(app, request, caller, user);
      const fresh = await targetUser(app, user.id);
      return { user: (await userViews(app.db.db, [fresh]))[0], ...result };
    });
  };

  change("lock", async (app, request, caller, user) => {
    if (user.id === caller.userId) throw apiErrors.selfLock();
    const reason = lockReason(request.body);
    const outcome = await app.db.transaction(async (trx) => {
      // Locking an administrator while another gives up their own role must not leave none usable. The last-admin lock
      // is taken first, before the caller's role rows are read (permissionsHeldWithin), as every removal takes it.
      const lastAdminCheck = await adminRemovalGuard(app.db, trx);
      const held = await assertOutranksWithin(app, trx, caller, user);
      // The account's changes in flight (each holds its right to act, shared) finish first; later ones see it locked.
      await holdActing(app.db, trx, user.id, "exclusive");
      const locked = await lockUser(trx, user.id, reason, app.clock.now());
      if (held.has("admin")) await lastAdminCheck();
      // Also when it was locked already: the lock is now this administrator's (a containment undo leaves it alone). Without
      // a reason given, the one it stands under now, read after the change in its transaction: the account read before
      // it may be stale (another process locked or re-locked it since), and the record then named a reason the lock
      // never had (test/cross-process-writes-red-team.test.ts).
      if (locked) {
        const standing = reason ?? (await trx.selectFrom("users").select("locked_reason").where("id", "=", user.id).executeTakeFirstOrThrow()).locked_reason;
        await auditAPI(app, request, caller, { type: "user.locked", subject: user.id, data: { reason: standing, ...(locked === "relocked" ? { relocked: true } : {}) } }, trx);
      }
      return locked;
    });
    // Browser sessions end with the lock, so an unlock does not revive a session an attacker may hold;
    // API tokens are only refused while locked (the owner keeps their automation after an unlock).
    const ended = outcome === "locked" ? await endUserSessions(app.db.db, user.id, app.clock.now()) : 0;
    return { changed: outcome === "locked", sessionsEnded: ended };
  }, LOCK_BODY);

  change("unlock", async (app, request, caller, user) => {
    const changed = await app.db.transaction(async (trx) => {
      await assertOutranksWithin(app, trx, caller, user);
      const unlocked = (await unlockUser(trx, user.id, app.clock.now())) !== null;
      if (unlocked) await auditAPI(app, request, caller, { type: "user.unlocked", subject: user.id }, trx);
      return unlocked;
    });
    return { changed };
  });

  change("require-password-change", async (app, request, caller, user) => {
    // Not one's own account: a leaked token looping it held its owner at the password-change gate after every change,
    // where DELETE /api/v1/tokens (ending that token) could not be reached (test/session-nineteen-red-team.test.ts).
    if (user.id === caller.userId) throw apiErrors.selfPasswordChange();
    const changed = await app.db.transaction(async (trx) => {
      await assertOutranksWithin(app, trx, caller, user);
      const set = await requirePasswordChange(trx, user.id, app.clock.now());
      // Audited when it was required already too: the event is what makes the expiry the administrator's.
      if (set) {
        const event = await auditAPI(app, request, caller, { type: PASSWORD_CHANGE_REQUIRED, subject: user.id, ...(set === "retaken" ? { data: { retaken: true } } : {}) }, trx);
        // The owner is told now, in the change's transaction, as the expire-passwords lever tells them (ASVS 6.3.7):
        // whoever holds the password (and a live session held at the change gate) could otherwise choose the next one
        // before the owner heard of the precaution. Only when it was newly required: a retaken one was told before.
        // Without the help desk's address: after a takeover the intruder may be reading that mailbox.
        if (set === "required") await notifyOwner(app, request, user.id, event.id, { type: "password-expired" }, trx, { withoutAddress: true });
      }
      return set === "required";
    });
    return { changed };
  });

  // After checking who is asking (out of band), the way back from a hijack: the account's address is set to the owner's,
  // every session and mailed link ends, both addresses are told (set-by-administrator.ts). A fresh session only (ASVS
  // 7.5.3: pointing an account at another mailbox takes it over). Not one's own: that goes through POST
  // /auth/email/change, whose link proves the new mailbox is the caller's. `dryRun` reports and changes nothing.
  api.post("/users/:id/email", {
    config: { access: "accounts.write", reauth: "required" },
    bodyLimit: SMALL_BODY,
    schema: {
      params: USER_PARAMS,
      body: { type: "object", required: ["email"], additionalProperties: false, properties: { email: text(3, 254), dryRun: { type: "boolean" } } },
    },
  }, async (request) => {
    const caller = callerOf(request);
    const body = request.body as { email: string; dryRun?: boolean };
    const user = await targetUser(app, (request.params as { id: string }).id);
    if (user.id === caller.userId) throw apiErrors.selfEmail();
    await assertOutranks(app, caller, user);
    if (body.dryRun === true) return { dryRun: true, ...(await forecastSetEmail(app, user.id, body.email)) };
    const outcome = await setEmailByAdministrator(app, {
      userId: user.id, email: body.email, actor: caller.userId, via: "api", requestId: request.id,
      detail: callerContext(request, caller),
      within: async (trx) => void await assertOutranksWithin(app, trx, caller, user),
    });
    return { user: (await userViews(app.db.db, [await targetUser(app, user.id)]))[0], ...outcome };
  });

  // After checking who is asking (out of band): the owner is locked out by failures that are not theirs. The login's
  // consecutive-failure stop (email and username) and the second factor's throttles lift; the time windows of
  // failures from particular addresses run out by themselves.
  // The stops and their event commit together (ASVS 16.3.3): lifted with no record, brute force against the account
  // resumed with no trace of who allowed it.
  // Not one's own, as lock: a leaked token (with the password from elsewhere) lifted its own second-factor throttle
  // between guesses, and 100 wrong codes in a row stopped nothing. The owner locked out asks someone else.
  change("throttles/clear", async (app, request, caller, user) => {
    if (user.id === caller.userId) throw apiErrors.selfThrottles();
    await app.db.transaction(async (trx) => {
      for (const identifier of [user.email, ...(user.username ? [user.username] : [])]) await app.accounts.flood.clearStreak(identifier, trx);
      await app.accounts.mfa.clearThrottle(user.id, trx);
      // And the hour's API-token mints: a leaked token minting and revoking spends them, and the owner's replacement
      // after the leak was refused for the rest of the hour with no lever to lift it.
      await app.accounts.tokenMints.clearFor(user.id, trx);
      await auditAPI(app, request, caller, { type: "user.throttles-cleared", subject: user.id }, trx);
    });
    return { cleared: true };
  });

  // The account's API tokens, for a help desk taking an account back: a lock only refuses them while it lasts, and
  // until now only a containment job could revoke another account's tokens, so the intruder's came back with the
  // unlock. Every token ends, what each minted too; the revocation and its event commit together (ASVS 7.4.1, 16.3.3).
  // One's own account is allowed, unlike sessions/revoke: it ends only the caller's own tokens (DELETE /api/v1/tokens
  // does as much), never the owner's way in, so a leaked token gains nothing by it and the owner may use it to clean up.
  change("tokens/revoke", async (app, request, caller, user) => {
    const revoked = await app.db.transaction(async (trx) => {
      await assertOutranksWithin(app, trx, caller, user);
      const count = await app.accounts.tokens.revokeAllForUser(user.id, { executor: trx });
      await auditAPI(app, request, caller, { type: "user.tokens-revoked", subject: user.id, data: { revoked: count } }, trx);
      return count;
    });
    return { tokensRevoked: revoked };
  });

  // Not one's own, as lock (ASVS 7.5.2): DELETE /auth/sessions asks for a fresh sign-in so that a thief cannot lock the
  // owner out, and here a leaked token (which outlives a password reset) ended each session the owner signed in with,
  // before its step-up, for as long as the token lived. One's own sessions end through the /auth routes.
  change("sessions/revoke", async (app, request, caller, user) => {
    if (user.id === caller.userId) throw apiErrors.selfSessions();
    // The sessions end only if their event is written: one transaction (ASVS 16.3.3).
    const ended = await app.db.transaction(async (trx) => {
      await assertOutranksWithin(app, trx, caller, user);
      const count = await endUserSessions(trx, user.id, app.clock.now());
      await auditAPI(app, request, caller, { type: "user.sessions-revoked", subject: user.id, data: { ended: count } }, trx);
      return count;
    });
    return { sessionsEnded: ended };
  });
}

/**
 * The optional body of a lock, `{"reason": "…"}`, checked again by hand (LOCK_BODY admits null for an absent body,
 * and a reason of only spaces).
 */
function lockReason(body: unknown): string | null {
  if (body === undefined || body === null) return null;
  if (typeof body !== "object" || Array.isArray(body)) throw apiErrors.badBody("body must be an object such as {\"reason\": \"…\"}, or absent");
  const extra = Object.keys(body).filter((k) => k !== "reason");
  if (extra.length) throw apiErrors.unknownFields("body", extra);
  const reason = (body as { reason?: unknown }).reason;
  if (reason === undefined) return null;
  // Control characters are refused: the reason is shown to operators and written to logs.
  if (typeof reason !== "string" || reason.trim().length === 0 || reason.length > 200 || /\p{Cc}/u.test(reason)) {
    throw apiErrors.badBody("reason must be text of 1 to 200 characters without control characters");
  }
  return reason.trim();
}
