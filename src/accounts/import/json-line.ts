// One JSONL line as an import row: a JSON object, with the exact text of its top-level numbers (a
// legacy id such as 12345678901234567891 does not fit a double) and its top-level keys checked for
// repeats (JSON.parse silently keeps the last of `"email":"e@…","email":"f@…"`) and for escaped lone
// surrogates (`"jos\udce9@…"`); nested objects are not imported, so their contents are not checked.
import { scanJSONKeys } from "../../lib/json-keys.ts";

// A surrogate code unit not paired with its other half (code units, not code points: no `u` flag).
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why a top-level key or string value is not text, naming it and the escape (null when all are text). */
function escapedSurrogate(object: Record<string, unknown>): string | null {
  for (const [key, value] of Object.entries(object)) {
    // After the UTF-8 check of the line's bytes (source.ts) only a \u escape can still yield a lone surrogate. It is
    // not a character, and the database drivers encode it as U+FFFD: "jos\udce9@…" and "jos\udce8@…" became one
    // address (the dry run counted two new accounts, the real run died on the unique index).
    const where = !key.isWellFormed() ? { text: key, what: "the key" } : typeof value === "string" && !value.isWellFormed() ? { text: value, what: "the value of" } : null;
    if (where === null) continue;
    const unit = LONE_SURROGATE.exec(where.text)![0].charCodeAt(0).toString(16);
    // JSON.stringify writes a lone surrogate as its escape, so the name is printable whatever it holds.
    return `${where.what} ${JSON.stringify(key.slice(0, 40))} holds the lone surrogate \\u${unit} (half of a UTF-16 pair), which is not a character; write the character itself, as UTF-8`;
  }
  return null;
}

/**
 * What JSON.parse said, without the line's text. V8 quotes about ten characters around an unexpected token
 * (`Unexpected token 'e', ..."ord_hash":e10adc3949"... is not valid JSON`): in an export whose hash column lost its
 * quotes that is the start of an unsalted hash, enough to look the password up, printed by the dry run, its --json
 * and the refusal on stderr (ASVS 16.2.5). Messages that give a position instead are kept: they quote nothing.
 */
function parseFailure(message: string): string {
  if (/, (\.\.\.)?"/.test(message)) return "a value that is not JSON, such as text without its quotes; the line's text is not shown, as it may hold a password hash";
  return message.slice(0, 120);
}

export type JSONLine = { object: Record<string, unknown>; numberText: ReadonlyMap<string, string> } | { error: string };

/**
 * Parses one JSONL line as an object, or says why it is not a usable row.
 *
 * @example
 * parseJSONLine('{"email":"a@example.org","uid":12345678901234567891}') // { object, numberText: Map { "uid" => "12345678901234567891" } }
 * parseJSONLine('{"email":"e@example.org","email":"f@example.org"}') // { error: 'has the key "email" more than once' }
 */
export function parseJSONLine(text: string): JSONLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { error: `is not valid JSON (${parseFailure((error as Error).message)})` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { error: "is not a JSON object" };
  const { duplicate, topLevelNumbers } = scanJSONKeys(text, { nested: false });
  // Which of two values was meant cannot be known: taking either could import the wrong address.
  if (duplicate !== null) return { error: `has the key ${JSON.stringify(duplicate.path.slice(0, 40))} more than once` };
  const surrogate = escapedSurrogate(value as Record<string, unknown>);
  if (surrogate !== null) return { error: surrogate };
  return { object: value as Record<string, unknown>, numberText: topLevelNumbers };
}
