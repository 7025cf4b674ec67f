// What an `--on-conflict update` import does with the password of an account that exists. By default
// nothing: a re-import (to fix a display name) must not put back the MD5 that migrate-hashes wrapped.
// With replacePasswords it replaces a differing hash, but never with a weaker one: that would hand a
// stolen database's attacker a GPU-crackable hash again (ASVS 11.4.2). Containment state is not
// touched here or anywhere in the importer.
import { belowMinimumCost } from "../census/index.ts";
import { saltKey, settingsSaltKey, WRAP_PREFIX, type PasswordContext } from "../passwords/index.ts";
import type { ImportRow } from "./mapping.ts";

/** A password hash replaced by an update, for the report: schemes only, never a hash. */
export interface PasswordNote {
  line: number;
  /** The stored scheme; null when the account had no password. */
  from: string | null;
  to: string;
}

export type PasswordPlan =
  | { kind: "none" } // the row supplies no hash
  | { kind: "same" } // the stored hash is the file's
  | { kind: "keep" } // it differs, and replacePasswords was not given
  | { kind: "not-set" } // the account holds no password, and replacePasswords was not given: none is set, none "kept"
  | { kind: "replace"; note: PasswordNote }
  | { kind: "refuse"; reason: string };

/**
 * A hash's scheme ("unsupported" when the policy refuses it) and how well it resists offline cracking: -1
 * none (a hash the policy refuses, which can verify nothing), 0 a fast legacy digest (what migrate-hashes
 * wraps), 1 a slow hash below the current policy (bcrypt, scrypt, wrapped, weaker argon2), 2 the current policy. A slow
 * hash below its minimum cost is of tier 1 and yet replaces no fast digest (planPassword).
 */
function assess(hash: string, passwords: PasswordContext): { scheme: string; strength: number } {
  try {
    const scheme = passwords.identify(hash);
    return { scheme, strength: passwords.isWrappable(hash) ? 0 : passwords.needsRehash(hash) ? 1 : 2 };
  } catch {
    return { scheme: "unsupported", strength: -1 };
  }
}

const STRENGTH_NAMES = ["a fast digest", "a slow hash below the current policy", "the current policy"];

/**
 * The work one guess costs under a slow hash's parameters, comparable only within one scheme: 2^cost (bcrypt),
 * 2^log2 (phpass), N·r·p (scrypt), m·t (argon2, and a wrapped hash's outer argon2id), rounds. Null when the
 * parameters say nothing this can compare.
 */
function workOf(params: string): number | null {
  const p = new Map<string, number>();
  for (const part of params.split(",")) {
    const m = /^([a-z0-9]+)=(\d+)$/i.exec(part.trim());
    if (m) p.set(m[1]!.toLowerCase(), Number(m[2]));
  }
  const get = (k: string): number | undefined => p.get(k);
  if (get("cost") !== undefined) return 2 ** get("cost")!;
  if (get("log2") !== undefined) return 2 ** get("log2")!;
  if (get("ln") !== undefined) return 2 ** get("ln")! * (get("r") ?? 1) * (get("p") ?? 1);
  if (get("n") !== undefined) return get("n")! * (get("r") ?? 1) * (get("p") ?? 1);
  // argon2: the lanes (p) split the memory m between them; they add no work, so m·t is the measure (scrypt's p,
  // above, does multiply it).
  if (get("m") !== undefined && get("t") !== undefined) return get("m")! * get("t")!;
  if (get("rounds") !== undefined) return get("rounds")!;
  return null;
}

// A wrapped hash's description (wrap.ts): the inner scheme, its parameters as its own description gives them (the
// greedy group ends at the last "),m=": a salted-digest template holds parentheses), and the outer argon2id's.
const WRAPPED_PARAMS = /^inner=([a-z0-9-]+)(?:\((.*)\))?,(m=[0-9]+,t=[0-9]+,p=[0-9]+)$/;

/**
 * Between two slow hashes below the policy, whether `next` costs a guesser at least what `stored` does: only the same
 * scheme at equal or higher parameters (bcrypt 12 → bcrypt 4, or → scrypt N=2, was replaced as "no weaker").
 * Different schemes have no common measure here, so such a replacement is refused; a hash meeting the policy may
 * always replace one below it. Two wrapped hashes are compared layer by layer: a guess costs the inner legacy
 * derivation and the outer argon2id, and the outer m·t alone let a wrapped unsalted MD5 replace a wrapped 10^6-round
 * sha512-crypt.
 */
function noWeaker(next: string, stored: string, passwords: PasswordContext): string | null {
  let a;
  let b;
  let versions;
  try {
    [a, b] = [passwords.describe(next), passwords.describe(stored)];
    // argon2's version is not in its description: 1.0 (later passes overwrite memory) is weaker than 1.3 at any m, t.
    versions = [next, stored].map((h) => passwords.table.find(h).argon2Params?.(h).version);
  } catch {
    return "its parameters cannot be read";
  }
  if (a.scheme === b.scheme && versions[0] !== undefined && versions[1] !== undefined && versions[0] < versions[1]) {
    return `its argon2 version (v=${versions[0]}) is weaker than the stored hash's (v=${versions[1]})`;
  }
  if (a.scheme !== b.scheme || a.scheme !== "bulwark-wrapped") {
    const why = noWeakerDescribed(a, b);
    if (why !== null) return why;
    // The parameters a description gives carry no salt: `$1$$…` (md5-crypt, "") and `$6$$…` (sha512-crypt, rounds=5000)
    // described like their salted forms, and an empty salt puts the hash in one lookup table with every other one of
    // its scheme, as `users census` counts it (unsalted). saltKey is the census's reader, so the two cannot disagree.
    let unsalted;
    try {
      unsalted = [next, stored].map((h) => saltKey(h, passwords.table) === null);
    } catch {
      return "its salt cannot be read";
    }
    return unsalted[0] && !unsalted[1] ? UNSALTED_REPLACEMENT : null;
  }
  const [wa, wb] = [WRAPPED_PARAMS.exec(a.params), WRAPPED_PARAMS.exec(b.params)];
  if (wa === null || wb === null) return `the parameters of ${a.scheme} hashes (${a.params}; stored ${b.params}) cannot be compared`;
  // The inner hashes by the rules of unwrapped ones (same scheme at no lower parameters, a salt kept), then the outer
  // argon2id. The inner salt counts too: rows wrapped with one outer salt (made elsewhere, imported) share a
  // computation per guess exactly when their inner salts are alike, empty ones included.
  const inner = noWeakerDescribed({ scheme: wa[1]!, params: wa[2] ?? "" }, { scheme: wb[1]!, params: wb[2] ?? "" })
    ?? (innerUnsalted(next) && !innerUnsalted(stored) ? UNSALTED_REPLACEMENT : null);
  if (inner !== null) return `its inner hash: ${inner}`;
  return noWeakerDescribed({ scheme: a.scheme, params: wa[3]! }, { scheme: b.scheme, params: wb[3]! });
}

const UNSALTED_REPLACEMENT = "it has no salt and the stored hash has one (one precomputation would test it with every unsalted hash of its scheme; `users census` counts it unsalted)";

/**
 * Whether a parsed wrapped hash's inner legacy settings carry no salt, by the census's rule (settingsSaltKey). The
 * settings are what the hash keeps in clear (`$bulwark-wrap$v=1$<inner id>$<settings>$argon2id$…`, wrap.ts; no argon2id
 * field holds "$argon2id$", so the last one starts the outer layer).
 */
function innerUnsalted(wrapped: string): boolean {
  const rest = wrapped.slice(WRAP_PREFIX.length);
  const id = rest.slice(0, rest.indexOf("$"));
  return settingsSaltKey(id, rest.slice(id.length + 1, rest.lastIndexOf("$argon2id$"))) === null;
}

function noWeakerDescribed(a: { scheme: string; params: string }, b: { scheme: string; params: string }): string | null {
  if (a.scheme !== b.scheme) return `a different scheme below the current policy (${a.scheme}) cannot be shown to cost a guesser as much as the stored ${b.scheme}`;
  const [wa, wb] = [workOf(a.params), workOf(b.params)];
  // The same scheme with the same parameters (two unsalted digests, say) costs a guesser the same.
  if ((wa === null || wb === null) && a.params === b.params) return null;
  if (wa === null || wb === null) return `the parameters of ${a.scheme} hashes (${a.params}; stored ${b.params}) cannot be compared`;
  if (wa < wb) return `its parameters (${a.params}) are weaker than the stored hash's (${b.params})`;
  return null;
}

/**
 * Decides what an update does with `row`'s password hash against the `stored` one.
 *
 * @example
 * planPassword(row, "$bulwark-wrap$v=1$md5$…", { replacePasswords: true }, passwords)
 * // { kind: "refuse", reason: "the file's password hash (md5, a fast digest) is weaker than the stored one (bulwark-wrapped, …)" }
 */
export function planPassword(row: ImportRow, stored: string | null, options: { replacePasswords: boolean }, passwords: PasswordContext): PasswordPlan {
  const next = row.user.passwordHash;
  if (next === null) return { kind: "none" };
  if (next === stored) return { kind: "same" };
  // An account without a password (an invitation, one signed in through another factor) is not given the file's
  // without replacePasswords, the one switch that writes passwords on stored accounts; nor is it reported as a password
  // kept, which told the operator the account had one.
  if (!options.replacePasswords) return stored === null ? { kind: "not-set" } : { kind: "keep" };
  const incoming = assess(next, passwords);
  // No stored password is the weakest of all: anything may replace it.
  const current = stored === null ? { scheme: null, strength: -1 } : assess(stored, passwords);
  const to = row.user.passwordScheme ?? incoming.scheme;
  const from = current.scheme;
  const [was, now] = [current.strength, incoming.strength];
  // A slow hash below its minimum cost (the census's belowMinimum: scrypt N=2, bcrypt 4, argon2id m=8 t=1) outranks no
  // fast digest: migrate-hashes lifts the stored fast hash to the policy's argon2id, while no job can lift the file's
  // (only its owner's next sign-in), and a guess against it may cost a small fraction of the stored hash's (10^6
  // sha512-crypt rounds). Nor does a fast digest replace it (the tiers below). The two have no common measure: refused.
  if (was === 0 && now === 1 && belowMinimumCost(passwords, next)) {
    return {
      kind: "refuse",
      reason: `the file's password hash (${to}, a slow hash below its minimum cost, which only its owner's next sign-in lifts) may be weaker than the stored one (${from}, ${STRENGTH_NAMES[was]}, which migrate-hashes lifts to the current policy); --replace-passwords never downgrades a password hash (a hash at or above its minimum cost may replace it)`,
    };
  }
  if (now < was) {
    return {
      kind: "refuse",
      reason: `the file's password hash (${to}, ${STRENGTH_NAMES[now] ?? "unsupported"}) is weaker than the stored one (${from}, ${STRENGTH_NAMES[was]}); --replace-passwords never downgrades a password hash`,
    };
  }
  // Within one tier below the policy (fast digests, or slow hashes under it), only the same scheme at no weaker
  // parameters replaces: a salted, iterated Drupal hash must not give way to a bare MD5 of the file.
  if (now === was && now <= 1 && stored !== null) {
    const why = noWeaker(next, stored, passwords);
    if (why !== null) return { kind: "refuse", reason: `the file's password hash (${to}) may be weaker than the stored one (${from}): ${why}; --replace-passwords never downgrades a password hash (a hash meeting the current policy may replace it)` };
  }
  return { kind: "replace", note: { line: row.line, from, to } };
}
