// Red team, round "new code twenty-six": today's commits (1ca0407..HEAD) and their seams.
// Attackers: (1) whoever supplies an import file an operator runs with `users import --on-conflict update
// --replace-passwords` (an upstream system's export, tampered or simply sloppy): they want weaker hashes stored;
// (2) whoever reads the server's request log (an aggregator, a support engineer) when clients or mail gateways mangle
// a reset link's `#`; (3) for the operator-facing checks, no attacker: an operator of a legitimate site whose working
// BULWARK_PUBLIC_URL must not be refused by the new refusals (a regression is an outage).
// Tried: --replace-passwords with a salted crypt(3) hash replaced by the same scheme and rounds with an EMPTY salt (the
// census counts that form unsalted); the request log with a double-encoded fragment (`%2523`), a token after `;`, an
// encoded `=` after `%23`, and whether a real route's id survives the redaction (evidence); BULWARK_PUBLIC_URL with
// legitimate IDNs (Japanese, Greek, Arabic, German, Devanagari), ports, IPv6 literals, upper case, and IDNs whose
// labels hold a ZWNJ/ZWJ where IDNA2008 allows them (CONTEXTJ: Persian, Devanagari).
// Also probed and not kept (held): saltKey against ~10k mutations of every stored test vector that the census's own
// describe/isWrappable/belowMinimumCost accept (none made saltKey throw, so one row cannot abort the census); the
// CSRF move (same guard order as before for bearer, dead cookie, pre-login; pinned in test/http-edges-red-team.test.ts).
// Found (fixed since: src/accounts/import/password-update.ts noWeaker refuses a replacement without a salt, by the
// census's saltKey, for a stored hash with one, and a wrapped hash's inner settings likewise; src/app/http-config.ts
// parseOrigin takes a joiner inside a host label when the URL parser keeps it, and names any other joiner as such):
// - --replace-passwords replaces a salted md5-crypt / sha256-crypt / sha512-crypt hash with the same scheme and rounds
//   written with an empty salt (`$1$$…`, `$6$$…`), which `users census` itself counts as unsalted (one lookup table for
//   all of them): a downgrade the docs promise never happens (password-migration.md: "never a silent downgrade").
// - BULWARK_PUBLIC_URL refuses a legitimate IDN whose label holds U+200C/U+200D where IDNA2008 (RFC 5892 CONTEXTJ)
//   allows it, with a message saying the URL parser "drops or rewrites" the character — it does neither: it keeps it
//   (another, valid host), and the same host written as its A-label is accepted.
// Held: --replace-passwords still refuses what its tests pin; the request log hides the token of a double-encoded
// fragment, a `;`-parameter and an encoded `=`, and keeps a route's account id; IDNs, ports, IPv6 literals and upper
// case that worked before still work.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadHTTPAuthConfig } from "../src/app/http-config.ts";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { planPassword } from "../src/accounts/import/password-update.ts";
import type { ImportRow } from "../src/accounts/import/mapping.ts";
import { createPasswordContext } from "../src/accounts/passwords/index.ts";
import { ORIGIN } from "../src/http/auth/test-client.ts";
import { buildServer } from "../src/http/server.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { RESET_LINK } from "./helpers/auth-flows.ts";

/** Loads BULWARK_PUBLIC_URL as the server does at start; the origin it accepted, or the error it refused with. */
function publicURLOf(value: string): { origin: string } | { error: string } {
  try {
    return { origin: loadHTTPAuthConfig({ BULWARK_PUBLIC_URL: value }, 3000).publicURL };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

describe("--replace-passwords against the census's own idea of salted", () => {
  const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
  const row = (hash: string): ImportRow => ({ line: 4, user: { passwordHash: hash, passwordScheme: null } }) as unknown as ImportRow;

  it("attack: an import file replaces a user's salted crypt(3) hash ($1$salt$…, $6$salt$…, $5$rounds=5000$salt$…) with the same scheme and rounds written with an empty salt — refused as a downgrade, since `users census` counts the empty-salt form unsalted (ASVS 11.4.2) (was: replaced as 'the same scheme at no lower parameters')", () => {
    const cases: Array<[string, string, string]> = [
      ["md5-crypt", `$1$$${"x".repeat(22)}`, "$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/"],
      ["sha512-crypt", `$6$$${"x".repeat(86)}`, `$6$saltsalt$${"y".repeat(86)}`],
      ["sha256-crypt", `$5$rounds=5000$$${"x".repeat(43)}`, `$5$rounds=5000$saltsalt$${"y".repeat(43)}`],
    ];
    const replaced: string[] = [];
    for (const [scheme, unsalted, salted] of cases) {
      // Both forms are accepted hashes of the same scheme and cost (the census test stores them).
      assert.equal(passwords.describe(unsalted).scheme, scheme);
      const plan = planPassword(row(unsalted), salted, { replacePasswords: true }, passwords);
      if (plan.kind === "replace") replaced.push(`${scheme}: ${salted.slice(0, 14)}… → ${unsalted.slice(0, 14)}…`);
    }
    assert.deepEqual(replaced, [],
      `--replace-passwords replaced a per-user salted hash with an unsalted one of the same scheme (${replaced.join("; ")}): ` +
      "src/accounts/import/password-update.ts noWeakerDescribed compares only the described parameters, which carry no salt (" +
      "md5-crypt describes as \"\", sha-crypt as rounds=N), so the empty salt the census counts as unsalted (EMPTY_CRYPT_SALT) passes as " +
      "'the same scheme at no lower parameters'; docs/password-migration.md: 'A replacement weaker than the stored hash is a bad row, never a silent downgrade'");
  });

  it("attack: the same file offers a salted crypt(3) hash for a stored empty-salt one, and a bare digest for a bare digest — both still replace (the fix must not refuse the upgrade or the documented same-digest case) (ASVS 11.4.2)", () => {
    assert.equal(planPassword(row("$1$sO8MPH5T$1UaSqeVE6381x6LRWT5vL/"), `$1$$${"x".repeat(22)}`, { replacePasswords: true }, passwords).kind, "replace");
    assert.equal(planPassword(row("5f4dcc3b5aa765d61d8327deb882cf99"), "e10adc3949ba59abbe56e057f20f883e", { replacePasswords: true }, passwords).kind, "replace");
  });
});

describe("BULWARK_PUBLIC_URL's new refusals against legitimate sites", () => {
  it("attack: an operator restarts with a public URL that worked before today — IDNs in several scripts with a port, an IPv6 literal with a port, upper case with a port and a trailing slash — accepted, as the same origin (ASVS 13.2.4)", () => {
    const cases: Array<[string, string]> = [
      ["https://例え.テスト", "https://xn--r8jz45g.xn--zckzah"],
      ["https://münchen.de:8443", "https://xn--mnchen-3ya.de:8443"],
      ["https://παράδειγμα.δοκιμή", "https://xn--hxajbheg2az3al.xn--jxalpdlp"],
      ["https://مثال.إختبار", "https://xn--mgbh0fb.xn--kgbechtv"],
      ["https://नमस्ते.भारत", "https://xn--h2bhs4b8d8a.xn--h2brj9c"],
      ["https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443"],
      ["https://ACCOUNTS.EXAMPLE.ORG:8443/", "https://accounts.example.org:8443"],
      ["https://accounts.example.org:443", "https://accounts.example.org"],
    ];
    const wrong = cases.map(([value, want]) => [value, want, publicURLOf(value)] as const)
      .filter(([, want, got]) => !("origin" in got) || got.origin !== want)
      .map(([value, , got]) => `${value}: ${JSON.stringify(got).slice(0, 200)}`);
    assert.deepEqual(wrong, [], "a public URL that worked before is refused or read as another origin");
  });

  it("attack: an operator whose site is a legitimate IDN holding a ZWNJ or ZWJ where IDNA2008 allows it (Persian `می‌خواهم`, Devanagari `क्‍ष` after a virama) gives it as written — accepted, as the same host given as its A-label is (ASVS 13.2.4) (was: refused at start-up, saying the URL parser drops or rewrites the joiner)", () => {
    const cases: Array<[string, string]> = [
      ["https://\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645.example", "https://xn--mgbn2ecje63gr19l.example"],
      ["https://\u0915\u094D\u200D\u0937.example", "https://xn--11b2ezcw70k.example"],
    ];
    const refused: string[] = [];
    for (const [value, aLabel] of cases) {
      // The URL parser keeps the joiner (it is another, valid host, not the one without it) ...
      assert.equal(new URL(value).origin, aLabel, "the WHATWG parser neither drops nor rewrites a joiner in a CONTEXTJ position");
      assert.notEqual(new URL(value.replace(/[\u200C\u200D]/u, "")).origin, aLabel);
      // ... and Bulwark accepts that very host written as its A-label.
      assert.deepEqual(publicURLOf(aLabel), { origin: aLabel });
      const got = publicURLOf(value);
      if (!("origin" in got)) refused.push(got.error.slice(0, 170));
    }
    assert.deepEqual(refused, [],
      "src/app/http-config.ts parseOrigin refuses every character identifierHidesSomething flags, U+200C/U+200D included, saying the URL parser " +
      "'drops or rewrites' it; for a joiner IDNA2008 allows (RFC 5892 CONTEXTJ) the parser keeps it, and the same host as an A-label is accepted, " +
      "so an operator of such a site is refused with a false reason");
  });
});

describe("the request log cut at # / %23 and its token-shaped segments", () => {
  let root: string;
  let app: OpenedApp;
  const lines: string[] = [];
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "bulwark-rt-new-code-26-"));
    app = await openApp({
      env: { BULWARK_DATA_DIR: join(root, "data"), BULWARK_PUBLIC_URL: ORIGIN, BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_MAX_CLOCK_SKEW_SECONDS: "0" },
      mode: "init", clock: new ManualClock(Date.UTC(2026, 10, 3, 9)),
      logDestination: { write: (line: string) => void lines.push(...line.split("\n").filter((l) => l !== "")) },
    });
  });
  after(async () => {
    await app.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("attack: a reset link mangled as a double-encoded fragment (`%2523token=`), a `;` path parameter, or `%23token%3D` is opened — the secret is in no log line; a real route's account id is still logged (no lost evidence) (ASVS 16.2.5, 14.2.1)", async () => {
    const server = await buildServer(app);
    try {
      const user = await app.accounts.users.create({ email: "rt-nc26-log@example.org", passwordHash: await app.accounts.passwords.hash("amber lanterns over quiet harbours"), passwordScheme: "argon2id" });
      const issued = await app.db.transaction((trx) => app.accounts.resetMailer.issueInTransaction(trx, user.id, { email: user.email, publicURL: ORIGIN, serviceName: app.config.serviceName, reason: "reset" }));
      const token = RESET_LINK.exec((await app.accounts.outbox.get(issued.messageId)).text)![1]!;
      const secret = token.split(".")[1]!;
      const leaks: string[] = [];
      for (const url of [`/reset-password%2523token=${token}`, `/reset-password;token=${token}`, `/reset-password%23token%3D${token}`, `/reset-password/${token}`]) {
        const from = lines.length;
        const res = await server.inject({ method: "GET", url });
        assert.ok(lines.length > from, `${url.slice(0, 30)}… was logged (${res.statusCode})`);
        if (lines.slice(from).some((l) => l.includes(secret))) leaks.push(`${url.slice(0, 30)}… (${res.statusCode})`);
      }
      assert.deepEqual(leaks, [], "the live reset secret is in the request log");
      // Evidence: an account id in a route is no token and stays in the log line.
      const from = lines.length;
      await server.inject({ method: "GET", url: `/api/v1/users/${user.id}` });
      assert.ok(lines.slice(from).some((l) => l.includes(`/api/v1/users/${user.id}`)), `the route's account id is kept: ${lines.slice(from).map((l) => l.slice(0, 160)).join(" | ")}`);
    } finally {
      await server.close();
    }
  });
});
