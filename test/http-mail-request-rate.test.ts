// The per-address limit on public requests that send mail (password reset requests and sign-ups), written as the
// attacks it stops: a script making this server mail strangers, or a mailbox, from one address (ASVS 2.4.1), and
// the limit itself telling a known address from an unknown one (ASVS 6.3.8).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, HOST, ORIGIN } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const LIMIT = 3;
const fx = sharedFixture(() => authFixture({ BULWARK_MAIL_REQUESTS_PER_HOUR: String(LIMIT), BULWARK_REGISTRATION: "open" }));

/** A pre-login POST from `remoteAddress`, as a same-origin page sends it. */
function post(url: string, body: Record<string, string>, remoteAddress: string): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method: "POST", url, remoteAddress, payload: body,
    headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json" },
  });
}

async function queued(): Promise<number> {
  const row = await fx.app.db.db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  return Number(row.n);
}

describe("mail-sending requests per client address", () => {
  it("attack: a script asking for resets of many addresses from one client gets 429 past the limit, and no more mail is queued (ASVS 2.4.1)", async () => {
    for (let i = 0; i < 6; i++) await fx.user(`many${i}@example.org`);
    const before = await queued();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await post("/auth/password/reset/request", { email: `many${i}@example.org` }, "198.51.100.1")).statusCode);
    assert.deepEqual(statuses, [202, 202, 202, 429, 429, 429]);
    assert.equal(await queued(), before + LIMIT, "three links mailed, not six");
    const refused = await post("/auth/password/reset/request", { email: "many5@example.org" }, "198.51.100.1");
    assert.equal(refused.headers["retry-after"], "3600");
    assert.equal(refused.json().error.code, "BULWARK_ERR_THROTTLED");
    assert.equal((await post("/auth/password/reset/request", { email: "many5@example.org" }, "198.51.100.2")).statusCode, 202, "another client is not held back");
  });

  it("attack: sign-ups share the budget: a script cannot make the server mail thousands of strangers, and no account is created past it", async () => {
    const ip = "198.51.100.3";
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await post("/auth/register", { email: `stranger${i}@example.org` }, ip)).statusCode);
    assert.deepEqual(statuses, [202, 202, 202, 429, 429]);
    assert.equal(await fx.app.accounts.users.findByIdentifier("stranger3@example.org"), null);
    assert.ok(await fx.app.accounts.users.findByIdentifier("stranger2@example.org"));
    // The same budget as reset requests.
    assert.equal((await post("/auth/password/reset/request", { email: "stranger0@example.org" }, ip)).statusCode, 429);
  });

  it("attack: the limit tells nothing about the address asked for — a known and an unknown address get the same 429 (ASVS 6.3.8)", async () => {
    await fx.user("known-limit@example.org");
    const ip = "198.51.100.4";
    for (let i = 0; i < LIMIT; i++) assert.equal((await post("/auth/password/reset/request", { email: `filler${i}@example.org` }, ip)).statusCode, 202);
    const known = await post("/auth/password/reset/request", { email: "known-limit@example.org" }, ip);
    const unknown = await post("/auth/password/reset/request", { email: "unknown-limit@example.org" }, ip);
    assert.equal(known.statusCode, 429);
    assert.equal(known.body, unknown.body);
    assert.equal(known.headers["retry-after"], unknown.headers["retry-after"]);
    const taken = await post("/auth/register", { email: "known-limit@example.org" }, ip);
    const free = await post("/auth/register", { email: "free-limit@example.org" }, ip);
    assert.deepEqual([taken.statusCode, free.statusCode], [429, 429]);
    assert.equal(taken.body, free.body);
  });

  it("attack: ten requests sent at once from one client get the limit, not ten", async () => {
    const ip = "198.51.100.5";
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => post("/auth/password/reset/request", { email: `burst${i}@example.org` }, ip)));
    assert.deepEqual([rs.filter((r) => r.statusCode === 202).length, rs.filter((r) => r.statusCode === 429).length], [LIMIT, 10 - LIMIT]);
  });

  it("the window lifts after an hour", async () => {
    const ip = "198.51.100.6";
    for (let i = 0; i < LIMIT; i++) await post("/auth/password/reset/request", { email: `hour${i}@example.org` }, ip);
    assert.equal((await post("/auth/password/reset/request", { email: "hour@example.org" }, ip)).statusCode, 429);
    fx.clock.advance(60 * 60_000);
    assert.equal((await post("/auth/password/reset/request", { email: "hour@example.org" }, ip)).statusCode, 202);
  });
});
