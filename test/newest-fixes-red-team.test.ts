// Red team, the last session's newest fixes attacked as new code: the API-token mint rate and its refund (988b40a,
// 6c492e7), the record of a genuine refused token (50c07d6), and the link tokens scrubbed from a relay's answer (e1f4f19).
// Attackers: a thief holding a leaked API token (from a CI log), who mints, revokes and keeps presenting it; and whoever
// reads the outbox's recorded relay answers (`bulwark outbox status`, the log) when a content filter quotes the mail it
// refused. Real server (authFixture: SQLite, manual clock), real routes, the real outbox sender and nodemailer's own
// MIME encoding; only the relay is played by a transport that answers as a body-checking filter would. Both findings
// of the round are fixed; their tests say what they were ("was: …").
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { TOKEN_MINTS_PER_HOUR } from "../src/app/accounts.ts";
import { authFixture, HOST } from "../src/http/auth/test-client.ts";
import { OutboxSender } from "../src/notify/sender.ts";
import { classifyFailure, type DeliveryOutcome, type MailTransport } from "../src/notify/transport.ts";
import { authFlows, RESET_LINK } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const flows = authFlows(() => fx);

/** A user holding these permissions through a role of its own (authFlows.userWith), with its address. */
async function user(permissions: string[]): Promise<{ id: string; email: string }> {
  const id = await flows.userWith(permissions);
  return { id, email: (await fx.app.accounts.users.getById(id))!.email };
}

/** A real API token of `userId` (authFlows.tokenFor), with its id. */
async function token(userId: string, scopes: string[]): Promise<{ token: string; id: string }> {
  const made = await flows.tokenFor(userId, scopes);
  return { token: made, id: (await fx.app.accounts.tokens.ownerOf(made))!.tokenId };
}

function api(method: "GET" | "POST" | "DELETE", url: string, options: { authorization?: string; from?: string; body?: unknown } = {}): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method, url, remoteAddress: options.from ?? "127.0.0.1",
    headers: { host: HOST, ...(options.authorization === undefined ? {} : { authorization: options.authorization }) },
    ...(options.body === undefined ? {} : { payload: options.body as object }),
  });
}

const bearer = (t: string): string => `Bearer ${t}`;
const mint = (t: string, name: string): Promise<LightMyRequestResponse> =>
  api("POST", "/api/v1/tokens", { authorization: bearer(t), body: { name, scopes: ["audit.read"] } });

async function lastSeq(): Promise<number> {
  return Number((await fx.app.db.db.selectFrom("audit_events").select((eb) => eb.fn.max("seq").as("m")).executeTakeFirstOrThrow()).m ?? 0);
}

describe("red team, newest fixes: the mint rate, refused tokens as evidence, link tokens in relay answers", () => {
  it("attack: parallel mints around the live-token cap, whose refusals give their place back, and more after revoking, never mint more than the hour's rate (ASVS 2.4.1)", async () => {
    const owner = await user(["audit.read"]);
    const leaked = await token(owner.id, ["audit.read"]);
    // Round one, all at once: the live cap (50, the leaked token one of them) refuses some; each refusal is refunded.
    const first = await Promise.all(Array.from({ length: 60 }, (_, i) => mint(leaked.token, `a${i}`)));
    const made = first.filter((r) => r.statusCode === 201).map((r) => (r.json() as { info: { id: string } }).info.id);
    assert.equal(made.length, 49, `the live cap: ${JSON.stringify(first.map((r) => r.statusCode))}`);
    assert.ok(first.every((r) => r.statusCode === 201 || r.statusCode === 409), "the rest refused by the live cap");
    for (const id of made) assert.equal((await api("DELETE", `/api/v1/tokens/${id}`, { authorization: bearer(leaked.token) })).statusCode, 204);
    // Round two, all at once: the refunds must not have given more than the hour's rate back.
    const second = await Promise.all(Array.from({ length: 30 }, (_, i) => mint(leaked.token, `b${i}`)));
    const minted = made.length + second.filter((r) => r.statusCode === 201).length;
    assert.equal(minted, TOKEN_MINTS_PER_HOUR, `minted ${minted} in one hour: ${JSON.stringify(second.map((r) => r.statusCode))}`);
    const refused = second.find((r) => r.statusCode === 429);
    assert.ok(refused, "past the rate: 429");
    assert.equal((refused.json() as { error: { code: string } }).error.code, "BULWARK_ERR_TOKEN_MINT_RATE");
    assert.equal(refused.body.includes(owner.id) || refused.body.includes(leaked.id), false, "the 429 names neither the account nor the token");
  });

  it("attack: a thief holding a leaked token spends its owner's hour of mints; once the owner revokes it, an administrator's throttles/clear gives the hour back and the owner's replacement mint succeeds (availability of containment; ASVS 2.4.1) (was: the mint rate outlived the thief's token and no lever lifted it)", async () => {
    const owner = await user(["audit.read"]);
    const leaked = await token(owner.id, ["audit.read"]);
    // The thief mints and revokes until the rate answers 429 (each mint mails the owner, who notices).
    for (let i = 0; i < TOKEN_MINTS_PER_HOUR; i++) {
      const res = await mint(leaked.token, `thief ${i}`);
      assert.equal(res.statusCode, 201, res.body);
      const id = (res.json() as { info: { id: string } }).info.id;
      assert.equal((await api("DELETE", `/api/v1/tokens/${id}`, { authorization: bearer(leaked.token) })).statusCode, 204);
    }
    // The owner revokes everything, and the help desk lifts every throttle of the account, as the second factor's
    // 100-failures stop tells it to.
    assert.equal((await api("DELETE", "/api/v1/tokens", { authorization: bearer(leaked.token) })).statusCode, 200);
    const desk = await user(["accounts.read", "accounts.write", "audit.read"]);
    const deskToken = await token(desk.id, ["accounts.read", "accounts.write", "audit.read"]);
    const cleared = await api("POST", `/api/v1/users/${owner.id}/throttles/clear`, { authorization: bearer(deskToken.token) });
    assert.equal(cleared.statusCode, 200, cleared.body);
    // The owner's automation needs a new token now: its credential was just revoked.
    const fresh = await token(owner.id, ["audit.read"]); // what an operator could hand out by other means
    const replacement = await mint(fresh.token, "CI, rotated after the leak");
    assert.equal(replacement.statusCode, 201,
      `after the revocation and an administrator clearing the account's throttles, the owner's replacement mint is still refused (${replacement.statusCode} ${replacement.body}): a thief's spent rate outlives the thief's token and no lever lifts it`);
  });

  it("attack: a made-up secret under a real token id is not recorded against the account nor takes the genuine token's sample, and a refused genuine token's answer does not tell revoked from a locked account (ASVS 16.3.1, 16.3.2)", async () => {
    const owner = await user(["audit.read"]);
    const leaked = await token(owner.id, ["audit.read"]);
    const other = await token(owner.id, ["audit.read"]);
    const seq = await lastSeq();
    assert.equal((await api("DELETE", `/api/v1/tokens/${leaked.id}`, { authorization: bearer(leaked.token) })).statusCode, 204);
    // An attacker who read the id in a list or a log line, with a secret of the right shape: names nothing.
    const secret = leaked.token.slice(leaked.token.lastIndexOf("_") + 1);
    const forged = leaked.token.slice(0, leaked.token.length - secret.length) + [...secret].reverse().join("");
    assert.notEqual(forged, leaked.token);
    const junk = await api("GET", "/api/v1/audit/events?limit=1", { authorization: bearer(forged), from: "198.51.100.1" });
    // The thief's genuine, revoked token, in the same minute: still recorded, with its own address.
    const genuine = await api("GET", "/api/v1/audit/events?limit=1", { authorization: bearer(leaked.token), from: "203.0.113.9" });
    // The account locked: its other token is refused the same way.
    await fx.app.db.db.updateTable("users").set({ locked_at: fx.clock.now(), locked_reason: "test" }).where("id", "=", owner.id).execute();
    const locked = await api("GET", "/api/v1/audit/events?limit=1", { authorization: bearer(other.token), from: "203.0.113.10" });
    const shape = (r: LightMyRequestResponse): string => JSON.stringify([r.statusCode, (r.json() as { error: { code: string; message: string } }).error.code, (r.json() as { error: { message: string } }).error.message, r.headers["www-authenticate"] ?? null]);
    assert.equal(shape(genuine), shape(junk), "revoked and made-up answer alike");
    assert.equal(shape(locked), shape(genuine), "a locked account and a revoked token answer alike");
    const events = await fx.app.db.db.selectFrom("audit_events").select(["type", "subject", "data"]).where("seq", ">", seq).where("type", "=", "api.token.refused").execute();
    const data = events.map((e) => ({ subject: e.subject, ...(JSON.parse(e.data) as { tokenId?: string; ip?: string; reason?: string }) }));
    assert.equal(data.some((d) => d.ip === "198.51.100.1"), false, `the made-up secret is recorded nowhere: ${JSON.stringify(data)}`);
    assert.ok(data.some((d) => d.subject === owner.id && d.tokenId === leaked.id && d.ip === "203.0.113.9" && d.reason === "revoked"), `the genuine use is recorded: ${JSON.stringify(data)}`);
    assert.ok(data.some((d) => d.tokenId === other.id && d.reason === "account-disabled"), `the locked account's token too: ${JSON.stringify(data)}`);
    for (const e of events) {
      assert.equal(e.data.includes(secret) || e.data.includes(other.token.slice(-20)), false, "no event carries a token's secret");
    }
  });

  it("attack: a relay refusing a reset mail and quoting its body as sent (quoted-printable, soft line breaks inside the link) leaves no run of the link's secret in last_error or the log (ASVS 16.2.5) (was: the pieces between soft breaks matched no token pattern, and the whole secret was stored)", async () => {
    const victim = await user([]);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: victim.email } })).statusCode, 202);
    // The relay: a content filter on the undecoded body (as Postfix body_checks see it) that rejects the mail and
    // quotes the lines around the link, a multi-line 554 reply. The mail is encoded as nodemailer encodes it.
    const { createTransport } = createRequire(import.meta.url)("nodemailer") as { createTransport: (o: object) => { sendMail(m: object): Promise<{ message: Buffer }> } };
    const mime = createTransport({ streamTransport: true, buffer: true, newline: "\r\n" });
    let resetId = "";
    let linkToken = "";
    const transport: MailTransport = {
      async send(m): Promise<DeliveryOutcome> {
        const link = RESET_LINK.exec(`${m.text}\n${m.html ?? ""}`);
        if (m.to !== victim.email || !link) return { ok: true, providerMessageId: null };
        resetId = m.id;
        linkToken = link[1]!;
        const raw = (await mime.sendMail({ from: "security@bulwark.test", to: m.to, subject: m.subject, text: m.text, ...(m.html !== null ? { html: m.html } : {}) })).message.toString();
        const lines = raw.split("\r\n");
        const at = lines.findIndex((l) => l.includes("reset-password"));
        const quoted = lines.slice(at, at + 3).map((l, i, all) => `554${i === all.length - 1 ? " " : "-"}5.7.1 ${l}`).join("\r\n");
        // nodemailer's own error for a refused DATA, through the transport's own classification.
        return { ok: false, ...classifyFailure({ code: "EMESSAGE", command: "DATA", responseCode: 554, response: `554-5.7.1 Message rejected: URL in body is blocklisted\r\n${quoted}` }) };
      },
      close: async () => {},
    };
    // The outbox also holds the other tests' notices: run until the reset mail has been offered to the relay.
    const sender = new OutboxSender({ outbox: fx.app.accounts.outbox, transport, clock: fx.clock, random: fx.app.random }, { name: "relay-test", concurrency: 4 });
    for (let i = 0; i < 50 && resetId === ""; i++) await sender.runOnce();
    assert.ok(resetId !== "" && linkToken !== "", "precondition: the reset mail went to the relay");
    const stored = (await fx.app.accounts.outbox.get(resetId)).lastError ?? "";
    assert.match(stored, /blocklisted/, "precondition: the relay's answer is recorded");
    const secret = linkToken.slice(linkToken.indexOf(".") + 1);
    assert.equal(secret.length, 43);
    // Any 16 characters of the 43 in a row is already most of the secret; the whole of it is the link.
    const longest = Math.max(...Array.from({ length: secret.length - 15 }, (_, i) => (stored.includes(secret.slice(i, i + 16)) ? 16 : 0)), 0);
    // The row's own idempotency key names the link's id (account.reset:<id>): with the secret beside it in last_error,
    // one read of the outbox table (or a backup) is a live reset link, though link bodies are sealed at rest.
    const row = await fx.app.db.db.selectFrom("outbox_messages").select(["idempotency_key"]).where("id", "=", resetId).executeTakeFirstOrThrow();
    const rebuilt = `${row.idempotency_key.slice(row.idempotency_key.indexOf(":") + 1)}.${secret}`;
    assert.equal(stored.includes(secret), false,
      `the reset link's whole secret is in last_error (${stored}); with the row's idempotency key it is the live link (${rebuilt === linkToken ? "rebuilt exactly" : "not rebuilt"})`);
    assert.equal(longest, 0, `a 16-character piece of the reset link's secret is in last_error: ${stored}`);
  });
});
