// Request bodies: application/x-www-form-urlencoded for plain HTML forms (login, reset), and JSON. A repeated
// field or key is refused in both: which copy wins is ambiguous (a proxy, a log or a WAF may read the first while
// JSON.parse keeps the last), and parameter pollution is how a checked value differs from a used one. Both are
// decoded as strict UTF-8: bytes that are not UTF-8 are refused, never replaced by U+FFFD (see utf8()).
import type { FastifyInstance } from "fastify";
import { InputError } from "../../lib/errors.ts";
import { scanJSONKeys } from "../../lib/json-keys.ts";

/** Fields beyond this count are refused: forms here have a handful. */
const MAX_FIELDS = 50;

// Strict: a lossy decoder turns every invalid byte into U+FFFD, so "caf\xE9" and "caf\xE8" (Latin-1 é and è) would
// both arrive as "caf\uFFFD" — two different passwords hashed and matched as one (ASVS 6.2.8, 1.5.3; the CLI
// refuses the same, docs/password-hashes.md). ignoreBOM keeps a leading U+FEFF as a character, as before (JSON's
// parser drops it itself; URLSearchParams kept it).
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** `bytes` as UTF-8 text, or null when they are not UTF-8 (an invalid, overlong, surrogate or truncated sequence). */
function utf8(bytes: Uint8Array): string | null {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return null;
  }
}

const PLUS = 0x2b;
const PERCENT = 0x25;

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/**
 * WHATWG URL's percent-decode of one name or value, after its "+" became a space: bytes, not text, so the text is
 * checked once, whole. A "%" not followed by two hex digits stays a "%", as URLSearchParams reads it.
 */
function percentDecode(part: Uint8Array): Uint8Array {
  const out = new Uint8Array(part.length);
  let n = 0;
  for (let i = 0; i < part.length; i++) {
    const byte = part[i] as number;
    const high = byte === PERCENT ? hexValue(part[i + 1]) : -1;
    const low = high === -1 ? -1 : hexValue(part[i + 2]);
    if (low !== -1) {
      out[n++] = (high << 4) | low;
      i += 2;
    } else {
      out[n++] = byte === PLUS ? 0x20 : byte;
    }
  }
  return out.subarray(0, n);
}

/**
 * Parses a form body (its raw bytes) into a plain object of strings, as the WHATWG application/x-www-form-urlencoded
 * parser does except that a name or value that is not UTF-8 once percent-decoded is refused. Throws InputError
 * (BULWARK_ERR_FORM) on such bytes, duplicates or too many fields.
 *
 * @example
 * parseFormBody(Buffer.from("identifier=ana%40example.org&password=caf%C3%A9")) // { identifier: "ana@example.org", password: "café" }
 * parseFormBody(Buffer.from("password=caf%E9")) // throws: form field "password" is not valid UTF-8
 */
export function parseFormBody(body: Uint8Array, declared?: ReadonlySet<string>): Record<string, string> {
  // A field is named in a refusal only when the route takes it (`declared`; every field when not given): a page on
  // another site posts this form before the CSRF wall runs, and a field it named as a sentence ("Your account is
  // locked. Call …") came back in the genuine origin's answer (test/new-code-twentytwo-red-team.test.ts).
  const field = (key: string): string => (declared === undefined || declared.has(key) ? `form field "${key.slice(0, 40)}"` : "a form field this route does not take");
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let count = 0;
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf(0x26, start); // "&"
    if (end === -1) end = body.length;
    const pair = body.subarray(start, end);
    start = end + 1;
    if (pair.length === 0) continue;
    if (++count > MAX_FIELDS) throw new InputError("BULWARK_ERR_FORM", `a form may have at most ${MAX_FIELDS} fields`);
    const equals = pair.indexOf(0x3d); // "="
    const key = utf8(percentDecode(equals === -1 ? pair : pair.subarray(0, equals)));
    if (key === null) throw new InputError("BULWARK_ERR_FORM", "a form field name is not valid UTF-8 once percent-decoded: send the form as UTF-8 (accept-charset=\"utf-8\")");
    const value = utf8(percentDecode(equals === -1 ? new Uint8Array(0) : pair.subarray(equals + 1)));
    // Named, never quoted: the value may be a password.
    if (value === null) throw new InputError("BULWARK_ERR_FORM", `${field(key)} is not valid UTF-8 once percent-decoded: send the form as UTF-8 (accept-charset="utf-8")`);
    if (Object.hasOwn(out, key)) throw new InputError("BULWARK_ERR_FORM", `${field(key)} is given more than once`);
    out[key] = value;
  }
  return { ...out };
}

/** The fields a route's body schema declares (a route without one declares none: no field of it is named). */
function declaredFormFields(schema: unknown): ReadonlySet<string> {
  const properties = (schema as { properties?: Record<string, unknown> } | null | undefined)?.properties;
  return new Set(properties ? Object.keys(properties) : []);
}

/** Registers the form parser on a server. */
export function registerFormParser(server: FastifyInstance): void {
  // Raw bytes: Fastify's "string" would decode them lossily before we could look.
  server.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "buffer" }, (request, body, done) => {
    try {
      done(null, parseFormBody(body as Buffer, declaredFormFields(request.routeOptions.schema?.body)));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}

/**
 * Replaces Fastify's JSON parser with the same parser (empty bodies, bad JSON, `__proto__` and `constructor` keys
 * refused as before) that also refuses a body that is not UTF-8 (RFC 8259 §8.1) and a key repeated in any object of
 * the body, naming its path.
 */
export function registerJSONParser(server: FastifyInstance): void {
  const parse = server.getDefaultJsonParser("error", "error");
  server.removeContentTypeParser("application/json");
  server.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, raw, done) => {
    const body = utf8(raw as Buffer);
    if (body === null) return done(new InputError("BULWARK_ERR_JSON", "the JSON body is not valid UTF-8 (RFC 8259 requires it): send the text as UTF-8"), undefined);
    parse(request, body, (error, value) => {
      if (error) return done(error, undefined);
      const { duplicate } = scanJSONKeys(body);
      if (duplicate) return done(new InputError("BULWARK_ERR_JSON", `the JSON body has the key ${JSON.stringify(duplicate.path.slice(0, 60))} more than once`), undefined);
      done(null, value);
    });
  });
}
