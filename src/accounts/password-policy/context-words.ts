// Context-specific words (ASVS 6.2.11, NIST SP 800-63B-4 §3.1.1.2): a password that contains the
// user's email, username or the service's name is among the first guesses of a targeted attack.
import { accentFoldedKey, codePointLength, comparisonKey } from "./normalize.ts";
import type { PolicyContext } from "./types.ts";

/** Which part of the context a word came from; named in the rejection message. */
export type ContextSource = "email" | "username" | "service name" | "site-specific word";

export interface ContextWord {
  source: ContextSource;
  /** Comparison key of the word (comparisonKey: invisible characters dropped, NFKC, lower case). */
  key: string;
  /**
   * The key with accents folded away ("ångström" → "angstrom"; the key itself when it has none), absent
   * when folding leaves it shorter than the minimum word length: a Devanagari name without its vowel
   * signs may be two letters, which would turn up in unrelated passwords.
   */
  folded?: string;
}

// Longer than any real email (RFC 5321 caps a path at 256) or name: such a value is not worth
// normalising and splitting on every check, and a password of at most 1024 code points is unlikely
// to contain it anyway. Skipped whole.
const MAX_VALUE_UNITS = 1024;

// Separators inside emails, usernames and names: "john.smith+news", "acme_corp", "Acme Corp". Combining marks
// (\p{M}) belong to their letters: Devanagari or Thai names are not cut apart at every vowel sign.
const SEPARATORS = /[^\p{L}\p{M}\p{N}]+/u;
const ALL_SEPARATORS = /[^\p{L}\p{M}\p{N}]+/gu;
// A word matched with its separators dropped must still be this long: "j.s." would become "js".
const MIN_BARE_WORD = 4;

/**
 * The rule: the password is refused when, compared case-insensitively after NFKC, and again with accents
 * folded away on both sides ("angstrom" for "Ångström", "ilker" for "İLKER": accentFoldedKey), it contains
 * - the whole email address, its local part (before the last "@"), or a piece of the local part
 *   between separators ("john.smith@x" → "john", "smith"),
 * - the username, or a piece of it between separators,
 * - the service name, or a word of it,
 * - any of `extraWords`, or a piece of one between separators (a display name "William Gibson" → "william",
 *   "gibson": a surname alone is as much a first guess as the whole name).
 * Words shorter than `minWordLength` code points are ignored: a two-letter piece such as "jo"
 * occurs in many unrelated passwords and gives a guesser no real head start. The email's domain is
 * not used on its own ("gmail" says nothing about this user). Values over 1024 UTF-16 units are
 * skipped (see MAX_VALUE_UNITS).
 *
 * @example
 * contextWords({ email: "john.smith@example.com" }, 4).map((w) => w.key);
 * // ["john.smith@example.com", "john.smith", "john", "smith"]
 */
export function contextWords(context: PolicyContext, minWordLength: number): ContextWord[] {
  const words: ContextWord[] = [];
  const seen = new Set<string>();
  const add = (source: ContextSource, word: string | undefined): void => {
    if (word === undefined || word.length > MAX_VALUE_UNITS) return;
    const key = comparisonKey(word).trim();
    if (codePointLength(key) < minWordLength || seen.has(key)) return;
    seen.add(key);
    const folded = accentFoldedKey(key);
    words.push(codePointLength(folded) >= minWordLength ? { source, key, folded } : { source, key });
  };
  const addWithPieces = (source: ContextSource, text: string | undefined): void => {
    if (text === undefined || text.length > MAX_VALUE_UNITS) return;
    add(source, text);
    for (const piece of comparisonKey(text).split(SEPARATORS)) add(source, piece);
  };

  if (context.email !== undefined && context.email.length <= MAX_VALUE_UNITS) {
    add("email", context.email);
    const at = context.email.lastIndexOf("@");
    addWithPieces("email", at === -1 ? context.email : context.email.slice(0, at));
  }
  addWithPieces("username", context.username);
  addWithPieces("service name", context.serviceName);
  for (const word of context.extraWords ?? []) addWithPieces("site-specific word", word);
  return words;
}

/**
 * The sources of the context words the password contains, in first-seen order, without repeats.
 *
 * @example
 * matchContextWords("smith-battery-horse-staple", contextWords({ username: "smith" }, 4)); // ["username"]
 * matchContextWords("j.smith-battery-horse", contextWords({ username: "jsmith" }, 4)); // ["username"]
 */
export function matchContextWords(password: string, words: readonly ContextWord[]): ContextSource[] {
  const key = comparisonKey(password);
  // Accents folded on both sides: a guesser tries "angstrom" for "Ångström" first, and a password
  // "ångström…" holds the name whichever way the account spells it.
  const folded = accentFoldedKey(key);
  // Also compared with separators dropped on both sides: "j.smith-…" holds the username "jsmith", and
  // "a-l-i-c-e…" holds "alice", as surely as the plain spelling does.
  const bare = key.replace(ALL_SEPARATORS, "");
  const foldedBare = folded.replace(ALL_SEPARATORS, "");
  const sources: ContextSource[] = [];
  for (const word of words) {
    if (sources.includes(word.source)) continue;
    if (holds(key, bare, word.key) || (word.folded !== undefined && holds(folded, foldedBare, word.folded))) sources.push(word.source);
  }
  return sources;
}

/** Whether a password key (or its bare form, separators dropped) holds the word. */
function holds(key: string, bare: string, word: string): boolean {
  if (key.includes(word)) return true;
  // A word matched with its separators dropped must still be MIN_BARE_WORD long: "j.s." would be "js".
  const bareWord = word.replace(ALL_SEPARATORS, "");
  return codePointLength(bareWord) >= MIN_BARE_WORD && bare.includes(bareWord);
}
