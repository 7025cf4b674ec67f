// Test support for the /auth HTTP tests: an opened app on a temp data dir (small argon2 cost, a manual clock,
// SMTP pointed at a real in-process server), and a "browser" that keeps the session cookie and sends the
// Origin / Sec-Fetch-Site headers a same-origin page would. Used only by test/http-auth-*.test.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import * as OTPAuth from "otpauth";
import { openApp, type OpenedApp } from "../../app/index.ts";
import { ManualClock } from "../../lib/clock.ts";
import { createSMTPTransport, OutboxSender, type RunReport } from "../../notify/index.ts";
import { decodeQuotedPrintable, startTestSMTPServer, type ReceivedMail, type TestSMTPServer } from "../../notify/smtp-test-server.ts";
import { DEVICE_COOKIE, SESSION_COOKIE } from "../../accounts/sessions/index.ts";
import { buildServer } from "../server.ts";

export const ORIGIN = "https://bulwark.test";
export const HOST = "bulwark.test";
/**
 * The headers of a top-level navigation from another site: what a browser sends when a link in a mail or on another
 * page is followed (SameSite=Lax cookies go along). For attacks that have the genuine origin answer such a link.
 */
export const CROSS_SITE_NAVIGATION = { host: HOST, "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" } as const;
/** Meets the default policy (15+ characters, not common, no context words). */
export const GOOD_PASSWORD = "violet kettle drums at dawn";

export interface AuthFixture {
  app: OpenedApp;
  server: FastifyInstance;
  clock: ManualClock;
  smtp: TestSMTPServer;
  /** Delivers every queued message through real SMTP to `smtp`. */
  deliver(): Promise<RunReport>;
  /** Creates an active user with a password, optionally granting roles. */
  user(email: string, options?: { password?: string; roles?: string[] }): Promise<{ id: string; email: string; password: string }>;
  /**
   * A client like a page of this origin. Every client of a fixture shares one known-device cookie, as tabs of one
   * browser profile do; `newDevice` gives one its own, as another computer would have (a sign-in notice then follows).
   */
  browser(options?: { newDevice?: boolean }): Browser;
  /** Mail received for an address, decoded. */
  mailTo(address: string): Array<{ subject: string; body: string; mail: ReceivedMail }>;
  close(): Promise<void>;
}

export async function authFixture(env: Record<string, string> = {}): Promise<AuthFixture> {
  const root = mkdtempSync(join(tmpdir(), "bulwark-http-auth-"));
  const smtp = await startTestSMTPServer();
  const clock = new ManualClock(Date.UTC(2026, 10, 2, 9));
  // A refused configuration (a test of the refusal) must not leave the SMTP server and the temp dir behind.
  const app = await openApp({
    env: {
      BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent",
      // Cheap hashes keep the tests fast; the benchmark measures the real cost.
      BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
      // Every injected request comes from 127.0.0.1: the per-address limit on mail-sending requests would cap how many
      // resets and sign-ups one test file can make. Tests of that limit set their own (test/http-mail-request-rate).
      BULWARK_MAIL_REQUESTS_PER_HOUR: "100000",
      // Likewise the password-work gate's per-client share (a quarter of this): tests that race a dozen logins from one
      // address test flood control, not the gate. Its own tests set their own (test/password-work-gate).
      BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4096",
      // The manual clock starts on a fixed day, far from a PostgreSQL server's own clock: a node that far off would
      // refuse to serve. Tests of that limit set their own (test/clock-skew-limit.test.ts).
      BULWARK_MAX_CLOCK_SKEW_SECONDS: "0",
      BULWARK_PUBLIC_URL: ORIGIN, BULWARK_SMTP_URL: `smtp://127.0.0.1:${smtp.port}?requireTLS=false`, BULWARK_MAIL_FROM: "security@bulwark.test",
      ...env,
    },
    mode: "init", clock,
  }).catch(async (error: unknown) => {
    await smtp.close();
    rmSync(root, { recursive: true, force: true });
    throw error;
  });
  const server = await buildServer(app);
  // One known-device cookie for every client of the fixture (AuthFixture.browser).
  const devices: DeviceJar = { cookie: null };
  const transport = await createSMTPTransport(app.config.http.mail!);
  const sender = new OutboxSender({ outbox: app.accounts.outbox, transport, clock, random: app.random }, { name: "test" });
  return {
    app, server, clock, smtp,
    deliver: () => sender.drain(),
    async user(email, options = {}) {
      const password = options.password ?? GOOD_PASSWORD;
      const hash = await app.accounts.passwords.hash(password);
      const user = await app.accounts.users.create({ email, passwordHash: hash, passwordScheme: "argon2id" });
      for (const role of options.roles ?? []) await app.accounts.roles.grant(user.id, role, "test");
      return { id: user.id, email, password };
    },
    browser: (options = {}) => new Browser(server, options.newDevice ? { cookie: null } : devices),
    mailTo(address) {
      return smtp.accepted
        .filter((m) => m.envelopeTo.includes(address))
        .map((mail) => ({ subject: mail.headers.get("subject") ?? "", body: decodeQuotedPrintable(mail.body), mail }));
    },
    async close() {
      await server.close();
      await transport.close();
      await smtp.close();
      await app.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface RequestOptions {
  body?: unknown;
  /** Form-encode the body instead of JSON. */
  form?: boolean;
  headers?: Record<string, string>;
  /** Send this CSRF token as x-csrf-token (true: fetch one from GET /auth/csrf first). */
  csrf?: string | true;
  /** Leave out Origin and Sec-Fetch-Site (a non-browser client, or an old browser). */
  bare?: boolean;
}

/** Where a client keeps its known-device cookie (device-cookie.ts): shared by the clients of one "computer". */
export interface DeviceJar {
  cookie: string | null;
}

/** A cookie-keeping client that behaves like a same-origin page unless told otherwise. */
export class Browser {
  readonly #server: FastifyInstance;
  readonly #device: DeviceJar;
  /** The session cookie value, or null. */
  cookie: string | null = null;

  /** `device`: the known-device cookie's jar; a client made without one is a computer of its own. */
  constructor(server: FastifyInstance, device: DeviceJar = { cookie: null }) {
    this.#server = server;
    this.#device = device;
  }

  async csrf(): Promise<string> {
    const res = await this.request("GET", "/auth/csrf");
    if (res.statusCode !== 200) throw new Error(`GET /auth/csrf answered ${res.statusCode}: ${res.body}`);
    return (res.json() as { token: string }).token;
  }

  async request(method: "GET" | "POST" | "DELETE", url: string, options: RequestOptions = {}): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { host: HOST };
    if (!options.bare) Object.assign(headers, { origin: ORIGIN, "sec-fetch-site": "same-origin" });
    const cookies = [...(this.cookie ? [`${SESSION_COOKIE}=${this.cookie}`] : []), ...(this.#device.cookie ? [`${DEVICE_COOKIE}=${this.#device.cookie}`] : [])];
    if (cookies.length > 0) headers["cookie"] = cookies.join("; ");
    if (options.csrf !== undefined) headers["x-csrf-token"] = options.csrf === true ? await this.csrf() : options.csrf;
    Object.assign(headers, options.headers ?? {});
    let payload: string | undefined;
    if (options.body !== undefined) {
      if (options.form) {
        headers["content-type"] = "application/x-www-form-urlencoded";
        payload = new URLSearchParams(options.body as Record<string, string>).toString();
      } else {
        headers["content-type"] = "application/json";
        payload = JSON.stringify(options.body);
      }
    }
    const res = await this.#server.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
    const set = res.headers["set-cookie"];
    for (const line of Array.isArray(set) ? set : set ? [set] : []) {
      const m = new RegExp(`^${SESSION_COOKIE}=([^;]*)`).exec(line);
      if (m) this.cookie = m[1] ? (m[1] as string) : null;
      const d = new RegExp(`^${DEVICE_COOKIE}=([^;]*)`).exec(line);
      if (d) this.#device.cookie = d[1] ? (d[1] as string) : null;
    }
    return res;
  }

  async login(identifier: string, password: string): Promise<LightMyRequestResponse> {
    return this.request("POST", "/auth/login", { body: { identifier, password } });
  }
}

/** The TOTP code an authenticator app would show at `at` for a base32 secret (RFC 6238, SHA-1, 6 digits, 30 s). */
export function totpCode(secret: string, at: number): string {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: "SHA1" }).generate({ timestamp: at });
}
