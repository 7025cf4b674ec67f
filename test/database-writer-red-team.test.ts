// Red team round: the intruder with WRITE access to the database but not the key. They hold Bulwark's database
// credentials (a leaked connection string, an SQL injection in a sibling app sharing the database, a compromised
// replica's app user) and run any SELECT/INSERT/UPDATE/DELETE on Bulwark's tables between Bulwark's own requests, but
// they do not hold the master key file or anything the keyring wraps. Attacked here: what the docs claim about tamper
// evidence (docs/audit-log.md, ADR 0002/0014/0015) and about values the keyring binds (ADR 0004, docs/http-auth.md
// "sealed at rest", docs/mfa-and-tokens.md "Secret at rest"): (1) hiding evidence in the audit log by cutting or
// rewriting the events after the newest stored checkpoint while the server that wrote them keeps running, and (2)
// turning a single-use link mail the keyring seals into one delivered to the intruder. Each test is an attack that
// must fail on correct code. Two findings, fixed: a running server signed a log altered under it (now it remembers what
// it committed), and a sealed link mail opened for any recipient (now the seal carries its recipient, ADR 0020).
import assert from "node:assert/strict";
import { it } from "node:test";
import { AuditLog } from "../src/audit/audit-log.ts";
import { eventHash } from "../src/audit/chain.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { SEALED_BODY_MARKER } from "../src/notify/link-kinds.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { notifyFixture } from "../src/notify/test-setup.ts";
import type { Database } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { recordingTransport } from "./helpers/recording-transport.ts";
import { queueResetLink } from "./helpers/reset-link.ts";

const RESET_TOKEN = /prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}/;
const THIEF = "thief@evil.example";

/** A migrated store, its keyring and the server's audit log over it (signing with the keyring, as openApp wires it). */
async function auditStore(db: Database): Promise<{ audit: AuditLog; reopen: () => AuditLog; clock: ManualClock }> {
  const clock = new ManualClock(Date.UTC(2026, 11, 10));
  assert.equal((await migrate(db, clock)).error, undefined);
  const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(db), clock, random: systemRandom });
  await keyring.ensureKeys();
  const reopen = (): AuditLog => new AuditLog({ database: db, clock, random: systemRandom, signer: () => keyring.signer() });
  return { audit: reopen(), reopen, clock };
}

async function checkpointSeqs(db: Database): Promise<number[]> {
  return (await db.db.selectFrom("audit_checkpoints").select("seq").orderBy("seq").execute()).map((r) => Number(r.seq));
}

async function eventAt(db: Database, seq: number): Promise<{ hash: string; actor: string } | undefined> {
  return db.db.selectFrom("audit_events").select(["hash", "actor"]).where("seq", "=", seq).executeTakeFirst();
}

/** What the intruder does to hide the events after #keep: deletes them and moves the head back (no key needed). */
async function cutBackTo(db: Database, keep: number): Promise<void> {
  const kept = await eventAt(db, keep);
  assert.ok(kept);
  await db.db.deleteFrom("audit_events").where("seq", ">", keep).execute();
  await db.db.updateTable("audit_head").set({ seq: keep, hash: kept.hash }).where("id", "=", 1).execute();
}

/** What the intruder does to blame someone else: rewrites the actor of every event from #from on, re-links them and the head. */
async function reattribute(db: Database, from: number, actor: string): Promise<void> {
  const rows = await db.db.selectFrom("audit_events").selectAll().where("seq", ">=", from - 1).orderBy("seq").execute();
  let prev = rows[0]!.hash;
  for (const r of rows.slice(1)) {
    const hash = eventHash({ seq: Number(r.seq), id: r.id, type: r.type, actor, subject: r.subject, at: Number(r.at), requestId: r.request_id, prevHash: prev, data: r.data });
    await db.db.updateTable("audit_events").set({ actor, prev_hash: prev, hash }).where("seq", "=", r.seq).execute();
    prev = hash;
  }
  await db.db.updateTable("audit_head").set({ hash: prev }).where("id", "=", 1).execute();
}

/**
 * A running server's log: five events and the checkpoint init signs at once (#5); then the thief's three requests with a
 * leaked token (#6–#8), each recorded by this process and committed on its own (`api.token.used` is appended outside
 * any transaction), so the process knows their positions and hashes as facts.
 */
async function serverThatRecordedTheThief(db: Database): Promise<{ server: AuditLog; reopen: () => AuditLog; thief: Array<{ seq: number; hash: string }> }> {
  const { audit: server, reopen } = await auditStore(db);
  for (let i = 0; i < 5; i++) await server.append({ type: "store.migrated", data: { version: i + 1 } });
  assert.equal((await server.checkpoint())?.seq, 5, "init's checkpoint");
  const thief: Array<{ seq: number; hash: string }> = [];
  for (const route of ["GET /api/v1/users", "GET /api/v1/audit/events", "POST /api/v1/tokens"]) {
    const event = await server.append({ type: "api.token.used", actor: "usr_helpdesk", subject: "tok_leaked", data: { tokenId: "tok_leaked", ip: "198.51.100.66", route } });
    thief.push({ seq: event.seq, hash: event.hash });
  }
  return { server, reopen, thief };
}

/** The server's next audited change (in its transaction, as every /api/v1 change is), then its maintenance pass's checkpoint. */
async function nextChangeThenMaintenancePass(db: Database, server: AuditLog): Promise<{ signedAt: number | null; refusal: string | null }> {
  // A refused append is as good an answer as a refused checkpoint: either way nothing is signed over the change.
  const appended = await db.transaction((trx) => server.appendIn(trx, { type: "user.locked", actor: "usr_admin", subject: "usr_someone", data: { auth: "session" } }))
    .then(() => null, (error: Error) => error.message);
  if (appended !== null) return { signedAt: null, refusal: appended };
  try {
    return { signedAt: (await server.checkpoint())?.seq ?? null, refusal: null };
  } catch (error) {
    return { signedAt: null, refusal: (error as Error).message };
  }
}

forEachDialect("database writer: the events after the newest checkpoint, under the server that wrote them", (fx) => {
  // docs/audit-log.md: "Nor can they get Bulwark to sign one [a checkpoint over a rewritten chain]": before signing, the
  // events since the newest stored checkpoint are re-hashed and must link. They do link after a cut or a re-linked
  // rewrite, so the check passes; but the process about to sign appended those events itself, committed, and holds
  // their positions and hashes. It already refuses to sign when a checkpoint it stored or read is gone ("What a process
  // saw"); the events it committed are the same kind of fact, and ignoring them makes it the signing oracle the docs
  // say it is not: its own maintenance pass (every 15 minutes) or stop signs the intruder's version, and from then on
  // no checkpoint — exported ones included — can show what was there.
  it("attack: the intruder who cuts away, or re-attributes, the events the running server just recorded after its newest checkpoint gets no signature over it: that server remembers what it committed and refuses to checkpoint (or link) an altered log, BULWARK_ERR_AUDIT_COMMITTED_ALTERED (ASVS 16.4.2) (was: its next maintenance checkpoint signed the altered log, so the erasure was vouched for by Bulwark's own key)", async () => {
    const signedOver: string[] = [];
    for (const variant of ["cut", "reattributed"] as const) {
      const db = await fx.fresh();
      const { server, reopen, thief } = await serverThatRecordedTheThief(db);
      if (variant === "cut") await cutBackTo(db, 5);
      else await reattribute(db, 6, "usr_innocent");
      const { signedAt, refusal } = await nextChangeThenMaintenancePass(db, server);
      const stored = await eventAt(db, thief[0]!.seq);
      assert.notEqual(stored?.hash, thief[0]!.hash, `${variant}: the intruder's change is in place (test set-up)`);
      // What an auditor then sees: the database's verify, with the keyring.
      const report = await reopen().verify();
      if (signedAt !== null && signedAt >= thief[0]!.seq) {
        signedOver.push(`${variant}: the server signed a checkpoint at #${signedAt} over a log whose #${thief[0]!.seq} is no longer the event it committed ` +
          `(now ${stored ? `actor ${stored.actor}` : "gone"}); verify then says ok=${report.ok}, ${report.checkpointsChecked} checkpoint(s) verified`);
      } else {
        assert.ok(refusal !== null, `${variant}: neither signed nor refused`);
      }
    }
    assert.deepEqual(signedOver, [], signedOver.join("\n"));
  });

  // The defence that does hold: an append outside a transaction links to the head this process last wrote, not to the
  // one the intruder moved back, so a naive cut followed by the server's next unbatched append (an `api.token.used`, a
  // refused login) is named by verify as missing events, never passed as a log that ends where the head says.
  it("attack: a tail cut with the head moved back, followed by the same server's next unbatched append, is refused or leaves a gap that `audit verify` names at the first cut position", async () => {
    const db = await fx.fresh();
    const { server, reopen } = await serverThatRecordedTheThief(db);
    await cutBackTo(db, 5);
    await server.append({ type: "api.token.used", actor: "usr_ops", subject: "tok_ops", data: { tokenId: "tok_ops", ip: "192.0.2.1", route: "GET /api/v1/users" } }).catch(() => null);
    const report = await reopen().verify();
    assert.equal(report.ok, false, `a log with #6–#8 cut away verified intact: ${JSON.stringify(report)}`);
    assert.equal(report.problem?.seq, 6, `the report names ${JSON.stringify(report.problem)}`);
    assert.match(report.problem?.problem ?? "", /missing/);
    assert.deepEqual(await checkpointSeqs(db), [5], "nothing was signed over the cut");
  });
});

forEachDialect("database writer: single-use link mails the keyring seals", (fx) => {
  // docs/http-auth.md: link bodies are sealed at rest, "bound to (outbox_messages, the column, the message id)". The
  // binding refuses a sealed body moved to a row of the intruder's making; this pins that.
  it("attack: the sealed body of a reset link waiting for the owner, copied into a row addressed to the intruder, never opens: that row goes dead, nothing reaches the intruder, and the owner still gets the link", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    await queueResetLink(database, f);
    const genuine = await database.db.selectFrom("outbox_messages").selectAll().where("kind", "=", "account.password-reset-link").executeTakeFirstOrThrow();
    assert.ok(genuine.body_text.startsWith(SEALED_BODY_MARKER));
    const copyId = `${genuine.id.slice(0, -4)}zzzz`;
    await database.db.insertInto("outbox_messages").values({ ...genuine, id: copyId, idempotency_key: `${genuine.idempotency_key}:copy`, to_address: THIEF }).execute();
    const transport = recordingTransport();
    await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger: { warn() {} } }, { name: "rt" }).drain();
    assert.deepEqual(transport.sent.filter((m) => m.to === THIEF).map((m) => m.kind), [], "a link mail reached the intruder");
    assert.equal((await database.db.selectFrom("outbox_messages").select("status").where("id", "=", copyId).executeTakeFirstOrThrow()).status, "dead");
    assert.match(transport.sent.find((m) => m.to === "ana@example.org")?.text ?? "", RESET_TOKEN, "the owner's own link still went out");
  });

  // The same binding leaves out the one column that says where the link goes. A link in the owner's mailbox is what the
  // whole reset flow trusts, and this one leaves no trace: the audit log shows the owner's own request and a normal
  // completion, the outbox row reads "sent" (and is deleted by retention), while a row planted from nothing would have
  // no request event behind it. The keyring already computes an AEAD tag over this body; the recipient is not in it.
  it("attack: the intruder who rewrites only the recipient of a sealed password-reset link waiting in the outbox gets nothing: the seal carries the recipient, kind and subject it was sealed for, and the message goes dead (ASVS 11.3.3, 6.4.3) (was: the sender opened the seal and delivered the owner's working link to the intruder's mailbox)", async (t) => {
    const database = await fx.fresh();
    const f = await notifyFixture(database);
    t.after(() => f.close());
    const { resets } = await queueResetLink(database, f);
    await database.db.updateTable("outbox_messages").set({ to_address: THIEF }).where("kind", "=", "account.password-reset-link").execute();
    const transport = recordingTransport();
    await new OutboxSender({ outbox: f.outbox, transport, clock: f.clock, random: systemRandom, logger: { warn() {} } }, { name: "rt" }).drain();
    const stolen = transport.sent.filter((m) => m.to === THIEF).map((m) => RESET_TOKEN.exec(m.text)?.[0]).find((token) => token !== undefined);
    const works = stolen === undefined ? false : (await resets.check(stolen)).valid;
    assert.equal(stolen, undefined, `the owner's reset link was delivered to ${THIEF}${works ? ", and it works" : ""}`);
    const row = await database.db.selectFrom("outbox_messages").select(["status", "last_error"]).where("kind", "=", "account.password-reset-link").executeTakeFirstOrThrow();
    assert.equal(row.status, "dead", "a sealed link whose recipient was changed should be refused like any altered sealed row");
  });
});
