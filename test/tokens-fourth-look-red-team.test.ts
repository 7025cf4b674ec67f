// Red team, fourth look at API tokens: the token's life across its owner's account changes (an import that disables a
// leaver, then enables the account again), the token's use as evidence (last-used time and address, audit trail) when
// nodes disagree on the time or the token is already revoked, how often a token can make the server mail its owner,
// and a token and a session cookie swapped for each other.
// Attackers: a thief holding a leaked token (from a CI log, a laptop) and the token's own owner turned insider (a
// leaver whose automation keeps a token). Real server (authFixture: SQLite, manual clock), real credentials from the
// token and session services, the real importer; nothing fakes request.auth. Each test is an attack that must fail on
// correct code. The round's four findings are fixed (tokens ended by a disabling import, genuine refused tokens recorded,
// a mint rate, a last use dated ahead rewritten); the tests pin the fixes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { importUsers, type ImportDeps } from "../src/accounts/import/importer.ts";
import { checkHeader, resolveMap } from "../src/accounts/import/mapping.ts";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { createTokenService } from "../src/accounts/tokens/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { authFixture, HOST, ORIGIN } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();
let n = 0;

/** A user holding these permissions through a fresh role of its own. */
async function user(permissions: string[]): Promise<{ id: string; email: string }> {
  const u = await fx.user(`t4-${++n}@example.org`);
  if (permissions.length) {
    await fx.app.accounts.roles.create({ name: `t4r${n}`, permissions }, "test");
    await fx.app.accounts.roles.grant(u.id, `t4r${n}`, "test");
  }
  return { id: u.id, email: u.email };
}

async function token(userId: string, scopes: string[]): Promise<{ token: string; id: string }> {
  const made = await fx.app.accounts.tokens.create(userId, { name: `ci-${++n}`, scopes });
  return { token: made.token, id: made.info.id };
}

function api(method: "GET" | "POST" | "DELETE", url: string, options: { authorization?: string; cookie?: string; from?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method, url, remoteAddress: options.from ?? "127.0.0.1",
    headers: {
      host: HOST, ...options.headers,
      ...(options.authorization === undefined ? {} : { authorization: options.authorization }),
      ...(options.cookie === undefined ? {} : { cookie: options.cookie }),
    },
    ...(options.body === undefined ? {} : { payload: options.body as object }),
  });
}

const bearer = (t: string): string => `Bearer ${t}`;

function code(res: LightMyRequestResponse): string | undefined {
  return (res.json() as { error?: { code?: string } }).error?.code;
}

/** Imports `csv` with --on-conflict update, as `bulwark users import` does (src/cli/commands/users.ts builds these deps). */
async function importCSV(csv: string): Promise<Awaited<ReturnType<typeof importUsers>>> {
  const app = fx.app;
  const deps: ImportDeps = {
    database: app.db, users: app.accounts.users, passwords: app.accounts.passwords, audit: app.audit, clock: app.clock, jobs: app.accounts.jobs,
    notices: { outbox: app.accounts.outbox, appName: app.config.serviceName },
  };
  const map = resolveMap({ preset: null, map: {} });
  return importUsers(deps, {
    format: "csv", onConflict: "update", replacePasswords: false, batchSize: 500, dryRun: false, skipBad: false, actor: "cli:ops", file: "users.csv",
    onHeader: (h: string[]) => checkHeader(h, map, {}),
    rules: { map, preset: null, source: "users.csv", salted: null },
    open: async function* () {
      yield csv;
    },
  });
}

describe("red team, fourth look: API tokens across account changes, as evidence, and as mail", () => {
  it("attack: a leaver's API token, refused while an import has the account disabled, stays refused when a later import enables the account, as its sessions do (ASVS 7.4.2) (was: it answered 200 again)", async () => {
    const leaver = await user(["accounts.read"]);
    const kept = await token(leaver.id, ["accounts.read"]);
    const session = (await fx.app.accounts.sessions.createSession(leaver.id, { aal: 2 })).token;
    assert.equal((await api("GET", "/api/v1/users?limit=1", { authorization: bearer(kept.token) })).statusCode, 200, "precondition: the token works");

    // The HR export marks the leaver blocked (status 0): the import disables the account and ends its sessions.
    const off = await importCSV(`email,status\n${leaver.email},0\n`);
    assert.equal(off.updated, 1, "precondition: the import updated the account");
    assert.equal((await fx.app.accounts.users.getById(leaver.id))?.status, "disabled");
    assert.equal((await api("GET", "/api/v1/users?limit=1", { authorization: bearer(kept.token) })).statusCode, 401, "precondition: refused while disabled");

    // Months later the person is re-hired, or last quarter's export (status 1) is imported again.
    const on = await importCSV(`email,status,display_name\n${leaver.email},1,Back\n`);
    assert.equal(on.updated, 1, "precondition: the import updated the account");
    assert.equal((await fx.app.accounts.users.getById(leaver.id))?.status, "active");
    const sessionNow = await api("GET", "/api/v1/users?limit=1", { cookie: `${SESSION_COOKIE}=${session}` });
    assert.equal(sessionNow.statusCode, 401, "contrast: the session the disable ended stays ended (apply-batch.ts ends sessions so they do not come back)");
    const tokenNow = await api("GET", "/api/v1/users?limit=1", { authorization: bearer(kept.token) });
    assert.equal(tokenNow.statusCode, 401, `the token a leaver kept must not come back with the account: disabling it should end its tokens as it ends its sessions (answered ${tokenNow.statusCode})`);
  });

  it("attack: a thief who keeps using a leaked token after it was revoked is recorded against the account, naming the token and the thief's address, sampled (ASVS 16.3.1, 16.3.2) (was: no trace anywhere)", async () => {
    const owner = await user(["audit.read"]);
    const leaked = await token(owner.id, ["audit.read"]);
    const thief = "203.0.113.66";
    // The owner spots the leak in a CI log and revokes the token.
    assert.equal((await api("DELETE", `/api/v1/tokens/${leaked.id}`, { authorization: bearer(leaked.token) })).statusCode, 204, "precondition: revoked");
    const lastSeq = Number((await fx.app.db.db.selectFrom("audit_events").select((eb) => eb.fn.max("seq").as("m")).executeTakeFirstOrThrow()).m ?? 0);

    // The thief, who does not know, goes on presenting the genuine secret from its own address.
    for (let i = 0; i < 3; i++) {
      const res = await api("GET", "/api/v1/audit/events?limit=1", { authorization: bearer(leaked.token), from: thief });
      assert.equal(res.statusCode, 401, "precondition: the revoked token is refused");
      fx.clock.advance(90_000);
    }
    const info = (await fx.app.accounts.tokens.list(owner.id)).find((t) => t.id === leaked.id);
    assert.notEqual(info?.lastUsedIp, thief, "precondition: the token list does not show it either");
    const later = await fx.app.db.db.selectFrom("audit_events").select(["type", "subject", "data"]).where("seq", ">", lastSeq).execute();
    const traces = later.filter((e) => (e.subject === leaked.id || e.data.includes(leaked.id)) && e.data.includes(thief));
    assert.ok(traces.length >= 1, `a revoked token presented with its genuine secret is an attempt by whoever holds it: it must be recorded with the token id and the address (sampled if need be). Events since the revocation: ${JSON.stringify(later.map((e) => e.type))}`);
  });

  it("attack: a leaked token minting and revoking child tokens in a loop is refused past 60 mints an hour (429), so the owner's inbox and the outbox get a bounded number of notices (ASVS 2.4.1) (was: no bound)", async () => {
    const owner = await user(["audit.read"]);
    const leaked = await token(owner.id, ["audit.read"]);
    const countNotices = async (): Promise<number> =>
      (await fx.app.db.db.selectFrom("outbox_messages").select("id").where("kind", "=", "security.api-token-created").execute()).length;
    const before = await countNotices();
    const { TOKEN_MINTS_PER_HOUR } = await import("../src/app/accounts.ts");
    const cycles = TOKEN_MINTS_PER_HOUR + 10;
    let minted = 0;
    for (let i = 0; i < cycles; i++) {
      const made = await api("POST", "/api/v1/tokens", { authorization: bearer(leaked.token), body: { name: `junk ${i}`, scopes: ["audit.read"] } });
      if (made.statusCode !== 201) continue;
      minted++;
      const id = (made.json() as { info: { id: string } }).info.id;
      assert.equal((await api("DELETE", `/api/v1/tokens/${id}`, { authorization: bearer(leaked.token) })).statusCode, 204);
    }
    const queued = (await countNotices()) - before;
    // Secure: some bound stops the loop: mints refused past a rate (429), or the owner's notices coalesced.
    assert.equal(minted, TOKEN_MINTS_PER_HOUR, "the hour's mints, then 429");
    assert.ok(minted < cycles || queued < cycles, `${cycles} mint-and-revoke cycles in one instant, all from one leaked token, minted ${minted} tokens and queued ${queued} notices to the owner: nothing bounds it`);
  });

  it("attack: after one node whose clock runs ahead records a token's use, the thief's uses through nodes with the right time are still written: the list shows the thief's address and no last use in the future (ASVS 16.3.1) (was: the fast node's date held off every write)", async () => {
    const owner = await user(["audit.read"]);
    const leaked = await token(owner.id, ["audit.read"]);
    // Node A: same store, its clock ten minutes ahead (the revocation-clock-skew tests use an hour). The owner's CI
    // job happens to be served by it.
    const skew = 10 * 60_000;
    const fast = new ManualClock(fx.clock.now() + skew);
    const nodeA = createTokenService({ database: fx.app.db, clock: fast, random: fx.app.random });
    const ci = "192.0.2.10";
    assert.equal((await nodeA.verify(leaked.token, ci)).valid, true, "precondition: node A serves the owner's CI job");

    // Two minutes later the thief uses the token through node B (this server, the right time), twice a minute apart.
    const thief = "203.0.113.77";
    fx.clock.advance(2 * 60_000);
    assert.equal((await api("GET", "/api/v1/audit/events?limit=1", { authorization: bearer(leaked.token), from: thief })).statusCode, 200);
    fx.clock.advance(61_000);
    assert.equal((await api("GET", "/api/v1/audit/events?limit=1", { authorization: bearer(leaked.token), from: thief })).statusCode, 200);

    const info = (await fx.app.accounts.tokens.list(owner.id)).find((t) => t.id === leaked.id);
    assert.ok(info, "the token is listed");
    assert.ok(info.lastUsedAt !== null && info.lastUsedAt <= fx.clock.now(),
      `a last use recorded after the thief's must not lie ahead of the nodes with the right time (lastUsedAt ${info.lastUsedAt === null ? null : new Date(info.lastUsedAt).toISOString()}, now ${new Date(fx.clock.now()).toISOString()})`);
    assert.equal(info.lastUsedIp, thief, "the thief's use, over a minute after the last one recorded, must be what the list shows");
  });

  it("attack: a browser session cookie presented as a bearer token, and an API token presented as the session cookie, are refused: neither credential is accepted in the other's place, nor downgraded to anonymous (ASVS 8.3.1, 7.2.1)", async () => {
    const owner = await user(["accounts.read"]);
    const apiToken = await token(owner.id, ["accounts.read"]);
    const cookieToken = (await fx.app.accounts.sessions.createSession(owner.id, { aal: 2 })).token;
    assert.equal((await api("GET", "/api/v1/users?limit=1", { cookie: `${SESSION_COOKIE}=${cookieToken}` })).statusCode, 200, "precondition: the cookie works as a cookie");
    assert.equal((await api("GET", "/api/v1/users?limit=1", { authorization: bearer(apiToken.token) })).statusCode, 200, "precondition: the token works as a bearer");

    // A session stolen from a browser, replayed by a script as a bearer (the cookie's value, and the whole cookie pair).
    for (const presented of [cookieToken, `${SESSION_COOKIE}=${cookieToken}`]) {
      const res = await api("GET", "/api/v1/users?limit=1", { authorization: bearer(presented) });
      assert.equal(res.statusCode, 401, `a session cookie is no bearer token (${presented.slice(0, 12)}…)`);
      assert.equal(code(res), "BULWARK_ERR_TOKEN_INVALID");
    }
    // A leaked API token planted as the session cookie: on the API, on a cookie-only /auth route, and on a
    // cookie-authenticated write that would need no CSRF if the token's exemption followed it.
    const asCookie = `${SESSION_COOKIE}=${apiToken.token}`;
    assert.equal((await api("GET", "/api/v1/users?limit=1", { cookie: asCookie })).statusCode, 401, "an API token is no session cookie");
    const sessionView = await api("GET", "/auth/session", { cookie: asCookie });
    assert.equal(sessionView.body.includes(owner.id) || sessionView.body.includes(owner.email), false, `no session opens for the token's owner (answered ${sessionView.statusCode} ${sessionView.body.slice(0, 200)})`);
    const write = await api("DELETE", "/api/v1/tokens", { cookie: asCookie, headers: { origin: ORIGIN } });
    assert.ok(write.statusCode === 401 || write.statusCode === 403, `answered ${write.statusCode}`);
    assert.equal((await api("GET", "/api/v1/users?limit=1", { authorization: bearer(apiToken.token) })).statusCode, 200, "nothing was revoked by the planted cookie");
  });

  it("attack: a thief cannot write an innocent address as the token's last use, nor hide its own, with the forwarding headers while no proxy is trusted: the list and the audit event of a mint show the peer's address (ASVS 16.3.1, 16.2.1)", async () => {
    const owner = await user(["audit.read"]);
    const leaked = await token(owner.id, ["audit.read"]);
    const thief = "198.51.100.23";
    const innocent = "192.0.2.10";
    const spoof = { "x-forwarded-for": innocent, forwarded: `for=${innocent}`, "x-real-ip": innocent, "true-client-ip": innocent, "cf-connecting-ip": innocent };
    const minted = await api("POST", "/api/v1/tokens", { authorization: bearer(leaked.token), from: thief, headers: spoof, body: { name: "spare", scopes: ["audit.read"] } });
    assert.equal(minted.statusCode, 201, minted.body);
    const info = (await fx.app.accounts.tokens.list(owner.id)).find((t) => t.id === leaked.id);
    assert.equal(info?.lastUsedIp, thief, "the token's last use names the peer, not the forged hop");
    const childId = (minted.json() as { info: { id: string } }).info.id;
    const event = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "api.token.created").where("subject", "=", childId).executeTakeFirstOrThrow();
    const data = JSON.parse(event.data) as { ip?: string; tokenId?: string };
    assert.equal(data.ip, thief, "the mint's audit event names the peer");
    assert.equal(data.tokenId, leaked.id, "and the leaked token that minted it");
    assert.equal(event.data.includes(innocent), false, "the forged address appears nowhere in the record");
  });
});
