// Bounded JSON reading for the bucket check: size and nesting limits before any evaluation, and
// small shape helpers whose errors name the file and the JSON path of what is wrong.
import { BucketInputError } from "./errors.ts";

/** Largest input file accepted. AWS caps a bucket policy at 20 KB and an ACL at 100 grants; 1 MiB is generous. */
export const MAX_INPUT_BYTES = 1024 * 1024;
/** Deepest nesting accepted. Real policies nest 5 levels; a deeper document is hostile or broken. */
export const MAX_DEPTH = 32;

export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };
export type JSONObject = { [key: string]: JSONValue };

/**
 * Parses `text` as JSON within the size and depth bounds.
 *
 * @example
 * parseBoundedJSON('{"Policy":"{}"}', "policy.json"); // { Policy: "{}" }
 */
export function parseBoundedJSON(text: string, source: string): JSONValue {
  if (text.length > MAX_INPUT_BYTES) {
    throw new BucketInputError(`${source}: input is larger than ${MAX_INPUT_BYTES} bytes`);
  }
  // Refuse deep nesting before JSON.parse builds it: a cheap bracket scan outside strings.
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash escapes the next character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > MAX_DEPTH) throw new BucketInputError(`${source}: JSON nests deeper than ${MAX_DEPTH} levels`);
    } else if (c === 125 || c === 93) depth--;
  }
  let value: JSONValue;
  try {
    value = JSON.parse(text) as JSONValue;
  } catch (cause) {
    throw new BucketInputError(`${source}: not valid JSON (${(cause as Error).message})`, { cause });
  }
  const repeated = repeatedKey(text);
  if (repeated !== null) {
    throw new BucketInputError(
      `${source}: the key ${JSON.stringify(repeated.slice(0, 60))} appears twice in one object; JSON readers disagree on which one counts ` +
        "(JSON.parse keeps the last), so the verdict could differ from AWS's: remove one",
    );
  }
  return value;
}

const isJSONSpace = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13;

/**
 * The first key that appears twice in one object of `text` (valid JSON), compared after unescaping ("Effect" and
 * "Eff\u0065ct" are one key), or null. A policy with `"Effect": "Deny", …, "Effect": "Allow"` in one statement is
 * read as Allow here and may be read otherwise elsewhere: such a document is refused rather than judged.
 */
function repeatedKey(text: string): string | null {
  // One entry per open container: the keys seen so far in an object, null for an array.
  const open: Array<Set<string> | null> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 34; i++) if (text.charCodeAt(i) === 92) i++;
      const keys = open[open.length - 1];
      if (!keys) continue;
      // In an object a string is a key when a colon follows it; a value is followed by a comma or the brace.
      let j = i + 1;
      while (isJSONSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) !== 58) continue;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (keys.has(key)) return key;
      keys.add(key);
    } else if (c === 123) open.push(new Set());
    else if (c === 91) open.push(null);
    else if (c === 125 || c === 93) open.pop();
  }
  return null;
}

/**
 * True for a JSON object (not an array, not null).
 *
 * @example
 * isObject([]); // false
 */
export function isObject(value: JSONValue | undefined): value is JSONObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Describes a JSON value's type for error messages ("an array", "a number"...).
 *
 * @example
 * describe(5); // "a number"
 */
export function describe(value: JSONValue | undefined): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/**
 * Reads a member that must be a string or a non-empty array of strings (IAM's "string or list" members).
 *
 * @example
 * stringList("s3:GetObject", "policy.json", "Statement[0].Action"); // ["s3:GetObject"]
 */
export function stringList(value: JSONValue | undefined, source: string, path: string): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string")) return value as string[];
  throw new BucketInputError(`${source}: ${path} must be a string or a non-empty list of strings, got ${describe(value)}`);
}
