// Attacks on password hash formats and the user import, from someone who controls an import file (a
// breach dump, a partner's export) or a stored hash, and from an operator who must trust what the import tells
// them. Each test is an attack that must fail on correct code.
// Not repeated here (covered elsewhere): hostile KDF parameters (limits.security.test.ts), bcrypt's 72 bytes
// (login-bcrypt-long-password.test.ts), NUL / lone surrogates (context.test.ts, cli-hash.test.ts), resume after a
// crash (cli-users-import.test.ts, import.consistency.test.ts), Latin-1 bytes and stray quotes (cli-users-import-input).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { hashArgon2id } from "../src/accounts/passwords/argon2.ts";
import { createPasswordContext, saltedFromTemplate, SCHEME_IDS, UnsupportedHashError, type PasswordContext, type SchemeId } from "../src/accounts/passwords/index.ts";
import { planPassword } from "../src/accounts/import/password-update.ts";
import type { ImportRow } from "../src/accounts/import/mapping.ts";
import { systemRandom } from "../src/lib/random.ts";
import { bulwarkInProcess, initSite, type CLISite } from "./helpers/cli.ts";

// Cheap argon2id for new hashes: these tests are about formats and decisions, not about argon2's cost.
const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
const md5 = (text: string): string => createHash("md5").update(text, "utf8").digest("hex");
const sha1 = (text: string): string => createHash("sha1").update(text, "utf8").digest("hex");

/** Throws unless `f` throws UnsupportedHashError (refused as a format, never verified). */
function refused(f: () => unknown, what: string): void {
  assert.throws(f, (e: unknown) => e instanceof UnsupportedHashError, `${what} was accepted`);
}

interface Vector { scheme: SchemeId; password: string; hash?: string; template?: string; salt?: string; digest?: string; match: boolean }
const VECTORS: Vector[] = ["passlib.json", "php.json", "tools.json", "hashcat.json"].flatMap(
  (f) => (JSON.parse(readFileSync(new URL(`../src/accounts/passwords/vectors/${f}`, import.meta.url), "utf8")) as { vectors: Vector[] }).vectors,
);
/** One in-bounds matching vector per scheme, as stored hashes. */
function legitimate(): Map<SchemeId, { password: string; hash: string }> {
  const out = new Map<SchemeId, { password: string; hash: string }>();
  for (const v of VECTORS) {
    if (!v.match || out.has(v.scheme)) continue;
    const hash = v.hash ?? saltedFromTemplate(v.template!, v.salt!, v.digest!);
    try {
      passwords.identify(hash);
    } catch {
      continue;
    }
    out.set(v.scheme, { password: v.password, hash });
  }
  return out;
}

describe("stored hash formats", () => {
  it("attack: no stored hash is claimed by two schemes, so no scheme can be chosen by ordering (ASVS 11.4.2)", async () => {
    const hashes = [...legitimate().values()].map((v) => v.hash);
    hashes.push(await passwords.wrapLegacyHash(md5("password")), await passwords.hash("password"));
    for (const hash of hashes) {
      const claim = passwords.table.schemes.filter((s) => {
        try {
          return s.identify(hash) && (s.parse(hash), true);
        } catch {
          return false;
        }
      });
      assert.deepEqual(claim.map((s) => s.id), [passwords.identify(hash)], `${hash.slice(0, 30)}… is claimed by ${claim.map((s) => s.id).join(", ")}`);
    }
    assert.ok(new Set(hashes.map((h) => passwords.identify(h))).size >= SCHEME_IDS.length, "a hash of every scheme was checked");
  });

  it("attack: a truncated, extended or emptied digest is refused as a format, never compared as a prefix (ASVS 11.4.2)", async () => {
    const legit = legitimate();
    for (const [scheme, { password, hash }] of legit) {
      if (scheme === "ssha" || scheme === "ssha256" || scheme === "ssha512") continue; // digest ‖ salt: no length of its own
      const cut = scheme === "bulwark-wrapped" || scheme.startsWith("argon2") || scheme === "scrypt" ? hash.slice(0, hash.lastIndexOf("$") + 1) : hash.slice(0, -2);
      for (const bad of [cut, hash + "AA", hash.slice(0, hash.lastIndexOf("$") + 1)]) {
        let ok: boolean;
        try {
          ok = await passwords.verify(password, bad);
        } catch (e) {
          assert.ok(e instanceof UnsupportedHashError, `${scheme}: ${String(e)}`);
          continue;
        }
        assert.equal(ok, false, `${scheme}: the right password matched the mangled hash ${bad.slice(0, 40)}…`);
      }
    }
    // LDAP: a payload shorter than the digest leaves no salt and must not verify a prefix of the digest.
    const raw = createHash("sha1").update("password").digest();
    refused(() => passwords.identify("{SSHA}" + raw.subarray(0, 19).toString("base64")), "{SSHA} shorter than its digest");
    refused(() => passwords.identify("{SSHA}" + raw.toString("base64")), "{SSHA} without salt");
    // Salted digests and bare digests declared at import: the digest length is the algorithm's, exactly.
    refused(() => saltedFromTemplate("sha256(salt+password):hex", "salt", md5("saltpassword")), "an md5-sized digest under sha256");
    refused(() => saltedFromTemplate("md5(salt+password):hex", "", md5("password")), "an empty salt");
    refused(() => passwords.identify(sha1("password").slice(0, 39)), "a 39-digit hex digest");
  });

  it("attack: case of a hex digest — either case of the right digest verifies, a password differing in case does not (ASVS 6.2.8)", async () => {
    const upper = md5("Password").toUpperCase();
    assert.equal(await passwords.verify("Password", upper), true);
    for (const wrong of ["password", "PASSWORD", "Password "]) assert.equal(await passwords.verify(wrong, upper), false, wrong);
    const wrapped = await passwords.wrapLegacyHash(upper);
    assert.equal(await passwords.verify("Password", wrapped), true, "the wrap compares the canonical lower-case result");
    assert.equal(await passwords.verify("password", wrapped), false);
  });

  it("attack: Unicode spellings — an NFD password never matches a legacy hash of its NFC spelling, and a rehash keeps the exact one (ASVS 6.2.8)", async () => {
    const nfc = "café\u00e9";
    const nfd = nfc.normalize("NFD");
    assert.notEqual(nfc, nfd);
    const stored = [md5(nfc), saltedFromTemplate("sha256(salt+password):hex", "s4lt", createHash("sha256").update("s4lt" + nfc).digest("hex")), await passwords.wrapLegacyHash(md5(nfc))];
    for (const hash of stored) {
      assert.equal(await passwords.verify(nfd, hash), false, `${passwords.identify(hash)} matched the NFD spelling`);
      assert.deepEqual(await passwords.verifyAndRehash(nfd, hash), { status: "invalid" });
      const upgraded = await passwords.verifyAndRehash(nfc, hash);
      assert.ok(upgraded.status === "valid" && "newHash" in upgraded);
      assert.equal(await passwords.verify(nfd, upgraded.newHash), false, "the argon2id rehash normalised the password");
      assert.equal(await passwords.verify(nfc, upgraded.newHash), true);
    }
  });

  it("attack: verifyAndRehash with a wrong password against every scheme never yields a new hash (ASVS 6.2.8)", async () => {
    for (const [scheme, { password, hash }] of legitimate()) {
      for (const wrong of [password + "x", password.toUpperCase() === password ? password.toLowerCase() + "!" : password.toUpperCase(), ""]) {
        if (wrong === password) continue;
        const r = await passwords.verifyAndRehash(wrong, hash);
        // bcrypt reads 72 bytes: a longer password sharing them matches by the format's own (documented) rule.
        if (scheme === "bcrypt" && Buffer.byteLength(password) >= 72) continue;
        assert.deepEqual(r, { status: "invalid" }, `${scheme}: ${JSON.stringify(wrong)}`);
      }
    }
  });
});

/** An import row carrying `hash`, as validateRow makes it. */
function rowWith(hash: string, ctx: PasswordContext): ImportRow {
  return {
    line: 2, emailKey: "ana@example.org", usernameKey: null, emailSkeleton: "ana@example.org", usernameSkeleton: null, supplied: new Set(["email", "password_hash"]), clamped: false,
    user: { email: "ana@example.org", username: null, displayName: null, status: "active", passwordHash: hash, passwordScheme: ctx.identify(hash), lastLoginAt: null, externalSource: null, externalId: null },
  };
}

describe("--replace-passwords never downgrades a stored hash", () => {
  // Within the fast-digest tier only the same scheme at no weaker parameters replaces a stored hash: a salted Drupal 7
  // hash (2^15 SHA-512 rounds) never gives way to an unsalted MD5 (docs/password-migration.md).
  it("attack: a salted 2^15-round Drupal 7 hash replaced by a bare unsalted MD5 of the file (ASVS 11.4.2)", () => {
    const drupal = "$S$D" + "abcdefgh" + "x".repeat(43);
    assert.equal(passwords.identify(drupal), "drupal7");
    for (const weaker of [md5("password"), sha1("password"), "$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/"]) {
      const plan = planPassword(rowWith(weaker, passwords), drupal, { replacePasswords: true }, passwords);
      assert.equal(plan.kind, "refuse", `drupal7 log2=15 replaced by ${passwords.identify(weaker)}`);
    }
  });

  // argon2's p splits its memory m between lanes rather than multiplying the work: m·t is the measure.
  it("attack: argon2id m=4096,t=1,p=16 replaces m=32768,t=2,p=1 because lanes are counted as work (ASVS 11.4.2)", async () => {
    const strict = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 65536, timeCost: 2, parallelism: 1 } });
    const stored = await hashArgon2id("owner", { memoryCost: 32768, timeCost: 2, parallelism: 1 }, randomBytes(16));
    const incoming = await hashArgon2id("attacker", { memoryCost: 4096, timeCost: 1, parallelism: 16 }, randomBytes(16));
    assert.ok(strict.needsRehash(stored) && strict.needsRehash(incoming), "both are below the policy (the middle tier)");
    const plan = planPassword(rowWith(incoming, strict), stored, { replacePasswords: true }, strict);
    assert.equal(plan.kind, "refuse", "m·t = 4096 KiB·pass replaced m·t = 65536 KiB·pass");
  });

  it("attack: a bcrypt hash at a lower cost, or any hash the policy refuses, never replaces a stored one (ASVS 11.4.2)", () => {
    const stored = "$2b$12$" + "a".repeat(53);
    for (const next of ["$2b$10$" + "a".repeat(53), "$2b$31$" + "a".repeat(53), md5("x")]) {
      let plan;
      try {
        plan = planPassword(rowWith(next, passwords), stored, { replacePasswords: true }, passwords);
      } catch (e) {
        assert.ok(e instanceof UnsupportedHashError);
        continue;
      }
      assert.equal(plan.kind, "refuse", next.slice(0, 8));
    }
  });
});

// ---- the CLI import, end to end (in process) ----

let root: string;
let site: CLISite;
before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-redteam-hashes-import-"));
  site = await initSite(join(root, "site"));
});
after(() => rmSync(root, { recursive: true, force: true }));

let seq = 0;
function imp(content: string | Buffer, ext: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = site.file(`in-${++seq}.${ext}`, content);
  return bulwarkInProcess(["users", "import", file, ...args], { ...site.env, BULWARK_LOG_LEVEL: "silent" });
}
const hashOf = (email: string): unknown => site.rows(`SELECT password_hash FROM users WHERE email_key = '${email}'`)[0]?.["password_hash"];
const userCount = (): number => Number(site.rows("SELECT count(*) AS n FROM users")[0]!["n"]);
// C0 but newline, DEL and C1 (8-bit CSI/OSC): what file content must never send to the operator's terminal.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

describe("users import", () => {
  // The dry run's reasons quote the file's cells: their control characters are shown as \xNN on the terminal.
  it("attack: terminal controls in a file's cells reach the operator's terminal through the dry-run report (ASVS 1.1.2, 16.4.1)", async () => {
    const csv = "email,status,created_at\n" + '"\x1b]0;pwned\x07\x1b[2Jmallory@x",,\n' + "b@example.org,\x1b[8mactive,\n" + "c@example.org,,\u009b2J\n";
    const text = await imp(csv, "csv", "--dry-run");
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stdout, /line 2: .*\n.*line 3: .*\n.*line 4: /s);
    assert.doesNotMatch(text.stdout, CONTROLS, `raw control characters on stdout: ${JSON.stringify(text.stdout)}`);
    const json = await imp(csv, "csv", "--dry-run", "--json");
    assert.doesNotMatch(json.stdout, CONTROLS, "raw control characters in the --json report");
    assert.equal(userCount(), 0);
  });

  it("attack: an email that normalises to an existing one (Kelvin sign, case) cannot take the account over (ASVS 6.2.8)", async () => {
    const ok = await imp(`email,password_hash\nkim@example.org,${md5("owner")}\n`, "csv");
    assert.equal(ok.code, 0, ok.stderr);
    for (const spelling of ["\u212Aim@example.org", "KIM@EXAMPLE.ORG", " kim@example.org "]) {
      const row = `email,password_hash\n"${spelling}",${md5("attacker")}\n`;
      const fail = await imp(row, "csv", "--dry-run", "--json");
      assert.equal(fail.code, 1, `${JSON.stringify(spelling)} was not a clash: ${fail.stdout}`);
      assert.match(fail.stdout, /already exists/);
      for (const mode of ["update", "skip"]) {
        const r = await imp(row, "csv", "--on-conflict", mode);
        assert.equal(r.code, 0, r.stderr);
      }
    }
    assert.equal(hashOf("kim@example.org"), md5("owner"), "the file replaced the owner's password without --replace-passwords");
    assert.equal(Number(site.rows("SELECT count(*) AS n FROM users WHERE email_key = 'kim@example.org'")[0]!["n"]), 1);
  });

  it("attack: one account spelled twice in one file (case, NFD, BOM and CRLF/LF mixed) is a duplicate row, not two accounts or a silent update", async () => {
    const before = userCount();
    const csv = "\ufeffemail,password_hash\r\n" + `zoe@example.org,${md5("a")}\n` + `ZOE@Example.org,${md5("b")}\r\n` + `"ze\u0301l@example.org",${md5("c")}\n` + `z\u00e9l@example.org,${md5("d")}\n`;
    const r = await imp(csv, "csv", "--dry-run", "--json");
    const report = JSON.parse(r.stdout) as { created: number; bad: Array<{ line: number; reason: string }> };
    assert.deepEqual(report.bad.map((b) => [b.line, /duplicate of line (\d+)/.exec(b.reason)?.[1]]), [[3, "2"], [5, "4"]], r.stdout);
    assert.equal(report.created, 2);
    assert.equal(userCount(), before, "a dry run wrote accounts");
  });

  it("attack: a quoted line break or formula in a display name is refused or stored inert, never as a new line (ASVS 1.2.10)", async () => {
    const csv = 'email,display_name,password_hash\n' + `nl@example.org,"Eve\nline 99: password hash replaced",${md5("x")}\n` + `f@example.org,"=HYPERLINK(""http://evil"")",${md5("y")}\n`;
    const r = await imp(csv, "csv", "--skip-bad", "--json");
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { created: number; bad: Array<{ line: number; reason: string }> };
    assert.deepEqual(report.bad.map((b) => b.line), [2], "the display name with a line break was not refused");
    assert.equal(site.rows("SELECT count(*) AS n FROM users WHERE email_key = 'nl@example.org'")[0]!["n"], 0);
    // Stored as given (the store has no CSV export), and the hash is what the file said.
    assert.equal(site.rows("SELECT display_name FROM users WHERE email_key = 'f@example.org'")[0]!["display_name"], '=HYPERLINK("http://evil")');
    assert.equal(hashOf("f@example.org"), md5("y"));
  });

  it("attack: hostile hashes in a JSONL dump are bad rows naming the bound, and a dry run writes neither users nor jobs (ASVS 11.4.2)", async () => {
    const users = userCount();
    const jobs = Number(site.rows("SELECT count(*) AS n FROM jobs")[0]!["n"]);
    const lines = [
      { email: "h1@example.org", password_hash: "$2b$31$" + "a".repeat(53) },
      { email: "h2@example.org", password_hash: "$P$Z" + "abcdefgh" + "x".repeat(22) },
      { email: "h3@example.org", password_hash: "$argon2id$v=19$m=67108864,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + "A".repeat(43) },
      { email: "h4@example.org", password_hash: "$bulwark-wrap$v=1$md5$$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$" + "A".repeat(43) + "$" },
      { email: "h5@example.org", password_hash: md5("ok") + "\u0000" },
    ].map((o) => JSON.stringify(o)).join("\n");
    const r = await imp(lines + "\n", "jsonl", "--dry-run", "--json");
    const report = JSON.parse(r.stdout) as { bad: Array<{ line: number; reason: string }> };
    assert.deepEqual(report.bad.map((b) => b.line), [1, 2, 3, 4, 5], r.stdout);
    assert.match(report.bad[0]!.reason, /bcrypt cost 31 is above the limit of 15/);
    assert.match(report.bad[1]!.reason, /log2 iteration count 37 is above the limit of 20/);
    assert.match(report.bad[2]!.reason, /argon2 m \(KiB\) 67108864 is above the limit/);
    const real = await imp(lines + "\n", "jsonl");
    assert.equal(real.code, 2);
    assert.equal(userCount(), users);
    assert.equal(Number(site.rows("SELECT count(*) AS n FROM jobs")[0]!["n"]), jobs, "a refused or dry run created a job");
  });
  it("attack: a stored hash tampered to 2^37 rounds or cost 31 is left alone by migrate-hashes, which still wraps the rest (ASVS 11.4.2)", async () => {
    const setup = await imp(`email,password_hash\nt1@example.org,${md5("1")}\nt2@example.org,${md5("2")}\nt3@example.org,${md5("3")}\n`, "csv");
    assert.equal(setup.code, 0, setup.stderr);
    const db = new DatabaseSync(join(site.dir, "data", "bulwark.db"));
    const hostile = ["$P$Z" + "abcdefgh" + "x".repeat(22), "$2b$31$" + "a".repeat(53)];
    try {
      db.prepare("UPDATE users SET password_hash = ? WHERE email_key = 't1@example.org'").run(hostile[0]!);
      db.prepare("UPDATE users SET password_hash = ? WHERE email_key = 't2@example.org'").run(hostile[1]!);
    } finally {
      db.close();
    }
    const r = await bulwarkInProcess(["users", "migrate-hashes", "--json"], { ...site.env, BULWARK_LOG_LEVEL: "silent" });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([hashOf("t1@example.org"), hashOf("t2@example.org")], hostile, "a hostile hash was rewritten");
    assert.match(String(hashOf("t3@example.org")), /^\$bulwark-wrap\$v=1\$md5\$\$argon2id\$/, "the legitimate md5 was not wrapped");
  });
});
