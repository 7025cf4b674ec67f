// The policy for new passwords (registration, change, reset): NIST SP 800-63B-4 §3.1.1.2 and
// ASVS 6.2 — length in code points, no composition rules, common, context and breached passwords.
import { isPasswordText } from "../passwords/index.ts";
import { loadBundledCommonPasswords, type CommonPasswordList } from "./common-list.ts";
import { contextWords, matchContextWords, type ContextSource } from "./context-words.ts";
import { PasswordPolicyConfigError, PasswordPolicyInputError } from "./errors.ts";
import { characterKeys, codePointLength, countedLength } from "./normalize.ts";
import type { BreachChecker, PolicyContext, PolicyReason, PolicyResult } from "./types.ts";

export interface PasswordPolicyOptions {
  /** Minimum length in code points. Default 15 (NIST SP 800-63B-4, single-factor); never below 8. */
  minLength?: number;
  /** Maximum length in code points. Default 128; at least 64 (ASVS 6.2.9), at most 1024. */
  maxLength?: number;
  /** The common-password list, or a loader for it. Default: the bundled list, loaded on first use. */
  commonPasswords?: CommonPasswordList | (() => Promise<CommonPasswordList>);
  /** Breached-password lookups, asked in order (range API, offline file). Default: none. */
  breachCheckers?: readonly BreachChecker[];
  /** Context words shorter than this (code points) are ignored. Default 4, between 1 and 64. */
  minContextWordLength?: number;
  /** Told each time a breach lookup was unavailable (to log it; the reason holds no secret). */
  onBreachCheckUnavailable?: (event: { checker: string; reason: string; failClosed: boolean }) => void;
}

export interface PasswordPolicy {
  readonly minLength: number;
  readonly maxLength: number;
  /** Checks a proposed new password. Expected rejections are values; only misuse throws. */
  check(password: string, context?: PolicyContext): Promise<PolicyResult>;
  /** Loads the common-password list now (at boot) instead of on the first check. */
  preload(): Promise<void>;
}

export const DEFAULT_MIN_LENGTH = 15;
export const DEFAULT_MAX_LENGTH = 128;
// NIST SP 800-63B-4 §3.1.1.2 and ASVS 6.2.1: verifiers SHALL require at least 8 characters.
const MIN_LENGTH_FLOOR = 8;
// ASVS 6.2.9 / NIST: at least 64 characters must be accepted.
const MAX_LENGTH_FLOOR = 64;
// The hash layer refuses passwords over 4096 UTF-8 bytes (passwords/limits.ts, the long-password
// DoS); 1024 code points of at most 4 bytes each always fit, so an accepted password can be hashed.
const MAX_LENGTH_CEILING = 1024;
const NOT_TEXT_MESSAGE = "The password holds characters that are not valid text (a NUL character or a broken surrogate pair); type it again.";
const REPEATED_MESSAGE = "Do not build the password by repeating a short or common piece (\"abcabcabc\", a word twice); a repetition is guessed as fast as the piece.";

/**
 * Creates the policy for new passwords. Composition rules (digits, upper case, symbols) are
 * deliberately absent: NIST SP 800-63B-4 forbids them and ASVS 6.2.5 requires any composition
 * to be accepted. The password is checked exactly as received (ASVS 6.2.8): never trimmed,
 * truncated or case-folded; NFKC and lower case are applied only to copies used for list matching.
 *
 * @example
 * const policy = createPasswordPolicy({ minLength: 15 });
 * const result = await policy.check("correct horse battery staple", { username: "alice" });
 * if (!result.ok) for (const reason of result.reasons) console.log(reason.code, reason.message);
 */
export function createPasswordPolicy(options: PasswordPolicyOptions = {}): PasswordPolicy {
  if (options.minLength !== undefined && options.minLength < MIN_LENGTH_FLOOR) {
    throw new PasswordPolicyConfigError(
      `minLength must be at least ${MIN_LENGTH_FLOOR} (NIST SP 800-63B-4 §3.1.1.2, ASVS 6.2.1), got ${options.minLength}`,
    );
  }
  const minLength = integerOption("minLength", options.minLength ?? DEFAULT_MIN_LENGTH, MIN_LENGTH_FLOOR, MAX_LENGTH_CEILING);
  const maxLength = integerOption("maxLength", options.maxLength ?? DEFAULT_MAX_LENGTH, MAX_LENGTH_FLOOR, MAX_LENGTH_CEILING);
  if (maxLength < minLength) {
    throw new PasswordPolicyConfigError(`maxLength (${maxLength}) must not be below minLength (${minLength})`);
  }
  const minWordLength = integerOption("minContextWordLength", options.minContextWordLength ?? 4, 1, 64);
  const checkers = [...(options.breachCheckers ?? [])];
  const source = options.commonPasswords ?? loadBundledCommonPasswords;
  // Loaded on first use and kept; a failed load is retried by the next check, not cached.
  let loaded: Promise<CommonPasswordList> | undefined;
  const commonList = (): Promise<CommonPasswordList> => {
    if (typeof source !== "function") return Promise.resolve(source);
    loaded ??= source().catch((error: unknown) => {
      loaded = undefined;
      throw error;
    });
    return loaded;
  };

  async function check(password: string, context: PolicyContext = {}): Promise<PolicyResult> {
    if (typeof password !== "string") {
      throw new PasswordPolicyInputError(`password must be a string, got ${password === null ? "null" : typeof password}`);
    }
    // Cheap bound before any per-character work: a code point is at most two UTF-16 units, so a
    // string of more than 2 × maxLength units is too long whatever it holds (a megabyte body is
    // refused without being scanned, normalised or hashed).
    const length = password.length > 2 * maxLength ? Infinity : codePointLength(password);
    if (length > maxLength) {
      return reject([{ code: "too-long", message: `Use at most ${maxLength} characters.` }]);
    }
    // What the hash layer cannot store as typed (an unpaired surrogate, a NUL) is refused by its own rule.
    if (!isPasswordText(password)) {
      return reject([{ code: "not-text", message: NOT_TEXT_MESSAGE }]);
    }
    const reasons: PolicyReason[] = [];
    // Invisible characters (zero-width space, word joiner, soft hyphen, byte order mark: Unicode's
    // default-ignorable code points) are kept in the password, which is hashed exactly as received (ASVS
    // 6.2.8), but they do not count towards the minimum: "password" and seven U+200B are 8 characters
    // to a guesser, not 15 (NIST SP 800-63B-4 §3.1.1.2). Refusing them outright, as RFC 8265's
    // OpaqueString does, would refuse what keyboards send: the emoji joiner U+200D and variation selector
    // U+FE0F ("❤️" is two code points), the zero-width non-joiner of Persian and Indic spellings; ASVS 6.2.5
    // and NIST ask us to accept any characters. So they stay, and count for nothing.
    const counted = countedLength(password);
    if (counted < minLength) {
      const invisible = counted < length ? ", not counting invisible characters" : "";
      reasons.push({ code: "too-short", message: `Use at least ${minLength} characters (this one has ${counted}${invisible}).` });
    }
    const list = await commonList();
    if (list.has(password)) {
      reasons.push({ code: "common", message: "This is one of the most commonly used passwords; choose another." });
    }
    if (isWeakRepetition(characterKeys(password), list, minLength)) {
      reasons.push({ code: "repeated", message: REPEATED_MESSAGE });
    }
    const sources = matchContextWords(password, contextWords(context, minWordLength));
    if (sources.length > 0) {
      reasons.push({ code: "context-word", message: `Do not build the password from ${describeSources(sources)}.` });
    }
    // Breach lookups only for a password that passed everything else: a password we refuse anyway
    // costs no network round-trip, and not even its hash prefix leaves the process.
    if (reasons.length === 0) {
      const breach = await checkBreaches(password);
      if (breach !== undefined) reasons.push(breach);
    }
    return reasons.length === 0 ? { ok: true } : reject(reasons);
  }

  async function checkBreaches(password: string): Promise<PolicyReason | undefined> {
    for (const checker of checkers) {
      const verdict = await checker.check(password);
      if (verdict.status === "breached") {
        return {
          code: "breached",
          message: `This password has appeared in data breaches (${verdict.count} times) and is used by attackers; choose another.`,
        };
      }
      if (verdict.status === "unavailable") {
        options.onBreachCheckUnavailable?.({ checker: checker.name, reason: verdict.reason, failClosed: verdict.failClosed });
        // Fail-closed: without an answer we cannot show the password is not breached (ASVS 6.2.12).
        if (verdict.failClosed) {
          return {
            code: "breach-check-unavailable",
            message: "The password could not be checked against known breaches right now; try again in a moment.",
          };
        }
        // Fail-open: this source is skipped; the next one (for example an offline file) still runs.
      }
    }
    return undefined;
  }

  return {
    minLength,
    maxLength,
    check,
    preload: async (): Promise<void> => {
      await commonList();
    },
  } satisfies PasswordPolicy;
}

/**
 * A password that is one piece said again and again, compared character by character on their keys
 * (characterKeys: case, compatibility forms and invisible characters do not break the pattern): "1" × 16,
 * 15 spaces, "iloveyou" × 2, "password" × 3, "abcabcabc".
 * Cracking rule sets repeat every word and digit as a matter of course, and the list cannot hold every
 * repetition count ("1" × 15 is listed, "1" × 16 is not), so the piece is judged instead (NIST SP
 * 800-63B-4 §3.1.1.2 expected values; ASVS 6.2.4): the repetition is refused when the piece is shorter
 * than the minimum length, or is, or repeats, a listed password. A repetition of a piece that would
 * pass on its own (a 15-character passphrase said twice) is accepted: it is no weaker than the piece.
 */
function isWeakRepetition(chars: readonly string[], list: CommonPasswordList, minLength: number): boolean {
  if (isRepeatedPiece(chars, list, minLength)) return true;
  // Said again with a separator between the copies and none after the last ("iloveyou iloveyou",
  // "password-password"): the piece is "iloveyou " and its second copy lacks only the separator, so the
  // period does not fit twice. Judged as if that separator ended it too. At most one try per distinct
  // separator character (bounded: SEPARATOR_TRIES).
  const tried = new Set<string>();
  for (const c of chars) {
    if (tried.size >= SEPARATOR_TRIES || /[\p{L}\p{N}]/u.test(c) || tried.has(c)) continue;
    tried.add(c);
    if (isRepeatedPiece([...chars, c], list, minLength)) return true;
  }
  return false;
}

/** Distinct separator characters tried by isWeakRepetition: each try is linear in the length. */
const SEPARATOR_TRIES = 4;

function isRepeatedPiece(chars: readonly string[], list: CommonPasswordList, minLength: number): boolean {
  if (chars.length < 2) return false;
  const period = shortestPeriod(chars);
  // Not a repetition unless the piece fits at least twice (the last copy may be cut short).
  if (2 * period > chars.length) return false;
  if (period < minLength) return true;
  // A listed password X said k times: X is itself the piece said j times (X fits twice, so by Fine and
  // Wilf the shortest period divides its length). At most length / (2 × minLength) lookups, each also
  // without the separators around it ("password " said twice is "password" said twice).
  for (let j = 1; 2 * j * period <= chars.length; j++) {
    const piece = chars.slice(0, j * period).join("");
    if (list.has(piece) || list.has(piece.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, ""))) return true;
  }
  return false;
}

/**
 * The shortest p such that chars[i] = chars[i - p] for every i ≥ p (chars.length when none is shorter),
 * from the Knuth–Morris–Pratt failure function: linear in the length, whatever the input.
 */
function shortestPeriod(chars: readonly string[]): number {
  // border[i]: length of the longest proper prefix of chars[0..i] that is also a suffix of it.
  const border = new Array<number>(chars.length).fill(0);
  for (let i = 1, k = 0; i < chars.length; i++) {
    while (k > 0 && chars[i] !== chars[k]) k = border[k - 1] ?? 0;
    if (chars[i] === chars[k]) k++;
    border[i] = k;
  }
  return chars.length - (border[chars.length - 1] ?? 0);
}

function reject(reasons: PolicyReason[]): PolicyResult {
  return { ok: false, reasons };
}

const SOURCE_NAMES: Record<ContextSource, string> = {
  email: "your email address",
  username: "your username",
  "service name": "the name of this service",
  "site-specific word": "words specific to this site",
};

function describeSources(sources: readonly ContextSource[]): string {
  const names = sources.map((source) => SOURCE_NAMES[source]);
  return names.length === 1 ? (names[0] ?? "") : `${names.slice(0, -1).join(", ")} or ${names.at(-1) ?? ""}`;
}

function integerOption(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PasswordPolicyConfigError(`${name} must be an integer between ${min} and ${max}, got ${String(value)}`);
  }
  return value;
}
