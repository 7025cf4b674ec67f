// Red team: mutation testing of the defences, fourth batch. Bulwark says its security properties are "tested as attacks
// that must fail"; this round checks that claim for two areas the first three batches left alone
// (test/mutants-red-team.test.ts, test/mutants-b-red-team.test.ts, test/mutants-c-red-team.test.ts): the S3
// bucket-policy check (src/checks/bucket) and the refusal sampler that bounds the audit rows of throttled refusals and
// sampled API token uses (src/accounts/login/refusal-sampler.ts). One defence at a time is broken (a mutant: one line a
// careless refactor could plausibly change) and the test files most likely to notice are run. Each test here is an
// attack that passes on the product and failed on the mutant that survived them (proven by running it against that
// mutant).
// Who: for the bucket check, a policy author (or an attacker who wrote the policy) whose grant the check must still
// report; for the sampler, a thief using a stolen API token, or a guesser flooding refused logins, whose uses must all
// be counted in the audit log even when a write of it fails (a store busy behind another process's write lock).
// Tried: see the round's report for the table. Bucket: IgnorePublicAcls, AuthenticatedUsers and the anonymous caller,
// RestrictPublicBuckets' service exception and its "public policy" gate, AWS's fixed-value test, a Deny counted
// certain when dodgeable or when covering part of a region, a role in an account read as the whole account, service
// principals, partial-wildcard principals, IfExists and ForAnyValue on an absent key, the foreign-value rule, the
// severity of any account's read, the foreign-account test, the TLS-enforcing Deny's principal and conditions.
// Sampler: the per-key window, the budget's bound, the count of a forgotten key, giveBack's counts, the others' count
// reset after an event, restore after a failed drain write, the others' event, the counts on an event, drain's
// window test.
// Killed by the existing tests: every bucket mutant (three of them only by files beyond the five first run:
// public-policy.test.ts for AWS's fixed-value test, checks-fixes-twentythree-red-team.test.ts for the TLS Deny's
// principal and conditions), and the sampler's window, budget, forgotten-key, failed-drain-write-keys and drain mutants.
// Survived the sampler's tests (refusal-sampler.test.ts, sqlite-busy-b, credential-stuffing, bounded-waits-d,
// new-code-twentyeight), real, pinned below: giveBack not counting the use whose event failed, giveBack dropping the
// others' count the failed event carried, take not resetting the others' count once an event carried it (every later
// event repeats it: the log overstates), unrecordedCounts leaving out a count of one, recordUnrecordedRefusals not
// writing an others' count of one, restore dropping the others' count of a failed drain write. Each was a refusal or
// token use that vanished from (or was doubled in) the audit log, with nothing to show it.
// Found: nothing the product itself gets wrong; every test here passes on main.
// Deterministic: the store is made busy by another connection holding SQLite's write lock (holdWriteLock), no sleeps.
// Loopback and temp dirs only.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { RefusalSampler, recordUnrecordedTokenUses } from "../src/accounts/login/refusal-sampler.ts";
import { authFixture, HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { maintenancePass, maintenancePassBehindLock } from "./helpers/maintenance-pass.ts";
import { dbPath, holdWriteLock } from "./helpers/sqlite-lock.ts";

/** A fixture's API token uses as the audit log counts them: each api.token.used event with the uses it says went
 * unrecorded before it (of its token and address, and of others), and each drained api.token.uses.unrecorded count. */
async function usesCounted(fx: AuthFixture): Promise<{ counted: number; events: Array<{ type: string; subject: string; data: Record<string, unknown> }> }> {
  const events = (await fx.app.db.db.selectFrom("audit_events").select(["type", "subject", "data"])
    .where("type", "in", ["api.token.used", "api.token.uses.unrecorded"]).orderBy("id").execute())
    .map((e) => ({ type: e.type, subject: e.subject ?? "", data: (typeof e.data === "string" ? JSON.parse(e.data) : e.data) as Record<string, unknown> }));
  const n = (v: unknown): number => (typeof v === "number" ? v : 0);
  const counted = events.reduce((sum, e) => sum + (e.type === "api.token.used" ? 1 + n(e.data["unrecordedBefore"]) + n(e.data["unrecordedOthers"]) : n(e.data["unrecorded"])), 0);
  return { counted, events };
}

describe("mutants that survived the suite, fourth batch", () => {
  let fx: AuthFixture;
  beforeEach(async () => {
    fx = await authFixture();
  });
  afterEach(async () => {
    await fx.close();
  });

  it("attack: a thief's first call with a stolen API token from a new address lands while another process holds the SQLite write lock, so its api.token.used event cannot be written — the use is still counted: the next event of that token and address carries it, and the token's uses add up to the calls made (ASVS 16.3.1, 16.2.1) (mutants of src/accounts/login/refusal-sampler.ts:giveBack and unrecordedCounts survived the suite)", async () => {
    const flows = authFlows(() => fx);
    const owner = (await fx.user("stolen-token-owner@example.org", { roles: ["admin"] })).id;
    const token = await flows.tokenFor(owner, ["accounts.read"]);
    const read = () => fx.server.inject({ method: "GET", url: "/api/v1/roles", headers: { host: HOST, authorization: `Bearer ${token}` } });

    const lock = holdWriteLock(dbPath(fx));
    try {
      const first = await read();
      assert.equal(first.statusCode, 200, `control: the read answers while the lock is held: ${first.body}`);
    } finally {
      lock.release();
    }
    assert.deepEqual((await usesCounted(fx)).events, [], "control: the first use's event was not written (the store was busy)");

    // The same hour, the lock free: two more calls from the same address.
    fx.clock.advance(1_000);
    const calls = 3;
    for (let i = 1; i < calls; i++) {
      const r = await read();
      assert.equal(r.statusCode, 200, r.body);
      fx.clock.advance(1_000);
    }
    const { events } = await usesCounted(fx);
    assert.equal(events.filter((e) => e.type === "api.token.used").length, 1, `control: one sampled event for the token and address: ${JSON.stringify(events)}`);
    assert.equal(events[0]?.data["unrecordedBefore"], 1,
      `the first api.token.used event written does not count the use whose event failed (data ${JSON.stringify(events[0]?.data)}): ` +
      "a call made while the store was busy is in no event and no count, so a thief's first call from a new address leaves no trace");

    // And in total, once the window's counts are drained (as at shutdown): every call is an event or in a count.
    await recordUnrecordedTokenUses(fx.app.accounts.tokenUses, fx.app.audit, fx.clock.now(), { all: true });
    const total = await usesCounted(fx);
    assert.equal(total.counted, calls, `the token's ${calls} calls are counted as ${total.counted} in the audit log: ${JSON.stringify(total.events)}`);
  });

  it("attack: an API token call whose sampled event would carry the uses of a key the sampler had to forget (its memory of keys full: a thief spreading calls over many addresses) lands while the store is busy — those uses are not lost with the failed event: the next event carries them (ASVS 16.3.1) (mutants of src/accounts/login/refusal-sampler.ts:giveBack and take, the others' count not reset, survived the suite)", async () => {
    // The product remembers 100,000 token and address keys; a sampler that remembers one shows the same bookkeeping
    // with two keys.
    (fx.app.accounts as { tokenUses: RefusalSampler }).tokenUses = new RefusalSampler({ windowMs: 60 * 60_000, budget: Number.MAX_SAFE_INTEGER, maxKeys: 1 });
    const flows = authFlows(() => fx);
    const owner = (await fx.user("spread-token-owner@example.org", { roles: ["admin"] })).id;
    const [a, b] = [await flows.tokenFor(owner, ["accounts.read"]), await flows.tokenFor(owner, ["accounts.read"])];
    const read = async (token: string): Promise<void> => {
      const r = await fx.server.inject({ method: "GET", url: "/api/v1/roles", headers: { host: HOST, authorization: `Bearer ${token}` } });
      assert.equal(r.statusCode, 200, r.body);
      fx.clock.advance(1_000);
    };
    await read(a); // recorded
    await read(a); // counted under a's key
    // b's first call is sampled and pushes a's key (and its count) out of memory: its event would carry that count as
    // the others', but the store is busy and the event is not written.
    const lock = holdWriteLock(dbPath(fx));
    try {
      await read(b);
    } finally {
      lock.release();
    }
    await read(b); // recorded, carrying what the failed one would have
    await recordUnrecordedTokenUses(fx.app.accounts.tokenUses, fx.app.audit, fx.clock.now(), { all: true });
    const { counted, events } = await usesCounted(fx);
    assert.equal(events.filter((e) => e.type === "api.token.used").length, 2, `control: one event per token: ${JSON.stringify(events)}`);
    assert.equal(counted, 4, `4 calls with the tokens are counted as ${counted} in the audit log (${JSON.stringify(events)}): ` +
      "the count of the forgotten key rode on the event that failed and was dropped with it");
  });

  describe("the refused-attempt counts the budget left out (auth.refusals.unrecorded, subject others)", () => {
    // Flood control's sampler with a budget of one event a window stands in for the default 600 (reached by 600
    // throttled addresses in a minute); the refusals are taken as flood control takes them, one key per client.
    const sampler = (): RefusalSampler => {
      const s = new RefusalSampler({ budget: 1 });
      (fx.app.accounts as { refusals: RefusalSampler }).refusals = s;
      return s;
    };
    const othersWritten = async (): Promise<number> =>
      (await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.refusals.unrecorded").where("subject", "=", "others").execute())
        .reduce((n, e) => n + Number(((typeof e.data === "string" ? JSON.parse(e.data) : e.data) as { unrecorded: number }).unrecorded), 0);

    it("attack: a botnet's wave spends the window's budget and exactly one throttled attempt is left out of it — the maintenance pass still writes that one as a count (ASVS 16.3.1) (a mutant of src/accounts/login/refusal-sampler.ts:recordUnrecordedRefusals survived the suite)", async () => {
      const s = sampler();
      assert.equal(s.take("login:ip:192.0.2.10", fx.clock.now()).record, true, "control: the first refusal of the window is recorded");
      assert.equal(s.take("login:ip:192.0.2.11", fx.clock.now()).record, false, "control: the budget is spent");
      fx.clock.advance(2 * 60_000);
      const removed = await maintenancePass(fx.app);
      assert.equal(await othersWritten(), 1,
        `the one refusal the budget left out is not in the audit log (the pass reported ${removed["unrecordedRefusals"]}): a count of one was drained and never written`);
    });

    it("attack: the maintenance pass writes the budget's overflow count while another process holds the SQLite write lock — the count survives the failed write and the next pass records it (ASVS 16.3.1, 16.5.3) (a mutant of src/accounts/login/refusal-sampler.ts:restore survived the suite)", async () => {
      fx.app.db.sqlite?.exec("PRAGMA busy_timeout = 100"); // a held lock is met in 100 ms rather than 10 s
      const s = sampler();
      s.take("login:ip:192.0.2.20", fx.clock.now());
      for (const ip of ["192.0.2.21", "192.0.2.22", "192.0.2.23"]) assert.equal(s.take(`login:ip:${ip}`, fx.clock.now()).record, false);
      fx.clock.advance(2 * 60_000);
      const removed = await maintenancePassBehindLock(fx.app, dbPath(fx));
      assert.equal(removed["unrecordedRefusals"], -1, `control: the step met the lock: ${JSON.stringify(removed)}`);
      assert.equal(await othersWritten(), 0, "control: nothing was written behind the lock");
      await maintenancePass(fx.app);
      const written = await othersWritten();
      assert.equal(written, 3, `after the lock was released and the next pass ran, the audit log counts ${written} of the 3 refusals the budget left out: the others' count drained for the failed write was not put back`);
    });
  });
});
