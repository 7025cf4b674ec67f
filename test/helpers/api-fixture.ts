// A real Bulwark server for the /api/v1 tests: an opened app (SQLite, or PostgreSQL on a private cluster),
// buildServer, real users with real roles, and real credentials (API tokens from the token service, browser
// sessions from the session manager with the CSRF token from GET /auth/csrf). Nothing here fakes request.auth.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { openApp, type OpenedApp } from "../../src/app/index.ts";
import { SESSION_COOKIE } from "../../src/accounts/sessions/index.ts";
import { buildServer } from "../../src/http/server.ts";
import { testMasterKey } from "./master-key.ts";
import { ensureSecondFactor } from "./second-factor.ts";

export interface APIFixture {
  app: OpenedApp;
  server: FastifyInstance;
  /** A user holding exactly these permissions (through a fresh role); no role at all for []. */
  user(permissions: string[], options?: { email?: string }): Promise<{ id: string; email: string }>;
  /** A real API token of `userId` with these scopes. */
  token(userId: string, scopes: string[]): Promise<string>;
  /** A real browser session of `userId` (aal 2 unless told) and its CSRF token from GET /auth/csrf. */
  session(userId: string, options?: { aal?: 1 | 2 }): Promise<{ cookie: string; csrf: string }>;
  /** Sends a request with a bearer token, a session (cookie + CSRF + same-origin), or nothing. */
  call(method: string, url: string, options?: { token?: string; session?: { cookie: string; csrf: string }; body?: unknown; headers?: Record<string, string> }): Promise<LightMyRequestResponse>;
  /** Polls GET /api/v1/contain/jobs/:id until the job is done or failed (runs go on in the background); bounded, so a stuck job fails the test. */
  finishedJob<J extends { status: string }>(token: string, id: string): Promise<J>;
  close(): Promise<void>;
}

let counter = 0;

/**
 * Opens a fresh app and server. With `databaseURL` the app runs on that PostgreSQL database.
 *
 * @example
 * const fx = await openAPIFixture(); const admin = await fx.user(["admin"]); await fx.call("GET", "/api/v1/users", { token: await fx.token(admin.id, ["admin"]) });
 */
export async function openAPIFixture(options: { databaseURL?: string } = {}): Promise<APIFixture> {
  const root = mkdtempSync(join(tmpdir(), "bulwark-api-"));
  // Every injected request comes from 127.0.0.1: the password-work gate's per-client share must not be what a test meets.
  const env: Record<string, string> = { BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4096" };
  if (options.databaseURL) {
    env["BULWARK_DATABASE_URL"] = options.databaseURL;
    env["BULWARK_MASTER_KEY"] = testMasterKey(7);
  }
  const app = await openApp({ env, mode: "init" });
  const server = await buildServer(app);
  const publicURL = app.config.http.publicURL;
  const fx: APIFixture = {
    app,
    server,
    async user(permissions, opts = {}) {
      const n = ++counter;
      const user = await app.accounts.users.create({ email: opts.email ?? `user${n}-${process.pid}@example.org` });
      if (permissions.length) {
        const role = `r${n}`;
        await app.accounts.roles.create({ name: role, permissions }, "test");
        await app.accounts.roles.grant(user.id, role, "test");
      }
      return { id: user.id, email: user.email };
    },
    async token(userId, scopes) {
      await ensureSecondFactor(app, userId);
      return (await app.accounts.tokens.create(userId, { name: `t${++counter}`, scopes })).token;
    },
    async session(userId, opts = {}) {
      if ((opts.aal ?? 2) === 2) await ensureSecondFactor(app, userId);
      const { token } = await app.accounts.sessions.createSession(userId, { aal: opts.aal ?? 2 });
      const cookie = `${SESSION_COOKIE}=${token}`;
      const res = await server.inject({ method: "GET", url: "/auth/csrf", headers: { cookie } });
      if (res.statusCode !== 200) throw new Error(`GET /auth/csrf answered ${res.statusCode}: ${res.body}`);
      return { cookie, csrf: (res.json() as { token: string }).token };
    },
    call(method, url, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token) headers["authorization"] = `Bearer ${opts.token}`;
      if (opts.session) {
        headers["cookie"] = opts.session.cookie;
        headers["x-csrf-token"] ??= opts.session.csrf;
        headers["origin"] ??= publicURL;
      }
      return server.inject({
        method: method as "GET", url, headers,
        ...(opts.body !== undefined ? { payload: opts.body as object } : {}),
      });
    },
    async finishedJob<J extends { status: string }>(token: string, id: string): Promise<J> {
      for (let i = 0; i < 400; i++) {
        const res = await fx.call("GET", `/api/v1/contain/jobs/${id}`, { token });
        assert.equal(res.statusCode, 200, res.body);
        const job = (res.json() as { job: J }).job;
        if (job.status === "done" || job.status === "failed") return job;
        await sleep(25);
      }
      throw new Error(`job ${id} did not finish`);
    },
    async close() {
      await server.close();
      await app.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return fx;
}

/**
 * What a contain.run holder does to hide a job from the other responders: runs a real lock-accounts job over one
 * account (waits for it to finish and checks the account is locked), then starts `junk` jobs over ids that match
 * nobody (accepted, empty, done at once), all with its own token. Returns the real job's id and that token.
 */
export async function buryJob(fx: APIFixture, junk: number): Promise<{ realId: string; token: string }> {
  const holder = await fx.user(["contain.run"]);
  const token = await fx.token(holder.id, ["contain.run"]);
  const victim = await fx.user([]);
  const real = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [victim.id] } } });
  assert.equal(real.statusCode, 202, real.body);
  const realId = (real.json() as { job: { id: string } }).job.id;
  await fx.finishedJob(token, realId);
  assert.notEqual((await fx.app.accounts.users.getById(victim.id))?.lockedAt ?? null, null, "the real job locked the account");
  for (let i = 0; i < junk; i++) {
    const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [`usr_nobody${i}`] } } });
    assert.equal(res.statusCode, 202, res.body);
  }
  return { realId, token };
}
