// Attacks on the doors through which an email address or a username enters or changes: POST /api/v1/users, the
// user store `users create` calls, POST /auth/register, POST /auth/email/change, `users import` (CSV and JSONL,
// in process), and the login lookup (findByIdentifier). The attacker is an insider holding accounts.write, the author
// of an import file, a signed-in user moving their account, or an anonymous visitor signing up. Each test is an
// attack that must fail; a test named "FINDING:" asserts the secure behaviour and fails on today's code.
// Not repeated here (covered elsewhere): invisible default-ignorables and variation selectors at the API
// (signup-create-attacks), compatibility look-alikes at the store (accounts-admin-attacks, normalise.test), letter
// case and padding of a taken address at sign-up and email change (http-factors-links-attacks), Kelvin sign and
// case at import (import-hash-attacks). ASVS 5.0 ids in the names.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { importUsers, resolveMap, type ImportReport, type OnConflict } from "../src/accounts/import/index.ts";
import { authFixture, GOOD_PASSWORD, type AuthFixture } from "../src/http/auth/test-client.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

let fx: AuthFixture;
let token: string;

before(async () => {
  fx = await authFixture({ BULWARK_REGISTRATION: "open" });
  const admin = await fx.user("id-provisioner@example.org", { roles: ["admin"] });
  await ensureSecondFactor(fx.app, admin.id); // the MFA policy holds an administrator's token while it has no factor
  ({ token } = await fx.app.accounts.tokens.create(admin.id, { name: "provisioning", scopes: ["accounts.write", "accounts.read"] }));
});
after(async () => {
  await fx.close();
});

function createUser(body: Record<string, unknown>): Promise<LightMyRequestResponse> {
  return fx.server.inject({ method: "POST", url: "/api/v1/users", headers: { authorization: `Bearer ${token}` }, payload: body });
}

let importCount = 0;
/** `users import` in process, with the app's own dependencies (what the CLI passes). */
async function importFile(text: string, format: "csv" | "jsonl", onConflict: OnConflict = "fail"): Promise<ImportReport> {
  importCount++;
  return importUsers(
    { database: fx.app.db, users: fx.app.accounts.users, passwords: fx.app.accounts.passwords, audit: fx.app.audit, clock: fx.app.clock, jobs: fx.app.accounts.jobs, notices: null },
    {
      format, rules: { map: resolveMap({ preset: null, map: {} }), preset: null, source: "test", salted: null }, onConflict,
      batchSize: 100, dryRun: false, skipBad: true, actor: "cli:test", file: `identifiers-${importCount}.${format}`,
      open: async function* () {
        yield Buffer.from(text, "utf8");
      },
    },
  );
}

const hex = (s: string): string => [...s].map((c) => (c.codePointAt(0)! < 0x80 ? c : `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`)).join("");

async function emailChangeRows(userId: string): Promise<number> {
  const r = await fx.app.db.db.selectFrom("email_change_tokens").select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", userId).executeTakeFirstOrThrow();
  return Number(r.n);
}

describe("identifiers that differ only by letter case, through every door (ASVS 1.1.1)", () => {
  it("attack: an upper-case spelling whose lower case is not NFC ('J̌AN' beside 'ǰan', 'H̱AIM' beside 'ẖaim') or that ends in a capital sigma ('ΟΔΟΣ' beside 'οδοσ') is the same account, found at login (ASVS 1.1.1; was: a second account, and a login that missed the first)", async () => {
    // identifierKey (normalise.ts) is trim → NFC → toLowerCase. Lower-casing after NFC yields keys that are not NFC:
    // "J\u030C" has no precomposed capital, lower-cases to "j\u030C", whose NFC is U+01F0 ǰ — the key the lower-case
    // spelling gets. The two keys are canonically equivalent yet unequal, so the unique index lets both in. And
    // toLowerCase is not case folding: a final capital sigma becomes ς, so "ΟΔΟΣ" and "οδοσ" (the same letters in
    // another case) get different keys. Usernames and lookups are promised to be case-insensitive.
    // Each pair through one door (the first spelling always through the API): once the second exists, every door
    // rightly calls it taken, so a door is only tested on a pair no other door has let in.
    const pairs: Array<[string, string, "api" | "import"]> = [
      ["\u01F0an", "J\u030CAN", "api"], ["\u1E96aim", "H\u0331AIM", "import"],
      ["\u03BF\u03B4\u03BF\u03C3", "\u039F\u0394\u039F\u03A3", "api"], ["\u1E98ill", "W\u030AILL", "import"],
    ];
    const problems: string[] = [];
    for (const [i, [lower, upper, door]] of pairs.entries()) {
      const first = await createUser({ email: `case-first-${i}@example.org`, username: lower });
      assert.equal(first.statusCode, 201, first.body);
      const firstId = first.json().user.id as string;
      const found = await fx.app.accounts.users.findByIdentifier(upper);
      if (found?.id !== firstId) problems.push(`login lookup of ${hex(upper)} misses the account ${hex(lower)}`);
      if (door === "api") {
        const api = await createUser({ email: `case-api-${i}@example.org`, username: upper });
        if (api.statusCode === 201) problems.push(`API created ${hex(upper)} beside ${hex(lower)}`);
        else assert.equal(api.json().error.code, "BULWARK_ERR_USERNAME_TAKEN", api.body);
      } else {
        const report = await importFile(`email,username\ncase-import-${i}@example.org,${upper}\n`, "csv");
        if (report.created !== 0) problems.push(`import created ${hex(upper)} beside ${hex(lower)}`);
        else assert.match(report.bad[0]?.reason ?? "", /belongs to another account/);
      }
    }
    assert.deepEqual(problems, []);
  });
});

describe("look-alike identifiers the doors let in", () => {
  it("attack: a mixed-script look-alike ('аdmin' with a Cyrillic а, 'ѕam@example.org' with a Cyrillic ѕ) is refused by the API and an import (ASVS 1.1.1; was: stored as a second account beside the real one)", async () => {
    // normalise.ts refuses compatibility forms because "ｓａｍ" and "ſam" read as "sam" and would be a second account
    // that passes for the first (a role granted or a lock lifted "for admin" lands on the impostor). A Latin name
    // with one Cyrillic or Greek letter reads exactly the same and is NFKC-stable, so nothing refuses it.
    assert.equal((await createUser({ email: "sam@example.org", username: "admin" })).statusCode, 201);
    const accepted: string[] = [];
    for (const [i, input] of [{ email: "mix-1@example.org", username: "\u0430dmin" }, { email: "\u0455am@example.org" }, { email: "mix-3@example.org", username: "adm\u0456n" }].entries()) {
      const res = await createUser(input);
      if (res.statusCode === 201) accepted.push(`API ${hex(input.username ?? input.email)}`);
      else assert.match(res.json().error.code, /^BULWARK_ERR_(EMAIL|USERNAME)_INVALID$/, `${i}: ${res.body}`);
    }
    const report = await importFile(`{"email":"mix-4@example.org","username":"\u0430dm\u0456n"}\n{"email":"s\u0430m@example.org"}\n`, "jsonl");
    if (report.created > 0) accepted.push(`import created ${report.created}`);
    assert.deepEqual(accepted, [], "look-alikes of 'admin' / sam@example.org stored as accounts");
  });

  it("attack: 'dot@example.org.' (a trailing dot: the same mailbox in DNS) is refused by the API and an import (ASVS 1.1.1; was: a second account beside dot@example.org)", async () => {
    // validateEmail's pattern takes any non-space domain; identifierKey keeps the dot. The absolute domain name
    // names the same host, so one mailbox holds two accounts, and a list shows the second as the first's address.
    assert.equal((await createUser({ email: "dot@example.org" })).statusCode, 201);
    const report = await importFile("email\ndot@Example.org.\n", "csv");
    const api = await createUser({ email: "DOT@example.org." });
    assert.deepEqual([report.created, api.statusCode === 201 ? 1 : 0], [0, 0], `import created ${report.created}; API: ${api.body}`);
  });

  it("attack: a username that reads as an address cannot come in through an import either: '@', a full-width or small @ are bad rows, as the API refuses them", async () => {
    const report = await importFile("email,username\nat-1@example.org,sam@example.org\nat-2@example.org,sam\uFF20example.org\nat-3@example.org,sam\uFE6Bexample.org\n", "csv");
    assert.equal(report.created, 0);
    assert.deepEqual(report.bad.map((b) => b.line), [2, 3, 4]);
    assert.ok(report.bad.every((b) => /@/.test(b.reason)), JSON.stringify(report.bad));
    for (const email of ["at-1@example.org", "at-2@example.org", "at-3@example.org"]) assert.equal(await fx.app.accounts.users.findByIdentifier(email), null, email);
  });

  it("attack: the invisible look-alikes the API refuses (grapheme joiner, Hangul filler, variation selector, braille blank, bidi isolate) are bad rows of a CSV and a JSONL import too, never accounts (ASVS 1.1.1)", async () => {
    assert.equal((await createUser({ email: "alice@example.org", username: "alice" })).statusCode, 201);
    const emails = ["alice\u034f@example.org", "alice\u3164@example.org", "alice\ufe0f@example.org", "alice\u2800@example.org", "\u2066alice@example.org"];
    const usernames = ["alice\u034f", "alice\u115f", "ali\ufe00ce", "alice\u2800", "alice\u2069"];
    const csv = "email,username\n" + emails.map((e) => `${e},\n`).join("") + usernames.map((u, i) => `inv-${i}@example.org,${u}\n`).join("");
    const c = await importFile(csv, "csv");
    assert.equal(c.created, 0, JSON.stringify(c.bad));
    assert.equal(c.bad.length, emails.length + usernames.length);
    const jsonl = usernames.map((u, i) => JSON.stringify({ email: `inv-j${i}@example.org`, username: u })).join("\n") + "\n";
    const j = await importFile(jsonl, "jsonl");
    assert.equal(j.created, 0, JSON.stringify(j.bad));
    assert.equal(j.bad.length, usernames.length);
  });

  it("attack: an import --on-conflict update cannot give an existing account another's username in another case or decomposed form (ASVS 1.1.1)", async () => {
    assert.equal((await createUser({ email: "owner-jose@example.org", username: "Jos\u00e9" })).statusCode, 201);
    assert.equal((await createUser({ email: "thief-jose@example.org", username: "thief" })).statusCode, 201);
    const r = await importFile("email,username\nthief-jose@example.org,JOSE\u0301\n", "csv", "update");
    assert.equal(r.updated, 0);
    assert.match(r.bad[0]?.reason ?? "", /belongs to another account/);
    assert.equal((await fx.app.accounts.users.findByIdentifier("jos\u00e9"))?.email, "owner-jose@example.org");
    assert.equal((await fx.app.accounts.users.findByIdentifier("thief"))?.email, "thief-jose@example.org");
  });
});

describe("the email-change and sign-up doors", () => {
  async function signedIn(email: string): Promise<{ id: string; b: ReturnType<AuthFixture["browser"]> }> {
    const u = await fx.user(email, { password: GOOD_PASSWORD });
    const b = fx.browser();
    assert.equal((await b.login(email, GOOD_PASSWORD)).statusCode, 200);
    return { id: u.id, b };
  }

  it("attack: POST /auth/email/change to a look-alike of another account's address (grapheme joiner, Hangul filler, full-width letter, variation selector, a small ﹫ for the @) is refused before any link exists (ASVS 1.1.1)", async () => {
    await fx.user("bob@example.org");
    const mover = await signedIn("mover@example.org");
    for (const newEmail of ["bob\u034f@example.org", "bob\u3164@example.org", "\uff42ob@example.org", "bob\ufe0f@example.org", "bob\ufe6bexample.org"]) {
      const r = await mover.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail } });
      assert.equal(r.statusCode, 400, `${hex(newEmail)}: ${r.body}`);
      assert.equal(r.json().error.code, "BULWARK_ERR_EMAIL_INVALID", hex(newEmail));
    }
    assert.equal(await emailChangeRows(mover.id), 0, "a link row exists for a look-alike");
  });

  it("attack: sign-up for an address the API accepted but the outbox cannot mail (accents in the local part) answers exactly as for a free one, so it tells nobody the account exists (ASVS 6.3.8)", async () => {
    assert.equal((await createUser({ email: "jos\u00e9@example.org" })).statusCode, 201);
    const taken = await fx.browser().request("POST", "/auth/register", { body: { email: "JOS\u00c9@example.org" } });
    const free = await fx.browser().request("POST", "/auth/register", { body: { email: "ren\u00e9e@example.org" } });
    assert.equal(taken.statusCode, free.statusCode);
    assert.equal(taken.json().error?.code, free.json().error?.code);
    assert.equal(await fx.app.accounts.users.findByIdentifier("ren\u00e9e@example.org"), null, "sign-up stored an address it cannot mail");
  });
});
