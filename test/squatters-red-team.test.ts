// Red team, round "squatters". The attacker is an outsider with no account of the organisation's, holding nothing but
// the knowledge that people are about to be brought onto its Bulwark-run service: a migration from a legacy system
// (`bulwark users import`), new hires an administrator creates, an employee's announced change of address. Registration
// is open (BULWARK_REGISTRATION=open) during the migration and may be closed after it. The outsider pre-positions what
// any anonymous client can: unfinished sign-ups (POST /auth/register for the victims' addresses, never finished),
// finished accounts at look-alike addresses of mailboxes the outsider owns, plus-address spellings, reset requests and
// email-change requests naming the victims' future addresses before those accounts exist.
//
// Tried, and what held:
// - pre-positioned links (a reset request for the address, an email-change request of the outsider's own account to
//   it) yield nothing once the import made the victim's account: nothing was mailed for the unknown address, and the
//   outsider's email-change link is answered 409 taken and moves nothing;
// - plus-address spellings signed up ahead of the import neither block the victim's row nor receive the victim's links.
//
// Found:
// - `bulwark users import` does not treat an unfinished sign-up as `users create` and `POST /api/v1/users` do
//   (createOverSignUps): under the default `--on-conflict fail` the outsider's squat makes the victim's row a bad row
//   and the whole import refuses to start; under `skip` the row is counted as skipped without its line or reason, the
//   victim keeps the outsider's password-less sign-up, loses the legacy password, and once registration is closed
//   cannot get a reset link at all; under `update` the victim's record is merged, unannounced, into the outsider's
//   sign-up and the legacy password is dropped, reported as "kept" though there was no password to keep. (fixed since:
//   the import takes an address held only by an unfinished sign-up of it under every --on-conflict — the batch deletes
//   the sign-up under its link lock, checked again, records `user.sign-up-removed` (via import, for the new account),
//   and the report lists it in `signUpsRemoved`; every skip is listed with its line and reason in `skippedRows`; an
//   update of an account without a password counts it as `passwordsNotSet`, not as kept.)
// - GET /api/v1/users?q=<the victim's full address> lists an outsider's `<address>.<attacker domain>` account before the
//   exact match (the list is in random id order): the administrator acts on the first row. (fixed since: the search
//   lists the exact match of `q` (its lookup key) first, then the other prefix matches by id; the cursor carries whether
//   paging is still among the exact matches.)
// - The email-change confirmation mail (and the page it opens) does not say which account it moves: an outsider's
//   request to an employee's announced new address mails a link the employee cannot tell from their own, and opening
//   it gives the outsider's account (whose password the outsider knows) the employee's new address; the employee's
//   own link is then refused as taken. (fixed since: the mail names the account by its current address, local part
//   masked and domain in full, says not to open the link if it is not yours, and says so when another account's link
//   to the same mailbox still works; the page asks POST /confirm-email/account and shows the same before the click.)
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { SIGN_UP_REMOVED_EVENT } from "../src/accounts/email-change/index.ts";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { authFixture, Browser, HOST, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { buildServer } from "../src/http/server.ts";
import { auditHead, eventsSince } from "./helpers/audit-events.ts";
import { authFlows, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { importCSVOnFixture } from "./helpers/cli.ts";

/** The victims' password on the legacy system, and its hash as the export carries it (a bare MD5 digest). */
const LEGACY_PASSWORD = "copper kettle on the windowsill 1987";
const LEGACY_HASH = createHash("md5").update(LEGACY_PASSWORD).digest("hex");

interface ImportJSON {
  rows: number;
  created: number;
  updated: number;
  skipped: number;
  failed: number;
  bad: Array<{ line: number; reason: string }>;
  skippedRows: Array<{ line: number; reason: string }>;
  passwordsKept: number;
}

describe("red team: squatters", () => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  let files: string;
  let n = 0;
  before(async () => {
    fx = await authFixture({ BULWARK_REGISTRATION: "open" });
    files = mkdtempSync(join(tmpdir(), "bulwark-squatters-"));
  });
  after(async () => {
    await fx?.close();
    if (files) rmSync(files, { recursive: true, force: true });
  });

  /** `bulwark users import FILE ARGS… --json` in this process, as the operator runs it on the fixture's database. */
  const importFile = (csv: string, args: string[] = []): Promise<{ code: number; report: ImportJSON | null; stderr: string; file: string }> =>
    importCSVOnFixture<ImportJSON>(fx.app.config.dataDir, files, csv, args);

  /** Whether `address` signs in (or reaches a later gate) with `password` through POST /auth/login. */
  async function signsIn(address: string, password: string): Promise<number> {
    return (await fx.browser({ newDevice: true }).login(address, password)).statusCode;
  }

  /** A second node on the same database, restarted by the operator with BULWARK_REGISTRATION=closed after the migration. */
  async function closedNode(): Promise<{ app: OpenedApp; server: FastifyInstance; close(): Promise<void> }> {
    const app = await openApp({
      env: {
        BULWARK_DATA_DIR: fx.app.config.dataDir, BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
        BULWARK_MAIL_REQUESTS_PER_HOUR: "100000", BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4096", BULWARK_MAX_CLOCK_SKEW_SECONDS: "0",
        BULWARK_PUBLIC_URL: ORIGIN, BULWARK_SMTP_URL: `smtp://127.0.0.1:${fx.smtp.port}?requireTLS=false`, BULWARK_MAIL_FROM: "security@bulwark.test",
        BULWARK_REGISTRATION: "closed",
      },
      mode: "migrate", clock: fx.clock,
    });
    const server = await buildServer(app);
    return { app, server, close: async () => { await server.close(); await app.close(); } };
  }

  /** Reset mails with a link delivered to `address` so far. */
  async function resetLinksTo(address: string): Promise<number> {
    await fx.deliver();
    return fx.mailTo(address).filter((m) => RESET_LINK.test(m.body)).length;
  }

  it("attack: an outsider signs up the address of a user about to be migrated and never finishes; `bulwark users import` (default --on-conflict fail) takes the address over as `users create` does — the victim's legacy password signs in, and the squat and its link are gone, recorded (ASVS 6.3.7, 6.4.1) (was: the victim's row was a bad row and the whole import refused to start)", async () => {
    const victim = `migrated.user-${++n}@corp.example`;
    const squat = await flows.unfinishedSignUp(victim);
    const bystander = `bystander-${n}@corp.example`;
    const csv = `email,password_hash\n${victim},${LEGACY_HASH}\n${bystander},${LEGACY_HASH}\n`;

    const dry = await importFile(csv, ["--dry-run"]);
    const mark = await auditHead(fx.app.db.db);
    const real = await importFile(csv);
    const holder = await fx.app.accounts.users.findByIdentifier(victim);
    const problems: string[] = [];
    if (real.code !== 0) {
      problems.push(`the real import exited ${real.code} and imported nothing (${real.stderr.trim().slice(0, 300)}); its dry run called line 2 bad: ${JSON.stringify(dry.report?.bad)} — an anonymous POST /auth/register for one address in the export stops the whole migration, and the reason reads as if a real account held it, while \`users create\` and POST /api/v1/users take an address held only by an unfinished sign-up (createOverSignUps)`);
    }
    if (holder?.id === squat.id) problems.push(`the address still belongs to the outsider's sign-up ${squat.id}`);
    const status = await signsIn(victim, LEGACY_PASSWORD);
    if (status !== 200) problems.push(`the victim's legacy password does not sign in (POST /auth/login ${status})`);
    const removed = await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT]);
    if (!removed.some((e) => e.subject === squat.id)) problems.push(`no ${SIGN_UP_REMOVED_EVENT} event records the squat's removal`);
    if (real.code === 0) {
      // Once the import took the address, the sign-up's link (in the victim's mailbox) must finish nothing.
      const late = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: squat.link, newPassword: "amber lanterns drift over quiet harbours" } });
      if (late.statusCode !== 400) problems.push(`the squat's sign-up link still sets a password (${late.statusCode})`);
    }
    assert.deepEqual(problems, [], problems.join("; "));
  });

  it("attack: the same squat under `--on-conflict skip` — the victim's row is imported over the sign-up: the legacy password signs in, and once registration is closed the victim's reset request still mails a link (ASVS 6.3.7, 6.4.1) (was: the row was counted as skipped without its line or reason, the victim was left holding the outsider's password-less sign-up, and no reset link reached them once registration closed)", async () => {
    const victim = `skipped.user-${++n}@corp.example`;
    const squat = await flows.unfinishedSignUp(victim);
    const real = await importFile(`email,password_hash\n${victim},${LEGACY_HASH}\n`, ["--on-conflict", "skip"]);
    assert.equal(real.code, 0, `control: the import ran (${real.stderr})`);
    const report = real.report as ImportJSON;
    const problems: string[] = [];
    const named = report.skippedRows.find((s) => s.line === 2);
    const holder = await fx.app.accounts.users.findByIdentifier(victim);
    if (holder?.id === squat.id && named === undefined) {
      problems.push(`the row was skipped silently: skipped ${report.skipped}, skippedRows ${JSON.stringify(report.skippedRows)}, nothing says line 2 met an anonymous, unfinished sign-up (${squat.id}) rather than an account of the organisation's`);
    }
    const status = await signsIn(victim, LEGACY_PASSWORD);
    if (status !== 200) problems.push(`the victim's legacy password does not sign in (POST /auth/login ${status}): the account at the address is the outsider's sign-up, with no password`);
    // The migration is over; the operator closes registration and restarts. The victim asks for a password reset.
    const closed = await closedNode();
    try {
      const before = await resetLinksTo(victim);
      const asked = await new Browser(closed.server).request("POST", "/auth/password/reset/request", { body: { email: victim } });
      assert.equal(asked.statusCode, 202, asked.body);
      if ((await resetLinksTo(victim)) === before) {
        problems.push("with registration closed, the victim's own reset request mails no link: the migrated account is still the outsider's unfinished sign-up, which a closed registration never lets anyone finish — the victim is locked out of their migrated account");
      }
    } finally {
      await closed.close();
    }
    assert.deepEqual(problems, [], problems.join("; "));
  });

  it("attack: the same squat under `--on-conflict update` — the victim's legacy record (username, display name, password) makes the victim's own account over the sign-up, and the legacy password signs in (ASVS 6.3.7) (was: the record was merged into the account the outsider's sign-up made and the legacy password dropped, reported as 'kept' though no password was stored)", async () => {
    const victim = `merged.user-${++n}@corp.example`;
    const squat = await flows.unfinishedSignUp(victim);
    const real = await importFile(`email,username,display_name,password_hash\n${victim},merged${n},Merged User,${LEGACY_HASH}\n`, ["--on-conflict", "update"]);
    assert.equal(real.code, 0, `control: the import ran (${real.stderr})`);
    const report = real.report as ImportJSON;
    const holder = await fx.app.accounts.users.findByIdentifier(victim);
    const status = await signsIn(victim, LEGACY_PASSWORD);
    assert.equal(
      status, 200,
      `the victim's legacy password does not sign in (POST /auth/login ${status}): the row was merged, with no word in the report, into the account an anonymous POST /auth/register made (same account as the squat: ${holder?.id === squat.id}; username and display name now written on it), reported as updated ${report.updated} with passwordsKept ${report.passwordsKept} although no password was stored to keep — planPassword answers "keep" for a stored password of null, so the migrated user is left without the legacy password and the operator is told it was kept`,
    );
  });

  it("attack: plus-address spellings of the victim's mailbox signed up ahead of the import (new.hire+hr@, new.hire+it@) neither refuse the victim's row nor receive the victim's reset link (ASVS 6.3.8)", async () => {
    const local = `plus.hire-${++n}`;
    const victim = `${local}@corp.example`;
    await flows.unfinishedSignUp(`${local}+hr@corp.example`);
    await flows.unfinishedSignUp(`${local}+it@corp.example`);
    const real = await importFile(`email,password_hash\n${victim},${LEGACY_HASH}\n`);
    assert.equal(real.code, 0, real.stderr);
    assert.equal(real.report?.created, 1);
    assert.equal(await signsIn(victim, LEGACY_PASSWORD), 200, "the victim's legacy password signs in");
    const before = { hr: fx.mailTo(`${local}+hr@corp.example`).length, it: fx.mailTo(`${local}+it@corp.example`).length };
    const token = await flows.resetToken(victim);
    assert.ok(token.startsWith("prt_"));
    await fx.deliver();
    assert.deepEqual({ hr: fx.mailTo(`${local}+hr@corp.example`).length, it: fx.mailTo(`${local}+it@corp.example`).length }, before, "no mail to the squatted spellings");
  });

  it("attack: links pre-positioned before the victim's account exists — a reset request for the address and an email-change request of the outsider's own account to it — yield nothing once the import made the account: no reset mail was queued, and the outsider's link is answered 409 taken and moves nothing (ASVS 6.3.8, 6.3.7)", async () => {
    const victim = `future.user-${++n}@corp.example`;
    const outsider = await flows.signedIn(`outsider-${n}@attacker.test`);
    const asked = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: victim } });
    assert.equal(asked.statusCode, 202, asked.body);
    const change = await outsider.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: victim } });
    assert.equal(change.statusCode, 202, change.body);
    const link = await flows.tokenIn(victim, EMAIL_LINK);
    assert.equal(fx.mailTo(victim).filter((m) => RESET_LINK.test(m.body)).length, 0, "nothing was mailed for an address no account held");
    const real = await importFile(`email,password_hash\n${victim},${LEGACY_HASH}\n`);
    assert.equal(real.code, 0, real.stderr);
    const owner = await fx.app.accounts.users.findByIdentifier(victim);
    assert.ok(owner && owner.id !== outsider.id);
    const confirm = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token: link } });
    assert.equal(confirm.statusCode, 409, confirm.body);
    assert.equal(confirm.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    assert.equal((await fx.app.accounts.users.findByIdentifier(victim))?.id, owner.id, "the address stays the victim's");
    assert.equal((await fx.app.accounts.users.getById(outsider.id))?.email, outsider.email, "the outsider's account did not move");
    assert.equal(await signsIn(victim, LEGACY_PASSWORD), 200);
  });

  it("attack: an outsider pre-positions accounts at `<victim's address>.<a domain of theirs>`; the administrator searches GET /api/v1/users?q=<the victim's full address> — the exact match is listed first, ahead of the outsider's look-alikes (was: a prefix search listed in random id order, a look-alike often first)", async () => {
    const readerId = await flows.userWith(["accounts.read"]);
    const reader = await flows.tokenFor(readerId, ["accounts.read"]);
    const victim = `new.hire-${++n}@corp.example`;
    // The migration (or the administrator's create) makes the victim's account.
    const real = await importFile(`email,password_hash\n${victim},${LEGACY_HASH}\n`);
    assert.equal(real.code, 0, real.stderr);
    const owner = await fx.app.accounts.users.findByIdentifier(victim);
    assert.ok(owner);
    // The outsider's look-alike: a mailbox at a domain the outsider owns whose address begins with the victim's, a real
    // account with a password. Ids are random, so the outsider makes look-alikes until one sorts before the victim's;
    // here its id is set to the lowest there is instead (base32: "2" sorts first), so that id order alone lists it first.
    const lookalike = `${victim}.hr-portal.test`;
    const made = await fx.user(lookalike);
    const lowest = `usr_${"2".repeat(26)}`;
    await fx.app.db.db.updateTable("users").set({ id: lowest }).where("id", "=", made.id).execute();
    assert.ok(lowest < owner.id, "control: the outsider's account sorts before the victim's");
    const res = await fx.server.inject({ method: "GET", url: `/api/v1/users?q=${encodeURIComponent(victim)}`, headers: { host: HOST, authorization: `Bearer ${reader}` } });
    assert.equal(res.statusCode, 200, res.body);
    const listed = (res.json() as { users: Array<{ id: string; email: string }> }).users.map((u) => u.email);
    assert.equal(
      listed[0], victim,
      `searching the victim's exact address lists ${JSON.stringify(listed.slice(0, 4))}: the outsider's ${lookalike} comes before the account the administrator looked up, because UserStore.page orders a prefix search by the random id only`,
    );
  });

  it("attack: look-alikes outnumber a page — paging GET /api/v1/users?q=<an exact address or username> lists the exact match first, on the first page only, and every other prefix match once, in id order, across pages of any size", async () => {
    const readerId = await flows.userWith(["accounts.read"]);
    const reader = await flows.tokenFor(readerId, ["accounts.read"]);
    const victim = `paged.hire-${++n}@corp.example`;
    const name = `paged-hire-${n}`;
    const owner = await fx.app.accounts.users.create({ email: victim, username: name });
    // More look-alikes than a page holds, by address and by username; and one that is no prefix match at all.
    const others: Array<{ id: string }> = [];
    for (let k = 0; k < 7; k++) others.push(await fx.app.accounts.users.create({ email: `${victim}.hr-portal${k}.test`, username: `${name}${k}` }));
    await fx.app.accounts.users.create({ email: `x.${victim}`, username: `x-${name}` });
    const rest = others.map((u) => u.id).sort();
    async function listAll(q: string, limit: number): Promise<string[]> {
      const ids: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 20; pages++) {
        const url: string = `/api/v1/users?limit=${limit}&q=${encodeURIComponent(q)}${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
        const res = await fx.server.inject({ method: "GET", url, headers: { host: HOST, authorization: `Bearer ${reader}` } });
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json() as { users: Array<{ id: string }>; nextCursor: string | null };
        assert.ok(body.users.length <= limit, `a page holds at most ${limit}`);
        ids.push(...body.users.map((u) => u.id));
        if (body.nextCursor === null) return ids;
        cursor = body.nextCursor;
      }
      throw new Error("the listing did not end");
    }
    for (const q of [victim, victim.toUpperCase(), name]) {
      for (const limit of [1, 2, 3, 7, 8, 50]) {
        assert.deepEqual(await listAll(q, limit), [owner.id, ...rest], `q=${q} limit=${limit}: the exact match first, then the other prefix matches once each, in id order`);
      }
    }
    // A prefix that is nobody's whole address or username: id order alone, as before.
    assert.deepEqual(await listAll(`${victim}.hr-portal`, 3), rest);
  });

  it("attack: an employee announces a move to a new address; an outsider asks to move their own account to it first — the confirmation mail the employee receives says which account it moves, so it cannot pass for the employee's own (ASVS 6.3.7) (was: both mails word for word the same but for the token)", async () => {
    const jane = await flows.signedIn(`jane-${++n}@corp.example`);
    const newAddress = `jane.doe-${n}@corp.example`;
    const outsider = await flows.signedIn(`jane.doe-${n}@attacker.test`);
    // Both ask, minutes apart: the employee as announced, the outsider right after.
    const own = await jane.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: newAddress } });
    assert.equal(own.statusCode, 202, own.body);
    fx.clock.advance(60_000);
    const theirs = await outsider.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: newAddress } });
    assert.equal(theirs.statusCode, 202, theirs.body);
    await fx.deliver();
    const links = fx.mailTo(newAddress).filter((m) => EMAIL_LINK.test(m.body));
    assert.equal(links.length, 2, "control: two confirmation mails in the employee's new mailbox");
    const stripped = links.map((m) => m.body.replace(EMAIL_LINK, "#token=…").replace(/^(Date|Message-ID):.*$/gim, ""));
    // What opening the newer one does: the outsider's account, whose password the outsider knows, takes the address.
    const token = (EMAIL_LINK.exec(links[1]!.body) as RegExpExecArray)[1] as string;
    // What holds: each mail names the account it moves (local part masked, domain in full) and says to leave a link that
    // is not yours alone; the later one says another account's link to this mailbox still works; and the page the link
    // opens is told the same, before the click, and no more.
    assert.match(links[0]!.body, /account that now uses ja\*\*\*@corp\.example\b/);
    assert.match(links[1]!.body, /account that now uses ja\*\*\*@attacker\.test\b/);
    for (const m of links) assert.match(m.body, /If this is not your account, do not open the link/);
    assert.doesNotMatch(links[0]!.body, /Another account also asked/);
    assert.match(links[1]!.body, /Another account also asked/);
    const shown = await fx.browser({ newDevice: true }).request("POST", "/confirm-email/account", { body: { token } });
    assert.equal(shown.statusCode, 200, shown.body);
    assert.deepEqual(shown.json(), { account: "ja***@attacker.test" });
    const opened = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } });
    const holder = await fx.app.accounts.users.findByIdentifier(newAddress);
    // The employee's own link, opened next.
    const ownToken = (EMAIL_LINK.exec(links[0]!.body) as RegExpExecArray)[1] as string;
    const late = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token: ownToken } });
    const outsiderIn = await signsIn(newAddress, outsider.password);
    assert.notEqual(
      stripped[0], stripped[1],
      `the two confirmation mails are word for word the same but for the token ("${links[1]!.subject}": "Someone (hopefully you) asked to make this the email address of their … account"), so the employee cannot tell the outsider's from their own; opening the outsider's (${opened.statusCode}) gave the address to ${holder?.id === outsider.id ? "the outsider's account" : holder?.id}, and the employee's own link is then answered ${late.statusCode} ${late.statusCode === 409 ? "(taken)" : ""} — the outsider, who knows the account's password, now signs in as the employee's new address (POST /auth/login ${outsiderIn}) and is what an administrator finds under it; composeConfirmMail names neither the account nor its current address`,
    );
  });
});
