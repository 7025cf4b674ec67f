// Red team: the poisoned legacy export. Attacked here: `users import` (Drupal 7 preset) and what the rows it writes
// do afterwards — at the login form, under `migrate-hashes`, and in the Drupal.org lever `demote-inactive-admins`.
// The attacker had write access to the legacy Drupal 7 site before the move (the breach that prompted it, seed 000)
// and planted or edited rows of its `users` table, or tampered with the export in transit; they also hold the old
// Drupal 6 MD5 hex digests of that breach. They never run Bulwark commands themselves: an operator imports their file.
// Each test is an attack that must fail on correct code ("attack: … (was: …)": a defect seen to succeed on the day it was written, fixed since; "attack: …" alone: a defence
// that holds and is worth pinning). Not repeated here (covered elsewhere): hostile cost parameters and lenient
// encodings (limits.security.test.ts, import-hash-attacks.test.ts), look-alike and case-folded identifiers
// (import.security.test.ts, import-hash-attacks.test.ts), dry run vs real run and resume (import.consistency.test.ts,
// cli-users-import.test.ts), wrapped hashes with a hand-made inner layer (migrate-hashes-red-team.test.ts).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { FloodControl } from "../src/accounts/flood/flood.ts";
import type { ImportDeps } from "../src/accounts/import/importer.ts";
import { login, type LoginDeps } from "../src/accounts/login/login.ts";
import { openMigrationJob, runMigration } from "../src/accounts/migrate-hashes/migrate-hashes.ts";
import { createPasswordContext } from "../src/accounts/passwords/index.ts";
import { createUserStore, type UserStore } from "../src/accounts/users/user-store.ts";
import { countScope, dryRunContain, registerBuiltinLevers } from "../src/contain/index.ts";
import { keyedDigest, keyedFingerprint } from "../src/crypto/tokens.ts";
import { systemRandom } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import { openContainFixture, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { importDrupal } from "./helpers/import-drupal.ts";

registerBuiltinLevers();

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 1, 9);
// Cheap argon2id for new and wrapped hashes: these tests are about what is accepted, not about argon2's cost.
const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const md5 = (text: string): string => createHash("md5").update(text, "utf8").digest("hex");

// Known-answer hashes of "password" (src/accounts/passwords/vectors/php.json, from PHP's Drupal 7 and phpass code).
const PASSWORD = "password";
const D7 = "$S$5NmmasABBCxG9XpSemMLfPLsbsGtorG5xj7BerZNxxn8CqtDSlkB";
const D7_FROM_D6 = "U$S$5rhk4cDYk2UdQ3vLFJDaA0ZgmW7ShYcE/pwgP4OcHF1fSWfqzSAW";
const PHPASS = "$P$6npetjI95qN1kIVZ9V0Ce6NS5dN6cT0";

interface Fixture extends ContainFixture {
  deps: ImportDeps;
  users: UserStore;
  loginDeps: LoginDeps;
}

async function setup(database: Database): Promise<Fixture> {
  const fx = await openContainFixture(database, { now: NOW });
  const users = createUserStore({ database, clock: fx.clock, random: systemRandom });
  const deps: ImportDeps = { database, users, passwords, audit: fx.audit, clock: fx.clock, jobs: fx.jobs, notices: null };
  // Generous flood limits: every attempt below must be refused for its password, never merely throttled.
  const flood = new FloodControl({
    database, clock: fx.clock, keyOf: (text) => keyedDigest(new Uint8Array(32).fill(0x5f), text),
    policy: { ipLimit: 10_000, accountLimit: 10_000, maxConsecutive: 10_000 },
  });
  const loginDeps: LoginDeps = {
    users, passwords, flood, audit: fx.audit, logger: { warn: () => {}, error: () => {} }, tag: (text) => keyedFingerprint(new Uint8Array(32).fill(7), text),
  };
  return { ...fx, deps, users, loginDeps };
}


const HEADER = "uid,name,pass,mail,status,created,login\n";
/** Unix seconds of a UTC date, as Drupal stores `created` and `login`. */
const unix = (ms: number): number => Math.floor(ms / 1000);

async function account(fx: Fixture, email: string): Promise<{ id: string; password_hash: string | null; last_login_at: number | null; created_at: number }> {
  const row = await fx.database.db.selectFrom("users").select(["id", "password_hash", "last_login_at", "created_at"]).where("email_key", "=", email).executeTakeFirstOrThrow();
  return { id: row.id, password_hash: row.password_hash, last_login_at: row.last_login_at === null ? null : Number(row.last_login_at), created_at: Number(row.created_at) };
}

/** The administrators `demote-inactive-admins` (no login for 90 days) would demote now, by its own dry run. */
async function inactiveAdmins(fx: Fixture): Promise<number> {
  const report = await dryRunContain(fx, { levers: ["demote-inactive-admins"], scope: { all: true }, actor: "t" });
  return Number(report.levers["demote-inactive-admins"]?.counts["users"] ?? -1);
}

forEachDialect("red team: the poisoned legacy export", (dfx) => {
  it("attack: a planted `login` or `created` time in the future (year 2100) is a bad row naming the field, in the dry run and the run, so a dormant administrator stays demotable by demote-inactive-admins (Drupal.org's lesson, seed 000; ASVS 2.2.1, 2.2.3) (was: imported as is; the administrator escaped the lever for good)", async () => {
    const fx = await setup(await dfx.fresh());
    // Day one: the legacy administrator, last seen on the old site in 2013, is imported and made admin in Bulwark.
    const legacy = `${HEADER}1,admin,${D7},admin@example.org,1,${unix(Date.UTC(2010, 0, 1))},${unix(Date.UTC(2013, 11, 1))}\n`;
    assert.equal((await importDrupal(fx.deps, legacy)).created, 1);
    const admin = await account(fx, "admin@example.org");
    await fx.roles.grant(admin.id, "admin", "cli:ops");
    assert.equal(await inactiveAdmins(fx), 1, "precondition: the dormant administrator is found inactive");

    // The poisoned export: the same row with its `login` moved to 2100, and a planted account "created" in 2100.
    const FUTURE = unix(Date.UTC(2100, 0, 1));
    const poisoned = `${HEADER}1,admin,${D7},admin@example.org,1,${unix(Date.UTC(2010, 0, 1))},${FUTURE}\n` +
      `9001,helper,${D7},helper@example.org,1,${FUTURE},0\n`;
    const dry = await importDrupal(fx.deps, poisoned, { onConflict: "update", dryRun: true });
    await importDrupal(fx.deps, poisoned, { onConflict: "update", skipBad: true });

    assert.equal(await inactiveAdmins(fx), 1, "the dormant administrator escaped demote-inactive-admins: its last login was moved to 2100 by the import");
    for (const row of await fx.database.db.selectFrom("users").select(["email", "created_at", "last_login_at"]).execute()) {
      assert.ok(Number(row.created_at) <= fx.clock.now(), `${row.email}: created_at ${new Date(Number(row.created_at)).toISOString()} is after the import`);
      assert.ok(row.last_login_at === null || Number(row.last_login_at) <= fx.clock.now(), `${row.email}: last_login_at ${new Date(Number(row.last_login_at)).toISOString()} is after the import`);
    }
    // Nothing is guessed (docs/password-migration.md): a time no sign-in or sign-up can have had is a bad row, named by the dry run.
    assert.deepEqual(dry.bad.map((b) => b.line), [2, 3], JSON.stringify(dry));
    assert.match(dry.bad[0]!.reason, /last_login_at/);
    assert.match(dry.bad[1]!.reason, /created_at/);
  });

  it("attack: a re-import with --on-conflict update never rewinds the last login Bulwark recorded to the export's older one, so an administrator who signs in daily is neither demoted as inactive nor dropped from --last-login-after scopes (ASVS 2.2.3, 16.2.1) (was: the export's 2013 login overwrote yesterday's sign-in)", async () => {
    const fx = await setup(await dfx.fresh());
    const legacyLogin = Date.UTC(2013, 11, 1);
    const row = (name: string): string => `1,${name},${D7},admin@example.org,1,${unix(Date.UTC(2010, 0, 1))},${unix(legacyLogin)}\n`;
    await importDrupal(fx.deps, HEADER + row("admin"));
    const admin = await account(fx, "admin@example.org");
    await fx.roles.grant(admin.id, "admin", "cli:ops");
    // The administrator signs in to Bulwark (the login also upgrades the Drupal hash).
    fx.clock.advance(DAY);
    const signedIn = await login(fx.loginDeps, { identifier: "admin@example.org", password: PASSWORD, ip: "203.0.113.7" });
    assert.equal(signedIn.outcome, "success");
    const signInAt = fx.clock.now();
    assert.equal((await account(fx, "admin@example.org")).last_login_at, signInAt);
    assert.equal(await inactiveAdmins(fx), 0, "precondition: an administrator who signed in yesterday is active");
    assert.equal(await countScope(fx, { lastLoginAfter: signInAt - DAY }), 1, "precondition: the sign-in is in a --last-login-after scope");

    // A week later the operator re-imports the (tampered, or simply the same) export to fix a name: its `login` is the old site's.
    fx.clock.advance(7 * DAY);
    const report = await importDrupal(fx.deps, HEADER + row("Administrator"), { onConflict: "update" });
    assert.equal(report.updated, 1);

    assert.equal(await inactiveAdmins(fx), 0, "an administrator who signed in a week ago is demoted as inactive: the import rewound its last login to 2013");
    assert.equal(await countScope(fx, { lastLoginAfter: signInAt - DAY }), 1, "an incident scope `--last-login-after` (yesterday's sign-ins) misses the administrator");
    assert.equal((await account(fx, "admin@example.org")).last_login_at, signInAt, "the sign-in Bulwark recorded was replaced by the legacy site's 2013 login");
  });

  it("attack: pass-the-hash — the leaked Drupal 6 MD5 hex, the stored hash string, or its checksum typed as the password never signs in, before or after migrate-hashes, and nothing is rehashed from it (ASVS 6.2.8, 11.4.2)", async () => {
    const fx = await setup(await dfx.fresh());
    const bareSecret = "Tr0ub4dor&3";
    const csv = HEADER + [
      `2,ana,${D7_FROM_D6},ana@example.org,1,1262304000,0`,
      `3,bob,${md5(bareSecret)},bob@example.org,1,1262304000,0`,
      `4,cyd,${D7},cyd@example.org,1,1262304000,0`,
      `5,dee,${PHPASS},dee@example.org,1,1262304000,0`,
    ].join("\n") + "\n";
    assert.equal((await importDrupal(fx.deps, csv)).created, 4);
    const secrets: Record<string, string> = { "ana@example.org": PASSWORD, "bob@example.org": bareSecret, "cyd@example.org": PASSWORD, "dee@example.org": PASSWORD };

    /** What an attacker holding the old database types: every form of the hash, and the hex digest of the Drupal 6 leak. */
    const forms = (stored: string, secret: string): string[] => {
      const checksum = stored.startsWith("$bulwark-wrap$") ? stored.slice(stored.lastIndexOf("$") + 1) : stored.replace(/^U?\$[SPH]\$.{9}/, "");
      return [...new Set([md5(secret), md5(secret).toUpperCase(), stored, stored.replace(/^U/, ""), checksum])];
    };
    const imported = new Map<string, string>();
    for (const email of Object.keys(secrets)) imported.set(email, (await account(fx, email)).password_hash!);
    const attempt = async (phase: string): Promise<void> => {
      let ip = 1;
      for (const [email, secret] of Object.entries(secrets)) {
        const before = (await account(fx, email)).password_hash!;
        // After wrapping, the legacy hash and its checksum (the wrapped form's inner result) are what leaked before.
        for (const typed of new Set([...forms(before, secret), ...forms(imported.get(email)!, secret)])) {
          const result = await login(fx.loginDeps, { identifier: email, password: typed, ip: `198.51.100.${ip++}` });
          assert.equal(result.outcome, "invalid", `${phase}: ${email} signed in with ${typed.slice(0, 12)}…`);
        }
        assert.equal((await account(fx, email)).password_hash, before, `${phase}: ${email}'s hash was rewritten by a failed attempt`);
      }
    };
    await attempt("as imported");
    // Day one: wrap every fast hash. The wrapped form's inner layer is the legacy result; it must still need the password.
    const { job } = await openMigrationJob({ ...fx.deps, passwords }, { actor: "test", batch: 10 });
    await runMigration({ ...fx.deps, passwords }, job, { actor: "test" });
    for (const email of Object.keys(secrets)) assert.match(String((await account(fx, email)).password_hash), /^\$bulwark-wrap\$v=1\$/, `${email} was wrapped`);
    await attempt("wrapped");
    // Not vacuous: each owner's real password still signs in (and is then upgraded to plain argon2id).
    for (const [email, secret] of Object.entries(secrets)) {
      assert.equal((await login(fx.loginDeps, { identifier: email, password: secret, ip: "192.0.2.1" })).outcome, "success", email);
      assert.match(String((await account(fx, email)).password_hash), /^\$argon2id\$/);
    }
  });

  it("attack: --replace-passwords with a poisoned row that drops the `U` of a U$S$ hash (so the Drupal 6 MD5 hex becomes the password) is a bad row, before and after migrate-hashes, and the leaked hex still does not sign in (ASVS 11.4.2)", async () => {
    const fx = await setup(await dfx.fresh());
    const row = (pass: string): string => `${HEADER}2,ana,${pass},ana@example.org,1,1262304000,0\n`;
    await importDrupal(fx.deps, row(D7_FROM_D6));
    const stripped = D7_FROM_D6.slice(1);
    // The stripped hash is a valid Drupal 7 hash whose "password" is md5(password): exactly the leaked value.
    assert.equal(await passwords.verify(md5(PASSWORD), stripped), true, "precondition: the stripped form is the pass-the-hash form");
    const tryIt = async (phase: string): Promise<void> => {
      const before = (await account(fx, "ana@example.org")).password_hash;
      const dry = await importDrupal(fx.deps, row(stripped), { onConflict: "update", replacePasswords: true, dryRun: true });
      assert.deepEqual(dry.bad.map((b) => b.line), [2], `${phase}: the dry run did not refuse the swap: ${JSON.stringify(dry)}`);
      assert.equal(dry.passwordsReplaced.length, 0, phase);
      await assert.rejects(importDrupal(fx.deps, row(stripped), { onConflict: "update", replacePasswords: true }), /bad row/, phase);
      assert.equal((await account(fx, "ana@example.org")).password_hash, before, `${phase}: the stored hash was replaced`);
      assert.equal((await login(fx.loginDeps, { identifier: "ana@example.org", password: md5(PASSWORD), ip: "198.51.100.9" })).outcome, "invalid", phase);
    };
    await tryIt("as imported");
    const { job } = await openMigrationJob({ ...fx.deps, passwords }, { actor: "test", batch: 10 });
    await runMigration({ ...fx.deps, passwords }, job, { actor: "test" });
    await tryIt("wrapped");
  });
});
