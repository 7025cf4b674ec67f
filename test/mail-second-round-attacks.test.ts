// Second-round attacks on the mail path: the outbox's sealed link bodies on their error paths (a transient failure
// while opening one, a body that never opens, and what the sender's log and `bulwark outbox` then show), headers
// built from a row written behind enqueue's back, and email-change requests that race the owner's own remedies
// (a password reset, a confirmation). Each test asserts the secure behaviour; an "attack: … (was: …)" test failed on
// the code before its fix. Temp dirs and loopback only.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Keyring } from "../src/crypto/keyring.ts";
import { type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { Outbox, PRIORITY } from "../src/notify/outbox.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { notifyFixture } from "../src/notify/test-setup.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const HOUR = 3_600_000;
const RESET_TEXT = "Open this link within 30 minutes to choose a new password; it works once:\n\nhttps://bulwark.test/reset-password#token=prt_aaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n";
const EMAIL_LINK = /https:\/\/bulwark\.test\/confirm-email#token=(ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
const RESET_LINK = /reset-password#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;

const root = mkdtempSync(join(tmpdir(), "bulwark-mail-second-round-"));
const opened: Database[] = [];
after(async () => {
  for (const db of opened) await db.close().catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

let counter = 0;
async function freshDatabase(): Promise<Database> {
  const db = openSQLite(join(root, `db-${++counter}.sqlite`), { create: true });
  opened.push(db);
  return db;
}


// ---------------------------------------------------------------------------------------------------------
// Sealed link bodies on their error paths (ASVS 14.2.7 keeps them sealed; ASVS 16.3.4 / 16.5.x: failures logged
// and handled without losing the mail)
// ---------------------------------------------------------------------------------------------------------

describe("sealed link mail on error paths", () => {
  it("attack: a transient database error while reading the key table to open a reset link (sealed by a node that rotated the key) leaves the link queued for a retry, not dead for good (ASVS 16.5.2) (was: any error opening the body made the link dead at its claim)", async () => {
    const database = await freshDatabase();
    const clock = new ManualClock(Date.UTC(2026, 10, 1));
    const migrated = await migrate(database, clock, MIGRATIONS);
    assert.equal(migrated.error, undefined);
    const master = systemRandom.bytes(32);
    const store = createKeyStore(database);
    // This node's keyring reads the shared key table through a connection that fails for a moment.
    let down = false;
    const flaky = { ...store, listKeys: async () => {
      if (down) throw new Error("Connection terminated unexpectedly");
      return store.listKeys();
    } };
    const here = await Keyring.open({ masterKey: master, store: flaky, clock, random: systemRandom });
    await here.ensureKeys();
    // Another node (or `bulwark rotate-keys` then `bulwark contain`) rotated the data key and sealed a reset link under it.
    const there = await Keyring.open({ masterKey: master, store, clock, random: systemRandom });
    await there.rotateDataKey();
    const otherNode = new Outbox({ database, clock, random: systemRandom, linkCipher: there });
    const { id } = await otherNode.enqueue({ idempotencyKey: "reset:1", to: "ana@example.org", subject: "Bulwark: reset your password", text: RESET_TEXT, kind: "account.password-reset-link", priority: PRIORITY.security });

    const transport = recordingTransport();
    const sender = new OutboxSender({ outbox: new Outbox({ database, clock, random: systemRandom, linkCipher: here }), transport, clock, random: systemRandom }, { name: "node-a" });
    down = true;
    await sender.runOnce();
    down = false;
    const row = await database.db.selectFrom("outbox_messages").select(["status", "last_error"]).where("id", "=", id).executeTakeFirstOrThrow();
    assert.notEqual(row.status, "dead", `a database hiccup made the reset link dead for good: ${row.last_error}`);
    // Once the key table reads again, the owner gets the link.
    clock.advance(HOUR);
    await sender.drain({ maxBatches: 5 });
    assert.equal(transport.sent.length, 1, "the reset link was never delivered");
    assert.match(transport.sent[0]?.text ?? "", /reset-password#token=prt_/);
  });

  it("attack: a link mail whose sealed body cannot be opened goes dead with the sender's report and log told, as every dead message is (ASVS 16.3.4) (was: killed inside claim(), it reached neither RunReport.dead nor the log)", async () => {
    const database = await freshDatabase();
    const f = await notifyFixture(database);
    try {
      const { id } = await f.outbox.enqueue({ idempotencyKey: "reset:2", to: "ana@example.org", subject: "Bulwark: reset your password", text: RESET_TEXT, kind: "account.password-reset-link", priority: PRIORITY.security });
      const raw = await database.db.selectFrom("outbox_messages").select("body_text").where("id", "=", id).executeTakeFirstOrThrow();
      await database.db.updateTable("outbox_messages").set({ body_text: `${raw.body_text.slice(0, -4)}AAAA` }).where("id", "=", id).execute();
      const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
      const logger = { warn: (obj: object, msg: string) => void warnings.push({ obj: obj as Record<string, unknown>, msg }) };
      const sender = new OutboxSender({ outbox: f.outbox, transport: recordingTransport(), clock: f.clock, random: systemRandom, logger }, { name: "t" });
      const report = await sender.runOnce();
      assert.equal((await database.db.selectFrom("outbox_messages").select("status").where("id", "=", id).executeTakeFirstOrThrow()).status, "dead");
      // SenderDeps.logger: "Told about every message that goes dead"; the mail runner logs a batch only from its report.
      assert.equal(report.dead, 1, `the run reports ${JSON.stringify(report)}: the server's log says nothing of a reset link that went dead`);
      assert.ok(warnings.some((w) => w.obj["messageId"] === id), "the sender's log never names the dead message");
    } finally {
      await f.close();
    }
  });

  describe("bulwark outbox on a link mail whose sealed body cannot be opened", () => {
    let dir: string;
    let deadId: string;
    const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });
    before(async () => {
      dir = mkdtempSync(join(root, "cli-"));
      const init = await bulwarkInProcess(["init"], env());
      assert.equal(init.code, 0, init.stderr);
      const database = openSQLite(join(dir, "data", "bulwark.db"), { create: false });
      try {
        // A reset link sealed under a key this database no longer opens (a restore under another master key, or an
        // altered row): the sender's claim marks it dead "for `bulwark outbox status` to show".
        const outbox = new Outbox({ database, clock: new ManualClock(Date.now()), random: systemRandom });
        await outbox.enqueue({ idempotencyKey: "reset:3", to: "ana@example.org", subject: "Bulwark: reset your password", text: "sealed:bwk1.dk_unknownkeyunknownkeyunkno.AAAA", kind: "account.password-reset-link", priority: PRIORITY.security });
        await outbox.enqueue({ idempotencyKey: "notice:3", to: "bo@example.org", subject: "Bulwark: your password was changed", text: "…", kind: "security.password-changed", priority: PRIORITY.security });
        assert.equal((await outbox.claim({ claimer: "test/clm", limit: 10, leaseMs: 60_000 })).length, 1, "the unopenable one is not handed out");
        const dead = await database.db.selectFrom("outbox_messages").select(["id", "status"]).where("idempotency_key", "=", "reset:3").executeTakeFirstOrThrow();
        assert.equal(dead.status, "dead");
        deadId = dead.id;
      } finally {
        await database.close();
      }
    });

    it("attack: `bulwark outbox status` still counts and lists the dead message (was: the command failed with exit 3 opening its body)", async () => {
      const r = await bulwarkInProcess(["outbox", "status", "--json"], env());
      assert.equal(r.code, 0, `status failed: ${r.stderr}`);
      const status = JSON.parse(r.stdout) as { counts: { dead: number }; dead: Array<{ id: string; lastError: string }> };
      assert.equal(status.counts.dead, 1);
      assert.deepEqual(status.dead.map((m) => m.id), [deadId]);
      assert.match(status.dead[0]?.lastError ?? "", /sealed body cannot be opened/);
    });

    it("attack: `bulwark outbox requeue-dead --dry-run` still shows what it would requeue (was: exit 3, listDead opened every dead body)", async () => {
      const r = await bulwarkInProcess(["outbox", "requeue-dead", "--dry-run", "--json"], env());
      assert.equal(r.code, 0, `dry run failed: ${r.stderr}`);
      const plan = JSON.parse(r.stdout) as { wouldRequeue: number; messages: Array<{ id: string }> };
      assert.equal(plan.wouldRequeue, 1);
      assert.deepEqual(plan.messages.map((m) => m.id), [deadId]);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// Headers from a row written behind enqueue's back (ASVS 1.3.11)
// ---------------------------------------------------------------------------------------------------------

describe("headers built from a stored row", () => {
  it("attack: CR/LF or U+2028 written into a row's kind or id (X-Bulwark-Kind, Message-ID) adds no header and no recipient (ASVS 1.3.11)", async () => {
    // The transport checks `to` and `subject` again at send time, not the kind nor the id: nodemailer's own
    // folding is what keeps these two on one line. Pinned here.
    const database = await freshDatabase();
    const f = await notifyFixture(database);
    try {
      const ids: string[] = [];
      for (const n of [1, 2, 3]) ids.push((await f.outbox.enqueue({ idempotencyKey: `hdr:${n}`, to: "ana@example.org", subject: `Notice ${n}`, text: "hello", kind: "security.password-changed", priority: PRIORITY.security })).id);
      await database.db.updateTable("outbox_messages").set({ kind: "k\r\nBcc: eve@evil.test\r\nX-Injected: 1" }).where("id", "=", ids[0] as string).execute();
      await database.db.updateTable("outbox_messages").set({ kind: "k\u2028Bcc: eve@evil.test\u2029X-Injected: 1" }).where("id", "=", ids[1] as string).execute();
      await database.db.updateTable("outbox_messages").set({ id: "msg_x>\r\nBcc: eve@evil.test\r\nX-Injected: <y" }).where("id", "=", ids[2] as string).execute();
      const sender = new OutboxSender({ outbox: f.outbox, transport: await f.transport(), clock: f.clock, random: systemRandom }, { name: "t" });
      await sender.drain();
      assert.ok(f.server.accepted.length + f.server.refused.length > 0, "nothing reached the relay");
      for (const mail of [...f.server.accepted, ...f.server.refused]) {
        assert.deepEqual(mail.envelopeTo, ["ana@example.org"]);
        assert.equal(mail.headers.has("bcc"), false, mail.raw.slice(0, 600));
        assert.equal(mail.headers.has("x-injected"), false, mail.raw.slice(0, 600));
        const head = mail.raw.slice(0, mail.raw.indexOf("\r\n\r\n"));
        assert.doesNotMatch(head, /^(Bcc|X-Injected):/im);
      }
    } finally {
      await f.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Email-change requests racing the owner's remedies (ASVS 6.3.7, 7.4.3)
// ---------------------------------------------------------------------------------------------------------

describe("email-change requests racing the owner", () => {
  const fx = sharedFixture();

  async function signedIn(email: string, browser: Browser = fx.browser({ newDevice: true })): Promise<Browser> {
    const user = await fx.app.accounts.users.findByIdentifier(email);
    assert.ok(user, email);
    const res = await browser.login(email, "violet kettle drums at dawn");
    assert.equal(res.statusCode, 200, res.body);
    return browser;
  }

  /**
   * Runs `work` at the moment the email-change route has read the account (before its transaction): the
   * interleaving a second connection produces on its own. Then 1 ms passes, as it would.
   */
  function whenTheChangeRouteHasReadTheAccount(work: () => Promise<void>): () => void {
    const users = fx.app.accounts.users as { getById: AuthFixture["app"]["accounts"]["users"]["getById"] };
    const original = users.getById;
    users.getById = async (id) => {
      const found = await original(id);
      if (/email-routes\.ts/.test(new Error().stack ?? "")) {
        users.getById = original;
        await work();
        fx.clock.advance(1);
      }
      return found;
    };
    return () => {
      users.getById = original;
    };
  }

  async function linksTo(address: string): Promise<string[]> {
    await fx.deliver();
    return fx.mailTo(address).map((m) => EMAIL_LINK.exec(m.body)?.[1]).filter((t): t is string => t !== undefined);
  }

  it("attack: a hijacker's change request in flight while the owner completes a password reset leaves no working link: the account stays the owner's (ASVS 6.3.7, 7.4.3) (was: the request, stamped after the reset, left a link that moved the account)", async () => {
    const owner = await fx.user("raced-reset@example.org");
    const hijacker = await signedIn(owner.email);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: owner.email } })).statusCode, 202);
    await fx.deliver();
    const reset = RESET_LINK.exec(fx.mailTo(owner.email).filter((m) => /reset your password/.test(m.subject)).at(-1)?.body ?? "")?.[1];
    assert.ok(reset, "no reset link");

    let completed: Awaited<ReturnType<Browser["request"]>> | undefined;
    const restore = whenTheChangeRouteHasReadTheAccount(async () => {
      completed = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: reset, newPassword: "harbour lantern quietly hums" } });
    });
    try {
      await hijacker.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "thief@evil.example" } });
    } finally {
      restore();
    }
    assert.equal(completed?.statusCode, 200, completed?.body);
    // The reset ended every session and "cancels the pending change"; whatever the in-flight request wrote must die too.
    fx.clock.advance(60_000);
    for (const token of await linksTo("thief@evil.example")) await fx.browser().request("POST", "/auth/email/confirm", { body: { token } });
    assert.equal((await fx.app.accounts.users.getById(owner.id))?.email, owner.email, "the account moved to the hijacker's mailbox after the owner's reset");
  });

  it("attack: a change request racing the owner's confirmation of another change tells the address the account has now, not the one it left (ASVS 6.3.7) (was: the notice went to the stale address the route had read)", async () => {
    const owner = await fx.user("left-box@example.org");
    const ownerBrowser = await signedIn(owner.email);
    assert.equal((await ownerBrowser.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "kept-box@example.org" } })).statusCode, 202);
    const [confirmToken] = await linksTo("kept-box@example.org");
    assert.ok(confirmToken);
    const other = await signedIn(owner.email);

    let confirmed: Awaited<ReturnType<Browser["request"]>> | undefined;
    const restore = whenTheChangeRouteHasReadTheAccount(async () => {
      confirmed = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: confirmToken } });
    });
    try {
      await other.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "third-box@evil.example" } });
    } finally {
      restore();
    }
    assert.equal(confirmed?.statusCode, 200, confirmed?.body);
    assert.equal((await fx.app.accounts.users.getById(owner.id))?.email, "kept-box@example.org");
    const linked = await linksTo("third-box@evil.example");
    await fx.deliver();
    const requested = (address: string): number => fx.mailTo(address).filter((m) => /change of your email address was requested/.test(m.subject) && m.body.includes("third-box@evil.example")).length;
    assert.equal(requested("left-box@example.org"), 0, "the request was told to the address the account had just left (someone else's mailbox, perhaps)");
    if (linked.length > 0) assert.equal(requested("kept-box@example.org"), 1, "a link to a third address went out and the account's address was never told");
  });
});
