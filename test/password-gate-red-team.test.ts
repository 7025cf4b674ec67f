// Red team, round on the password-work gate and the login's flood control. What was attacked: the address forms
// flood control and the gate group clients by (ipBucket, ipSite: IPv4 hosts seen through IPv6 transition prefixes —
// 6to4 2002::/16 and Teredo 2001::/32 — which hand one IPv4 host a whole IPv6 prefix); the gate's slot bookkeeping
// when a client aborts mid-hash, trickles its body, or makes a gated route fail after admission; and
// BULWARK_TRUST_PROXY values that hold the IPv4-mapped block without naming it. The attackers: a single host (or a
// small botnet) that wants more password guesses than flood control grants one address, or the gate's slots for
// itself, so that everyone else's login is answered 503; and a client that tries to make the gate leak a slot for
// good. Earlier rounds (test/password-work-gate.test.ts, test/sixth-look-red-team.test.ts, test/login-ipv6-prefix,
// test/http-trust-proxy) cover the XFF forgeries, ports, IPv4-mapped spellings and a subscriber's /56; not repeated.
// SQLite in a temp dir, loopback sockets only. Two findings (6to4 and Teredo addresses counted as fresh clients) were
// fixed in prefixOf (src/accounts/flood/ip-bucket.ts); their tests are renamed "attack: … (was: …)".
import assert from "node:assert/strict";
import { connect, type AddressInfo, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { BUSY_CODE } from "../src/http/auth/password-work.ts";
import { authFixture, HOST, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows, loginFrom } from "./helpers/auth-flows.ts";
import { latchDummyVerify, until } from "./helpers/latch.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const GUESS = "a guess that is long enough";

function isBusy(res: LightMyRequestResponse): boolean {
  return res.statusCode === 503 && (res.json() as { error?: { code?: string } }).error?.code === BUSY_CODE;
}

/** An IPv4 address as the two 16-bit groups an IPv6 address embeds it in (xor `mask`, for Teredo's obfuscation). */
function v4Groups(ipv4: string, mask = 0): string {
  const [a, b, c, d] = ipv4.split(".").map(Number) as [number, number, number, number];
  return [((a << 8) | b) ^ mask, ((c << 8) | d) ^ mask].map((x) => x.toString(16)).join(":");
}

/**
 * Spraying logins (each to its own unknown account, so no account window fills) from `addresses` in turn; returns
 * the 1-based number of the first one flood control refuses with 429, or null when none is refused.
 */
async function firstThrottled(fx: AuthFixture, tag: string, addresses: string[]): Promise<number | null> {
  for (const [i, address] of addresses.entries()) {
    const res = await loginFrom(fx, `${tag}-${i}@example.org`, GUESS, address);
    if (res.statusCode === 429) return i + 1;
    assert.equal(res.statusCode, 401, `${address}: ${res.body}`);
  }
  return null;
}

/**
 * While a login from `holder` is held inside the gate (capacity 4: one slot per client), whether a login from
 * `other` gets its own slot (true) or the 503 of a client already holding its share (false).
 */
async function admittedBeside(fx: AuthFixture, holder: string, other: string, otherHeaders: Record<string, string> = {}): Promise<boolean> {
  const latch = latchDummyVerify(fx.app);
  try {
    const held = loginFrom(fx, `holder-${holder}@example.org`, GUESS, holder);
    await until(() => latch.waiting() === 1, "the holder's login inside the gate");
    const second = loginFrom(fx, `second-${other}@example.org`, GUESS, other, otherHeaders);
    let settled: LightMyRequestResponse | null = null;
    void second.then((r) => (settled = r));
    await until(() => latch.waiting() === 2 || settled !== null, "the second login admitted or refused");
    const admitted = latch.waiting() === 2;
    latch.open();
    await held;
    const res = await second;
    if (!admitted) assert.ok(isBusy(res), res.body);
    return admitted;
  } finally {
    latch.open();
    latch.restore();
  }
}

describe("red team: IPv4 hosts behind IPv6 transition prefixes (flood control's buckets, the gate's sites)", () => {
  let fx: AuthFixture;
  before(async () => {
    // Capacity 4: one slot per client site. Flood control keeps its defaults (50 failures per address per hour).
    fx = await authFixture({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4", BULWARK_REQUIRE_MFA: "none" });
  });
  after(async () => {
    await fx.close();
  });

  it("control: a plain IPv4 client holds one gate slot, and spraying unknown accounts is refused at its 51st failed login in the hour", async () => {
    assert.equal(await admittedBeside(fx, "198.51.100.9", "::ffff:198.51.100.9"), false);
    // The holder's login above was the client's first failure: the 50th of the spray is its 51st.
    assert.equal(await firstThrottled(fx, "control", Array.from({ length: 60 }, () => "198.51.100.9")), 50);
  });

  it("attack: one IPv4 host speaking 6to4 (2002:V4ADDR::/48) counts as that IPv4 host: no spray past the 50-per-hour address limit from its 65,536 /64s, no second gate slot (ASVS 6.3.1, 2.4.1) (was: each /64 a fresh address and its /48 a second site)", async () => {
    // RFC 3056: the host with public IPv4 address V4 owns 2002:V4::/48 and reaches any IPv6 server through a relay.
    // Its native address and its prefix are one host, as an IPv4-mapped (::ffff:V4) or NAT64 (64:ff9b::V4) spelling is.
    const host = "198.51.100.7";
    const prefix = `2002:${v4Groups(host)}`;
    const problems: string[] = [];
    // The gate (first, while the host's flood window is empty): holding its slot natively, the host gets no second
    // one through its 6to4 address.
    if (await admittedBeside(fx, host, `${prefix}:ffff::2`)) problems.push("gate: the host's 6to4 address got a second slot beside its native IPv4 one");
    // 60 failed logins, one from each of 60 /64s of the host's 6to4 prefix: the IP window must close at 51 as above.
    const sixToFour = Array.from({ length: 60 }, (_, i) => `${prefix}:${(i + 1).toString(16)}::1`);
    const refusedAt = await firstThrottled(fx, "6to4", sixToFour);
    if (refusedAt === null || refusedAt > 51) problems.push(`flood control: 60 failed logins from one host's 6to4 prefix, ${refusedAt === null ? "none" : `the first at ${refusedAt}`} refused (50 per address per hour)`);
    assert.deepEqual(problems, []);
    assert.equal(fx.app.accounts.passwordWork.inFlight, 0);
  });

  it("attack: one IPv4 host through Teredo (2001:0:SERVER:FLAGS:~PORT:~V4) counts as its IPv4 address whatever server it names: no spray past the 50-per-hour address limit, no second gate slot (ASVS 6.3.1, 2.4.1) (was: a fresh /64 per named server, and a second site)", async () => {
    // RFC 4380 §4: the client's public IPv4 address is the last 32 bits, each bit inverted; the server's address is
    // bits 32–63, the /64 (and the /48's third group) that flood control and the gate count the client by.
    const host = "203.0.113.9";
    const client = v4Groups(host, 0xffff);
    const teredo = (server: number): string => `2001:0:${(0xc000 + server).toString(16)}:${(server * 7 + 1).toString(16)}:8000:f227:${client}`;
    const problems: string[] = [];
    if (await admittedBeside(fx, host, teredo(500))) problems.push("gate: the host's Teredo address got a second slot beside its native IPv4 one");
    const refusedAt = await firstThrottled(fx, "teredo", Array.from({ length: 60 }, (_, i) => teredo(i + 1)));
    if (refusedAt === null || refusedAt > 51) problems.push(`flood control: 60 failed logins from one host's Teredo addresses, ${refusedAt === null ? "none" : `the first at ${refusedAt}`} refused (50 per address per hour)`);
    assert.deepEqual(problems, []);
    assert.equal(fx.app.accounts.passwordWork.inFlight, 0);
  });
});

/** Opens a TCP connection to the listening server. */
async function socketTo(port: number): Promise<Socket> {
  const socket = connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  return socket;
}

/** The head of a same-origin JSON login of `length` body bytes, as a browser on the page would send it. */
function loginHead(length: number): string {
  return [
    "POST /auth/login HTTP/1.1", `Host: ${HOST}`, `Origin: ${ORIGIN}`, "Sec-Fetch-Site: same-origin", "User-Agent: Mozilla/5.0",
    "Content-Type: application/json", `Content-Length: ${length}`, "", "",
  ].join("\r\n");
}

describe("red team: a client that tries to make the gate leak a slot (capacity 1)", () => {
  const fx = sharedFixture(() => authFixture({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "1", BULWARK_REQUIRE_MFA: "none" }));
  let port: number;
  const flows = authFlows(() => fx);
  before(async () => {
    await fx.server.listen({ host: "127.0.0.1", port: 0 });
    port = (fx.server.server.address() as AddressInfo).port;
  });

  it("attack: a client that hangs up while its login hashes does not keep the slot: the hash ends, the slot comes back, the next login is admitted", async () => {
    const latch = latchDummyVerify(fx.app);
    try {
      const body = JSON.stringify({ identifier: "hangs-up@example.org", password: GUESS });
      const socket = await socketTo(port);
      socket.write(loginHead(Buffer.byteLength(body)) + body);
      await until(() => latch.waiting() === 1, "the login hashing");
      assert.equal(fx.app.accounts.passwordWork.inFlight, 1);
      socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      latch.open();
      await until(() => fx.app.accounts.passwordWork.inFlight === 0, "the slot given back after the hang-up");
    } finally {
      latch.open();
      latch.restore();
    }
    assert.equal((await loginFrom(fx, "after-hang-up@example.org", GUESS, "198.51.100.61")).statusCode, 401);
  });

  it("attack: a client trickling its login body holds no slot while it trickles (the gate is entered only once the body is in): another login from the same address is admitted meanwhile", async () => {
    const body = JSON.stringify({ identifier: "slow-body@example.org", password: GUESS });
    const sockets: Socket[] = [];
    try {
      // Three connections from 127.0.0.1, each with half of its body sent and the rest withheld.
      for (let i = 0; i < 3; i++) {
        const socket = await socketTo(port);
        sockets.push(socket);
        socket.write(loginHead(Buffer.byteLength(body)) + body.slice(0, body.length >> 1));
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(fx.app.accounts.passwordWork.inFlight, 0, "no slot is held by a request whose body is not in");
      assert.equal((await loginFrom(fx, "meanwhile@example.org", GUESS, "127.0.0.1")).statusCode, 401, "the only slot, same client address, still free");
    } finally {
      for (const socket of sockets) socket.destroy();
    }
    assert.equal(fx.app.accounts.passwordWork.inFlight, 0);
  });

  it("attack: every way a gated route can fail after admission — a wrong current password, the same password again, a refused new password, a junk or spent reset link, a wrong re-authentication, a taken address or refused password at user creation — gives the slot back", async () => {
    const owner = await flows.signedIn("leaky-owner@example.org");
    const csrf = await owner.b.csrf();
    const admin = await flows.userWith(["accounts.write"]);
    const token = await flows.tokenFor(admin, ["accounts.write"]);
    const api = (payload: Record<string, string>): Promise<LightMyRequestResponse> =>
      fx.server.inject({ method: "POST", url: "/api/v1/users", headers: { host: HOST, authorization: `Bearer ${token}` }, payload });
    const failures: Array<[string, () => Promise<LightMyRequestResponse>]> = [
      ["password change, wrong current password", () => owner.b.request("POST", "/auth/password/change", { csrf, body: { currentPassword: "not the password at all", newPassword: "a brand new passphrase for me" } })],
      ["password change, the same password again", () => owner.b.request("POST", "/auth/password/change", { csrf, body: { currentPassword: owner.password, newPassword: owner.password } })],
      ["password change, a refused new password", () => owner.b.request("POST", "/auth/password/change", { csrf, body: { currentPassword: owner.password, newPassword: "x" } })],
      ["reset completion, a junk link", () => fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: "junk-link-token", newPassword: "a brand new passphrase for me" } })],
      ["re-authentication, wrong password", () => owner.b.request("POST", "/auth/reauthenticate", { csrf, body: { password: "not the password at all" } })],
      ["user creation, a taken address", () => api({ email: owner.email })],
      ["user creation, a refused password", () => api({ email: "fresh-leak@example.org", password: "x" })],
    ];
    // Capacity 1: one leaked slot and every request after it would be a 503.
    for (const [what, run] of failures) {
      for (let round = 0; round < 2; round++) {
        const res = await run();
        assert.ok(res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 429, `${what}: expected a refusal, got ${res.statusCode} ${res.body}`);
        assert.equal(fx.app.accounts.passwordWork.inFlight, 0, `${what}: the slot came back`);
      }
    }
    assert.equal((await loginFrom(fx, owner.email, owner.password, "198.51.100.62")).statusCode, 200, "the gate admits as before");
  });
});

describe("red team: BULWARK_TRUST_PROXY ranges that hold the IPv4-mapped block without naming it", () => {
  for (const trust of ["::/16", "::ffff:0:0/95", "::/80"]) {
    it(`attack: with ${trust} trusted (accepted: an IPv6 range, not an IPv4-mapped one), an IPv4 client — on an IPv4 or a dual-stack socket — still cannot write its own address, so it gets no second gate slot and no fresh flood address`, async () => {
      const fx = await authFixture({ BULWARK_TRUST_PROXY: trust, BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4", BULWARK_REQUIRE_MFA: "none" });
      try {
        for (const socket of ["203.0.113.5", "::ffff:203.0.113.5"]) {
          const res = await loginFrom(fx, `trust-${socket}@example.org`, GUESS, socket, { "x-forwarded-for": "198.18.7.7" });
          assert.equal(res.statusCode, 401, res.body);
          const event = (await fx.app.audit.tail(5)).filter((e) => e.type === "auth.login.failed").at(-1);
          assert.equal(event?.data["ip"], socket, `peer ${socket}: the forged X-Forwarded-For was believed`);
        }
        assert.equal(await admittedBeside(fx, "203.0.113.5", "::ffff:203.0.113.5", { "x-forwarded-for": "198.18.8.8" }), false, "one client, one slot");
      } finally {
        await fx.close();
      }
    });
  }
});
