// Helpers shared by the /api/v1 route modules: the audit record of a state change and of a refusal, times, shared schemas.
import type { FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import type { App } from "../../app/types.ts";
import { impossibleDate } from "../../lib/calendar.ts";
import { CONTROL_CLASS } from "../../lib/visible-text.ts";
import type { AuditEvent } from "../../audit/index.ts";
import type { Schema } from "../../store/schema.ts";
import { APIError, apiErrors } from "./errors.ts";
import type { Caller } from "./guard.ts";
import { clientIP, routeOf } from "../auth/request-info.ts";
import { recordSampled } from "../auth/authenticate.ts";
import { unrecordedCounts } from "../../accounts/login/refusal-sampler.ts";
import { isBulwarkError } from "../../lib/errors.ts";

/**
 * Who acted and from where, as every API event records it (ASVS 16.2.1): how the caller authenticated, the token it
 * used or the session it rode (the session's public id, never its secret: the one to end if a thief holds the
 * cookie), and the client address as Fastify resolved it (the trust-proxy setting applies, so a client cannot
 * write its own). Without the session and the address, a thief riding an administrator's cookie read exactly as
 * the administrator.
 */
export function callerContext(request: FastifyRequest, caller: Pick<Caller, "via" | "tokenId" | "sessionId">): Record<string, unknown> {
  return {
    auth: caller.via,
    ...(caller.tokenId ? { tokenId: caller.tokenId } : {}),
    ...(caller.via === "session" && caller.sessionId ? { sessionId: caller.sessionId } : {}),
    ip: clientIP(request),
  };
}

/**
 * Appends the audit event of a state change made through the API: the acting user, the request id (so an
 * event can be matched with the server log and the client's x-request-id), and how and from where the caller
 * authenticated (callerContext; it comes last, so an event's own data cannot overwrite it).
 * Pass `db` to write it in the change's own transaction.
 */
export async function auditAPI(
  app: App, request: FastifyRequest, caller: Caller, event: { type: string; subject?: string; data?: Record<string, unknown> }, db?: Kysely<Schema>,
): Promise<AuditEvent> {
  const input = {
    type: event.type, actor: caller.userId, subject: event.subject ?? "", requestId: request.id,
    data: { ...event.data, ...callerContext(request, caller) },
  };
  return db ? app.audit.appendIn(db, input) : app.audit.append(input);
}

/**
 * Refusals recorded besides every 403: the conflicts that stop a change for what it would do to who can act (the last
 * administrator's role or lock, one's own lock or address, a built-in role, an administrative role for an account on
 * a password someone else knew). A 409 that only reports the state of things (an address taken, a token limit) is no
 * attempt on anyone's authority, and is not recorded.
 */
const REFUSING_CONFLICTS: ReadonlySet<string> = new Set([
  "BULWARK_ERR_LAST_ADMIN", "BULWARK_ERR_API_SELF_LOCK", "BULWARK_ERR_API_SELF_EMAIL", "BULWARK_ERR_ROLE_BUILTIN", "BULWARK_ERR_ROLE_INITIAL_PASSWORD",
  "BULWARK_ERR_ROLE_ACCOUNT_INACTIVE",
]);

/** 403s whose own code already records them, sampled under their own keys (auth.reauth.required, auth.csrf.refused): never twice. */
const RECORDED_AT_SOURCE: ReadonlySet<string> = new Set(["BULWARK_ERR_REAUTH_REQUIRED", "BULWARK_ERR_CSRF"]);

// A path parameter goes into the event only in the form the routes' schemas accept (ID, role names): the refusal may
// come from the guard, before validation, and the raw text is the caller's (control characters, any length).
const PLAIN_PARAM = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Records a refused /api/v1 request of an authenticated caller as `api.refused` (ASVS 16.3.2, 16.3.3): a help desk
 * granting itself admin, locking an administrator, an administrator removing the last one. Without it, an escalation
 * or lock-out attempt left no trace while a wrong password did. The event names the caller (user, how it
 * authenticated, its token or session, its address), the target the path named (`subject`: its `id`, else its
 * `name`), the route and the refusal's code. Sampled like the other refusals (RefusalSampler, per caller, code and
 * route): the caller can repeat a refused request as fast as it is answered, so the first of each window is recorded
 * and carries the count of the rest. Anonymous callers (401) and errors that refuse no one's authority pass unrecorded.
 *
 * @example
 * api.addHook("onError", async (request, _reply, error) => auditRefusal(app, request, error));
 */
export async function auditRefusal(app: App, request: FastifyRequest, error: unknown): Promise<void> {
  const auth = request.auth ?? null;
  if (auth === null || !isBulwarkError(error) || RECORDED_AT_SOURCE.has(error.code)) return;
  if (error.kind !== "forbidden" && !(error.kind === "conflict" && REFUSING_CONFLICTS.has(error.code))) return;
  const route = routeOf(request);
  const sample = app.accounts.callerRefusals.take(`api-refused:${auth.userId}:${error.code}:${route}`, app.clock.now());
  if (!sample.record) return;
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries((request.params ?? {}) as Record<string, unknown>)) {
    if (typeof value === "string" && PLAIN_PARAM.test(value)) params[name] = value;
  }
  await recordSampled(request, {
    type: "api.refused", actor: auth.userId, subject: params["id"] ?? params["name"] ?? "", requestId: request.id,
    data: { route, code: error.code, status: error.kind === "forbidden" ? 403 : 409, params, ...callerContext(request, auth), ...unrecordedCounts(sample) },
  }, app);
}

/** Epoch milliseconds as an ISO 8601 string (null stays null): the API's one time format on output. */
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** Reads a time given as ISO 8601 text or epoch milliseconds; 400 naming the field otherwise (and the value, for a day that does not exist). */
export function parseTime(value: string | number, field: string): number {
  if (typeof value === "string") {
    const why = impossibleDate(value.trim());
    // The field and the reason, not the value: a link's query (`?since=2026-02-30 Account locked. Call …`) would have
    // the genuine origin say the rest of it (content spoofing, test/fixes-twentytwo-red-team.test.ts).
    if (why !== null) throw new APIError("BULWARK_ERR_API_TIME", "input", `${field} is not a date: ${why}`);
  }
  // Only ISO 8601 (a date, or a date and time with an offset) or epoch milliseconds: Date.parse alone would read
  // "-1" or "1 2" as days in 2001.
  const iso = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/;
  const ms = typeof value === "number" ? value : /^\d{1,15}$/.test(value) ? Number(value) : iso.test(value.trim()) ? Date.parse(value.trim()) : Number.NaN;
  // Past MAX_DATE_MS no Date can hold the time: a token stored with such an expiry would fail every view of it.
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_DATE_MS) throw apiErrors.badTime(field);
  return ms;
}

/** The latest time a JavaScript Date represents: 8.64e15 ms after the epoch (ECMA-262, "Time Values and Time Range"). */
export const MAX_DATE_MS = 8.64e15;

/**
 * The pattern every free-text field of the API carries: no control characters (\p{Cc}: NUL, tab, newline,
 * escape, DEL, C1…), no unpaired surrogate (\p{Cs}) and no bidirectional embedding, override or isolate
 * (U+202A–U+202E, U+2066–U+2069). Control characters have no place in names, addresses, descriptions or search
 * text; they corrupt logs and screens, and PostgreSQL refuses a NUL in text outright (a 500 instead of a 400).
 * An unpaired surrogate is stored as U+FFFD by both databases, so what was kept differs from what the answer
 * echoed. A right-to-left override makes a name or a lock reason read differently from what it holds on an
 * administrator's screen. Ajv compiles patterns with the `u` flag, so these are Unicode properties of code
 * points: a well-formed pair (an emoji) is one code point and passes, as do accents, CJK and the direction marks
 * U+200E/U+200F that right-to-left text uses.
 */
export const NO_CONTROL = `^[^${CONTROL_CLASS}]*$`;

/**
 * JSON schema of a text field: a string of minLength to maxLength characters without control characters.
 * Every string field of a body or query string is built with it (or has a stricter pattern of its own, like
 * ID): registerApiRoutes refuses to boot with a string field whose pattern admits a control character.
 */
export function text(minLength: number, maxLength: number): { type: "string"; minLength: number; maxLength: number; pattern: string } {
  return { type: "string", minLength, maxLength, pattern: NO_CONTROL };
}

/**
 * JSON schema of a field that also takes an explicit JSON null. `const`, not `{type: "null"}`: Fastify's Ajv
 * coerces types, and a `null` type would turn "" (and only "") into null, so a blank field silently meant
 * "none" (a token that never expires). The null branch comes first so null itself is never coerced ("" by a
 * string branch). A blank string is refused before validation with a message naming the field (strict-fields.ts).
 */
export function nullable<T extends object>(schema: T): { anyOf: [{ const: null }, T] } {
  return { anyOf: [{ const: null }, schema] };
}

/** JSON schema of a time field: ISO text or epoch milliseconds. */
export const TIME = { anyOf: [text(1, 40), { type: "integer", minimum: 0 }] } as const;

/** JSON schema of an id path parameter: random ids are short and plain (prefix_base32). */
export const ID = { type: "string", minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_-]+$" } as const;

/** Pagination query: a page size bounded so no caller can ask for the whole table, and an opaque cursor. */
export const PAGE_QUERY = {
  limit: { type: "integer", minimum: 1, maximum: 200, default: 50 },
  cursor: text(1, 512),
} as const;

// Bodies are small JSON documents; the contain route's id list is the only large one and sets its own limit.
export const SMALL_BODY = 16 * 1024;
