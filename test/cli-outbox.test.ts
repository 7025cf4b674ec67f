// `bulwark outbox status` and `bulwark outbox requeue-dead` end to end: an operator can see what the outbox
// owes and which messages are dead, and send dead mail again — confirmed, audited, with a dry run first.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { Outbox, PRIORITY } from "../src/notify/outbox.ts";
import { openSQLite } from "../src/store/database.ts";
import { bulwark, bulwarkHere, bulwarkInProcess } from "./helpers/cli.ts";

const HOUR = 3_600_000;
let dir: string;
let deadIds: string[];
const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-outbox-cli-"));
  assert.equal((await bulwarkHere(["init"], { env: env() })).code, 0);
  // Two notices that went dead three hours ago (the relay refused them), one still queued from two hours ago.
  const database = openSQLite(join(dir, "data", "bulwark.db"), { create: false });
  const clock = new ManualClock(Date.now() - 3 * HOUR);
  const outbox = new Outbox({ database, clock, random: systemRandom });
  for (const n of [1, 2]) await outbox.enqueue({ idempotencyKey: `dead:${n}`, to: `user${n}@example.org`, subject: "Your password was changed", text: "…", kind: "security.password-changed", priority: PRIORITY.security });
  const claimed = await outbox.claim({ claimer: "test/clm", limit: 10, leaseMs: 60_000 });
  for (const m of claimed) assert.equal(await outbox.markDead({ id: m.id, claimer: "test/clm", error: "550 5.7.1 relay refused" }), true);
  deadIds = claimed.map((m) => m.id).sort();
  clock.advance(HOUR);
  await outbox.enqueue({ idempotencyKey: "queued:1", to: "ana@example.org", subject: "Breach notice", text: "…", kind: "campaign.notice", priority: PRIORITY.campaign });
  await database.close();
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("outbox status", () => {
  it("counts messages by status, gives the age of the oldest unsent one and lists the dead ones", async () => {
    const r = await bulwarkHere(["outbox", "status", "--json"], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    const status = JSON.parse(r.stdout);
    assert.deepEqual(status.counts, { queued: 1, sending: 0, sent: 0, failed: 0, dead: 2 });
    assert.ok(status.oldestPendingAgeSeconds >= 2 * 3600 - 60, `oldest unsent message is ${status.oldestPendingAgeSeconds} s old`);
    assert.deepEqual(status.dead.map((m: { id: string }) => m.id).sort(), deadIds);
    assert.equal(status.dead[0].lastError, "550 5.7.1 relay refused");
    assert.equal(status.dead[0].kind, "security.password-changed");
    assert.equal(status.lastSentAt, null);
    assert.equal(status.mailConfigured, false);

    // As an operator reads it: the CLI as a process of its own (the other calls here run in this process).
    const human = await bulwark(["outbox", "status"], { env: env() });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /1 queued, .*2 dead/);
    assert.match(human.stdout, /oldest message not yet sent: queued 2h \d+m ago/);
    for (const id of deadIds) assert.match(human.stdout, new RegExp(id));
    // Judged from the store (nothing sent since the oldest unsent message was queued), not from this shell's environment.
    assert.match(human.stdout, /no delivery on record/);
    assert.match(human.stdout, /note: nothing was delivered since the oldest message not yet sent was queued; `bulwark serve` sends only with BULWARK_SMTP_URL/);
  });

  it("refuses a --limit outside 1 to 1000 with exit 2", async () => {
    for (const limit of ["0", "1001", "ten"]) {
      const r = await bulwarkHere(["outbox", "status", "--limit", limit], { env: env() });
      assert.equal(r.code, 2, `${limit}: ${r.stderr}`);
      assert.match(r.stderr, /--limit must be a whole number from 1 to 1000/);
    }
  });
});

describe("outbox requeue-dead", () => {
  it("shows what a dry run would requeue and changes nothing, asks for --yes, then requeues and audits", async () => {
    const dry = await bulwarkHere(["outbox", "requeue-dead", "--dry-run", "--json"], { env: env() });
    assert.equal(dry.code, 0, dry.stderr);
    const plan = JSON.parse(dry.stdout);
    assert.equal(plan.wouldRequeue, 2);
    assert.deepEqual(plan.messages.map((m: { id: string }) => m.id).sort(), deadIds);
    const humanDry = await bulwarkHere(["outbox", "requeue-dead", "--dry-run"], { env: env() });
    assert.match(humanDry.stdout, /dry run: 2 dead messages would be requeued; nothing was changed/);
    assert.equal(JSON.parse((await bulwarkHere(["outbox", "status", "--json"], { env: env() })).stdout).counts.dead, 2, "a dry run changes nothing");

    const unconfirmed = await bulwarkHere(["outbox", "requeue-dead"], { env: env() });
    assert.equal(unconfirmed.code, 2);
    assert.match(unconfirmed.stderr, /would send 2 dead messages again: add --yes/);
    assert.equal(JSON.parse((await bulwarkHere(["outbox", "status", "--json"], { env: env() })).stdout).counts.dead, 2);

    // The requeue itself from the CLI as a process of its own, as an operator runs it.
    const done = await bulwark(["outbox", "requeue-dead", "--yes", "--json"], { env: env() });
    assert.equal(done.code, 0, done.stderr);
    assert.equal(JSON.parse(done.stdout).requeued, 2);
    const after = JSON.parse((await bulwarkHere(["outbox", "status", "--json"], { env: env() })).stdout);
    assert.deepEqual(after.counts, { queued: 3, sending: 0, sent: 0, failed: 0, dead: 0 });

    const tail = await bulwarkHere(["audit", "tail", "-n", "5", "--json"], { env: env() });
    assert.equal(tail.code, 0, tail.stderr);
    const events = tail.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; actor: string; data: { ids: string[]; requeued: number } });
    const requeued = events.find((e) => e.type === "outbox.dead-requeued");
    assert.ok(requeued, `audit events: ${events.map((e) => e.type).join(", ")}`);
    assert.deepEqual([...requeued.data.ids].sort(), deadIds);
    assert.equal(requeued.data.requeued, 2);
    assert.match(requeued.actor, /^cli:/);
  });
});

describe("outbox on an altered database", () => {
  let root: string;
  const altered = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent" });
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "bulwark-outbox-altered-"));
    assert.equal((await bulwarkInProcess(["init"], altered())).code, 0);
    const database = openSQLite(join(root, "data", "bulwark.db"), { create: false });
    const outbox = new Outbox({ database, clock: new ManualClock(Date.now()), random: systemRandom });
    await outbox.enqueue({ idempotencyKey: "x:1", to: "eve@example.org", subject: "Notice", text: "…", kind: "security.password-changed", priority: PRIORITY.security });
    const [m] = await outbox.claim({ claimer: "test/clm", limit: 1, leaseMs: 60_000 });
    assert.equal(await outbox.markDead({ id: m!.id, claimer: "test/clm", error: "550 refused" }), true);
    // Written past enqueue's checks, as someone with the database file could: terminal controls in the address and kind.
    await database.db.updateTable("outbox_messages").set({ to_address: "eve@example.org\u001b]0;owned\u0007\u001b[2J", kind: "k\u009b31m" }).execute();
    await database.close();
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("attack: status shows a stored address and kind with their control characters escaped, never raw", async () => {
    const r = await bulwarkInProcess(["outbox", "status"], altered());
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /[\u001b\u0007\u009b]/, "no raw control character reaches the terminal");
    assert.match(r.stdout, /to eve@example\.org\\x1b\]0;owned\\x07\\x1b\[2J/);
    assert.match(r.stdout, /k\\x9b31m/);
  });

  it("a requeue whose audit event cannot be written requeues nothing (the two commit together)", async () => {
    const database = openSQLite(join(root, "data", "bulwark.db"), { create: false });
    const head = await database.db.selectFrom("audit_head").selectAll().execute();
    await database.db.deleteFrom("audit_head").execute(); // every append now fails: the head is missing
    try {
      const r = await bulwarkInProcess(["outbox", "requeue-dead", "--yes"], altered());
      assert.notEqual(r.code, 0, r.stdout);
      const rows = await database.db.selectFrom("outbox_messages").select("status").execute();
      assert.deepEqual(rows.map((m) => m.status), ["dead"], "still dead: nothing was sent again unrecorded");
    } finally {
      await database.db.insertInto("audit_head").values(head).execute();
      await database.close();
    }
  });
});
