// Starts a private PostgreSQL cluster for a test file: initdb into a temp dir, Unix socket only (no TCP),
// torn down afterwards. Returns null — after saying so loudly — when the binaries are missing.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

export interface PgCluster {
  /** A URL for database `name` over the cluster's socket. */
  url(name: string): string;
  /** Creates a fresh database (a copy of `template` when given: no connection may be open to it) and returns its URL. */
  createDatabase(name: string, template?: string): Promise<string>;
  /** Creates a fresh schema in the shared database and returns a URL whose search_path is that schema (much faster). */
  createSchema(name: string): Promise<string>;
  stop(): Promise<void>;
}

function findBinDir(): string | null {
  const candidates: string[] = [];
  if (process.env["BULWARK_PG_BINDIR"]) candidates.push(process.env["BULWARK_PG_BINDIR"]);
  try {
    candidates.push(execFileSync("pg_config", ["--bindir"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
  } catch {
    // pg_config is optional
  }
  if (existsSync("/usr/lib/postgresql")) {
    const versions = readdirSync("/usr/lib/postgresql").filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  }
  return candidates.find((d) => existsSync(join(d, "initdb")) && existsSync(join(d, "postgres"))) ?? null;
}

function postgresUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null; // not root: run as ourselves
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

let warned = false;
function warnMissing(why: string): null {
  if (!warned) {
    process.stderr.write(`\n*** PostgreSQL tests SKIPPED: ${why}. CI installs PostgreSQL; install it (apt-get install postgresql) to run them. ***\n\n`);
    warned = true;
  }
  return null;
}

/** Why PostgreSQL tests cannot run here (said loudly once), or null when they can. Synchronous. */
export function postgresUnavailable(): string | null {
  let why: string | null = null;
  if (!findBinDir()) why = "no initdb/postgres binaries found";
  else if (process.getuid?.() === 0 && !postgresUser()) why = "running as root and there is no 'postgres' user to run the server as";
  if (why) warnMissing(why);
  return why;
}

function initdb(bin: string, cwd: string, data: string, ids: { uid?: number; gid?: number }): void {
  execFileSync(join(bin, "initdb"), ["-D", data, "-U", "bulwark", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], {
    stdio: ["ignore", "ignore", "pipe"], ...ids, cwd,
  });
}

/**
 * Writes a fresh cluster's data directory at `data` (inside `dir`, which the server's user owns). Under `npm test`
 * (BULWARK_TEST_RUN_DIR set by test/run.ts) the first call of the run keeps what `initdb` made as a template in that
 * directory, and every call copies the template (`cp -a`: modes and owner kept, as the server insists on) instead of
 * running `initdb` again; a test file run on its own runs `initdb`. Two files making the template at once each make
 * one, and the first rename wins.
 */
function makeDataDir(bin: string, dir: string, data: string, ids: { uid?: number; gid?: number }): void {
  const runDir = process.env["BULWARK_TEST_RUN_DIR"];
  if (!runDir || !existsSync(runDir)) return initdb(bin, dir, data, ids);
  // One template per server version (the binaries' directory names it).
  const template = join(runDir, `pg-template-${bin.replace(/[^A-Za-z0-9]+/g, "-")}`);
  if (!existsSync(template)) {
    initdb(bin, dir, data, ids);
    const staged = mkdtempSync(join(runDir, "pg-template-staged-"));
    execFileSync("cp", ["-a", data, join(staged, "data")]);
    try {
      renameSync(join(staged, "data"), template);
    } catch (error) {
      // Another test file's template landed first: it is as good as ours.
      if (!existsSync(template)) throw error;
    } finally {
      rmSync(staged, { recursive: true, force: true });
    }
    return;
  }
  execFileSync("cp", ["-a", template, data]);
}

/**
 * Starts a cluster, or returns null (loudly) when PostgreSQL is not installed. `settings` are extra server
 * settings (`-c name=value`), e.g. { shared_buffers: "1GB" } for a benchmark on a large data set.
 */
export async function startPostgres(settings: Record<string, string> = {}): Promise<PgCluster | null> {
  const bin = findBinDir();
  if (!bin) return warnMissing("no initdb/postgres binaries found");
  const owner = postgresUser();
  if (process.getuid?.() === 0 && !owner) return warnMissing("running as root and there is no 'postgres' user to run the server as");
  const dir = mkdtempSync(join(tmpdir(), "bulwark-pg-"));
  const data = join(dir, "data");
  const ids = owner ? { uid: owner.uid, gid: owner.gid } : {};
  if (owner) chownSync(dir, owner.uid, owner.gid);
  makeDataDir(bin, dir, data, ids);
  const child: ChildProcess = spawn(
    join(bin, "postgres"),
    ["-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=60", ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])],
    { stdio: ["ignore", "ignore", "pipe"], ...ids, cwd: dir },
  );
  let log = "";
  child.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const url = (name: string): string => `postgres://bulwark@localhost/${name}?host=${encodeURIComponent(dir)}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url("postgres") });
    try {
      await client.connect();
      await client.end();
      break;
    } catch {
      await client.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`PostgreSQL did not start: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    async createDatabase(name: string, template?: string): Promise<string> {
      const client = new pg.Client({ connectionString: url("postgres") });
      await client.connect();
      try {
        // FILE_COPY: the template's files copied as they are, without writing them through the WAL (faster here).
        const from = template === undefined ? "" : ` TEMPLATE "${template.replace(/"/g, "")}" STRATEGY FILE_COPY`;
        await client.query(`CREATE DATABASE "${name.replace(/"/g, "")}"${from}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async createSchema(name: string): Promise<string> {
      const safe = name.replace(/[^a-z0-9_]/gi, "");
      const client = new pg.Client({ connectionString: url("postgres") });
      await client.connect();
      try {
        await client.query(`CREATE SCHEMA "${safe}"`);
      } finally {
        await client.end();
      }
      return `${url("postgres")}&options=${encodeURIComponent(`-c search_path=${safe}`)}`;
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGINT"); // fast shutdown
        // The timer is cleared once the server has exited: left pending, it kept every test file that used
        // PostgreSQL alive 10 s after its last test.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
        clearTimeout(timer);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
