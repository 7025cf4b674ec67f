// Red team, round "crossings": where today's changes meet (5fc1e66..ddd0d72): unfinished sign-ups taken over by an
// administrator's create and by `users import`, or deleted by the maintenance pass as abandoned; the outbox's rule that a
// link mail goes out only while its link works (link_id, migration 38; account_id, migration 36); containment levers and
// their counts under the one open-session rule; exact-first user search.
// Who: an outsider who signs up a new hire's address and never finishes (and keeps asking "forgot password" for it),
// with the relay down so the sign-up's link mails wait in the outbox; an administrator and a responder acting meanwhile.
// Tried: the sign-up's waiting link mails after an API create, an import and the abandoned purge (also a row queued
// before migration 38, without link_id); invalidate-passwords, lock-accounts (and its undo) and revoke-sessions over
// every account with a sign-up among them (counts, links, mails, whether the containment leaves a mark that makes the
// squat permanent); the search an administrator runs for the new hire's address.
// Held: the sign-up's waiting link mails die (account gone, link gone) after a create, an import and the purge, none
// reaching the new owner, each with a reason naming no link, the new owner's own reset link works; the purge deletes a
// squat whose outsider keeps a link mail waiting; invalidate-passwords counts (dry run and run) only accounts with a
// password, mails no containment link to a sign-up, spends its waiting link and leaves it a sign-up (a create still
// takes it); a containment lock keeps the squat from the purge and its undo makes it a sign-up again; revoke-sessions
// counts no session for a sign-up, leaves it one and withholds no live link.
// Found (fixed since: every account the API shows says `unfinishedSignUp`): (1) the user listing and GET /api/v1/users/:id show an outsider's unfinished sign-up exactly like an
// administrator's invitation: the exact match of a new hire's address can be the squat and nothing says so.
// Read, not tested: an email-change link to an address an administrator's create took meanwhile is still mailed (its row
// is open) and POST /confirm-email/account names the account, while confirm answers 409 taken (the address, not the
// account's state, refuses it; the docs' "refused link" does not cover it).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { isUnfinishedSignUp, SIGN_UP_REMOVED_EVENT } from "../src/accounts/email-change/sign-up-shell.ts";
import { containDeps, createContainJob, createUndoJob, dryRunContain, runJob } from "../src/contain/index.ts";
import { authFixture, GOOD_PASSWORD, HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { auditHead, eventsSince } from "./helpers/audit-events.ts";
import { authFlows, RESET_LINK } from "./helpers/auth-flows.ts";
import { importCSVOnFixture } from "./helpers/cli.ts";
import { maintenancePass } from "./helpers/maintenance-pass.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const WEEK = 168 * HOUR;

interface OutboxRow {
  id: string;
  kind: string;
  status: string;
  last_error: string | null;
  account_id: string | null;
  link_id: string | null;
}

describe("red team: crossings", () => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  let files: string;
  let writer: string;
  let n = 0;
  const address = (what: string): string => `x-${what}-${++n}@example.org`;

  before(async () => {
    fx = await authFixture({ BULWARK_REGISTRATION: "open" });
    files = mkdtempSync(join(tmpdir(), "bulwark-crossings-"));
    const scopes = ["accounts.read", "accounts.write"];
    writer = await flows.tokenFor(await flows.userWith(scopes), scopes);
  });
  after(async () => {
    await fx?.close();
    if (files) rmSync(files, { recursive: true, force: true });
  });

  function api(method: "POST" | "GET", url: string, body?: unknown): Promise<LightMyRequestResponse> {
    return fx.server.inject({
      method, url, headers: { host: HOST, authorization: `Bearer ${writer}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  }

  /** An outsider's sign-up of `to`, its link mail left waiting (the relay down: nothing delivered). */
  async function squat(to: string): Promise<string> {
    const asked = await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: to } });
    assert.equal(asked.statusCode, 202, asked.body);
    const holder = await fx.app.accounts.users.findByIdentifier(to);
    assert.ok(holder && holder.passwordHash === null, "control: the sign-up made an account with no password");
    return holder.id;
  }

  async function resetRequest(to: string): Promise<void> {
    const r = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: to } });
    assert.equal(r.statusCode, 202, r.body);
  }

  async function rowsTo(to: string): Promise<OutboxRow[]> {
    return fx.app.db.db.selectFrom("outbox_messages").select(["id", "kind", "status", "last_error", "account_id", "link_id"])
      .where("to_address", "=", to).orderBy("created_at").orderBy("id").execute();
  }

  /** The link tokens of every mail `to` received (after the relay recovered). */
  async function deliveredLinks(to: string): Promise<string[]> {
    await fx.deliver();
    return fx.mailTo(to).filter((m) => RESET_LINK.test(m.body)).map((m) => RESET_LINK.exec(m.body)![1]!);
  }

  async function complete(token: string): Promise<number> {
    return (await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword: GOOD_PASSWORD } })).statusCode;
  }

  /** One maintenance pass now, as the running server's timer makes it; no step may fail. */
  const pass = (): Promise<Record<string, number>> => maintenancePass(fx.app);

  const exists = async (id: string): Promise<boolean> => (await fx.app.accounts.users.getById(id)) !== null;

  it("attack: an outsider's sign-up and a 'forgot password' link for it wait in the outbox (relay down) when an administrator creates the account for that address (POST /api/v1/users) — the new owner's mailbox gets neither of the sign-up's links, both rows are recorded dead with a reason, also the one queued before migration 38 (no link_id), and the new owner's own reset link works (ASVS 6.4.1, 6.3.7)", async () => {
    const to = address("api-create");
    const signUp = await squat(to);
    await resetRequest(to);
    const waiting = await rowsTo(to);
    assert.equal(waiting.length, 2, `control: the sign-up link mail and the reset link mail wait: ${JSON.stringify(waiting)}`);
    assert.ok(waiting.every((r) => r.status === "queued" && r.account_id === signUp && r.link_id !== null), JSON.stringify(waiting));
    // The reset link mail as a row queued between migrations 36 and 38 (account_id, no link_id).
    await fx.app.db.db.updateTable("outbox_messages").set({ link_id: null }).where("id", "=", waiting[1]!.id).execute();
    const created = await api("POST", "/api/v1/users", { email: to });
    assert.equal(created.statusCode, 201, created.body);
    const body = created.json() as { user: { id: string }; signUpRemoved: string | null };
    assert.equal(body.signUpRemoved, signUp);
    const links = await deliveredLinks(to);
    assert.deepEqual(links, [], "no link of the deleted sign-up reached the new account's owner");
    const settled = await rowsTo(to);
    for (const r of settled) {
      assert.equal(r.status, "dead", `${r.kind} row: ${JSON.stringify(r)}`);
      assert.ok(r.last_error && !/prt_/.test(r.last_error), `a reason, naming no link: ${r.last_error}`);
    }
    await resetRequest(to);
    const own = await deliveredLinks(to);
    assert.equal(own.length, 1, "the new owner's reset link is sent");
    assert.equal(await complete(own[0]!), 200, "and it works");
  });

  it("attack: the same waiting sign-up link mail when `bulwark users import` creates the account over the sign-up — the mail is recorded dead, not sent to the imported owner, and the removal is recorded via import (ASVS 6.4.1, 6.3.7)", async () => {
    const to = address("import");
    const signUp = await squat(to);
    const [mail] = await rowsTo(to);
    assert.equal(mail?.status, "queued", "control: the sign-up's link mail waits");
    const mark = await auditHead(fx.app.db.db);
    const imported = await importCSVOnFixture<{ created: number; signUpsRemoved: Array<{ line: number; id: string }> }>(fx.app.config.dataDir, files, `email\n${to}\n`);
    assert.equal(imported.code, 0, imported.stderr);
    assert.deepEqual(imported.report?.signUpsRemoved.map((s) => s.id), [signUp]);
    assert.equal(await exists(signUp), false);
    const links = await deliveredLinks(to);
    assert.deepEqual(links, [], "the sign-up's link mail did not go to the imported account's owner");
    assert.equal((await rowsTo(to)).find((r) => r.id === mail!.id)?.status, "dead");
    const events = (await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT])).filter((e) => e.subject === signUp);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.data.via, "import");
  });

  it("attack: an outsider keeps asking 'forgot password' for their week-old squat so a link mail always waits when the maintenance pass comes — the pass still deletes it (a link asked after the age keeps nothing), and the waiting mail is recorded dead, never sent with a link no store holds (ASVS 6.4.1, 2.4.1)", async () => {
    const to = address("purge");
    const signUp = await squat(to);
    await fx.deliver(); // the sign-up's own mail went out long ago
    fx.clock.advance(WEEK + HOUR);
    await resetRequest(to);
    const waiting = (await rowsTo(to)).filter((r) => r.status === "queued");
    assert.equal(waiting.length, 1, "control: a fresh link mail waits");
    const mark = await auditHead(fx.app.db.db);
    await pass();
    assert.equal(await exists(signUp), false, "the abandoned sign-up is deleted all the same");
    const before = fx.mailTo(to).length;
    await fx.deliver();
    assert.equal(fx.mailTo(to).length, before, "the waiting mail is not sent");
    const row = (await rowsTo(to)).find((r) => r.id === waiting[0]!.id);
    assert.equal(row?.status, "dead", JSON.stringify(row));
    const events = (await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT])).filter((e) => e.subject === signUp);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.data.via, "maintenance");
  });

  it("attack: a responder runs invalidate-passwords over every account while outsiders' sign-ups wait with their link mails — the dry run and the run count only accounts with a password, no containment link goes to a sign-up's address, the sign-up's waiting link mail dies, and the sign-up is still one (an administrator's create still takes its address) (ASVS 6.4.1, 6.3.7)", async () => {
    const to = address("contain-all");
    const signUp = await squat(to);
    const real = await flows.signedIn(address("contain-real"));
    const deps = containDeps(fx.app);
    const withPassword = Number((await fx.app.db.db.selectFrom("users").where("password_hash", "is not", null).where("password_invalidated_at", "is", null)
      .select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst())?.n);
    const dry = await dryRunContain(deps, { levers: ["invalidate-passwords"], scope: { all: true }, actor: "responder" });
    const dryUsers = (dry.levers["invalidate-passwords"] as { counts: Record<string, number> }).counts["users"];
    assert.equal(dryUsers, withPassword, `the dry run counts the accounts with a password only: ${JSON.stringify(dry.levers)}`);
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { all: true }, actor: "responder" });
    const done = await runJob(deps, job.id);
    assert.equal(done.status, "done");
    assert.equal((done.counts as Record<string, number>)["invalidate-passwords.users"], withPassword, `the run counts as the dry run did: ${JSON.stringify(done.counts)}`);
    const links = await deliveredLinks(to);
    assert.deepEqual(links, [], "nothing with a link reached the sign-up's address (its own link was spent, no containment link)");
    assert.ok((await rowsTo(to)).every((r) => r.status === "dead"), JSON.stringify(await rowsTo(to)));
    assert.equal(await isUnfinishedSignUp(fx.app.db.db, signUp), true, "still an unfinished sign-up: the containment made no mark on it");
    assert.equal((await deliveredLinks(real.email)).length, 1, "control: the real account got its containment link");
    const created = await api("POST", "/api/v1/users", { email: to });
    assert.equal(created.statusCode, 201, created.body);
  });

  it("attack: a responder locks every account (lock-accounts --all) and later undoes it while an outsider's sign-up squats a new hire's address — while locked the maintenance pass keeps it; once undone it is an unfinished sign-up again: an administrator's create takes the address and the pass may delete it (ASVS 6.3.7)", async () => {
    const to = address("lock-undo");
    const signUp = await squat(to);
    await fx.deliver();
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { all: true }, actor: "responder", options: { lockReason: "incident" } });
    assert.equal((await runJob(deps, job.id)).status, "done");
    fx.clock.advance(WEEK + HOUR);
    await pass();
    assert.equal(await exists(signUp), true, "a locked account is never deleted as abandoned");
    const undo = await createUndoJob(deps, job.id, "responder");
    assert.equal((await runJob(deps, undo.id)).status, "done");
    assert.equal(await isUnfinishedSignUp(fx.app.db.db, signUp), true, "after the undo the squat is an unfinished sign-up again, not an account the administrator chose to keep");
    const created = await api("POST", "/api/v1/users", { email: to });
    assert.equal(created.statusCode, 201, `an administrator's create takes the address: ${created.body}`);
  });

  it("attack: a responder revokes every session (revoke-sessions --all) while a sign-up's link mail waits — the sign-up counts for no session, stays a sign-up, and its waiting link (no session's doing) still goes out and works: no live link withheld (ASVS 7.4.1, 6.4.1)", async () => {
    const to = address("revoke");
    const signUp = await squat(to);
    const deps = containDeps(fx.app);
    const dry = await dryRunContain(deps, { levers: ["revoke-sessions"], scope: { ids: [signUp] }, actor: "responder" });
    const counts = (dry.levers["revoke-sessions"] as { counts: Record<string, number> }).counts;
    assert.equal(counts["users"], 0, `no user with an open session: ${JSON.stringify(counts)}`);
    assert.equal(counts["sessions"], 0);
    const job = await createContainJob(deps, { levers: ["revoke-sessions"], scope: { all: true }, actor: "responder" });
    assert.equal((await runJob(deps, job.id)).status, "done");
    assert.equal(await isUnfinishedSignUp(fx.app.db.db, signUp), true, "still a sign-up");
    const links = await deliveredLinks(to);
    assert.equal(links.length, 1, `the sign-up's link mail went out: ${JSON.stringify(await rowsTo(to))}`);
    assert.equal(await complete(links[0]!), 200, "and its link finishes the sign-up");
  });

  it("attack: an administrator searches GET /api/v1/users?q=<a new hire's address> that an outsider signed up and never finished — the exact match listed first is the squat, and nothing in the listing (nor in GET /api/v1/users/:id) tells it from a real account or the administrator's own invitation, though the product treats it apart — the API says which is which (unfinishedSignUp) (ASVS 6.3.7) (was: the two shown alike)", async () => {
    const to = address("search");
    const signUp = await squat(to);
    const invited = address("invited");
    const invitation = await api("POST", "/api/v1/users", { email: invited });
    assert.equal(invitation.statusCode, 201, invitation.body);
    const listed = await api("GET", `/api/v1/users?q=${encodeURIComponent(to)}`);
    assert.equal(listed.statusCode, 200, listed.body);
    const first = (listed.json() as { users: Array<Record<string, unknown>> }).users[0];
    assert.equal(first?.["id"], signUp, "control: the exact match first");
    const invitedView = (invitation.json() as { user: Record<string, unknown> }).user;
    const one = (await api("GET", `/api/v1/users/${signUp}`)).json() as { user: Record<string, unknown> };
    // Every field but the ones that differ between any two accounts (id, address, times).
    const shape = (u: Record<string, unknown>): string => JSON.stringify(Object.fromEntries(Object.entries(u).filter(([k]) => !["id", "email", "createdAt", "roles"].includes(k)).sort()));
    assert.notEqual(shape(first!), shape(invitedView),
      `the listing shows the outsider's unfinished sign-up exactly as an administrator's invitation (no field such as unfinishedSignUp): ${shape(first!)}; an administrator who takes it for a colleague's invitation and locks or edits it makes the squat permanent (no longer yielding to the new hire's create)`);
    assert.notEqual(shape(one.user), shape(invitedView), `GET /api/v1/users/:id does not tell it either: ${shape(one.user)}`);
  });
});
