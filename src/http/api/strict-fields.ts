// Refuses fields a route does not declare, before Fastify's validator silently strips them: a client that sends
// `{"email": …, "roles": ["admin"]}` to create-user learns that `roles` is not accepted here instead of
// wondering why it was ignored (mass assignment, ASVS 8.2.3). Checked for schemas with additionalProperties:
// false, and fail closed for the rest: a route that declares no body schema accepts no body (`{}` aside), a
// route that declares no querystring schema accepts no query string. Otherwise `{"dryRun": true}` sent to an
// undo, or `{"id": …}` sent to DELETE /tokens, would be ignored and the real, wider action would run.
// Also here: the refusal of a blank string in a nullable field and of a value of another JSON type in a boolean or
// number body field, and the boot-time check that every string field refuses control characters.
import type { FastifyRequest, FastifySchemaValidationError, RouteOptions } from "fastify";
import { NO_CONTROL, TIME } from "./common.ts";
import { apiErrors } from "./errors.ts";

interface ObjectSchema {
  type?: string | string[];
  properties?: Record<string, unknown>;
  additionalProperties?: boolean;
  anyOf?: unknown[];
  const?: unknown;
}

/**
 * The JSON types a field's schema admits: its `type`, and those of its `anyOf` branches (nullable(), TIME); integer is
 * "number"; "null" for a field built by nullable() (a `const: null` branch) or with a `null` type.
 */
function admittedTypes(schema: unknown, out: Set<string> = new Set()): Set<string> {
  if (!schema || typeof schema !== "object") return out;
  const s = schema as ObjectSchema;
  if (Object.hasOwn(s, "const") && s.const === null) out.add("null");
  for (const type of Array.isArray(s.type) ? s.type : s.type === undefined ? [] : [s.type]) out.add(type === "integer" ? "number" : type);
  if (Array.isArray(s.anyOf)) for (const branch of s.anyOf) admittedTypes(branch, out);
  return out;
}

/** The JSON type of a parsed body value, in the words of a schema's `type`. */
function jsonType(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "array" : typeof value;
}

/** What a boolean or number field takes, for the refusal: "true or false (a JSON boolean)", "text, a JSON number or null". */
function describeTypes(types: Set<string>): string {
  if (types.size === 1 && types.has("boolean")) return "true or false (a JSON boolean)";
  const words = [...types].map((type) => type === "string" ? "text" : type === "null" ? "null" : `a JSON ${type}`);
  return words.length > 1 ? `${words.slice(0, -1).join(", ")} or ${words.at(-1)}` : words.join("");
}

interface Findings {
  unknown: string[];
  blank: string[];
  /** Boolean, number or time fields holding a value of another JSON type: what it was (JSON), what the field takes. */
  mistyped: Array<{ field: string; value: string; expected: string; time: boolean }>;
  /**
   * Whether a field declared boolean or number (integer) must hold a value of a JSON type its schema names. Fastify's
   * validator coerces types: `"dryRun": null`, `0`, `""` or `"false"` became false, and a client that meant "no real
   * run" (None, a nil pointer) started one; `"emailChangedWithinDays": null` or `false` became 0 days (no hold on
   * reset links), `true` became 1 (`"inactiveDays": true`: one day, not 90), `"10"` and `[10]` became 10. Only for a
   * JSON body: a query string carries every value as text, and "true" or "50" is how it says true or 50.
   */
  strictTypes: boolean;
}

/** True for a time field (TIME, or nullable(TIME)): a value of the wrong type is a bad time there, as parseTime says of bad text. */
function isTime(schema: unknown): boolean {
  return schema === TIME || ((schema as ObjectSchema).anyOf?.includes(TIME) ?? false);
}

/** True when a field declared boolean or number holds a value of a JSON type its schema does not name. */
function isMistyped(value: unknown, schema: unknown): boolean {
  const types = admittedTypes(schema);
  return (types.has("boolean") || types.has("number")) && !types.has(jsonType(value));
}

// Nesting is bounded by the schemas themselves (a field not in `properties` is never descended into).
function inspect(value: unknown, schema: unknown, path: string, out: Findings): void {
  if (!schema || typeof schema !== "object" || !value || typeof value !== "object" || Array.isArray(value)) return;
  const s = schema as ObjectSchema;
  if (!s.properties) return;
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    const sub = Object.hasOwn(s.properties, key) ? s.properties[key] : undefined;
    if (sub === undefined) {
      if (s.additionalProperties === false) out.unknown.push(path + key);
    } else if (child === "" && admittedTypes(sub).has("null")) {
      out.blank.push(path + key);
    } else if (out.strictTypes && isMistyped(child, sub)) {
      out.mistyped.push({ field: path + key, value: JSON.stringify(child) ?? String(child), expected: describeTypes(admittedTypes(sub)), time: isTime(sub) });
    } else inspect(child, sub, `${path}${key}.`, out);
  }
}

/** Nothing at all: absent, null, an empty JSON object or an empty text body. */
function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === "") return true;
  return typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0;
}

/** Whether the request carries a body by its framing (RFC 9112 §6.3): a non-zero Content-Length, or any Transfer-Encoding. */
function hasBody(request: FastifyRequest): boolean {
  const length = request.headers["content-length"];
  return request.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** Refuses anything but nothing, for a part (body, query string) the route does not declare; `named` as in refuseUnknownFields. */
function refuseUndeclared(where: string, value: unknown, named: boolean): void {
  if (isEmpty(value)) return;
  if (typeof value === "object" && value !== null && !Array.isArray(value)) throw apiErrors.unknownFields(where, named ? Object.keys(value) : null);
  throw apiErrors.badBody(`this route takes no ${where}`);
}

/** The top-level fields a part's schema declares, for an answer that lists them instead of the caller's. */
function declaredFields(part: unknown): string[] {
  const properties = (part as { properties?: Record<string, unknown> } | null)?.properties;
  return properties ? Object.keys(properties).filter((name) => name !== "_csrf") : [];
}

/**
 * preValidation hook: 400 naming the undeclared fields of the body or query string, a blank nullable field, or a
 * body field declared boolean or number that holds a value of another JSON type (null, 0 or "false" for a boolean;
 * null, true, "10" or [10] for a number; null where not nullable, a boolean or [1] for a time), before the
 * validator coerces it. A time field's refusal is the one a bad time gets (BULWARK_ERR_API_TIME).
 */
export async function refuseUnknownFields(request: FastifyRequest): Promise<void> {
  const schema = request.routeOptions.schema ?? {};
  // Fastify never reads the body of a GET or HEAD, so `request.body` is empty whatever was sent: a client that put
  // its filter there ({"q": …}) was answered the whole, unfiltered list. A body is known by its framing headers.
  if ((request.method === "GET" || request.method === "HEAD") && hasBody(request)) {
    throw apiErrors.badBody(`a ${request.method} takes no body (it is never read): send filters in the query string`);
  }
  // The caller's own spelling of a field it should not have sent is named to an API token only (apiErrors.unknownFields).
  const named = request.auth?.via === "token";
  for (const [where, value, part] of [["body", request.body, schema.body], ["query string", request.query, schema.querystring]] as const) {
    if (part === undefined) {
      refuseUndeclared(where, value, named);
      continue;
    }
    const found: Findings = { unknown: [], blank: [], mistyped: [], strictTypes: where === "body" };
    inspect(value, part, "", found);
    if (found.unknown.length) throw apiErrors.unknownFields(where, named ? found.unknown : null, declaredFields(part));
    if (found.blank.length) throw apiErrors.blankField(where, found.blank[0] as string);
    const wrong = found.mistyped[0];
    if (wrong?.time) throw apiErrors.badTime(wrong.field.slice(0, 40));
    if (wrong) throw apiErrors.badBody(`${where} field ${JSON.stringify(wrong.field.slice(0, 40))} must be ${wrong.expected}, not ${wrong.value.slice(0, 20)}; leave it out for its default`);
  }
}

// Samples a text pattern must refuse: NUL, tab, newline, escape, DEL and a C1 control, alone and after a letter.
const CONTROLS = ["\u0000", "\t", "\n", "\u001b", "\u007f", "\u0085", "\ud800", "\udc00", "\u202e", "\u2066"].flatMap((c) => [c, `a${c}`, `${c}a`]);

/** The paths of the string schemas in `schema` whose pattern does not refuse control characters. */
function unsafeStrings(schema: unknown, path: string, out: string[]): void {
  if (!schema || typeof schema !== "object") return;
  if (Array.isArray(schema)) {
    schema.forEach((s, i) => unsafeStrings(s, `${path}[${i}]`, out));
    return;
  }
  const s = schema as Record<string, unknown>;
  const types = Array.isArray(s["type"]) ? s["type"] : [s["type"]];
  if (types.includes("string")) {
    const pattern = s["pattern"];
    const safe = typeof pattern === "string" && pattern.startsWith("^") && pattern.endsWith("$") &&
      CONTROLS.every((c) => !new RegExp(pattern, "u").test(c));
    if (!safe) out.push(path || "(root)");
  }
  for (const [key, child] of Object.entries(s)) {
    if (key === "properties" && child && typeof child === "object") {
      for (const [name, sub] of Object.entries(child)) unsafeStrings(sub, path ? `${path}.${name}` : name, out);
    } else if (key === "items" || key === "anyOf" || key === "oneOf" || key === "allOf" || key === "additionalProperties") {
      unsafeStrings(child, `${path}${key === "items" ? "[]" : ""}`, out);
    }
  }
}

/**
 * onRoute check, fail closed like the access declaration: every string field of a route's params, query string
 * and body refuses control characters (built with text() from common.ts, or with a stricter pattern). A route
 * that would let a NUL reach the database (500 on PostgreSQL) or a newline reach a log stops the server from booting.
 */
export function assertTextFieldsSafe(route: RouteOptions): void {
  const schema = route.schema;
  if (!schema) return;
  const found: string[] = [];
  for (const [part, value] of [["params", schema.params], ["querystring", schema.querystring], ["body", schema.body]] as const) {
    const here: string[] = [];
    unsafeStrings(value, "", here);
    found.push(...here.map((p) => `${part}.${p}`));
  }
  if (found.length) {
    throw new Error(`${String(route.method)} ${route.url}: string field(s) ${found.join(", ")} admit control characters; build them with text() from src/http/api/common.ts`);
  }
}

/** What a text field holding a character NO_CONTROL refuses is told. */
export const CONTROL_MESSAGE = "must not contain control characters (such as NUL, tab or newline), unpaired surrogates or bidirectional overrides";

/**
 * The API's schema error messages: Fastify's ("body/displayName must …"), except that a text field holding a
 * control character says so instead of printing the pattern.
 */
export function formatSchemaErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const parts = errors.map((e) => {
    const control = e.keyword === "pattern" && (e.params as { pattern?: unknown }).pattern === NO_CONTROL;
    return `${dataVar}${e.instancePath || ""} ${control ? CONTROL_MESSAGE : e.message}`;
  });
  return new Error(parts.join(", "));
}
