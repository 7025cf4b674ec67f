// Red team of c27d9bc..2609b37: a containment batch's reset links queued at once (ResetMailer.issueContainmentLinks,
// outbox.enqueueMany, resets.storeMany), their idempotency keys numbered by the user's seq in the job
// (`account.containment-reset:<job>.<seq10>:<user>`, beside the old `<job>:<user>`), require-mfa-reenrolment's reading
// of the job's own link under either key (mailedByThisJob, spendLinksLeftOpen), and time-ordered link token ids
// (LinkTokenKind.generate(random, { orderedAt })). On SQLite and PostgreSQL (forEachDialect).
//
// A test whose name starts with "HOLDS" is an attack the code withstood when this red team ran; one starting "attack:"
// is a finding of it, fixed, and says what it was.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { CONTAINMENT_LINK_LIFETIME_MS, containmentResetKey, containmentResetKeys, createResetMailer, type ResetMailer } from "../src/accounts/password-reset/reset-mail.ts";
import { createPasswordResetService, type PasswordResetService } from "../src/accounts/password-reset/reset-service.ts";
import { createUserStore } from "../src/accounts/users/user-store.ts";
import { linkStatesIn } from "../src/app/link-states.ts";
import { createContainJob, runJob, type ResetNotifier } from "../src/contain/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom, type RandomSource } from "../src/lib/random.ts";
import { Outbox } from "../src/notify/outbox.ts";
import { DEFAULT_DATED_AHEAD_TOLERANCE_MS } from "../src/store/clock-skew.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { openContainFixture, seedContainUsers, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const NOW = Date.UTC(2026, 11, 8, 9);
const CONTEXT = { publicURL: "https://bulwark.test", serviceName: "Bulwark" };
const LINK = /https:\/\/bulwark\.test\/reset-password#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
const KIND = "account.containment-reset-link";
const SORTED32 = "234567abcdefghijklmnopqrstuvwxyz";

/** A CSPRNG that remembers every draw (a copy), so a test can tell which bytes went into which id and secret. */
function recordingRandom(): RandomSource & { draws: Uint8Array[] } {
  const draws: Uint8Array[] = [];
  return {
    draws,
    bytes(size: number): Uint8Array {
      const out = systemRandom.bytes(size);
      draws.push(Uint8Array.from(out));
      return out;
    },
  };
}

interface Setup {
  database: Database;
  clock: ManualClock;
  resets: PasswordResetService;
  outbox: Outbox;
  mailer: ResetMailer;
  random: RandomSource & { draws: Uint8Array[] };
  people: Array<{ id: string; email: string }>;
}

/**
 * The reset mailer over a fresh database as the conformance suite builds it (reset-mail.conformance.test.ts), with an
 * outbox that asks the link store whether a mail's link still works (as the server's does: src/app/accounts.ts), and
 * `n` users.
 */
async function setup(database: Database, n: number): Promise<Setup> {
  const clock = new ManualClock(NOW);
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  const users = createUserStore({ database, clock, random: systemRandom });
  const people: Array<{ id: string; email: string }> = [];
  for (let i = 0; i < n; i++) {
    const u = await users.create({ email: `rt36-${i}@example.org` });
    people.push({ id: u.id, email: u.email });
  }
  const resets = createPasswordResetService({ database, clock, random: systemRandom });
  const outbox = new Outbox({ database, clock, random: systemRandom, linkStates: linkStatesIn(database.db, clock, DEFAULT_DATED_AHEAD_TOLERANCE_MS) });
  const random = recordingRandom();
  return { database, clock, resets, outbox, mailer: createResetMailer({ database, resets, outbox, random }), random, people };
}

/** The link token carried by the mail under `key`, or undefined when there is no such mail. */
async function linkUnder(outbox: Outbox, key: string): Promise<string | undefined> {
  const message = await outbox.getByKey(key);
  return message === null ? undefined : LINK.exec(message.text)?.[1];
}

/**
 * Every way a containment mail and its token row can fail to pair up: a mail whose link_id names no token row (a mail
 * that cannot work), or a row of another account; a token row no mail carries (a live link nobody was sent); a token
 * carried by two mails. Empty when each mail carries its own account's token and each token is in one mail.
 */
async function pairingProblems(database: Database): Promise<string[]> {
  const mails = await database.db.selectFrom("outbox_messages").select(["idempotency_key", "link_id", "account_id"]).where("kind", "=", KIND).execute();
  const tokens = new Map((await database.db.selectFrom("password_reset_tokens").select(["id", "user_id"]).execute()).map((t) => [t.id, t.user_id]));
  const problems: string[] = [];
  const carried = new Map<string, number>();
  for (const m of mails) {
    if (m.link_id === null) {
      problems.push(`mail ${m.idempotency_key} names no link`);
      continue;
    }
    carried.set(m.link_id, (carried.get(m.link_id) ?? 0) + 1);
    const owner = tokens.get(m.link_id);
    if (owner === undefined) problems.push(`mail ${m.idempotency_key} carries a link with no token row`);
    else if (owner !== m.account_id) problems.push(`mail ${m.idempotency_key} (account ${m.account_id}) carries ${owner}'s link`);
  }
  for (const [id] of tokens) if (!carried.has(id)) problems.push(`token ${id} is in no mail`);
  for (const [id, n] of carried) if (n > 1) problems.push(`token ${id} is in ${n} mails`);
  return problems;
}

async function count(database: Database): Promise<{ tokens: number; mails: number }> {
  const t = await database.db.selectFrom("password_reset_tokens").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  const m = await database.db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n")).where("kind", "=", KIND).executeTakeFirstOrThrow();
  return { tokens: Number(t.n), mails: Number(m.n) };
}

/** Decodes the 16 bytes of a token id's 26 characters (newOrderedId's alphabet, in byte order). */
function orderedIdBytes(id: string): Uint8Array {
  const text = id.slice(id.indexOf("_") + 1);
  const out = new Uint8Array(16);
  let bits = 0;
  let value = 0;
  let n = 0;
  for (const ch of text) {
    value = (value << 5) | SORTED32.indexOf(ch);
    bits += 5;
    if (bits >= 8 && n < 16) {
      out[n++] = (value >>> (bits - 8)) & 255;
      bits -= 8;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** A check's outcome as a comparable value: validity, the service's reason, and the genuine link a refusal names (if any). */
function refusalShape(check: Awaited<ReturnType<PasswordResetService["check"]>>): unknown {
  return check.valid ? { valid: true } : { valid: false, reason: check.reason, genuine: "genuine" in check ? check.genuine : undefined };
}

forEachDialect("red team 36: a containment batch's reset links", (dfx) => {
  // Attack 1. ASVS 6.4.1 (a recovery secret expires after its life or its first use), 6.4.3 (a secure reset process),
  // 11.2.4 / 11.5.1 (the secret is what is checked, in constant time; the id is not a credential).
  it("HOLDS: a link of a batch resets its own account only, once, for its 24 hours; another account's id with this secret, a tampered secret and a replay are refused alike (ASVS 6.4.1, 6.4.3)", async () => {
    const s = await setup(await dfx.fresh(), 3);
    const [a, b, c] = s.people as [Setup["people"][number], Setup["people"][number], Setup["people"][number]];
    const job = "job_rt36onea";
    const batch = [{ ...a, seq: 1 }, { ...b, seq: 2 }, { ...c, seq: 3 }];
    assert.deepEqual(await s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, batch, { ...CONTEXT, jobId: job })), { queued: 3, alreadyQueued: 0 });
    const link = new Map<string, string>();
    for (const u of batch) link.set(u.id, (await linkUnder(s.outbox, containmentResetKey(job, u.id, u.seq))) as string);
    const [ta, tb, tc] = [link.get(a.id)!, link.get(b.id)!, link.get(c.id)!];
    for (const [user, token] of [[a, ta], [b, tb], [c, tc]] as const) {
      const check = await s.resets.check(token);
      assert.deepEqual(check.valid && { userId: check.userId, expiresAt: check.expiresAt }, { userId: user.id, expiresAt: NOW + CONTAINMENT_LINK_LIFETIME_MS }, "each link names its own account, for 24 hours");
    }
    // The ids are time-ordered (a batch's share their time part): an attacker holding A's mail knows the shape of B's
    // id, and, were B's id leaked, A's secret with it must open nothing and say nothing.
    const [idA, secretA] = ta.split(".") as [string, string];
    const [idB, secretB] = tb.split(".") as [string, string];
    assert.equal(idA.slice(4, 13), idB.slice(4, 13), "control: the batch's ids share their time part");
    const nobody = await s.resets.check(`prt_${"a".repeat(26)}.${secretA}`);
    const crossed = [await s.resets.check(`${idB}.${secretA}`), await s.resets.check(`${idA}.${secretB}`)];
    const last = secretA.at(-2) === "A" ? "B" : "A";
    const tampered = await s.resets.check(`${idA}.${secretA.slice(0, -2)}${last}${secretA.at(-1)}`);
    // The service's own reason tells "bad-secret" from "unknown" (for logs: LinkRefusal; the HTTP answer is one for
    // every refusal, as before these commits); what matters here is that no account or link is named without the secret.
    assert.deepEqual(refusalShape(nobody), { valid: false, reason: "unknown", genuine: undefined });
    for (const refused of [...crossed, tampered]) assert.deepEqual(refusalShape(refused), { valid: false, reason: "bad-secret", genuine: undefined }, "a known id with a wrong secret names no account and no link");
    // Used by B's id with A's secret, nothing happened to either link.
    s.clock.advance(1_000);
    assert.equal((await s.database.transaction((trx) => s.resets.redeem(`${idB}.${secretA}`, trx))).valid, false);
    assert.equal((await s.resets.check(ta)).valid && (await s.resets.check(tb)).valid, true, "a refused cross-use spends neither link");
    // A redeems once; the replay is refused (as a genuine used link of A, never as B's); B's link is untouched.
    const used = await s.database.transaction((trx) => s.resets.redeem(ta, trx));
    assert.equal(used.valid && used.userId, a.id, "A's link resets A");
    const replay = await s.database.transaction((trx) => s.resets.redeem(ta, trx));
    assert.deepEqual(refusalShape(replay), { valid: false, reason: "used", genuine: { userId: a.id, tokenId: idA } });
    assert.equal((await s.resets.check(tb)).valid, true, "A's redeem spends A's links only");
    // The outbox does not send A's mail any more (its link is used: NewMessage.linkId); B's and C's go.
    const aside: string[] = [];
    const claimed = await s.outbox.claim({ claimer: "rt36", limit: 10, leaseMs: 60_000, onSetAside: (m) => aside.push(m.to) });
    assert.deepEqual(claimed.map((m) => m.idempotencyKey).sort(), [containmentResetKey(job, b.id, 2), containmentResetKey(job, c.id, 3)].sort());
    assert.deepEqual(aside, [a.email]);
    // Its stated life: works up to the last millisecond of its 24 hours, not at the 24th hour.
    s.clock.set(NOW + CONTAINMENT_LINK_LIFETIME_MS - 1);
    assert.equal((await s.resets.check(tc)).valid, true);
    s.clock.set(NOW + CONTAINMENT_LINK_LIFETIME_MS);
    assert.deepEqual(refusalShape(await s.resets.check(tc)), { valid: false, reason: "expired", genuine: { userId: c.id, tokenId: tc.split(".")[0] } });
    assert.equal((await s.database.transaction((trx) => s.resets.redeem(tc, trx))).valid, false, "an expired link does not redeem");
  });

  // Attack 1 (the refactor's linkMessage): the batch path ties each mail to its account, so a batch entry whose address
  // is not the account's (a caller's bug, or a recipient list read before an address change) sends nobody that link.
  it("HOLDS: a batch entry naming an address other than its account's is queued but never handed to the sender, and its link opens only the account it names (ASVS 6.4.3)", async () => {
    const s = await setup(await dfx.fresh(), 2);
    const [victim, other] = s.people as [Setup["people"][number], Setup["people"][number]];
    const job = "job_rt36addr";
    await s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, [{ id: victim.id, email: "intruder@attacker.example", seq: 1 }, { ...other, seq: 2 }], { ...CONTEXT, jobId: job }));
    const aside: string[] = [];
    const claimed = await s.outbox.claim({ claimer: "rt36", limit: 10, leaseMs: 60_000, onSetAside: (m) => aside.push(m.to) });
    assert.deepEqual(claimed.map((m) => m.to), [other.email], "only the mail to an account's own address goes");
    assert.deepEqual(aside, ["intruder@attacker.example"]);
    assert.deepEqual(await pairingProblems(s.database), []);
  });

  // Attack 2. ASVS 11.5.1: a non-guessable value comes from the CSPRNG with at least 128 bits; the link's secret must stay
  // 256 fresh bits per link, whatever the time-ordered id reveals. Checked against the very bytes the RandomSource
  // handed out, in the rows the batch stored (hashes) and the links it mailed.
  it("HOLDS: in a batch of 60, each link's secret is its own 32-byte CSPRNG draw (stored only as its SHA-256), separate from the id's 80 random bits; no id, secret or hash is shared, none derived from an id (ASVS 11.5.1, 7.2.3)", async () => {
    const s = await setup(await dfx.fresh(), 60);
    const job = "job_rt36rand";
    s.random.draws.length = 0;
    const batch = s.people.map((u, i) => ({ ...u, seq: i + 1 }));
    await s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, batch, { ...CONTEXT, jobId: job }));
    const draws = new Map<string, number>();
    for (const d of s.random.draws) draws.set(`${d.length}:${hex(d)}`, (draws.get(`${d.length}:${hex(d)}`) ?? 0) + 1);
    assert.equal([...draws.values()].every((n) => n === 1), true, "no draw came twice");
    const rows = new Map((await s.database.db.selectFrom("password_reset_tokens").select(["id", "user_id", "secret_hash"]).execute()).map((r) => [r.id, r]));
    assert.equal(rows.size, 60);
    const used = new Set<string>();
    const secrets = new Set<string>();
    for (const u of batch) {
      const token = (await linkUnder(s.outbox, containmentResetKey(job, u.id, u.seq))) as string;
      const [id, secret] = token.split(".") as [string, string];
      const row = rows.get(id);
      assert.equal(row?.user_id, u.id, "the mailed id is the user's own row");
      const secretBytes = Buffer.from(secret, "base64url");
      assert.equal(secretBytes.length, 32, "a 256-bit secret");
      assert.equal(row?.secret_hash, createHash("sha256").update(secret, "utf8").digest("hex"), "only the secret's SHA-256 is stored");
      assert.notEqual(row?.secret_hash.includes(secret), true);
      const idRandom = orderedIdBytes(id).subarray(6);
      const secretKey = `32:${hex(secretBytes)}`;
      const idKey = `10:${hex(idRandom)}`;
      assert.equal(draws.has(secretKey), true, "the secret is exactly one 32-byte draw of the CSPRNG");
      assert.equal(draws.has(idKey), true, "the id's random part is exactly one 10-byte draw, apart from the secret's");
      assert.equal(used.has(secretKey) || used.has(idKey), false, "no draw serves two links");
      used.add(secretKey).add(idKey);
      assert.equal(hex(secretBytes).includes(hex(idRandom)), false, "the secret does not contain the id's random bytes");
      secrets.add(secret);
    }
    assert.equal(secrets.size, 60, "no two users of the batch share a secret");
    assert.equal(new Set([...rows.values()].map((r) => r.secret_hash)).size, 60);
    // What the id does reveal: the batch's time part (as the mail's date does), the rest is 80 random bits per link.
    const prefixes = new Set([...rows.keys()].map((id) => id.slice(4, 13)));
    assert.equal(prefixes.size <= 2, true, `one or two milliseconds' time part: ${[...prefixes].join(", ")}`);
    const tails = new Set([...rows.keys()].map((id) => hex(orderedIdBytes(id).subarray(6))));
    assert.equal(tails.size, 60, "the ids' random parts all differ");
  });

  // Attack 3. A containment job is resumable and idempotent (DESIGN.md): a batch that committed before a crash and runs
  // again (whole, or with users added) mails no one twice and leaves neither a mail without a token row (a link that
  // cannot work) nor a token row without a mail (a live link nobody holds but the database).
  it("HOLDS: a batch run again after a crash, in part, then whole, then again, queues each user's mail once and leaves every mail paired with its own token row; the first links stay live", async () => {
    const s = await setup(await dfx.fresh(), 8);
    const job = "job_rt36resu";
    const batch = s.people.map((u, i) => ({ ...u, seq: i + 11 }));
    // First run: users 0..2, then a crash inside a transaction that had queued users 3..5 (rolled back).
    assert.deepEqual(await s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, batch.slice(0, 3), { ...CONTEXT, jobId: job })), { queued: 3, alreadyQueued: 0 });
    await assert.rejects(s.database.transaction(async (trx) => {
      await s.mailer.issueContainmentLinks(trx, batch.slice(0, 6), { ...CONTEXT, jobId: job });
      throw new Error("killed after the batch's inserts");
    }), /killed/);
    assert.deepEqual(await count(s.database), { tokens: 3, mails: 3 }, "the crashed run left nothing");
    const first = await Promise.all(batch.slice(0, 3).map((u) => linkUnder(s.outbox, containmentResetKey(job, u.id, u.seq))));
    // Resumed, in another order: the three first are already queued.
    const shuffled = [...batch].reverse();
    assert.deepEqual(await s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, shuffled, { ...CONTEXT, jobId: job })), { queued: 5, alreadyQueued: 3 });
    assert.deepEqual(await s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, batch, { ...CONTEXT, jobId: job })), { queued: 0, alreadyQueued: 8 });
    assert.deepEqual(await count(s.database), { tokens: 8, mails: 8 });
    assert.deepEqual(await pairingProblems(s.database), []);
    for (const [i, token] of first.entries()) {
      const check = await s.resets.check(token);
      assert.equal(check.valid && check.userId, batch[i]!.id, "the link mailed first is still the user's live one");
      assert.equal(await linkUnder(s.outbox, containmentResetKey(job, batch[i]!.id, batch[i]!.seq)), token, "and its mail was not rewritten");
    }
    // The one-at-a-time path over the same keys agrees (a notifier without enqueueResets).
    for (const u of batch) {
      const one = await s.database.transaction((trx) => s.mailer.issueInTransaction(trx, u.id, { ...CONTEXT, email: u.email, reason: "containment", jobId: job, seq: u.seq }));
      assert.equal(one.queued, false);
    }
    assert.deepEqual(await count(s.database), { tokens: 8, mails: 8 });
  });

  // Attack 3, a job straddling the numbered key: a batch given users the job mailed under the old key (<job>:<user>, a
  // release before it) queues them a second mail, since the batch path looks under the numbered key only. Unreachable
  // through the engine — such a batch committed with the job's progress and its users are never given to a batch again
  // (test/contain-reset-keys.test.ts runs that job) — so this red team's finding was the contract's wording, narrowed in
  // ResetMailer.issueContainmentLinks to say so.

  it("HOLDS: a batch listing a user twice (another seq), or an id with no account (empty, unknown), is refused whole and leaves no mail and no token row", async () => {
    const s = await setup(await dfx.fresh(), 2);
    const [a, b] = s.people as [Setup["people"][number], Setup["people"][number]];
    const job = "job_rt36refu";
    await assert.rejects(s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, [{ ...a, seq: 1 }, { ...b, seq: 2 }, { ...a, seq: 3 }], { ...CONTEXT, jobId: job })),
      (e: Error & { code?: string }) => e.code === "BULWARK_ERR_RESET_JOB");
    assert.deepEqual(await count(s.database), { tokens: 0, mails: 0 });
    // No account behind the id: the token row's key to users refuses it, and the whole batch goes back with its caller.
    for (const odd of ["", "usr_nobody", `${a.id}:x`]) {
      await assert.rejects(s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, [{ ...b, seq: 1 }, { id: odd, email: "odd@example.org", seq: 2 }], { ...CONTEXT, jobId: job })), `id ${JSON.stringify(odd)}`);
      assert.deepEqual(await count(s.database), { tokens: 0, mails: 0 }, `nothing left by a batch naming ${JSON.stringify(odd)}`);
    }
    // An empty job id keys nothing (every job's resume would meet another's mail).
    await assert.rejects(s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, [{ ...a, seq: 1 }], { ...CONTEXT, jobId: "" })), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_RESET_JOB");
  });

  // Attack 3, the key's grammar: `<job>.<seq10>:<user>` and `<job>:<user>` meet when a job id ends in "." and ten
  // digits. The ids the product mints never do (JobStore: newId("job"), 26 base32 characters; set-email: an audit event
  // id), which this checks; the mailer itself takes any non-empty job id.
  it("HOLDS: the job ids the product mints cannot make one job's key another's (no '.' or ':' in them)", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    const ids = await seedContainUsers(fx, NOW, 2);
    for (let i = 0; i < 20; i++) {
      const job = await createContainJob(fx, { levers: ["invalidate-passwords"], scope: { ids }, actor: "t" });
      assert.match(job.id, /^job_[a-z2-7]{26}$/, "a job id has no '.' or ':'");
    }
    const event = await fx.audit.append({ type: "user.email-set", actor: "cli:root", subject: ids[0] as string, data: {} });
    assert.match(event.id, /^evt_[a-z2-7]{26}$/, "set-email's key (its audit event id) has neither");
  });

  // Found by this red team (was: any non-empty job id was taken, and job "job_a.0000000001"'s mail to a user was keyed
  // as job "job_a"'s to its first user, so that job's batch counted it as its own and sent the user no link).
  it("attack: a job id holding the key's separators ('.', ':') is refused before anything is queued, so no job's key can be another's; job_a's batch still mails its user", async () => {
    const s = await setup(await dfx.fresh(), 1);
    const [u] = s.people as [Setup["people"][number]];
    assert.equal(containmentResetKey("job_a.0000000001", u.id), containmentResetKey("job_a", u.id, 1), "control: the two forms meet for such an id");
    for (const odd of ["job_a.0000000001", "job_a:usr_x", "job a", "job_\u00e9", "x".repeat(101)]) {
      await assert.rejects(s.database.transaction((trx) => s.mailer.issueInTransaction(trx, u.id, { ...CONTEXT, email: u.email, reason: "containment", jobId: odd })),
        (e: Error & { code?: string }) => e.code === "BULWARK_ERR_RESET_JOB" && /job id must be/.test(e.message), `issueInTransaction with job id ${JSON.stringify(odd)}`);
      await assert.rejects(s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, [{ ...u, seq: 1 }], { ...CONTEXT, jobId: odd })),
        (e: Error & { code?: string }) => e.code === "BULWARK_ERR_RESET_JOB", `issueContainmentLinks with job id ${JSON.stringify(odd)}`);
    }
    assert.deepEqual(await count(s.database), { tokens: 0, mails: 0 }, "nothing queued under a refused job id");
    const result = await s.database.transaction((trx) => s.mailer.issueContainmentLinks(trx, [{ ...u, seq: 1 }], { ...CONTEXT, jobId: "job_a" }));
    assert.deepEqual(result, { queued: 1, alreadyQueued: 0 });
  });
});

/** Active users with an authenticator app each (seedContainUsers' users, then a mfa_totp row). */
async function withFactors(fx: ContainFixture, n: number): Promise<string[]> {
  const ids = await seedContainUsers(fx, NOW, n);
  for (const id of ids) await fx.database.db.insertInto("mfa_totp").values({ user_id: id, secret_ct: "ct", created_at: NOW - 3_600_000, confirmed_at: NOW - 3_600_000, last_step: null }).execute();
  return ids;
}

/** The containment fixture with the app's notifier (issueContainmentLinks for a batch), as contain-incident-levers builds it. */
async function leverSetup(database: Database): Promise<{ fx: ContainFixture; outbox: Outbox; resets: PasswordResetService }> {
  const base = await openContainFixture(database, { now: NOW });
  const deps = { database, clock: base.clock, random: base.random };
  const outbox = new Outbox({ ...deps, linkStates: linkStatesIn(database.db, base.clock, DEFAULT_DATED_AHEAD_TOLERANCE_MS) });
  const resets = createPasswordResetService(deps);
  const mailer = createResetMailer({ database, resets, outbox, random: base.random });
  const notifier: ResetNotifier = {
    async enqueueReset(trx, user, jobId, seq) {
      await mailer.issueInTransaction(trx, user.id, { ...CONTEXT, email: user.email, reason: "containment", jobId, ...(seq === undefined ? {} : { seq }) });
    },
    async enqueueResets(trx, users, jobId) {
      await mailer.issueContainmentLinks(trx, users, { ...CONTEXT, jobId });
    },
  };
  return { fx: { ...base, notifier }, outbox, resets };
}

/** The containment links mailed to `userId`: each mail's key and the token it carries. */
async function containmentLinks(fx: ContainFixture, outbox: Outbox, userId: string): Promise<Array<{ key: string; token: string | undefined }>> {
  const rows = await fx.database.db.selectFrom("outbox_messages").select(["id", "idempotency_key"]).where("account_id", "=", userId).where("kind", "=", KIND).execute();
  return Promise.all(rows.map(async (r) => ({ key: r.idempotency_key, token: LINK.exec((await outbox.get(r.id)).text)?.[1] })));
}

forEachDialect("red team 36: require-mfa-reenrolment and the job's own reset link", (dfx) => {
  // Attack 4, same job. The lever's header: "the job's own reset link (invalidate-passwords in the same job) stays",
  // in a batch and in the closing check; a link someone asked before the job (a mailbox thief's) is spent (ASVS 6.4.3:
  // a reset must not skip the factor; here the factor is gone, so the old link would set a password with none asked).
  it("HOLDS: one job with invalidate-passwords and require-mfa-reenrolment, killed after its first batch and resumed, spends the links asked before it and none of its own, whose mails still go (ASVS 6.4.3, 7.4.3)", async () => {
    const { fx, outbox, resets } = await leverSetup(await dfx.fresh());
    const ids = await withFactors(fx, 3);
    // A link a mailbox thief asked for before the job, for each user.
    const before = [];
    for (const id of ids) {
      const issued = await resets.issue(id);
      assert.equal(issued.issued, true);
      before.push(issued.issued ? issued.token : "");
    }
    fx.clock.advance(60_000);
    const job = await createContainJob(fx, { levers: ["invalidate-passwords", "require-mfa-reenrolment"], scope: { ids }, actor: "t", batchSize: 1 });
    await runJob(fx, job.id, { stopAfterBatches: 1 });
    fx.clock.advance(60_000);
    const done = await runJob(fx, job.id);
    assert.equal(done.status, "done");
    const seqs = new Map((await fx.database.db.selectFrom("contain_job_users").select(["user_id", "seq"]).where("job_id", "=", job.id).execute()).map((r) => [r.user_id, Number(r.seq)]));
    for (const [i, id] of ids.entries()) {
      assert.equal((await resets.check(before[i])).valid, false, "the link asked before the job is spent");
      const mails = await containmentLinks(fx, outbox, id);
      assert.deepEqual(mails.map((m) => m.key), [containmentResetKey(job.id, id, seqs.get(id))], "one mail, under the numbered key");
      const check = await resets.check(mails[0]?.token);
      assert.equal(check.valid && check.userId, id, "the job's own link still works");
    }
    const counts = done.counts;
    assert.deepEqual([counts["invalidate-passwords.resetEmailsQueued"], counts["require-mfa-reenrolment.resetLinksSpent"] ?? 0, counts["require-mfa-reenrolment.linksLeftOpenSpent"] ?? 0], [3, 0, 0], JSON.stringify(counts));
    const claimed = await outbox.claim({ claimer: "rt36", limit: 10, leaseMs: 60_000 });
    assert.equal(claimed.filter((m) => m.kind === KIND).length, 3, "every containment mail is still good to send");
  });

  // Attack 4, different jobs. mailedByThisJob reads this job's keys only: a link another job mailed is an open link
  // like any other, and require-mfa-reenrolment spends it ("Their open reset and email-change links go too"). The
  // owner is left with the reset form, not with a link that would set a password with no factor asked.
  it("HOLDS: require-mfa-reenrolment in a later job spends the reset link an earlier invalidate-passwords job mailed (its mail is then not sent), and leaves those outside its scope alone (ASVS 6.4.3)", async () => {
    const { fx, outbox, resets } = await leverSetup(await dfx.fresh());
    const [inB, outsideB] = await withFactors(fx, 2) as [string, string];
    const a = await createContainJob(fx, { levers: ["invalidate-passwords"], scope: { ids: [inB, outsideB] }, actor: "t" });
    assert.equal((await runJob(fx, a.id)).status, "done");
    const linkOf = async (id: string) => (await containmentLinks(fx, outbox, id))[0]?.token;
    const [linkIn, linkOut] = [await linkOf(inB), await linkOf(outsideB)];
    assert.equal((await resets.check(linkIn)).valid, true, "control: job A's link works");
    fx.clock.advance(60_000);
    const b = await createContainJob(fx, { levers: ["require-mfa-reenrolment"], scope: { ids: [inB] }, actor: "t" });
    const done = await runJob(fx, b.id);
    assert.equal(done.status, "done");
    assert.equal(done.counts["require-mfa-reenrolment.resetLinksSpent"], 1, JSON.stringify(done.counts));
    assert.equal((await resets.check(linkIn)).valid, false, "job A's link to the user job B re-enrols is spent");
    assert.equal((await resets.check(linkOut)).valid, true, "job A's link to a user outside job B's scope stays");
    const aside: string[] = [];
    const claimed = await outbox.claim({ claimer: "rt36", limit: 10, leaseMs: 60_000, onSetAside: (m) => aside.push(m.to) });
    assert.deepEqual(claimed.filter((m) => m.kind === KIND).map((m) => m.to), ["user1@example.org"]);
    assert.deepEqual(aside, ["user0@example.org"], "the spent link's mail is set aside, not sent");
    // And job A's numbered key does not pass for job B's: B mailed nobody.
    const seqA = Number((await fx.database.db.selectFrom("contain_job_users").select("seq").where("job_id", "=", a.id).where("user_id", "=", inB).executeTakeFirstOrThrow()).seq);
    assert.notDeepEqual(containmentResetKeys(b.id, inB, seqA), containmentResetKeys(a.id, inB, seqA));
  });
});
