// An email-change link mail waits in the outbox (the relay is down: the fixture's sender runs only on deliver()) while
// something happens that makes confirm refuse its link: is it still sent? The claim asks the link stores (linkStatesIn,
// src/app/link-states.ts) and records dead, with the reason in words, a link mail whose link would be refused.
// (1) The address it moves to was taken meanwhile by another account (an administrator's create through the API or the
// CLI, `users import`, another account's completed change): confirm answers 409 taken, and the mail went out all the
// same, its page naming the account. Not when the only holder is an unfinished sign-up, which confirm takes over.
// (2) The account's own state (disabled by an import, its password invalidated by containment, changed by its owner):
// each already ends the link at claim another way (its row spent, or the revocation stamp raised), pinned here.
// Both dialects; the statement count on SQLite.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { AuthFixture } from "../src/http/auth/test-client.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { adminCreates } from "./helpers/admin-create.ts";
import { authFixtureOn, authFlows, EMAIL_LINK } from "./helpers/auth-flows.ts";
import { bulwarkInProcess, fixtureCliEnv } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { statementsDuring } from "./helpers/statements.ts";

const LABEL = "outbox-email-change-claim";
const TAKEN = /the address it would move the account to is another account's now/;
const NEW_PASSWORD = "copper kettles sing at dawn";

forEachDialect("outbox: an email-change link mail confirm would refuse is not sent", (dx) => {
  let fx: AuthFixture;
  let writer = "";
  const flows = authFlows(() => fx);
  const creates = adminCreates(() => fx, dx, LABEL, () => writer);
  let n = 0;
  const files = mkdtempSync(join(tmpdir(), "ecc-import-"));
  const address = (what: string): string => `ecc-${what}-${++n}@example.org`;
  before(async () => {
    fx = await authFixtureOn(dx, LABEL, { BULWARK_REGISTRATION: "open" });
    const scopes = ["accounts.read", "accounts.write"];
    writer = await flows.tokenFor(await flows.userWith(scopes), scopes);
  });
  after(async () => {
    await fx.close();
    rmSync(files, { recursive: true, force: true });
  });

  async function linkRows(to: string): Promise<Array<{ status: string; last_error: string | null }>> {
    return fx.app.db.db.selectFrom("outbox_messages").select(["status", "last_error"])
      .where("to_address", "=", to).where("kind", "=", "account.email-change-link").orderBy("created_at").orderBy("id").execute();
  }

  /** A signed-in owner asks to move to `moved` (a new address unless given); the link mail waits. */
  async function pendingChange(label: string, moved = address(`${label}-new`)) {
    const owner = await flows.signedIn(address(label));
    const asked = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: moved } });
    assert.equal(asked.statusCode, 202, asked.body);
    assert.equal((await linkRows(moved)).filter((r) => r.status === "queued").length, 1, "control: the link mail waits");
    return { ...owner, moved };
  }

  /** After the relay recovers: what confirm answers for each email-change link mail `to` received. */
  async function delivered(to: string): Promise<string[]> {
    fx.clock.advance(1000);
    await fx.deliver();
    const answers: string[] = [];
    for (const m of fx.mailTo(to).filter((mail) => EMAIL_LINK.test(mail.body))) {
      const confirmed = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token: EMAIL_LINK.exec(m.body)![1]! } });
      answers.push(`${confirmed.statusCode} ${confirmed.body.slice(0, 160)}`);
    }
    return answers;
  }

  /** The owner's waiting link mail died at claim with `reason`, and nothing reached `moved`. */
  async function diedAtClaim(owner: { moved: string }, reason: RegExp, what: string): Promise<void> {
    const answers = await delivered(owner.moved);
    const [row] = await linkRows(owner.moved);
    assert.deepEqual(answers, [], `the email-change link mail was sent after ${what} (confirm answered ${JSON.stringify(answers)}; outbox row ${row?.status}, "${row?.last_error}")`);
    assert.equal(row?.status, "dead");
    assert.match(row?.last_error ?? "", reason);
  }

  function importCSV(csv: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
    const file = join(files, `import-${++n}.csv`);
    writeFileSync(file, csv);
    const url = dx.lastTarget().databaseURL;
    return bulwarkInProcess(["users", "import", file, "--json", ...args], fixtureCliEnv(fx.app.config.dataDir, url ? { url, masterKey: testMasterKey(LABEL) } : null));
  }

  it("attack: an administrator creates an account through the API for the address a pending email-change link moves to, while its mail waits — the mail dies at claim as address taken (ASVS 6.3.7, 6.4.1) (was: sent, and confirm answered 409 taken)", async () => {
    const owner = await pendingChange("api");
    const made = await creates.api({ email: owner.moved });
    assert.equal(made.statusCode, 201, made.body);
    await diedAtClaim(owner, TAKEN, "an administrator's create (API) took its address");
  });

  it("attack: an administrator creates an account with the CLI for the address a pending email-change link moves to — the mail dies at claim as address taken (ASVS 6.3.7, 6.4.1) (was: sent, and confirm answered 409 taken)", async () => {
    const owner = await pendingChange("cli");
    const made = await creates.cli(["--email", owner.moved]);
    assert.equal(made.code, 0, made.stderr);
    await diedAtClaim(owner, TAKEN, "an administrator's create (CLI) took its address");
  });

  it("attack: `users import` brings in an account with the address a pending email-change link moves to — the mail dies at claim as address taken (ASVS 6.3.7, 6.4.1) (was: sent, and confirm answered 409 taken)", async () => {
    const owner = await pendingChange("import");
    const imported = await importCSV(`email\n${owner.moved}\n`);
    assert.equal(imported.code, 0, imported.stderr);
    await diedAtClaim(owner, TAKEN, "an import took its address");
  });

  it("attack: another account completes its own change to the same address while the first account's link mail waits — that mail dies at claim as address taken (ASVS 6.3.7, 6.4.1) (was: sent, and confirm answered 409 taken)", async () => {
    const moved = address("race-new");
    const rival = await flows.signedIn(address("rival"));
    const asked = await rival.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: moved } });
    assert.equal(asked.statusCode, 202, asked.body);
    const token = await flows.tokenIn(moved, EMAIL_LINK); // delivered: the rival holds its link
    const owner = await pendingChange("race", moved);
    const confirmed = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    fx.clock.advance(1000);
    await fx.deliver();
    const rows = await linkRows(moved);
    assert.equal(fx.mailTo(moved).filter((m) => EMAIL_LINK.test(m.body)).length, 1, `the owner's link mail was sent after another account took the address (link mails received: the rival's and the owner's; rows ${JSON.stringify(rows)})`);
    const dead = rows.filter((r) => r.status === "dead");
    assert.equal(dead.length, 1, `rows ${JSON.stringify(rows)}`);
    assert.match(dead[0]!.last_error ?? "", TAKEN);
    assert.equal(owner.moved, moved);
  });

  it("an email-change link mail whose address only an unfinished sign-up holds is still sent, and confirm takes the address over", async () => {
    const owner = await pendingChange("squat");
    const squat = await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: owner.moved } });
    assert.equal(squat.statusCode, 202, squat.body);
    const answers = await delivered(owner.moved);
    assert.equal(answers.length, 1, `the link mail was not sent: ${JSON.stringify(await linkRows(owner.moved))}`);
    assert.match(answers[0]!, /^200 /);
  });

  it("an email-change link mail is not sent once an import disabled the account (already: the import's end of sessions raises the stamp)", async () => {
    const owner = await pendingChange("disabled");
    fx.clock.advance(1000);
    const imported = await importCSV(`email,status\n${owner.email},disabled\n`, ["--on-conflict", "update"]);
    assert.equal(imported.code, 0, imported.stderr);
    await diedAtClaim(owner, /withdrawn when the account's sessions were ended/, "an import disabled the account");
  });

  it("an email-change link mail is not sent once containment invalidated the account's password (already: its links are spent)", async () => {
    const owner = await pendingChange("invalidated");
    fx.clock.advance(1000);
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [owner.id] }, actor: "responder" });
    await runJob(deps, job.id);
    await diedAtClaim(owner, /used or withdrawn/, "containment invalidated the password");
  });

  it("an email-change link mail is not sent once its owner changed the password (already: the change spends the links)", async () => {
    const owner = await pendingChange("changed");
    fx.clock.advance(1000);
    const changed = await owner.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: NEW_PASSWORD } });
    assert.equal(changed.statusCode, 200, changed.body);
    await diedAtClaim(owner, /used or withdrawn|withdrawn when/, "the owner changed the password");
  });

  it("the claim judges the addresses of a batch of email-change link mails in two reads of the accounts beside the address read it had", async (t) => {
    if (dx.lastTarget().databaseURL) return t.skip("statements counted on SQLite");
    await fx.deliver();
    const owners = [];
    for (let i = 0; i < 3; i++) owners.push(await pendingChange(`batch${i}`));
    await fx.app.accounts.users.create({ email: owners[0]!.moved });
    const statements = await statementsDuring(() => fx.app.accounts.outbox.claim({ claimer: "ecc-stmt", limit: 20, leaseMs: 60_000 }));
    // Beside the claim's own read of its accounts' addresses: the holders of the batch's addresses, then which of those
    // are unfinished sign-ups (one holds an address here; none would skip that read).
    const reads = statements.filter((s) => /from "users"/i.test(s) && !/^select "id", "email" from "users" where "id" in/.test(s));
    assert.equal(reads.length, 2, `the claim's reads of users: ${reads.join(" | ")}`);
    assert.ok(reads.every((s) => / in \(\?, \?, \?\)| in \(\?\)/.test(s)), "each read batched over the claim's links");
    assert.equal(statements.filter((s) => /^select .* from "email_change_tokens" where "id" in/.test(s)).length, 1, "the links' rows in one read");
  });
});
