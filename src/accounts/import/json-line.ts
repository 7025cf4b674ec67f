// One JSONL line as an import row: a JSON object, with the exact text of its top-level numbers (a
// legacy id such as 12345678901234567891 does not fit a double) and its top-level keys checked for
// repeats (JSON.parse silently keeps the last of `"email":"e@…","email":"f@…"`); nested objects are
// not imported, so their keys are not checked.
import { scanJSONKeys } from "../../lib/json-keys.ts";

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
    return { error: `is not valid JSON (${(error as Error).message.slice(0, 80)})` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { error: "is not a JSON object" };
  const { duplicate, topLevelNumbers } = scanJSONKeys(text, { nested: false });
  // Which of two values was meant cannot be known: taking either could import the wrong address.
  if (duplicate !== null) return { error: `has the key ${JSON.stringify(duplicate.path.slice(0, 40))} more than once` };
  return { object: value as Record<string, unknown>, numberText: topLevelNumbers };
}
