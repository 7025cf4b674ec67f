// phpass portable hashes ($P$, phpBB's $H$), Drupal 7's $S$ (SHA-512 variant of the same loop,
// _password_crypt in includes/password.inc) and Drupal 7's "U$" hashes: Drupal 6 MD5 hex digests
// rehashed by user_update_7000, verified as $S$/$P$ over md5(password).
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { ITOA64, digest, phpassEncode64, type DigestName } from "./encoding.ts";
import { UnsupportedHashError } from "./errors.ts";
import { checkBound, type HashLimits } from "./limits.ts";
import { fastScheme, type PasswordScheme } from "./scheme.ts";

// Drupal 7 truncates the encoded SHA-512 output so the whole hash is 55 characters
// (DRUPAL_HASH_LENGTH); MD5 output (22 characters) is shorter than that and kept whole.
const CHECKSUM_LENGTH = { S: 43, P: 22, H: 22 } as const;
const ALGORITHM: Record<"S" | "P" | "H", DigestName> = { S: "sha512", P: "md5", H: "md5" };
const SETTINGS = /^(U?)\$([SPH])\$([./0-9A-Za-z])([./0-9A-Za-z]{8})$/;

interface PhpassSettings {
  wrapped: boolean;
  type: "S" | "P" | "H";
  log2: number;
  salt: string;
}

function parseSettings(settings: string, limits: HashLimits): PhpassSettings {
  const m = SETTINGS.exec(settings);
  if (!m) throw new UnsupportedHashError("malformed phpass/Drupal settings (expected $S$, $P$ or $H$, a count character and an 8-character salt)");
  const log2 = ITOA64.indexOf(m[3]!);
  // The count is 2^log2 digest iterations: the parameter a hostile import would inflate.
  checkBound("phpass/Drupal log2 iteration count", log2, limits.phpassMinLog2, limits.phpassMaxLog2);
  return { wrapped: m[1] === "U", type: m[2] as PhpassSettings["type"], log2, salt: m[4]! };
}

/** _password_crypt: H(salt ‖ password), then 2^log2 times H(previous ‖ password). */
async function phpassChecksum(password: string, s: PhpassSettings): Promise<string> {
  const algorithm = ALGORITHM[s.type];
  // Drupal 7's "U$" form: the Drupal 6 stored value md5(password) as lower-case hex is the secret.
  const secret = Buffer.from(s.wrapped ? digest("md5", password).toString("hex") : password, "utf8");
  let h = digest(algorithm, Buffer.from(s.salt, "latin1"), secret);
  // One reusable buffer (previous digest ‖ secret) keeps the loop allocation-free per round.
  const buffer = Buffer.alloc(h.length + secret.length);
  secret.copy(buffer, h.length);
  for (let i = 2 ** s.log2; i > 0; i--) {
    // Up to 2^20 rounds (seconds, see limits.ts): give other requests the event loop every 4096 rounds.
    if ((i & 0xfff) === 0) await yieldToEventLoop();
    h.copy(buffer, 0);
    h = digest(algorithm, buffer);
  }
  return phpassEncode64(h, h.length).slice(0, CHECKSUM_LENGTH[s.type]);
}

function phpassScheme(id: "drupal7" | "phpass" | "drupal7-wrapped-md5", limits: HashLimits): PasswordScheme {
  const shape = id === "drupal7" ? /^\$S\$/ : id === "phpass" ? /^\$[PH]\$/ : /^U\$[SPH]\$/;
  const settingsLength = id === "drupal7-wrapped-md5" ? 13 : 12;
  // Settings must be this scheme's own, not merely phpass-shaped: a wrapped hash names its inner
  // scheme apart from its settings ("phpass" with "$S$…" settings), and must be refused when parsed
  // (identify, describe, census) rather than by every later verify.
  const ownSettings = (settings: string): PhpassSettings => {
    if (!shape.test(settings)) throw new UnsupportedHashError(`settings are not ${id} settings`);
    const s = parseSettings(settings, limits);
    if (s.wrapped !== (id === "drupal7-wrapped-md5")) throw new UnsupportedHashError(`settings are not ${id} settings`);
    return s;
  };
  return fastScheme({
    id,
    identify: (hash) => shape.test(hash),
    split(hash) {
      if (!shape.test(hash)) throw new UnsupportedHashError(`not a ${id} hash`);
      const settings = hash.slice(0, settingsLength);
      const s = ownSettings(settings);
      const result = hash.slice(settingsLength);
      if (result.length !== CHECKSUM_LENGTH[s.type] || !/^[./0-9A-Za-z]+$/.test(result)) {
        throw new UnsupportedHashError(`${id} checksum must be ${CHECKSUM_LENGTH[s.type]} characters of ./0-9A-Za-z`);
      }
      return { settings, result };
    },
    derive: async (password, settings) => phpassChecksum(password, ownSettings(settings)),
    params: (settings) => `log2=${ownSettings(settings).log2}`,
    // $S$, $P$ and $H$ hash the password once per round (2^log2 rounds), so a long password
    // multiplies the cost; Drupal 7 refuses passwords over 512 bytes (DRUPAL_HASH_MAX_LENGTH).
    // The U$ form loops over md5(password) as 32 hex digits, whatever the password's length, and
    // Drupal 7 applies its bound to that digest, so it keeps the global bound.
    maxPasswordBytes: id === "drupal7-wrapped-md5" ? undefined : limits.legacyLoopMaxPasswordBytes,
  });
}

/**
 * drupal7 ($S$), phpass ($P$/$H$) and drupal7-wrapped-md5 (U$S$, U$P$, U$H$).
 *
 * @example
 * const [drupal7] = phpassSchemes(DEFAULT_HASH_LIMITS);
 * await drupal7.verify("password", "$S$D...") // true or false
 */
export function phpassSchemes(limits: HashLimits): PasswordScheme[] {
  return [phpassScheme("drupal7", limits), phpassScheme("phpass", limits), phpassScheme("drupal7-wrapped-md5", limits)];
}
