// Request bodies: application/x-www-form-urlencoded for plain HTML forms (login, reset), and JSON. A repeated
// field or key is refused in both: which copy wins is ambiguous (a proxy, a log or a WAF may read the first while
// JSON.parse keeps the last), and parameter pollution is how a checked value differs from a used one.
import type { FastifyInstance } from "fastify";
import { InputError } from "../../lib/errors.ts";
import { scanJSONKeys } from "../../lib/json-keys.ts";

/** Fields beyond this count are refused: forms here have a handful. */
const MAX_FIELDS = 50;

/** Parses a form body into a plain object of strings. Throws InputError on duplicates or too many fields. */
export function parseFormBody(body: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let count = 0;
  for (const [key, value] of new URLSearchParams(body)) {
    if (++count > MAX_FIELDS) throw new InputError("BULWARK_ERR_FORM", `a form may have at most ${MAX_FIELDS} fields`);
    if (Object.hasOwn(out, key)) throw new InputError("BULWARK_ERR_FORM", `form field "${key.slice(0, 40)}" is given more than once`);
    out[key] = value;
  }
  return { ...out };
}

/** Registers the form parser on a server. */
export function registerFormParser(server: FastifyInstance): void {
  server.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => {
    try {
      done(null, parseFormBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}

/**
 * Replaces Fastify's JSON parser with the same parser (empty bodies, bad JSON, `__proto__` and `constructor` keys
 * refused as before) that also refuses a key repeated in any object of the body, naming its path.
 */
export function registerJSONParser(server: FastifyInstance): void {
  const parse = server.getDefaultJsonParser("error", "error");
  server.removeContentTypeParser("application/json");
  server.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    parse(request, body as string, (error, value) => {
      if (error) return done(error, undefined);
      const { duplicate } = scanJSONKeys(body as string);
      if (duplicate) return done(new InputError("BULWARK_ERR_JSON", `the JSON body has the key ${JSON.stringify(duplicate.path.slice(0, 60))} more than once`), undefined);
      done(null, value);
    });
  });
}
