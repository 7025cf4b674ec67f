// Red-team round "who is there": account enumeration, a fresh look (ASVS 6.3.8, docs/http-auth.md).
// Attacker: holds a list of addresses and wants to learn which have accounts here, with no account, or with an
// ordinary account of its own (its own mailbox, its own known-device cookie, its own fresh session).
// Tried: login probes carrying the attacker's own known-device cookie (the known browser's own window must not open
// for someone else's account); sign-up with a taken and a free address compared on every header, cookie and the mail
// work queued; the attacker's own email change to a taken and a free address compared on the answer's headers and on
// the notice its own mailbox receives.
// Held: all of the above (no finding in this round's time box). Already pinned elsewhere and not repeated: login 401/429
// bodies and Retry-After (http-pages-flood-attacks), shared windows by spelling (login-flood-account-key), reset
// request statements (http-auth-reset-request), registration status/body and users insert (http-auth-password),
// email change status/body and the mails to the new address (http-auth-email).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { authFixture, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import type { LightMyRequestResponse } from "fastify";

let fx: AuthFixture;
before(async () => {
  fx = await authFixture({ BULWARK_REGISTRATION: "open" });
});
after(async () => {
  await fx.close();
});

/** Everything an answer shows but its time and request id: status, headers (Set-Cookie, Content-Length…), body bytes. */
function observable(res: LightMyRequestResponse): string {
  const headers = Object.entries(res.headers)
    .filter(([name]) => name !== "date" && !/request-id/i.test(name))
    .sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify({ status: res.statusCode, headers, body: res.body });
}

async function outboxRows(): Promise<number> {
  return Number((await fx.app.db.db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);
}

describe("who is there: enumeration through the paths and observables not pinned elsewhere", () => {
  it("attack: probes carrying the attacker's own known-device cookie get the same answers, 401s then 429s, for a known and an unknown address — the known browser's window opens for no other account (ASVS 6.3.8)", async () => {
    const me = await fx.user("attacker-device@example.org");
    await fx.user("device-victim@example.org");
    const b: Browser = fx.browser({ newDevice: true });
    const signed = await b.login(me.email, me.password);
    assert.equal(signed.statusCode, 200, signed.body);
    assert.ok(String(signed.headers["set-cookie"] ?? "").includes("device"), "precondition: the attacker's browser is now known to its own account");
    const out = await b.request("POST", "/auth/logout", { csrf: true, body: {} });
    assert.equal(out.statusCode, 200, out.body);
    const probe = async (identifier: string): Promise<string[]> => {
      const seen: string[] = [];
      for (let i = 0; i < 7; i++) seen.push(observable(await b.login(identifier, `guess number ${i}`)));
      return seen;
    };
    const known = await probe("device-victim@example.org");
    const unknown = await probe("device-ghost@example.org");
    assert.deepEqual(known, unknown, "the attacker's known-device cookie made a known account answer otherwise than an unknown one");
    assert.match(known[0] ?? "", /"status":401/);
    assert.match(known[6] ?? "", /"status":429/);
  });

  it("attack: sign-up with a taken and a free address — the same status, headers, cookies and body bytes, and one mail queued for each (ASVS 6.3.8)", async () => {
    await fx.user("signup-taken@example.org");
    const before = { outbox: await outboxRows() };
    const taken = await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: "signup-taken@example.org" } });
    const mid = { outbox: await outboxRows() };
    const free = await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: "signup-free@example.org" } });
    const end = { outbox: await outboxRows() };
    assert.equal(taken.statusCode, 202, taken.body);
    assert.equal(observable(taken), observable(free), "the sign-up answer differs between a taken and a free address");
    assert.equal(mid.outbox - before.outbox, end.outbox - mid.outbox, "a different number of mails was queued for a taken and a free address");
    assert.equal(mid.outbox - before.outbox, 1);
  });

  it("attack: the attacker's own email change to a taken and to a free address — the same answer headers, and the same notice in the attacker's own mailbox but for the address it typed (ASVS 6.3.8, 6.3.7)", async () => {
    await fx.user("change-taken@example.org");
    const me = await fx.user("attacker-change@example.org");
    const b = fx.browser({ newDevice: true });
    assert.equal((await b.login(me.email, me.password)).statusCode, 200);
    const csrf = await b.csrf();
    const taken = await b.request("POST", "/auth/email/change", { csrf, body: { newEmail: "change-taken@example.org" } });
    const free = await b.request("POST", "/auth/email/change", { csrf, body: { newEmail: "change-freee@example.org" } });
    assert.equal(taken.statusCode, 202, taken.body);
    assert.equal(observable(taken), observable(free), "the email change's answer differs between a taken and a free address");
    await fx.deliver();
    const notices = fx.mailTo(me.email).filter((m) => /a change of your email address was requested/.test(m.subject));
    assert.equal(notices.length, 2, "one notice per request to the attacker's own address");
    const [first, second] = notices.map((m) => m.body.replace(/change-(taken|freee)@example\.org/g, "ADDRESS"));
    assert.equal(first, second, "the notice in the attacker's own mailbox tells a taken address from a free one");
  });
});
