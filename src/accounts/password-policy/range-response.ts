// Parser for a k-anonymity range response: lines `SUFFIX:COUNT`, the 35 hex digits of the SHA-1
// after the 5-digit prefix, a colon and a count (0 for padding entries), as Pwned Passwords sends.

export type RangeLookup = { ok: true; count: number } | { ok: false; reason: string };

// A real response has ~800-1,000 lines (with padding); far more means we are not talking to a
// range API, and scanning it would be work an impostor chooses for us.
export const MAX_RANGE_LINES = 100_000;
// And never none: each of the 16^5 prefixes holds hundreds of the corpus's suffixes (about 800 on
// average), padding or not, so an empty 200 answer is a proxy, a captive portal or a truncated
// mirror, not a range in which nothing was ever breached.

const LINE = /^([0-9A-Fa-f]{35}):(\d{1,15})$/;

/**
 * Finds the count for `suffix` (35 hex digits) in a range response, validating every line so a
 * wrong endpoint (an HTML error page, a captive portal) is recognised instead of read as "clean".
 * Padding entries carry count 0 and therefore never make a password breached. Blank lines and CRLF
 * line endings are accepted; a missing suffix counts 0. A body without a single line is not an answer
 * (fail-closed checkers must not read it as "clean").
 *
 * @example
 * findSuffixCount("1E4C9B93F3F0682250B6CF8331B7EE68FD8:3730471\r\n", "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
 * // { ok: true, count: 3730471 }
 */
export function findSuffixCount(body: string, suffix: string): RangeLookup {
  const wanted = suffix.toUpperCase();
  let count = 0;
  let lines = 0;
  let start = 0;
  while (start < body.length) {
    let end = body.indexOf("\n", start);
    if (end === -1) end = body.length;
    let line = body.slice(start, end);
    start = end + 1;
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line === "") continue;
    if (++lines > MAX_RANGE_LINES) return { ok: false, reason: `response has more than ${MAX_RANGE_LINES} lines` };
    const match = LINE.exec(line);
    if (match === null) return { ok: false, reason: `malformed response line ${lines}: expected SUFFIX:COUNT` };
    // Duplicates are summed: a padded response never repeats a real suffix, and summing is the
    // conservative reading if a server does.
    if ((match[1] ?? "").toUpperCase() === wanted) count += Number(match[2]);
  }
  if (lines === 0) return { ok: false, reason: "response is empty: a range always has lines" };
  return { ok: true, count };
}
