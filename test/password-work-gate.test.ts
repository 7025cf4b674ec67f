// Attacks on the server's password hashing capacity. The attacker is a botnet: many addresses, each sending its
// first few logins, so flood control (which bounds each client before any hash) never stops one of them. Without a
// bound every attempt queued an argon2 hash on the libuv pool, and every request — the legitimate owner's login too —
// waited behind the whole queue. The gate (accounts/passwords/work-gate.ts, http/auth/password-work.ts) admits a
// bounded number of password-checking requests at a time, a share of them per client, and answers the rest 503 at
// once, before any lookup, count or hash. To hold requests inside the gate, the tests make the hash wait on a latch.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { BUSY_CODE } from "../src/http/auth/password-work.ts";
import { authFlows, loginFrom } from "./helpers/auth-flows.ts";
import { latchDummyVerify, until } from "./helpers/latch.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

/** Logins of unknown accounts from `addresses`, the answers collected in the order they come. */
function crowd(fx: AuthFixture, addresses: string[]): { answered: LightMyRequestResponse[]; all: Promise<LightMyRequestResponse[]> } {
  const answered: LightMyRequestResponse[] = [];
  const all = Promise.all(addresses.map(async (address, i) => {
    const res = await loginFrom(fx, `nobody${i}@example.org`, "a guess that is long enough", address);
    answered.push(res);
    return res;
  }));
  return { answered, all };
}

async function auditRows(fx: AuthFixture): Promise<number> {
  return Number((await fx.app.db.db.selectFrom("audit_events").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);
}

function assertBusy(res: LightMyRequestResponse, what: string): void {
  assert.equal(res.statusCode, 503, `${what}: ${res.body}`);
  assert.equal(res.headers["retry-after"], "1", what);
  assert.equal(res.headers["cache-control"], "no-store", what);
  assert.equal(res.json().error.code, BUSY_CODE, what);
}

describe("password-work gate: a crowd of logins cannot queue hashes without bound", () => {
  const fx = sharedFixture(() => authFixture({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4", BULWARK_REQUIRE_MFA: "none" }));

  it("attack: logins beyond the capacity get 503 with Retry-After at once, before any count, audit or hash; the admitted ones finish and every slot comes back", async () => {
    const auditBefore = await auditRows(fx);
    const latch = latchDummyVerify(fx.app);
    try {
      const addresses = Array.from({ length: 7 }, (_, i) => `198.51.100.${i + 1}`);
      const { answered, all } = crowd(fx, addresses);
      await until(() => latch.waiting() === 4 && answered.length === 3, "4 logins hashing and 3 answered");
      for (const res of answered) assertBusy(res, "a login past the capacity");
      assert.equal(fx.app.accounts.passwordWork.inFlight, 4);
      assert.equal(await auditRows(fx), auditBefore, "a refused request wrote nothing (the admitted ones write when they finish)");
      latch.open();
      const results = await all;
      assert.deepEqual(results.map((r) => r.statusCode).sort(), [401, 401, 401, 401, 503, 503, 503]);
      assert.equal(latch.waiting(), 4, "no refused request reached the hash");
    } finally {
      latch.restore();
    }
    assert.equal(fx.app.accounts.passwordWork.inFlight, 0, "every slot came back");
    assert.equal((await loginFrom(fx, "nobody@example.org", "a guess that is long enough", "198.51.100.99")).statusCode, 401, "the gate admits again");
  });

  it("attack: one client's parallel logins take at most its share; another client still gets in", async () => {
    const latch = latchDummyVerify(fx.app);
    try {
      // Capacity 4: a quarter of it, one request, per client (an IPv6 client by its /64).
      const { answered, all } = crowd(fx, ["2001:db8:7:7::1", "2001:db8:7:7::2", "2001:db8:7:7::3"]);
      await until(() => latch.waiting() === 1 && answered.length === 2, "one login of the /64 hashing, two refused");
      for (const res of answered) assertBusy(res, "a second login from one /64");
      const other = crowd(fx, ["203.0.113.50"]);
      await until(() => latch.waiting() === 2, "another client's login admitted");
      latch.open();
      assert.equal((await other.all)[0]?.statusCode, 401);
      await all;
    } finally {
      latch.restore();
    }
    assert.equal(fx.app.accounts.passwordWork.inFlight, 0);
  });

  it("attack: a handler that throws still gives its slot back (a leak would close the gate for good)", async () => {
    const passwords = fx.app.accounts.passwords as { dummyVerify: (password: string) => Promise<false> };
    const original = passwords.dummyVerify;
    passwords.dummyVerify = async () => {
      throw new Error("the hash failed");
    };
    try {
      // More than the capacity, each its own client and account (flood control would stop repeats first).
      for (let i = 0; i < 6; i++) {
        const res = await loginFrom(fx, `thrown${i}@example.org`, "a guess that is long enough", `192.0.2.${70 + i}`);
        assert.equal(res.statusCode, 500, res.body);
      }
    } finally {
      passwords.dummyVerify = original;
    }
    assert.equal(fx.app.accounts.passwordWork.inFlight, 0);
    assert.equal((await loginFrom(fx, "after-throws@example.org", "a guess that is long enough", "192.0.2.99")).statusCode, 401);
  });
});

describe("password-work gate: every route that checks or hashes a password is behind it, and only those", () => {
  const fx = sharedFixture(() => authFixture({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "1", BULWARK_REQUIRE_MFA: "none" }));
  const flows = authFlows(() => fx);

  it("attack: with the gate held, password change, reset completion, re-authentication and user creation answer 503; the session check and the CSRF token still answer", async () => {
    const owner = await flows.signedIn("owner@example.org");
    const csrf = await owner.b.csrf();
    const resetToken = await flows.resetToken(owner.email);
    const admin = await flows.userWith(["accounts.write"]);
    const token = await flows.tokenFor(admin, ["accounts.write"]);
    const latch = latchDummyVerify(fx.app);
    try {
      const held = crowd(fx, ["198.51.100.200"]);
      await until(() => latch.waiting() === 1, "one login holding the only slot");
      assertBusy(await owner.b.request("POST", "/auth/password/change", { csrf, body: { currentPassword: owner.password, newPassword: "a brand new passphrase for me" } }), "password change");
      assertBusy(await owner.b.request("POST", "/auth/reauthenticate", { csrf, body: { password: owner.password } }), "re-authentication");
      assertBusy(await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: resetToken, newPassword: "a brand new passphrase for me" } }), "reset completion");
      assertBusy(await fx.server.inject({ method: "POST", url: "/api/v1/users", headers: { host: HOST, authorization: `Bearer ${token}` }, payload: { email: "new@example.org", password: "a first passphrase to change" } }), "user creation");
      assertBusy(await loginFrom(fx, owner.email, owner.password, "203.0.113.9"), "login");
      assert.equal((await owner.b.request("GET", "/auth/session")).statusCode, 200, "no password work: not gated");
      assert.equal((await owner.b.request("GET", "/auth/csrf")).statusCode, 200);
      latch.open();
      assert.equal((await held.all)[0]?.statusCode, 401);
    } finally {
      latch.restore();
    }
    // Nothing was used up by the refusals: the reset link and the password still work.
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: resetToken, newPassword: "a brand new passphrase for me" } });
    assert.equal(done.statusCode, 200, done.body);
    assert.equal((await fx.browser().login(owner.email, "a brand new passphrase for me")).statusCode, 200);
  });
});
