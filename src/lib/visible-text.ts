// What a name shown to people may hold. Control and formatting characters were refused already; these also show
// nothing, or break the line where a list prints the name: the line and paragraph separators, every Unicode
// default-ignorable code point (Hangul fillers U+115F, U+3164, U+FFA0, the combining grapheme joiner U+034F,
// …) and the braille blank U+2800, which fonts draw as empty. A name made of them, or one that ends in them,
// lets whoever holds a session add a passkey or token the owner cannot see in the list, or register "admin" and
// a filler as another "admin". Variation selectors (U+FE00–U+FE0F) stay allowed: they only choose how the
// character before them is drawn (the emoji form of ❤), and a name of nothing else has nothing visible.

/**
 * The characters free text stored from outside may not hold (a description, a lock reason): controls (\p{Cc}),
 * unpaired surrogates (\p{Cs}) and bidirectional embeddings, overrides and isolates (U+202A–U+202E,
 * U+2066–U+2069). A regular-expression class body, for the API's schema pattern (NO_CONTROL) and the stores alike.
 */
export const CONTROL_CLASS = "\\p{Cc}\\p{Cs}\\u202A-\\u202E\\u2066-\\u2069";

const HAS_CONTROL = new RegExp(`[${CONTROL_CLASS}]`, "u");

/** Whether `text` holds a character CONTROL_CLASS names. */
export function hasControl(text: string): boolean {
  return HAS_CONTROL.test(text);
}

const HIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\u2800]|(?![\uFE00-\uFE0F])\p{Default_Ignorable_Code_Point}/u;
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u;

/**
 * Whether `text` holds a character that shows nothing or breaks the line (control, formatting, separator,
 * default-ignorable, braille blank), or an unpaired surrogate, or has no visible character at all.
 *
 * @example
 * hidesSomething("YubiKey 5 ❤️") // false
 * hidesSomething("admin\u3164")   // true (a Hangul filler)
 */
export function hidesSomething(text: string): boolean {
  return HIDDEN.test(text) || !VISIBLE.test(text);
}

const HIDDEN_IN_IDENTIFIER = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\u2800]|\p{Default_Ignorable_Code_Point}/u;

/**
 * hidesSomething for identifiers (an email address, a username): stricter, since one that differs from another
 * only by an invisible character is a second account that reads as the first. Variation selectors are refused
 * here too ("alice" + U+FE0F is drawn as "alice"), and so is every default-ignorable code point.
 *
 * @example
 * identifierHidesSomething("alice\uFE0F") // true (hidesSomething allows it in a passkey name)
 */
export function identifierHidesSomething(text: string): boolean {
  return HIDDEN_IN_IDENTIFIER.test(text) || !VISIBLE.test(text);
}

/**
 * How an error message names the character `c`: its code point as U+XXXX (at least four hex digits), which shows it
 * whatever it looks like, or whether it shows at all.
 *
 * @example
 * codePointOf("\u200B") // "U+200B"
 */
export function codePointOf(c: string): string {
  return `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}
