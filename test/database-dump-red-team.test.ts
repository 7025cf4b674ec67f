// Red team, round "a leaked copy of the database" (seeds 000 and 004: Drupal.org 2013, whose intruder reached account
// data through a third-party app; Sentry 2016, whose backups any AWS account could read). The attacker reads every table
// of the store — a backup, a replica, an SQL injection in a neighbouring app sharing the database server — on SQLite and
// on PostgreSQL, but not the files of Bulwark's data directory (master.key) nor BULWARK_MASTER_KEY. Where the read is
// live (a replica, an injection) the attacker may also send requests to the running server and read the rows they make.
// This round went table by table and asked what the copy turns into: a session, an API token, a reset or email-change
// link, a TOTP seed or a recovery code, a known-device cookie that keeps the owner from hearing of a sign-in, a password
// typed where it should not be, a legacy hash that outlives its rehash. Each test takes the rows through the app's own
// Kysely handle (what a dump holds) and uses them as the attacker would, against the live server (authFixture) or
// offline. Each test is an attack that must fail. Found and fixed (the tests say what was, "was: …"): a known-device
// cookie forged from a tag the server wrote for typed text, and flood-control keys a word list could match.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { DEVICE_COOKIE } from "../src/accounts/sessions/index.ts";
import { openMigrationJob, runMigration } from "../src/accounts/migrate-hashes/index.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { OutboxSender, type DeliveryOutcome, type MailTransport, type OutboxMessage } from "../src/notify/index.ts";
import { SCHEMA_TABLES } from "../src/store/schema.ts";
import { Browser } from "../src/http/auth/test-client.ts";
import { authFixtureOn, authFlows, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const HOUR = 3_600_000;
const NEW_DEVICE = "security.new-device-sign-in";

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");
const md5 = (text: string): string => createHash("md5").update(text, "utf8").digest("hex");

type Dump = Record<string, Array<Record<string, unknown>>>;

forEachDialect("red team: a leaked copy of the database", (dx) => {
  const fx = sharedFixture(() => authFixtureOn(dx, "database-dump-red-team"));
  const flows = authFlows(() => fx);

  /** Every row of every table the migrations make: what a backup or an injected `SELECT *` hands the attacker. */
  async function dump(): Promise<Dump> {
    const out: Dump = {};
    const present = new Set((await fx.app.db.db.introspection.getTables()).map((t) => t.name));
    for (const table of SCHEMA_TABLES) {
      if (!present.has(table)) continue;
      out[table] = (await fx.app.db.db.selectFrom(table as never).selectAll().execute()) as Array<Record<string, unknown>>;
    }
    return out;
  }
  /** Every cell of the dump as text. */
  const cells = (d: Dump): string[] => Object.values(d).flatMap((rows) => rows.flatMap((r) => Object.values(r).filter((v) => v !== null).map(String)));

  async function newDeviceNotices(address: string): Promise<number> {
    const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address"]).where("kind", "=", NEW_DEVICE).execute();
    return rows.filter((r) => r.to_address.toLowerCase() === address.toLowerCase()).length;
  }

  // The known-device cookie (src/accounts/sessions/device-cookie.ts) is `d1.<device id>.<tag>...`, each tag
  // Keyring.identifierTag("known-device:<device id>:<user id>:<password changed at>"). The key is outside the database,
  // but the same keyed tag, under the same key, is what the server writes into the audit log for text anyone types:
  // a login identifier that names no account (`auth.login.failed`, subject `id:<identifierTag(identifier.toLowerCase())>`,
  // src/accounts/login/login.ts) and an address asked a reset for that names no account (`auth.password.reset-requested`,
  // subject addressTag(), src/http/auth/routes/password-routes.ts). Either form is a tagging oracle: type the device
  // text, read the subject back from the live copy, and it is the victim's known-device tag for a device id the
  // attacker chose (all lower case, so lower-casing changes nothing). The user id and the password change time come
  // from the users table. The attacker holding the owner's password (reused elsewhere — the Drupal.org and SourceLair
  // seeds — or cracked from a legacy hash in the same dump) signs in, and the owner is told nothing: the notice is the
  // only thing that tells an owner of a sign-in they did not make.
  it("attack: a reader of the live database cannot forge a known-device cookie from the audit log's tag of a login identifier or a reset-request address — device tags are made under a key of their own (Keyring.deviceTag, cookie d2), so the attacker's sign-in with the owner's password counts as a new device and the owner is told (ASVS 6.3.5) (was: one HMAC key for both, so typing the device string as a login name made the server write the cookie's tag into audit_events)", async () => {
    const victim = await fx.user("dump-device-victim@example.org");
    // The owner signs in at home, as owners do (their first sign-in's notice is theirs), then time passes.
    assert.equal((await fx.browser({ newDevice: true }).login(victim.email, victim.password)).statusCode, 200);
    let told = await newDeviceNotices(victim.email);
    fx.clock.advance(2 * HOUR);
    // Control: a browser with no cookie signing in is told to the owner, so notices are on in this state.
    assert.equal((await fx.browser({ newDevice: true }).login(victim.email, victim.password)).statusCode, 200);
    assert.equal(await newDeviceNotices(victim.email), ++told, "a sign-in from a browser without a cookie is told to the owner");

    // From the copy: the account's id and the time its password last changed.
    const row = (await dump())["users"]!.find((u) => u["email"] === victim.email)!;
    const changedAt = row["password_changed_at"] === null ? 0 : Number(row["password_changed_at"]);
    const newestSubject = async (type: string): Promise<string> =>
      String((await dump())["audit_events"]!.filter((e) => e["type"] === type).sort((a, b) => Number(b["seq"]) - Number(a["seq"]))[0]!["subject"]);
    const oracles: Record<string, (text: string) => Promise<string>> = {
      "login identifier": async (text) => {
        assert.equal((await fx.browser({ newDevice: true }).login(text, "not the password of anyone")).statusCode, 401);
        return newestSubject("auth.login.failed");
      },
      "reset-request address": async (text) => {
        assert.equal((await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: text } })).statusCode, 202);
        return newestSubject("auth.password.reset-requested");
      },
    };
    const silenced: string[] = [];
    for (const [name, oracle] of Object.entries(oracles)) {
      fx.clock.advance(2 * HOUR); // a new hour: its notice is not spent
      const deviceId = `attacker${name.startsWith("login") ? "login" : "reset"}`.padEnd(22, "a"); // 22 base64url characters, lower case
      const subject = await oracle(`known-device:${deviceId}:${String(row["id"])}:${changedAt}`);
      const tag = /^id:([0-9a-f]{16})$/.exec(subject)?.[1];
      assert.ok(tag, `the ${name} is recorded under a keyed tag: ${subject}`);
      // The forged cookie, on a browser the owner never used, with the owner's password.
      const signedIn = await new Browser(fx.server, { cookie: `d1.${deviceId}.${tag}` }).login(victim.email, victim.password);
      assert.equal(signedIn.statusCode, 200, signedIn.body);
      const success = (await dump())["audit_events"]!.filter((e) => e["type"] === "auth.login.succeeded" && e["subject"] === victim.id)
        .sort((a, b) => Number(b["seq"]) - Number(a["seq"]))[0]!;
      const newDevice = (JSON.parse(String(success["data"])) as { newDevice?: boolean }).newDevice;
      const now = await newDeviceNotices(victim.email);
      if (now === told || newDevice !== true) silenced.push(`${name} (event says newDevice: ${String(newDevice)}; notices queued: ${now - told})`);
      told = now;
    }
    assert.deepEqual(silenced, [], `the owner must hear of each sign-in from the attacker's browser; a ${DEVICE_COOKIE} forged from the tag the server wrote for this text passed as a browser that signed in before`);
  });

  // flood_events.key / .via and flood_streaks.key (src/accounts/flood/flood.ts `key`) are SHA-256 of the identifier as
  // typed (trimmed, lower case), with no key. People type their password into the login name field; the audit log was
  // made to record such an identifier as a keyed tag so that a word list cannot reverse it (test/audit-attacks.test.ts,
  // "a password typed into the identifier field cannot be recovered from the log"). The flood tables beside it keep the
  // same text under a plain hash for as long as the window lasts (six hours) or the streak is not cleared (until a
  // success for that identifier, which a password never gets): a word list hashed with the published construction reads
  // it back. The failed login itself, with its address and time, is in the audit log, so the reader knows whose it is.
  it("attack: a password typed into the login name field cannot be read back from the flood-control tables of a dump with a word list — their keys are HMACs under a key derived from the keyring (Keyring.floodKey; migration 31 dropped the old rows) (ASVS 14.2.4, 16.2.5) (was: plain SHA-256 of the typed text, no server key, where the audit log beside them used a keyed tag)", async () => {
    const user = await fx.user("dump-flood-typist@example.org", { password: "Marmalade Summer 2013!" });
    // The owner types the password in both fields, then signs in properly.
    assert.equal((await fx.browser().login(user.password, user.password)).statusCode, 401);
    assert.equal((await fx.browser().login(user.email, user.password)).statusCode, 200);

    const d = await dump();
    const stored = new Set([...d["flood_events"]!.flatMap((r) => [String(r["key"]), String(r["via"])]), ...d["flood_streaks"]!.map((r) => String(r["key"]))]);
    // The addresses the copy names (sessions, audit data): flood control's per-address account window hashes them in.
    const addresses = new Set<string>(["", ...d["sessions"]!.map((s) => String(s["ip"] ?? ""))]);
    for (const e of d["audit_events"]!) {
      const ip = (JSON.parse(String(e["data"])) as { ip?: unknown }).ip;
      if (typeof ip === "string") addresses.add(ip);
    }
    const wordlist = ["password", "123456", "letmein", "sunshine2024!", "Marmalade Summer 2013!", "correct horse battery staple"];
    const forms = (w: string): string[] => {
      const k = w.trim().normalize("NFC").toLowerCase();
      return [`streak\u0000${k}`, `account\u0000${k}`, `account\u0000spelling\u0000${k}`, ...[...addresses].map((ip) => `account\u0000${k}\u0000${ip}`)].map(sha256);
    };
    const cracked = wordlist.filter((w) => forms(w).some((h) => stored.has(h)));
    assert.deepEqual(cracked, [], `flood-control rows give back ${JSON.stringify(cracked)}: the password typed as a login name`);
  });

  // Every secret a user holds, made through the server, against every cell of a copy taken while link mails sit in the
  // outbox in each state a copy can catch them in: dead (a relay refused it for good, quoting the body back), waiting
  // for a retry (a relay deferred it, quoting the body back), queued. DESIGN.md: session secrets, API tokens and
  // recovery codes only ever stored hashed; TOTP seeds and link bodies sealed under a key wrapped by the master key.
  it("attack: a copy taken with link mails dead, waiting for a retry and queued holds no session or CSRF secret, API token, reset or email-change link secret, TOTP seed or recovery code in clear, on either dialect (ASVS 6.5.2, 14.2.7, 11.4.2)", async () => {
    const u = await flows.withTOTP("dump-holder@example.org");
    const codes = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    assert.equal(codes.length, 10);
    const csrf = await u.b.csrf();
    const api = await flows.tokenFor(await flows.userWith(["audit.read"]), ["audit.read"]);
    const session = u.b.cookie as string;

    // Link mails, opened by the relays only: each relay keeps what it was handed (the attacker never sees it).
    const handed: string[] = [];
    const relay = (permanent: boolean): MailTransport => ({
      async send(m: OutboxMessage): Promise<DeliveryOutcome> {
        handed.push(m.text);
        return { ok: false, permanent, error: `${permanent ? "554 5.7.1" : "451 4.7.1"} message refused, content follows: ${m.text}` };
      },
      close: async () => {},
    });
    const run = (transport: MailTransport): Promise<unknown> =>
      new OutboxSender({ outbox: fx.app.accounts.outbox, transport, clock: fx.clock, random: fx.app.random }, { name: "dump-round" }).drain();
    const resetAsked = async (email: string): Promise<void> => {
      await fx.user(email);
      assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email } })).statusCode, 202);
    };
    await resetAsked("dump-dead@example.org");
    await run(relay(true));
    await resetAsked("dump-retry@example.org");
    const mover = await flows.signedIn("dump-mover@example.org");
    assert.equal((await mover.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "dump-moved@example.net" } })).statusCode, 202);
    await run(relay(false));
    await resetAsked("dump-queued@example.org");

    const d = await dump();
    const statuses = new Set(d["outbox_messages"]!.filter((m) => /link$/.test(String(m["kind"]))).map((m) => String(m["status"])));
    for (const status of ["dead", "failed", "queued"]) assert.ok(statuses.has(status), `a link mail is ${status} in the copy (statuses: ${[...statuses].join(", ")})`);
    assert.ok(d["mfa_totp"]!.some((r) => r["user_id"] === u.id) && d["mfa_recovery_codes"]!.some((r) => r["user_id"] === u.id) && d["api_tokens"]!.some((r) => api.includes(String(r["id"]))), "the copy holds the factor, code and token rows");
    const text = cells(d).join("\n");

    // The links, from what the relays were handed and from the mailbox once the queued one is delivered.
    await fx.deliver();
    const mailed = [...handed, ...fx.mailTo("dump-queued@example.org").map((m) => m.body)];
    const links = mailed.flatMap((body) => [RESET_LINK.exec(body)?.[1], EMAIL_LINK.exec(body)?.[1]]).filter((t): t is string => t !== undefined);
    assert.ok(links.length >= 4, `four links were mailed (dead, two waiting for a retry, queued); found ${links.length}`);

    const secrets: Array<[string, string]> = [
      ["session secret", session.split(".")[1]!], ["CSRF token", csrf], ["TOTP seed", u.secret], ["API token secret", api.split("_").at(-1)!],
      ...codes.map((c): [string, string] => ["recovery code", c.replace(/-/g, "")]),
      ...links.map((l): [string, string] => ["link secret", l.split(".")[1]!]),
    ];
    const found = secrets.filter(([, value]) => text.includes(value) || text.toLowerCase().includes(value.toLowerCase()) || text.includes(Buffer.from(value).toString("base64")));
    assert.deepEqual(found.map(([what]) => what), [], "a secret stands in the copy in a form its reader can use");
  });

  // Seeds 000 and 001: phpass and unsalted MD5 hashes, crackable in hours from a dump. Bulwark keeps an imported hash
  // until its owner signs in (then stores argon2id and says so: auth.login.succeeded { rehashed, fromScheme }) or
  // until `users migrate-hashes` wraps it. A copy taken after either must hold the old digest nowhere — not in the
  // users table, nor in an audit event, a job's spec or cursor, a contain change record kept for an undo.
  it("attack: a legacy MD5 hash is gone from every table once its owner signs in (rehashed, and the event says from which scheme) or migrate-hashes wraps it: a later copy gives a cracker nothing fast (ASVS 11.4.2)", async () => {
    const pw = (n: number): string => `drupal era secret number ${n}`;
    const signer = await fx.app.accounts.users.create({ email: "dump-md5-signer@example.org", passwordHash: md5(pw(1)), passwordScheme: "md5" });
    await fx.app.accounts.users.create({ email: "dump-md5-dormant@example.org", passwordHash: md5(pw(2)), passwordScheme: "md5" });
    assert.ok(cells(await dump()).includes(md5(pw(1))), "the copy before holds the MD5 (the control)");

    assert.equal((await fx.browser({ newDevice: true }).login("dump-md5-signer@example.org", pw(1))).statusCode, 200);
    const deps = { database: fx.app.db, passwords: fx.app.accounts.passwords, users: fx.app.accounts.users, audit: fx.app.audit, jobs: new JobStore({ database: fx.app.db, clock: fx.clock, random: fx.app.random }) };
    const { job } = await openMigrationJob(deps, { actor: "cli:dump-round", batch: 50 });
    const done = await runMigration(deps, job, { actor: "cli:dump-round" });
    assert.equal(done.status, "done");

    const d = await dump();
    const text = cells(d).join("\n");
    for (const n of [1, 2]) assert.equal(text.includes(md5(pw(n))), false, `the MD5 of account ${n} is still in the copy`);
    const event = d["audit_events"]!.find((e) => e["type"] === "auth.login.succeeded" && e["subject"] === signer.id)!;
    const data = JSON.parse(String(event["data"])) as { rehashed?: boolean; fromScheme?: string };
    assert.deepEqual([data.rehashed, data.fromScheme], [true, "md5"], "the sign-in says it rehashed, and from which scheme");
    // Both still sign in with their passwords (the wrap kept the dormant one's).
    assert.equal((await fx.browser({ newDevice: true }).login("dump-md5-dormant@example.org", pw(2))).statusCode, 200);
  });
});
