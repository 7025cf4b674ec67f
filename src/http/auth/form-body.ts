// application/x-www-form-urlencoded bodies for plain HTML forms (login, reset). A repeated field is refused:
// which copy wins is ambiguous, and parameter pollution is how a checked value differs from a used one.
import type { FastifyInstance } from "fastify";
import { InputError } from "../../lib/errors.ts";

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
