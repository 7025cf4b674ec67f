// Email-change requests and confirmations on SQLite and PostgreSQL: what a request writes (hashed token, mails
// in the same transaction), the taken-address path, supersession, the hourly limit, a single winner among
// concurrent confirms, and a change that rolls back whole when the address is taken or the caller fails.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { hashSecret } from "../../crypto/tokens.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { Outbox } from "../../notify/outbox.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { MIGRATIONS } from "../../store/migrations/index.ts";
import { createSessionManager, endUserSessions } from "../sessions/index.ts";
import { identifierKey } from "../users/normalise.ts";
import { createUserStore, type UserStore } from "../users/user-store.ts";
import { composeRequestedNotice } from "./email-change-mail.ts";
import { createEmailChangeService, type EmailChangeService } from "./email-change-service.ts";

const CONTEXT = { publicURL: "https://bulwark.test", serviceName: "Bulwark" };
const LINK = /https:\/\/bulwark\.test\/confirm-email#token=(ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
const MINUTE = 60_000;

interface Setup {
  database: Database;
  clock: ManualClock;
  users: UserStore;
  outbox: Outbox;
  changes: EmailChangeService;
  ana: { id: string; email: string };
}

async function setup(database: Database): Promise<Setup> {
  const clock = new ManualClock(Date.UTC(2026, 10, 4, 9));
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  const users = createUserStore({ database, clock, random: systemRandom });
  const ana = await users.create({ email: "ana@example.org" });
  const outbox = new Outbox({ database, clock, random: systemRandom });
  clock.advance(1000);
  return { database, clock, users, outbox, changes: createEmailChangeService({ database, clock, random: systemRandom, outbox }), ana: { id: ana.id, email: ana.email } };
}

async function messages(database: Database): Promise<Array<{ to_address: string; kind: string; body_text: string }>> {
  return (await database.db.selectFrom("outbox_messages").selectAll().orderBy("created_at").execute()) as unknown as Array<{ to_address: string; kind: string; body_text: string }>;
}

async function tokenTo(s: Setup, address: string): Promise<string> {
  const rows = await s.database.db.selectFrom("outbox_messages").selectAll().where("to_address", "=", address).where("kind", "=", "account.email-change-link").execute();
  const text = JSON.stringify(rows.at(-1));
  const m = LINK.exec(text);
  assert.ok(m, `no link to ${address}`);
  return m[1] as string;
}

forEachDialect("email change", (fx) => {
  it("a request stores only a hash and queues the link and the old-address notice in its transaction (ASVS 6.3.7)", async () => {
    const s = await setup(await fx.fresh());
    assert.equal(await s.changes.request(s.ana, "new@example.org", CONTEXT), "queued");
    const sent = await messages(s.database);
    assert.deepEqual(sent.map((m) => [m.to_address, m.kind]).sort(), [["ana@example.org", "security.email-change-requested"], ["new@example.org", "account.email-change-link"]]);
    const token = await tokenTo(s, "new@example.org");
    const rows = await s.database.db.selectFrom("email_change_tokens").selectAll().execute();
    assert.equal(rows.length, 1);
    const secret = token.split(".")[1] as string;
    assert.ok(!JSON.stringify(rows).includes(secret), "the secret is not stored");
    assert.equal(rows[0]?.secret_hash, hashSecret(secret));
    const check = await s.changes.check(token);
    assert.equal(check.valid && check.expiresAt, s.clock.now() + 30 * MINUTE);
  });

  it("attack: enumeration — a taken address gets a note without link and a row that is born used (ASVS 6.3.8)", async () => {
    const s = await setup(await fx.fresh());
    await s.users.create({ email: "bo@example.org" });
    assert.equal(await s.changes.request(s.ana, "BO@example.org", CONTEXT), "address-taken");
    const sent = await messages(s.database);
    assert.deepEqual(sent.map((m) => m.kind).sort(), ["account.email-change-attempt", "security.email-change-requested"]);
    assert.ok(!sent.some((m) => /confirm-email|ect_[a-z2-7]{26}\./.test(m.body_text)), "no link in any mail");
    const rows = await s.database.db.selectFrom("email_change_tokens").selectAll().execute();
    assert.equal(rows.length, 1);
    assert.notEqual(rows[0]?.used_at, null);
  });

  it("refuses the account's own address and an invalid one, writing nothing", async () => {
    const s = await setup(await fx.fresh());
    await assert.rejects(s.changes.request(s.ana, " ANA@example.org", CONTEXT), { code: "BULWARK_ERR_EMAIL_UNCHANGED" });
    await assert.rejects(s.changes.request(s.ana, "ana at example", CONTEXT), { code: "BULWARK_ERR_EMAIL_INVALID" });
    assert.equal((await messages(s.database)).length, 0);
  });

  it("attack: an address the outbox would not mail is refused before anything is written, withheld or not, so no notice quotes it (ASVS 2.2.2)", async () => {
    const s = await setup(await fx.fresh());
    // The account store's syntax takes it; the outbox's plain-address rule does not (the "/" and "?" of a URL, a bare host).
    for (const address of ["x+https://evil.example/keep?case=7731@evil.test", "ops@lan"]) {
      for (const withheld of [false, true]) {
        await assert.rejects(s.changes.request(s.ana, address, CONTEXT, { withheld }), { code: "BULWARK_ERR_MAIL_ADDRESS", message: /^newEmail is not an acceptable email address: / });
      }
    }
    assert.equal((await messages(s.database)).length, 0, "no link, no note, no notice");
    assert.equal((await s.database.db.selectFrom("email_change_tokens").selectAll().execute()).length, 0, "no request recorded");
  });

  it("limits requests per account per hour; the limit lifts when the window passes", async () => {
    const s = await setup(await fx.fresh());
    for (let i = 0; i < 3; i++) assert.notEqual(await s.changes.request(s.ana, `n${i}@example.org`, CONTEXT), "rate-limited");
    assert.equal(await s.changes.request(s.ana, "n3@example.org", CONTEXT), "rate-limited");
    assert.equal((await messages(s.database)).length, 6, "the refused request queued nothing");
    s.clock.advance(61 * MINUTE);
    assert.equal(await s.changes.request(s.ana, "n4@example.org", CONTEXT), "queued");
    assert.ok((await s.changes.purgeExpired()) >= 3);
  });

  it("purgeExpired keeps a link until its own expiry, even when the lifetime setting was shortened since it was mailed", async () => {
    const s = await setup(await fx.fresh());
    // Issued under a 2-hour lifetime; the purging service runs with the default 30 minutes (a changed setting).
    const longer = createEmailChangeService({ database: s.database, clock: s.clock, random: systemRandom, outbox: s.outbox, policy: { lifetimeMs: 120 * MINUTE } });
    assert.equal(await longer.request(s.ana, "later@example.org", CONTEXT), "queued");
    const token = await tokenTo(s, "later@example.org");
    s.clock.advance(90 * MINUTE);
    assert.equal(await s.changes.purgeExpired(), 0, "the row's own expiry is 30 minutes ahead");
    assert.equal((await s.changes.check(token)).valid, true);
    s.clock.advance(31 * MINUTE);
    assert.equal(await s.changes.purgeExpired(), 1);
  });

  it("attack: ten requests at once for one account are held to the hourly limit (three links, three notices)", async () => {
    const s = await setup(await fx.fresh());
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => s.changes.request(s.ana, `burst${i}@example.org`, CONTEXT)));
    assert.equal(outcomes.filter((o) => o === "queued").length, 3, JSON.stringify(outcomes));
    assert.equal((await messages(s.database)).length, 6);
  });

  it("confirms once, superseding the earlier link; the address changes and the old one no longer finds the account", async () => {
    const s = await setup(await fx.fresh());
    await s.changes.request(s.ana, "first@example.org", CONTEXT);
    const first = await tokenTo(s, "first@example.org");
    await s.changes.request(s.ana, "second@example.org", CONTEXT);
    const second = await tokenTo(s, "second@example.org");
    const superseded = await s.changes.check(first);
    assert.deepEqual(superseded, { valid: false, reason: "used", genuine: { userId: s.ana.id, tokenId: (superseded as { genuine: { tokenId: string } }).genuine.tokenId } }, "the newer request supersedes the older link (a genuine one: whose it is is known)");
    await assert.rejects(s.changes.confirm(first), (error: Error & { genuine?: unknown }) => {
      assert.deepEqual(error.genuine, { userId: s.ana.id, tokenId: (superseded as { genuine: { tokenId: string } }).genuine.tokenId, reason: "used" });
      return true;
    });
    const junk = await s.changes.check(`${first.slice(0, -4)}AAAA`);
    assert.deepEqual(junk, { valid: false, reason: "bad-secret" }, "a wrong secret names no account");
    await assert.rejects(s.changes.confirm(first), { code: "BULWARK_ERR_EMAIL_CHANGE_TOKEN" });
    assert.deepEqual(await s.changes.confirm(second), { userId: s.ana.id, oldEmail: "ana@example.org", newEmail: "second@example.org" });
    assert.equal((await s.users.findByIdentifier("SECOND@example.org"))?.id, s.ana.id);
    assert.equal(await s.users.findByIdentifier("ana@example.org"), null);
    await assert.rejects(s.changes.confirm(second), { code: "BULWARK_ERR_EMAIL_CHANGE_TOKEN" }, "a reused link fails");
  });

  it("attack: three concurrent confirms of one link — exactly one wins", async () => {
    const s = await setup(await fx.fresh());
    await s.changes.request(s.ana, "race@example.org", CONTEXT);
    const token = await tokenTo(s, "race@example.org");
    const results = await Promise.allSettled([0, 1, 2].map(() => s.changes.confirm(token)));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  });

  it("attack: an address taken meanwhile, or a failing caller, rolls the whole change back (the link stays unused)", async () => {
    const s = await setup(await fx.fresh());
    await s.changes.request(s.ana, "contested@example.org", CONTEXT);
    const token = await tokenTo(s, "contested@example.org");
    await assert.rejects(s.changes.confirm(token, { within: async () => { throw new Error("caller failed"); } }), /caller failed/);
    assert.equal((await s.changes.check(token)).valid, true, "rolled back: the link is still open");
    const other = await s.users.create({ email: "Contested@example.org" });
    await assert.rejects(s.changes.confirm(token), { code: "BULWARK_ERR_EMAIL_TAKEN", kind: "conflict" });
    assert.equal((await s.users.getById(s.ana.id))?.email, "ana@example.org");
    assert.equal((await s.users.findByIdentifier("contested@example.org"))?.id, other.id);
  });

  it("attack: a link requested before a session revocation or a password change is void", async () => {
    const s = await setup(await fx.fresh());
    await s.changes.request(s.ana, "hijack@example.org", CONTEXT);
    const token = await tokenTo(s, "hijack@example.org");
    s.clock.advance(1000);
    await s.database.db.insertInto("revocation_stamps").values({ scope: `user:${s.ana.id}`, not_before: s.clock.now(), updated_at: s.clock.now() }).execute();
    await assert.rejects(s.changes.confirm(token), { code: "BULWARK_ERR_EMAIL_CHANGE_TOKEN" });
    s.clock.advance(1000);
    await s.changes.request(s.ana, "hijack2@example.org", CONTEXT);
    const later = await tokenTo(s, "hijack2@example.org");
    s.clock.advance(1000);
    assert.ok(await s.users.swapPasswordHash(s.ana.id, null, { hash: "x", scheme: "argon2id", changed: true }));
    await assert.rejects(s.changes.confirm(later), { code: "BULWARK_ERR_EMAIL_CHANGE_TOKEN" });
    assert.equal((await s.users.getById(s.ana.id))?.email, "ana@example.org");
  });

  it("attack: a request whose session ended after the caller read it (a password reset in between) writes nothing and sends nothing", async () => {
    const s = await setup(await fx.fresh());
    const sessions = createSessionManager({ database: s.database, clock: s.clock, random: systemRandom });
    const { session } = await sessions.createSession(s.ana.id, { aal: 1 });
    assert.equal(await s.changes.request(s.ana, "mine@example.org", CONTEXT, { sessionId: session.id }), "queued", "a session that stands");
    await endUserSessions(s.database.db, s.ana.id, s.clock.now());
    s.clock.advance(1);
    const before = (await messages(s.database)).length;
    await assert.rejects(s.changes.request(s.ana, "thief@example.org", CONTEXT, { sessionId: session.id }), { code: "BULWARK_ERR_SESSION_REVOKED" });
    assert.equal((await messages(s.database)).length, before, "no link, no notice");
    assert.equal(await s.database.db.selectFrom("email_change_tokens").select("id").where("new_email", "=", "thief@example.org").executeTakeFirst(), undefined);
  });

  it("attack: the notice of a request goes to the address the account has when it is written, not the one the caller read", async () => {
    const s = await setup(await fx.fresh());
    // A confirmation committed after the caller read the account: `s.ana` still says ana@example.org.
    await s.database.db.updateTable("users").set({ email: "kept@example.org", email_key: identifierKey("kept@example.org") }).where("id", "=", s.ana.id).execute();
    assert.equal(await s.changes.request(s.ana, "third@example.org", CONTEXT), "queued");
    const notices = (await messages(s.database)).filter((m) => m.kind === "security.email-change-requested").map((m) => m.to_address);
    assert.deepEqual(notices, ["kept@example.org"]);
    await assert.rejects(s.changes.request(s.ana, "KEPT@example.org", CONTEXT), { code: "BULWARK_ERR_EMAIL_UNCHANGED" }, "the account's own address now");
  });

  it("attack: a copied row, a tampered secret and junk are refused", async () => {
    const s = await setup(await fx.fresh());
    await s.changes.request(s.ana, "junk@example.org", CONTEXT);
    const token = await tokenTo(s, "junk@example.org");
    const row = await s.database.db.selectFrom("email_change_tokens").selectAll().executeTakeFirstOrThrow();
    assert.deepEqual(await s.changes.check(`${row.id}.${row.secret_hash}`), { valid: false, reason: "malformed" });
    const [id, secret] = token.split(".") as [string, string];
    assert.deepEqual(await s.changes.check(`${id}.${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`), { valid: false, reason: "bad-secret" });
    for (const junk of [undefined, 42, "", "x".repeat(5000), `${token}\n`]) assert.equal((await s.changes.check(junk)).valid, false);
    assert.equal((await s.changes.check(token)).valid, true);
  });
});

it("the requested-change notice names an address the outbox would not mail without quoting it (a second guard behind request())", () => {
  const lure = "x+https://evil.example/keep?case=7731@evil.test";
  const notice = composeRequestedNotice("ana@example.org", lure, { ...CONTEXT, at: Date.UTC(2026, 10, 4, 9), withheld: true }, "k");
  assert.doesNotMatch(notice.text, /evil\.example/);
  assert.match(notice.text, /change its email address to an address this server cannot send mail to\./);
  const plain = composeRequestedNotice("ana@example.org", "new@example.org", { ...CONTEXT, at: Date.UTC(2026, 10, 4, 9) }, "k");
  assert.match(plain.text, /change its email address to new@example\.org\./);
});
