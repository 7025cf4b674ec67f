// Red team, round "link addresses": the links in our mail and where they point (ASVS 6.4.3, 13.2.4, 16.2.5).
// Attackers: (1) anyone who can shape a request — Host, X-Forwarded-Host, X-Forwarded-Proto, Forwarded, a `next` or
// `destination` parameter — even through a proxy BULWARK_TRUST_PROXY believes; (2) whoever holds a domain an operator's
// mistyped BULWARK_PUBLIC_URL ends up naming (a line break or a tab pasted into the value, a full stop from another
// script, a letter from another script); (3) whoever reads the server's request log (an aggregator, a support engineer)
// when a mail gateway percent-encodes the `#` of a reset link.
// Tried: poisoned proxy headers with the proxy trusted, on the reset form, sign-up and an email change; `next` and
// `destination` on the link pages and the reset completion; public URLs with userinfo, query, fragment, path, `..`,
// `//`, a backslash, an upper-case scheme; control and invisible characters, a U+3002 full stop, a trailing dot, an
// empty label, port 0, a mixed-script host; a reset link whose `#` arrived as `%23`; a service name holding a URL.
// Held (kept as attacks): trusted proxy headers (Host, X-Forwarded-Host/-Proto, Forwarded) never reach a mailed link;
// the link pages and the reset completion redirect nowhere, whatever `next` says; a public URL with credentials, a
// query, a fragment or a path is refused naming BULWARK_PUBLIC_URL.
// Found (fixed since: src/app/http-config.ts parseOrigin refuses a control, space, formatting or invisible character in
// the value, naming it, a host the URL parser reads otherwise than written (U+3002, %2e), an empty label, port 0 and a
// label mixing scripts (the account names' rule, mixedScriptProblem); src/app/open-app.ts urlForLog cuts the path at
// `?`, `#` or `%23` and redacts anything shaped like a link or API token left in it; src/app/config.ts refuses a
// BULWARK_SERVICE_NAME holding "://"):
// - a BULWARK_PUBLIC_URL holding a line break, a tab, a zero-width space or an ideographic full stop was accepted and
//   silently turned into another host (`https://bulwark.example.org<LF>.evil.test` mailed links to
//   https://bulwark.example.org.evil.test, a name under evil.test): the URL parser drops or maps those characters;
// - a host with a trailing dot or an empty label, or port 0, was accepted: links pointed at a name that is not the site's;
// - a mixed-script host (a Cyrillic "а" in "accounts") was accepted and every link mailed to its punycode homograph;
// - a reset link whose `#` a mail gateway encoded as `%23` wrote the live token whole into the request log at info;
// - a BULWARK_SERVICE_NAME holding a URL ("Example (https://www.example.org)") was accepted at start, and then every
//   reset and sign-up link mail was marked dead at send as "a link to another origin".
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { loadHTTPAuthConfig } from "../src/app/http-config.ts";
import { authFixture, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { buildServer } from "../src/http/server.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { authFlows, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";

/** Loads BULWARK_PUBLIC_URL as the server does at start; the origin it accepted, or the error it refused with. */
function publicURLOf(value: string): { origin: string } | { error: Error & { code?: string } } {
  try {
    return { origin: loadHTTPAuthConfig({ BULWARK_PUBLIC_URL: value }, 3000).publicURL };
  } catch (error) {
    return { error: error as Error & { code?: string } };
  }
}

/** The http(s) origins a mail body's links point at. */
function linkOrigins(body: string): string[] {
  return [...body.matchAll(/https?:\/\/[^\s/?#"'<>]*/gi)].map((m) => m[0]);
}

describe("BULWARK_PUBLIC_URL: a value that is not plainly the site's origin is refused at start, naming what is wrong", () => {
  it("attack: an operator gives a public URL with credentials (`https://evil.test@site`), a query, a fragment, a path, `//`, a `..` that does not collapse or a backslash — refused naming BULWARK_PUBLIC_URL; an upper-case scheme and host are only lowered (ASVS 13.2.4)", () => {
    for (const value of [
      "https://evil.test@accounts.example.org", "https://accounts.example.org:secret@evil.test", "https://accounts.example.org/?next=https://evil.test",
      "https://accounts.example.org/#token=", "https://accounts.example.org/reset", "https://accounts.example.org//", "https://accounts.example.org/a/../b",
      "https://evil.test\\@accounts.example.org", "javascript://accounts.example.org", "accounts.example.org",
    ]) {
      const got = publicURLOf(value);
      assert.ok("error" in got, `BULWARK_PUBLIC_URL=${JSON.stringify(value)} was accepted as ${"origin" in got ? got.origin : ""}`);
      assert.equal(got.error.code, "BULWARK_ERR_CONFIG", value);
      assert.match(got.error.message, /BULWARK_PUBLIC_URL/, value);
    }
    assert.deepEqual(publicURLOf("HTTPS://Accounts.Example.ORG"), { origin: "https://accounts.example.org" });
  });

  it("attack: an operator's BULWARK_PUBLIC_URL holding a line break, a tab, a zero-width space or an ideographic full stop (U+3002) — refused at start naming BULWARK_PUBLIC_URL and the character (ASVS 13.2.4, 6.4.3) (was: silently rewritten into another host, `https://bulwark.example.org<LF>.evil.test` into https://bulwark.example.org.evil.test, a name evil.test's holder serves)", () => {
    const cases: Array<[string, string]> = [
      ["https://bulwark.example.org\n.evil.test", "a line break before .evil.test"],
      ["https://bulwark.example.org\r\n.evil.test", "CR LF before .evil.test"],
      ["https://bulwark.example.org\u3002evil.test", "U+3002 IDEOGRAPHIC FULL STOP before evil.test"],
      ["https://bul\twark.example.org", "a tab inside the host"],
      ["https://bulwark\u200b.example.org", "a zero-width space inside the host"],
    ];
    const accepted = cases.flatMap(([value, what]) => {
      const got = publicURLOf(value);
      return "origin" in got ? [`${what}: accepted as ${got.origin}`] : [];
    });
    assert.deepEqual(accepted, [], `BULWARK_PUBLIC_URL values whose text is not the origin they become were accepted without a word (src/app/http-config.ts parseOrigin trusts new URL(), which drops tabs and line breaks anywhere and maps U+3002 to "." and U+200B to nothing): ${accepted.join("; ")}`);
  });

  it("attack: an operator's BULWARK_PUBLIC_URL with a trailing dot (`https://bulwark.example.org.`), an empty label (`bulwark..example.org`) or port 0 — refused at start naming BULWARK_PUBLIC_URL (ASVS 13.2.4) (was: accepted, every mailed link on a name that is not the site's: another origin for cookies and the passkey RP ID, or no port at all)", () => {
    const accepted = ["https://bulwark.example.org.", "https://bulwark..example.org", "https://bulwark.example.org..", "https://bulwark.example.org:0"].flatMap((value) => {
      const got = publicURLOf(value);
      return "origin" in got ? [`${value} → ${got.origin}`] : [];
    });
    assert.deepEqual(accepted, [], `accepted as the origin of every mailed link, the CSRF check and the WebAuthn RP ID (src/app/http-config.ts parseOrigin checks scheme, path and credentials, never the host's labels or the port): ${accepted.join("; ")}`);
  });

  it("attack: an operator's BULWARK_PUBLIC_URL whose host mixes scripts in one label (`https://аccounts.example.org`, a Cyrillic а) — refused at start naming BULWARK_PUBLIC_URL, as look-alike account names are (ASVS 13.2.4, 6.4.3) (was: accepted and punycoded, every reset link mailed to https://xn--ccounts-1fg.example.org, a homograph someone else can register)", () => {
    const got = publicURLOf("https://\u0430ccounts.example.org");
    assert.ok("error" in got, `BULWARK_PUBLIC_URL=https://\u0430ccounts.example.org (Cyrillic U+0430 then Latin) was accepted as ${"origin" in got ? got.origin : ""}: src/app/http-config.ts parseOrigin never looks at the scripts of the host it punycodes`);
    assert.match(got.error.message, /BULWARK_PUBLIC_URL/);
  });
});

describe("requests cannot move a mailed link, even through a trusted proxy", () => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  before(async () => {
    // The injected requests come from 127.0.0.1: with it trusted, Fastify believes X-Forwarded-Host and -Proto.
    fx = await authFixture({ BULWARK_TRUST_PROXY: "127.0.0.1", BULWARK_REGISTRATION: "open" });
  });
  after(() => fx.close());

  it("attack: with BULWARK_TRUST_PROXY naming the proxy, a client sends X-Forwarded-Host / X-Forwarded-Proto / Forwarded naming evil.test over http on a reset request, a sign-up and an email change — every mailed link still points at BULWARK_PUBLIC_URL over https (ASVS 6.4.3)", async () => {
    const evil = { "x-forwarded-host": "evil.test", "x-forwarded-proto": "http", forwarded: "for=198.51.100.7;host=evil.test;proto=http", "x-forwarded-for": "198.51.100.7" };
    const owner = await flows.signedIn("rt-links-proxy@example.org");
    const reset = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: owner.email }, bare: true, headers: { ...evil, host: "evil.test" } });
    assert.equal(reset.statusCode, 202, reset.body);
    const signUp = await fx.browser().request("POST", "/auth/register", { body: { email: "rt-links-proxy-new@example.org" }, bare: true, headers: { ...evil, host: "evil.test" } });
    assert.equal(signUp.statusCode, 202, signUp.body);
    const change = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "rt-links-proxy-moved@example.org" }, headers: evil });
    assert.equal(change.statusCode, 202, change.body);
    await fx.deliver();
    const mails = [fx.mailTo(owner.email), fx.mailTo("rt-links-proxy-new@example.org"), fx.mailTo("rt-links-proxy-moved@example.org")];
    assert.ok(mails[0]!.some((m) => RESET_LINK.test(m.body)) && mails[1]!.some((m) => RESET_LINK.test(m.body)) && mails[2]!.some((m) => EMAIL_LINK.test(m.body)), "each got its link");
    for (const m of mails.flat()) {
      assert.deepEqual(linkOrigins(m.body).filter((o) => o !== ORIGIN), [], `${m.subject}: a link not on ${ORIGIN}`);
    }
  });

  it("attack: `next` / `destination` on the link pages and on the reset completion a link page posts — no redirect anywhere, the answer names no other site (ASVS 6.4.3)", async () => {
    for (const url of ["/reset-password?next=https://evil.test/", "/confirm-email?destination=//evil.test", "/reset-password?next=/%09/evil.test"]) {
      const page = await fx.server.inject({ method: "GET", url, headers: { host: "bulwark.test" } });
      assert.equal(page.statusCode, 200, url);
      assert.equal(page.headers.location, undefined, url);
      assert.doesNotMatch(page.body, /evil\.test/, url);
    }
    const u = await fx.user("rt-links-next@example.org");
    const asked = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: u.email } });
    assert.equal(asked.statusCode, 202);
    await fx.deliver();
    const token = RESET_LINK.exec(fx.mailTo(u.email).at(-1)!.body)![1]!;
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "amber lanterns over quiet harbours", next: "https://evil.test/" } });
    assert.equal(done.headers.location, undefined, done.body);
    assert.doesNotMatch(done.body, /evil\.test/);
    assert.equal(done.statusCode, 200, `the reset with a stray next field: ${done.body}`);
  });
});

describe("tokens never travel where logs keep them", () => {
  let root: string;
  let app: OpenedApp;
  const lines: string[] = [];
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "bulwark-rt-link-addresses-"));
    // The default log level (info): what every server writes unless told otherwise.
    app = await openApp({
      env: { BULWARK_DATA_DIR: join(root, "data"), BULWARK_PUBLIC_URL: ORIGIN, BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_MAX_CLOCK_SKEW_SECONDS: "0" },
      mode: "init", clock: new ManualClock(Date.UTC(2026, 10, 2, 9)),
      logDestination: { write: (line: string) => void lines.push(...line.split("\n").filter((l) => l !== "")) },
    });
  });
  after(async () => {
    await app.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("attack: a reset link whose `#` a mail gateway or client percent-encoded (`/reset-password%23token=prt_…`, a known mangling of fragment links) is opened — the live token is not written to the request log, as a token moved into the query is not (ASVS 16.2.5, 14.2.1) (was: the request line at info held the token whole)", async () => {
    const server = await buildServer(app);
    try {
      const user = await app.accounts.users.create({ email: "rt-links-log@example.org", passwordHash: await app.accounts.passwords.hash("amber lanterns over quiet harbours"), passwordScheme: "argon2id" });
      const issued = await app.db.transaction((trx) => app.accounts.resetMailer.issueInTransaction(trx, user.id, { email: user.email, publicURL: ORIGIN, serviceName: app.config.serviceName, reason: "reset" }));
      const body = (await app.accounts.outbox.get(issued.messageId)).text;
      const token = RESET_LINK.exec(body)![1]!;
      const secret = token.split(".")[1]!;
      // Control: the same token moved into the query is kept out of the log (urlForLog), so the log is being written.
      await server.inject({ method: "GET", url: `/reset-password?token=${token}` });
      const logged = lines.length;
      assert.ok(lines.some((l) => l.includes("/reset-password?token=…")), "the query form is logged, its value redacted");
      const mangled = await server.inject({ method: "GET", url: `/reset-password%23token=${token}` });
      const leaked = lines.slice(logged).filter((l) => l.includes(secret));
      assert.deepEqual(leaked.map((l) => l.slice(0, 160)), [],
        `GET /reset-password%23token=… answered ${mangled.statusCode}, and ${leaked.length} log line(s) at the default level hold the live reset token whole (src/app/open-app.ts urlForLog redacts only what follows "?"; an encoded "#" keeps the token in the path)`);
    } finally {
      await server.close();
    }
  });
});

describe("what else a link mail carries", () => {
  it("attack: BULWARK_SERVICE_NAME holding a URL (`Example (https://www.example.org)`) — refused at start naming BULWARK_SERVICE_NAME (ASVS 13.2.4) (was: accepted, then every reset link mail marked dead at send as a link to an origin other than BULWARK_PUBLIC_URL)", async () => {
    let fx: AuthFixture;
    try {
      fx = await authFixture({ BULWARK_SERVICE_NAME: "Example (https://www.example.org)" });
    } catch (error) {
      assert.match((error as Error).message, /BULWARK_SERVICE_NAME/);
      return;
    }
    try {
      const u = await fx.user("rt-links-name@example.org");
      const asked = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: u.email } });
      assert.equal(asked.statusCode, 202, asked.body);
      const report = await fx.deliver();
      const dead = await fx.app.db.db.selectFrom("outbox_messages").select(["kind", "last_error"]).where("status", "=", "dead").execute();
      assert.ok(fx.mailTo(u.email).some((m) => RESET_LINK.test(m.body)),
        `the server started with this service name, then mailed no reset link (${JSON.stringify(report)}): dead with "${(dead[0]?.last_error ?? "").slice(0, 140)}…" — src/notify/outbox.ts withLinkOrigin takes the service name's URL in the mail's first line for a stale link, and src/app/config.ts never refused the name`);
    } finally {
      await fx.close();
    }
  });
});
