// Red team, round "closed links": the outbox's new rule that a link mail goes out only while its link works (7011b54:
// outbox_messages.link_id, migration 38, the claim asks the link stores through linkStatesIn) and the older rule that a
// reset, sign-up or containment link mail older than a containment link mail of its account dies at its claim
// (d5d67d7, migration 37). The relay being down is the mail left queued (the fixture's sender runs only on deliver()).
// Who: the owner and a help desk acting while the relay is down (a session revocation, a lock and its unlock); two
// healthy nodes whose clocks differ within BULWARK_MAX_CLOCK_SKEW_SECONDS (the fixture's one manual clock, set to each
// node's reading in turn); an outsider who knows only the victim's address and wants the victim's good mail killed;
// the maintenance pass running while link mails wait.
// Tried: a BAD link sent (ended for good by an account-level refusal that spends no link row); a GOOD link killed (by
// the migration-37 rule across a skew the product lets serve, by the maintenance purge of links dated ahead within the
// tolerance, by an outsider's requests for the victim's address); and whether every link kind the product queues (a
// reset, a sign-up, an administrator's set-email/containment link, an email-change confirmation) carries a link id a
// store knows (an id no store holds would kill the mail as "gone").
// Found (fixed since: the link stores' answer also judges an email-change link by the account's revocation stamp, as
// confirm does ("revoked"); the created_at rule of migration 37 judges only mail whose link the store cannot be asked
// about): (1) a help desk's sessions/revoke, and (2) a lock then unlock, end the owner's pending email-change link for
// good (confirm refuses it: sessions-revoked-since) without spending its row, so the waiting mail still goes out
// carrying a dead link (link-states.ts says "what ends a link for good spends it"); (3) a containment link mail queued
// by a node whose clock is ahead (within the allowed skew) kills, by the migration-37 created_at comparison, a reset
// link mail asked for afterwards on a node behind, though the reset link's own row (link_id) is open (ADR 0004 names
// created_at ordering across clocks as a limit of that rule; with link_id the store can now say the link is open, and
// the skew is one the product lets serve: the owner's 202 ends in no mail).
// Held: every current link kind carries a link id its store answers "open" for; a maintenance pass (purge of reset and
// email-change links) on a node behind the issuer kills no waiting link mail dated ahead within the tolerance; an
// outsider's extra reset requests and a sign-up attempt for the victim's address spend none of the victim's waiting
// links. Read, not tested: the decoy path's link_id (its row is deleted in its transaction; statement counts pinned by
// test/http-auth-reset-request.test.ts), the once-per-claim check (documented in ADR 0004), requeue-dead's wording.
// Both dialects (PostgreSQL returns the bigint columns rowState compares as strings).
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { linkStatesIn } from "../src/app/link-states.ts";
import { setEmailByAdministrator } from "../src/accounts/email-change/set-by-administrator.ts";
import { SINGLE_USE_LINK_KINDS } from "../src/notify/index.ts";
import { datedAheadToleranceFor } from "../src/store/clock-skew.ts";
import { authFixtureOn, authFlows, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { maintenancePass } from "./helpers/maintenance-pass.ts";

forEachDialect("red team: mail whose link closed", (dx) => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  let n = 0;
  const address = (what: string): string => `cl-${what}-${++n}@example.org`;
  before(async () => {
    fx = await authFixtureOn(dx, "closed-links-red-team", { BULWARK_REGISTRATION: "open" });
  });
  after(() => fx.close());

  function api(method: "POST" | "GET", url: string, bearer: string, body?: unknown): Promise<LightMyRequestResponse> {
    return fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${bearer}` }, ...(body === undefined ? {} : { payload: body as object }) });
  }

  async function helpdesk(): Promise<string> {
    const scopes = ["accounts.read", "accounts.write"];
    return flows.tokenFor(await flows.userWith(scopes), scopes);
  }

  async function rowsTo(to: string, kind: string): Promise<Array<{ id: string; status: string; last_error: string | null; link_id: string | null }>> {
    return fx.app.db.db.selectFrom("outbox_messages").select(["id", "status", "last_error", "link_id"])
      .where("to_address", "=", to).where("kind", "=", kind).orderBy("created_at").orderBy("id").execute();
  }

  async function resetRequest(email: string, b = fx.browser()): Promise<void> {
    const r = await b.request("POST", "/auth/password/reset/request", { body: { email } });
    assert.equal(r.statusCode, 202, r.body);
  }

  /** The owner signed in asks to move to `moved`; the confirmation link mail waits (relay down). */
  async function pendingEmailChange(label: string): Promise<{ id: string; email: string; moved: string }> {
    const owner = await flows.signedIn(address(label));
    const moved = address(`${label}-new`);
    const asked = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: moved } });
    assert.equal(asked.statusCode, 202, asked.body);
    assert.equal((await rowsTo(moved, "account.email-change-link")).filter((r) => r.status === "queued").length, 1, "control: the link mail waits");
    return { id: owner.id, email: owner.email, moved };
  }

  /** After the relay recovers: the email-change link mails `moved` received, and what confirm answers for each. */
  async function deliveredEmailLinks(moved: string): Promise<string[]> {
    await fx.deliver();
    const answers: string[] = [];
    for (const m of fx.mailTo(moved).filter((mail) => EMAIL_LINK.test(mail.body))) {
      const token = EMAIL_LINK.exec(m.body)![1]!;
      const confirmed = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } });
      answers.push(`${confirmed.statusCode} ${confirmed.body.slice(0, 160)}`);
    }
    return answers;
  }

  it("attack: a help desk's sessions/revoke ends the owner's pending email-change link for good while its mail waits out a relay outage — the mail is not sent with a link confirm refuses (ASVS 6.4.1, 7.4.1) (was: sent, its link dead)", async () => {
    const owner = await pendingEmailChange("revoke");
    const desk = await helpdesk();
    fx.clock.advance(1000);
    const revoked = await api("POST", `/api/v1/users/${owner.id}/sessions/revoke`, desk);
    assert.equal(revoked.statusCode, 200, revoked.body);
    fx.clock.advance(1000);
    const answers = await deliveredEmailLinks(owner.moved);
    const [row] = await rowsTo(owner.moved, "account.email-change-link");
    // Control: what confirm says of the link is the account's revocation stamp (sessions-revoked-since), for good.
    assert.ok(answers.every((a) => a.startsWith("400")), `control: confirm refuses the link for good: ${JSON.stringify(answers)}`);
    assert.deepEqual(answers, [], `the email-change link mail was sent after sessions/revoke had ended its link for good (confirm answered ${JSON.stringify(answers)}; outbox row ${row?.status}, link_id ${row?.link_id}): linkStatesIn judges only the token row (used_at/created_at/expires_at), and endUserSessions raises the user's revocation stamp without spending the account's email-change links`);
    assert.equal(row?.status, "dead");
  });

  it("attack: a help desk's lock and then unlock end the owner's pending email-change link for good while its mail waits — the mail is not sent with a link confirm refuses (ASVS 6.4.1, 7.4.1) (was: sent, its link dead)", async () => {
    const owner = await pendingEmailChange("lock");
    const desk = await helpdesk();
    fx.clock.advance(1000);
    assert.equal((await api("POST", `/api/v1/users/${owner.id}/lock`, desk, { reason: "checking with the owner" })).statusCode, 200);
    fx.clock.advance(60_000);
    assert.equal((await api("POST", `/api/v1/users/${owner.id}/unlock`, desk)).statusCode, 200);
    fx.clock.advance(1000);
    const answers = await deliveredEmailLinks(owner.moved);
    assert.ok(answers.every((a) => a.startsWith("400")), `control: confirm refuses the link after the unlock: ${JSON.stringify(answers)}`);
    assert.deepEqual(answers, [], `the email-change link mail was sent after a lock and unlock had ended its link for good (confirm answered ${JSON.stringify(answers)}): link-states.ts assumes "a lock is undone", but the lock's endUserSessions and unlockUser raise the revocation stamp that refuses the link for ever, and neither spends it`);
  });

  it("attack: a containment link mail queued by a node whose clock runs ahead (within BULWARK_MAX_CLOCK_SKEW_SECONDS) kills the reset link mail the owner asks for afterwards on a node behind, though its link is open — a working link is never withheld (ASVS 6.4.1) (was: the reset mail recorded dead, the owner's 202 ending in no mail)", async () => {
    const owner = await fx.user(address("skew"));
    const moved = address("skew-moved");
    const t0 = fx.clock.now();
    const skew = 25_000; // each node within the default 30 s of the database server; 50 s apart, inside the 60 s tolerance
    // Node A (25 s fast): an administrator sets the account's address; its containment link goes to the new address.
    fx.clock.set(t0 + skew);
    const set = await setEmailByAdministrator(fx.app, { userId: owner.id, email: moved, actor: "cli:operator", via: "cli" });
    assert.equal(set.changed, true);
    // Node B (25 s slow), ten real seconds later: the owner asks for a reset at the new address (a new link beside).
    fx.clock.set(t0 - skew + 10_000);
    await resetRequest(moved);
    const [asked] = await rowsTo(moved, "account.password-reset-link");
    assert.ok(asked?.link_id, "control: the reset link mail records its link");
    const link = await fx.app.db.db.selectFrom("password_reset_tokens").select(["used_at"]).where("id", "=", asked.link_id).executeTakeFirst();
    assert.equal(link?.used_at, null, "control: the reset link is open in its store");
    fx.clock.set(t0 + 60_000);
    await fx.deliver();
    const [after] = await rowsTo(moved, "account.password-reset-link");
    const links = fx.mailTo(moved).filter((m) => RESET_LINK.test(m.body)).length;
    assert.equal(after?.status, "sent", `the reset link mail asked for after the containment was not sent (status ${after?.status}, "${after?.last_error}"), though its link (link_id) is open: Outbox stillGood's migration-37 rule orders by created_at across node clocks and runs even for a row whose link_id the store says is open (${links} link mail(s) received)`);
  });

  it("attack: every link kind the product queues (reset, sign-up, set-email containment, email-change) records a link id its store answers 'open' for — none would die as 'gone' (ASVS 6.4.1)", async () => {
    const tolerance = datedAheadToleranceFor(fx.app.config.maxClockSkewMs);
    const states = linkStatesIn(fx.app.db.db, fx.clock, tolerance);
    const reset = await fx.user(address("kinds-reset"));
    await resetRequest(reset.email);
    const signUp = address("kinds-signup");
    const registered = await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: signUp } });
    assert.equal(registered.statusCode, 202, registered.body);
    const contained = await fx.user(address("kinds-contain"));
    const containedAt = address("kinds-contain-new");
    assert.equal((await setEmailByAdministrator(fx.app, { userId: contained.id, email: containedAt, actor: "cli:operator", via: "cli" })).changed, true);
    const change = await pendingEmailChange("kinds-change");
    const rows = [
      ...(await rowsTo(reset.email, "account.password-reset-link")),
      ...(await rowsTo(signUp, "account.registration-link")),
      ...(await rowsTo(containedAt, "account.containment-reset-link")),
      ...(await rowsTo(change.moved, "account.email-change-link")),
    ];
    assert.equal(rows.length, SINGLE_USE_LINK_KINDS.length, `one mail of each link kind: ${JSON.stringify(rows)}`);
    const answered = await states(rows.map((r) => r.link_id ?? "(none)"));
    for (const r of rows) assert.equal(answered.get(r.link_id ?? "(none)"), "open", `${JSON.stringify(r)} is open in its store`);
    await fx.deliver();
    for (const r of await Promise.all(rows.map((row) => fx.app.db.db.selectFrom("outbox_messages").select(["status", "kind"]).where("id", "=", row.id).executeTakeFirstOrThrow()))) {
      assert.equal(r.status, "sent", `${r.kind} is sent`);
    }
  });

  it("attack: a maintenance pass on a node behind the issuer (purging reset and email-change links) while link mails dated ahead within the tolerance wait — none of them dies, and their links work (ASVS 6.4.1)", async () => {
    const t0 = fx.clock.now();
    const resetOwner = await fx.user(address("purge-reset"));
    // The issuing node runs 50 s fast: both links and both mails are dated ahead of the maintenance node.
    fx.clock.set(t0 + 50_000);
    await resetRequest(resetOwner.email);
    const change = await pendingEmailChange("purge-change");
    fx.clock.set(t0);
    await maintenancePass(fx.app);
    fx.clock.set(t0 + 60_000);
    await fx.deliver();
    const resetMail = fx.mailTo(resetOwner.email).filter((m) => RESET_LINK.test(m.body));
    assert.equal(resetMail.length, 1, `the reset link mail is sent: ${JSON.stringify(await rowsTo(resetOwner.email, "account.password-reset-link"))}`);
    assert.equal((await fx.app.accounts.passwordReset.check(RESET_LINK.exec(resetMail[0]!.body)![1])).valid, true, "its link works");
    const changeMail = fx.mailTo(change.moved).filter((m) => EMAIL_LINK.test(m.body));
    assert.equal(changeMail.length, 1, `the email-change link mail is sent: ${JSON.stringify(await rowsTo(change.moved, "account.email-change-link"))}`);
    assert.equal((await fx.app.accounts.emailChanges.check(EMAIL_LINK.exec(changeMail[0]!.body)![1])).valid, true, "its link works");
  });

  it("attack: an outsider who knows only the victim's address asks for more reset links and signs up with it while the victim's reset link mail waits — the victim's mail is still sent and its link works (ASVS 6.4.1, 6.3.8)", async () => {
    const victim = await fx.user(address("victim"));
    await resetRequest(victim.email);
    const [mine] = await rowsTo(victim.email, "account.password-reset-link");
    assert.ok(mine, "control: the victim's link mail waits");
    const outsider = fx.browser({ newDevice: true });
    for (let i = 0; i < 4; i++) {
      fx.clock.advance(1000);
      await resetRequest(victim.email, outsider);
    }
    fx.clock.advance(1000);
    const signUp = await outsider.request("POST", "/auth/register", { body: { email: victim.email } });
    assert.equal(signUp.statusCode, 202, signUp.body);
    fx.clock.advance(1000);
    await fx.deliver();
    const row = await fx.app.db.db.selectFrom("outbox_messages").select(["status", "last_error"]).where("id", "=", mine.id).executeTakeFirstOrThrow();
    assert.equal(row.status, "sent", `the victim's own link mail was killed by the outsider's requests: ${row.last_error}`);
    const tokens = fx.mailTo(victim.email).map((m) => RESET_LINK.exec(m.body)?.[1]).filter((t): t is string => t !== undefined);
    assert.ok(tokens.length >= 1);
    for (const token of tokens) assert.equal((await fx.app.accounts.passwordReset.check(token)).valid, true, "every link mailed to the victim works");
  });
});
