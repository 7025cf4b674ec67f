// Text from outside (a user agent, a log line, an audit event) printed on an operator's terminal: control
// characters — C0, DEL and C1, the last being what 8-bit terminals read as CSI/OSC escapes — are shown as \xNN
// instead of being sent, so a stored value cannot move the cursor, retitle the window or hide what follows; the
// characters a terminal draws as nothing (default-ignorable code points) are shown as \uNNNN, so two names that
// differ only by them do not read as one.

/**
 * `text` with every control character written as `\xNN`, every bidirectional control (the embeddings,
 * overrides and isolates U+202A–U+202E, U+2066–U+2069, and the marks U+200E, U+200F, U+061C), every other
 * default-ignorable code point (zero-width space and joiners, soft hyphen, word joiner, BOM, variation selectors,
 * Hangul fillers, tag characters) and every unpaired surrogate as `\uNNNN` ("invoice\u202efdp.sh" would otherwise
 * show as "invoicehs.pdf", "setup.exe\u200b" as "setup.exe"), except the surrogates that stand for the bytes of a
 * file name that is not UTF-8, shown as those bytes (`\xff`). A character past U+FFFF is written as its two
 * surrogates (`\udb40\udc41`), as in JSON.
 *
 * @example
 * escapeControls("a\u009b2Jb") // "a\\x9b2Jb"
 * escapeControls("x\u202egnp.sh") // "x\\u202egnp.sh"
 * escapeControls("set\u00adup.exe") // "set\\u00adup.exe"
 */
export function escapeControls(text: string): string {
  return text.replace(ESCAPED, (c) => {
    const code = c.charCodeAt(0);
    // A lone surrogate of U+DC80–U+DCFF is a byte of a file name that is not UTF-8 (checks/files nameFromBytes).
    if (code >= 0xdc80 && code <= 0xdcff) return `\\x${(code - 0xdc00).toString(16)}`;
    // Controls as \xNN; the rest (the soft hyphen U+00AD too) as \uNNNN.
    return code <= 0x9f ? `\\x${code.toString(16).padStart(2, "0")}` : unicodeEscape(c);
  });
}

/** `c` as `\uNNNN`, each UTF-16 unit of it (a character past U+FFFF is two). */
function unicodeEscape(c: string): string {
  let out = "";
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
}

// Controls (C0, DEL, C1), bidirectional controls, default-ignorable code points (drawn as nothing: "setup.exe" and
// "setup.exe\u200b" look the same; the bidirectional marks are among them), and surrogates that are not part of a
// pair (a terminal would show U+FFFD for them). With the u flag a surrogate pair is one character, so the two
// surrogate classes match unpaired ones only.
// eslint-disable-next-line no-control-regex
const ESCAPED = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]|\p{Default_Ignorable_Code_Point}|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/gu;

/** Characters of an excerpt (see `excerpt`): enough to recognise a token, too few to carry a secret line. */
export const EXCERPT_LENGTH = 40;

/**
 * At most `max` characters of `text`, control characters escaped, with "…" when cut: for quoting a token of
 * untrusted input in a message without echoing a whole line of it (or of a file it was pointed at).
 *
 * @example
 * excerpt("root:$y$j9T$0123456789abcdefghij$0123456789abcdefghij:19000::::::") // "root:$y$j9T$0123456789abcdefghij$0123456…"
 */
export function excerpt(text: string, max: number = EXCERPT_LENGTH): string {
  if (text.length <= max) return escapeControls(text);
  // Never cut a surrogate pair in half.
  const end = /[\ud800-\udbff]/.test(text.charAt(max - 1)) ? max - 1 : max;
  return `${escapeControls(text.slice(0, end))}…`;
}

// DEL, C1, the bidirectional controls and the other default-ignorable code points (JSON.stringify escapes C0 itself),
// and the line and paragraph separators U+2028/U+2029: a reader that splits lines the Unicode way (Python's
// str.splitlines, some SIEM shippers) would cut a JSON-lines event holding one into fragments that are not JSON,
// and drop it.
// eslint-disable-next-line no-control-regex
const INERT_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]|\p{Default_Ignorable_Code_Point}/u;
// eslint-disable-next-line no-control-regex
const INERT_IN_JSON_ALL = new RegExp(INERT_IN_JSON.source, "gu");

/**
 * JSON.stringify, with DEL, the C1 controls, the bidirectional controls, the other default-ignorable code points
 * and U+2028/U+2029 also written as \uNNNN: JSON.stringify escapes only C0, and a raw U+009B (CSI) or U+009D (OSC)
 * in a file name or log field would reach a terminal that `cat`s the output, a raw U+2028 would end the line for a
 * Unicode line reader, a raw zero-width space makes "setup.exe\u200b" read as "setup.exe". The result parses to the
 * same value.
 *
 * @example
 * inertJSON("x\u009b2J") // "\"x\\u009b2J\""
 * inertJSON("a\u2028b") // "\"a\\u2028b\""
 */
export function inertJSON(value: unknown, space?: number): string {
  const json = JSON.stringify(value, null, space) as string | undefined;
  if (json === undefined) return String(value); // undefined, a function: not JSON
  return inertJSONText(json);
}

/**
 * `json` (text JSON.stringify wrote, a log line say) with the characters inertJSON escapes written as \uNNNN. Outside
 * strings JSON has no such characters, so escaping every one keeps the document's meaning. Bidirectional controls
 * too: a right-to-left override in a stored address makes the line on screen read as another address, and so does a
 * zero-width space or a soft hyphen (default-ignorable code points, drawn as nothing).
 */
export function inertJSONText(json: string): string {
  return INERT_IN_JSON.test(json) ? json.replace(INERT_IN_JSON_ALL, unicodeEscape) : json;
}
