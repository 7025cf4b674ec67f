// Per-address limits hold for IPv6 clients: one host is routed a whole /64 (RFC 7421 — 2^64 addresses it can
// pick from at will), so the per-IP and per-account+IP counts are kept per /64, and an IPv4 address reached
// through an IPv4-mapped IPv6 socket (::ffff:a.b.c.d) counts as that IPv4 address (ASVS 6.3.1). Both dialects.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "./helpers/dialects.ts";
import { FloodControl } from "../src/accounts/flood/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { keyedDigest } from "../src/crypto/tokens.ts";

/** Flood-control rows' keys under a fixed test key (the app keys them with Keyring.floodKey). */
const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x5f), text);

async function flood(db: Database): Promise<FloodControl> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  return new FloodControl({ database: db, clock, keyOf: floodKeyOf });
}

forEachDialect("flood control keys IPv6 on its /64", (fx) => {
  it("attack: one /64 spraying 200 accounts from 200 of its addresses gets the 50 attempts of one address", async () => {
    const f = await flood(await fx.fresh());
    let allowed = 0;
    for (let i = 0; i < 200; i++) {
      const begun = await f.begin({ identifier: `user${i}@example.org`, ip: `2001:db8:1:2::${(i + 1).toString(16)}` });
      if (begun.allowed) allowed++;
      else assert.equal(begun.reason, "ip");
    }
    assert.equal(allowed, 50, `${allowed} of 200 guesses from one /64 were allowed (limit 50 per IP per hour)`);
    assert.equal((await f.check({ identifier: "fresh@example.org", ip: "2001:db8:1:3::1" })).allowed, true, "the next /64 is another client");
  });

  it("attack: guessing one account from five addresses of one /64 (written in different spellings) hits the per-account+IP limit", async () => {
    const f = await flood(await fx.fresh());
    const spellings = ["2001:db8:0:7::1", "2001:DB8:0:7:0:0:0:2", "2001:0db8:0000:0007::3", "2001:db8:0:7:ffff:ffff:ffff:ffff", "2001:db8::7:1:2:3:4"];
    for (const ip of spellings) assert.equal((await f.begin({ identifier: "victim@example.org", ip })).allowed, true);
    const sixth = await f.begin({ identifier: "victim@example.org", ip: "2001:db8:0:7:abcd::9" });
    assert.equal(sixth.allowed ? "allowed" : sixth.reason, "account");
  });

  it("attack: an IPv4 client seen as ::ffff:a.b.c.d (a dual-stack socket) shares the counts of a.b.c.d", async () => {
    const f = await flood(await fx.fresh());
    for (let i = 0; i < 25; i++) await f.registerFailure({ identifier: `a${i}@example.org`, ip: "198.51.100.7" });
    for (let i = 0; i < 25; i++) await f.registerFailure({ identifier: `b${i}@example.org`, ip: i % 2 ? "::ffff:198.51.100.7" : "::FFFF:c633:6407" });
    const verdict = await f.check({ identifier: "c@example.org", ip: "198.51.100.7" });
    assert.equal(verdict.allowed ? "allowed" : verdict.reason, "ip");
  });
});
