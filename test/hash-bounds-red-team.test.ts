// Red team, round "hash bounds": hostile hash strings. DESIGN's non-negotiable "every bound an attacker controls is
// bounded" (imported hash cost parameters) held against what an imported dump can carry. The attacker planted rows in
// the legacy user table before the move (or edited the export in transit) and holds the password of each planted row;
// they never run Bulwark commands themselves: the operator imports their file (`bulwark users import`), looks at odd
// hashes with `bulwark hash identify|verify`, and later runs the usual incident levers (expire-passwords). The planted
// accounts are theirs to sign in to, reset (they own the mailbox) and hammer from their own addresses.
// Tried: the largest cost each format's syntax allows (bcrypt 99, a phpass/Drupal count letter at the top, PBKDF2 2^32−1
// and 16/17-digit counts, scrypt ln/r/p at their widest, argon2 m/t/p at 2^32−1, sha512-crypt rounds=999999999, a wrap
// inside a wrap) and the numbers a bound and a verifier might read differently (leading zeros, signs, inner spaces,
// Arabic-Indic and fullwidth digits, exponent, hex and decimal-point forms, 2^53+1) through the import, the CLI, and the
// sign-in of an imported account at a bound the table accepts (the login verifies the stored hash).
// Held (pinned here, where nothing else pins it through these doors): every such row is a bad row naming its line and
// its format and field (or the non-ASCII characters that make it no hash at all), never quoting the hash, and a dry
// run and a real run write nothing; `hash identify` exits 2 with the same reason and `hash verify`
// refuses before it waits for a password; at the login, wrong passwords against an imported sha512-crypt account run
// the legacy loop no more often than flood control admits, and the first right one replaces it, so no later sign-in
// runs it again; a re-import (--on-conflict update --replace-passwords --skip-bad) carrying hostile hashes for stored
// accounts is bad rows, every stored hash and field kept, every owner still signing in. Also tried, not kept as tests:
// every one-character mutation of the bcrypt, scrypt and argon2 vectors in their parameter fields (74,000 strings, 12,500
// accepted by identify) verified without @node-rs or node:crypto ever throwing for a hash our parse accepted (no "bound
// checks one string, library reads another"), only the documented cost-14/15 bcrypt taking seconds.
// Not repeated (pinned elsewhere): each bound and one step past it (docs-claims-second-red-team, limits.security.test.ts,
// "before any KDF runs"), hostile hashes in a JSONL dump (import-hash-attacks), the 512-byte
// password bound of the loops (limits.security.test.ts, cli-hash.test.ts), hand-made wraps (migrate-hashes-red-team).
// Found (fixed since: the reset's "same password again" check upgrades a matched hash as the login does): POST
// /auth/password/reset/complete, for an account whose password must be changed (expire-passwords,
// require-password-change), verified the new password against the stored legacy hash to refuse "the same password
// again" — with no flood control and no rehash. Whoever holds the account's password and a reset link replayed the
// completion with the old password: every request ran the full legacy derivation (seconds of event-loop CPU for a
// sha512-crypt hash at 10^6 rounds, the table's own bound: 2.1–3.0 s measured), answered 400 "unchanged", left the link
// unspent and the legacy hash stored, and was never throttled. Fixed (password-routes.ts, isCurrentPassword): a match
// goes through verifyAndRehash and stores the argon2id upgrade with every flag kept (must-change stays), so the legacy
// loop runs once and each replay costs one default argon2id verify, as a right password at the login. The comparison
// is not counted on the account's flood counters: counting it before it runs (as the password-change form does) would
// answer 429 to an owner completing a reset to a new password whenever the account's windows are full — after five
// wrong sign-ins from their address, the usual reason to reset, or at the 100-failure stop that only a reset lifts.
// SQLite in a temp dir, loopback only; the CLI runs in this process on the fixture's store.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { PasswordScheme } from "../src/accounts/passwords/index.ts";
import { requirePasswordChange } from "../src/accounts/users/admin-changes.ts";
import { authFlows, loginFrom } from "./helpers/auth-flows.ts";
import { bulwarkInProcess, fixtureCliEnv, importCSVOnFixture } from "./helpers/cli.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const HOUR = 3_600_000;
/** Failed logins one address may make against one account in a window (flood.ts, the account+IP window). */
const ACCOUNT_IP_WINDOW = 5;
const B16 = "c2FsdHNhbHRzYWx0c2FsdA";
const B32 = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY";
const BCRYPT_TAIL = "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
const DJANGO_DIGEST = Buffer.alloc(32, 1).toString("base64");
const crypt64 = (n: number): string => "x".repeat(n);

/** Decimal digits of `n` in another script's digits (`zero`: that script's 0). */
const digitsIn = (n: number | string, zero: number): string => [...String(n)].map((d) => String.fromCodePoint(zero + Number(d))).join("");
const ARABIC_INDIC = 0x0660;
const FULLWIDTH = 0xff10;

/**
 * One numeric field of one format, spelled every way a bound check and a verifier could read apart: the hash with
 * `text` in place of the field's number, per spelling.
 */
function spellings(base: number, make: (text: string) => string): Array<[string, string]> {
  return [
    ["leading zero", make(`0${base}`)], ["plus sign", make(`+${base}`)], ["minus sign", make(`-${base}`)],
    ["inner space", make(` ${base}`)], ["Arabic-Indic digits", make(digitsIn(base, ARABIC_INDIC))],
    ["fullwidth digits", make(digitsIn(base, FULLWIDTH))], ["exponent", make(`${base / 1000}e3`)],
    ["hex", make(`0x${base.toString(16)}`)], ["decimal point", make(`${base}.0`)], ["2^32-1", make("4294967295")],
    ["2^53+1", make("9007199254740993")], ["sixteen nines", make("9".repeat(16))], ["seventeen digits", make("1".repeat(17))],
  ];
}

interface ImportJSON {
  created: number;
  bad: Array<{ line: number; reason: string }>;
}

/** What each format's refusal names: the format itself, or the characters that are not a hash's at all. */
const NAMES: Record<string, RegExp> = {
  bcrypt: /bcrypt/, phpass: /phpass/, drupal7: /phpass\/Drupal|drupal7/, "sha512-crypt": /sha512-crypt/, pbkdf2: /pbkdf2-sha256/,
  django: /django-pbkdf2-sha256/, scrypt: /scrypt/, argon2: /argon2/, wrapped: /bulwark-wrapped|sha512-crypt|argon2|hash is \d+ characters long/,
};
const NOT_ASCII = /whitespace, control or non-ASCII characters/;

/** The hostile rows of the dump: [format, what was tried, hash]. */
function hostileRows(): Array<[string, string, string]> {
  const rows: Array<[string, string, string]> = [];
  const add = (format: string, list: Array<[string, string]>): void => {
    for (const [what, hash] of list) rows.push([format, what, hash]);
  };
  // The largest cost each format's syntax allows.
  add("bcrypt", [["cost 99 (two digits' largest)", `$2b$99$${BCRYPT_TAIL}`], ["cost 31", `$2y$31$${BCRYPT_TAIL}`], ["cost +9", `$2a$+9$${BCRYPT_TAIL}`],
    ["cost ' 9'", `$2a$ 9$${BCRYPT_TAIL}`], ["Arabic-Indic cost 10", `$2b$${digitsIn(10, ARABIC_INDIC)}$${BCRYPT_TAIL}`], ["fullwidth cost 10", `$2b$${digitsIn(10, FULLWIDTH)}$${BCRYPT_TAIL}`],
    ["cost 1e", `$2b$1e$${BCRYPT_TAIL}`]]);
  add("phpass", [["count letter z (2^63)", `$P$zabcdefgh${crypt64(22)}`], ["count letter J (2^21)", `$H$Jabcdefgh${crypt64(22)}`], ["count letter é", `$P$éabcdefgh${crypt64(22)}`]]);
  add("drupal7", [["count letter z (2^63)", `$S$zabcdefgh${crypt64(43)}`], ["U$ count letter z", `U$S$zabcdefgh${crypt64(43)}`]]);
  add("sha512-crypt", [["rounds=999999999", `$6$rounds=999999999$saltsalt$${crypt64(86)}`], ...spellings(5000, (n) => `$6$rounds=${n}$saltsalt$${crypt64(86)}`)]);
  add("pbkdf2", spellings(29000, (n) => `$pbkdf2-sha256$${n}$c2FsdA$${B32}`));
  add("django", spellings(600000, (n) => `pbkdf2_sha256$${n}$salt$${DJANGO_DIGEST}`));
  add("scrypt", [["ln at 16 digits", `$scrypt$ln=${"9".repeat(16)},r=8,p=1$${B16}$${B32}`], ["r=2^32-1", `$scrypt$ln=14,r=4294967295,p=1$${B16}$${B32}`],
    ["p=2^32-1", `$scrypt$ln=14,r=8,p=4294967295$${B16}$${B32}`], ...spellings(16000, (n) => `$scrypt$ln=14,r=8,p=${n}$${B16}$${B32}`).filter(([w]) => w !== "exponent")]);
  add("argon2", [["m, t and p at 2^32-1", `$argon2id$v=19$m=4294967295,t=4294967295,p=4294967295$${B16}$${B32}`],
    ...spellings(19000, (n) => `$argon2id$v=19$m=${n},t=2,p=1$${B16}$${B32}`), ...spellings(2000, (n) => `$argon2id$v=19$m=19456,t=${n},p=1$${B16}$${B32}`)]);
  const wrappedAt = (rounds: string, phc = `argon2id$v=19$m=64,t=1,p=1$${B16}$${B32}`): string => `$bulwark-wrap$v=1$sha512-crypt$$6$rounds=${rounds}$saltsalt$${phc}`;
  add("wrapped", [["inner rounds=999999999", wrappedAt("999999999")], ["inner rounds +5000", wrappedAt("+5000")], ["inner rounds 05000", wrappedAt("05000")],
    ["outer argon2 m=2^32-1", wrappedAt("5000", `argon2id$v=19$m=4294967295,t=1,p=1$${B16}$${B32}`)],
    ["a wrap inside a wrap", `$bulwark-wrap$v=1$bulwark-wrapped$${wrappedAt("5000")}$argon2id$v=19$m=64,t=1,p=1$${B16}$${B32}`],
    ["four wraps deep", Array.from({ length: 4 }).reduce<string>((inner) => `$bulwark-wrap$v=1$bulwark-wrapped$${inner}$argon2id$v=19$m=64,t=1,p=1$${B16}$${B32}`, wrappedAt("5000"))]]);
  return rows;
}

describe("hostile hash strings (round 'hash bounds')", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);
  let files: string;
  before(() => {
    files = mkdtempSync(join(tmpdir(), "bulwark-hash-bounds-"));
  });
  after(() => rmSync(files, { recursive: true, force: true }));

  const userCount = async (): Promise<number> => Number((await fx.app.db.db.selectFrom("users").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);

  /** The scheme `id` of the server's table with its verify counted (every legacy derivation the server runs); undo with restore(). */
  function countDerivations(id: "sha512-crypt"): { count: () => number; restore: () => void } {
    const scheme = fx.app.accounts.passwords.table.get(id) as PasswordScheme & { verify: PasswordScheme["verify"] };
    const original = scheme.verify;
    let n = 0;
    scheme.verify = async (password, hash) => {
      n++;
      return original.call(scheme, password, hash);
    };
    return { count: () => n, restore: () => void (scheme.verify = original) };
  }

  /** A sha512-crypt hash of `password` as the legacy system stored it (the product's derivation, pinned by vectors.test.ts). */
  async function sha512Crypt(password: string, settings: string): Promise<string> {
    return `${settings}$${await fx.app.accounts.passwords.table.get("sha512-crypt")!.wrap!.derive(password, settings)}`;
  }

  /** Imports one planted row `email` with `hash` through `bulwark users import`, and returns the account's id. */
  async function planted(email: string, hash: string): Promise<string> {
    const r = await importCSVOnFixture<ImportJSON>(fx.app.config.dataDir, files, `email,password_hash\n${email},${hash}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.report?.created, 1, r.stderr);
    const user = await fx.app.accounts.users.findByIdentifier(email);
    assert.ok(user && user.passwordHash === hash, "control: the planted row was imported with its hash as given");
    return user.id;
  }

  it("attack: a dump whose hashes carry the largest costs their syntax allows and numbers spelled to read differently (signs, zeros, spaces, other scripts' digits, exponent, hex, 2^53+1, wraps in wraps) — every row a bad row naming its line and format, a dry run and a real run writing nothing (ASVS 2.2.1, 11.4.2)", async () => {
    const rows = hostileRows();
    // One good row first: the refusal is of the hostile rows, not of the file.
    const csv = `email,password_hash\ngood@example.org,5f4dcc3b5aa765d61d8327deb882cf99\n${rows.map(([, , hash], i) => `h${i}@example.org,"${hash}"`).join("\n")}\n`;
    const before = await userCount();
    const dry = await importCSVOnFixture<ImportJSON>(fx.app.config.dataDir, files, csv, ["--dry-run"]);
    assert.ok(dry.report, `the dry run printed no report: ${dry.stderr}`);
    const byLine = new Map(dry.report.bad.map((b) => [b.line, b.reason]));
    const wrong: string[] = [];
    rows.forEach(([format, what, hash], i) => {
      const line = i + 3;
      const reason = byLine.get(line);
      const names = /^[\x21-\x7e]+$/.test(hash) ? NAMES[format]! : NOT_ASCII;
      if (reason === undefined) wrong.push(`line ${line} (${format}, ${what}) was accepted`);
      else if (!reason.startsWith("unsupported password hash: ") || !names.test(reason)) wrong.push(`line ${line} (${format}, ${what}): the reason "${reason}" does not name ${names}`);
      else if (reason.includes(hash)) wrong.push(`line ${line} (${format}, ${what}): the reason quotes the hash`);
    });
    assert.deepEqual(wrong, []);
    assert.equal(dry.report.bad.length, rows.length, `only the hostile rows are bad: ${JSON.stringify(dry.report.bad.filter((b) => b.line === 2))}`);
    const real = await importCSVOnFixture<ImportJSON>(fx.app.config.dataDir, files, csv);
    assert.equal(real.code, 2, `a real run with bad rows must refuse: ${real.stderr}`);
    assert.match(real.stderr, /line 3: unsupported password hash: /);
    assert.equal(await userCount(), before, "a dry run or a refused run wrote accounts");
  });

  it("attack: the operator looks at the dump's hostile hashes with `bulwark hash identify` and `hash verify` — exit 2 with the import's reason, and verify refuses before it waits for a password (ASVS 2.2.1, 11.4.2)", async () => {
    const env = fixtureCliEnv(fx.app.config.dataDir);
    const sample = hostileRows().filter((_, i) => i % 4 === 0);
    const wrong: string[] = [];
    for (const [format, what, hash] of sample) {
      const id = await bulwarkInProcess(["hash", "identify", hash], env);
      if (id.code !== 2 || id.stdout !== "" || !/unsupported password hash: /.test(id.stderr)) wrong.push(`identify ${format} (${what}): exit ${id.code}, stdout ${JSON.stringify(id.stdout)}`);
      // A stdin that never ends: a verify that waited for the password before judging the hash would never return.
      const stdin = new PassThrough();
      let guard: NodeJS.Timeout | undefined;
      const hung = new Promise<null>((resolve) => (guard = setTimeout(() => resolve(null), 10_000)));
      const v = await Promise.race([bulwarkInProcess(["hash", "verify", hash], env, stdin), hung]);
      clearTimeout(guard);
      stdin.destroy();
      if (v === null) wrong.push(`verify ${format} (${what}) waited for a password`);
      else if (v.code !== 2 || !/unsupported password hash: /.test(v.stderr) || /match/.test(v.stdout)) wrong.push(`verify ${format} (${what}): exit ${v.code}, ${JSON.stringify(v.stderr.slice(0, 120))}`);
    }
    assert.deepEqual(wrong, []);
  });

  it("attack: wrong passwords from one address at an imported sha512-crypt account run its loop no more often than flood control admits, and the first right sign-in replaces it so no later sign-in runs it (ASVS 6.3.1, 11.4.2)", async () => {
    const password = "lighthouse keeper umbrella forty two";
    // rounds at the table's 1,000,000 would cost ~1.5 s a derivation; what is counted here is how many run.
    const hash = await sha512Crypt(password, "$6$rounds=5000$volleysalt");
    await planted("volley@example.org", hash);
    const probe = countDerivations("sha512-crypt");
    try {
      const answers: number[] = [];
      for (let i = 0; i < 4 * ACCOUNT_IP_WINDOW; i++) answers.push((await loginFrom(fx, "volley@example.org", `wrong guess ${i}`, "198.51.100.40")).statusCode);
      assert.ok(probe.count() <= ACCOUNT_IP_WINDOW, `${probe.count()} legacy derivations for ${answers.length} wrong guesses from one address (answers ${answers.join(",")}): flood control must stop them at ${ACCOUNT_IP_WINDOW}`);
      assert.ok(answers.slice(ACCOUNT_IP_WINDOW).every((s) => s === 429), `past the window the guesses are throttled: ${answers.join(",")}`);
      fx.clock.advance(6 * HOUR + 1);
      const ran = probe.count();
      assert.equal((await loginFrom(fx, "volley@example.org", password, "198.51.100.41")).statusCode, 200);
      assert.equal(probe.count(), ran + 1, "the right password runs the legacy derivation once");
      const after = await fx.app.accounts.users.findByIdentifier("volley@example.org");
      assert.equal(after?.passwordScheme, "argon2id", "the first right sign-in must replace the legacy hash");
      assert.equal((await loginFrom(fx, "volley@example.org", password, "198.51.100.41")).statusCode, 200);
      assert.equal((await loginFrom(fx, "volley@example.org", "wrong again", "198.51.100.42")).statusCode, 401);
      assert.equal(probe.count(), ran + 1, "a later sign-in, right or wrong, ran the legacy derivation again");
    } finally {
      probe.restore();
    }
  });

  it("attack: a re-import with --on-conflict update --replace-passwords --skip-bad carries hostile hashes for stored accounts (bcrypt 31, rounds=+5000, an argon2 m of 2^32−1) — bad rows naming their lines, every stored hash kept, every owner still signs in (ASVS 11.4.2, 2.2.1)", async () => {
    const owners = [await fx.user("keep-a@example.org"), await fx.user("keep-b@example.org"), await fx.user("keep-c@example.org")];
    const storedBefore = await Promise.all(owners.map(async (o) => (await fx.app.accounts.users.findByIdentifier(o.email))!.passwordHash));
    const hostile = [`$2b$31$${BCRYPT_TAIL}`, `$6$rounds=+5000$saltsalt$${crypt64(86)}`, `$argon2id$v=19$m=4294967295,t=2,p=1$${B16}$${B32}`];
    const csv = `email,display_name,password_hash\n${owners.map((o, i) => `${o.email},Renamed ${i},"${hostile[i]}"`).join("\n")}\n`;
    const r = await importCSVOnFixture<ImportJSON>(fx.app.config.dataDir, files, csv, ["--on-conflict", "update", "--replace-passwords", "--skip-bad"]);
    assert.ok(r.report, r.stderr);
    assert.deepEqual(r.report.bad.map((b) => b.line), [2, 3, 4], JSON.stringify(r.report.bad));
    assert.match(r.report.bad[0]!.reason, /bcrypt cost 31 is above the limit of 15/);
    assert.match(r.report.bad[1]!.reason, /sha512-crypt/);
    assert.match(r.report.bad[2]!.reason, /argon2 m \(KiB\) 4294967295 is above the limit/);
    const storedAfter = await Promise.all(owners.map(async (o) => (await fx.app.accounts.users.findByIdentifier(o.email))!));
    assert.deepEqual(storedAfter.map((u) => u.passwordHash), storedBefore, "a hostile row replaced or cleared a stored hash");
    assert.deepEqual(storedAfter.map((u) => u.displayName), [null, null, null], "a bad row is skipped whole: none of its fields is written");
    for (const o of owners) assert.equal((await loginFrom(fx, o.email, o.password, "198.51.100.50")).statusCode, 200, `${o.email} can no longer sign in`);
  });

  it("attack: the holder of an imported account whose password an operator expired replays POST /auth/password/reset/complete with the old password — the first match runs the legacy derivation once and replaces it with argon2id (must-change kept), so replays cost what a right password at the login does, and the link still sets a new password (ASVS 2.4.1, 6.3.1, 11.4.2) (was: every replay ran the seconds-long legacy derivation, no flood control, no rehash)", async () => {
    const password = "lighthouse keeper umbrella forty three";
    const hash = await sha512Crypt(password, "$6$rounds=5000$replaysalt");
    const id = await planted("replay@example.org", hash);
    // The incident lever after the move (or an administrator's require-password-change): the old password works once more.
    assert.equal(await requirePasswordChange(fx.app.db.db, id, fx.clock.now()), "required");
    const token = await flows.resetToken("replay@example.org");
    const probe = countDerivations("sha512-crypt");
    const answers: string[] = [];
    try {
      // One after another (the route refuses a second completion of one link while the first runs), one address.
      for (let i = 0; i < 4 * ACCOUNT_IP_WINDOW; i++) {
        const r = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: password } });
        answers.push(`${r.statusCode} ${(r.json() as { error?: { code?: string } }).error?.code ?? ""}`.trim());
      }
    } finally {
      probe.restore();
    }
    const stored = await fx.app.accounts.users.findByIdentifier("replay@example.org");
    const tally = answers.reduce<Record<string, number>>((t, a) => ((t[a] = (t[a] ?? 0) + 1), t), {});
    assert.ok(
      probe.count() <= ACCOUNT_IP_WINDOW,
      `${answers.length} completions of one reset link with the old password ran the stored sha512-crypt derivation ${probe.count()} times ` +
        `(answers ${JSON.stringify(tally)}; the link is still unspent and the stored hash is still ${stored?.passwordScheme}): ` +
        `password-routes.ts compares the new password with the stored legacy hash outside flood control and never rehashes it, so with a hash ` +
        `at the table's bound (sha512-crypt 10^6 rounds: 2.1–3.0 s of event-loop CPU each, measured, for a 36- to 512-byte password) one account holder keeps a ` +
        `node's event loop busy for as long as they like; at most ${ACCOUNT_IP_WINDOW} (a login's account+address window) may run`,
    );
    assert.deepEqual(tally, { "400 BULWARK_ERR_PASSWORD_UNCHANGED": answers.length }, "the same password again is refused each time");
    assert.equal(stored?.passwordScheme, "argon2id", "the first match replaces the legacy hash, as a right sign-in does");
    assert.equal(stored?.passwordMustChange, true, "the upgrade keeps the must-change flag: the password is the same one");
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "an entirely different passphrase, nine" } });
    assert.equal(done.statusCode, 200, `the unspent link still sets a new password: ${done.body}`);
    const after = await fx.app.accounts.users.findByIdentifier("replay@example.org");
    assert.equal(after?.passwordMustChange, false);
  });
});
