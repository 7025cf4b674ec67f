// One JSONL line as an import row: a JSON object, with the exact text of its top-level numbers (a
// legacy id such as 12345678901234567891 does not fit a double) and its top-level keys checked for
// repeats (JSON.parse silently keeps the last of `"email":"e@…","email":"f@…"`).

export type JSONLine = { object: Record<string, unknown>; numberText: ReadonlyMap<string, string> } | { error: string };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const MINUS = 0x2d;

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2b || c === MINUS || c === 0x2e || c === 0x45 || c === 0x65; // 0-9 + - . E e
}

/**
 * Walks text that JSON.parse has already accepted as an object, and returns the first top-level key
 * that appears twice (escapes decoded: "em\u0061il" is "email") and the source text of each top-level
 * number. Not a parser: the text is known to be valid JSON, so tracking strings (with their escapes)
 * and bracket depth is enough to tell a top-level key from anything nested. Iterative, so deep
 * nesting cannot exhaust the stack (a JSON.parse reviver recurses, and does).
 */
function scanTopLevel(text: string): { duplicate: string | null; numberText: Map<string, string> } {
  const keys = new Set<string>();
  const numberText = new Map<string, string>();
  let depth = 0;
  let expectKey = false;
  let key = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i + 1;
      for (i = start; text.charCodeAt(i) !== QUOTE; i++) if (text.charCodeAt(i) === BACKSLASH) i++;
      if (depth === 1 && expectKey) {
        const raw = text.slice(start, i);
        key = raw.includes("\\") ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (keys.has(key)) return { duplicate: key, numberText };
        keys.add(key);
        expectKey = false;
      }
    } else if (c === 0x7b || c === 0x5b) {
      // { or [: only the object itself opens depth 1 (the line is an object, not an array).
      if (++depth === 1) expectKey = true;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (depth === 1 && c === COMMA) expectKey = true;
    else if (depth === 1 && (c === MINUS || (c >= 0x30 && c <= 0x39))) {
      const start = i;
      while (i + 1 < text.length && isNumberChar(text.charCodeAt(i + 1))) i++;
      numberText.set(key, text.slice(start, i + 1));
    }
  }
  return { duplicate: null, numberText };
}

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
  const { duplicate, numberText } = scanTopLevel(text);
  // Which of two values was meant cannot be known: taking either could import the wrong address.
  if (duplicate !== null) return { error: `has the key ${JSON.stringify(duplicate.slice(0, 40))} more than once` };
  return { object: value as Record<string, unknown>, numberText };
}
