// Red team, round "new code twenty-five, second batch": the day's later rules, attacked at their edges.
//
// Who: (1) an outsider who can start sign-ups (POST /auth/register, open) and an administrator or API token with
// accounts.write acting on accounts (set-email, lock), against the maintenance pass that now deletes abandoned sign-ups
// (removeAbandonedSignUps, src/accounts/email-change/sign-up-shell.ts); (2) whoever holds an email-change confirmation
// link (the mailbox owner, a hijacker who asked for it from a stolen session), against the new public route
// POST /confirm-email/account and the masked account name in the mail (maskedAddress, email-change-mail.ts); (3) an
// operator's relay outage and requeue-dead, against the outbox's replaced-link rule (stillGood/#replacedAt, outbox.ts).
//
// Tried: an old sign-up an administrator moved to a new hire's address (set-email), or locked, and then left to the pass;
// a link of
// an account an administrator locked afterwards, shown by the new route; a one-letter local part masked; the route's
// answer for used, forged and cross-site requests; the "another account's link" note for a plus spelling of the
// mailbox, and the requester's answer with and without it; a reset requested in the same millisecond as an
// administrator's set-email link, and an old containment link mail requeued after a newer reset.
//
// Read through and not attacked further: the exact-first search (sealed cursor bound to q, exact pages strictly by id,
// the rest excluding the exact keys: no row skipped or repeated; paging already pinned by squatters-red-team); the purge
// racing a link's completion or a new link request (both take the link lock first; the purge re-checks under it); a
// reset link near expiry judged by a node within the allowed clock skew (the documented limit of clock-judged steps).
// Held: the pass keeps a sign-up an administrator locked; the route answers a used or forged link with the same 400 and names nobody, refuses a cross-site POST; the
// note reaches a plus spelling of the mailbox and the requester's answer does not change with it; a reset link asked
// in the same millisecond as the set-email's link is delivered and works; a requeued old containment link mail keeps
// its queue time and replaces no newer reset link mail.
// Found (fixed since: an unfinished sign-up is one never written since it was made — updated_at = created_at — so an
// administrator's set-email makes it theirs to keep; check() judges the account's state as confirm does
// (accountRefusal); maskedAddress always shows fewer characters than the local part has, none of one):
// - the maintenance pass deletes an account an administrator moved (set-email) to a new hire's address, as an
//   "abandoned sign-up", once the set-email's 24-hour link lapses: isUnfinishedSignUp ignores the administrator's act;
// - POST /confirm-email/account answers 200 and names the account for a link that its confirmation refuses (the account
//   locked by an administrator since): the page shows its button for a link that can do nothing;
// - maskedAddress shows a one-character local part whole ("q***@…"), while the mail says part of it is hidden.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { maskedAddress } from "../src/accounts/email-change/email-change-mail.ts";
import { authFixture, GOOD_PASSWORD, HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { maintenancePass } from "./helpers/maintenance-pass.ts";

const HOUR = 60 * 60_000;
const WEEK = 168 * HOUR;

describe("red team: new code twenty-five, second batch", () => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  let admin: string;
  let n = 0;
  before(async () => {
    fx = await authFixture({ BULWARK_REGISTRATION: "open" });
    const adminId = await flows.userWith(["accounts.write", "accounts.read"]);
    admin = await flows.tokenFor(adminId, ["accounts.write", "accounts.read"]);
  });
  after(async () => {
    await fx?.close();
  });

  const api = (method: "GET" | "POST", url: string, body?: unknown): Promise<LightMyRequestResponse> => fx.server.inject({
    method, url, headers: { host: HOST, authorization: `Bearer ${admin}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });

  /** One maintenance pass now, as the running server's timer makes it. */
  const pass = (): Promise<Record<string, number>> => maintenancePass(fx.app);

  /** A user signed in who asks to move to `to`; the token of the confirmation link mailed there. */
  async function changeLink(from: string, to: string): Promise<{ user: Awaited<ReturnType<typeof flows.signedIn>>; token: string; body: string }> {
    const user = await flows.signedIn(from);
    const asked = await user.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: to } });
    assert.equal(asked.statusCode, 202, asked.body);
    await fx.deliver();
    const mail = fx.mailTo(to).filter((m) => EMAIL_LINK.test(m.body)).at(-1);
    assert.ok(mail, `control: a confirmation link was mailed to ${to}`);
    return { user, token: (EMAIL_LINK.exec(mail.body) as RegExpExecArray)[1] as string, body: mail.body };
  }

  const accountOf = (token: string): Promise<LightMyRequestResponse> =>
    fx.browser({ newDevice: true }).request("POST", "/confirm-email/account", { body: { token } });

  it("attack: an outsider's old sign-up is moved by an administrator to a new hire's address (set-email), and the hire does not open the 24-hour link at once — the maintenance pass does not delete the account the administrator assigned as an 'abandoned sign-up' (ASVS 6.3.7, 6.4.1) (was: deleted once the link lapsed)", async () => {
    const squat = await flows.unfinishedSignUp(`old-squat-${++n}@example.org`);
    fx.clock.advance(WEEK + HOUR);
    const hire = `new.hire-${n}@corp.example`;
    const set = await api("POST", `/api/v1/users/${squat.id}/email`, { email: hire });
    assert.equal(set.statusCode, 200, set.body);
    assert.equal(set.json().changed, true, "control: the administrator moved the account");
    await pass();
    assert.ok(await fx.app.accounts.users.getById(squat.id), "control: kept while the set-email's link works");
    // The hire is away for the weekend; the link (24 hours) lapses unopened.
    fx.clock.advance(25 * HOUR);
    const removed = await pass();
    const still = await fx.app.accounts.users.getById(squat.id);
    assert.ok(
      still,
      `the maintenance pass deleted (abandonedSignUps: ${removed["abandonedSignUps"]}) the account an administrator had moved to ${hire} (user.email-set recorded, a link mailed to the hire) a day earlier, as an outsider's abandoned sign-up: removeAbandonedSignUps/isUnfinishedSignUp judges only the register event and the untouched columns, which a set-email leaves as they were; the hire's "forgot password" now finds no account`,
    );
  });

  it("attack: an administrator locks an outsider's old sign-up while looking into it — the pass keeps the locked account, its lock and its record, however old (ASVS 6.3.7)", async () => {
    const squat = await flows.unfinishedSignUp(`held-squat-${++n}@example.org`);
    fx.clock.advance(WEEK + HOUR);
    const locked = await api("POST", `/api/v1/users/${squat.id}/lock`, { reason: "investigating" });
    assert.equal(locked.statusCode, 200, locked.body);
    fx.clock.advance(4 * WEEK);
    await pass();
    const kept = await fx.app.accounts.users.getById(squat.id);
    assert.ok(kept, "the locked sign-up is not deleted as abandoned");
    assert.notEqual(kept.lockedAt, null, "and stays locked");
  });

  it("attack: a hijacker asked, from a stolen session, to move the account to their mailbox; an administrator then locks the account — POST /confirm-email/account refuses the link as its confirmation does, showing no button and naming no account (ASVS 6.3.7) (was: 200 naming the account)", async () => {
    const victim = `victim-${++n}@corp.example`;
    const { user, token } = await changeLink(victim, `thief-${n}@attacker.test`);
    const locked = await api("POST", `/api/v1/users/${user.id}/lock`, { reason: "hijacked" });
    assert.equal(locked.statusCode, 200, locked.body);
    const shown = await accountOf(token);
    const confirmed = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } });
    assert.equal(confirmed.statusCode, 400, `control: the confirmation refuses the link of a locked account: ${confirmed.body}`);
    assert.equal(
      shown.statusCode, 400,
      `POST /confirm-email/account answered ${shown.statusCode} ${shown.body} for a link whose confirmation is refused (the account was locked after the request): the page shows its form and "This link makes this email address the address of the account that now uses …" for a link that can do nothing; the route checks only the token row (emailChanges.check → look), not the account's state that confirm checks (locked, disabled, password invalidated, sessions revoked since), against docs/http-auth.md ("a refused link gets the one 400 of every refused link … and no form")`,
    );
  });

  it("attack: the holder of a confirmation link reads the account it moves — for an account at a one-character local part the mail and the page hide the whole local part, as they say (ASVS 14.2.6) (was: q***@…, all of it shown)", async () => {
    const from = `q@one-${++n}.example`;
    const { token, body } = await changeLink(from, `q.new-${n}@corp.example`);
    assert.match(body, /part of that address is hidden here/, "control: the mail says part of the address is hidden");
    const shown = (await accountOf(token)).json() as { account: string };
    assert.equal(maskedAddress("jane.doe@corp.example"), "ja***@corp.example", "control: a longer local part is cut");
    const local = shown.account.slice(0, shown.account.indexOf("*"));
    assert.ok(
      local.length < "q".length,
      `the page (and the mail) name the account as "${shown.account}": the whole local part "q" of ${from} is shown, so the account's address is disclosed in full to whoever holds the link, while both say "part of that address is hidden"; maskedAddress shows the first character of a local part shorter than four, which for a one-character one is all of it`,
    );
  });

  it("attack: a guesser and a holder of a spent link ask POST /confirm-email/account — a used, a forged and a malformed token get the same 400 naming no account, and a cross-site POST is refused before the token is read (ASVS 6.3.8)", async () => {
    const { token } = await changeLink(`spent-${++n}@corp.example`, `spent-new-${n}@corp.example`);
    const fresh = await accountOf(token);
    assert.equal(fresh.statusCode, 200, fresh.body);
    assert.deepEqual(fresh.json(), { account: `sp***@corp.example` });
    assert.equal((await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } })).statusCode, 200);
    const forged = `${token.slice(0, token.indexOf(".") + 1)}${"A".repeat(43)}`;
    const answers = await Promise.all([token, forged, "ect_nonsense"].map(accountOf));
    for (const r of answers) {
      assert.equal(r.statusCode, 400, r.body);
      assert.doesNotMatch(r.body, /\*\*\*|corp\.example/, "no account named");
    }
    const bodies = answers.map((r) => { const j = r.json() as { error: Record<string, unknown> }; delete j.error["requestId"]; return JSON.stringify(j); });
    assert.equal(new Set(bodies).size, 1, `one answer for every refused token: ${bodies.join(" | ")}`);
    const { token: live } = await changeLink(`csrf-${++n}@corp.example`, `csrf-new-${n}@corp.example`);
    const crossSite = await fx.server.inject({
      method: "POST", url: "/confirm-email/account", headers: { host: HOST, origin: "https://evil.example", "content-type": "application/json" },
      payload: JSON.stringify({ token: live }),
    });
    assert.equal(crossSite.statusCode, 403, crossSite.body);
    assert.doesNotMatch(crossSite.body, /\*\*\*/);
  });

  it("attack: an outsider asks to move their account to a plus spelling of an employee's new mailbox while the employee's link is open — the note reaches that mailbox too, and the outsider's answer is the same with or without an open link (ASVS 6.3.7, 6.3.8)", async () => {
    const mailbox = `dana.${++n}@corp.example`;
    await changeLink(`dana-${n}@corp.example`, mailbox);
    const outsider = await flows.signedIn(`dana.${n}@attacker.test`);
    const spelled = `Dana.${n}+hr@CORP.example`;
    const withOpen = await outsider.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: spelled } });
    const loner = await flows.signedIn(`lone-${n}@attacker.test`);
    const withoutOpen = await loner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: `nobody-asked-${n}@corp.example` } });
    assert.equal(withOpen.statusCode, withoutOpen.statusCode);
    assert.deepEqual(withOpen.json(), withoutOpen.json(), "the requester's answer says nothing of another account's link");
    await fx.deliver();
    // The outbox keeps the local part as typed and the domain lower-cased.
    const mail = fx.mailTo(`Dana.${n}+hr@corp.example`).find((m) => EMAIL_LINK.test(m.body));
    assert.ok(mail, `the outsider's link was mailed to the plus spelling: ${JSON.stringify(fx.smtp.accepted.map((m) => m.envelopeTo))}`);
    assert.match(mail.body, /Another account also asked/, "the note reaches the same mailbox under a plus spelling");
    assert.match(mail.body, /da\*\*\*@attacker\.test/, "and names the outsider's account");
  });

  it("attack: an owner asks for a reset in the very millisecond an administrator's set-email queued its link — the newer-link rule must not withhold the owner's working link on the tie (ASVS 6.4.1)", async () => {
    const owner = await fx.user(`tie-${++n}@corp.example`);
    const moved = `tie-moved-${n}@corp.example`;
    const set = await api("POST", `/api/v1/users/${owner.id}/email`, { email: moved });
    assert.equal(set.statusCode, 200, set.body);
    // Same clock reading: the fake clock has not moved since the set-email's commit.
    const asked = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: moved } });
    assert.equal(asked.statusCode, 202, asked.body);
    await fx.deliver();
    const links = fx.mailTo(moved).filter((m) => RESET_LINK.test(m.body));
    assert.equal(links.length, 2, `both links delivered: ${links.map((m) => m.subject).join(", ")}`);
    const own = links.find((m) => /reset your password/.test(m.subject));
    assert.ok(own, "the owner's reset mail went out");
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: (RESET_LINK.exec(own.body) as RegExpExecArray)[1], newPassword: GOOD_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);
  });

  it("attack: an administrator's set-email link mail died at the relay; the owner then asks for a reset; the operator requeues the dead mail — the requeued older link mail keeps its queue time and withholds nothing newer: the owner's reset link goes out and works (ASVS 6.4.1)", async () => {
    const owner = await fx.user(`requeue-${++n}@corp.example`);
    const moved = `requeue-moved-${n}@corp.example`;
    assert.equal((await api("POST", `/api/v1/users/${owner.id}/email`, { email: moved })).statusCode, 200);
    const db = fx.app.db.db;
    const containment = await db.selectFrom("outbox_messages").select(["id", "created_at"]).where("account_id", "=", owner.id).where("kind", "=", "account.containment-reset-link").executeTakeFirstOrThrow();
    await db.updateTable("outbox_messages").set({ status: "dead", last_error: "451 relay down" }).where("id", "=", containment.id).execute();
    fx.clock.advance(60_000);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: moved } })).statusCode, 202);
    fx.clock.advance(60_000);
    assert.equal(await fx.app.accounts.outbox.requeueDead([containment.id]), 1);
    const after = await db.selectFrom("outbox_messages").select("created_at").where("id", "=", containment.id).executeTakeFirstOrThrow();
    assert.equal(Number(after.created_at), Number(containment.created_at), "requeue keeps the queue time the rule compares");
    await fx.deliver();
    const own = fx.mailTo(moved).find((m) => /reset your password/.test(m.subject) && RESET_LINK.test(m.body));
    assert.ok(own, "the owner's newer reset mail went out");
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: (RESET_LINK.exec(own.body) as RegExpExecArray)[1], newPassword: GOOD_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);
  });
});
