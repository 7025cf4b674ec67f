// WAL checkpoints off the event loop, for the long-running server on SQLite.
//
// In WAL mode every commit appends pages to the -wal file, and by default the connection that commits the
// 1000th page copies them all back into the database file and syncs it (two fsyncs), on the thread that
// committed: under a login load that is a stall of milliseconds every hundred or so logins, and of tens or
// hundreds of milliseconds on a slow disk, with every request in the queue waiting. The checkpointer runs
// PASSIVE checkpoints (they never wait for readers or writers, and never block them) on its own connection
// in a worker thread, so the server's connection normally never checkpoints. The server's auto-checkpoint
// stays on with a higher threshold as the backstop: if the worker falls behind, stops or dies, the WAL is
// still bounded and nothing is lost (a checkpoint only moves committed pages; SQLite recovers the WAL on
// the next open either way). No checkpoint, ours or SQLite's, can copy pages a reader's snapshot may still
// need: a long read transaction in another process (a backup, `sqlite3`, a long `bulwark` command) lets the
// WAL grow past the backstop for as long as it lasts. The checkpointer cannot end it, so it says so: one
// warning when the WAL is pinned, one info line when it is not any more.
import { resolve } from "node:path";
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { WAL_LIMIT_PAGES, type Database } from "./database.ts";

/** SQLite's default auto-checkpoint threshold (pages), restored when the checkpointer stops. */
export const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;
/**
 * How long runs may stay partial, in a row, before the WAL counts as pinned though still under the backstop
 * (60 runs at the default interval): a request's own read transaction makes a run or two partial, never 30 s of them.
 */
const PINNED_AFTER_MS = 30_000;
/**
 * Partial runs in a row that count as pinned whatever the interval, the WAL past the backstop or not: one or two happen
 * under a normal load. Past the backstop too: one big commit (an import batch, a containment batch) while a request's
 * short read was open leaves the WAL past it and one run partial, and was warned about as a long read at once.
 */
const PINNED_AFTER_RUNS_AT_LEAST = 3;

export interface CheckpointerOptions {
  /** How often the worker checkpoints (default 500 ms): at most two fsyncs per interval, off the event loop. */
  intervalMs?: number;
  /** The server connection's auto-checkpoint threshold while the worker runs (default 4000 pages, ~16 MiB). */
  backstopPages?: number;
  logger?: Pick<Logger, "info" | "warn" | "error">;
}

export interface CheckpointStats {
  /** Checkpoints run, and how many of them found new pages to copy. */
  runs: number;
  copying: number;
  /** Pages copied into the database file (a lower bound: a WAL restarted and refilled between two runs counts from zero). */
  pagesCopied: number;
  /** Checkpoints that could not copy everything because a reader or writer held the newest pages. */
  partial: number;
  /** Pages in the WAL at the last run (the checkpoint's `log` column), and how many runs in a row up to it were partial. */
  walPages: number;
  partialInARow: number;
  /** The last error the worker met, if any (it keeps trying; the backstop covers meanwhile). */
  lastError: string | null;
  running: boolean;
}

export interface Checkpointer {
  /** The worker's counters, as of its last report. */
  stats(): CheckpointStats;
  /** Runs one checkpoint in the worker now and resolves with the counters after it. */
  runOnce(): Promise<CheckpointStats>;
  /** Stops the worker (after a last checkpoint) and restores the default auto-checkpoint. Safe to call twice. */
  stop(): Promise<void>;
}

// Plain JavaScript run with `eval`, so the worker needs no file of its own in the source tree or the build.
// Its connection only ever runs the checkpoint pragma: it holds no read snapshot between runs.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");
const { lstatSync } = require("node:fs");
const { pathToFileURL } = require("node:url");
const stats = { runs: 0, copying: 0, pagesCopied: 0, partial: 0, walPages: 0, partialInARow: 0, lastError: null };
let db = null, stmt = null, done = 0;
// Opens the served database, never a new one. Opening is lazy and repeated after any error, and a plain path would
// create a missing file: with the database moved away, an empty one readable by others (the umask's mode) would
// appear in its place, past every check openSQLite makes. A file: URL with mode=rw fails instead of creating, and a
// symbolic link or anything but a regular file is refused first, as openSQLite refuses it.
function open() {
  let st;
  try {
    st = lstatSync(workerData.path);
  } catch (error) {
    throw new Error("the database file cannot be found (" + (error && error.code || error) + "); no new one is created: " + workerData.path);
  }
  if (!st.isFile()) throw new Error("the database path is not a regular file (a symbolic link, or something else); it is not opened: " + workerData.path);
  const url = pathToFileURL(workerData.path);
  url.search = "?mode=rw";
  return new DatabaseSync(url);
}
function run() {
  try {
    if (db === null) {
      db = open();
      db.exec("PRAGMA busy_timeout = 0");
      db.exec("PRAGMA synchronous = NORMAL");
      stmt = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
    }
    const row = stmt.get();
    stats.runs++;
    if (row.log < 0) throw new Error("the database is not in WAL mode");
    // log: pages in the WAL; checkpointed: how many of them are now in the database file. A WAL restarted
    // by a writer since the last run starts counting from zero again.
    const before = row.checkpointed >= done && row.log >= done ? done : 0;
    if (row.checkpointed > before) { stats.copying++; stats.pagesCopied += row.checkpointed - before; }
    const partial = row.busy || row.checkpointed < row.log;
    if (partial) stats.partial++;
    stats.partialInARow = partial ? stats.partialInARow + 1 : 0;
    stats.walPages = row.log;
    done = row.checkpointed;
    stats.lastError = null;
  } catch (error) {
    stats.lastError = String(error && error.message || error);
    try { if (db) db.close(); } catch {}
    db = null; stmt = null; done = 0;
  }
}
const timer = setInterval(() => { run(); parentPort.postMessage({ type: "stats", stats }); }, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m.type === "run") { run(); parentPort.postMessage({ type: "ran", id: m.id, stats }); }
  if (m.type === "stop") {
    clearInterval(timer);
    run();
    try { if (db) db.close(); } catch {}
    parentPort.postMessage({ type: "stopped", stats });
    parentPort.close();
  }
});
`;

/**
 * Starts the checkpointer for a SQLite database; returns null on PostgreSQL (it manages its own WAL).
 *
 * @example
 * const checkpointer = startCheckpointer(app.db, { logger: app.logger });
 * // ... serve ...
 * await checkpointer?.stop(); // before closing the database
 */
export function startCheckpointer(database: Database, options: CheckpointerOptions = {}): Checkpointer | null {
  const handle = database.sqlite;
  if (!handle) return null;
  const intervalMs = Math.max(10, Math.trunc(options.intervalMs ?? 500));
  const backstop = Math.max(DEFAULT_AUTOCHECKPOINT_PAGES, Math.trunc(options.backstopPages ?? WAL_LIMIT_PAGES));
  const pinnedAfterRuns = Math.max(PINNED_AFTER_RUNS_AT_LEAST, Math.ceil(PINNED_AFTER_MS / intervalMs));
  const setThreshold = (pages: number): void => {
    if (handle.isOpen) handle.exec(`PRAGMA wal_autocheckpoint = ${pages}`);
  };
  // A WAL frame is a page and a 24-byte header.
  const frameBytes = Number((handle.prepare("PRAGMA page_size").get() as { page_size: number }).page_size) + 24;
  const walMiB = (pages: number): number => Math.round((pages * frameBytes) / 2 ** 20);
  let stats: CheckpointStats = { runs: 0, copying: 0, pagesCopied: 0, partial: 0, walPages: 0, partialInARow: 0, lastError: null, running: true };
  let reportedError: string | null = null;
  let reportedPinned = false;
  // Pinned: runs cannot copy everything, PINNED_AFTER_RUNS_AT_LEAST of them in a row with the WAL past the backstop
  // (the bound ADR 0006 promises does not hold), or for PINNED_AFTER_MS. A WAL past the backstop that runs copy whole
  // (one large transaction) is not pinned: the next commit restarts it; nor is one that a single run left partial (a
  // request's read open while that transaction committed). Recovered: a run copied everything (the reader let go; the
  // next commit restarts the WAL). Each is logged once, not at every run.
  const reportPinning = (): void => {
    const pinned = stats.partialInARow >= PINNED_AFTER_RUNS_AT_LEAST && (stats.walPages > backstop || stats.partialInARow >= pinnedAfterRuns);
    const fields = { walPages: stats.walPages, walMiB: walMiB(stats.walPages), backstopPages: backstop, partialInARow: stats.partialInARow };
    if (pinned && !reportedPinned) {
      reportedPinned = true;
      options.logger?.warn(
        fields,
        `WAL checkpoints are blocked: ${stats.partialInARow} in a row could not copy every page, and the WAL holds ${stats.walPages} pages (~${fields.walMiB} MiB; ` +
          `backstop ${backstop}). Likely a long read transaction in another process on the database (a backup, sqlite3, a long bulwark command): ` +
          "the WAL grows until it ends",
      );
    } else if (reportedPinned && stats.partialInARow === 0) {
      // At once: waiting for the WAL to be back within the backstop too waited for a later commit to restart it.
      reportedPinned = false;
      options.logger?.info(fields, "WAL checkpoints copy every page again: the WAL restarts at the next commit, back within the backstop");
    }
  };
  // Absolute, so the worker opens the same file whatever its working directory.
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path: resolve(database.where), intervalMs } });
  // A server with nothing else to do may exit: the checkpointer never keeps the process alive.
  worker.unref();
  const waiting = new Map<number, (s: CheckpointStats) => void>();
  let nextId = 0;
  let stopped: Promise<void> | null = null;
  let onStopped: (() => void) | null = null;

  const fallBack = (why: string): void => {
    if (!stats.running) return;
    stats = { ...stats, running: false };
    // The server's connection checkpoints as SQLite does by default again.
    setThreshold(DEFAULT_AUTOCHECKPOINT_PAGES);
    for (const resolve of waiting.values()) resolve(stats);
    waiting.clear();
    worker.unref();
    if (why) options.logger?.error({ err: why }, "WAL checkpointer stopped; the server's own connection checkpoints again");
  };
  worker.on("message", (m: { type: string; id?: number; stats: Omit<CheckpointStats, "running"> }) => {
    stats = { ...m.stats, running: stats.running };
    if (stats.lastError !== null && stats.lastError !== reportedError) {
      options.logger?.warn({ err: stats.lastError }, "WAL checkpoint failed; retrying at the next interval");
    }
    reportedError = stats.lastError;
    if (stats.lastError === null) reportPinning();
    if (m.type === "ran" && m.id !== undefined) {
      waiting.get(m.id)?.(stats);
      waiting.delete(m.id);
      if (waiting.size === 0 && !stopped) worker.unref();
    }
    if (m.type === "stopped") onStopped?.();
  });
  worker.on("error", (error) => fallBack(error.message));
  worker.on("exit", () => {
    fallBack(stopped ? "" : "the worker exited");
    onStopped?.();
  });
  setThreshold(backstop);

  return {
    stats: () => ({ ...stats }),
    runOnce() {
      if (!stats.running) return Promise.resolve({ ...stats });
      const id = nextId++;
      // Someone is waiting for an answer: keep the process alive until it comes.
      worker.ref();
      return new Promise((resolve) => {
        waiting.set(id, (s) => resolve({ ...s }));
        worker.postMessage({ type: "run", id });
      });
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        if (!stats.running) return resolve();
        worker.ref();
        onStopped = () => {
          onStopped = null;
          fallBack("");
          resolve();
        };
        worker.postMessage({ type: "stop" });
      });
      return stopped;
    },
  };
}
