// Repeated keys in JSON text. JSON.parse keeps the last of `"actor":"a","actor":"b"` silently, while other
// readers (a person, grep, a parser that keeps the first) see the first: the same text then means two things.
// Input whose meaning matters (an audit export, an import row) is refused when any object repeats a key.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const MINUS = 0x2d;

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2b || c === MINUS || c === 0x2e || c === 0x45 || c === 0x65; // 0-9 + - . E e
}

export interface JSONKeyScan {
  /** The first key found twice in one object (escapes decoded: "em\u0061il" is "email"), and where: its path of keys from the top, dot-joined, `[]` for an array element. */
  duplicate: { key: string; path: string } | null;
  /** The source text of each number that is a direct value of the top-level object, by key (digits a double would round). */
  topLevelNumbers: Map<string, string>;
}

interface Frame {
  /** Keys seen so far in this object; null for an array. */
  keys: Set<string> | null;
  /** The path of this container from the top. */
  path: string;
  expectKey: boolean;
  /** The last key read in this object: the name of the value that follows it. */
  key: string;
}

/**
 * Walks text that JSON.parse has already accepted and reports the first key repeated within one object, at any
 * depth unless `nested` is false. Not a parser: the text is known to be valid JSON, so tracking strings (with their escapes) and brackets is
 * enough. Iterative, so deep nesting cannot exhaust the stack (a JSON.parse reviver recurses, and does).
 *
 * @example
 * scanJSONKeys('{"a":1,"b":{"c":2,"c":3}}').duplicate // { key: "c", path: "b.c" }
 * scanJSONKeys('{"a":1,"b":{"c":2,"c":3}}', { nested: false }).duplicate // null
 * scanJSONKeys('{"id":12345678901234567891}').topLevelNumbers.get("id") // "12345678901234567891"
 */
export function scanJSONKeys(text: string, options: { nested?: boolean } = {}): JSONKeyScan {
  // nested: false looks for repeats among the top-level object's own keys only (an import maps those alone).
  const nested = options.nested ?? true;
  const topLevelNumbers = new Map<string, string>();
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (c === QUOTE) {
      const start = i + 1;
      for (i = start; text.charCodeAt(i) !== QUOTE; i++) if (text.charCodeAt(i) === BACKSLASH) i++;
      if (top?.keys && top.expectKey) {
        const raw = text.slice(start, i);
        const key = raw.includes("\\") ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (top.keys.has(key) && (nested || stack.length === 1)) return { duplicate: { key, path: top.path === "" ? key : `${top.path}.${key}` }, topLevelNumbers };
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
    } else if (c === 0x7b || c === 0x5b) {
      // { or [: the path of the new container is the key it is the value of (or [] inside an array).
      const name = top === undefined ? "" : top.keys ? (top.path === "" ? top.key : `${top.path}.${top.key}`) : `${top.path}[]`;
      stack.push({ keys: c === 0x7b ? new Set() : null, path: name, expectKey: c === 0x7b, key: "" });
    } else if (c === 0x7d || c === 0x5d) stack.pop();
    else if (top?.keys && c === COMMA) top.expectKey = true;
    else if (stack.length === 1 && top?.keys && (c === MINUS || (c >= 0x30 && c <= 0x39))) {
      const start = i;
      while (i + 1 < text.length && isNumberChar(text.charCodeAt(i + 1))) i++;
      topLevelNumbers.set(top.key, text.slice(start, i + 1));
    }
  }
  return { duplicate: null, topLevelNumbers };
}
