// Over HTTP: the 100-consecutive-failure stop is the account's, so the password reset that lifts it (it clears the
// email's streak) lifts it for the username as well — an owner who signs in by username is not left locked out
// (docs/password-policy.md: "cleared only by a success or a password reset"; ASVS 6.3.1).
import assert from "node:assert/strict";
import { it } from "node:test";
import { GOOD_PASSWORD, HOST, ORIGIN } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

/** A JSON login from `address` (the socket's remote address: no proxy is trusted in the fixture). */
const loginFrom = (identifier: string, password: string, address: string) =>
  fx.server.inject({
    method: "POST", url: "/auth/login", remoteAddress: address,
    headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json" },
    payload: JSON.stringify({ identifier, password }),
  });

it("attack: 100 guesses at the username from 20 addresses stop the account; the owner's password reset lifts it for the username too", async () => {
  const app = fx.app;
  await app.accounts.users.create({ email: "owner@example.org", username: "owner", passwordHash: await app.accounts.passwords.hash(GOOD_PASSWORD), passwordScheme: "argon2id" });
  const codes = new Set<number>();
  for (let i = 0; i < 100; i++) codes.add((await loginFrom("owner", `guess number ${i}`, `192.0.2.${i % 20}`)).statusCode);
  assert.deepEqual([...codes], [401], "five guesses per address, each checked");
  assert.equal((await loginFrom("owner", GOOD_PASSWORD, "192.0.2.200")).statusCode, 429, "the cap stops even the right password");
  assert.equal((await loginFrom("owner@example.org", GOOD_PASSWORD, "192.0.2.201")).statusCode, 429, "by email too: one cap per account");

  // The owner resets the password through the mailed link.
  assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "owner@example.org" } })).statusCode, 202);
  await fx.deliver();
  const token = /#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/.exec(fx.mailTo("owner@example.org").at(-1)?.body ?? "")?.[1];
  assert.ok(token, "the reset mail carries a link");
  const fresh = "copper meadow whistles softly";
  assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: fresh } })).statusCode, 200);

  const viaUsername = await loginFrom("owner", fresh, "192.0.2.202");
  assert.equal(viaUsername.statusCode, 200, `the username answered ${viaUsername.statusCode} ${viaUsername.body} after the reset`);
});

// The 100-failure stop does not lift with time, so its 429 must not carry a Retry-After promising it will (the login
// core says which stop it is: LoginResult reason "consecutive").
it("attack: the 100-failure stop answers 429 without a Retry-After that time would not honour, alike for known and unknown identifiers", async () => {
  const app = fx.app;
  await app.accounts.users.create({ email: "capped@example.org", username: "capped", passwordHash: await app.accounts.passwords.hash(GOOD_PASSWORD), passwordScheme: "argon2id" });
  for (const identifier of ["capped@example.org", "nobody-capped"]) {
    for (let i = 0; i < 100; i++) await app.accounts.flood.registerFailure({ identifier, ip: `10.3.${i >> 8}.${i & 255}` });
  }
  const known = await loginFrom("capped", GOOD_PASSWORD, "192.0.2.210");
  const unknown = await loginFrom("nobody-capped", GOOD_PASSWORD, "192.0.2.210");
  assert.deepEqual([known.statusCode, unknown.statusCode], [429, 429]);
  assert.equal(known.body, unknown.body, "the same body: the stop reveals nothing about the account (ASVS 6.3.8)");
  assert.equal(known.headers["retry-after"], undefined, "no wait lifts this stop: only a password reset or an administrator");
});
