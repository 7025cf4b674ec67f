// HTTP account benchmark (`npm run bench -- http`), every figure against a reference measured in the same run:
// - logins/s over real HTTP ÷ raw argon2id verifies/s (aim ≥ 0.9: the HTTP layer adds little to the hash);
// - p50 / p99 of GET /auth/session with a valid cookie, and their ratio to a bare Fastify route;
// - median unknown-account login time ÷ median wrong-password time (aim 0.9–1.1: no timing enumeration);
// - median reset-request time for an unknown address ÷ a known one (aim 0.9–1.1: the same work either way).
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { openApp } from "../src/app/index.ts";
import { buildServer } from "../src/http/server.ts";
import { line, now, rate, seconds } from "./lib.ts";

const LOGINS = Number(process.env["BENCH_HTTP_LOGINS"] ?? 60);
const SESSION_GETS = Number(process.env["BENCH_HTTP_GETS"] ?? 3000);
const ENUM_PAIRS = Number(process.env["BENCH_HTTP_ENUM"] ?? 40);
const PASSWORD = "violet kettle drums at dawn";
/** Requests (and raw verifies) in flight at once: a server hashes on several threads, so both sides get the same. */
const CONCURRENCY = Number(process.env["BENCH_HTTP_CONCURRENCY"] ?? Math.min(4, availableParallelism()));

/** Runs `n` calls of `fn` with CONCURRENCY in flight; returns the wall time in seconds. */
async function parallel(n: number, fn: () => Promise<void>): Promise<number> {
  let left = n;
  const t = now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (left > 0) {
      left--;
      await fn();
    }
  }));
  return seconds(t);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

let ipCounter = 0;
/** A fresh client address per failing request (via X-Forwarded-For), so flood control's per-IP limit never kicks in. */
function nextIP(): string {
  ipCounter++;
  return `198.18.${(ipCounter >> 8) & 255}.${ipCounter & 255}`;
}

export default async function bench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-bench-http-"));
  const app = await openApp({ env: { BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_PUBLIC_URL: "http://127.0.0.1" }, mode: "init" });
  // trustProxy: the benchmark varies the client address with X-Forwarded-For (see nextIP).
  const server = await buildServer(app, { trustProxy: true });
  const bare = Fastify();
  bare.get("/bare", async () => ({ authenticated: false }));
  try {
    const base = await server.listen({ host: "127.0.0.1", port: 0 });
    const bareBase = await bare.listen({ host: "127.0.0.1", port: 0 });
    const hash = await app.accounts.passwords.hash(PASSWORD);
    const user = await app.accounts.users.create({ email: "bench@example.org", passwordHash: hash, passwordScheme: "argon2id" });
    const victims: string[] = [];
    for (let i = 0; i < ENUM_PAIRS; i++) {
      victims.push((await app.accounts.users.create({ email: `victim${i}@example.org`, passwordHash: hash, passwordScheme: "argon2id" })).email);
    }
    const post = (identifier: string, password: string, ip: string): Promise<Response> =>
      fetch(`${base}/auth/login`, { method: "POST", headers: { "content-type": "application/json", "x-forwarded-for": ip }, body: JSON.stringify({ identifier, password }) });

    // 1. Logins over HTTP against raw verifies, in alternating rounds so machine noise hits both alike.
    const verifyRound = (n: number): Promise<number> =>
      parallel(n, async () => {
        if (!(await app.accounts.passwords.verify(PASSWORD, hash))) throw new Error("verify failed");
      });
    let cookie = "";
    const loginRound = (n: number): Promise<number> =>
      parallel(n, async () => {
        const res = await post(user.email, PASSWORD, "198.19.0.1");
        if (res.status !== 200) throw new Error(`login answered ${res.status}: ${await res.text()}`);
        cookie = /^([^;]+)/.exec(res.headers.get("set-cookie") ?? "")?.[1] ?? "";
        await res.arrayBuffer();
      });
    await verifyRound(3);
    await loginRound(3);
    let verifyTime = 0;
    let loginTime = 0;
    const rounds = 4;
    for (let r = 0; r < rounds; r++) {
      verifyTime += await verifyRound(LOGINS / rounds);
      loginTime += await loginRound(LOGINS / rounds);
    }
    line("raw argon2id verify (reference)", rate(LOGINS, verifyTime), `${CONCURRENCY} in flight`);
    line("POST /auth/login over HTTP", rate(LOGINS, loginTime), `${CONCURRENCY} in flight`);
    line("login ratio (HTTP logins / raw verifies)", (verifyTime / loginTime).toFixed(2), "aim >= 0.9");

    // 2. GET /auth/session with a valid cookie against a bare Fastify route, latencies per request.
    if (!cookie.startsWith(`${SESSION_COOKIE}=`)) throw new Error("no session cookie from login");
    const timeGets = async (url: string, headers: Record<string, string>, n: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = now();
        const res = await fetch(url, { headers });
        await res.arrayBuffer();
        out.push(seconds(t) * 1000);
        if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
      }
      return out;
    };
    await timeGets(`${base}/auth/session`, { cookie }, 200);
    await timeGets(`${bareBase}/bare`, {}, 200);
    const session: number[] = [];
    const reference: number[] = [];
    for (let r = 0; r < 5; r++) {
      session.push(...(await timeGets(`${base}/auth/session`, { cookie }, SESSION_GETS / 5)));
      reference.push(...(await timeGets(`${bareBase}/bare`, {}, SESSION_GETS / 5)));
    }
    session.sort((a, b) => a - b);
    reference.sort((a, b) => a - b);
    const [s50, s99, b50, b99] = [percentile(session, 50), percentile(session, 99), percentile(reference, 50), percentile(reference, 99)];
    line("GET /bare (bare Fastify) p50 / p99", `${b50.toFixed(3)} ms / ${b99.toFixed(3)} ms`);
    line("GET /auth/session (valid cookie) p50 / p99", `${s50.toFixed(3)} ms / ${s99.toFixed(3)} ms`);
    line("session ÷ bare, p50 / p99", `${(s50 / b50).toFixed(2)} / ${(s99 / b99).toFixed(2)}`);

    // 3. Unknown account against wrong password, interleaved; each attempt from a fresh address and account.
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < ENUM_PAIRS; i++) {
      for (const [list, identifier] of [[unknown, `nobody${i}@example.org`], [wrong, victims[i] as string]] as const) {
        const t = now();
        const res = await post(identifier, "not the password at all", nextIP());
        await res.arrayBuffer();
        list.push(seconds(t) * 1000);
        if (res.status !== 401) throw new Error(`failed login answered ${res.status}`);
      }
    }
    const mu = median(unknown);
    const mw = median(wrong);
    line("median login, unknown account", `${mu.toFixed(2)} ms`);
    line("median login, wrong password", `${mw.toFixed(2)} ms`);
    line("unknown ÷ wrong-password median", (mu / mw).toFixed(2), "aim 0.9-1.1");

    // 4. Reset requests: an unknown address against a known one (each known account asked once, so every
    // known request takes the real path — a link and a queued mail — not the hourly limit's).
    const reset = (email: string): Promise<Response> =>
      fetch(`${base}/auth/password/reset/request`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email }) });
    for (let i = 0; i < 20; i++) await (await reset(`warm${i}@example.org`)).arrayBuffer();
    const resetUnknown: number[] = [];
    const resetKnown: number[] = [];
    for (let i = 0; i < ENUM_PAIRS; i++) {
      for (const [list, email] of [[resetUnknown, `nobody${i}@example.org`], [resetKnown, victims[i] as string]] as const) {
        const t = now();
        const res = await reset(email);
        await res.arrayBuffer();
        list.push(seconds(t) * 1000);
        if (res.status !== 202) throw new Error(`reset request answered ${res.status}`);
      }
    }
    const queuedResets = await app.db.db.selectFrom("password_reset_tokens").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    if (Number(queuedResets.n) !== ENUM_PAIRS) throw new Error(`expected ${ENUM_PAIRS} reset links, found ${queuedResets.n}`);
    const ru = median(resetUnknown);
    const rk = median(resetKnown);
    line("median reset request, unknown address", `${ru.toFixed(3)} ms`);
    line("median reset request, known address", `${rk.toFixed(3)} ms`);
    line("reset request unknown ÷ known median", (ru / rk).toFixed(2), "aim 0.9-1.1");
  } finally {
    await server.close();
    await bare.close();
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
