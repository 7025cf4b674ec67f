// Small helpers for benchmarks: timing and formatted ratios; and, for the containment benchmarks, a seeded database and
// its identical copy on each dialect (the job runs on one, the direct statements on the other).
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { openApp } from "../src/app/open-app.ts";
import { seedUsers, type SeedOptions } from "../src/dev/seed.ts";
import { openPostgres, openSQLite, type Database } from "../src/store/database.ts";
import { startPostgres } from "../test/helpers/postgres.ts";

export function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export function now(): bigint {
  return process.hrtime.bigint();
}

export function rate(count: number, secs: number): string {
  return `${Math.round(count / secs).toLocaleString("en-US")}/s`;
}

export function line(label: string, value: string, note: string = ""): void {
  process.stdout.write(`${label.padEnd(44)} ${value}${note ? `  (${note})` : ""}\n`);
}

/** CPU seconds of this process so far, every thread included (the libuv pool too): getrusage(RUSAGE_SELF). */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * CPU seconds (user and system) of the calling thread alone: on the server's thread, its event-loop work without the
 * hashing threads or other workers. Linux charges thread time at the scheduler's tick, so it is only meaningful
 * summed over many requests (hundreds), never for one.
 */
export function threadSeconds(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Runs `count` calls of `fn` (given their index) with `limit` in flight; returns the wall time in seconds. */
export async function inFlight(count: number, limit: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t = now();
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) await fn(next++);
  }));
  return seconds(t);
}

/** The nearest-rank percentile `p` (0–100) of values sorted ascending. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/**
 * The median and middle half of per-round ratios, so a reader can tell a difference from run-to-run noise.
 *
 * @example
 * spread([0.93, 0.95, 0.96, 0.97]) // "median 0.96, middle half 0.95–0.97 over 4 rounds"
 */
export function spread(ratios: readonly number[], digits = 2): string {
  if (ratios.length === 0) return "no rounds";
  const sorted = [...ratios].sort((a, b) => a - b);
  const at = (p: number): string => percentile(sorted, p).toFixed(digits);
  return `median ${at(50)}, middle half ${at(25)}–${at(75)} over ${sorted.length} rounds`;
}

/** Where a benchmark's database is: a SQLite file or a PostgreSQL URL (a worker thread can open it too). */
export type Target = { sqlitePath: string } | { databaseURL: string };

/** A private PostgreSQL cluster, or null when PostgreSQL is not installed. */
export type Cluster = Awaited<ReturnType<typeof startPostgres>>;

export async function openTarget(target: Target): Promise<Database> {
  return "sqlitePath" in target ? openSQLite(target.sqlitePath, { create: false }) : openPostgres(target.databaseURL);
}

/** Writes every dirty page of the machine to disk (sync(1)): a measured part then pays for no earlier part's writeback. */
export function settle(): void {
  execFileSync("sync");
}

/**
 * Initialises database "a" in `dir` (SQLite) or `cluster` (PostgreSQL) with `env`, seeds it (`seed`: users, and
 * sessions and tokens per user), and makes "b" an identical copy: the data directory copied, or a template database.
 * Returns the environment that opens "a" through the app, and both targets.
 */
export async function seededTwins(dialect: "sqlite" | "postgres", dir: string, cluster: Cluster, env: NodeJS.ProcessEnv, seed: Pick<SeedOptions, "users" | "sessionsPerUser" | "tokensPerUser">): Promise<{ env: NodeJS.ProcessEnv; a: Target; b: Target }> {
  const dataDir = join(dir, `${dialect}-a`);
  let appEnv: NodeJS.ProcessEnv = { ...env, BULWARK_DATA_DIR: dataDir };
  let urlA = "";
  if (dialect === "postgres") {
    if (!cluster) throw new Error("PostgreSQL is not installed");
    urlA = await cluster.createDatabase("bench_a");
    appEnv = { ...appEnv, BULWARK_DATABASE_URL: urlA };
  }
  const app = await openApp({ env: appEnv, mode: "init", actor: "bench" });
  const t = now();
  const report = await seedUsers({ database: app.db, clock: app.clock, random: app.random, passwords: app.accounts.passwords }, seed);
  line(`[${dialect}] seed`, `${report.users} users, ${report.sessions} sessions, ${report.tokens} tokens`, `${seconds(t).toFixed(1)} s`);
  await app.close();
  if (dialect === "sqlite") {
    cpSync(dataDir, join(dir, "sqlite-b"), { recursive: true });
    return { env: appEnv, a: { sqlitePath: join(dataDir, "bulwark.db") }, b: { sqlitePath: join(dir, "sqlite-b", "bulwark.db") } };
  }
  const c = cluster as NonNullable<Cluster>;
  const admin = new pg.Client({ connectionString: c.url("postgres") });
  await admin.connect();
  await admin.query("CREATE DATABASE bench_b TEMPLATE bench_a");
  await admin.end();
  return { env: appEnv, a: { databaseURL: urlA }, b: { databaseURL: c.url("bench_b") } };
}

/**
 * Runs `run` on SQLite, then on a private PostgreSQL cluster (started with `clusterSettings`), as BULWARK_BENCH_DIALECTS
 * asks (default both), in a temporary directory removed after; says so when PostgreSQL is not installed.
 */
export async function eachDialect(name: string, run: (dialect: "sqlite" | "postgres", dir: string, cluster: Cluster) => Promise<void>, clusterSettings: Record<string, string> = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `bulwark-bench-${name}-`));
  const dialects = (process.env["BULWARK_BENCH_DIALECTS"] ?? "sqlite,postgres").split(",");
  let cluster: Cluster = null;
  try {
    if (dialects.includes("sqlite")) await run("sqlite", dir, null);
    if (dialects.includes("postgres")) {
      cluster = await startPostgres(clusterSettings);
      if (cluster) await run("postgres", dir, cluster);
      else line("[postgres]", "skipped", "PostgreSQL is not installed");
    }
  } finally {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
