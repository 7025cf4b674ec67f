// The one place where a password is transformed: a comparison key for matching against lists and
// context words. The key is never stored or hashed; the password itself is kept exactly as received.
import { createHash } from "node:crypto";

/**
 * Comparison key for list and context-word matching: Unicode NFKC (so full-width "ｐａｓｓｗｏｒｄ"
 * and ligatures match their plain forms, as NIST SP 800-63B-4 §3.1.1.2 suggests for comparisons)
 * then locale-independent lower case (a common password in another case is still weak).
 * Only for comparisons: storage and verification use the password exactly as received (ASVS 6.2.8).
 *
 * @example
 * comparisonKey("ＰａｓｓＷｏｒｄ"); // "password"
 */
export function comparisonKey(text: string): string {
  return text.normalize("NFKC").toLowerCase();
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
