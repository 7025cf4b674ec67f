// Passwords benchmark (issue 3), each result a ratio against raw @node-rs/argon2 in the same run:
//   1. login-core verifies/s ÷ raw argon2id verifies/s (aim ≥ 0.95): what the login core adds
//      (flood check, lookup, audit event, flood clear, last-login write) on top of the KDF;
//   2. migrate-hashes throughput on 20,000 legacy users ÷ raw argon2id hashes/s with every core
//      busy (aim ≥ 0.9): what batching, transactions, compare-and-set and audit cost.
// Both use the product's default argon2id (OWASP: m=19456 KiB, t=2, p=1), so the job's ~0.1 ms of
// database work per user is weighed against the hash cost it really runs next to; 20,000 users then
// take a few minutes on two cores. Knobs (env): BENCH_PASSWORDS_USERS (20000),
// BENCH_PASSWORDS_LOGINS (960), BENCH_PASSWORDS_IN_FLIGHT (2 × cores), BENCH_PASSWORDS_MIGRATE_KIB
// and _TIME (a cheaper argon2id for a quick run: the job's own overhead then weighs more, so the
// ratio drops — see docs/password-migration.md).
import type { Algorithm } from "@node-rs/argon2";
import { hash as argon2Hash, verify as argon2Verify } from "@node-rs/argon2";
import { createHash, createSecretKey } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { FloodControl } from "../src/accounts/flood/flood.ts";
import { keyedDigest, keyedFingerprint } from "../src/crypto/tokens.ts";
import { login, type LoginDeps } from "../src/accounts/login/login.ts";
import { JOB_KIND, openMigrationJob, runMigration } from "../src/accounts/migrate-hashes/migrate-hashes.ts";
import { createPasswordContext, DEFAULT_ARGON2_PARAMS, type Argon2Params } from "../src/accounts/passwords/index.ts";
import { createUserStore } from "../src/accounts/users/user-store.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { systemClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { cpuSeconds, inFlight, line, now, rate, seconds, spread } from "./lib.ts";

const USERS = Number(process.env["BENCH_PASSWORDS_USERS"] ?? 20_000);
const LOGINS = Number(process.env["BENCH_PASSWORDS_LOGINS"] ?? 960);
const MIGRATE_PARAMS: Argon2Params = {
  memoryCost: Number(process.env["BENCH_PASSWORDS_MIGRATE_KIB"] ?? DEFAULT_ARGON2_PARAMS.memoryCost),
  timeCost: Number(process.env["BENCH_PASSWORDS_MIGRATE_TIME"] ?? DEFAULT_ARGON2_PARAMS.timeCost),
  parallelism: 1,
};
const CORES = availableParallelism();
// What `bulwark users migrate-hashes` uses by default (src/cli/commands/users.ts).
const IN_FLIGHT = Number(process.env["BENCH_PASSWORDS_IN_FLIGHT"] ?? 2 * CORES);
// The value of @node-rs/argon2's const enum Algorithm.Argon2id (not readable under type stripping).
const ARGON2ID = 2 as Algorithm;
const silent = { warn: (): void => {}, error: (): void => {} };

// CPU seconds of this process spent in `timed` calls, all threads (see cpuSeconds).
let cpuSpent = 0;

/**
 * Runs `count` calls of `fn` with `limit` in flight; returns the wall seconds taken and adds the
 * process CPU seconds to `cpuSpent`. Wall time is the ratio asked for; CPU time is the one that
 * other processes on a shared machine cannot skew.
 */
async function timed(count: number, limit: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const c = cpuSeconds();
  const wall = await inFlight(count, limit, fn);
  cpuSpent += cpuSeconds() - c;
  return wall;
}

/** Runs `fn`, returning the CPU seconds it spent (see timed). */
async function cpuOf(fn: () => Promise<number>): Promise<{ wall: number; cpu: number }> {
  const before = cpuSpent;
  const wall = await fn();
  return { wall, cpu: cpuSpent - before };
}

async function loginBench(database: Database): Promise<void> {
  const passwords = createPasswordContext({ random: systemRandom });
  const users = createUserStore({ database, clock: systemClock, random: systemRandom });
  const audit = new AuditLog({ database, clock: systemClock, random: systemRandom });
  // Keyed as the app keys it (Keyring.floodKey: HMAC-SHA256 under a KeyObject made once), so the cost is the same.
  const floodKey = createSecretKey(systemRandom.bytes(32));
  const flood = new FloodControl({ database, clock: systemClock, keyOf: (text) => keyedDigest(floodKey, text) });
  const tagKey = systemRandom.bytes(32);
  const deps: LoginDeps = { users, passwords, flood, audit, logger: silent, tag: (text) => keyedFingerprint(tagKey, text) };
  // One account per concurrent caller, each with its own OWASP-profile argon2id hash.
  const accounts: Array<{ email: string; password: string; hash: string }> = [];
  for (let i = 0; i < IN_FLIGHT; i++) {
    const password = `bench password number ${i}`;
    const hash = await passwords.hash(password);
    await users.create({ email: `login${i}@example.org`, passwordHash: hash, passwordScheme: "argon2id" });
    accounts.push({ email: `login${i}@example.org`, password, hash });
  }
  const rawRound = (n: number): Promise<number> => timed(n, IN_FLIGHT, async (i) => {
    const a = accounts[i % accounts.length]!;
    if (!(await argon2Verify(a.hash, a.password))) throw new Error("raw verify failed");
  });
  const loginRound = (n: number): Promise<number> => timed(n, IN_FLIGHT, async (i) => {
    const a = accounts[i % accounts.length]!;
    const r = await login(deps, { identifier: a.email, password: a.password, ip: `198.51.100.${i % 200}`, userAgent: "bench" });
    if (r.outcome !== "success") throw new Error(`login failed: ${r.outcome}`);
  });
  await rawRound(IN_FLIGHT * 2);
  await loginRound(IN_FLIGHT * 2);
  // Alternate rounds so machine noise hits both paths alike.
  let raw = 0;
  let core = 0;
  let rawCpu = 0;
  let coreCpu = 0;
  // Many short alternating rounds: a burst of load from elsewhere lands on both sides.
  const rounds = 16;
  const perRound: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const r1 = await cpuOf(() => rawRound(LOGINS / rounds));
    const r2 = await cpuOf(() => loginRound(LOGINS / rounds));
    perRound.push(r1.wall / r2.wall);
    raw += r1.wall;
    rawCpu += r1.cpu;
    core += r2.wall;
    coreCpu += r2.cpu;
  }
  const p = DEFAULT_ARGON2_PARAMS;
  line(`raw argon2id verify, m=${p.memoryCost},t=${p.timeCost} (reference)`, rate(LOGINS, raw), `${IN_FLIGHT} in flight`);
  line("login core: successful login()", rate(LOGINS, core), "flood, lookup, verify, audit");
  line("login ratio (login core / raw verify)", (raw / core).toFixed(3), "aim >= 0.95");
  line("  same, per CPU second (load-independent)", (rawCpu / coreCpu).toFixed(3));
  line("  per round (adjacent pairs)", spread(perRound, 3));
}

async function migrateBench(database: Database): Promise<void> {
  const passwords = createPasswordContext({ random: systemRandom, argon2: MIGRATE_PARAMS });
  const users = createUserStore({ database, clock: systemClock, random: systemRandom });
  const audit = new AuditLog({ database, clock: systemClock, random: systemRandom });
  const jobs = new JobStore({ database, clock: systemClock, random: systemRandom });
  // 20,000 SourceLair-style unsalted MD5 accounts, written straight in (the import is not measured).
  const t0 = now();
  for (let done = 0; done < USERS; ) {
    const n = Math.min(5000, USERS - done);
    await database.transaction(async (trx) => {
      for (let i = done; i < done + n; i++) {
        const row = users.prepare({ email: `legacy${i}@example.org`, passwordHash: createHash("md5").update(`legacy ${i}`).digest("hex"), passwordScheme: "md5" });
        await trx.insertInto("users").values(row).execute();
      }
    });
    done += n;
  }
  line("setup: legacy MD5 users inserted", USERS.toLocaleString("en-US"), `${seconds(t0).toFixed(1)} s`);

  // The job runs in segments of SEGMENT batches (resumed, as after a maintenance-window stop), each
  // followed by a raw round a fifth its size: both sample the whole run, so load drift (other
  // processes on the machine) hits both sides alike. Stopping and resuming drains the pipeline at
  // each segment end, which only counts against the job.
  const BATCH = 200;
  const SEGMENT = 5;
  const rawPerSegment = (BATCH * SEGMENT) / 5;
  let rawHashes = 0;
  const rawRound = (n: number): Promise<number> => timed(n, IN_FLIGHT, (i) => argon2Hash(createHash("md5").update(`legacy ${rawHashes + i}`).digest("hex"), { ...MIGRATE_PARAMS, algorithm: ARGON2ID, outputLen: 32, salt: systemRandom.bytes(16) }));
  await timed(IN_FLIGHT * 2, IN_FLIGHT, (i) => argon2Hash(`warm ${i}`, { ...MIGRATE_PARAMS, algorithm: ARGON2ID }));
  const deps = { database, passwords, users, jobs, audit };
  let { job } = await openMigrationJob(deps, { actor: "bench", batch: BATCH });
  let rawSecs = 0;
  let migrateSecs = 0;
  let rawCpu = 0;
  let migrateCpu = 0;
  while (job.status !== "done") {
    const t = now();
    const c = cpuSeconds();
    job = await runMigration(deps, job, { actor: "bench", concurrency: IN_FLIGHT, maxBatches: SEGMENT });
    migrateSecs += seconds(t);
    migrateCpu += cpuSeconds() - c;
    const r = await cpuOf(() => rawRound(rawPerSegment));
    rawSecs += r.wall;
    rawCpu += r.cpu;
    rawHashes += rawPerSegment;
  }
  if (job.kind !== JOB_KIND || job.counts["wrapped"] !== USERS) throw new Error(`migration wrapped ${job.counts["wrapped"]} of ${USERS}`);
  const rawRate = rawHashes / rawSecs;
  const jobRate = USERS / migrateSecs;
  const m = MIGRATE_PARAMS;
  line(`raw argon2id hash, m=${m.memoryCost},t=${m.timeCost} (reference)`, `${Math.round(rawRate).toLocaleString("en-US")}/s`, `${IN_FLIGHT} in flight on ${CORES} cores`);
  line(`migrate-hashes, ${USERS.toLocaleString("en-US")} users, batch ${BATCH}`, rate(USERS, migrateSecs), `${migrateSecs.toFixed(1)} s in segments of ${SEGMENT} batches`);
  line("migrate ratio (job / raw hash)", (jobRate / rawRate).toFixed(3), "aim >= 0.9");
  line("  same, per CPU second (load-independent)", ((USERS / migrateCpu) / (rawHashes / rawCpu)).toFixed(3));
}

export default async function bench(): Promise<void> {
  line("cores / libuv pool", `${CORES} / ${process.env["UV_THREADPOOL_SIZE"] ?? "4 (default)"}`);
  const dir = mkdtempSync(join(tmpdir(), "bulwark-bench-passwords-"));
  try {
    const database = openSQLite(join(dir, "bench.db"), { create: true });
    await migrate(database, systemClock);
    await loginBench(database);
    await migrateBench(database);
    await database.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
