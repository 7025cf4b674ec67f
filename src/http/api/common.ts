// Helpers shared by the /api/v1 route modules: the audit record of a state change, times, shared schemas.
import type { FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import type { App } from "../../app/types.ts";
import { impossibleDate } from "../../lib/calendar.ts";
import { CONTROL_CLASS } from "../../lib/visible-text.ts";
import type { AuditEvent } from "../../audit/index.ts";
import type { Schema } from "../../store/schema.ts";
import { APIError, apiErrors } from "./errors.ts";
import type { Caller } from "./guard.ts";

/**
 * Appends the audit event of a state change made through the API: the acting user, the request id (so an
 * event can be matched with the server log and the client's x-request-id), and how the caller authenticated.
 * Pass `db` to write it in the change's own transaction.
 */
export async function auditAPI(
  app: App, request: FastifyRequest, caller: Caller, event: { type: string; subject?: string; data?: Record<string, unknown> }, db?: Kysely<Schema>,
): Promise<AuditEvent> {
  const input = {
    type: event.type, actor: caller.userId, subject: event.subject ?? "", requestId: request.id,
    data: { ...event.data, auth: caller.via, ...(caller.tokenId ? { tokenId: caller.tokenId } : {}) },
  };
  return db ? app.audit.appendIn(db, input) : app.audit.append(input);
}

/** Epoch milliseconds as an ISO 8601 string (null stays null): the API's one time format on output. */
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** Reads a time given as ISO 8601 text or epoch milliseconds; 400 naming the field otherwise (and the value, for a day that does not exist). */
export function parseTime(value: string | number, field: string): number {
  if (typeof value === "string") {
    const why = impossibleDate(value.trim());
    if (why !== null) throw new APIError("BULWARK_ERR_API_TIME", "input", `${field}: "${value.slice(0, 40)}" is not a date: ${why}`);
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
