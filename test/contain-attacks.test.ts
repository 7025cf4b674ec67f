// Attacks on containment (levers, jobs, dry run, resume, undo, the `contain` CLI and /api/v1/contain). Each test is an
// attack, or a check an operator in the middle of a breach must be able to trust; it passes when the product is right.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { containDeps, createContainJob, dryRunContain, resumeJob, runJob, type ResetNotifier } from "../src/contain/index.ts";
import { resetNotifierFor } from "../src/contain/service.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { bulwarkInProcess, initSite, type CLISite } from "./helpers/cli.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const HOUR = 3_600_000;
// C0 but newline, DEL and C1: what must never reach the operator's terminal from input the CLI reads.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

interface JobBody { id: string; status: string; total: number; done: number; counts: Record<string, Record<string, number>> }

describe("containment through the account core (real app, real HTTP)", () => {
  const fx = sharedFixture();

  // invalidate-passwords spends the reset links issued before it, as it spends email-change links: a link in a queued
  // mail (clear text in outbox_messages, in any dump) must not set a password after the containment.
  it("attack: a password-reset link issued before invalidate-passwords no longer works after it (ASVS 6.4.3, 2.3.1)", async () => {
    const ana = await fx.user("ana-reset@example.org");
    const stolen = await fx.app.accounts.passwordReset.issue(ana.id);
    assert.ok(stolen.issued);
    fx.clock.advance(60_000);
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [ana.id] }, actor: "t" });
    assert.equal((await runJob(deps, job.id)).status, "done");
    assert.notEqual((await fx.browser().login(ana.email, ana.password)).statusCode, 200, "the old password is dead");
    const taken = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: stolen.token, newPassword: "attacker picked this passphrase" } });
    assert.equal(taken.statusCode, 400, `the pre-containment link still reset the password: ${taken.body}`);
    assert.notEqual((await fx.browser().login(ana.email, "attacker picked this passphrase")).statusCode, 200, "the holder of the old link is not in");
  });

  // The "login inside the window" half of the scope also reads the logins' audit events: users.last_login_at holds
  // only the newest login, which a later one overwrites.
  it("attack: --active-between names a user whose only in-window login was followed by a later one (ASVS 2.2.3)", async () => {
    const bob = await fx.user("bob-window@example.org");
    fx.clock.advance(HOUR);
    const from = fx.clock.now();
    fx.clock.advance(HOUR);
    const b = fx.browser();
    assert.equal((await b.login(bob.email, bob.password)).statusCode, 200);
    assert.ok((await b.request("POST", "/auth/logout", { csrf: true })).statusCode < 300, "signed out: the in-window session is gone");
    fx.clock.advance(HOUR);
    const to = fx.clock.now();
    fx.clock.advance(HOUR);
    assert.equal((await fx.browser().login(bob.email, bob.password)).statusCode, 200, "a login after the window");
    const logins = await fx.app.db.db.selectFrom("audit_events").select("at").where("type", "=", "auth.login.succeeded").where("subject", "=", bob.id).execute();
    assert.ok(logins.some((e) => Number(e.at) >= from && Number(e.at) <= to), "the audit log holds the in-window login");
    const report = await dryRunContain(containDeps(fx.app), { levers: ["invalidate-passwords"], scope: { activeFrom: from, activeTo: to }, actor: "t" });
    assert.equal(report.users, 1, "the user who signed in during the window of exposure is in its scope");
  });

  it("attack: a batch that fails after queuing mails, then resumes, mails each user exactly one live link, and no link text reaches the audit log, the job row or the API (ASVS 2.3.3, 16.2.5)", async () => {
    const users = [];
    for (let i = 0; i < 5; i++) users.push(await fx.user(`mail${i}@example.org`));
    const real = resetNotifierFor(fx.app);
    let failOn: string | null = (users[3] as { id: string }).id; // second of batch 2: the first one's mail is queued in it
    const flaky: ResetNotifier = {
      async enqueueReset(trx, user, jobId) {
        if (user.id === failOn) {
          failOn = null;
          throw new Error("relay dropped the connection");
        }
        await real.enqueueReset(trx, user, jobId);
      },
    };
    const deps = containDeps(fx.app, flaky);
    const ids = users.map((u) => u.id);
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids }, actor: "t", batchSize: 2 });
    await assert.rejects(runJob(deps, job.id), /relay dropped the connection/);
    assert.equal((await fx.app.accounts.jobs.get(job.id)).status, "failed");
    const done = await resumeJob(deps, job.id, { actor: "t" });
    assert.equal(done.status, "done");
    assert.equal(done.counts["invalidate-passwords.resetEmailsQueued"], 5);
    // Two jobs at once over the same users and five more: every user is mailed by exactly one of them.
    const more: string[] = [];
    for (let i = 0; i < 5; i++) more.push((await fx.user(`mail-twin${i}@example.org`)).id);
    const twins = await Promise.all([0, 1].map(async () => {
      const j = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [...ids, ...more] }, actor: "t", batchSize: 1 });
      return runJob(deps, j.id);
    }));
    assert.equal(twins.reduce((n, j) => n + (j.counts["invalidate-passwords.resetEmailsQueued"] ?? 0), 0), 5);
    const addresses = [...users.map((u) => u.email), ...Array.from({ length: 5 }, (_, i) => `mail-twin${i}@example.org`)];
    const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["id", "to_address"]).where("kind", "=", "account.containment-reset-link").where("to_address", "in", addresses).execute();
    // Through the outbox, which opens the bodies sealed at rest.
    const mails = await Promise.all(rows.map(async (r) => ({ to_address: r.to_address, body_text: (await fx.app.accounts.outbox.get(r.id)).text })));
    const perUser = new Map<string, number>();
    for (const m of mails) perUser.set(m.to_address, (perUser.get(m.to_address) ?? 0) + 1);
    assert.deepEqual([...perUser.values()], Array(10).fill(1), "one mail per user, none twice, none missing");
    const links = mails.map((m) => /#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/.exec(m.body_text)?.[1] as string);
    for (const link of links) assert.equal((await fx.app.accounts.passwordReset.check(link)).valid, true, "the link in the one mail is live");
    const responder = await fx.user("responder-mail@example.org", { roles: ["admin"] });
    await ensureSecondFactor(fx.app, responder.id); // the MFA policy holds an administrator's token while it has no factor
    const apiToken = (await fx.app.accounts.tokens.create(responder.id, { name: "ir", scopes: ["contain.run"] })).token;
    const view = await fx.server.inject({ method: "GET", url: `/api/v1/contain/jobs/${job.id}`, headers: { authorization: `Bearer ${apiToken}` } });
    assert.equal(view.statusCode, 200, view.body);
    const audit = JSON.stringify(await fx.app.db.db.selectFrom("audit_events").selectAll().execute());
    const jobs = JSON.stringify(await fx.app.db.db.selectFrom("jobs").selectAll().execute());
    for (const link of links) {
      const secret = link.split(".")[1] as string;
      for (const [where, text] of [["audit", audit], ["jobs", jobs], ["api", view.body]] as const) assert.equal(text.includes(secret), false, `reset secret in ${where}`);
    }
  });
});

describe("/api/v1/contain: undo", () => {
  let api: APIFixture;
  before(async () => {
    api = await openAPIFixture();
  });
  after(async () => {
    await api.close();
  });

  // An administrator's require-password-change on an account a job expired makes the expiry theirs (as a relock does
  // for a lock): undoing the job leaves it.
  it("attack: undoing expire-passwords does not cancel an administrator's require-password-change made after the job (ASVS 8.3.2)", async () => {
    const admin = await api.user(["admin"]);
    const token = await api.token(admin.id, ["admin"]);
    const victim = await api.user([]);
    await api.app.db.db.updateTable("users").set({ password_hash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", password_scheme: "argon2id" }).where("id", "=", victim.id).execute();
    const run = await api.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["expire-passwords"], scope: { ids: [victim.id] } } });
    assert.equal(run.statusCode, 202, run.body);
    const job = await api.finishedJob<JobBody>(token, (run.json() as { job: JobBody }).job.id);
    assert.equal(job.counts["expire-passwords"]?.["users"], 1);
    const decided = await api.call("POST", `/api/v1/users/${victim.id}/require-password-change`, { token });
    assert.equal(decided.statusCode, 200, decided.body);
    const undo = await api.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
    assert.equal(undo.statusCode, 202, undo.body);
    assert.equal((await api.finishedJob<JobBody>(token, (undo.json() as { job: JobBody }).job.id)).status, "done");
    const user = (await api.call("GET", `/api/v1/users/${victim.id}`, { token })).json() as { user: { passwordMustChange: boolean } };
    assert.equal(user.user.passwordMustChange, true, "the administrator's require-password-change stands after the undo");
  });

  it("attack: an undo of a job still running, or failed part-way, is refused and restores nothing; resumed to the end, it undoes every account", async () => {
    const admin = await api.user(["admin"]);
    const token = await api.token(admin.id, ["admin"]);
    await api.app.accounts.roles.create({ name: "rt-batch", permissions: [] }, "test");
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const u = await api.user([]);
      await api.app.accounts.roles.grant(u.id, "rt-batch", "test");
      ids.push(u.id);
    }
    const locked = async (): Promise<number> => (await api.app.db.db.selectFrom("users").select("id").where("id", "in", ids).where("locked_at", "is not", null).execute()).length;
    const undos = async (): Promise<number> => (await api.app.accounts.jobs.list({ kind: "contain-undo" })).filter((j) => (j.spec as { undoOf?: string }).undoOf === job.id).length;
    const deps = containDeps(api.app);
    const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { roles: ["rt-batch"] }, actor: admin.id, batchSize: 1 });
    assert.equal((await runJob(deps, job.id, { stopAfterBatches: 1 })).status, "running");
    const refusedRunning = await api.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
    assert.equal(refusedRunning.statusCode, 400, refusedRunning.body);
    await api.app.accounts.jobs.markFailed(job.id, "disk full");
    const refusedFailed = await api.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
    assert.equal(refusedFailed.statusCode, 400, refusedFailed.body);
    assert.equal(await locked(), 1, "the committed batch stays in force");
    assert.equal(await undos(), 0, "no undo job was created");
    assert.equal((await resumeJob(deps, job.id, { actor: "t" })).status, "done");
    assert.equal(await locked(), 4);
    const undo = await api.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
    assert.equal(undo.statusCode, 202, undo.body);
    assert.equal((await api.finishedJob<JobBody>(token, (undo.json() as { job: JobBody }).job.id)).status, "done");
    assert.equal(await locked(), 0);
  });

  it("attack: a responder cannot undo its own lock of an account that has since been made an administrator (ASVS 8.2.2, 8.3.2)", async () => {
    const responder = await api.user(["contain.run"]);
    const token = await api.token(responder.id, ["contain.run"]);
    const suspect = await api.user([]);
    const run = await api.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [suspect.id] } } });
    assert.equal(run.statusCode, 202, run.body);
    const job = await api.finishedJob<JobBody>(token, (run.json() as { job: JobBody }).job.id);
    assert.equal(job.total, 1);
    await api.app.accounts.roles.grant(suspect.id, "admin", "test");
    const undo = await api.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
    assert.equal(undo.statusCode, 403, undo.body);
    assert.equal((undo.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_OUTRANKED");
    assert.notEqual((await api.app.accounts.users.getById(suspect.id))?.lockedAt, null, "the administrator stays locked");
  });
});

describe("bulwark contain (CLI)", () => {
  let root: string;
  let site: CLISite;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "bulwark-redteam-contain-"));
    site = await initSite(join(root, "site"), { here: true });
    assert.equal((await site.runHere(["dev", "seed", "--users", "40", "--sessions-per-user", "1", "--tokens-per-user", "1"])).code, 0);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  /** Every table of the site's database, rows in a stable order. */
  function snapshot(): Map<string, string[]> {
    const tables = site.rows("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name").map((r) => String(r["name"]));
    return new Map(tables.map((t) => [t, site.rows(`select * from "${t}"`).map((r) => JSON.stringify(r)).sort()]));
  }

  function assertOnlyAudited(before: Map<string, string[]>, after: Map<string, string[]>, type: string): void {
    for (const [table, rows] of before) {
      if (table === "audit_events" || table === "audit_head") continue;
      assert.deepEqual(after.get(table), rows, `a dry run changed ${table}`);
    }
    const added = (after.get("audit_events") ?? []).filter((r) => !(before.get("audit_events") ?? []).includes(r)).map((r) => (JSON.parse(r) as { type: string }).type);
    assert.deepEqual(added, [type]);
  }

  it("attack: a dry run of every lever over --all, and an undo's dry run, write nothing but their one audit event (whole database compared)", async () => {
    const all = ["lock-accounts", "revoke-sessions", "revoke-tokens", "invalidate-passwords", "expire-passwords", "require-mfa-reenrolment", "unlink-sso", "demote-inactive-admins", "rotate-keys"];
    let before = snapshot();
    const dry = await site.runHere(["contain", ...all, "--all", "--dry-run", "--json", "--inactive-days", "1"]);
    assert.equal(dry.code, 0, dry.stderr);
    const report = JSON.parse(dry.stdout) as { users: number; levers: Record<string, { counts: Record<string, number> }> };
    assert.equal(report.users, 40);
    assert.equal(report.levers["revoke-sessions"]?.counts["sessions"], 40, "the dry run saw the live sessions it left alone");
    assertOnlyAudited(before, snapshot(), "contain.dry-run");
    const run = await site.runHere(["contain", "lock-accounts", "expire-passwords", "--scheme", "argon2id", "--yes", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const job = JSON.parse(run.stdout) as { id: string; total: number };
    assert.ok(job.total > 0);
    before = snapshot();
    const undoDry = await site.runHere(["contain", "undo", job.id, "--dry-run", "--json"]);
    assert.equal(undoDry.code, 0, undoDry.stderr);
    assert.equal((JSON.parse(undoDry.stdout) as { counts: Record<string, { restored: number }> }).counts["lock-accounts"]?.restored, job.total);
    assertOnlyAudited(before, snapshot(), "contain.undo.dry-run");
  });

  it("attack: bad input with --json exits 2 with nothing on stdout and no job, and a finished job is not run again (DESIGN exit codes)", async () => {
    const jobs = (): number => site.rows("select count(*) as n from jobs")[0]?.["n"] as number;
    const done = await site.runHere(["contain", "revoke-tokens", "--role", "admin", "--yes", "--json"]);
    assert.equal(done.code, 0, done.stderr);
    const id = (JSON.parse(done.stdout) as { id: string }).id;
    const count = jobs();
    const events = site.rows("select count(*) as n from audit_events")[0]?.["n"];
    for (const args of [
      ["contain", "status", "job_aaaaaaaaaaaaaaaaaaaaaaaaaa", "--json"],
      ["contain", "lock-accounts", "--all", "--batch-size", "0", "--json"],
      ["contain", "lock-accounts", "--all", "--batch-size", "1.5", "--json"],
      ["contain", "lock-accounts", "--role", "admni", "--yes", "--json"],
      ["contain", "lock-accounts", "--all", "--role", "admin", "--json"],
      ["contain", "lock-accounts", "--last-login-after", "2026-01-02", "--last-login-before", "2026-01-01", "--json"],
      ["contain", "resume", id, "--json"],
      ["contain", "undo", id, "--json"],
    ]) {
      const r = await bulwarkInProcess(args, site.env);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "", `${args.join(" ")} printed to stdout`);
      assert.match(r.stderr, /^bulwark: /);
    }
    assert.equal(jobs(), count, "no job was created or resumed");
    assert.equal(site.rows("select count(*) as n from audit_events")[0]?.["n"], events, "nothing was audited as done");
  });

  // Entries of an --ids file that name nobody are echoed in the notes: their control characters are shown as \xNN.
  it("attack: terminal controls in an --ids file never reach the operator's terminal (ASVS 1.3.3, 16.4.1)", async () => {
    const ids = site.file("ids.txt", "\u001b[1A\u001b[2Kdry run: 0 users in scope\u001b]0;owned\u0007@example.org\n\u009b2Jnobody@example.org\n");
    // Spawned: the check reads all of stderr, log lines included, which an in-process run sends elsewhere.
    for (const args of [["--dry-run"], ["--yes"]]) {
      const r = await site.run(["contain", "lock-accounts", "--ids", ids, ...args]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /2 --ids entries name no user/);
      assert.doesNotMatch(r.stdout + r.stderr, CONTROLS, `raw controls in: ${JSON.stringify(r.stdout)}`);
    }
  });
});
