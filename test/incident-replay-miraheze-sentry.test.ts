// Incident replay, red team: Miraheze's compromise runbook (seed 002) and Sentry 2016 (seed 004), run end to end with
// Bulwark as the responder's tool, and attacked where the run could let the responder down.
//
// - Miraheze (seed 002): a standing page of what to do when a server, a key or an account is compromised: "ensure no one
//   can gain access", regenerate every private key (Salt, SSL, DKIM), reset the passwords a compromised database held,
//   clear the session store (Redis), and tell the users whose data was exposed, by email. The responder runs
//   `bulwark contain …` from a shell on the server (the CLI, through test/helpers/cli.ts), users act over the HTTP app.
// - Sentry 2016 (seed 004): backups of the user table (bcrypt hashes) and API tokens were readable by any AWS account;
//   Sentry revoked credentials, forced a password change on every account and emailed its customers, then found nothing
//   had been read and withdrew the forced change. The responder here runs `revoke-tokens expire-passwords --all` over
//   a store of a few hundred accounts (argon2id, bcrypt, unsalted MD5/SHA-1, passkey holders), then `contain undo`.
//
// The attackers: whoever copied the data dir or a backup of it (master.key sits beside bulwark.db), then reads later
// copies too (Miraheze's Bacula password, Sentry's bucket); whoever phished a user's password and moved the account's
// address before the breach was noticed; whoever cracked a leaked hash and races the owner through the forced change;
// whoever stole session cookies from the session store. And the operator under stress, whose shell is not the
// server's environment. Each test is one attack that must fail; the four findings were fixed the same day and their
// tests say "(was: …)". SQLite only: these are runs of the CLI and the HTTP app, the store suites cover both dialects.
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { MASTER_KEY_FILE, openApp, SQLITE_FILE } from "../src/app/index.ts";
import { seedUsers } from "../src/dev/seed.ts";
import { authFixture, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

/** How many synthetic accounts the store holds besides the ones each test makes. */
const SEEDED = 300;

describe("incident replay: Miraheze's runbook and Sentry 2016, with Bulwark as the responder's tool", () => {
  let fx: AuthFixture;
  let scratch: string;
  let made = 0;

  before(async () => {
    fx = await authFixture();
    // The CLI runs on the real clock; the server's manual clock is kept at the same time before every step.
    fx.clock.set(Date.now());
    scratch = mkdtempSync(join(tmpdir(), "bulwark-replay-"));
    const report = await seedUsers({ database: fx.app.db, clock: fx.app.clock, random: fx.app.random, passwords: fx.app.accounts.passwords }, { users: SEEDED, tokensPerUser: 1, sessionsPerUser: 1 });
    assert.equal(report.users, SEEDED);
  });
  after(async () => {
    await fx.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** The operator's shell on the server: the data dir, and the server's public URL unless `shell` says otherwise. */
  function operatorEnv(shell: Record<string, string> = {}): NodeJS.ProcessEnv {
    return { BULWARK_DATA_DIR: fx.app.config.dataDir, BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_PUBLIC_URL: ORIGIN, ...shell };
  }

  /** Runs `bulwark ARGS` as the operator; the server's clock is brought to the time the CLI acts at. */
  async function operator(args: string[], shell: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    fx.clock.set(Date.now());
    const result = await bulwarkInProcess(args, operatorEnv(shell));
    fx.clock.set(Date.now());
    return result;
  }

  /** An --ids file naming these users, as a responder writes one from a ticket. */
  function idsFile(...ids: string[]): string {
    const path = join(scratch, `ids-${++made}.txt`);
    writeFileSync(path, `# incident ${made}\n${ids.join("\n")}\n`);
    return path;
  }

  /** A request with an API token (an automation, or whatever an attacker minted). */
  function withToken(method: "GET" | "POST", url: string, token: string, body?: unknown): Promise<LightMyRequestResponse> {
    return fx.server.inject({
      method, url, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  }

  // Sentry's order: revoke every API token and force a password change on every account, in one job; users act; the
  // investigation finds nothing was read, so the forced change is withdrawn (`contain undo`). The undo reverses what
  // can be reversed and nothing else: a revoked token is one the leaked backup held, and a token it minted is the
  // attacker's persistence. A user who already chose a new password keeps it, and is not forced again.
  it("attack: withdrawing Sentry's forced password change (contain undo) revives neither a revoked API token nor the token it minted (ASVS 7.4.1)", async () => {
    await fx.app.accounts.roles.create({ name: "ci-reader", permissions: ["audit.read"] }, "test");
    const ana = await fx.user("ana.sentry@example.org", { roles: ["ci-reader"] });
    const bob = await fx.user("bob.sentry@example.org");
    const parent = (await fx.app.accounts.tokens.create(ana.id, { name: "ci", scopes: ["audit.read"] })).token;
    // The token in the backup mints a child of its own before anyone notices (no fresh session needed for a token).
    const minted = await withToken("POST", "/api/v1/tokens", parent, { name: "persistence", scopes: ["audit.read"] });
    assert.equal(minted.statusCode, 201, minted.body);
    const child = (minted.json() as { token: string }).token;
    assert.equal((await withToken("GET", "/api/v1/audit/events?limit=1", child)).statusCode, 200, "the minted token works before the response");

    const dry = await operator(["contain", "revoke-tokens", "expire-passwords", "--all", "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    const forecast = JSON.parse(dry.stdout) as { users: number; levers: Record<string, { counts: Record<string, number> }> };
    assert.ok(forecast.users >= SEEDED + 2, "every account is in scope");
    const run = await operator(["contain", "revoke-tokens", "expire-passwords", "--all", "--yes", "--json", "--incident", "sentry-2016"]);
    assert.equal(run.code, 0, run.stderr);
    const job = JSON.parse(run.stdout) as { id: string; status: string; counts: Record<string, Record<string, number>> };
    assert.equal(job.status, "done");
    assert.equal(job.counts["expire-passwords"]?.["users"], forecast.levers["expire-passwords"]?.counts["users"], "the run expired what the dry run said");
    for (const token of [parent, child]) assert.equal((await withToken("GET", "/api/v1/audit/events?limit=1", token)).statusCode, 401, "every token from before the job is dead");

    // Ana signs in with the old password (it works once more) and chooses a new one at the gate; Bob only signs in.
    const b = fx.browser();
    const gated = await b.login(ana.email, ana.password);
    assert.equal(gated.json().mustChangePassword, true, gated.body);
    const changed = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: ana.password, newPassword: "a passphrase ana chose after the leak" } });
    assert.equal(changed.statusCode, 200, changed.body);
    assert.equal((await fx.browser().login(bob.email, bob.password)).json().mustChangePassword, true);

    const undoDry = await operator(["contain", "undo", job.id, "--dry-run", "--json"]);
    assert.equal(undoDry.code, 0, undoDry.stderr);
    const plan = JSON.parse(undoDry.stdout) as { counts: Record<string, { restored: number; skipped: number }>; leftAlone: Array<{ userId: string }> };
    const undo = await operator(["contain", "undo", job.id, "--yes", "--json"]);
    assert.equal(undo.code, 0, undo.stderr);
    const undone = JSON.parse(undo.stdout) as { status: string; counts: Record<string, Record<string, number>>; leftAlone: Array<{ userId: string }> };
    assert.equal(undone.status, "done");
    assert.deepEqual(undone.counts["expire-passwords"], plan.counts["expire-passwords"], "the undo did what its dry run said");
    assert.deepEqual(undone.leftAlone.map((r) => r.userId), [ana.id], "only the user who changed the password since is left alone");

    assert.equal((await fx.browser().login(bob.email, bob.password)).json().mustChangePassword, false, "the forced change is withdrawn");
    assert.equal((await fx.browser().login(ana.email, "a passphrase ana chose after the leak")).json().mustChangePassword, false, "ana keeps her new password, not forced again");
    const stillExpired = await fx.app.db.db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).where("password_must_change", "=", 1).executeTakeFirstOrThrow();
    assert.equal(Number(stillExpired.n), 0, "no account (legacy hashes and passkey holders included) stays expired");
    for (const token of [parent, child]) assert.equal((await withToken("GET", "/api/v1/audit/events?limit=1", token)).statusCode, 401, "the undo revived no token");
  });

  // Whoever cracked a hash from the leaked backup signs in with it after expire-passwords (the old password works once
  // more): the session is held at the password-change gate, on /api/v1 too. It must not turn into a lasting credential
  // (an API token outlives the password change) or move the account's address before the password is changed.
  it("attack: a cracked password signing in during the forced change can neither mint an API token nor move the address (ASVS 6.2.3, 7.5.3)", async () => {
    await fx.app.accounts.roles.create({ name: "reader-gate", permissions: ["audit.read"] }, "test");
    const dan = await fx.user("dan.sentry@example.org", { roles: ["reader-gate"] });
    const run = await operator(["contain", "expire-passwords", "--ids", idsFile(dan.id), "--yes"]);
    assert.equal(run.code, 0, run.stderr);
    const cracker = fx.browser({ newDevice: true });
    assert.equal((await cracker.login(dan.email, dan.password)).json().mustChangePassword, true);
    const csrf = await cracker.csrf();
    const token = await cracker.request("POST", "/api/v1/tokens", { csrf, body: { name: "mine", scopes: ["audit.read"] } });
    assert.equal(token.statusCode, 403, token.body);
    assert.equal(token.json().error.code, "BULWARK_ERR_API_SIGN_IN_INCOMPLETE", "refused for the gate, not for anything else");
    const moved = await cracker.request("POST", "/auth/email/change", { csrf, body: { newEmail: "cracker@evil.example" } });
    assert.equal(moved.statusCode, 403, moved.body);
    assert.equal(moved.json().error.code, "BULWARK_ERR_PASSWORD_CHANGE_REQUIRED", "refused for the gate, not for anything else");
    const live = await fx.app.db.db.selectFrom("api_tokens").select("id").where("user_id", "=", dan.id).execute();
    assert.deepEqual(live, [], "no token exists for the account");
    const pending = await fx.app.db.db.selectFrom("email_change_tokens").select("id").where("user_id", "=", dan.id).execute();
    assert.deepEqual(pending, [], "no email change is pending");
  });

  // Sentry mailed every affected customer as it forced the change; Miraheze's runbook tells the users individually by
  // email. expire-passwords leaves the old (possibly cracked) password as the key to the forced change: whoever signs
  // in first chooses the new one. The owner must hear of it at once, as require-mfa-reenrolment and unlink-sso tell
  // theirs (ASVS 6.3.7), not find out at their next sign-in, after someone else may have.
  it("attack: expire-passwords tells each owner (password-expired notice, queued with the batch), so the owner learns of the forced change before whoever holds the cracked hash can claim it unseen (ASVS 6.3.7) (was: nobody was told)", async () => {
    const carol = await fx.user("carol.sentry@example.org");
    await fx.deliver();
    const before = fx.mailTo(carol.email).length;
    const run = await operator(["contain", "expire-passwords", "--ids", idsFile(carol.id), "--yes", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { counts: Record<string, Record<string, number>> }).counts["expire-passwords"]?.["users"], 1, "her password is expired");
    await fx.deliver();
    const told = fx.mailTo(carol.email).slice(before);
    assert.ok(told.length >= 1, "carol was not told that her password must be changed; the job queued no mail at all");
  });

  // Miraheze, "MariaDB - Database(s)": a precautionary reset of every password the compromised database held. The
  // operator runs it from a shell on the server, whose environment is not the service's: BULWARK_PUBLIC_URL is set in
  // the unit file, not in root's shell. The reset mail's link is composed by the CLI, sealed, and sent later by the
  // server (the CLI even says so): every user's only way back must lead to the site, or the precaution locks everyone out.
  it("attack: a containment reset run from an operator's shell without BULWARK_PUBLIC_URL refuses before changing anything, rather than mail links to http://localhost:8080 (ASVS 6.4.1) (was: exit 0, the password dead and the link pointing at localhost)", async () => {
    const erin = await fx.user("erin.miraheze@example.org");
    const run = await operator(["contain", "invalidate-passwords", "--ids", idsFile(erin.id), "--yes"], { BULWARK_PUBLIC_URL: "" });
    if (run.code !== 0) {
      // Refusing to mail links the site cannot open is a secure outcome too, as long as nothing was invalidated.
      assert.equal((await fx.browser().login(erin.email, erin.password)).statusCode, 200, "refused, but the password was invalidated anyway");
      return;
    }
    assert.notEqual((await fx.browser().login(erin.email, erin.password)).statusCode, 200, "the old password is dead");
    await fx.deliver();
    const mail = fx.mailTo(erin.email).filter((m) => RESET_LINK.test(m.body)).at(-1);
    assert.ok(mail, "erin got a reset mail");
    const link = /(\S+)\/reset-password#token=/.exec(mail.body)?.[1];
    assert.equal(link, ORIGIN, `erin's only way back into her account points at ${link ?? "(nothing)"}, not at the site ${ORIGIN}`);
  });

  // Miraheze, "Handling Compromises": an account was compromised. The hijacker phished the password, signed in, and moved
  // the account to a mailbox of theirs (the old address was only told). The responder contains the account with the
  // levers made for it: every password-derived foothold ends and a reset link goes out. The link goes to the account's
  // current address: the hijacker's. invalidate-passwords already spends pending email-change links "so no change can
  // move the reset mail"; a change completed before the job moves it all the same.
  it("attack: containing a hijacked account holds back the reset link from the address the hijacker set by self-service, and names the account for the responder (ASVS 6.4.2, 7.4.1) (was: the link went to the hijacker, who took the account back)", async () => {
    const fay = await fx.user("fay.miraheze@example.org");
    const hijacker = fx.browser({ newDevice: true });
    assert.equal((await hijacker.login(fay.email, fay.password)).statusCode, 200, "the phished password signs in");
    assert.equal((await hijacker.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "inbox@hijack.example" } })).statusCode, 202);
    await fx.deliver();
    const confirm = EMAIL_LINK.exec(fx.mailTo("inbox@hijack.example").at(-1)?.body ?? "")?.[1];
    assert.ok(confirm, "the confirmation link reached the hijacker's mailbox");
    assert.equal((await hijacker.request("POST", "/auth/email/confirm", { csrf: true, body: { token: confirm } })).statusCode, 200);
    assert.equal((await fx.app.accounts.users.getById(fay.id))?.email, "inbox@hijack.example", "the account now sits at the hijacker's address");

    // The breach is noticed: the responder contains fay's account.
    const run = await operator(["contain", "invalidate-passwords", "revoke-sessions", "revoke-tokens", "--ids", idsFile(fay.id), "--yes", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { counts: Record<string, Record<string, number>> }).counts["invalidate-passwords"]?.["users"], 1);
    await fx.deliver();
    const reset = RESET_LINK.exec(fx.mailTo("inbox@hijack.example").filter((m) => RESET_LINK.test(m.body)).at(-1)?.body ?? "")?.[1];
    let takenBack = false;
    if (reset) {
      const chosen = "tangerine ladder over quiet harbour";
      const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: reset, newPassword: chosen } });
      takenBack = done.statusCode === 200 && (await fx.browser().login("inbox@hijack.example", chosen)).statusCode === 200;
    }
    assert.equal(takenBack, false, "the containment's own reset link reached the hijacker's mailbox and signed the hijacker back in");
  });

  // The same hijack, the hold in place: the hijacker, who reads the account's current address, asks the public form for a
  // link. The form must not undo the hold; the administrator's restore (users set-email) lifts it.
  it("attack: after containment held an account's reset link back, the hijacker asking the public form for a reset gets no link at the address they set; the administrator's set-email lifts the hold and the owner's reset works (ASVS 6.4.2, 6.4.3) (was: the form mailed the hijacker a link, undoing the hold)", async () => {
    const ivy = await fx.user("ivy.miraheze@example.org");
    const hijacker = fx.browser({ newDevice: true });
    assert.equal((await hijacker.login(ivy.email, ivy.password)).statusCode, 200);
    assert.equal((await hijacker.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "ivy@hijack.example" } })).statusCode, 202);
    await fx.deliver();
    const confirm = EMAIL_LINK.exec(fx.mailTo("ivy@hijack.example").at(-1)?.body ?? "")?.[1];
    assert.ok(confirm);
    assert.equal((await hijacker.request("POST", "/auth/email/confirm", { csrf: true, body: { token: confirm } })).statusCode, 200);
    const run = await operator(["contain", "invalidate-passwords", "revoke-sessions", "--ids", idsFile(ivy.id), "--yes", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { counts: Record<string, Record<string, number>> }).counts["invalidate-passwords"]?.["resetEmailsWithheld"], 1);

    const asked = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: "ivy@hijack.example" } });
    assert.equal(asked.statusCode, 202, "the form answers as always");
    await fx.deliver();
    assert.deepEqual(fx.mailTo("ivy@hijack.example").filter((m) => RESET_LINK.test(m.body)).length, 0, "no reset link reached the hijacker's address");

    // The owner proves themselves to the help desk; the administrator restores the address.
    const restored = await operator(["users", "set-email", ivy.id, ivy.email, "--json"]);
    assert.equal(restored.code, 0, restored.stderr);
    await fx.deliver();
    const link = RESET_LINK.exec(fx.mailTo(ivy.email).filter((m) => RESET_LINK.test(m.body)).at(-1)?.body ?? "")?.[1];
    assert.ok(link, "the restore mails the owner a link");
    const chosen = "pomegranate lantern by the north gate";
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: chosen } })).statusCode, 200);
    fx.clock.advance(1_000);
    assert.equal((await fx.browser().login(ivy.email, chosen)).statusCode, 200);
    // And the form works for the owner again.
    assert.equal((await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: ivy.email } })).statusCode, 202);
    await fx.deliver();
    assert.ok(fx.mailTo(ivy.email).filter((m) => RESET_LINK.test(m.body)).length >= 2, "the hold is lifted");
  });

  // Miraheze, "Salt (Private Keys)": all servers compromised, all private keys regenerated. Sentry: backups readable by
  // anyone. Bulwark's keys live in the data dir, master.key beside bulwark.db, so a copy of the data dir (a backup, a
  // root shell) holds both. The responder regenerates keys with the one lever there is (`contain rotate-keys`), then
  // resets the passwords. The attacker keeps reading later copies of the database (the backup job's password leaked
  // too). What the response seals from then on must not open with the key taken before it.
  it("attack: after the responder's keys rotate-master and rotate-keys, the master key copied from the compromised server opens no later copy of the database, the response's reset links included (ASVS 11.2.1, 13.3.4) (was: no way to replace the master key)", async () => {
    const gus = await fx.user("gus.miraheze@example.org");
    const loot = mkdtempSync(join(tmpdir(), "bulwark-loot-"));
    try {
      copyFileSync(join(fx.app.config.dataDir, MASTER_KEY_FILE), join(loot, MASTER_KEY_FILE));
      // The master key first (`keys rotate-master`: every stored key re-wrapped under a new one), then the data keys.
      const master = await operator(["keys", "rotate-master", "--yes"]);
      assert.equal(master.code, 0, master.stderr);
      const rotated = await operator(["contain", "rotate-keys", "--all", "--yes", "--json"]);
      assert.equal(rotated.code, 0, rotated.stderr);
      assert.equal((JSON.parse(rotated.stdout) as { status: string }).status, "done");
      const reset = await operator(["contain", "invalidate-passwords", "--ids", idsFile(gus.id), "--yes"]);
      assert.equal(reset.code, 0, reset.stderr);
      // The next nightly copy of the database, beside the master key taken before the response.
      for (const f of [SQLITE_FILE, `${SQLITE_FILE}-wal`, `${SQLITE_FILE}-shm`]) {
        if (existsSync(join(fx.app.config.dataDir, f))) copyFileSync(join(fx.app.config.dataDir, f), join(loot, f));
      }
      let link: string | undefined;
      try {
        const attacker = await openApp({ env: { BULWARK_DATA_DIR: loot, BULWARK_LOG_LEVEL: "silent" }, mode: "open" });
        try {
          const queued = await attacker.db.db.selectFrom("outbox_messages").select("id").where("to_address", "=", gus.email).where("kind", "=", "account.containment-reset-link").execute();
          for (const row of queued) link ??= RESET_LINK.exec((await attacker.accounts.outbox.get(row.id)).text)?.[1];
        } finally {
          await attacker.close();
        }
      } catch {
        // The old master key no longer opens the database: what the response sealed stays sealed.
      }
      let taken = false;
      if (link) {
        const chosen = "marmalade kite under seven bridges";
        const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: chosen } });
        taken = done.statusCode === 200 && (await fx.browser().login(gus.email, chosen)).statusCode === 200;
      }
      assert.equal(taken, false, "the master key taken before the response opened the reset link the response mailed after rotating the keys, and took the account");
    } finally {
      rmSync(loot, { recursive: true, force: true });
    }
  });

  // Miraheze, "Redis": the session store is compromised; the runbook restarts it to clear the sessions. Bulwark: revoke
  // every session. A thief riding a stolen cookie had already asked to move the account to a mailbox of theirs; the
  // confirmation link sits in that mailbox and carries no session. Ending the sessions must end what they asked for.
  it("attack: the email-change link a session thief asked for dies with revoke-sessions --all (ASVS 7.4.1, 7.4.3)", async () => {
    const hal = await fx.user("hal.miraheze@example.org");
    const owner = fx.browser();
    assert.equal((await owner.login(hal.email, hal.password)).statusCode, 200);
    // The thief holds a copy of the owner's fresh session cookie (read from the session store).
    const thief = fx.browser({ newDevice: true });
    thief.cookie = owner.cookie;
    assert.equal((await thief.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "thief@stolen-session.example" } })).statusCode, 202);
    await fx.deliver();
    const confirm = EMAIL_LINK.exec(fx.mailTo("thief@stolen-session.example").at(-1)?.body ?? "")?.[1];
    assert.ok(confirm, "the confirmation link reached the thief's mailbox");

    const run = await operator(["contain", "revoke-sessions", "--all", "--yes", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await thief.request("GET", "/auth/sessions")).statusCode, 401, "the stolen cookie is dead");
    const moved = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: confirm } });
    // Without the revocation this very request moves the account (checked while writing this test).
    assert.equal(moved.statusCode, 400, moved.body);
    assert.equal(moved.json().error.code, "BULWARK_ERR_EMAIL_CHANGE_TOKEN");
    assert.equal((await fx.app.accounts.users.getById(hal.id))?.email, hal.email, "the account stays at the owner's address");
  });
});
