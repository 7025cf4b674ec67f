// Red-team round "cost census": hashes that lie about their cost. The attacker wrote the legacy database (a compromised
// old system, a careless export, a partner's re-import file) and wants weak hashes to pass as strong — the census
// reports them strong, migrate-hashes leaves them, an offline cracker keeps an easy target — or a hash that costs the
// server a lot to verify accepted. They hold the file (or the stored rows) and know every spelling each parser takes.
// Tried: every bcrypt spelling ($2a$/$2b$/$2y$/$2x$, one, two and three digits, an upper-case B) at the cost boundary;
// argon2 PHC strings with parameters reordered, duplicated, with an extra key, an upper-case V, the version omitted
// or 16, argon2i; scrypt at OWASP's boundary; wrapped hashes whose outer layer is strong and inner fast, or the
// reverse; census, migrate-hashes (dry run and run), login's needsRehash and `hash identify --json` on one matrix of
// rows; the version the parser reads against the one @node-rs/argon2 runs; --replace-passwords between wrapped hashes.
// Held: the cost parsers are exact (one spelling per cost, anything else unsupported, never strong); the census,
// migrate-hashes and `hash identify` agree row by row on every cost; an omitted version is read as 0x10 and verified as
// 0x10 (what the census describes is what verify runs).
// Found (fixed since: (1) PasswordContext.belowMinimumCost judges variant, version and cost as needsRehash does, and
// the census groups by argon2 version too; (2) --replace-passwords compares two wrapped hashes layer by layer, the
// inner one by the unwrapped rules): (1) argon2i and argon2 version 0x10 at the policy's m and t are counted strong by
// the census and migrate-hashes although login treats them as below the policy (needsRehash) and both are cheaper to
// attack than argon2id 1.3 (time-memory tradeoffs on argon2i with few passes, and on 1.0's overwriting passes);
// (2) --replace-passwords lets a wrapped unsalted MD5 replace a wrapped 10^6-round sha512-crypt under the same outer
// argon2id: the inner cost is ignored when two wrapped hashes are compared.
// Not repeated here (covered elsewhere): hostile KDF parameters and refused formats before any KDF
// (limits.security.test.ts), hostile hashes as import bad rows (import-hash-attacks.test.ts), bcrypt cost 4 and scrypt
// N=16 weak (census-migrate-attacks.test.ts), hand-made wrapped hashes (migrate-hashes-red-team.test.ts).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { hash as argon2Raw } from "@node-rs/argon2";
import type { Algorithm } from "@node-rs/argon2";
import { passwordCensus } from "../src/accounts/census/index.ts";
import { planPassword } from "../src/accounts/import/password-update.ts";
import type { ImportRow } from "../src/accounts/import/mapping.ts";
import { openMigrationJob, runMigration, wrappableCensus, type MigrateDeps } from "../src/accounts/migrate-hashes/index.ts";
import { createPasswordContext, type PasswordContext } from "../src/accounts/passwords/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { migrateDepsOn } from "./helpers/migrate-deps.ts";

const root = mkdtempSync(join(tmpdir(), "bulwark-redteam-cost-census-"));
const opened: Database[] = [];
after(async () => {
  for (const db of opened) await db.close().catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

// The product's policy (OWASP's argon2id m=19456 KiB, t=2, p=1): what the census measures against. Nothing below hashes
// at this cost except one wrap in the migration run.
const policy = createPasswordContext({ random: systemRandom });
const md5 = (text: string): string => createHash("md5").update(text, "utf8").digest("hex");
const B64_16 = "c2FsdHNhbHRzYWx0c2FsdA";
const B64_32 = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY";
// bcrypt salt and checksum from hashcat's mode 3200 example (vectors/hashcat.json); only the version and cost vary.
const bcrypt = (version: string, cost: string): string => `$2${version}$${cost}$MBCzKhG1KhezLh.0LRa0Kuw12nLJtpHy6DIaU.JAnqJUDYspHC.Ou`;
// scrypt salt and checksum from passlib's vector (vectors/passlib.json); only the parameters vary.
const scrypt = (ln: number, r: number, p: number): string => `$scrypt$ln=${ln},r=${r},p=${p}$eQ9h7L3XGuOcc27tHQNAyA$k3TQlb7XrMaKBMNfo1NeBMGzuuLNrSJdAK0+S+/O7NA`;
const argon2 = (variant: string, version: string, params: string): string => `$${variant}$${version}${params}$${B64_16}$${B64_32}`;
const wrapped = (inner: string, settings: string, params: string): string => `$bulwark-wrap$v=1$${inner}$${settings}$argon2id$v=19$${params}$${B64_16}$${B64_32}`;
let counter = 0;

type Deps = MigrateDeps & { clock: ManualClock };
async function fixture(passwords: PasswordContext): Promise<Deps> {
  const database = openSQLite(join(root, `db-${++counter}.sqlite`), { create: true });
  opened.push(database);
  return migrateDepsOn(database, new ManualClock(Date.UTC(2026, 10, 20)), passwords);
}
const emailOf = (what: string): string => `${what.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")}@example.org`;

describe("cost census: the census, migrate-hashes, login and `hash identify` judge a row alike", () => {
  // One row per cost boundary and per spelling. weak: the census's verdict; below: a slow hash under its minimum (left
  // for the owner's login); wrap: a fast hash the job rewrites; null: a hash the policy refuses (unsupported, never
  // strong, never verified).
  type Verdict = { weak: boolean; below: boolean; wrap: boolean } | null;
  const WEAK_SLOW = { weak: true, below: true, wrap: false };
  const STRONG = { weak: false, below: false, wrap: false };
  const FAST = { weak: true, below: false, wrap: true };
  const MATRIX: Record<string, [string, Verdict]> = {
    "bcrypt $2a$ cost 09": [bcrypt("a", "09"), WEAK_SLOW],
    "bcrypt $2b$ cost 09": [bcrypt("b", "09"), WEAK_SLOW],
    "bcrypt $2y$ cost 09": [bcrypt("y", "09"), WEAK_SLOW],
    "bcrypt $2a$ cost 10": [bcrypt("a", "10"), STRONG],
    "bcrypt $2b$ cost 10": [bcrypt("b", "10"), STRONG],
    "bcrypt $2y$ cost 10": [bcrypt("y", "10"), STRONG],
    "bcrypt $2x$ cost 09": [bcrypt("x", "09"), null],
    "bcrypt one-digit cost 9": [bcrypt("b", "9"), null],
    "bcrypt three-digit cost 009": [bcrypt("b", "009"), null],
    "bcrypt three-digit cost 010": [bcrypt("b", "010"), null],
    "bcrypt upper-case $2B$": [bcrypt("B", "09"), null],
    "argon2id one KiB under the policy": [argon2("argon2id", "v=19$", "m=19455,t=2,p=1"), WEAK_SLOW],
    "argon2id one pass under the policy": [argon2("argon2id", "v=19$", "m=19456,t=1,p=1"), WEAK_SLOW],
    "argon2id at the policy": [argon2("argon2id", "v=19$", "m=19456,t=2,p=1"), STRONG],
    "argon2id at the policy in 16 lanes": [argon2("argon2id", "v=19$", "m=19456,t=2,p=16"), STRONG],
    "argon2id parameters reordered (t before m)": [argon2("argon2id", "v=19$", "t=2,m=8,p=1"), null],
    "argon2id m given twice (cheap one second)": [argon2("argon2id", "v=19$", "m=19456,m=8,t=2,p=1"), null],
    "argon2id with an extra key": [argon2("argon2id", "v=19$", "m=19456,t=2,p=1,x=1"), null],
    "argon2id upper-case V": [argon2("argon2id", "V=19$", "m=8,t=1,p=1"), null],
    "argon2id m with a leading zero": [argon2("argon2id", "v=19$", "m=019456,t=2,p=1"), null],
    "scrypt at OWASP's minimum": [scrypt(17, 8, 1), STRONG],
    "scrypt at passlib's default (half OWASP's work)": [scrypt(16, 8, 1), WEAK_SLOW],
    "scrypt with a leading zero": [scrypt(17, 8, 1).replace("ln=17", "ln=017"), null],
    "wrapped md5, outer at the policy": [wrapped("md5", "", "m=19456,t=2,p=1"), STRONG],
    "wrapped 10^6-round sha512-crypt, outer cheap": [wrapped("sha512-crypt", "$6$rounds=1000000$saltsalt", "m=64,t=1,p=1"), WEAK_SLOW],
    "bare md5": [md5("control"), FAST],
  };

  it("attack: cost-boundary hashes in every spelling the parsers take — each is weak for the census exactly when migrate-hashes (dry run and run) counts it below its minimum or wraps it, login would rehash it, and `hash identify --json` names the census's parameters; every other spelling is unsupported, never strong (ASVS 11.4.2)", async () => {
    const deps = await fixture(policy);
    for (const [what, [hash]] of Object.entries(MATRIX)) await deps.users.create({ email: emailOf(what), passwordHash: hash });
    const census = await passwordCensus(deps);
    const dry = await wrappableCensus(deps);
    const { job } = await openMigrationJob(deps, { actor: "redteam", batch: 7 });
    const done = await runMigration(deps, job, { actor: "redteam" });
    const stored = new Map((await deps.database.db.selectFrom("users").select(["email", "password_hash"]).execute()).map((r) => [r.email, r.password_hash]));

    const expected = Object.values(MATRIX).map(([, v]) => v);
    const count = (f: (v: NonNullable<Verdict>) => boolean): number => expected.filter((v) => v !== null && f(v)).length;
    assert.deepEqual(
      { weak: census.weak, belowMinimum: census.belowMinimum, unsupported: census.unsupported },
      { weak: count((v) => v.weak), belowMinimum: count((v) => v.below), unsupported: expected.filter((v) => v === null).length },
      `census ${JSON.stringify(census.schemes)}`,
    );
    assert.deepEqual([dry.belowMinimum, dry.total], [count((v) => v.below), count((v) => v.wrap)], "the dry run's counts differ from the census's");
    assert.deepEqual([done.status, done.counts["belowMinimum"], done.counts["wrapped"]], ["done", count((v) => v.below), count((v) => v.wrap)], "the run's counts differ from the census's");

    for (const [what, [hash, verdict]] of Object.entries(MATRIX)) {
      const cli = await bulwarkInProcess(["hash", "identify", "--json", hash], { BULWARK_LOG_LEVEL: "silent" });
      if (verdict === null) {
        assert.equal(cli.code, 2, `${what}: \`hash identify\` accepted a spelling the census counts unsupported`);
        assert.equal(stored.get(emailOf(what)), hash, `${what}: the job rewrote a refused hash`);
        continue;
      }
      assert.equal(cli.code, 0, `${what}: ${cli.stderr}`);
      const described = JSON.parse(cli.stdout) as { scheme: string; params: string };
      const row = census.schemes.find((r) => r.scheme === described.scheme && r.params === described.params);
      assert.ok(row, `${what}: \`hash identify\` says ${cli.stdout.trim()}, a group the census does not have`);
      assert.equal(row.weak, verdict.weak, `${what}: the census calls ${described.scheme} ${described.params} ${row.weak ? "weak" : "strong"}`);
      if (verdict.weak) assert.equal(policy.needsRehash(hash), true, `${what}: weak for the census, yet login would keep it`);
      const after = stored.get(emailOf(what))!;
      assert.equal(after.startsWith("$bulwark-wrap$") && after !== hash, verdict.wrap, `${what}: wrapped by the job: ${after !== hash}`);
    }
  });

  // The parser reads an omitted version as 0x10 (the PHC default) and the census describes it so; were the library to
  // default to 0x13 instead, a hash could be described as one thing and verified as another. A real argon2id 1.0 hash
  // proves which one runs: written by @node-rs/argon2 with version 0x10, it verifies with "v=16" or without a version,
  // and not once relabelled "v=19".
  it("attack: an argon2 hash whose version is omitted is verified as the version the parser reads (0x10), never as 0x13, and login rehashes it as below the policy (ASVS 11.4.2)", async () => {
    const cheap = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
    const v16 = await argon2Raw("correct horse", { memoryCost: 64, timeCost: 2, parallelism: 1, algorithm: 2 as Algorithm, version: 0, salt: new Uint8Array(16).fill(7) });
    assert.match(v16, /^\$argon2id\$v=16\$m=64,t=2,p=1\$/);
    const omitted = v16.replace("v=16$", "");
    assert.deepEqual(
      [await cheap.verify("correct horse", v16), await cheap.verify("correct horse", omitted), await cheap.verify("correct horse", v16.replace("v=16$", "v=19$"))],
      [true, true, false],
      "the version verify runs is not the one the parser reads",
    );
    assert.deepEqual([cheap.describe(omitted), cheap.needsRehash(omitted), cheap.needsRehash(v16)], [cheap.describe(v16), true, true]);
    const result = await cheap.verifyAndRehash("correct horse", omitted);
    assert.ok("newHash" in result && result.newHash.startsWith("$argon2id$v=19$"), "login did not lift the 0x10 hash to 0x13");
  });
});

describe("cost census: what the census calls strong", () => {
  // Login (needsRehash, docs/password-hashes.md) treats argon2i and argon2 version 0x10 as below the policy whatever
  // their m and t, and PasswordContext.belowMinimumCost is documented as "the threshold below which needsRehash
  // upgrades an argon2id at login". Both are cheaper to attack than argon2id 1.3 at the same m and t: argon2i with few
  // passes falls to time-memory tradeoffs (Corrigan-Gibbs–Boneh–Schechter: a single pass in a quarter to a fifth of the
  // memory; Alwen–Blocki: argon2i 1.3 needs more than 10 passes to resist), and version 0x10 overwrote memory on later
  // passes, the weakness 0x13 fixed by XOR-ing. The census counts such rows strong (0% weak), migrate-hashes does not
  // count them below the minimum, and only a sign-in — never, for a dormant account — lifts them.
  // (The census's group key, scheme and m,t,p, does not hold the version: a fix must add it, or a 1.0 row and a 1.3 row
  // share one group whose `weak` is whichever came first.)
  it("attack: argon2i and argon2 version 0x10 at the policy's m and t (imported so) — the census and migrate-hashes count them weak and below the minimum, as login's needsRehash treats them, and as argon2id 1.3 below the minimum is (ASVS 11.4.2) (was: counted strong, 0% weak)", async () => {
    const deps = await fixture(policy);
    const rows: Record<string, string> = {
      "argon2i 1.3, t=2": argon2("argon2i", "v=19$", "m=19456,t=2,p=1"),
      "argon2i 1.0, t=2": argon2("argon2i", "v=16$", "m=19456,t=2,p=1"),
      "argon2id 1.0, t=2": argon2("argon2id", "v=16$", "m=19456,t=2,p=1"),
      "argon2id, version omitted (1.0)": argon2("argon2id", "", "m=19456,t=2,p=1"),
    };
    for (const [what, hash] of Object.entries(rows)) {
      assert.equal(policy.needsRehash(hash), true, `${what}: login keeps it`);
      await deps.users.create({ email: emailOf(what), passwordHash: hash });
    }
    await deps.users.create({ email: "policy@example.org", passwordHash: argon2("argon2id", "v=19$", "m=19456,t=2,p=1") });
    const census = await passwordCensus(deps);
    const dry = await wrappableCensus(deps);
    const strong = Object.entries(rows).filter(([, hash]) => !census.schemes.find((r) => r.params === policy.describe(hash).params && r.scheme === policy.describe(hash).scheme)?.weak || false);
    assert.deepEqual(
      { weak: census.weak, belowMinimum: census.belowMinimum, migrateBelowMinimum: dry.belowMinimum },
      { weak: 4, belowMinimum: 4, migrateBelowMinimum: 4 },
      `the census reports ${(census.weakShare * 100).toFixed(1)}% weak and calls strong what login rehashes as below the policy: ${strong.map(([w]) => w).join("; ")} (census groups ${JSON.stringify(census.schemes)})`,
    );
  });
});

describe("cost census: --replace-passwords between wrapped hashes", () => {
  function rowWith(hash: string): ImportRow {
    return {
      line: 2, emailKey: "ana@example.org", usernameKey: null, emailSkeleton: "ana@example.org", usernameSkeleton: null, supplied: new Set(), clamped: false,
      user: { email: "ana@example.org", username: null, displayName: null, status: "active", passwordHash: hash, passwordScheme: policy.identify(hash), lastLoginAt: null, externalSource: null, externalId: null },
    } as unknown as ImportRow;
  }

  // A wrapped hash costs a guesser its inner legacy derivation *and* its outer argon2id. Under one outer argon2id, a
  // salted sha512-crypt at 10^6 rounds (1.4-1.8 s of CPU per guess here, docs/password-hashes.md) is far more than an
  // unsalted MD5 (one digest); the importer compares two wrapped hashes by the outer m·t alone (workOf ignores
  // "inner=…"), so the file's wrapped MD5 replaces the stored wrapped sha512-crypt as "no weaker". Within the fast tier
  // the same comparison (sha512-crypt → md5) is refused (import-hash-attacks.test.ts).
  it("attack: a re-import file's wrapped unsalted MD5 against a stored wrapped 10^6-round sha512-crypt under the same outer argon2id — refused: --replace-passwords never downgrades (ASVS 11.4.2) (was: replaced, the inner hashes were not compared)", () => {
    const outer = "m=19456,t=2,p=1";
    const storedSha = wrapped("sha512-crypt", "$6$rounds=1000000$saltsalt", outer);
    const fileMd5 = wrapped("md5", "", outer);
    assert.equal(policy.identify(storedSha), "bulwark-wrapped");
    assert.equal(policy.identify(fileMd5), "bulwark-wrapped");
    // Control: the fast tier refuses the same downgrade unwrapped.
    const bare = planPassword(rowWith(md5("x")), `$6$rounds=1000000$saltsalt$${"x".repeat(86)}`, { replacePasswords: true }, policy);
    assert.equal(bare.kind, "refuse", "control: a bare MD5 replaced a 10^6-round sha512-crypt");
    const plan = planPassword(rowWith(fileMd5), storedSha, { replacePasswords: true }, policy);
    assert.equal(plan.kind, "refuse", `the file's ${policy.describe(fileMd5).params} replaced the stored ${policy.describe(storedSha).params}: the inner 10^6 sha512-crypt rounds and salt were dropped (plan ${JSON.stringify(plan)})`);
  });
});
