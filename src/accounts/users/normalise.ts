// Normalisation of the identifiers people log in with. Lookups use the normalised key; the account keeps
// the address as given. Lengths are bounded (RFC 5321 §4.5.3.1: 254 characters is the usable maximum); a new
// identifier that only looks like another (invisible or compatibility characters, mixed Latin, Cyrillic and Greek
// letters) is refused. A display name, free text shown beside them, is held to the few rules of its own at the end.
import { codePointOf, hasControl, identifierHidesSomething } from "../../lib/visible-text.ts";
import { accountErrors } from "../errors.ts";

export const MAX_EMAIL = 254;
export const MAX_USERNAME = 64;

/**
 * The lookup key of an identifier (email or username): trimmed, NFC, lower-cased, NFC again, final sigma folded.
 * Lower-casing can leave a string that is not NFC ("J̌" has no precomposed capital: it lower-cases to j + U+030C,
 * whose NFC is "ǰ"), and toLowerCase is not case folding (a final capital Σ becomes ς): without the second NFC and
 * the fold, "J̌AN" and "ǰan", or "ΟΔΟΣ" and "οδοσ", got keys of their own — a second account, and a login that
 * missed the first. Migration 21 brought the stored keys to this form.
 *
 * @example
 * identifierKey(" J\u030CAN ") === identifierKey("\u01F0an") // true
 */
export function identifierKey(identifier: string): string {
  return identifier.trim().normalize("NFC").toLowerCase().normalize("NFC").replaceAll("\u03C2", "\u03C3");
}

const LATIN = /\p{Script=Latin}/u;
const CYRILLIC = /\p{Script=Cyrillic}/u;
const GREEK = /\p{Script=Greek}/u;

/**
 * Why `part` (a username, an address's local part or one label of its domain) is refused for mixing Latin, Cyrillic
 * and Greek letters, whose look-alikes (Cyrillic а, і, ѕ, о; Greek ο, ν) read as the Latin ones: "аdmin" with a
 * Cyrillic а passes for "admin" (UTS #39 §5.2 restriction levels: one of these scripts per identifier). Null when
 * it keeps to one of them; other scripts (Han with kana, say) are not judged here. BULWARK_PUBLIC_URL's host labels are
 * held to it too (app/http-config.ts).
 */
export function mixedScriptProblem(part: string): string | null {
  const scripts = [[LATIN, "Latin"], [CYRILLIC, "Cyrillic"], [GREEK, "Greek"]] as const;
  const found = scripts.filter(([re]) => re.test(part)).map(([, name]) => name);
  if (found.length < 2) return null;
  return `mixes ${found.join(" and ")} letters in "${part.slice(0, 60)}": look-alikes across these scripts (a Cyrillic а in a Latin name) let an identifier pass for someone else's; write each part in one script`;
}

/**
 * Why `text` (NFC) is refused as a new identifier when it holds compatibility characters — full-width letters, the
 * long s, ligatures, circled or styled letters — which NFKC (the width and compatibility mapping of RFC 8265 §3.3.2)
 * folds into other, plain ones: `ｓａｍ` and `ſam` read as "sam" to a person but get lookup keys of their own, so
 * they would make a second account that passes for the first (ASVS 1.1.1). Null when there are none. The lookup key
 * stays NFC (identifierKey): existing accounts keep theirs, and only new or changed identifiers are checked.
 */
function compatibilityProblem(text: string): string | null {
  const plain = text.normalize("NFKC");
  if (plain === text) return null;
  const odd = [...new Set([...text].filter((c) => c.normalize("NFKC") !== c))].slice(0, 3);
  const shown = odd.map((c) => `"${c}" (${codePointOf(c)})`).join(", ");
  return `contains ${shown || "compatibility characters"}: a full-width, ligature or other compatibility form that reads as another character, so the identifier could pass for someone else's; write it plainly as "${plain.slice(0, 80)}"`;
}

/**
 * Why `part` (an address's local part, one label of its domain, or a username) is refused for starting with a
 * combining mark: the mark has no letter of its own to sit on, so it draws on whatever is shown before the part ("@",
 * a quote, the previous word) or as nothing at all — "\u0301\u0301@example.org" reads as "@example.org". Null otherwise.
 */
function leadingMarkProblem(part: string): string | null {
  const first = part.codePointAt(0);
  if (first === undefined || !/^\p{M}/u.test(String.fromCodePoint(first))) return null;
  return `starts "${part.slice(0, 60)}" with a combining mark (${codePointOf(String.fromCodePoint(first))}), which has no letter to sit on and draws on whatever is shown before it; start each part with a letter or digit`;
}

/** Validates an email address enough to send to it; returns it trimmed. Throws on a clearly bad one. */
export function validateEmail(email: string): string {
  const trimmed = email.trim();
  if (trimmed.length === 0) throw accountErrors.invalidEmail("is empty");
  if (trimmed.length > MAX_EMAIL) throw accountErrors.invalidEmail(`is longer than ${MAX_EMAIL} characters`);
  // One @, something on both sides, no spaces or control characters, a dot-less domain allowed (intranets).
  // Invisible and formatting characters (zero-width space, soft hyphen, right-to-left override, Hangul fillers,
  // variation selectors, the combining grapheme joiner, the braille blank) and unpaired surrogates make a second
  // account that looks like, or is stored as, another's address.
  if (identifierHidesSomething(trimmed)) {
    throw accountErrors.invalidEmail("contains invisible or formatting characters (such as a zero-width space, a right-to-left mark, a Hangul filler or a variation selector)");
  }
  if (!/^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+$/u.test(trimmed)) throw accountErrors.invalidEmail(`"${trimmed.slice(0, 60)}" is not an address (expected name@domain)`);
  const problem = compatibilityProblem(trimmed.normalize("NFC"));
  if (problem !== null) throw accountErrors.invalidEmail(problem);
  const [local = "", domain = ""] = trimmed.split("@");
  // A trailing dot names the same domain in DNS ("example.org." is "example.org"): a second key for one mailbox.
  if (domain.endsWith(".")) throw accountErrors.invalidEmail(`"${trimmed.slice(0, 60)}" ends its domain with a dot; write the address without it`);
  for (const part of [local, ...domain.split(".")]) {
    const mark = leadingMarkProblem(part.normalize("NFC"));
    if (mark !== null) throw accountErrors.invalidEmail(mark);
    const mixed = mixedScriptProblem(part.normalize("NFC"));
    if (mixed !== null) throw accountErrors.invalidEmail(mixed);
  }
  return trimmed;
}

export function validateUsername(username: string): string {
  const trimmed = username.trim().normalize("NFC");
  if (trimmed.length === 0) throw accountErrors.invalidUsername("is empty");
  if (trimmed.length > MAX_USERNAME) throw accountErrors.invalidUsername(`is longer than ${MAX_USERNAME} characters`);
  if (identifierHidesSomething(trimmed)) throw accountErrors.invalidUsername("contains control or invisible characters (such as a Hangul filler, a variation selector or a line separator), or an unpaired surrogate");
  if (trimmed.includes("@")) throw accountErrors.invalidUsername("must not contain @ (it would collide with email logins)");
  // Checked on the NFKC form too: "sam＠example.org" (a full-width @) would be shown, and read, as sam's address.
  if (trimmed.normalize("NFKC").includes("@")) throw accountErrors.invalidUsername("must not contain a character that reads as @ (such as the full-width ＠ or the small ﹫): it would pass for an email address");
  const problem = compatibilityProblem(trimmed);
  if (problem !== null) throw accountErrors.invalidUsername(problem);
  const mark = leadingMarkProblem(trimmed);
  if (mark !== null) throw accountErrors.invalidUsername(mark);
  const mixed = mixedScriptProblem(trimmed);
  if (mixed !== null) throw accountErrors.invalidUsername(mixed);
  return trimmed;
}

/** Format, default-ignorable and space characters at the start of a text, marks excepted: nothing a mark could sit on. */
const LEADING_INVISIBLE = /^(?:(?!\p{M})[\p{Cf}\p{Default_Ignorable_Code_Point}\p{White_Space}])*/u;
/** What joins the character before it: combining marks, and the other grapheme extenders (U+FF9E; a skin-tone modifier). */
const JOINS_PREVIOUS = /^[\p{M}\p{Grapheme_Extend}\p{Emoji_Modifier}]$/u;

/**
 * Why `name` is refused as a display name, or null. It is free text, so only what breaks where it is shown is refused:
 * control characters, unpaired surrogates and bidirectional overrides (the API's NO_CONTROL), and a first visible
 * character that joins the one before it: a combining mark (Unicode category M) or another grapheme extender (U+FF9E,
 * a halfwidth voiced sound mark; an emoji skin-tone modifier). Such a character has no letter of its own, so it lands
 * on whatever is shown before the name — "Welcome, ́Bob" in a notice mail, the previous cell of an administrator's
 * list — and a name of marks only shows nothing. Spaces and invisible format characters in front do not give it one:
 * a template that trims the name, as the import does, puts it back at the start. Marks after a letter ("Zoe" + U+0308,
 * a decomposed "Zoë") are the letter's own and stay.
 *
 * @example
 * displayNameProblem("\u0301Bob")    // "starts with a combining mark (U+0301) …"
 * displayNameProblem("Zoe\u0308")    // null
 */
export function displayNameProblem(name: string): string | null {
  if (hasControl(name)) return "has control or bidirectional characters, or an unpaired surrogate";
  const first = LEADING_INVISIBLE.exec(name)![0].length;
  const point = name.codePointAt(first);
  if (point === undefined) return null;
  const c = String.fromCodePoint(point);
  if (!JOINS_PREVIOUS.test(c)) return null;
  const what = /^\p{M}$/u.test(c) ? "a combining mark" : "a character that joins the one before it";
  return `starts with ${what} (${codePointOf(c)}), which has no letter of its own and would draw on whatever is shown before the name; start it with a letter, digit or other visible character`;
}

/** Throws BULWARK_ERR_DISPLAY_NAME_INVALID (400) when displayNameProblem refuses `name`; returns it unchanged. */
export function validateDisplayName(name: string): string {
  const problem = displayNameProblem(name);
  if (problem !== null) throw accountErrors.invalidDisplayName(problem);
  return name;
}
