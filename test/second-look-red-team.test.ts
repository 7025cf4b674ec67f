// Red team, second look at three of today's fixes, for what they missed: other spellings of the same input, other code
// paths that write or read the same data, and regressions the fixes brought.
//  1. Look-alike identifiers (confusables.ts' skeleton, migration 23's marks, the importer's checks, email change). The
//     attacker: a help-desk administrator with accounts.write or an impostor who wants a second account that a person
//     cannot tell from an existing one; and, for the regression, the operator whose incident import is refused. ADR
//     0013's limit is respected: ASCII is never compared with other ASCII here.
//  2. Start-up configuration (config.ts parseDatabaseURL / databaseTLS, master-key.ts). The attackers: someone on the
//     network path between Bulwark and its PostgreSQL server (played by a fake server on loopback that the "remote" host
//     is redirected to: no DNS, nothing leaves the machine), a local user under another UID reading /proc/PID/cmdline,
//     and whoever guesses a placeholder master key that a hurried deploy put in its secrets.
//  3. check downloads (verify.ts' danglingLink): a mirror that writes links into the release directory.
// Each test is an attack that must fail on correct code. "attack: … (was: …)" failed before its fix (the round's six
// findings, fixed the same day); the others pin a defence that held and is not obvious. Temp dirs and loopback only.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { forEachDialect } from "./helpers/dialects.ts";
import { openApp } from "../src/app/index.ts";
import { loadConfig } from "../src/app/config.ts";
import { systemRandom } from "../src/lib/random.ts";
import { Outbox } from "../src/notify/outbox.ts";
import { identifierKey } from "../src/accounts/users/normalise.ts";
import { createEmailChangeService } from "../src/accounts/email-change/email-change-service.ts";
import { verifyDownloads } from "../src/checks/downloads/index.ts";
import { atLeast } from "../src/checks/finding.ts";
import { helpDeskSite, importCSV, storedBeforeLookalikeRule } from "./helpers/lookalike-pairs.ts";
import { pathAttacker, redirectConnections } from "./helpers/fake-postgres.ts";
import { sha256 } from "./helpers/checks.ts";
import { CHEAP_ARGON2 } from "./helpers/scratch.ts";

/** Code points beyond ASCII shown as U+XXXX, so a failure message says which characters went through. */
const hex = (s: string): string => [...s].map((c) => (c.charCodeAt(0) < 128 ? c : `U+${c.codePointAt(0)!.toString(16).toUpperCase()}`)).join("");

// =====================================================================================================================
// 1. Look-alike identifiers
// =====================================================================================================================

describe("second look: a look-alike in the small letters of a capital the table maps (a help-desk impostor, POST /api/v1/users)", () => {
  const { createUser, spare } = helpDeskSite("second-look");

  it("attack: a look-alike written in the small letters of capitals the table maps — ꭰꭺꮩꭼ beside dave, ʀob beside rob — is refused like its capitals (ASVS 1.1.1) (was: stored; the same lookup key got two answers)", async () => {
    // Today's fix looks a capital the table lacks up by its small letter (Һ as һ), "one answer for one key". The other
    // direction was missed: a small letter the table lacks whose capital it maps stays itself. Cherokee has had small
    // letters since Unicode 8 (U+AB70…), drawn as small capitals of the capitals (UTS #39: ꭰ → ᴅ, ꭺ → ᴀ, ꭼ → ᴇ), and
    // toLowerCase turns ᎠᎪᏙᎬ into ꭰꭺꮩꭼ: the lookup key of the refused name IS the accepted one, and a login typed as
    // ᎠᎪᏙᎬ signs into it. Latin ʀ (U+0280, LATIN LETTER SMALL CAPITAL R) is the small letter of Ʀ (U+01A6 → R). Both
    // are one script (Cherokee; Latin), so the mixed-script rule passes them. Shown in a list, "ᴅᴀᴠᴇ" and "ʀob" read as
    // dave and rob. Secure: the small letter is judged as its capital is (one key, one answer).
    const pairs: Array<{ victim: string; capital: string; small: string }> = [
      { victim: "dave", capital: "\u13A0\u13AA\u13D9\u13AC", small: "\uAB70\uAB7A\uABA9\uAB7C" }, // ᎠᎪᏙᎬ / ꭰꭺꮩꭼ
      { victim: "rob", capital: "\u01A6ob", small: "\u0280ob" }, // Ʀob / ʀob
    ];
    const stored: string[] = [];
    for (const { victim, capital, small } of pairs) {
      assert.equal(identifierKey(capital), identifierKey(small), "one account name in two cases");
      assert.equal((await createUser({ email: spare(), username: victim })).statusCode, 201);
      const refused = await createUser({ email: spare(), username: capital });
      assert.equal(refused.statusCode, 409, `the capital spelling is refused today: ${refused.body}`);
      assert.equal((refused.json() as { error: { code: string } }).error.code, "BULWARK_ERR_USERNAME_CONFUSABLE");
      const res = await createUser({ email: spare(), username: small });
      if (res.statusCode === 201) stored.push(`${hex(small)} beside ${victim}`);
      else assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_USERNAME_CONFUSABLE", res.body);
    }
    assert.deepEqual(stored, [], "stored beside the account it reads as, though its own key in capitals is refused");
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Stored look-alike pairs (migration 23 marks one of each) and the other writers: the importer and email change.

const PAY_CYRILLIC = "\u0440\u0430\u0443@example.org"; // рау@example.org, a Cyrillic local part
const SCOPE_CYRILLIC = "\u0455\u0441\u043E\u0440\u0435"; // ѕсоре, all Cyrillic


forEachDialect("second look: a stored look-alike pair, the importer and email change", (dfx) => {
  it("attack: an incident import that disables both accounts of a stored look-alike pair (a row for each, its own account) updates both (was: refused whole as one row reading like the other)", async () => {
    // Today's fix made clash() judge an existing account's own row on what it writes, so that "an incident import can
    // disable" a look-alike migration 23 marked. The importer's in-file check was missed: two rows whose skeletons meet
    // are refused before anyone asks whether each only updates (or skips) the account it names. A file naming both
    // accounts of a pair — the natural case: a full export of the old system re-imported with --on-conflict update, or
    // the list of every account an incident touched — is "1 bad row(s), nothing imported", under update and skip alike.
    // Secure: rows that each meet only their own existing account (no new identifier written) are not look-alikes of
    // each other; both accounts are disabled.
    const { database, deps } = await storedBeforeLookalikeRule(await dfx.empty(), [
      { id: "usr_a_holder", email: "pay@example.org", username: "scope" },
      { id: "usr_b_legacy", email: PAY_CYRILLIC, username: SCOPE_CYRILLIC },
    ]);
    const file = `email,status\npay@example.org,disabled\n${PAY_CYRILLIC},disabled\n`;
    const skip = await importCSV(deps, file, { onConflict: "skip", dryRun: true });
    const update = await importCSV(deps, file, { onConflict: "update" }).catch((error: unknown) => error as Error);
    const statuses = (await database.db.selectFrom("users").select(["id", "status"]).orderBy("id").execute()).map((r) => [r.id, r.status]);
    assert.deepEqual(
      {
        skipBad: skip.bad,
        update: update instanceof Error ? update.message.slice(0, 160) : { updated: update.updated, bad: update.bad },
        statuses,
      },
      { skipBad: [], update: { updated: 2, bad: [] }, statuses: [["usr_a_holder", "disabled"], ["usr_b_legacy", "disabled"]] },
      "a file naming both accounts of a stored pair, each row its own account, was refused",
    );
  });

  it("attack: an email change confirmed to the address a marked look-alike reads like, after its twin moved away, is refused at confirmation (ASVS 1.1.1)", async () => {
    // Another writer of email_skeleton: the email-change service. Its request() looks up the key only, so the link is
    // mailed; the confirmation must still compare skeletons with every account, the marked one (outside the unique
    // index) included: rows under the index alone would let pay@example.org be stored beside рау@example.org.
    const { database, clock, users } = await storedBeforeLookalikeRule(await dfx.empty(), [
      { id: "usr_a_holder", email: "pay@example.org", username: null },
      { id: "usr_b_legacy", email: PAY_CYRILLIC, username: null },
    ]);
    const outbox = new Outbox({ database, clock, random: systemRandom });
    const changes = createEmailChangeService({ database, clock, random: systemRandom, outbox });
    const context = { publicURL: "https://bulwark.test", serviceName: "Bulwark" };
    const tokenMailedTo = async (address: string): Promise<string> => {
      const mails = await database.db.selectFrom("outbox_messages").selectAll().where("to_address", "=", address).execute();
      const token = [...JSON.stringify(mails).matchAll(/ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}/g)].at(-1)?.[0];
      assert.ok(token, `no confirmation link mailed to ${address}`);
      return token;
    };
    const holder = await users.getById("usr_a_holder");
    assert.ok(holder);
    assert.equal(await changes.request(holder, "pay.moved@example.org", context), "queued");
    await changes.confirm(await tokenMailedTo("pay.moved@example.org"));

    const impostor = await users.create({ email: "impostor@example.org" });
    assert.equal(await changes.request(impostor, "pay@example.org", context), "queued", "the key is free: a link is mailed");
    clock.advance(1000);
    await assert.rejects(changes.confirm(await tokenMailedTo("pay@example.org")), (error: Error & { code?: string }) => {
      assert.match(error.code ?? "", /TAKEN|REFUSED/, error.message);
      return true;
    });
    const emails = (await database.db.selectFrom("users").select("email").orderBy("email").execute()).map((r) => r.email);
    assert.ok(!emails.includes("pay@example.org"), `stored beside ${hex(PAY_CYRILLIC)}: ${emails.map(hex).join(", ")}`);
  });
});

// =====================================================================================================================
// 2. Start-up configuration
// =====================================================================================================================

const GOOD_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 73 + 41) % 251)).toString("base64");
const startRoot = mkdtempSync(join(tmpdir(), "bulwark-second-look-"));
after(() => rmSync(startRoot, { recursive: true, force: true }));
let sites = 0;
const dataDir = (): string => join(startRoot, `site-${++sites}`, "data");


const REMOTE = "db.internal.example";
const PG_VARS = ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGDATABASE"] as const;

/**
 * Opens the app over `url` with `pgEnv` set as the deploy would set it (in the environment Bulwark reads, which is the
 * one node-postgres reads too), the connection to REMOTE handed to the path attacker. Returns what it saw, or null
 * when nothing was sent in the clear.
 */
async function openOverThePath(url: string, pgEnv: Partial<Record<(typeof PG_VARS)[number], string>>, secret: string): Promise<string | null> {
  const attacker = await pathAttacker();
  const restore = redirectConnections(REMOTE, attacker.port);
  const saved = Object.fromEntries(PG_VARS.map((k) => [k, process.env[k]]));
  for (const k of PG_VARS) delete process.env[k];
  Object.assign(process.env, pgEnv);
  try {
    const app = await openApp({
      env: { ...CHEAP_ARGON2, ...pgEnv, BULWARK_LOG_LEVEL: "silent", BULWARK_DATA_DIR: dataDir(), BULWARK_MASTER_KEY: GOOD_KEY, BULWARK_DATABASE_URL: url },
      mode: "init",
      logDestination: { write: () => {} },
    });
    await app.close();
  } catch (error) {
    assert.ok(!(error as Error).message.includes(secret), `the error echoes the password: ${(error as Error).message}`);
  } finally {
    restore();
    for (const k of PG_VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await attacker.close();
  }
  const { seen } = attacker;
  if (!seen.clearStartup && seen.password === null) return null;
  return `started in clear${seen.password === null ? "" : `, password sent: ${seen.password === secret ? "the secret" : JSON.stringify(seen.password)}`}`;
}

describe("second look: the database connection judged local or TLS while node-postgres goes to the network in clear", () => {
  const SECRET = "second-look-db-password-8d1e";

  it("attack: a network PostgreSQL host hidden behind an empty ?host=, a ?host= given twice, or a host-less URL with PGHOST is refused at start without an sslmode (ASVS 12.3.1) (was: judged local, and the password went out in clear)", async () => {
    // Today's fix (5b25c09) reads ?host= because node-postgres does, but reads it as URLSearchParams.get does, not as
    // node-postgres does: pg-connection-string copies every parameter in order (the LAST of a repeated one wins) and
    // ignores an empty ?host= (falling back to the URL's host), and ConnectionParameters takes PGHOST when the URL names
    // no host. databaseTLS reads the FIRST ?host=, takes "" for local, and never looks at PGHOST. Each URL below is
    // accepted without sslmode, and node-postgres connects to REMOTE in plain TCP. A template with an unset variable
    // (?host=${PGSOCKET}) or libpq-style settings (postgres:///bulwark with PGHOST/PGUSER/PGPASSWORD, as CloudNativePG
    // and many images provide) is enough. Secure: refused at start, as the plain remote URL is, until an sslmode is set.
    const cases: Array<[string, string, Partial<Record<(typeof PG_VARS)[number], string>>]> = [
      ["an empty ?host=", `postgres://bulwark:${SECRET}@${REMOTE}/bulwark?host=`, {}],
      ["?host= twice (localhost, then the remote)", `postgres://bulwark:${SECRET}@localhost/bulwark?host=localhost&host=${REMOTE}`, {}],
      ["no host in the URL, PGHOST names the remote", "postgres:///bulwark", { PGHOST: REMOTE, PGUSER: "bulwark", PGPASSWORD: SECRET }],
    ];
    const reached: string[] = [];
    for (const [what, url, pgEnv] of cases) {
      const outcome = await openOverThePath(url, pgEnv, SECRET);
      if (outcome !== null) reached.push(`${what}: ${outcome}`);
    }
    assert.deepEqual(reached, [], "judged local, and connected to the network host without TLS");
  });

  it("attack: an sslmode read one way by the check and another by node-postgres — given twice, ssl=0 beside PGSSLMODE, a PGSSLMODE it does not know — is refused at start (ASVS 1.5.3, 12.3.1) (was: judged TLS, connected in clear and sent the password)", async () => {
    // The same two readers disagree on TLS: URLSearchParams.get("sslmode") is the first, node-postgres keeps the last;
    // "?ssl=0" sets node-postgres' ssl to false, so PGSSLMODE is never read, while databaseTLS falls through to PGSSLMODE;
    // and databaseTLS calls any sslmode other than disable/allow/prefer "tls", while node-postgres turns a PGSSLMODE it
    // does not know ("verify-full " with the trailing blank of an env file, "REQUIRE") into no TLS at all. Secure: each
    // is refused at start (or connects only over TLS).
    const cases: Array<[string, string, Partial<Record<(typeof PG_VARS)[number], string>>]> = [
      ["sslmode=verify-full&sslmode=disable", `postgres://bulwark:${SECRET}@${REMOTE}/bulwark?sslmode=verify-full&sslmode=disable`, {}],
      ["?ssl=0 with PGSSLMODE=verify-full", `postgres://bulwark:${SECRET}@${REMOTE}/bulwark?ssl=0`, { PGSSLMODE: "verify-full" }],
      ["PGSSLMODE=\"verify-full \" (a trailing blank)", `postgres://bulwark:${SECRET}@${REMOTE}/bulwark`, { PGSSLMODE: "verify-full " }],
    ];
    const reached: string[] = [];
    for (const [what, url, pgEnv] of cases) {
      const outcome = await openOverThePath(url, pgEnv, SECRET);
      if (outcome !== null) reached.push(`${what}: ${outcome}`);
    }
    assert.deepEqual(reached, [], "judged TLS, and connected without it");
  });

  it("attack: `--database-url postgres://user@host/db?password=…` is refused like a userinfo password (CWE-214) (was: accepted, the password in /proc/PID/cmdline for every local account)", () => {
    // Today's fix refuses a password in the URL's userinfo on the command line (url.password). node-postgres also takes
    // the password from the query string (pg-connection-string: config.password = ?password= || userinfo), and so does
    // libpq: the same secret in another spelling passes. Shown first: node-postgres does use it.
    const SECRET_ARG = "second-look-argv-password-2b7c";
    const url = `postgres://bulwark@127.0.0.1:5432/bulwark?password=${SECRET_ARG}`;
    const ConnectionParameters = createRequire(import.meta.url)("pg/lib/connection-parameters.js") as new (c: { connectionString: string }) => { password: string };
    assert.equal(new ConnectionParameters({ connectionString: url }).password, SECRET_ARG, "node-postgres signs in with the query-string password");
    let accepted = false;
    try {
      loadConfig({ BULWARK_DATA_DIR: dataDir() }, { databaseURL: url });
      accepted = true;
    } catch (error) {
      assert.match((error as Error).message, /BULWARK_DATABASE_URL|pgpass/, "the refusal says where the password belongs");
      assert.ok(!(error as Error).message.includes(SECRET_ARG), "the refusal does not echo the password");
    }
    assert.equal(accepted, false, "--database-url with ?password= was accepted: the password is in the process's argv");
  });
});

describe("second look: a master key that is a phrase, not random bytes", () => {
  it("attack: BULWARK_MASTER_KEY that is a 32-character phrase or a counter is refused without echo (ASVS 11.5.1) (was: accepted)", async () => {
    // Today's rule refuses fewer than 16 distinct byte values, which catches 32 zero bytes and "changeme" x4 but no
    // longer phrase: the 32 hex digits of a tutorial, a sentence, the alphabet hold 16 to 32 distinct values. 32 random
    // bytes are all printable ASCII with a chance of (95/256)^32 ≈ 2^-46, and a constant step (0,1,2,…) never happens:
    // either is a made-up key, guessable by whoever reads the same tutorial or compose file, and every sealed secret
    // (TOTP seeds, SMTP and integration credentials) of a copied database opens under it. Secure: refused by name,
    // without echoing the key, before anything is created.
    const phrases: Array<[string, Buffer]> = [
      ['"0123456789abcdef" twice', Buffer.from("0123456789abcdef".repeat(2))],
      ['"my-super-secret-master-key-1234!"', Buffer.from("my-super-secret-master-key-1234!")],
      ["the bytes 0, 1, 2 … 31", Buffer.from(Array.from({ length: 32 }, (_, i) => i))],
    ];
    const accepted: string[] = [];
    for (const [what, bytes] of phrases) {
      assert.equal(bytes.length, 32, what);
      const text = bytes.toString("base64");
      try {
        const app = await openApp({ env: { ...CHEAP_ARGON2, BULWARK_LOG_LEVEL: "silent", BULWARK_DATA_DIR: dataDir(), BULWARK_MASTER_KEY: text }, mode: "init", logDestination: { write: () => {} } });
        accepted.push(what);
        await app.close();
      } catch (error) {
        assert.equal((error as { code?: string }).code, "BULWARK_ERR_MASTER_KEY_INVALID", `${what}: ${(error as Error).message}`);
        assert.ok(!(error as Error).message.includes(text), "the refusal does not echo the key");
      }
    }
    assert.deepEqual(accepted, [], "a made-up master key was accepted");
  });
});

// =====================================================================================================================
// 3. check downloads
// =====================================================================================================================

describe("second look: check downloads, a dangling link judged by its text", () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "bulwark-second-look-dl-")));
  after(() => rmSync(root, { recursive: true, force: true }));
  it("attack: under --ignore-missing, a dangling link whose target climbs back through a link out of the directory (\"out/../payload.iso\") is still reported, not ignored as absent (ASVS 16.5.3)", async () => {
    // danglingLink resolves a link's text lexically (path.resolve), so "out/../payload.iso" reads as release/payload.iso,
    // inside, while the kernel follows out → /elsewhere/a and then .. → /elsewhere/payload.iso, outside. The verdict's
    // id is then "missing" rather than "path-traversal", but the name is never counted as absent: any link on the way
    // makes it a high finding, and the check fails. Pinned: the fallback (`?? "inside"`) is what keeps this case loud.
    const base = join(root, "climb");
    const rel = join(base, "release");
    mkdirSync(join(base, "elsewhere", "a"), { recursive: true });
    mkdirSync(rel);
    writeFileSync(join(rel, "readme.txt"), "genuine readme\n");
    symlinkSync(join(base, "elsewhere", "a"), join(rel, "out"));
    symlinkSync("out/../payload.iso", join(rel, "app.iso"));
    const sums = join(base, "SHA256SUMS");
    writeFileSync(sums, `${sha256("genuine readme\n")}  readme.txt\n${sha256("genuine app\n")}  app.iso\n`);
    const r = await verifyDownloads({ sums, dir: rel, ignoreMissing: true });
    assert.equal(r.ok, 1);
    assert.equal(r.missingIgnored, 0, "the link was counted as an absent file");
    const serious = r.findings.filter((f) => atLeast(f.severity, "high")).flatMap((f) => (f.evidence["items"] as Array<Record<string, unknown>>).map((i) => i["name"]));
    assert.deepEqual(serious, ["app.iso"]);
  });
});
