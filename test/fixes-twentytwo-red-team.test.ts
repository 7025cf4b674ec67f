// Red team, round "twenty-two, second look": today's fixes (06b7ac9, 1277ccf, 740ad6d, 153e8ef, 633b735), attacked
// around their edges. Attacker: anyone who can put a link in front of a signed-in administrator (a phishing mail whose
// target really is Bulwark's origin); they hold nothing but the link. Content spoofing = the genuine origin saying
// attacker-chosen words (ASVS 1.2.1, CWE-74/CWE-451).
// Tried:
// - 06b7ac9/1277ccf (fixed words, never the path; an undeclared field named only to a token): the same sentence put
//   where a link still carries it and the fixes did not look — an id path parameter (GET /api/v1/users/:id,
//   GET /api/v1/contain/jobs/:id: the ID pattern takes "Your_Bulwark_account_is_locked_Call_…", 64 characters) and the
//   value of a time filter (GET /api/v1/audit/events?since=…: parseTime quotes a value that starts with an impossible day).
// - 1277ccf's onSend escaping: the static pages (src/http/pages) read no query and carry no stored text (read, not kept).
// - 153e8ef: the only OutboxSender outside tests is the server's mail runner, which is given the audit (read, not kept;
//   the test client's sender is a test helper).
// Found (fixed since: the not-found errors of users, tokens and jobs say "with that id", and the time refusal names the
// field and why, never the value, to every caller):
// - BULWARK_ERR_API_USER_NOT_FOUND / BULWARK_ERR_API_JOB_NOT_FOUND quote the requested id (40 characters) to a
//   browser session: a link to /api/v1/users/Your_Bulwark_account_is_locked_Call_1555 has the genuine origin say it;
// - BULWARK_ERR_API_TIME quotes the `since` value (40 characters) when it starts with a day that does not exist:
//   /api/v1/audit/events?since=2026-02-30 Account locked. Call 555-0100 has the genuine origin say the sentence.
// Not reached in this round's time: 740ad6d (dry runs) and 633b735 (guessed-account).
// Held (kept as attacks): a `since` that is not date-shaped gets the fixed "must be an ISO 8601 date/time" words.
// ASVS 5.0 ids: 1.2.1 (output encoding / injection: content from the request in the answer) is in shared/asvs.
// Loopback and temp dirs only; SQLite.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { CROSS_SITE_NAVIGATION as NAVIGATION } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

/** What would show that the answer said the attacker's words: any run of them. */
const SAID = /account[ _]is[ _]locked|account[ _]locked|Call[ _]\+?1-?555/i;
const show = (r: LightMyRequestResponse): string => `${r.statusCode} ${r.body.slice(0, 240)}`;

describe("fixes twenty-two, second look: the attacker's sentence said back through a link to /api/v1", () => {
  const fx = sharedFixture();

  async function adminCookie(email: string): Promise<string> {
    const admin = await fx.user(email, { roles: ["admin"] });
    const { token } = await fx.app.accounts.sessions.createSession(admin.id, { aal: 2 });
    return `${SESSION_COOKIE}=${token}`;
  }

  it("attack: a phishing link to GET /api/v1/users/Your_Bulwark_account_is_locked_Call_1555 (and /api/v1/contain/jobs/<same>), followed by a signed-in administrator — the 404 names no id the caller typed to a browser session: the genuine origin never says the link's words (ASVS 1.2.1; CWE-74, content spoofing) (was: \"no user with id \\\"Your_Bulwark_account_is_locked_Call_1-55\\\"\")", async () => {
    const cookie = await adminCookie("f22-id-admin@example.org");
    const lure = "Your_Bulwark_account_is_locked_Call_1-555-0100_now";
    const said: string[] = [];
    for (const path of [`/api/v1/users/${lure}`, `/api/v1/contain/jobs/${lure}`]) {
      const res = await fx.server.inject({ method: "GET", url: path, headers: { ...NAVIGATION, cookie } });
      assert.equal(res.statusCode, 404, `the administrator is signed in and the id is unknown: ${show(res)}`);
      if (SAID.test(res.body)) said.push(`GET ${path} → ${show(res)}`);
    }
    // Control: the same link without a session is the fixed 401.
    const anonymous = await fx.server.inject({ method: "GET", url: `/api/v1/users/${lure}`, headers: NAVIGATION });
    assert.equal(anonymous.statusCode, 401, show(anonymous));
    assert.doesNotMatch(anonymous.body, SAID);
    assert.deepEqual(said, [],
      "a link's path had the genuine origin say the attacker's sentence to an administrator: apiErrors.userNotFound / jobNotFound " +
      "(src/http/api/errors.ts) quote the requested id (40 characters) to any caller, and the ID pattern (^[A-Za-z0-9_-]+$, 64) takes an " +
      "underscore-spelled sentence — the content spoofing 1277ccf removed from the 404 for an unrouted path (docs/api.md: \"never the path\") " +
      "and 06b7ac9 removed from the query's field names, still said through a routed path's id");
  });

  it("attack: a phishing link to GET /api/v1/audit/events?since=2026-02-30 <sentence>, followed by a signed-in administrator — the time refusal does not quote the value to a browser session (ASVS 1.2.1; CWE-74, content spoofing) (was: BULWARK_ERR_API_TIME quoted the value's first 40 characters)", async () => {
    const cookie = await adminCookie("f22-since-admin@example.org");
    const since = "2026-02-30 Account locked. Call 555-0100"; // 40 characters: the TIME schema's limit
    const res = await fx.server.inject({ method: "GET", url: `/api/v1/audit/events?since=${encodeURIComponent(since)}`, headers: { ...NAVIGATION, cookie } });
    assert.equal(res.statusCode, 400, show(res));
    assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_TIME", show(res));
    assert.doesNotMatch(res.body, SAID,
      `a link's query value had the genuine origin say the attacker's sentence to an administrator: ${show(res)} — parseTime ` +
      "(src/http/api/common.ts) quotes the first 40 characters of a value that starts with an impossible day (\"since: \\\"2026-02-30 " +
      "Account locked. Call 555-0100\\\" is not a date\"), to a browser session as to a token; 06b7ac9 stopped naming an undeclared " +
      "field's spelling to a session but left the declared field's value");
  });

  it("attack: the same link with a `since` that is not shaped as a date (the sentence alone, or an epoch number past any Date) — the refusal is the fixed \"must be an ISO 8601 date/time\" words (ASVS 1.2.1)", async () => {
    const cookie = await adminCookie("f22-since-plain@example.org");
    for (const since of ["Account locked. Call +1-555-0100", "9999999999999999"]) {
      const res = await fx.server.inject({ method: "GET", url: `/api/v1/audit/events?since=${encodeURIComponent(since)}`, headers: { ...NAVIGATION, cookie } });
      assert.equal(res.statusCode, 400, show(res));
      assert.doesNotMatch(res.body, SAID, show(res));
      assert.doesNotMatch(res.body, /9999999999/, show(res));
    }
  });
});
