// Red team, sixth look: a second look at the fixes of the last hour. (1) The password-work gate
// (accounts/passwords/work-gate.ts, http/auth/password-work.ts): the attacker is an anonymous client with a few
// addresses — one IPv6 subscriber's prefix, or a client behind the trusted proxy rotating X-Forwarded-For — who wants
// every other user's login refused, or its flood to leave no trace in the operator's log. (2) The paged listings
// GET /api/v1/tokens and GET /api/v1/contain/jobs, and the CLI's `contain list`: the attacker holds a leaked
// contain.run token and wants the job it ran out of the responders' sight; a writer racing a reader between pages
// must not make a page skip or repeat a token or job (both dialects). Each test is an attack that must fail: those
// named "(was: …)" were this round's findings, fixed the same day; the others pin a defence that holds. Found: the gate's
// quarter-per-client share is a quarter per IPv6 /64, so one subscriber's prefix takes every slot; refusals counted
// after the gate's once-a-minute report reach no log unless another refusal comes a minute later; the CLI's
// `contain list` still cuts at the 100 newest of each kind. Held: every password operation of every route walked runs
// in a gate slot; X-Forwarded-For through the trusted proxy, ports and IPv4-mapped spellings give no second share;
// token and job pages neither skip nor repeat rows made in one millisecond or written between pages (both dialects).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { buildServer } from "../src/http/server.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { BUSY_CODE } from "../src/http/auth/password-work.ts";
import { HOST, ORIGIN } from "../src/http/auth/test-client.ts";
import { buryJob, openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { authFixtureOn, authFlows, RESET_LINK, STEP } from "./helpers/auth-flows.ts";
import { authFixture, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { containDeps, createUndoJob } from "../src/contain/index.ts";
import { latchDummyVerify, until } from "./helpers/latch.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

/** An app and server whose log lines (pino JSON) are kept in `lines`. */
interface LoggedServer {
  app: OpenedApp;
  server: FastifyInstance;
  clock: ManualClock;
  lines: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

async function loggedServer(env: Record<string, string>): Promise<LoggedServer> {
  const root = mkdtempSync(join(tmpdir(), "bulwark-sixth-look-"));
  const clock = new ManualClock(Date.UTC(2026, 10, 2, 9));
  const lines: Array<Record<string, unknown>> = [];
  const app = await openApp({
    env: {
      BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "info",
      BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
      BULWARK_PUBLIC_URL: ORIGIN, BULWARK_REQUIRE_MFA: "none",
      ...env,
    },
    mode: "init", clock,
    logDestination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const server = await buildServer(app);
  return {
    app, server, clock, lines,
    async close() {
      await server.close();
      await app.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A same-origin JSON login from socket address `address`. */
function loginAt(server: FastifyInstance, identifier: string, address: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return server.inject({
    method: "POST", url: "/auth/login", remoteAddress: address,
    headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json", "user-agent": "Mozilla/5.0", ...headers },
    payload: JSON.stringify({ identifier, password: "a guess that is long enough" }),
  });
}

function isBusy(res: LightMyRequestResponse): boolean {
  return res.statusCode === 503 && (res.json() as { error?: { code?: string } }).error?.code === BUSY_CODE;
}

describe("red team: the password-work gate", () => {
  it("attack: one IPv6 subscriber (four /64s of its own /56) holds no more than one client's share of the password-work gate, which counts a client by its site (an IPv6 /48), and another client's login still gets in (ASVS 2.4.1) (was: each /64 its own client, every slot taken, 503 for everyone else)", async () => {
    const fx = await loggedServer({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4" });
    const latch = latchDummyVerify(fx.app);
    try {
      // The share is a quarter of the capacity: one request per client here. The attacker's four requests come from
      // four /64s of one /56, each its first login (flood control never stops them), each to an unknown account. The
      // latch only makes "while they hash" last; outside a test the attacker keeps the gate full by re-sending at
      // once (a refusal costs it nothing, and is counted by nothing), from fresh /64s as each one's flood budget runs
      // out, or with logins to an account of its own with its right password, which flood control never counts.
      const attacker = ["2001:db8:ab:1::1", "2001:db8:ab:2::1", "2001:db8:ab:3::1", "2001:db8:ab:4::1"];
      let settled = 0;
      const held = attacker.map((address, i) => loginAt(fx.server, `nobody-${i}@example.org`, address).finally(() => settled++));
      // Each of them is hashing or already answered (a gate that counts the /56 as one client answers three 503).
      await until(() => latch.waiting() + settled === attacker.length, "the attacker's logins admitted or refused");
      // A legitimate user somewhere else signs in while they hash.
      const victim = loginAt(fx.server, "owner@example.org", "198.51.100.23");
      const first = await Promise.race([victim, new Promise<null>((resolve) => setTimeout(() => resolve(null), 200))]);
      latch.open();
      const answered = first ?? (await victim);
      await Promise.all(held);
      assert.equal(isBusy(answered), false, `one subscriber's prefix took the whole gate: the victim's login was answered ${answered.statusCode} ${answered.body}`);
    } finally {
      latch.open();
      latch.restore();
      await fx.close();
    }
  });

  it("attack: a flood refused by the gate is counted in the log in full: the maintenance pass and the shutdown report what no refusal reported since (ASVS 16.3.1) (was: 1 of 40 logged)", async () => {
    const fx = await loggedServer({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "1" });
    const latch = latchDummyVerify(fx.app);
    const maintenance = startMaintenance(fx.app, { firstPassDelayMs: 60 * 60_000, intervalMs: 60 * 60_000 });
    let refused = 0;
    try {
      const held = loginAt(fx.server, "held@example.org", "203.0.113.1");
      await until(() => latch.waiting() === 1, "one login holding the only slot");
      // The flood: 40 logins from 40 addresses while the slot is held, all refused at once.
      for (let i = 0; i < 40; i++) {
        const res = await loginAt(fx.server, `flood-${i}@example.org`, `192.0.2.${i + 10}`);
        assert.ok(isBusy(res), res.body);
        refused++;
      }
      latch.open();
      assert.equal((await held).statusCode, 401);
      // The flood stops. Time passes; the server goes on answering (a login that is admitted), its maintenance runs.
      fx.clock.advance(5 * 60_000);
      assert.equal((await loginAt(fx.server, "later@example.org", "198.51.100.40")).statusCode, 401);
      await maintenance.runOnce();
    } finally {
      latch.open();
      latch.restore();
      await maintenance.stop();
    }
    await fx.close();
    const reported = fx.lines.filter((l) => typeof l["refused"] === "number").reduce((sum, l) => sum + (l["refused"] as number), 0);
    assert.equal(reported, refused, `the log reported ${reported} of the ${refused} logins the gate refused`);
  });
});

describe("red team: every password hash a request causes runs inside the gate", () => {
  const fx = sharedFixture(() => authFixture({ BULWARK_REGISTRATION: "open", BULWARK_REQUIRE_MFA: "none" }));
  const flows = authFlows(() => fx);

  it("attack: no route — login of a known, unknown or MFA account, the second factor, sign-up through its mailed link, reset, re-authentication, password and email change, token minting, session revocation, user creation by the API — hashes or verifies a password outside a gate slot", async () => {
    // Accounts and credentials are made first (the fixture hashes their passwords itself, outside any request).
    const plain = await flows.signedIn("walk-plain@example.org");
    const mfa = await flows.withTOTP("walk-mfa@example.org");
    const admin = await flows.userWith(["accounts.write"]);
    const apiToken = await flows.tokenFor(admin, ["accounts.write"]);
    const gate = fx.app.accounts.passwordWork;
    // Then every password operation is watched: the gate must hold a slot whenever one starts.
    const passwords = fx.app.accounts.passwords as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const names = ["hash", "verify", "verifyAndRehash", "dummyVerify", "wrapLegacyHash"] as const;
    const originals = Object.fromEntries(names.map((n) => [n, passwords[n]!]));
    const calls: Array<{ op: string; inFlight: number; during: string }> = [];
    let during = "";
    for (const n of names) passwords[n] = (...args: unknown[]) => {
      calls.push({ op: n, inFlight: gate.inFlight, during });
      return (originals[n] as (...a: unknown[]) => Promise<unknown>).apply(fx.app.accounts.passwords, args);
    };
    const step = async (what: string, run: () => Promise<LightMyRequestResponse>, status: number): Promise<LightMyRequestResponse> => {
      during = what;
      const res = await run();
      assert.equal(res.statusCode, status, `${what}: ${res.body.slice(0, 300)}`);
      return res;
    };
    try {
      await step("login, unknown account", () => fx.browser().login("walk-nobody@example.org", "a guess that is long enough"), 401);
      await step("login, wrong password", () => fx.browser().login(plain.email, "not the password at all"), 401);
      const pending = fx.browser();
      await step("login of an MFA account", () => pending.login(mfa.email, mfa.password), 200);
      await step("second factor", () => pending.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(mfa.secret, fx.clock.now()) } }), 200);
      fx.clock.advance(STEP);
      await step("sign-up", () => fx.browser().request("POST", "/auth/register", { body: { email: "walk-new@example.org" } }), 202);
      const signUp = await flows.tokenIn("walk-new@example.org", RESET_LINK);
      await step("sign-up link: choosing the first password", () => fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: signUp, newPassword: "a first passphrase of my own" } }), 200);
      await step("re-authentication", () => plain.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: plain.password } }), 200);
      await step("email change", () => plain.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "walk-moved@example.org" } }), 202);
      await step("token minting (a scope the user lacks: refused after the checks)", () => plain.b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "walk", scopes: ["audit.read"] } }), 403);
      await step("session revocation", () => plain.b.request("DELETE", "/auth/sessions", { csrf: true }), 200);
      await step("password change", () => plain.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: plain.password, newPassword: "a brand new passphrase for me" } }), 200);
      const reset = await flows.resetToken(mfa.email);
      await step("reset with the second factor", () => fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: reset, newPassword: "another passphrase entirely", totp: totpCode(mfa.secret, fx.clock.now()) } }), 200);
      await step("user creation by the API", () => fx.server.inject({ method: "POST", url: "/api/v1/users", headers: { host: HOST, authorization: `Bearer ${apiToken}` }, payload: { email: "walk-api@example.org", password: "a first passphrase to change" } }), 201);
    } finally {
      for (const n of names) passwords[n] = originals[n]!;
    }
    assert.ok(calls.length >= 8, `the walk caused password work (${calls.length} operations)`);
    const outside = calls.filter((c) => c.inFlight === 0);
    assert.deepEqual(outside, [], "password work that no gate slot covered");
    assert.equal(gate.inFlight, 0, "every slot came back");
  });
});

describe("red team: the gate's per-client share behind a trusted proxy and on a dual-stack socket", () => {
  let fx: LoggedServer;
  before(async () => {
    fx = await loggedServer({ BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4", BULWARK_TRUST_PROXY: "10.0.0.1" });
  });
  after(async () => {
    await fx.close();
  });

  it("attack: a client already holding its share gets no second one by writing X-Forwarded-For entries of its own through the trusted proxy, by a port on the forwarded hop, by its IPv4-mapped IPv6 spelling, or by sending X-Forwarded-For straight to the server; another client still gets in", async () => {
    const latch = latchDummyVerify(fx.app);
    try {
      // Capacity 4, a share of 1: the client 203.0.113.7 (through the proxy) has one login hashing.
      const held = loginAt(fx.server, "held@example.org", "10.0.0.1", { "x-forwarded-for": "203.0.113.7" });
      await until(() => latch.waiting() === 1, "the client's one login in the gate");
      const tries: Array<[string, string, Record<string, string>]> = [
        ["its own left-hand entries, the proxy appending the real hop", "10.0.0.1", { "x-forwarded-for": "198.18.0.1, 198.18.0.2, 203.0.113.7" }],
        ["a source port on the hop (Azure, IIS ARR)", "10.0.0.1", { "x-forwarded-for": "203.0.113.7:51234" }],
        ["the IPv4-mapped spelling of the hop", "10.0.0.1", { "x-forwarded-for": "::ffff:203.0.113.7" }],
        ["the IPv4-mapped socket address of a dual-stack listener", "::ffff:203.0.113.7", {}],
        ["X-Forwarded-For sent straight to the server, not through the proxy", "203.0.113.7", { "x-forwarded-for": "198.18.0.3" }],
      ];
      for (const [what, address, headers] of tries) {
        const res = await loginAt(fx.server, `second-${what.length}@example.org`, address, headers);
        assert.ok(isBusy(res), `${what}: a second slot for one client (${res.statusCode} ${res.body})`);
      }
      assert.equal(latch.waiting(), 1, "none of them reached a hash");
      // The proxy itself is not one client: another client behind it gets its own share.
      const other = loginAt(fx.server, "other@example.org", "10.0.0.1", { "x-forwarded-for": "198.51.100.77" });
      await until(() => latch.waiting() === 2, "another client's login admitted");
      latch.open();
      assert.equal((await other).statusCode, 401);
      assert.equal((await held).statusCode, 401);
    } finally {
      latch.open();
      latch.restore();
    }
    assert.equal(fx.app.accounts.passwordWork.inFlight, 0);
  });
});

describe("red team: the CLI's containment listing", () => {
  let fx: APIFixture;
  before(async () => {
    fx = await openAPIFixture();
  });
  after(async () => {
    await fx?.close();
  });

  it("attack: a contain.run token cannot hide the job it ran from the operator's `bulwark contain list` by starting 100 empty jobs after it: the listing reads every job, a page at a time (was: the 100 newest of each kind, nothing said of the rest)", async () => {
    // The attacker's real job locks an account (the owner is locked out until someone finds and undoes the job); the
    // junk jobs name ids that match nobody (accepted, total 0, done at once).
    const { realId } = await buryJob(fx, 100);
    // The operator, on the server, lists the containment jobs to find the one to undo.
    const listed = await bulwarkInProcess(["contain", "list", "--json"], { BULWARK_DATA_DIR: fx.app.config.dataDir });
    assert.equal(listed.code, 0, listed.stderr);
    // An array today; a listing that pages may answer { jobs, nextCursor } instead.
    const out = JSON.parse(listed.stdout) as Array<{ id: string }> | { jobs: Array<{ id: string }>; nextCursor?: unknown };
    const ids = (Array.isArray(out) ? out : out.jobs).map((j) => j.id);
    const told = /more|--(cursor|limit|all|before)/i.test(listed.stderr) || (!Array.isArray(out) && typeof out.nextCursor === "string");
    assert.ok(ids.includes(realId) || told, `the job that locked the account is not in \`contain list\` (${ids.length} jobs listed), and nothing says more exist: ${listed.stderr.slice(0, 200)}`);
  });
});

/** A GET on the fixture's server as a signed-in browser (`cookie`) or a bearer `token`. */
async function getJSON(fx: AuthFixture, url: string, auth: { cookie?: string; token?: string }): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin" };
  if (auth.cookie) headers["cookie"] = auth.cookie;
  if (auth.token) headers["authorization"] = `Bearer ${auth.token}`;
  const res = await fx.server.inject({ method: "GET", url, headers });
  assert.equal(res.statusCode, 200, `${url}: ${res.body.slice(0, 300)}`);
  return res.json() as Record<string, unknown>;
}

/**
 * Pages `url` (its array under `key`) to the end with `limit`, calling `between` after each page (a writer racing the
 * reader); bounded, so a listing that loops fails instead of hanging.
 */
async function pageThrough(fx: AuthFixture, url: string, key: string, auth: { cookie?: string; token?: string }, between: (page: number) => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 60; page++) {
    const body = await getJSON(fx, cursor === null ? url : `${url}&cursor=${encodeURIComponent(cursor)}`, auth);
    seen.push(...(body[key] as Array<{ id: string }>).map((t) => t.id));
    cursor = typeof body["nextCursor"] === "string" ? body["nextCursor"] : null;
    if (cursor === null) return seen;
    await between(page);
  }
  assert.fail(`${url}: still a nextCursor after 60 pages`);
}

function assertEachOnce(seen: string[], expected: string[], what: string): void {
  const repeated = seen.filter((id, i) => seen.indexOf(id) !== i);
  assert.deepEqual(repeated, [], `${what}: listed twice across pages`);
  const missing = expected.filter((id) => !seen.includes(id));
  assert.deepEqual(missing, [], `${what}: skipped by the pages (${seen.length} seen)`);
}

forEachDialect("red team: keyset pages of tokens and jobs made in one millisecond, with writers between the pages", (dialect) => {
  let fx: AuthFixture;
  before(async () => {
    fx = await authFixtureOn(dialect, "sixth-look-pages");
  });
  after(async () => {
    await fx?.close();
  });

  it("attack: tokens minted in the same millisecond, and tokens minted and revoked between the reader's pages, make GET /api/v1/tokens neither skip nor repeat a token that was there from the start (the tie is broken by id on the same order the cursor compares)", async () => {
    const owner = await fx.user("paged-tokens@example.org");
    const made: string[] = [];
    // Two groups of seven, each minted within one millisecond (the fixture's clock stands still unless moved).
    for (let group = 0; group < 2; group++) {
      for (let i = 0; i < 7; i++) made.push((await fx.app.accounts.tokens.create(owner.id, { name: `g${group}-${i}`, scopes: ["audit.read"] })).info.id);
      fx.clock.advance(1);
    }
    fx.clock.advance(-1);
    const { token: session } = await fx.app.accounts.sessions.createSession(owner.id, { aal: 2 });
    const cookie = `${SESSION_COOKIE}=${session}`;
    const writer = async (page: number): Promise<void> => {
      // A script of the owner's mints in the same millisecond as the newest group, and revokes tokens already listed
      // and still to come.
      await fx.app.accounts.tokens.create(owner.id, { name: `between-${page}`, scopes: ["audit.read"] });
      await fx.app.accounts.tokens.revoke(owner.id, made[page] as string);
      await fx.app.accounts.tokens.revoke(owner.id, made[made.length - 1 - page] as string);
    };
    const seen = await pageThrough(fx, "/api/v1/tokens?limit=3", "tokens", { cookie }, writer);
    assertEachOnce(seen, made, "a token there from the start");
  });

  it("attack: containment and undo jobs made in the same millisecond, with an unreadable row among them and jobs started between the reader's pages, make GET /api/v1/contain/jobs neither skip nor repeat a job that was there from the start", async () => {
    const holder = await fx.user("paged-jobs@example.org");
    await fx.app.accounts.roles.create({ name: "paged-jobs", permissions: ["contain.run"] }, "test");
    await fx.app.accounts.roles.grant(holder.id, "paged-jobs", "test");
    await ensureSecondFactor(fx.app, holder.id); // contain.run is administrative: without a factor the MFA policy holds the token
    const token = (await fx.app.accounts.tokens.create(holder.id, { name: "responder", scopes: ["contain.run"] })).token;
    const post = async (i: string): Promise<string> => {
      const res = await fx.server.inject({
        method: "POST", url: "/api/v1/contain/jobs", headers: { host: HOST, authorization: `Bearer ${token}` },
        payload: { levers: ["lock-accounts"], scope: { ids: [`usr_nobody${i}`] } },
      });
      assert.equal(res.statusCode, 202, res.body);
      return (res.json() as { job: { id: string } }).job.id;
    };
    const made: string[] = [];
    for (let i = 0; i < 6; i++) made.push(await post(`a${i}`));
    // Undo jobs of finished ones, in the same millisecond (the other kind the listing merges).
    const deps = containDeps(fx.app);
    for (const id of made.slice(0, 3)) {
      for (let i = 0; i < 400 && (await fx.app.accounts.jobs.get(id)).status !== "done"; i++) await new Promise((resolve) => setTimeout(resolve, 25));
      made.push((await createUndoJob(deps, id, "test")).id);
    }
    // A damaged row (its spec is not JSON), listed as unreadable, in the same millisecond.
    const now = fx.clock.now();
    await fx.app.db.db.insertInto("jobs").values({
      id: "job_zzzzunreadable", kind: "contain", status: "done", spec: "{not json", cursor: null, total: 0, done: 0, counts: "{}",
      actor: "test", incident_id: null, error: null, created_at: now, updated_at: now, finished_at: now, created_epoch: 0, finished_epoch: null,
      request_key: null, request_fingerprint: null,
    }).execute();
    made.push("job_zzzzunreadable");
    let n = 0;
    const seen = await pageThrough(fx, "/api/v1/contain/jobs?limit=2", "jobs", { token }, async () => {
      await post(`b${n++}`);
    });
    assertEachOnce(seen, made, "a job there from the start");
  });
});
