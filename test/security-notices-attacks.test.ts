// Attacks on the security notices (ASVS 6.3.7; issue: "Users are told when their password, email, MFA factors or
// recovery codes change"): the HTTP auth routes queue a notice through auditAndNotify (src/http/auth/helpers.ts),
// and their tests pin that. These tests look at the other paths that change a user's authentication details — an
// administrator's bulk tools (users import --replace-passwords, containment levers) — and ask whether the owner
// hears of it. An insider (or an attacker holding an operator's credentials) must not be able to change a user's
// password or second factors without the user learning of it.
// Each test is an attack that must fail; "(was: …)" names what the code did before its fix. The levers queue a
// security notice through the job's notifier (ResetNotifier.enqueueNotice, src/contain/lever.ts), the importer through
// the `notices` every caller of it must name (ImportDeps), in the batch's transaction.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { importUsers, type ImportDeps } from "../src/accounts/import/importer.ts";
import { checkHeader, resolveMap } from "../src/accounts/import/mapping.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";

let fx: APIFixture;
before(async () => {
  fx = await openAPIFixture();
});
after(async () => {
  await fx.close();
});

/** Every outbox message queued to `address` (case-insensitive), with its kind. */
async function mailTo(address: string): Promise<Array<{ kind: string; subject: string; body: string }>> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address", "kind", "subject", "body_text"]).execute();
  return rows.filter((r) => r.to_address.toLowerCase() === address.toLowerCase()).map((r) => ({ kind: r.kind, subject: r.subject, body: r.body_text }));
}

function importDeps(): ImportDeps {
  const app = fx.app;
  // As the CLI builds them (src/cli/commands/users.ts): the app's outbox tells owners of a replaced password.
  return {
    database: app.db, users: app.accounts.users, passwords: app.accounts.passwords, audit: app.audit, clock: app.clock, jobs: app.accounts.jobs,
    notices: { outbox: app.accounts.outbox, appName: app.config.serviceName },
  };
}

async function importCSV(csv: string, replacePasswords: boolean): Promise<Awaited<ReturnType<typeof importUsers>>> {
  const map = resolveMap({ preset: null, map: {} });
  return importUsers(importDeps(), {
    format: "csv", onConflict: "update", replacePasswords, batchSize: 500, dryRun: false, skipBad: false, actor: "cli:insider", file: "users.csv",
    onHeader: (h: string[]) => checkHeader(h, map, {}),
    rules: { map, preset: null, source: "users.csv", salted: null },
    open: async function* () {
      yield csv;
    },
  });
}

describe("security notices for changes made by administrators (ASVS 6.3.7)", () => {
  it("attack: an insider's `users import --on-conflict update --replace-passwords` sets a password of their choosing on an existing account, and the owner is told (ASVS 6.3.7; was: never told)", async () => {
    const passwords = fx.app.accounts.passwords;
    const victim = await fx.app.accounts.users.create({
      email: "import-victim@example.org", passwordHash: await passwords.hash("the owner's own passphrase"), passwordScheme: passwords.defaultScheme,
    });
    const before = await mailTo(victim.email);
    // A hash of a password the insider knows, at the current policy (so the importer's "never weaker" rule allows it).
    const known = await passwords.hash("insider knows this one");
    const report = await importCSV(`email,password_hash\n${victim.email},"${known}"\n`, true);
    assert.equal(report.passwordsReplaced.length, 1, "precondition: the import replaced the stored password");
    const stored = await fx.app.accounts.users.getById(victim.id);
    assert.equal(await passwords.verify("insider knows this one", stored!.passwordHash!), true, "precondition: the insider's password now signs in");
    const after = await mailTo(victim.email);
    const notices = after.slice(before.length).filter((m) => m.kind.startsWith("security.password") || m.kind === "account.password-reset-link");
    assert.ok(notices.length >= 1, `the owner must be told their password was replaced; queued to them: ${JSON.stringify(after.map((m) => m.kind))}`);
  });

  it("an import that keeps the stored password (no --replace-passwords) changes no credential and mails nobody", async () => {
    // Pins the other side: a routine re-import (a display name fixed) must not bomb every user with notices.
    const passwords = fx.app.accounts.passwords;
    const user = await fx.app.accounts.users.create({ email: "import-quiet@example.org", passwordHash: await passwords.hash("quiet passphrase one"), passwordScheme: passwords.defaultScheme });
    const report = await importCSV(`email,display_name,password_hash\n${user.email},Quiet,"${await passwords.hash("another passphrase")}"\n`, false);
    assert.deepEqual([report.updated, report.passwordsKept, report.passwordsReplaced.length], [1, 1, 0]);
    assert.deepEqual(await mailTo(user.email), [], "no credential changed, so no notice");
  });

  it("attack: the require-mfa-reenrolment lever deletes a user's authenticator app and recovery codes unbeknown to the owner (was: the owner was never told) (ASVS 6.3.7)", async () => {
    const db = fx.app.db.db;
    const victim = await fx.user([], { email: "mfa-victim@example.org" });
    const now = fx.app.clock.now();
    await db.insertInto("mfa_totp").values({ user_id: victim.id, secret_ct: "ct", created_at: now, confirmed_at: now, last_step: null }).execute();
    await db.insertInto("mfa_recovery_codes").values([0, 1, 2].map((i) => ({ id: `rc_sn_${i}`, user_id: victim.id, code_hash: "h", created_at: now, used_at: null }))).execute();
    await db.insertInto("webauthn_credentials").values({ id: "cred_sn_1", user_id: victim.id, public_key: "pk", counter: 0, transports: "[]", created_at: now, last_used_at: null, name: "key" }).execute();
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["require-mfa-reenrolment"], scope: { ids: [victim.id] }, actor: "usr_insider" });
    const done = await runJob(deps, job.id);
    assert.equal(done.status, "done");
    assert.equal((await db.selectFrom("mfa_totp").select("user_id").where("user_id", "=", victim.id).execute()).length, 0, "precondition: the factor is gone");
    const kinds = (await mailTo(victim.email)).map((m) => m.kind);
    // With the factors gone, a password alone signs in again (and enrols the next factor): the owner must know.
    assert.ok(kinds.includes("security.mfa-removed"), `the owner must be told their sign-in factors were removed; queued to them: ${JSON.stringify(kinds)}`);
  });

  it("attack: the unlink-sso lever removes a user's linked sign-in identity unbeknown to the owner (was: the owner was never told) (ASVS 6.3.7)", async () => {
    const db = fx.app.db.db;
    const victim = await fx.user([], { email: "sso-victim@example.org" });
    const now = fx.app.clock.now();
    await db.insertInto("identities").values({ id: "idn_sn_1", user_id: victim.id, provider: "github", subject: "12345", access_token_ct: null, refresh_token_ct: null, created_at: now, last_used_at: null }).execute();
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["unlink-sso"], scope: { ids: [victim.id] }, actor: "usr_insider" });
    assert.equal((await runJob(deps, job.id)).status, "done");
    assert.equal((await db.selectFrom("identities").select("id").where("user_id", "=", victim.id).execute()).length, 0, "precondition: the identity is gone");
    const kinds = (await mailTo(victim.email)).map((m) => m.kind);
    assert.ok(kinds.some((k) => k.startsWith("security.")), `the owner must be told a way to sign in was removed; queued to them: ${JSON.stringify(kinds)}`);
  });

  it("the invalidate-passwords lever tells each owner (a reset link in the batch's transaction), and a re-run mails nobody twice", async () => {
    const victim = await fx.user([], { email: "inval-victim@example.org" });
    const passwords = fx.app.accounts.passwords;
    await fx.app.db.db.updateTable("users").set({ password_hash: await passwords.hash("owner passphrase two"), password_scheme: passwords.defaultScheme }).where("id", "=", victim.id).execute();
    const deps = containDeps(fx.app);
    for (let i = 0; i < 2; i++) {
      const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [victim.id] }, actor: "usr_insider" });
      assert.equal((await runJob(deps, job.id)).status, "done");
    }
    const mails = await mailTo(victim.email);
    assert.equal(mails.length, 1, `one mail to the owner, not one per run: ${JSON.stringify(mails.map((m) => m.kind))}`);
  });
});
