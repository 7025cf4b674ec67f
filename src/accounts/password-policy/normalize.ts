// The one place where a password is transformed: a comparison key for matching against lists and
// context words. The key is never stored or hashed; the password itself is kept exactly as received.
import { createHash } from "node:crypto";

// Default-ignorable code points (Unicode's Default_Ignorable_Code_Point, RFC 8264's IgnorableProperties):
// zero-width space and joiners, word joiner, soft hyphen, byte order mark, variation selectors, Hangul fillers.
// They render as nothing, so "pass\u00ADword" is "password" to anyone reading or guessing it.
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;
const MARKS = /\p{M}/gu;
// Latin letters that NFKD leaves whole (a stroke or a ligature, not a combining mark), spelt as every
// ASCII wordlist spells them: "Łukasz" is "lukasz", "Søren" "soren", "Guðrún" "gudrun", "Strauß"
// "strauss". The dotless ı is the Turkish lower case of I ("YILMAZ" → "yılmaz" in Turkish).
const UNDECOMPOSED: Readonly<Record<string, string>> = {
  ı: "i", ł: "l", ø: "o", đ: "d", ð: "d", ħ: "h", ŧ: "t", æ: "ae", œ: "oe", ß: "ss", þ: "th",
};
const UNDECOMPOSED_LETTERS = /[ıłøđðħŧæœßþ]/gu;

/**
 * Comparison key for list and context-word matching: default-ignorable code points dropped (an
 * invisible U+200B or soft hyphen must not hide "password" from the list), Unicode NFKC (so
 * full-width "ｐａｓｓｗｏｒｄ" and ligatures match their plain forms, as NIST SP 800-63B-4 §3.1.1.2
 * suggests for comparisons) then locale-independent lower case (a common password in another case
 * is still weak). They are dropped before NFKC so that a mark on the far side of one still
 * composes with its letter. Only for comparisons: storage and verification use the password exactly
 * as received (ASVS 6.2.8).
 *
 * @example
 * comparisonKey("ＰａｓｓＷｏｒｄ"); // "password"
 * comparisonKey("pass\u00ADword\u200B"); // "password"
 */
export function comparisonKey(text: string): string {
  return text.replace(IGNORABLE, "").normalize("NFKC").toLowerCase();
}

/**
 * The comparison key with accents folded away, for context words only (ASVS 6.2.11): NFKD, combining
 * marks (\p{M}) dropped, and the few Latin letters NFKD keeps whole spelt in ASCII. A guesser tries
 * the holder's name as wordlists write it, so "Zoë Ångström" must catch "angstrom", and "İLKER" (whose
 * lower case is "i" + U+0307 COMBINING DOT ABOVE) "ilker". NFC at the end puts Hangul syllables,
 * which NFKD splits into letters, back together. Not for the common-password list: folding a
 * password onto an entry it merely resembles would refuse good passwords in other languages.
 *
 * @example
 * accentFoldedKey("Zoë Ångström"); // "zoe angstrom"
 * accentFoldedKey("İLKER"); // "ilker"
 */
export function accentFoldedKey(text: string): string {
  return comparisonKey(text)
    .normalize("NFKD")
    .replace(MARKS, "")
    .replace(UNDECOMPOSED_LETTERS, (letter) => UNDECOMPOSED[letter] ?? letter)
    .normalize("NFC");
}

/**
 * The comparison key of each character, for finding repetitions: invisible characters dropped, the rest
 * composed (NFC, so "e" + U+0301 is one "é"), then each code point's own NFKC and lower case. Kept per
 * character rather than taken from comparisonKey so that a piece is measured in what was typed: one
 * U+FDFA, which NFKC spells in 18 letters, is one character repeated, not an 18-letter piece.
 *
 * @example
 * characterKeys("Ａb\u200BA"); // ["a", "b", "a"]
 */
export function characterKeys(text: string): string[] {
  return Array.from(text.replace(IGNORABLE, "").normalize("NFC"), (char) => char.normalize("NFKC").toLowerCase());
}

/**
 * Length in code points of what can be seen: default-ignorable code points do not count. Seven
 * zero-width spaces after "password" make 15 code points but 8 characters anyone could type or guess
 * (NIST SP 800-63B-4 §3.1.1.2 counts characters so that length means guessing work).
 *
 * @example
 * countedLength("password\u200B\u200B"); // 8
 * countedLength("❤\uFE0F keys"); // 6
 */
export function countedLength(text: string): number {
  return codePointLength(text.replace(IGNORABLE, ""));
}

/**
 * Upper-case hex SHA-1 of the password's UTF-8 bytes, exactly as received — the form the Pwned
 * Passwords range API and its downloadable file use. SHA-1 here is a lookup key into a public
 * corpus, not password storage.
 *
 * @example
 * sha1Hex("password"); // "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
 */
export function sha1Hex(password: string): string {
  return createHash("sha1").update(password, "utf8").digest("hex").toUpperCase();
}

/**
 * Length in Unicode code points, the unit NIST SP 800-63B-4 §3.1.1.2 counts in: "🔑" is one
 * character, not two UTF-16 units. A lone surrogate counts as one.
 *
 * @example
 * codePointLength("pässwörd🔑"); // 9
 */
export function codePointLength(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low surrogate is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}
