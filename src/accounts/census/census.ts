// The password-hash census of the account base: users per scheme and parameters, users without a
// password, and the share still weak (a fast or fast-and-unsalted scheme, or a slow one below its minimum
// cost: see minimum-cost.ts), and the rows whose salt another row shares. Reads the table in pages.
import { createHash } from "node:crypto";
import type { Database } from "../../store/database.ts";
import { saltKey, type PasswordContext, type SchemeId } from "../passwords/index.ts";
import { belowMinimumCost } from "./minimum-cost.ts";

export interface CensusRow {
  scheme: SchemeId | "unsupported";
  params: string;
  /**
   * On rows whose hashes run argon2 (argon2id, argon2i, a wrapped hash's outer layer): its version, PHC `v=` (19 is
   * 1.3; 16 is 1.0, also when omitted). Not in `params` (the description `hash identify` prints), yet a 1.0 hash is
   * weak where a 1.3 one with the same m, t, p is not: rows of the two versions are two groups.
   */
  argon2Version?: 16 | 19;
  users: number;
  /**
   * A fast legacy scheme (wrap-migration lifts it), or a slow one below its minimum cost (minimum-cost.ts: argon2 —
   * plain, or a wrapped hash's outer layer — below the policy's minimum, bcrypt below cost 10, scrypt below OWASP's
   * N=2^17, r=8, p=1 or an equivalent; only the owner's next login lifts it).
   */
  weak: boolean;
}

export interface Census {
  users: number;
  withoutPassword: number;
  /**
   * Users on fast schemes (MD5, SHA, phpass, crypt…) or on slow ones below their minimum cost: crackable far
   * faster than the policy intends if the table leaks (ASVS 11.4.2).
   */
  weak: number;
  /**
   * Of those, slow hashes below their minimum cost: argon2 below the policy's (imported so, or made under an older,
   * cheaper policy), bcrypt below cost 10, scrypt below OWASP's minimum (see minimum-cost.ts). No job can rehash them
   * without the password, and migrate-hashes does not wrap them; each is rehashed at its owner's next sign-in.
   */
  belowMinimum: number;
  /**
   * Of those, the ones one precomputation cracks together: unsalted bare digests, crypt hashes with an empty salt, and
   * fast hashes whose salt (with scheme and cost) another row shares (counted in sharedSalt too).
   */
  unsalted: number;
  /**
   * Users whose hash shares its salt, scheme and cost with at least one other user's (saltKey: the computation, however
   * each hash is written): one computation per guess tests the whole group, slow scheme or not. The fast ones are also in `unsalted`; the slow ones (bcrypt,
   * argon2, scrypt) are reported here and keep the `weak` their cost gives. A wrapped hash counts by both layers: its
   * fresh outer argon2id salt keeps a shared inner salt out of this count.
   */
  sharedSalt: number;
  /** The groups of those users (two or more users each). */
  sharedSaltGroups: number;
  /** The size of the largest such group (0 when none). */
  largestSharedSaltGroup: number;
  unsupported: number;
  /** weak / users with a password (0 when none). */
  weakShare: number;
  schemes: CensusRow[];
}

const UNSALTED: ReadonlySet<string> = new Set(["md5", "sha1", "sha256", "sha512"]);
// A crypt(3) hash written with an empty salt (`$1$$…`, `$6$$…`, `$5$rounds=N$$…`): glibc writes and checks it, and it
// is as unsalted as a bare digest (one precomputation for every account): counted with them.
const EMPTY_CRYPT_SALT = /^\$[156]\$(?:rounds=\d+\$)?\$/;
// Bounds memory per read; the table is streamed in id order.
const PAGE = 1000;

/**
 * The first 8 bytes of SHA-256 of each salted row's saltKey, in a growable typed array, sorted and counted in runs at
 * the end: 8 bytes per salted row (16 while the array doubles), where a Map of counts costs some 80 bytes per distinct
 * salt (key object, entry, table slack); 10 million rows take 80 MB. Two different keys meet with odds of about
 * n²/2^65 (3·10^-6 for 10 million rows): at worst a pair reported sharing a salt it does not.
 */
class SaltDigests {
  #values = new BigUint64Array(1024);
  #size = 0;

  add(key: string): void {
    if (this.#size === this.#values.length) {
      const grown = new BigUint64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#size++] = createHash("sha256").update(key, "utf8").digest().readBigUInt64BE(0);
  }

  /** The sizes of the runs of equal digests longer than one (each a group of rows sharing a salt). */
  groups(): number[] {
    const sorted = this.#values.subarray(0, this.#size).sort();
    const sizes: number[] = [];
    for (let i = 0; i < sorted.length;) {
      let j = i + 1;
      while (j < sorted.length && sorted[j] === sorted[i]) j++;
      if (j - i > 1) sizes.push(j - i);
      i = j;
    }
    return sizes;
  }
}

/**
 * Takes the census, page by page in id order.
 *
 * @example
 * const c = await passwordCensus({ database, passwords });
 * console.log(`${(c.weakShare * 100).toFixed(1)}% on weak schemes`);
 */
export async function passwordCensus(deps: { database: Database; passwords: PasswordContext }, options: { pageSize?: number } = {}): Promise<Census> {
  const size = Math.max(1, Math.min(options.pageSize ?? PAGE, 10_000));
  const groups = new Map<string, CensusRow>();
  const census: Census = {
    users: 0, withoutPassword: 0, weak: 0, belowMinimum: 0, unsalted: 0, sharedSalt: 0, sharedSaltGroups: 0, largestSharedSaltGroup: 0,
    unsupported: 0, weakShare: 0, schemes: [],
  };
  // Fast (wrappable) and slow rows apart: a group is one computation (saltKey: one scheme family, perhaps written in
  // two formats, `$P$` and `$H$`, `{SSHA}` and sha1(password+salt)), and fast ones count as unsalted too.
  const fastSalts = new SaltDigests();
  const slowSalts = new SaltDigests();
  for (let after: string | null = null; ;) {
    let q = deps.database.db.selectFrom("users").select(["id", "password_hash"]).orderBy("id").limit(size);
    if (after !== null) q = q.where("id", ">", after);
    const rows = await q.execute();
    if (rows.length === 0) break;
    for (const r of rows) {
      census.users++;
      if (r.password_hash === null) {
        census.withoutPassword++;
        continue;
      }
      let scheme: CensusRow["scheme"];
      let params: string;
      let argon2Version: CensusRow["argon2Version"];
      let weak = false;
      let belowMinimum = false;
      let fast = false;
      try {
        ({ scheme, params } = deps.passwords.describe(r.password_hash));
        argon2Version = deps.passwords.table.find(r.password_hash).argon2Params?.(r.password_hash).version;
        belowMinimum = belowMinimumCost(deps.passwords, r.password_hash);
        fast = deps.passwords.isWrappable(r.password_hash);
        weak = belowMinimum || fast;
      } catch {
        // A stored hash the policy refuses (imported before a limit was lowered): counted, never verified.
        scheme = "unsupported";
        params = "";
        argon2Version = undefined;
        census.unsupported++;
      }
      if (weak) census.weak++;
      if (belowMinimum) census.belowMinimum++;
      if (weak && (UNSALTED.has(scheme) || EMPTY_CRYPT_SALT.test(r.password_hash))) census.unsalted++;
      // Outside the try: the hash parsed, so saltKey throws only on a scheme it has no reader for (a bug, not a row).
      const salt = scheme === "unsupported" ? null : saltKey(r.password_hash, deps.passwords.table);
      if (salt !== null) (fast ? fastSalts : slowSalts).add(salt);
      // The key holds all that `weak` depends on (scheme, parameters, argon2 version): a group's flag is each member's.
      const key = `${scheme}\u0000${params}\u0000${argon2Version ?? ""}`;
      const g = groups.get(key) ?? { scheme, params, ...(argon2Version === undefined ? {} : { argon2Version }), users: 0, weak };
      g.users++;
      groups.set(key, g);
    }
    after = rows[rows.length - 1]!.id;
  }
  const fastGroups = fastSalts.groups();
  const groupSizes = [...fastGroups, ...slowSalts.groups()];
  census.sharedSalt = groupSizes.reduce((a, b) => a + b, 0);
  census.sharedSaltGroups = groupSizes.length;
  census.largestSharedSaltGroup = groupSizes.reduce((a, b) => Math.max(a, b), 0);
  // A fast hash on a shared salt falls to one precomputation with the others, like a bare digest.
  census.unsalted += fastGroups.reduce((a, b) => a + b, 0);
  const withPassword = census.users - census.withoutPassword;
  census.weakShare = withPassword === 0 ? 0 : census.weak / withPassword;
  census.schemes = [...groups.values()].sort((a, b) => b.users - a.users || a.scheme.localeCompare(b.scheme) || a.params.localeCompare(b.params) || (b.argon2Version ?? 0) - (a.argon2Version ?? 0));
  return census;
}
