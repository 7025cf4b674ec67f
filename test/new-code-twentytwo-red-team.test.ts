// Red team, round "twenty-two, new code": this session's commits, attacked where they promise most. Attackers: anyone
// who can put a link or a page in front of a victim (a phishing mail or site whose target really is Bulwark's origin),
// with the victim signed in or not; a client talking raw HTTP/1.1 to the server (or through a proxy that forwards what
// it gets); a botnet guessing one account's password slowly, through every spelling that names it.
// Tried:
// - 1277ccf (fixed words, never the requested path): the same sentence put where a link or a cross-site form still
//   carries it — the query string's field names and values of every GET /api/v1 and /auth route, as a signed-in user
//   and as an administrator following the link; a cross-site form auto-submitted to the JSON routes that take forms,
//   with a field named as the sentence (given twice, or with a value that is not UTF-8). Also the notice's "an address at
//   <domain>" with a www.-shaped or sentence-shaped domain, and the JSON escaping against U+200B–U+200F, U+FEFF and tag
//   characters (read, not kept: a domain is what the owner must learn, and a plain address shows it too; those
//   characters are no terminal controls and the escaping promises none of them).
// - 66c2fda (Content-Encoding / Transfer-Encoding / two Content-Type lines refused in the first hook): two
//   Content-Encoding lines (identity, then gzip), an obsolete folded continuation, the coding after 2,000 header lines
//   (Node keeps at most 2,000 and drops the rest without a word: the line would vanish before the hook), a refused
//   request on a keep-alive connection whose body is itself a request, with another pipelined after it; a Content-Type
//   trailer (Node keeps trailers apart, as RFC 9110 §6.5.1 asks; not kept). Node refuses heads over 16 KiB at about
//   1,000 lines, so the 2,000-line drop cannot be reached; every shape was refused, and no byte after a refusal read.
// - 633b735 (logins.guessed-account): the guesses split over the email in two spellings and the username, from one
//   address each, the guess that worked typed as the username; failures stored with data that is not JSON, a
//   100,000-character ip, an ip that is a number, an "ip" forged inside a User-Agent, on both dialects. Read, not kept:
//   on PostgreSQL ipOf (a regex over the text) reads an "ip" out of a cut-off object that SQLite's json_valid refuses —
//   its comment says NULL for a row that is not Bulwark's JSON; only a writer of the database makes such a row, and it
//   could write any address as valid JSON anyway. Spreading under --guess-min per window, or over two windows, and a
//   thief with the owner's known-device cookie are documented limits (docs/checks.md).
// - d7f2a48 (one-row deletes retried on PostgreSQL), 12f9748 (Cookie parser), 153e8ef (delivery audit): read, not kept.
//   A refund deletes "one event of its key and millisecond", so after an administrator's clear it can take back a slot
//   taken afresh in that same millisecond (one slot, only when the take, the clear and the new take share a
//   millisecond); no holder an outsider controls keeps flood rows locked, so the 40 tries cannot be driven; a
//   success's CLEAR_ACCOUNT_KNOWN waiting on a release's row while the release spins on its own known row needs the
//   owner's own known browser twice in one millisecond. The Cookie parser's 200-pair stop is above what browsers send
//   (180 cookies per site); near-names other than NBSP do not reach it as names (llhttp refuses controls in a header).
//   Delivery events: every notice kind is security.*, every key is built from ids, and a failing append re-sends at most
//   maxAttempts times (test/notice-delivery-audit.test.ts pins the rest).
// Found (fixed since: an undeclared field is named by its spelling to an API token only, a browser session is told
// the fields the route accepts, apiErrors.unknownFields; the form parser names only fields the route declares):
// - the /api/v1 strict-fields refusal (BULWARK_ERR_API_UNKNOWN_FIELD) names the undeclared query-string fields, so a
//   link to GET /api/v1/tokens?<sentence>=1 has the genuine origin say up to five 40-character pieces of the
//   attacker's sentence to any signed-in user who follows it (and /users, /roles, /audit/events, /contain/jobs to an
//   administrator) — what 1277ccf removed from the 404 answer, by the query string instead of the path;
// - the form parser (BULWARK_ERR_FORM) names the field it refuses (given twice, or not UTF-8) before the CSRF wall runs,
//   so a page on any site that auto-submits a form to /auth/login (or /auth/password/reset) has the genuine origin say
//   the attacker's 40 characters to an anonymous visitor.
// Held (kept as attacks): every refused framing closes the connection before the next byte is read (and 2,000 header
// lines are a 431, never a silently shortened head); a guess spread over the email's spellings and the username is one
// account, reported high; altered failure rows neither fail nor slow the rule, and no forged address becomes a client.
// ASVS 5.0 ids: 1.2.1, 1.5.3, 6.3.1, 6.3.5, 16.3.1 are in shared/asvs; 3.5.x (CSRF) is the web frontend chapter.
// Loopback and temp dirs only; SQLite, cheap argon2; the last suite also on a private PostgreSQL cluster (skipped loudly
// when PostgreSQL is not installed).
import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, it } from "node:test";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { canonicalJSON } from "../src/audit/canonical.ts";
import { checkLogins, DEFAULT_LOGINS_OPTIONS, type SignIn } from "../src/checks/logins/index.ts";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { CROSS_SITE_NAVIGATION as NAVIGATION, HOST, ORIGIN } from "../src/http/auth/test-client.ts";
import { rawAuditStore, type AuditRow } from "./helpers/audit-rows.ts";
import { spyOn } from "./helpers/compiled-queries.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** The sentence of the 404 attack (test/words-in-our-mouth-red-team.test.ts), in the two spellings a link carries. */
const LURES = ["Your Bulwark account is locked. Call +1-555-0100", "Your_Bulwark_account_is_locked._Call_+1-555-0100"] as const;
/** What would show that the answer said the attacker's words: any run of them, in either spelling. */
const SAID = /account[ _]is[ _]locked|Call[ _]\+?1-555/i;
const show = (r: LightMyRequestResponse): string => `${r.statusCode} ${r.body.slice(0, 240)}`;

describe("new code twenty-two: the attacker's sentence said back by the genuine origin, through a link's query or a cross-site form", () => {
  const fx = sharedFixture();

  it("attack: a phishing link to GET /api/v1/tokens?<sentence>=1, followed by any signed-in user (and /users, /roles, /audit/events, /contain/jobs by an administrator) — the answer names no undeclared field by the caller's text: the genuine origin never says the attacker's sentence (ASVS 1.2.1; CWE-74, content spoofing) (was: BULWARK_ERR_API_UNKNOWN_FIELD quoted each undeclared field as spelled, to any caller)", async () => {
    const ana = await fx.user("nc22-link-user@example.org");
    const b = fx.browser();
    assert.equal((await b.login(ana.email, ana.password)).statusCode, 200);
    const admin = await fx.user("nc22-link-admin@example.org", { roles: ["admin"] });
    const { token: adminSession } = await fx.app.accounts.sessions.createSession(admin.id, { aal: 2 });
    const visitors: Array<[string, string, string[]]> = [
      ["a signed-in user", `${SESSION_COOKIE}=${b.cookie}`, ["/api/v1/tokens"]],
      ["an administrator", `${SESSION_COOKIE}=${adminSession}`, ["/api/v1/tokens", "/api/v1/users", "/api/v1/roles", "/api/v1/audit/events", "/api/v1/contain/jobs", "/auth/sessions"]],
    ];
    const said: string[] = [];
    for (const [who, cookie, paths] of visitors) {
      for (const path of paths) {
        for (const lure of LURES) {
          // The sentence as a field name (whole, and cut in two as a second field), then as the value of a field the route declares.
          const half = Math.floor(lure.length / 2);
          const queries = [`${encodeURIComponent(lure)}=1`, `${encodeURIComponent(lure.slice(0, half))}=1&${encodeURIComponent(lure.slice(half))}=1`, `cursor=${encodeURIComponent(lure)}`, `limit=${encodeURIComponent(lure)}`];
          for (const query of queries) {
            const res = await fx.server.inject({ method: "GET", url: `${path}?${query}`, headers: { ...NAVIGATION, cookie } });
            assert.notEqual(res.statusCode, 401, `${who} is signed in: ${show(res)}`);
            if (SAID.test(res.body)) said.push(`${who}: GET ${path}?${query.slice(0, 40)}… → ${show(res)}`);
          }
        }
      }
    }
    // Control: the visitor is who the link reaches — the same answer for a request with no cookie is the fixed 401.
    const anonymous = await fx.server.inject({ method: "GET", url: `/api/v1/tokens?${encodeURIComponent(LURES[0])}=1`, headers: NAVIGATION });
    assert.equal(anonymous.statusCode, 401, show(anonymous));
    assert.deepEqual(said, [],
      "a link's query string had the genuine origin say the attacker's sentence: BULWARK_ERR_API_UNKNOWN_FIELD names each undeclared field as the " +
      "caller spelled it (up to five, 40 characters each; apiErrors.unknownFields via refuseUnknownFields), so a phishing mail's link to " +
      "/api/v1/tokens?Your_Bulwark_account_is_locked._Call_…=1 shows any signed-in user the lure under Bulwark's own address — the content " +
      "spoofing 1277ccf removed from the 404 answer (docs/http-auth.md: \"never the path\"), moved from the path to the query");
  });

  it("attack: a page on another site auto-submits a form to POST /auth/login (and /auth/password/reset) whose field is named as the sentence, given twice or with a value that is not UTF-8 — the anonymous visitor's answer from the genuine origin names no field the route does not take (ASVS 1.2.1, 3.5.1; CWE-74) (was: the form parser named any field it refused, before the CSRF wall ran)", async () => {
    const lure = "Your Bulwark account is locked. Call +1-555-0100";
    const name = encodeURIComponent(lure);
    const form = { ...NAVIGATION, origin: "https://evil.example", "content-type": "application/x-www-form-urlencoded" };
    const said: string[] = [];
    for (const url of ["/auth/login", "/auth/password/reset"]) {
      for (const payload of [`${name}=1&${name}=2`, `${name}=%E9`, `identifier=a%40example.org&${name}=1&${name}=2`]) {
        const res = await fx.server.inject({ method: "POST", url, headers: form, payload });
        assert.equal(res.statusCode >= 400 && res.statusCode < 500, true, `refused, one way or another: ${show(res)}`);
        assert.equal(res.headers["set-cookie"], undefined, "no session for a cross-site form");
        if (SAID.test(res.body)) said.push(`POST ${url} with ${payload.slice(0, 30)}… → ${show(res)}`);
      }
    }
    // Control: a well-formed cross-site form meets the CSRF wall's fixed words — the parser's refusal comes before it.
    const walled = await fx.server.inject({ method: "POST", url: "/auth/login", headers: form, payload: `identifier=a%40example.org&password=x&${name}=1` });
    assert.equal(walled.statusCode, 403, show(walled));
    assert.doesNotMatch(walled.body, SAID);
    assert.deepEqual(said, [],
      "a cross-site form had the genuine origin say the attacker's sentence to an anonymous visitor: parseFormBody (src/http/auth/form-body.ts) " +
      "names the field it refuses (\"form field \\\"Your Bulwark account is locked. Call +\\\" is given more than once\", or \"is not valid " +
      "UTF-8\"), whatever its name, and the form is parsed before the CSRF wall (preValidation) refuses the cross-site request — the content " +
      "spoofing 1277ccf removed from the 404 answer, through a form's field name");
  });
});

interface Exchange {
  /** Every status line the server wrote on the connection, in order (a pipelined answer follows the body before it on its line). */
  statuses: number[];
  text: string;
  /** The server closed the connection (within the guard). */
  closed: boolean;
}

/** Writes `text` on one connection and reads until the server closes it (or the guard, 4 s, gives up on it). */
function exchange(port: number, text: string): Promise<Exchange> {
  return new Promise((resolve) => {
    let closedByServer = false;
    const socket = connect(port, "127.0.0.1", () => socket.write(text));
    const guard = setTimeout(() => socket.destroy(), 4000);
    let got = "";
    socket.setEncoding("latin1")
      .on("data", (d: string) => (got += d))
      .on("end", () => (closedByServer = true))
      .on("error", () => {})
      .on("close", () => {
        clearTimeout(guard);
        resolve({ statuses: [...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])), text: got, closed: closedByServer });
      });
  });
}

async function portOf(server: FastifyInstance): Promise<number> {
  const address = server.server.address();
  if (address !== null && typeof address === "object") return address.port;
  await server.listen({ host: "127.0.0.1", port: 0 });
  return (server.server.address() as { port: number }).port;
}

describe("new code twenty-two: a refused framing on a connection that goes on", () => {
  const fx = sharedFixture();

  it("attack: a login declared gzip on a keep-alive connection, its body a second request and a third pipelined after it; Content-Encoding given as identity then gzip on two lines; a folded continuation adding gzip; gzip after 2,000 header lines — each is refused and the connection closed, nothing after the refusal is answered, nobody is signed in (ASVS 1.5.3)", async () => {
    const ana = await fx.user("nc22-framing@example.org");
    const port = await portOf(fx.server);
    const login = JSON.stringify({ identifier: ana.email, password: ana.password });
    const head = (extra: readonly string[], length: number, keepAlive = true): string =>
      ["POST /auth/login HTTP/1.1", `Host: ${HOST}`, `Origin: ${ORIGIN}`, "Sec-Fetch-Site: same-origin", "Content-Type: application/json", `Content-Length: ${length}`,
        ...(keepAlive ? ["Connection: keep-alive"] : ["Connection: close"]), ...extra, "", ""].join("\r\n");
    const next = `GET /auth/session HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`;
    // A body that is a request: read as the next request if the server ever parsed on past the refusal.
    const smuggled = `POST /auth/login HTTP/1.1\r\nHost: ${HOST}\r\nOrigin: ${ORIGIN}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/json\r\nContent-Length: ${login.length}\r\n\r\n${login}`;

    const cases: Array<[string, string, number]> = [
      ["gzip, body a request, one pipelined after", head(["Content-Encoding: gzip"], smuggled.length) + smuggled + next, 415],
      ["identity, then gzip on a second line", head(["Content-Encoding: identity", "Content-Encoding: gzip"], login.length) + login + next, 415],
      ["a folded continuation line", head(["Content-Encoding: identity,", " gzip"], login.length) + login + next, 400],
      ["gzip after 2,000 header lines", head([...Array.from({ length: 2000 }, () => "a:"), "Content-Encoding: gzip"], login.length) + login + next, 431],
    ];
    for (const [what, text, status] of cases) {
      const got = await exchange(port, text);
      assert.deepEqual(got.statuses, [status], `${what}: one answer, the refusal, and nothing read after it: ${got.text.slice(0, 300)}`);
      assert.equal(got.closed, true, `${what}: the server closed the connection`);
      assert.match(got.text, /\r\nconnection: close\r\n/i, `${what}: the refusal says so`);
      assert.doesNotMatch(got.text, /set-cookie: __Host-bulwark-session=[^;\r\n]/i, `${what}: nobody signed in`);
    }
    const signedIn = (await fx.app.audit.tail(50)).filter((e) => e.type === "auth.login.succeeded" && e.subject === ana.id);
    assert.deepEqual(signedIn, [], "no refused request, and no byte after one, signed anyone in");
    // Control: the same connection without the coding goes on — the login and the pipelined request are both answered.
    const control = await exchange(port, head([], login.length) + login + next);
    assert.deepEqual(control.statuses, [200, 200], control.text.slice(0, 300));
  });
});

describe("new code twenty-two: a guess spread over every spelling of one account", () => {
  const fx = sharedFixture();

  it("attack: a botnet spreads 24 guesses over the email, the email in capitals with spaces, and the username (one address each, 30 minutes apart), then signs in with the username from a new browser — one account, 24 failures, reported high with the session to end (ASVS 6.3.1, 6.3.5, 16.3.1)", async () => {
    const password = "quiet orchard lanterns hum";
    const user = await fx.app.accounts.users.create({ email: "nc22-spellings@example.org", username: "nc22_spellings", passwordHash: await fx.app.accounts.passwords.hash(password), passwordScheme: "argon2id" });
    const login = (identifier: string, secret: string, address: string): Promise<LightMyRequestResponse> =>
      fx.server.inject({ method: "POST", url: "/auth/login", remoteAddress: address, headers: { host: HOST, origin: ORIGIN, "content-type": "application/json" }, payload: JSON.stringify({ identifier, password: secret }) });
    const spellings = ["nc22-spellings@example.org", "  NC22-Spellings@EXAMPLE.org ", "nc22_spellings"];
    const start = Math.floor(fx.clock.now() / HOUR) * HOUR + HOUR;
    for (let i = 0; i < 24; i++) {
      fx.clock.set(start + 5 * MINUTE + i * 30 * MINUTE);
      const res = await login(spellings[i % 3] as string, `guess ${i}`, `198.51.100.${20 + i}`);
      assert.equal(res.statusCode, 401, `guess ${i} (${spellings[i % 3]}): ${res.body}`);
    }
    fx.clock.set(start + 13 * HOUR);
    const hit = await login("nc22_spellings", password, "203.0.113.91");
    assert.equal(hit.statusCode, 200, hit.body);
    const session = hit.json().sessionId as string;
    fx.clock.set(start + 14 * HOUR);
    const report = await checkLogins(fx.app.db, { since: start, until: start + 14 * HOUR, ...DEFAULT_LOGINS_OPTIONS });
    const guessed = report.findings.filter((f) => f.id === "logins.guessed-account");
    assert.equal(guessed.length, 1, JSON.stringify(report.findings.map((f) => [f.id, f.title])));
    const [finding] = guessed as [typeof guessed[number]];
    assert.equal(finding.severity, "high", finding.title);
    assert.deepEqual([(finding.evidence["account"] as { userId: string }).userId, finding.evidence["failed"], finding.evidence["clients"]], [user.id, 24, 24]);
    assert.deepEqual((finding.evidence["signIns"] as SignIn[]).map((s) => [s.sessionId, s.newDevice]), [[session, true]]);
    assert.ok(report.reportedAccounts.includes(user.id), "--ids-out would hold the account");
  });
});

/** Midnight UTC, 10 December 2026: after sign-in events carried sessionId, newDevice and failuresBefore. */
const T0 = Date.UTC(2026, 11, 10);
const DAY = 24 * HOUR;

forEachDialect("new code twenty-two: the guessed-account rule over altered audit rows", (dialect) => {
  it("attack: an account's failures stored with data that is not JSON, a 100,000-character ip, an ip that is a number, and an \"ip\":\"…\" forged inside the user agent — the check neither fails nor slows, every failure counts, only written addresses are clients, and the new browser's sign-in is high (ASVS 16.3.1, 6.3.5)", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * DAY, "nc22");
    const failure = (at: number, data: Record<string, unknown>): AuditRow => ({ type: "auth.login.failed", subject: "usr_altered", at, data: { reason: "wrong-password", userAgent: "Mozilla/5.0", ...data } });
    const rows: AuditRow[] = [];
    let at = T0 + HOUR;
    for (let i = 0; i < 10; i++) rows.push(failure((at += 20 * MINUTE), { ip: `198.51.100.${1 + i}` }));
    for (let i = 0; i < 3; i++) rows.push(failure((at += 20 * MINUTE), { ip: "9".repeat(100_000) }));
    for (let i = 0; i < 3; i++) rows.push(failure((at += 20 * MINUTE), { ip: 1_234_567 }));
    for (let i = 0; i < 4; i++) rows.push(failure((at += 20 * MINUTE), { ip: null, userAgent: `x","ip":"203.0.113.${200 + i}","y":"` }));
    await insert(rows);
    // Five rows altered by hand: text that is not JSON (a cut-off object, a bare string), as the queries must read and skip
    // (positions of their own, past the helper's).
    // (PostgreSQL's ipOf reads an "ip" out of a cut-off object where SQLite's json_valid refuses the row: only a writer of
    // the database makes such rows, and it can write any address as valid JSON anyway, so none of these names one.)
    const raw = ["{\"reason\":\"wrong-password\",", "not json at all", "{\"userAgent\":\"x\"", "\"reason\"", "[\"ip\"]"];
    await database.db.insertInto("audit_events").values(raw.map((data, i) => ({
      seq: 1_000_000 + i, id: `evt_nc22raw${i}`, type: "auth.login.failed", actor: "anonymous", subject: "usr_altered", data, at: (at += 20 * MINUTE), request_id: "", prev_hash: "", hash: "",
    }))).execute();
    const hitAt = at + HOUR;
    await insert([{ type: "auth.login.succeeded", subject: "usr_altered", at: hitAt, data: { ip: "203.0.113.77", userAgent: "Mozilla/5.0", rehashed: false, fromScheme: "argon2id", mustChangePassword: false, failuresBefore: 3, sessionId: "ses_nc22_hit", newDevice: true } }]);
    // "Nor slows" is observed as the work done, not timed: every statement the check sends is counted through a Kysely
    // plugin. The 26 rows must cost fewer statements than there are rows, and as many again of the same kinds (new
    // addresses) not one statement more: a statement per row, per address or per page of a pagination that does not
    // advance would grow with them. The check's time against the same rows with plain addresses is measured in
    // bench/linear-time.ts.
    const { database: spied, compiled } = spyOn(database);
    const report = await checkLogins(spied, { since: T0, until: T0 + DAY, ...DEFAULT_LOGINS_OPTIONS, pageSize: 50 });
    const statements = compiled.map((q) => q.sql);
    assert.ok(statements.length < rows.length + raw.length + 1, `the check sent ${statements.length} statements over ${rows.length + raw.length + 1} rows:\n${statements.join("\n")}`);
    const [account] = report.guessedAccounts;
    assert.deepEqual(report.guessedAccounts.map((a) => [a.userId, a.failed, a.newDeviceSignIns, a.clientsComplete]), [["usr_altered", 25, 1, true]]);
    // The ten written addresses and the long one; the numeric ip, the forged ones and the altered rows name no client.
    assert.deepEqual([account?.clients, account?.addresses], [11, 11], "clients counted from the addresses written, nothing forged or unreadable");
    const finding = report.findings.find((f) => f.id === "logins.guessed-account");
    assert.equal(finding?.severity, "high", JSON.stringify(report.findings.map((f) => [f.id, f.severity])));
    assert.deepEqual((finding?.evidence["signIns"] as SignIn[]).map((s) => s.sessionId), ["ses_nc22_hit"]);
    assert.ok(Buffer.byteLength(JSON.stringify(finding)) < 20_000, "the long address is not copied into the finding whole");
    // As many rows again, of the same kinds, from new addresses, in the same window: the same statements.
    const first = compiled.splice(0).map((q) => q.sql);
    const more: AuditRow[] = rows.map((r, i) => ({ ...r, at: hitAt + (i + 1) * 20 * MINUTE, data: typeof r.data["ip"] === "string" && r.data["ip"].length < 20 ? { ...r.data, ip: `198.51.100.${101 + i}` } : r.data }));
    await insert(more);
    const again = await checkLogins(spied, { since: T0, until: T0 + DAY, ...DEFAULT_LOGINS_OPTIONS, pageSize: 50 });
    assert.equal(again.guessedAccounts[0]?.failed, 25 + more.length, "control: the added rows were read");
    const later = compiled.map((q) => q.sql);
    assert.equal(later.length, first.length, `${first.length} statements over ${rows.length + raw.length + 1} rows, ${later.length} over ${2 * rows.length + raw.length + 1}:\n${later.join("\n")}`);
  });
});
