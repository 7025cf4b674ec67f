// Decimal numbers as sshd reads them with C's strtol()/strtoll() (base 10) and OpenBSD's strtonum(): ports (misc.c
// a2port), integer options (atoi_err) and times (convtime). Linear in the text: a line may hold 16,384 digits.

/** Blanks as C's isspace() in the "C" locale (strtoll skips them), a sign, digits. */
const NUMBER = /[ \t\n\v\f\r]*([+-]?)(\d+)/y;

/** Digits past this many (leading zeros aside) are out of every range sshd checks here (INT_MAX, 65535), and of 2^53. */
const MAX_SIGNIFICANT_DIGITS = 15;

/**
 * The number strtoll(text + start, &end, 10) reads: blanks, a sign, then any number of digits (leading zeros
 * included: "000…022" is 22, however many zeros). `value` is ±Infinity for a number of more than 15 significant
 * digits, beyond any bound we check (strtoll clamps past 2^63−1 and sets ERANGE; both are refused alike); never −0.
 * Null when no digit follows (strtoll's end = start).
 *
 * @example
 * strtoll(" +0012m", 0); // { value: 12, end: 6 }
 */
export function strtoll(text: string, start: number): { value: number; end: number } | null {
  NUMBER.lastIndex = start;
  const m = NUMBER.exec(text);
  if (m === null) return null;
  const digits = (m[2] as string).replace(/^0+/, "");
  const magnitude = digits.length > MAX_SIGNIFICANT_DIGITS ? Infinity : Number(digits);
  return { value: m[1] === "-" && magnitude !== 0 ? -magnitude : magnitude, end: start + m[0].length };
}

/**
 * OpenBSD strtonum(text, min, max) (openbsd-compat/strtonum.c): the whole text is one number strtoll() reads, within
 * [min, max]; null otherwise ("invalid", "too small", "too large" alike).
 *
 * @example
 * strtonum("0000000000000000000000022", 0, 65535); // 22
 * strtonum("-0", 0, 65535); // 0
 */
export function strtonum(text: string, min: number, max: number): number | null {
  const n = strtoll(text, 0);
  if (n === null || n.end !== text.length) return null;
  return n.value >= min && n.value <= max ? n.value : null;
}

