// HTTP account benchmark (`npm run bench -- http`), every figure against a reference measured in the same run:
// - logins/s over real HTTP ÷ raw argon2id verifies/s (aim ≥ 0.9: the HTTP layer adds little to the hash);
// - p50 / p99 of GET /auth/session with a valid cookie, and their ratio to a bare Fastify route;
// - median unknown-account login time ÷ median wrong-password time (aim 0.9–1.1: no timing enumeration);
// - median reset-request time for an unknown address ÷ a known one (aim 0.9–1.1: the same work either way);
// - median sign-up time for a taken address ÷ a free one (aim 0.9–1.1).
// The HTTP client runs in a worker thread (this same file, see runClient): keep-alive connections writing requests
// encoded beforehand (as wrk does), so its CPU is not spent on the server's event loop and as little as possible of
// the cores it shares with the server; the output says it shares them.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import Fastify from "fastify";
import { deviceCookieFor, SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { openApp } from "../src/app/index.ts";
import { runServer } from "../src/http/run-server.ts";
import { cpuSeconds, inFlight, threadSeconds, line, median, now, percentile, rate, seconds, spread } from "./lib.ts";

// Enough logins that a GC cycle or a burst of load from elsewhere landing in one round does not decide the ratio,
// and rounds long enough that filling and draining the pipeline at each end weighs little.
const LOGINS = Number(process.env["BENCH_HTTP_LOGINS"] ?? 480);
const SESSION_GETS = Number(process.env["BENCH_HTTP_GETS"] ?? 3000);
const ENUM_PAIRS = Number(process.env["BENCH_HTTP_ENUM"] ?? 40);
/**
 * Pairs for the reset-request and sign-up comparisons. These requests take ~2 ms, so their medians over 40 pairs
 * moved by ±15% from run to run (a GC pause or a checkpoint landing on a few of them); 300 pairs cost ~2 s.
 */
const CHEAP_PAIRS = Number(process.env["BENCH_HTTP_CHEAP_PAIRS"] ?? 300);
const PASSWORD = "violet kettle drums at dawn";
/**
 * Requests (and raw verifies) in flight at once, the same on both sides: twice the cores, as in the passwords bench,
 * so that throughput is measured with the machine busy rather than with cores idling between one request and the
 * next (raw verifies are faster at this depth than at one per core, so the reference does not get weaker).
 */
const CONCURRENCY = Number(process.env["BENCH_HTTP_CONCURRENCY"] ?? 2 * availableParallelism());

let ipCounter = 0;
/**
 * A fresh client address per failing login, reset request or sign-up (via X-Forwarded-For), so neither flood
 * control's per-IP limit nor the per-address limit on mail-sending requests kicks in.
 */
function nextIP(): string {
  ipCounter++;
  return `198.18.${(ipCounter >> 8) & 255}.${ipCounter & 255}`;
}


/** One request the client worker sends. */
interface ClientRequest {
  method: "GET" | "POST";
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** What the worker measured for one request: status, client-side latency, the session cookie set if any. */
interface ClientResult {
  status: number;
  ms: number;
  cookie: string;
}

/** A batch for the worker: sent `concurrency` at a time, in order; answers the wall time and each result. */
interface ClientJob {
  requests: ClientRequest[];
  concurrency: number;
}

const CLIENT_ROLE = "bulwark-bench-http-client";

/** Lifts the status, the first Set-Cookie pair and the body length out of a response head. */
function parseHead(head: string): { status: number; cookie: string; length: number } {
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(head);
  if (!status) throw new Error(`bench client: not an HTTP/1.1 response: ${JSON.stringify(head.slice(0, 40))}`);
  if (/\r\ntransfer-encoding:/i.test(head)) throw new Error("bench client: chunked responses are not read; every route here sends content-length");
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  const cookie = /\r\nset-cookie: *([^;\r]*)/i.exec(head);
  return { status: Number(status[1]), cookie: cookie?.[1] ?? "", length: length ? Number(length[1]) : 0 };
}

/**
 * One keep-alive connection of the load generator: writes a request encoded beforehand and reads the answer by
 * its Content-Length, the way wrk does, so the client spends as little as it can of the cores it shares with the
 * server (node:http's client cost ~0.4 ms more CPU per request here, a cost a remote client would not put on the server).
 */
class Connection {
  readonly #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: { resolve: (r: ClientResult) => void; reject: (e: Error) => void; start: bigint } | null = null;
  /** Set once the socket is gone (an idle keep-alive connection the server timed out, say): open a new one. */
  closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#read(chunk));
    const fail = (error: Error): void => {
      const w = this.#waiting;
      this.#waiting = null;
      w?.reject(error);
    };
    socket.on("error", fail);
    socket.on("close", () => {
      this.closed = true;
      fail(new Error("bench client: the server closed the connection"));
    });
  }

  static open(host: string, port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => {
        socket.off("error", reject);
        resolve(new Connection(socket));
      });
      socket.once("error", reject);
    });
  }

  send(request: Buffer): Promise<ClientResult> {
    if (this.#waiting) return Promise.reject(new Error("bench client: one request at a time per connection"));
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject, start: now() };
      this.#socket.write(request);
    });
  }

  #read(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const end = this.#buffer.indexOf("\r\n\r\n");
    if (end < 0 || !this.#waiting) return;
    let head: { status: number; cookie: string; length: number };
    try {
      head = parseHead(this.#buffer.subarray(0, end).toString("latin1"));
    } catch (error) {
      const w = this.#waiting;
      this.#waiting = null;
      w.reject(error as Error);
      return;
    }
    if (this.#buffer.length < end + 4 + head.length) return;
    this.#buffer = this.#buffer.subarray(end + 4 + head.length);
    const w = this.#waiting;
    this.#waiting = null;
    w.resolve({ status: head.status, ms: seconds(w.start) * 1000, cookie: head.cookie });
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** A request encoded as HTTP/1.1 bytes once, before it is timed, with the origin it goes to. */
interface Encoded {
  origin: string;
  host: string;
  port: number;
  bytes: Buffer;
}

function encode(r: ClientRequest): Encoded {
  const url = new URL(r.url);
  const body = r.body === undefined ? null : Buffer.from(r.body);
  let head = `${r.method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(r.headers)) head += `${name}: ${value}\r\n`;
  if (body) head += `content-length: ${body.length}\r\n`;
  const bytes = Buffer.from(`${head}\r\n`, "latin1");
  return { origin: url.host, host: url.hostname, port: Number(url.port), bytes: body ? Buffer.concat([bytes, body]) : bytes };
}

/** Worker side: lanes of keep-alive connections (one per lane and origin) sending pre-encoded requests. */
function runClient(): void {
  const pools = new Map<string, Connection[]>();
  const connection = async (lane: number, e: Encoded): Promise<Connection> => {
    let pool = pools.get(e.origin);
    if (!pool) pools.set(e.origin, (pool = []));
    const open = pool[lane];
    if (open && !open.closed) return open;
    return (pool[lane] = await Connection.open(e.host, e.port));
  };
  parentPort?.on("message", (job: ClientJob | "close") => {
    if (job === "close") {
      for (const pool of pools.values()) for (const c of pool) c.close();
      parentPort?.close();
      return;
    }
    void (async () => {
      const encoded = job.requests.map(encode);
      const results: ClientResult[] = new Array(job.requests.length);
      // Connections are opened before the clock starts, like the keep-alive sockets of a running client.
      const origins = [...new Map(encoded.map((e) => [e.origin, e])).values()];
      for (let lane = 0; lane < job.concurrency; lane++) for (const e of origins) await connection(lane, e);
      let next = 0;
      const t = now();
      await Promise.all(Array.from({ length: job.concurrency }, async (_, lane) => {
        while (next < encoded.length) {
          const i = next++;
          const e = encoded[i]!;
          results[i] = await (await connection(lane, e)).send(e.bytes);
        }
      }));
      parentPort?.postMessage({ seconds: seconds(t), results });
    })().catch((error: unknown) => parentPort?.postMessage({ error: String((error as Error).stack ?? error) }));
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === CLIENT_ROLE) runClient();

/** Main side of the client worker: posts a batch and waits for its measurements. */
class Client {
  readonly #worker = new Worker(new URL(import.meta.url), { workerData: { role: CLIENT_ROLE }, execArgv: [...process.execArgv, "--disable-warning=ExperimentalWarning"] });

  run(requests: ClientRequest[], concurrency: number): Promise<{ seconds: number; results: ClientResult[] }> {
    return new Promise((resolve, reject) => {
      const failed = (error: Error): void => reject(error);
      this.#worker.once("error", failed);
      this.#worker.once("message", (m: { seconds: number; results: ClientResult[] } | { error: string }) => {
        this.#worker.off("error", failed);
        if ("error" in m) reject(new Error(`bench client: ${m.error}`));
        else resolve(m);
      });
      this.#worker.postMessage({ requests, concurrency } satisfies ClientJob);
    });
  }

  async close(): Promise<void> {
    this.#worker.postMessage("close");
    await new Promise((resolve) => this.#worker.once("exit", resolve));
  }
}

export default async function bench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-bench-http-"));
  const app = await openApp({ env: { BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_PUBLIC_URL: "http://127.0.0.1", HOST: "127.0.0.1", PORT: "0", BULWARK_REGISTRATION: "open",
    // Every lane in flight must fit the password-work gate, even a client's quarter share of it (no 503 is measured).
    BULWARK_PASSWORD_CHECKS_IN_FLIGHT: String(Math.max(32, 4 * CONCURRENCY)) }, mode: "init" });
  // The server as `bulwark start` runs it (WAL checkpoints in a worker, the mail runner, maintenance), on a free
  // loopback port. trustProxy: the benchmark varies the client address with X-Forwarded-For (see nextIP).
  const running = await runServer(app, { trustProxy: true }).catch(async (error: unknown) => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  });
  const bare = Fastify();
  bare.get("/bare", async () => ({ authenticated: false }));
  // The transport floor: the same verify behind a bare Fastify route, with none of the login's work around it.
  let bareHash = "";
  bare.post("/bare/verify", async () => {
    if (!(await app.accounts.passwords.verify(PASSWORD, bareHash))) throw new Error("verify failed");
    return { ok: true };
  });
  const client = new Client();
  try {
    const base = running.url;
    const bareBase = await bare.listen({ host: "127.0.0.1", port: 0 });
    const hash = await app.accounts.passwords.hash(PASSWORD);
    bareHash = hash;
    const user = await app.accounts.users.create({ email: "bench@example.org", passwordHash: hash, passwordScheme: "argon2id" });
    const victims: string[] = [];
    for (let i = 0; i < Math.max(ENUM_PAIRS, CHEAP_PAIRS); i++) {
      victims.push((await app.accounts.users.create({ email: `victim${i}@example.org`, passwordHash: hash, passwordScheme: "argon2id" })).email);
    }
    // The measured logins come from a browser that signed in before (its known-device cookie, device-cookie.ts), as a
    // returning user's do; a first sign-in from a new browser also queues the owner's notice (at most one an hour).
    const knownBrowser = deviceCookieFor(null, { id: user.id, passwordChangedAt: user.passwordChangedAt }, (text) => app.keyring.deviceTag(text), () => randomBytes(16).toString("base64url")).split(";")[0] as string;
    const login = (identifier: string, password: string, ip: string): ClientRequest =>
      ({ method: "POST", url: `${base}/auth/login`, headers: { "content-type": "application/json", "x-forwarded-for": ip, cookie: knownBrowser }, body: JSON.stringify({ identifier, password }) });

    // 1. Logins over HTTP against raw verifies, in alternating rounds so machine noise hits both alike.
    const verifyRound = (n: number): Promise<number> =>
      inFlight(n, CONCURRENCY, async () => {
        if (!(await app.accounts.passwords.verify(PASSWORD, hash))) throw new Error("verify failed");
      });
    /** Sends `request` n times with CONCURRENCY in flight; every answer must be 200. */
    const httpRound = async (what: string, request: ClientRequest, n: number): Promise<{ wall: number; results: ClientResult[] }> => {
      const { seconds: wall, results } = await client.run(Array.from({ length: n }, () => request), CONCURRENCY);
      for (const r of results) if (r.status !== 200) throw new Error(`${what} answered ${r.status}`);
      return { wall, results };
    };
    let cookie = "";
    const loginRound = async (n: number): Promise<number> => {
      const { wall, results } = await httpRound("login", login(user.email, PASSWORD, "198.19.0.1"), n);
      cookie = results.at(-1)?.cookie ?? "";
      return wall;
    };
    const bareVerify: ClientRequest = { method: "POST", url: `${bareBase}/bare/verify`, headers: { "content-type": "application/json" }, body: "{}" };
    const bareRound = async (n: number): Promise<number> => (await httpRound("bare verify route", bareVerify, n)).wall;
    await verifyRound(3);
    await bareRound(3);
    await loginRound(3);
    // The measured logins must be a returning browser's: a cookie the server no longer recognises (its tag made with
    // another key) makes every login a new device's, with a notice queued each hour and more work, and the ratio
    // measures something else (it once did, silently, after the device tags moved to a key of their own).
    const warm = await app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.login.succeeded").where("subject", "=", user.id).orderBy("seq", "desc").executeTakeFirst();
    if (warm === undefined || JSON.parse(warm.data).newDevice !== false) throw new Error("bench: the known-browser cookie was not recognised by the server (deviceCookieFor's tagger must be Keyring.deviceTag)");
    let verifyTime = 0;
    let bareTime = 0;
    let loginTime = 0;
    // CPU seconds of the whole process (server, client worker, hashing threads) per side: a figure that load
    // from other processes on a shared machine cannot skew, and that shows what each login costs beyond its hash.
    let verifyCPU = 0;
    let bareCPU = 0;
    let loginCPU = 0;
    const rounds = 8;
    const perRound: number[] = [];
    // The server's own thread (the event loop: routing, the login's SQL and checks, but neither the hashing threads
    // nor the client worker), per side: where the login's work beyond the hash is spent.
    const thread = { verify: 0, bare: 0, login: 0 };
    for (let r = 0; r < rounds; r++) {
      let c = cpuSeconds();
      let t = threadSeconds();
      const verifyWall = await verifyRound(LOGINS / rounds);
      verifyCPU += cpuSeconds() - c;
      thread.verify += threadSeconds() - t;
      c = cpuSeconds();
      t = threadSeconds();
      bareTime += await bareRound(LOGINS / rounds);
      bareCPU += cpuSeconds() - c;
      thread.bare += threadSeconds() - t;
      c = cpuSeconds();
      t = threadSeconds();
      const loginWall = await loginRound(LOGINS / rounds);
      loginCPU += cpuSeconds() - c;
      thread.login += threadSeconds() - t;
      verifyTime += verifyWall;
      loginTime += loginWall;
      perRound.push(verifyWall / loginWall);
    }
    const cores = availableParallelism();
    line("client", "keep-alive sockets, pre-encoded requests, worker thread", `server, client and hashing threads share ${cores} cores`);
    line("raw argon2id verify (reference)", rate(LOGINS, verifyTime), `${CONCURRENCY} in flight`);
    line("POST to a bare route that only verifies", rate(LOGINS, bareTime), `${CONCURRENCY} requests in flight; the transport floor`);
    line("POST /auth/login over HTTP", rate(LOGINS, loginTime), `${CONCURRENCY} requests in flight`);
    line("login ratio (HTTP logins / raw verifies)", (verifyTime / loginTime).toFixed(2), "aim >= 0.9");
    line("  same, per CPU second (load-independent)", (verifyCPU / loginCPU).toFixed(2),
      `${((1000 * verifyCPU) / LOGINS).toFixed(1)} ms per verify, ${((1000 * loginCPU) / LOGINS).toFixed(1)} ms per login`);
    line("  bare verify route / raw verifies", (verifyTime / bareTime).toFixed(2),
      `per CPU second ${(verifyCPU / bareCPU).toFixed(2)}: HTTP and the client alone`);
    line("  logins / bare verify route", (bareTime / loginTime).toFixed(2),
      `per CPU second ${(bareCPU / loginCPU).toFixed(2)}: what the login's own work costs`);
    line("  login ratio per round (adjacent pairs)", spread(perRound));
    const perRequest = (seconds: number): string => `${((1000 * seconds) / LOGINS).toFixed(2)} ms`;
    line("  server thread per request", `${perRequest(thread.login)} login`,
      `${perRequest(thread.bare)} bare verify route, ${perRequest(thread.verify)} raw verify`);

    // 2. GET /auth/session with a valid cookie against a bare Fastify route, latencies per request (one at a time).
    if (!cookie.startsWith(`${SESSION_COOKIE}=`)) throw new Error("no session cookie from login");
    const timeGets = async (url: string, headers: Record<string, string>, n: number): Promise<number[]> => {
      const { results } = await client.run(Array.from({ length: n }, () => ({ method: "GET", url, headers }) as const), 1);
      for (const r of results) if (r.status !== 200) throw new Error(`${url} answered ${r.status}`);
      return results.map((r) => r.ms);
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

    // 3. Unknown account against wrong password, interleaved, one at a time; each attempt from a fresh address and account.
    const attempts: ClientRequest[] = [];
    for (let i = 0; i < ENUM_PAIRS; i++) {
      attempts.push(login(`nobody${i}@example.org`, "not the password at all", nextIP()), login(victims[i] as string, "not the password at all", nextIP()));
    }
    const failures = (await client.run(attempts, 1)).results;
    for (const r of failures) if (r.status !== 401) throw new Error(`failed login answered ${r.status}`);
    const mu = median(failures.filter((_, i) => i % 2 === 0).map((r) => r.ms));
    const mw = median(failures.filter((_, i) => i % 2 === 1).map((r) => r.ms));
    line("median login, unknown account", `${mu.toFixed(2)} ms`);
    line("median login, wrong password", `${mw.toFixed(2)} ms`);
    line("unknown ÷ wrong-password median", (mu / mw).toFixed(2), "aim 0.9-1.1");

    // 4. Reset requests: an unknown address against a known one (each known account asked once, so every
    // known request takes the real path — a link and a queued mail — not the hourly limit's).
    const reset = (email: string): ClientRequest =>
      ({ method: "POST", url: `${base}/auth/password/reset/request`, headers: { "content-type": "application/json", "x-forwarded-for": nextIP() }, body: JSON.stringify({ email }) });
    await client.run(Array.from({ length: 20 }, (_, i) => reset(`warm${i}@example.org`)), 1);
    const resets: ClientRequest[] = [];
    for (let i = 0; i < CHEAP_PAIRS; i++) resets.push(reset(`nobody${i}@example.org`), reset(victims[i] as string));
    const resetResults = (await client.run(resets, 1)).results;
    for (const r of resetResults) if (r.status !== 202) throw new Error(`reset request answered ${r.status}`);
    const resetUnknown = resetResults.filter((_, i) => i % 2 === 0).map((r) => r.ms);
    const resetKnown = resetResults.filter((_, i) => i % 2 === 1).map((r) => r.ms);
    const queuedResets = await app.db.db.selectFrom("password_reset_tokens").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    if (Number(queuedResets.n) !== CHEAP_PAIRS) throw new Error(`expected ${CHEAP_PAIRS} reset links, found ${queuedResets.n}`);
    const ru = median(resetUnknown);
    const rk = median(resetKnown);
    line("median reset request, unknown address", `${ru.toFixed(3)} ms`);
    line("median reset request, known address", `${rk.toFixed(3)} ms`);
    line("reset request unknown ÷ known median", (ru / rk).toFixed(2), "aim 0.9-1.1");

    // 5. Sign-ups: a free address (a new account and its link) against a taken one (a reset link, and a throw-away
    // account made and deleted so the insert costs the same), interleaved, one at a time, each address asked once.
    const register = (email: string): ClientRequest =>
      ({ method: "POST", url: `${base}/auth/register`, headers: { "content-type": "application/json", "x-forwarded-for": nextIP() }, body: JSON.stringify({ email }) });
    await client.run(Array.from({ length: 20 }, (_, i) => register(`warm-register${i}@example.org`)), 1);
    const signUps: ClientRequest[] = [];
    for (let i = 0; i < CHEAP_PAIRS; i++) signUps.push(register(`newcomer${i}@example.org`), register(`victim${i}@example.org`));
    const signUpResults = (await client.run(signUps, 1)).results;
    for (const r of signUpResults) if (r.status !== 202) throw new Error(`sign-up answered ${r.status}`);
    const sf = median(signUpResults.filter((_, i) => i % 2 === 0).map((r) => r.ms));
    const st = median(signUpResults.filter((_, i) => i % 2 === 1).map((r) => r.ms));
    line("median sign-up, free address", `${sf.toFixed(3)} ms`);
    line("median sign-up, taken address", `${st.toFixed(3)} ms`);
    line("sign-up taken ÷ free median", (st / sf).toFixed(2), "aim 0.9-1.1");
  } finally {
    await client.close();
    await running.close("bench finished");
    await bare.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
