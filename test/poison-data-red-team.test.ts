// Red team, poison data: what an ordinary account holder stores can make the response tools fail on the day of an
// incident. The attacker holds a few accounts of their own (open registration: as many as they like), each address
// spelled at the edges of what sign-up takes (every atext sign, a leading "#", the full 254 characters, a punycode
// domain), signs in with a user agent of 512 C1 controls and Latin-1 bytes, many events in one millisecond, and keeps
// authenticator apps. The goal is not to get in but to stall the response: a containment that skips the attacker's
// accounts while reporting done, an outbox that cannot deliver the containment's links, evidence tools (audit verify,
// export, tail, check logins) that choke on the attacker's events. Poison is built through the real HTTP routes
// (sign-up, the mailed link, sign-in, enrolment); the tools run as the operator runs them (the CLI in process).
// One finding, fixed since ("attack: … (was: …)"): a `#` address line in an --ids file read as a comment; the others pin
// defences that hold.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { domainToUnicode } from "node:url";
import { after, before, describe, it } from "node:test";
import { authFixture, GOOD_PASSWORD, ORIGIN, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, loginFrom, RESET_LINK } from "./helpers/auth-flows.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

let fx: AuthFixture;
const flows = authFlows(() => fx);
let dir: string;

/** The operator's shell on the server: the fixture's data dir, the site's public URL. */
function operatorEnv(): NodeJS.ProcessEnv {
  return { BULWARK_DATA_DIR: fx.app.config.dataDir, BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_PUBLIC_URL: ORIGIN };
}

/**
 * The mail received for `address`, decoded. The test peer (smtp-server) hands a punycode domain over in Unicode, so the
 * envelope of `…@xn--bcher-kva.example` reads `…@bücher.example`.
 */
function mailsFor(address: string): Array<{ subject: string; body: string }> {
  const at = address.lastIndexOf("@");
  const unicode = `${address.slice(0, at)}@${domainToUnicode(address.slice(at + 1))}`;
  return fx.mailTo(address).concat(unicode === address ? [] : fx.mailTo(unicode));
}

/** The token of the newest reset link mailed to `address` (the outbox delivered first). */
async function resetTokenFor(address: string): Promise<string> {
  await fx.deliver();
  const hit = mailsFor(address).filter((m) => RESET_LINK.test(m.body)).at(-1);
  assert.ok(hit, `no link mailed to ${address}`);
  return (RESET_LINK.exec(hit.body) as RegExpExecArray)[1] as string;
}

/** Signs `email` up through the open registration, sets its password with the mailed link and signs in: an account of the attacker's own. */
async function signUp(email: string): Promise<{ id: string; b: Browser }> {
  const r = await fx.browser().request("POST", "/auth/register", { body: { email } });
  assert.equal(r.statusCode, 202, r.body);
  const token = await resetTokenFor(email);
  const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: GOOD_PASSWORD } });
  assert.ok(done.statusCode < 300, done.body);
  const b = fx.browser({ newDevice: true });
  const login = await b.login(email, GOOD_PASSWORD);
  assert.equal(login.statusCode, 200, login.body);
  const user = await fx.app.accounts.users.findByIdentifier(email);
  assert.ok(user, `no account for ${email}`);
  return { id: user.id, b };
}

/** Whether `b`'s session is still signed in. */
async function signedIn(b: Browser): Promise<boolean> {
  const r = await b.request("GET", "/auth/session");
  return r.statusCode === 200 && (r.json() as { authenticated?: boolean }).authenticated === true;
}

/** The real clock's now, on the fixture's manual clock (the CLI's jobs and mails are dated by the real one). */
function catchUpWithCLI(): void {
  const behind = Date.now() + 60_000 - fx.clock.now();
  if (behind > 0) fx.clock.advance(behind);
}

describe("poison data against the response tools (red team)", () => {
  before(async () => {
    fx = await authFixture({ BULWARK_REGISTRATION: "open" });
    dir = mkdtempSync(join(tmpdir(), "bulwark-poison-"));
  });
  after(async () => {
    await fx?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("attack: an attacker who signs up as \"#mallory@…\" is contained when listed in `bulwark contain … --ids FILE` — the line is an entry, not a comment — in the dry run's forecast and the job alike (ASVS 2.2.3, DESIGN: a bulk operation never reports success over rows it skipped) (was: read as a comment, silently dropped; exit 0 \"done\" with the account still unlocked and signed in)", async () => {
    // Both addresses pass sign-up and the outbox ("#" is atext, RFC 5322 §3.2.3): the attacker chooses the second.
    const plain = await signUp("mallory@attacker.example");
    const hashed = await signUp("#mallory@attacker.example");
    // The responder's list of the attacker's accounts, as abuse reports or a breach feed give them: by address.
    const file = join(dir, "attacker-accounts.txt");
    writeFileSync(file, "# sign-ups reported by abuse@ on the day of the incident\nmallory@attacker.example\n#mallory@attacker.example\n");

    const dry = await bulwarkInProcess(["contain", "lock-accounts", "revoke-sessions", "--ids", file, "--dry-run", "--json"], operatorEnv());
    // A fix may refuse the file (exit 2, nothing on stdout) instead of taking or naming the line: either is secure.
    const forecast = JSON.parse(dry.code === 0 ? dry.stdout : "{}") as { users?: number; unmatchedIds?: { count: number } };
    const run = await bulwarkInProcess(["contain", "lock-accounts", "revoke-sessions", "--ids", file, "--yes", "--json"], operatorEnv());
    const job = JSON.parse(run.code === 0 ? run.stdout : "{}") as { status?: string; total?: number; unmatchedIds?: unknown; notes?: string[] };

    // The account listed by its plain address is contained.
    assert.notEqual((await fx.app.accounts.users.getById(plain.id))?.lockedAt ?? null, null);
    assert.equal(await signedIn(plain.b), false);
    // Secure: every address the file lists is either contained or named to the operator (or the file is refused).
    // Today the dry run forecasts one user with nothing unmatched, the job ends "done" (exit 0) over one user, and the
    // "#" account is neither locked nor signed out.
    const contained = (await fx.app.accounts.users.getById(hashed.id))?.lockedAt != null && !(await signedIn(hashed.b));
    const told = (forecast.unmatchedIds?.count ?? 0) > 0 || dry.code !== 0 || run.code !== 0 || job.status !== "done";
    assert.ok(contained || told,
      `the "#mallory@attacker.example" line was dropped without a word: dry run users=${forecast.users} unmatched=${forecast.unmatchedIds?.count ?? 0}, ` +
      `job exit ${run.code} status=${job.status} total=${job.total}, the account still unlocked and signed in`);
    // Taken as an entry, it is in the forecast too: the dry run must not vouch for a scope the run then differs from.
    if (contained && dry.code === 0) assert.equal(forecast.users, 2, "the dry run must forecast both listed accounts");
  });

  it("attack: accounts at the edges of what the outbox takes (every atext sign, a leading \"#\", a punycode domain, 250 and 254 characters) do not stall an --all containment with every mailing lever: each owner's link and notices are delivered, and the one address the relay refuses (501) goes dead alone, listed by `outbox status` (ASVS 6.3.7, 6.4.3, 16.3.4)", async () => {
    const address = (domainLength: number): string => `${"l".repeat(64)}@${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(domainLength - 63 - 63 - 2 - ".example".length)}.example`;
    const poison = ["{|}~^$'*&`=?!%/+_-x@attacker.example", "o'neil+x@xn--bcher-kva.example", "#eve@attacker.example", address(185)];
    assert.equal(poison[3]?.length, 250);
    const accounts = [];
    for (const email of poison) accounts.push({ email, ...(await signUp(email)) });
    // 254 characters: sign-up and the outbox take it, the relay (the test peer, smtp-server) answers RCPT TO with
    // "501 Bad recipient address syntax", so its sign-up link could never arrive: created with the store's own function.
    const refused = await fx.user(address(189));
    assert.equal(refused.email.length, 254);
    // The owner an incident is about: an authenticator app, so require-mfa-reenrolment mails them too.
    const owner = await flows.withTOTP("owner@example.org");
    await fx.deliver();
    const deadBefore = (await fx.app.accounts.outbox.counts()).dead;
    const before = new Map([...poison, owner.email].map((a) => [a, mailsFor(a).length]));

    const levers = ["lock-accounts", "revoke-sessions", "revoke-tokens", "invalidate-passwords", "expire-passwords", "require-mfa-reenrolment"];
    const dry = await bulwarkInProcess(["contain", ...levers, "--all", "--dry-run", "--json"], operatorEnv());
    assert.equal(dry.code, 0, dry.stderr);
    const forecast = JSON.parse(dry.stdout) as { levers: Record<string, { counts: Record<string, number> }> };
    assert.equal(forecast.levers["invalidate-passwords"]?.counts["resetEmailsRefused"], 0);
    const run = await bulwarkInProcess(["contain", ...levers, "--all", "--yes", "--json"], operatorEnv());
    assert.equal(run.code, 0, run.stderr);
    const job = JSON.parse(run.stdout) as { status: string; total: number; done: number; counts: Record<string, Record<string, number>> };
    assert.equal(job.status, "done");
    assert.equal(job.done, job.total);
    assert.equal(job.counts["invalidate-passwords"]?.["resetEmailsRefused"], 0);
    assert.equal(job.counts["expire-passwords"]?.["noticesRefused"], 0);
    for (const a of accounts) {
      assert.notEqual((await fx.app.accounts.users.getById(a.id))?.lockedAt ?? null, null, `${a.email} is not locked`);
      assert.equal(await signedIn(a.b), false, `${a.email} is still signed in`);
    }
    assert.notEqual((await fx.app.accounts.users.getById(refused.id))?.lockedAt ?? null, null);
    assert.equal(await signedIn(owner.b), false);

    // The sender delivers the job's mail (dated by the CLI's clock): the refused address's link and notice go dead on
    // their first answer, and nothing else does; every other owner's reset link goes out.
    catchUpWithCLI();
    const report = await fx.deliver();
    assert.equal(report.dead, 2, JSON.stringify(report));
    const dead = await fx.app.accounts.outbox.listDead({ limit: 1000 });
    assert.equal(dead.length, deadBefore + 2);
    assert.deepEqual(new Set(dead.slice(deadBefore).map((m) => m.to)), new Set([refused.email]));
    for (const a of [...poison, owner.email]) {
      const fresh = mailsFor(a).slice(before.get(a));
      assert.ok(fresh.some((m) => RESET_LINK.test(m.body)), `no containment reset link reached ${a}`);
    }
    assert.ok(mailsFor(owner.email).slice(before.get(owner.email)).length >= 3, "the owner gets the link, the expiry notice and the factor notice");
    // The operator is told which mail did not go, and why.
    const status = await bulwarkInProcess(["outbox", "status", "--json"], operatorEnv());
    assert.equal(status.code, 0, status.stderr);
    const shown = JSON.parse(status.stdout) as { counts: { dead: number }; dead: Array<Record<string, unknown>> };
    assert.equal(shown.counts.dead, deadBefore + 2);
    assert.match(JSON.stringify(shown.dead), /containment-reset-link/);
    assert.match(JSON.stringify(shown.dead), /501/);
  });

  it("attack: sign-in events the attacker shapes — a 512-character user agent of C1 controls (an 8-bit CSI) and Latin-1 bytes, fifty of them in one millisecond — neither break `audit verify`, nor its export round trip, nor `audit tail`, which prints every one of them, escaped, with the events after them (ASVS 16.4.1, 16.4.2)", async () => {
    const victim = await fx.user("target@example.org");
    // light-my-request sends header bytes as Latin-1: U+009B is the 8-bit CSI, U+0085 a C1 line break (NEL).
    const agent = ("\u009b31m\u0085\u00ff\u00e9!").repeat(64);
    assert.equal(agent.length, 512);
    // The manual clock stands still: every event below carries the same millisecond.
    for (let i = 0; i < 50; i++) await loginFrom(fx, `nobody${i}@attacker.example`, "not the password at all", "198.51.100.23", { "user-agent": agent });
    assert.equal((await loginFrom(fx, victim.email, victim.password, "198.51.100.24", { "user-agent": agent })).statusCode, 200);
    const marker = await fx.app.audit.append({ type: "test.after-poison", actor: "test", subject: "marker" });

    const verify = await bulwarkInProcess(["audit", "verify", "--json"], operatorEnv());
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const verified = JSON.parse(verify.stdout) as { ok: boolean; lastSeq: number };
    assert.ok(verified.ok);
    assert.ok(verified.lastSeq >= marker.seq);

    const exported = join(dir, "audit.jsonl");
    const exp = await bulwarkInProcess(["audit", "export", "--output", exported], operatorEnv());
    assert.equal(exp.code, 0, exp.stderr);
    const lines = readFileSync(exported, "utf8").trimEnd().split("\n");
    assert.equal(lines.length, verified.lastSeq, "every event is exported, the attacker's and those after them");
    assert.doesNotMatch(readFileSync(exported, "utf8"), /[\u0080-\u009f]/, "no raw C1 control in the export");
    const offline = await bulwarkInProcess(["audit", "verify", "--file", exported, "--json"], operatorEnv());
    assert.equal(offline.code, 0, offline.stdout + offline.stderr);

    const tail = await bulwarkInProcess(["audit", "tail", "-n", "60"], operatorEnv());
    assert.equal(tail.code, 0, tail.stderr);
    assert.doesNotMatch(tail.stdout, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, "no raw control reaches the operator's terminal");
    assert.match(tail.stdout, /test\.after-poison/, "the events after the attacker's are printed");
    assert.equal((tail.stdout.match(/auth\.login\.failed/g) ?? []).length >= 50, true, "each of the attacker's failures is printed");

    const logins = await bulwarkInProcess(["check", "logins", "--since", "2026-01-01", "--until", "2029-01-01", "--json", "--fail-on", "none"], operatorEnv());
    assert.equal(logins.code, 0, logins.stderr);
    const checked = JSON.parse(logins.stdout) as { failed: number; succeeded: number };
    assert.ok(checked.failed >= 50, logins.stdout.slice(0, 400));
    assert.ok(checked.succeeded >= 1);
  });
});
