// The IPv6 site window of flood control, on SQLite and PostgreSQL: a /48 is what one site is routed (RFC 6177) and
// 65,536 /64s, so failed logins are also counted per /48 (FloodPolicy.siteLimit), written as the attacks it stops.
// An IPv4 address is its own site and gets no second count (ASVS 6.3.1, 6.1.1).
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { DRUPAL_FLOOD_POLICY, FloodControl, SITE_CLIENTS, type FloodPolicy } from "./flood.ts";
import { keyedDigest } from "../../crypto/tokens.ts";

/** Flood-control rows' keys under a fixed test key (the app keys them with Keyring.floodKey). */
const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x5f), text);

const HOUR = 3_600_000;

async function setup(db: Database, policy: Partial<FloodPolicy> = {}): Promise<{ flood: FloodControl; clock: ManualClock }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  return { flood: new FloodControl({ database: db, clock, keyOf: floodKeyOf, policy }), clock };
}

/** How many flood events of `scope` the database holds. */
async function events(db: Database, scope: string): Promise<number> {
  const row = await db.db.selectFrom("flood_events").select((eb) => eb.fn.countAll<number>().as("n")).where("scope", "=", scope).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The `i`-th /64 of the /48 2001:db8:5a::/48, at some interface id. */
const inSite = (i: number, site = "2001:db8:5a"): string => `${site}:${(i + 1).toString(16)}::${(i * 31 + 1).toString(16)}`;

forEachDialect("flood control counts an IPv6 site (/48)", (fx) => {
  it("attack: one /48 spraying from a fresh /64 per attempt is refused past its site limit (500 an hour, ten clients), with the per-IP answer and when it lifts", async () => {
    const db = await fx.fresh();
    const { flood, clock } = await setup(db);
    assert.equal(flood.policy.siteLimit, 500);
    let allowed = 0;
    let first: unknown = null;
    for (let i = 0; i < 520; i++) {
      const begun = await flood.begin({ identifier: `pair${i}@leak.example`, ip: inSite(i) });
      if (begun.allowed) allowed++;
      else first ??= begun;
      clock.advance(1_000);
    }
    assert.equal(allowed, 500, `${allowed} of 520 failures from one /48 were counted`);
    // The 500th newest failure (the first, at t = 0) lifts it: an hour after it, 520 s later than the start.
    assert.deepEqual(first, { allowed: false, reason: "ip", retryAfterMs: HOUR - 500_000 });
    assert.equal((await flood.check({ identifier: "fresh@example.org", ip: "2001:db8:5b:1::1" })).allowed, true, "another /48 is another site");
    assert.equal((await flood.check({ identifier: "fresh@example.org", ip: "198.51.100.7" })).allowed, true, "an IPv4 client is not touched");
    clock.advance(HOUR - 520_000 + 1);
    assert.equal((await flood.check({ identifier: "fresh@example.org", ip: inSite(9_999) })).allowed, true, "the window lifts with time");
  });

  it("an IPv4 attempt — and one carrying an IPv4 address (mapped, 6to4), or no address — writes no site row and keeps its per-address window", async () => {
    const db = await fx.fresh();
    const { flood } = await setup(db);
    for (const ip of ["198.51.100.7", "198.51.100.7:51234", "::ffff:198.51.100.8", "2002:c633:6409::1", "unknown", null]) {
      assert.equal((await flood.begin({ identifier: "a@example.org", ip })).allowed, true, String(ip));
    }
    assert.equal(await events(db, "site"), 0);
    assert.equal(await events(db, "ip"), 5, "every one with an address is counted per address, as before");
    await flood.begin({ identifier: "a@example.org", ip: "2001:db8:1:2::1" });
    assert.equal(await events(db, "site"), 1, "an IPv6 /64 is counted under its /48 too");
  });

  it("a success and a release take back their own site count, and keep the site's other failures", async () => {
    const db = await fx.fresh();
    const { flood, clock } = await setup(db, { siteLimit: 3 });
    for (let i = 0; i < 2; i++) await flood.begin({ identifier: `w${i}@example.org`, ip: inSite(i) });
    const right = await flood.begin({ identifier: "owner@example.org", ip: inSite(2) });
    assert.ok(right.allowed);
    await flood.succeeded(right.ticket);
    clock.advance(1);
    const pending = await flood.begin({ identifier: "owner@example.org", ip: inSite(3) });
    assert.ok(pending.allowed);
    await flood.release(pending.ticket);
    assert.equal(await events(db, "site"), 2, "the two failures stay, the success and the released attempt went");
    assert.ok((await flood.begin({ identifier: "w9@example.org", ip: inSite(4) })).allowed, "so the site has room for one more");
    const refused = await flood.begin({ identifier: "w10@example.org", ip: inSite(5) });
    assert.equal(refused.allowed ? "allowed" : refused.reason, "ip");
  });

  it("attack: forty attempts sent at once from forty /64s of one /48 count each other: the site limit is exact", async () => {
    const { flood } = await setup(await fx.fresh(), { siteLimit: 5 });
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => flood.begin({ identifier: `p${i}@leak.example`, ip: inSite(i) })));
    assert.equal(burst.filter((b) => b.allowed).length, 5);
  });

  it("the site limit defaults to ten clients' worth of the per-IP limit, and a policy may set its own; prune drops old site events", async () => {
    const db = await fx.fresh();
    assert.equal(DRUPAL_FLOOD_POLICY.siteLimit, SITE_CLIENTS * DRUPAL_FLOOD_POLICY.ipLimit);
    assert.equal((await setup(db, { ipLimit: 1000 })).flood.policy.siteLimit, 10_000, "a raised ipLimit never leaves a site below one client");
    const { flood, clock } = await setup(await fx.fresh(), { siteLimit: 2 });
    assert.equal(flood.policy.siteLimit, 2);
    await flood.registerFailure({ identifier: "x@example.org", ip: inSite(0) });
    await flood.registerFailure({ identifier: "y@example.org", ip: inSite(1) });
    const verdict = await flood.check({ identifier: "z@example.org", ip: inSite(2) });
    assert.equal(verdict.allowed ? "allowed" : verdict.reason, "ip");
    clock.advance(7 * HOUR);
    assert.equal(await flood.prune(), 6, "two account, two IP and two site events");
  });

  it("attack: requests that send mail (reset, sign-up, email change) from a fresh /64 each are refused past the site's window; the same /64 keeps its own; IPv4 counts once (was: a /48 was 65,536 clients of the per-address budget)", async () => {
    const db = await fx.fresh();
    const { flood, clock } = await setup(db, { ipLimit: 3, siteLimit: 5 });
    const answers: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await flood.countRequest(inSite(i, "2001:db8:6b"));
      answers.push(r.allowed ? "ok" : `refused ${r.retryAfterMs}`);
      clock.advance(1000);
    }
    assert.deepEqual(answers, ["ok", "ok", "ok", "ok", "ok", `refused ${HOUR - 5000}`, `refused ${HOUR - 6000}`, `refused ${HOUR - 7000}`]);
    // A /64 still has its own, smaller window inside a site with room.
    const other = "2001:db8:7c:1::";
    const own = [];
    for (let i = 0; i < 4; i++) own.push((await flood.countRequest(`${other}${i + 1}`)).allowed);
    assert.deepEqual(own, [true, true, true, false]);
    // IPv4: one count, no site row.
    const before = await events(db, "site");
    assert.equal((await flood.countRequest("198.51.100.9")).allowed, true);
    assert.equal(await events(db, "site"), before);
    clock.advance(HOUR);
    assert.equal((await flood.countRequest(inSite(9, "2001:db8:6b"))).allowed, true, "the site's window lifts after its hour");
  });
});
