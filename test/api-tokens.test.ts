// /api/v1/tokens over the real server: a caller's own API tokens. Attacks that must fail: minting a token wider
// than the caller (through a narrow token, or through roles one does not hold), revoking or reading another
// user's token by id (IDOR, ASVS 8.2.2), unbounded minting, and reaching the API with a session whose second
// factor is still due (ASVS 6.3.3). Tokens are shown once and stored hashed (ASVS 6.4.1-style secrecy).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Secret, TOTP } from "otpauth";
import { MAX_LIVE_TOKENS } from "../src/http/api/tokens.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";

interface TokenView { id: string; name: string; scopes: string[]; createdAt: string; expiresAt: string | null; revokedAt: string | null }

let fx: APIFixture;
before(async () => {
  fx = await openAPIFixture();
});
after(async () => {
  await fx.close();
});

describe("/api/v1/tokens", () => {
  it("mints a token shown once, lists it without its secret, and the new token works within its scopes", async () => {
    const user = await fx.user(["accounts.read", "audit.read"]);
    const token = await fx.token(user.id, ["accounts.read", "audit.read"]);
    const res = await fx.call("POST", "/api/v1/tokens", { token, body: { name: "ci", scopes: ["audit.read"], expiresAt: new Date(Date.now() + 86_400_000).toISOString() } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers["cache-control"], "no-store");
    const created = res.json() as { token: string; info: TokenView };
    assert.match(created.token, /^bwk_tok_[a-z2-7]{26}_/);
    assert.deepEqual(created.info.scopes, ["audit.read"]);
    assert.ok(created.info.expiresAt);
    const list = await fx.call("GET", "/api/v1/tokens", { token });
    assert.equal(list.body.includes(created.token.split("_").at(-1) as string), false, "the secret is never listed");
    assert.ok((list.json() as { tokens: TokenView[] }).tokens.some((t) => t.id === created.info.id));
    assert.equal((await fx.call("GET", "/api/v1/audit/events?limit=1", { token: created.token })).statusCode, 200);
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { token: created.token })).statusCode, 403, "the new token has only its scopes");
    const row = await fx.app.db.db.selectFrom("api_tokens").select("secret_hash").where("id", "=", created.info.id).executeTakeFirstOrThrow();
    assert.equal(row.secret_hash.includes(created.token.split("_").at(-1) as string), false, "only a hash is stored");
  });

  it("pages the list: every token once across pages of `limit`, a token caller seeing only what it manages, and a cursor good only for the caller it was issued to (ASVS 8.2.2)", async () => {
    const user = await fx.user(["accounts.read", "audit.read"]);
    const wide = await fx.token(user.id, ["accounts.read", "audit.read"]);
    const minted: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await fx.call("POST", "/api/v1/tokens", { token: wide, body: { name: `t${i}`, scopes: [i % 2 === 0 ? "audit.read" : "accounts.read"] } });
      assert.equal(res.statusCode, 201, res.body);
      minted.push((res.json() as { info: TokenView }).info.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await fx.call("GET", `/api/v1/tokens?limit=2${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`, { token: wide });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json() as { tokens: TokenView[]; nextCursor: string | null };
      assert.ok(body.tokens.length <= 2);
      seen.push(...body.tokens.map((t) => t.id));
      cursor = body.nextCursor;
      pages++;
    } while (cursor !== null && pages < 10);
    assert.equal(new Set(seen).size, seen.length, "no token twice");
    for (const id of minted) assert.ok(seen.includes(id), `${id} reachable`);
    // A narrow token sees itself and the tokens within its scope, on pages of its own.
    const narrow = (await fx.call("POST", "/api/v1/tokens", { token: wide, body: { name: "narrow", scopes: ["audit.read"] } })).json() as { token: string; info: TokenView };
    const first = (await fx.call("GET", "/api/v1/tokens?limit=1", { token: narrow.token })).json() as { tokens: TokenView[]; nextCursor: string };
    assert.ok(first.nextCursor);
    const narrowSeen = [...first.tokens];
    let next: string | null = first.nextCursor;
    while (next !== null) {
      const page = (await fx.call("GET", `/api/v1/tokens?limit=1&cursor=${encodeURIComponent(next)}`, { token: narrow.token })).json() as { tokens: TokenView[]; nextCursor: string | null };
      narrowSeen.push(...page.tokens);
      next = page.nextCursor;
    }
    assert.ok(narrowSeen.every((t) => t.scopes.every((scope) => scope === "audit.read")), "only tokens within its scope");
    // The narrow token's cursor, presented by the wide token (another caller of the same user): refused.
    const replayed = await fx.call("GET", `/api/v1/tokens?limit=1&cursor=${encodeURIComponent(first.nextCursor)}`, { token: wide });
    assert.equal(replayed.statusCode, 400);
    assert.equal((replayed.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_CURSOR");
  });

  it("tells the owner by mail that a token was created, with its permissions and expiry but never its (caller-chosen) name", async () => {
    const user = await fx.user(["audit.read"]);
    const token = await fx.token(user.id, ["audit.read"]);
    const name = "routine maintenance by IT, ignore this mail";
    const res = await fx.call("POST", "/api/v1/tokens", { token, body: { name, scopes: ["audit.read"] } });
    assert.equal(res.statusCode, 201, res.body);
    const email = (await fx.app.db.db.selectFrom("users").select("email").where("id", "=", user.id).executeTakeFirstOrThrow()).email;
    const mails = await fx.app.db.db.selectFrom("outbox_messages").select(["subject", "body_text", "kind"]).where("to_address", "=", email).execute();
    assert.equal(mails.length, 1, JSON.stringify(mails));
    const [mail] = mails;
    assert.equal(mail?.kind, "security.api-token-created");
    assert.match(mail?.subject ?? "", /an API token was created/);
    assert.match(mail?.body_text ?? "", /with these permissions: audit\.read\. It acts as you until it is revoked; a password reset does not end it/);
    assert.doesNotMatch(mail?.body_text ?? "", /routine maintenance/, "the name whoever created it chose never speaks in the notice");
  });

  it("attack: a token whose notice cannot be written is not created — no credential the owner was not told about (ASVS 6.3.7)", async () => {
    const user = await fx.user(["audit.read"]);
    const token = await fx.token(user.id, ["audit.read"]);
    const before = (await fx.app.accounts.tokens.list(user.id)).length;
    const outbox = fx.app.accounts.outbox;
    outbox.enqueue = async () => { throw new Error("disk I/O error"); };
    try {
      const res = await fx.call("POST", "/api/v1/tokens", { token, body: { name: "ci", scopes: ["audit.read"] } });
      assert.equal(res.statusCode, 500, res.body);
    } finally {
      delete (outbox as { enqueue?: unknown }).enqueue;
    }
    assert.equal((await fx.app.accounts.tokens.list(user.id)).length, before, "no token was stored");
    const events = await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", "api.token.created").where("actor", "=", user.id).execute();
    assert.equal(events.length, 0, "nor audited as created");
  });

  it("refuses a narrow token that tries to mint a wider one, and a user who asks for a permission no role gives them (403)", async () => {
    const admin = await fx.user(["admin"]);
    const narrow = await fx.token(admin.id, ["accounts.read"]);
    for (const scopes of [["admin"], ["accounts.write"], ["accounts.read", "contain.run"]]) {
      const res = await fx.call("POST", "/api/v1/tokens", { token: narrow, body: { name: "escalate", scopes } });
      assert.equal(res.statusCode, 403, `a token scoped accounts.read minted ${scopes.join(",")}`);
      assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_TOKEN_SCOPE_TOO_WIDE");
    }
    const reader = await fx.user(["accounts.read"]);
    const readerToken = await fx.token(reader.id, ["accounts.read"]);
    const res = await fx.call("POST", "/api/v1/tokens", { token: readerToken, body: { name: "escalate", scopes: ["admin"] } });
    assert.equal(res.statusCode, 403);
    assert.equal((await fx.app.accounts.tokens.list(admin.id)).length, 1, "no token was minted");
    assert.equal((await fx.app.accounts.tokens.list(reader.id)).length, 1);
    // A token scoped admin may mint anything its user holds.
    const broad = await fx.token(admin.id, ["admin"]);
    assert.equal((await fx.call("POST", "/api/v1/tokens", { token: broad, body: { name: "ok", scopes: ["contain.run"] } })).statusCode, 201);
  });

  it("attack: an expiring token cannot mint a child that never expires or outlives it; by default the child expires with it", async () => {
    const user = await fx.user(["accounts.read", "audit.read"]);
    const parentExpiry = Date.now() + 3_600_000;
    const parent = (await fx.app.accounts.tokens.create(user.id, { name: "short-lived", scopes: ["audit.read"], expiresAt: parentExpiry })).token;
    for (const expiresAt of [null, new Date(parentExpiry + 1).toISOString()]) {
      const res = await fx.call("POST", "/api/v1/tokens", { token: parent, body: { name: "forever", scopes: ["audit.read"], expiresAt } });
      assert.equal(res.statusCode, 403, `expiresAt ${expiresAt}`);
      assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_TOKEN_OUTLIVES_PARENT");
    }
    const inherited = await fx.call("POST", "/api/v1/tokens", { token: parent, body: { name: "child", scopes: ["audit.read"] } });
    assert.equal(inherited.statusCode, 201, inherited.body);
    assert.equal((inherited.json() as { info: TokenView }).info.expiresAt, new Date(parentExpiry).toISOString());
    const shorter = await fx.call("POST", "/api/v1/tokens", { token: parent, body: { name: "shorter", scopes: ["audit.read"], expiresAt: new Date(parentExpiry - 60_000).toISOString() } });
    assert.equal(shorter.statusCode, 201, shorter.body);
    // A token that never expires may mint what it likes (within its scopes), as a session may.
    const lasting = await fx.token(user.id, ["audit.read"]);
    assert.equal((await fx.call("POST", "/api/v1/tokens", { token: lasting, body: { name: "also lasting", scopes: ["audit.read"], expiresAt: null } })).statusCode, 201);
  });

  it("attack: revoking a token revokes every token minted from it, at any depth, including one minted as it was revoked", async () => {
    const user = await fx.user(["audit.read"]);
    const root = await fx.app.accounts.tokens.create(user.id, { name: "leaked", scopes: ["audit.read"] });
    const mint = async (token: string, name: string): Promise<{ token: string; info: TokenView }> => {
      const res = await fx.call("POST", "/api/v1/tokens", { token, body: { name, scopes: ["audit.read"] } });
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { token: string; info: TokenView };
    };
    const child = await mint(root.token, "child");
    const grandchild = await mint(child.token, "grandchild");
    const sibling = await fx.token(user.id, ["audit.read"]);
    const read = (token: string): Promise<number> => fx.call("GET", "/api/v1/audit/events?limit=1", { token }).then((r) => r.statusCode);
    assert.equal(await read(grandchild.token), 200);
    const session = await fx.session(user.id);
    assert.equal((await fx.call("DELETE", `/api/v1/tokens/${root.info.id}`, { session })).statusCode, 204);
    assert.equal(await read(root.token), 401);
    assert.equal(await read(child.token), 401, "the child died with its parent");
    assert.equal(await read(grandchild.token), 401, "and so did the grandchild");
    assert.equal(await read(sibling), 200, "a token not minted from it lives on");
    const listed = (await fx.call("GET", "/api/v1/tokens", { session })).json() as { tokens: TokenView[] };
    assert.ok(listed.tokens.filter((t) => [child.info.id, grandchild.info.id].includes(t.id)).every((t) => t.revokedAt !== null), "the list shows them revoked");
    // A child written in the same instant as the revocation (after its cascade ran) is refused by its parent's state.
    const late = await fx.app.accounts.tokens.create(user.id, { name: "late", scopes: ["audit.read"], parent: { id: root.info.id, expiresAt: null } });
    assert.equal(await read(late.token), 401);
  });

  it("refuses unknown scopes, empty scopes, past expiry and extra fields with 400", async () => {
    const user = await fx.user(["accounts.read"]);
    const token = await fx.token(user.id, ["accounts.read"]);
    for (const body of [
      { name: "x", scopes: ["root"] }, { name: "x", scopes: [] }, { name: "x", scopes: ["accounts.read"], expiresAt: "2001-01-01T00:00:00Z" },
      { name: "x", scopes: ["accounts.read"], userId: "usr_someoneelse" }, { name: "", scopes: ["accounts.read"] }, { name: "x", scopes: ["accounts.read"], expiresAt: "soon" },
    ]) {
      const res = await fx.call("POST", "/api/v1/tokens", { token, body });
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)} answered ${res.statusCode}`);
    }
    assert.equal((await fx.app.accounts.tokens.list(user.id)).length, 1);
  });

  it("attack: a token name with an unpaired surrogate is refused (400), not stored as U+FFFD while the answer echoes it (ASVS 2.2.1)", async () => {
    const user = await fx.user(["audit.read"]);
    const token = await fx.token(user.id, ["audit.read"]);
    // Raw JSON: the escape reaches the server as a lone UTF-16 half, which no database stores as such.
    for (const name of ["ci\\ud800", "\\udc00ci", "c\\udfffi"]) {
      const res = await fx.server.inject({
        method: "POST", url: "/api/v1/tokens", payload: `{"name":"${name}","scopes":["audit.read"]}`,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      });
      assert.equal(res.statusCode, 400, `${name} answered ${res.statusCode}: ${res.body}`);
      // The body schema or the token service may refuse it; either way the message names the problem.
      assert.match((res.json() as { error: { message: string } }).error.message, /unpaired surrogate/);
    }
    assert.equal((await fx.app.accounts.tokens.list(user.id)).length, 1, "nothing was stored");
    // A correctly paired astral character is a real character and stays allowed.
    const paired = await fx.call("POST", "/api/v1/tokens", { token, body: { name: "ci \u{1F510}", scopes: ["audit.read"] } });
    assert.equal(paired.statusCode, 201, paired.body);
    assert.equal((paired.json() as { info: TokenView }).info.name, "ci \u{1F510}");
  });

  it("answers 404 to another user's token id and leaves that token working (IDOR)", async () => {
    const alice = await fx.user(["accounts.read"]);
    const mallory = await fx.user(["admin"]);
    const aliceToken = await fx.token(alice.id, ["accounts.read"]);
    const malloryToken = await fx.token(mallory.id, ["admin"]);
    const [aliceInfo] = await fx.app.accounts.tokens.list(alice.id);
    const id = (aliceInfo as { id: string }).id;
    const res = await fx.call("DELETE", `/api/v1/tokens/${id}`, { token: malloryToken });
    assert.equal(res.statusCode, 404, "even an admin cannot revoke someone else's token through the self-service route");
    const unknown = await fx.call("DELETE", "/api/v1/tokens/tok_aaaaaaaaaaaaaaaaaaaaaaaaaa", { token: malloryToken });
    assert.equal(unknown.statusCode, 404);
    assert.deepEqual(unknown.json().error.message.replace("tok_aaaaaaaaaaaaaaaaaaaaaaaaaa", "ID"), res.json().error.message.replace(id, "ID"), "same answer as an unknown id");
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { token: aliceToken })).statusCode, 200, "alice's token still works");
    const listed = (await fx.call("GET", "/api/v1/tokens", { token: malloryToken })).json() as { tokens: TokenView[] };
    assert.equal(listed.tokens.some((t) => t.id === id), false, "mallory's list never shows alice's token");
  });

  it("attack: a leaked narrow token cannot list, revoke or mass-revoke its owner's wider tokens; it manages itself and what it minted", async () => {
    const owner = await fx.user(["admin"]);
    const collector = await fx.token(owner.id, ["audit.read"]);
    const incident = await fx.token(owner.id, ["contain.run", "accounts.read"]);
    const root = await fx.token(owner.id, ["admin"]);
    const idOf = async (text: string): Promise<string> => ((await fx.app.accounts.tokens.list(owner.id)).find((t) => text.includes(t.id)) as { id: string }).id;
    const [collectorId, incidentId] = [await idOf(collector), await idOf(incident)];
    const child = (await fx.call("POST", "/api/v1/tokens", { token: collector, body: { name: "siem-2", scopes: ["audit.read"] } })).json() as { token: string; info: TokenView };

    const seen = ((await fx.call("GET", "/api/v1/tokens", { token: collector })).json() as { tokens: TokenView[] }).tokens.map((t) => t.id).sort();
    assert.deepEqual(seen, [collectorId, child.info.id].sort(), "the collector sees itself and its child, never the wider tokens or their last-use addresses");
    const probe = await fx.call("DELETE", `/api/v1/tokens/${incidentId}`, { token: collector });
    assert.equal(probe.statusCode, 404, "same answer as an unknown id");
    const all = await fx.call("DELETE", "/api/v1/tokens", { token: collector });
    assert.deepEqual(all.json(), { revoked: 2 }, "itself and its child");
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { token: incident })).statusCode, 200, "the incident tool's token still works");
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { token: root })).statusCode, 200);
    assert.equal((await fx.call("GET", "/api/v1/audit/events?limit=1", { token: child.token })).statusCode, 401, "the child went with it");

    // A token whose scopes allow everything another holds manages it; the owner's session manages all.
    const wide = ((await fx.call("GET", "/api/v1/tokens", { token: root })).json() as { tokens: TokenView[] }).tokens.map((t) => t.id);
    assert.ok(wide.includes(incidentId) && wide.includes(collectorId), "an admin-scoped token sees every token of its owner");
    assert.equal((await fx.call("DELETE", `/api/v1/tokens/${incidentId}`, { token: root })).statusCode, 204);
  });

  it("revokes one token, then all of the caller's tokens, with audit events", async () => {
    const user = await fx.user(["accounts.read"]);
    const a = await fx.token(user.id, ["accounts.read"]);
    const b = await fx.token(user.id, ["accounts.read"]);
    const c = await fx.token(user.id, ["accounts.read"]);
    const infos = await fx.app.accounts.tokens.list(user.id);
    const bId = (infos.find((i) => b.includes(i.id)) as { id: string }).id;
    const del = await fx.call("DELETE", `/api/v1/tokens/${bId}`, { token: a, headers: { "x-request-id": "revoke-b" } });
    assert.equal(del.statusCode, 204);
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { token: b })).statusCode, 401);
    assert.equal((await fx.call("DELETE", `/api/v1/tokens/${bId}`, { token: a })).statusCode, 404, "already revoked");
    const event = await fx.app.db.db.selectFrom("audit_events").selectAll().where("type", "=", "api.token.revoked").where("subject", "=", bId).executeTakeFirst();
    assert.equal(event?.request_id, "revoke-b");
    assert.equal(event?.actor, user.id);
    const all = await fx.call("DELETE", "/api/v1/tokens", { token: c });
    assert.deepEqual(all.json(), { revoked: 2 });
    for (const t of [a, c]) assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { token: t })).statusCode, 401);
  });

  it(`bounds live tokens per user at ${MAX_LIVE_TOKENS}`, async () => {
    const user = await fx.user(["accounts.read"]);
    const token = await fx.token(user.id, ["accounts.read"]);
    for (let i = 1; i < MAX_LIVE_TOKENS; i++) {
      const res = await fx.call("POST", "/api/v1/tokens", { token, body: { name: `n${i}`, scopes: ["accounts.read"] } });
      assert.equal(res.statusCode, 201);
    }
    const over = await fx.call("POST", "/api/v1/tokens", { token, body: { name: "one too many", scopes: ["accounts.read"] } });
    assert.equal(over.statusCode, 409);
    assert.equal((await fx.app.accounts.tokens.list(user.id)).length, MAX_LIVE_TOKENS);
  });

  it("keeps a session whose second factor is still due away from the API, and serves it after MFA (ASVS 6.3.3)", async () => {
    const user = await fx.user(["accounts.read"]);
    const { secret } = await fx.app.accounts.mfa.totp.begin(user.id, user.email);
    const code = new TOTP({ secret: Secret.fromBase32(secret) }).generate();
    assert.equal(await fx.app.accounts.mfa.totp.confirm(user.id, code), true);
    const pending = await fx.session(user.id, { aal: 1 });
    for (const [method, url] of [["GET", "/api/v1/users?limit=1"], ["GET", "/api/v1/tokens"], ["DELETE", "/api/v1/tokens"]] as const) {
      const res = await fx.call(method, url, { session: pending });
      assert.equal(res.statusCode, 403, `${method} ${url} served a session with MFA pending`);
    }
    const full = await fx.session(user.id, { aal: 2 });
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { session: full })).statusCode, 200);
  });

  it("keeps a session that must change its password away from the API", async () => {
    const user = await fx.user(["accounts.read"]);
    await fx.app.db.db.updateTable("users").set({ password_must_change: 1 }).where("id", "=", user.id).execute();
    const session = await fx.session(user.id, { aal: 1 });
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { session })).statusCode, 403);
  });
});
