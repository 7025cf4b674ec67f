// Red-team round: the ex-operator with an old backup. The attacker once ran Bulwark's server (an operator who left, or
// the thief of a backup tape): they hold a full copy of the data directory from weeks ago — bulwark.db AND master.key as
// they were then — restore it with Bulwark itself, and can now send requests to the live service from the Internet (no
// access to the live server's files or database, except where a test says "a later intrusion" and writes the database,
// as the signing-key red-team tests do). Since then the team responded as docs/containment.md, ADR 0014 and ADR 0017
// say: `keys rotate-master`, `contain rotate-keys`, `audit rotate-signing-key`, revoke-sessions, revoke-tokens,
// require-mfa-reenrolment and a forced password change — or, in the second group, only what `keys rotate-master` itself
// tells the operator to run next. Every rotation goes through the real CLI against the live data dir.
// Attacked: every keyed value the live service accepts or writes (known-device cookie, identifier tags, flood keys, audit
// checkpoints, TOTP seeds). Three findings, fixed: the known-device key was derived from the tag key a rotation keeps
// (now from the master key in force, followed by the login), and the steps rotate-master prints named neither the
// signing key's rotation nor, for a database copied with the key, the re-enrolment and password levers. One known limit
// (a todo test): identifier tags and flood keys survive the rotation (ADR 0017).
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import * as OTPAuth from "otpauth";
import { totpCipherContext } from "../src/accounts/mfa/totp.ts";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { authFixture, Browser, ORIGIN, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { forgeCheckpoint, headSeq, rewrite } from "./helpers/audit-tamper.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { bulwark, bulwarkHere, type CLIResult } from "./helpers/cli.ts";

const NEW_DEVICE = "security.new-device-sign-in";
const INCIDENT = "old-backup";

/** What the attacker keeps: the data dir copied whole (the database file and master.key), restored with Bulwark. */
async function stealBackup(fx: AuthFixture, roots: string[]): Promise<OpenedApp> {
  const root = mkdtempSync(join(tmpdir(), "bulwark-old-backup-"));
  roots.push(root);
  const dir = join(root, "data");
  mkdirSync(dir, { mode: 0o700 });
  await sql`VACUUM INTO ${sql.lit(join(dir, "bulwark.db"))}`.execute(fx.app.db.db);
  chmodSync(join(dir, "bulwark.db"), 0o600);
  copyFileSync(join(fx.app.config.dataDir, "master.key"), join(dir, "master.key"));
  chmodSync(join(dir, "master.key"), 0o600);
  return openApp({ env: { BULWARK_DATA_DIR: dir, BULWARK_LOG_LEVEL: "silent" }, mode: "open", clock: new ManualClock(fx.clock.now()) });
}

/** The operator's shell on the live server (the fixture's data dir and settings). */
function operatorEnv(fx: AuthFixture): NodeJS.ProcessEnv {
  return {
    BULWARK_DATA_DIR: fx.app.config.dataDir, BULWARK_PUBLIC_URL: ORIGIN, BULWARK_LOG_LEVEL: "silent",
    BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
    BULWARK_SMTP_URL: `smtp://127.0.0.1:${fx.smtp.port}?requireTLS=false`, BULWARK_MAIL_FROM: "security@bulwark.test",
  };
}

async function run(fx: AuthFixture, args: string[], runner: (args: string[], options: { env: NodeJS.ProcessEnv }) => Promise<CLIResult> = bulwark): Promise<string> {
  const r = await runner(args, { env: operatorEnv(fx) });
  assert.equal(r.code, 0, `bulwark ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** New-device notices queued to `address` (the outbox is what will be sent). */
async function newDeviceNotices(fx: AuthFixture, address: string): Promise<number> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select("to_address").where("kind", "=", NEW_DEVICE).execute();
  return rows.filter((r) => r.to_address.toLowerCase() === address.toLowerCase()).length;
}

/** The TOTP seed of `userId` as the restored backup's keyring opens it (base32, as an authenticator app holds it). */
async function seedFromBackup(old: OpenedApp, userId: string): Promise<string> {
  const row = await old.db.db.selectFrom("mfa_totp").select("secret_ct").where("user_id", "=", userId).executeTakeFirstOrThrow();
  const bytes = await old.keyring.unseal(row.secret_ct as string, totpCipherContext(userId));
  return new OTPAuth.Secret({ buffer: new Uint8Array(bytes).buffer }).base32;
}

/**
 * A later intrusion with write access to the database (but no key: the master key was rotated) erases the record of
 * `seq` (rewrites its data, re-links the chain) and vouches for the result with a checkpoint at the head signed by the
 * signing key unwrapped from the old backup. Returns `bulwark audit verify`'s exit code, run from the operator's shell.
 */
async function eraseAndVouch(fx: AuthFixture, old: OpenedApp, seq: number): Promise<{ code: number | null; out: string }> {
  await rewrite(fx.app.db, seq);
  const head = await headSeq(fx.app.db);
  await fx.app.db.db.deleteFrom("audit_checkpoints").where("seq", ">=", seq).execute();
  await forgeCheckpoint(fx.app.db, await old.keyring.signer(), head, Date.now());
  const r = await bulwarkHere(["audit", "verify"], { env: operatorEnv(fx) });
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}

describe("after the whole response (rotate-master, rotate-keys, rotate-signing-key, revoke-sessions, revoke-tokens, require-mfa-reenrolment, expire-passwords)", () => {
  const roots: string[] = [];
  let fx: AuthFixture;
  let old: OpenedApp;
  let victim: { id: string; email: string; password: string };

  before(async () => {
    fx = await authFixture({ BULWARK_REQUIRE_MFA: "none" });
    // Weeks ago: the owner signs in from home (the first sign-in of all is told); then the operator's copy is taken.
    victim = await fx.user("old-backup-victim@example.org", { password: "Marmalade Summer 2013 harbour" });
    assert.equal((await fx.browser({ newDevice: true }).login(victim.email, victim.password)).statusCode, 200);
    old = await stealBackup(fx, roots);
    // Weeks later, the suspected compromise is handled in the documented order, through the CLI.
    fx.clock.set(Date.now());
    await run(fx, ["keys", "rotate-master", "--yes"]);
    await run(fx, ["contain", "rotate-keys", "--all", "--yes", "--incident", INCIDENT], bulwarkHere);
    await run(fx, ["audit", "rotate-signing-key"], bulwarkHere);
    await run(fx, ["contain", "revoke-sessions", "revoke-tokens", "require-mfa-reenrolment", "expire-passwords", "--all", "--yes", "--incident", INCIDENT], bulwarkHere);
    fx.clock.set(Date.now() + 2000); // past KEY_FRESHNESS_MS: the server reads the key table again
  });
  after(async () => {
    await old?.close().catch(() => {});
    await fx?.close();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it("attack: the old master key forges no known-device cookie (d2) the live service accepts after rotate-master: the device key comes from the master key in force, and the login reads the key table before it checks the cookie, so the intruder's sign-in with a cracked password is a new browser, told and logged (ASVS 6.3.5, 16.3.1) (was: the device key was derived from the identifier tag key, which rotate-master keeps, and the sign-in was told to nobody)", async () => {
    // From the backup: the victim's id and password change time, and the device key (HKDF of the tag key of the old master).
    const then = await old.accounts.users.getById(victim.id);
    assert.ok(then);
    const deviceId = Buffer.from(systemRandom.bytes(16)).toString("base64url");
    const tag = old.keyring.deviceTag(`known-device:${deviceId}:${victim.id}:${then.passwordChangedAt ?? 0}`);
    const told = await newDeviceNotices(fx, victim.email);
    // The password was cracked from the backup's hash; expire-passwords lets it work once more (then it must change).
    const intruder = new Browser(fx.server, { cookie: `d2.${deviceId}.${tag}` });
    const res = await intruder.login(victim.email, victim.password);
    assert.equal(res.statusCode, 200, res.body);
    const event = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.login.succeeded")
      .where("subject", "=", victim.id).orderBy("seq", "desc").limit(1).executeTakeFirstOrThrow();
    const newDevice = (JSON.parse(event.data as string) as { newDevice?: unknown }).newDevice;
    assert.deepEqual(
      { notices: await newDeviceNotices(fx, victim.email), newDevice },
      { notices: told + 1, newDevice: true },
      "a browser that never signed in to the live service, holding a cookie made with the copied master key, must count as new",
    );
  });

  // Known limit (ADR 0017, "Tags never change"): flood windows and 100-failure stops, pending address changes and the
  // log's grouping by typed name all match a tag made before the rotation to one made after it. A rotation that
  // changed the tag key would need every such lookup to try each key in turn; until then the copied key, given a later
  // copy of the tables too, tests a word list against what was typed after the response.
  it("known limit: the old master key still computes the live identifier tags and flood-control keys, so whatever is typed into the login name field after the response (a password, a login name) is read back with a word list from any later copy of the audit log or flood tables (rotate-master keeps the tag key; ASVS 16.2.5, 11.1.1)", { todo: "the tag key survives rotate-master by design (ADR 0017); see the comment above" }, async () => {
    const typed = "Hunter2 Autumn Lanterns!"; // someone's password, typed into the login name field after the response
    assert.equal((await fx.browser({ newDevice: true }).login(typed, "not the password of anyone")).statusCode, 401);
    // A later copy of the live tables (the next backup, an audit export handed to an auditor): no key in it.
    const subject = String((await fx.app.db.db.selectFrom("audit_events").select("subject").where("type", "=", "auth.login.failed")
      .orderBy("seq", "desc").limit(1).executeTakeFirstOrThrow()).subject);
    const floodKeys = new Set([
      ...(await fx.app.db.db.selectFrom("flood_events").select(["key", "via"]).execute()).flatMap((r) => [String(r.key), String(r.via)]),
      ...(await fx.app.db.db.selectFrom("flood_streaks").select("key").execute()).map((r) => String(r.key)),
    ]);
    const wordlist = ["password", "letmein", "correct horse battery staple", typed];
    const forms = (w: string): string[] => [...new Set([w, w.toLowerCase(), w.trim().normalize("NFC").toLowerCase()])];
    const fromLog = wordlist.filter((w) => forms(w).some((f) => subject === `id:${old.keyring.identifierTag(f)}`));
    const fromFlood = wordlist.filter((w) => forms(w).some((k) => [`streak\u0000${k}`, `account\u0000${k}`, `account\u0000spelling\u0000${k}`, `account\u0000${k}\u0000127.0.0.1`].some((t) => floodKeys.has(old.keyring.floodKey(t)))));
    assert.deepEqual({ fromLog, fromFlood }, { fromLog: [], fromFlood: [] }, "the copied master key reads back text typed after the rotation");
  });

  it("attack: once `audit rotate-signing-key` has run, the signing key unwrapped from the backup vouches for no rewrite made by a later intrusion: `bulwark audit verify` exits 1", async () => {
    const intruder = new Browser(fx.server, { cookie: null });
    assert.equal((await intruder.login("old-backup-probe@example.org", "not the password of anyone")).statusCode, 401);
    const seq = await headSeq(fx.app.db);
    const verdict = await eraseAndVouch(fx, old, seq);
    assert.equal(verdict.code, 1, verdict.out);
    assert.match(verdict.out, /retired/, "refused for the key that signed it, not for some other damage");
  });
});

describe("after `keys rotate-master` and the steps it prints as next", () => {
  const roots: string[] = [];
  let fx: AuthFixture;
  let old: OpenedApp;
  let victim: { id: string; email: string; password: string; secret: string };
  let nextSteps: string[] = [];

  before(async () => {
    fx = await authFixture({ BULWARK_REQUIRE_MFA: "none" });
    const flows = authFlows(() => fx);
    victim = await flows.withTOTP("old-backup-totp@example.org");
    old = await stealBackup(fx, roots);
    fx.clock.set(Date.now());
    const rotated = JSON.parse(await run(fx, ["keys", "rotate-master", "--yes", "--json"])) as { next: string[] };
    nextSteps = rotated.next;
    // The operator runs every command the rotation names, as it names it.
    const commands = nextSteps.flatMap((step) => [...step.matchAll(/`bulwark ([^`]+)`/g)].map((m) => (m[1] as string).split(/\s+/)));
    assert.ok(commands.length > 0, `rotate-master names no command to run next: ${JSON.stringify(nextSteps)}`);
    for (const args of commands) await run(fx, args[0] === "contain" && !args.includes("--incident") ? [...args, "--incident", INCIDENT] : args, bulwarkHere);
    fx.clock.set(Date.now() + 2000);
  });
  after(async () => {
    await old?.close().catch(() => {});
    await fx?.close();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it("attack: the TOTP seed the old master key decrypts from the backup passes no gate once the steps rotate-master prints have run: for a database copied with the key they name require-mfa-reenrolment, unlink-sso and invalidate-passwords (ASVS 6.5.3, 11.1.1) (was: they named rotate-keys only, and re-sealing does not change a seed)", async () => {
    const seed = await seedFromBackup(old, victim.id);
    // The password was cracked from the backup's hash, and nothing the runbook names changes it: the second factor is
    // what is left to stop the intruder, and the question here is whether the backup's seed passes it.
    const intruder = new Browser(fx.server, { cookie: null });
    const login = await intruder.login(victim.email, victim.password);
    const atGate = login.statusCode === 200 && login.json().mfaRequired === true;
    const stepUp = atGate ? await intruder.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(seed, fx.clock.now()) } }) : null;
    assert.notEqual(stepUp?.statusCode, 200, `the seed decrypted from the backup stepped the intruder up to aal 2 after ${JSON.stringify(nextSteps)}: ${stepUp?.body}`);
  });

  it("attack: the steps rotate-master prints retire the audit signing key the old master key unwraps from the backup (`bulwark audit rotate-signing-key`), so a later intrusion's rewrite vouched for with it fails `bulwark audit verify` (ASVS 16.4.2, 11.1.1) (was: the signing key stayed current and verify passed)", async () => {
    const intruder = new Browser(fx.server, { cookie: null });
    assert.equal((await intruder.login("old-backup-probe@example.org", "not the password of anyone")).statusCode, 401);
    const seq = await headSeq(fx.app.db);
    const verdict = await eraseAndVouch(fx, old, seq);
    assert.equal(verdict.code, 1, `audit verify accepted a rewrite signed with the backup's key:\n${verdict.out}`);
  });
});
