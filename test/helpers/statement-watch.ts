// A watch on every node:sqlite statement this process runs (the server's connection and an in-process CLI's alike),
// for the rounds that force an interleaving with another process's write lock (test/cross-process-writes*-red-team).
// Installed before and restored after a file's tests.
import { StatementSync } from "node:sqlite";
import { holdWriteLock } from "./sqlite-lock.ts";

type Hook = { test: (sql: string) => boolean; fn: () => void };

/** The store's lock bound for the server in these rounds: a held lock is met in a second, not ten. */
export const SHORT_BUSY = { BULWARK_DB_LOCK_TIMEOUT_SECONDS: "1" } as const;
/** The CLI's bound while the test's own side holds the lock on purpose: long enough never to run out meanwhile. */
export const CLI_PATIENT = { BULWARK_DB_LOCK_TIMEOUT_SECONDS: "20" } as const;

/** A gate the test opens: `wait` resolves once `open` was called. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

export class StatementWatch {
  readonly #run = StatementSync.prototype.run;
  readonly #all = StatementSync.prototype.all;
  #busy: Array<{ sql: string; resolve: () => void }> = [];
  #busyWrites: Array<(sql: string) => void> = [];
  #after: Hook[] = [];

  install(): void {
    const watch = this;
    const original = this.#run;
    const all = this.#all;
    StatementSync.prototype.run = function (this: StatementSync, ...params: Parameters<StatementSync["run"]>) {
      const sql = this.sourceSQL.trim().toLowerCase();
      let result: ReturnType<StatementSync["run"]>;
      try {
        result = original.apply(this, params);
      } catch (error) {
        watch.#sawFailure(sql, error, true);
        throw error;
      }
      const hook = watch.#after.find((h) => h.test(sql));
      if (hook) {
        watch.#after = watch.#after.filter((h) => h !== hook);
        hook.fn();
      }
      return result;
    } as StatementSync["run"];
    // A write with RETURNING goes through all(): nextBusyWrite sees its busy failure too (busyAt and afterRun stay with run()).
    StatementSync.prototype.all = function (this: StatementSync, ...params: Parameters<StatementSync["all"]>) {
      try {
        return all.apply(this, params);
      } catch (error) {
        watch.#sawFailure(this.sourceSQL.trim().toLowerCase(), error, false);
        throw error;
      }
    } as StatementSync["all"];
  }

  /** Resolves the waits a statement of text `sql` that failed with `error` answers, when it failed SQLITE_BUSY. */
  #sawFailure(sql: string, error: unknown, viaRun: boolean): void {
    if (!/database is locked/.test((error as Error).message)) return;
    if (viaRun) {
      const waiting = this.#busy.filter((w) => w.sql === sql);
      this.#busy = this.#busy.filter((w) => !waiting.includes(w));
      for (const w of waiting) w.resolve();
    }
    if (/^(insert|update|delete|replace|begin)\b/.test(sql)) {
      const writes = this.#busyWrites;
      this.#busyWrites = [];
      for (const resolve of writes) resolve(sql);
    }
  }

  restore(): void {
    StatementSync.prototype.run = this.#run;
    StatementSync.prototype.all = this.#all;
  }

  /** Resolves when a statement of this text (compared lower-cased) fails SQLITE_BUSY: a writer waiting for another's lock. */
  busyAt(sql: string): Promise<void> {
    return new Promise((resolve) => this.#busy.push({ sql: sql.toLowerCase(), resolve }));
  }

  /** Resolves, with its text (lower-cased), when the next write statement (or BEGIN) of any text fails SQLITE_BUSY. */
  nextBusyWrite(): Promise<string> {
    return new Promise((resolve) => this.#busyWrites.push(resolve));
  }

  /**
   * Runs `fn` synchronously right after the next statement whose text (trimmed, lower-cased) passes `test` succeeded:
   * nothing else of the process runs in between, so another connection can take the lock exactly there. Once.
   */
  afterRun(test: (sql: string) => boolean, fn: () => void): void {
    this.#after.push({ test, fn });
  }

  /** Drops the hooks not fired yet. */
  clear(): void {
    this.#after = [];
  }
}

/**
 * Runs `send` with another connection taking the write lock of the database at `path` right after the COMMIT that
 * follows the first statement passing `marker` (the transaction that makes the change); lets go once `send` answered.
 * `took`: whether the lock was taken (the test's control that the interleaving happened).
 */
export async function lockAfterCommitOf<T>(watch: StatementWatch, path: string, marker: (sql: string) => boolean, send: () => Promise<T>): Promise<{ result: T; took: boolean }> {
  let held: { release(): void } | null = null;
  watch.afterRun(marker, () => watch.afterRun((sql) => sql === "commit", () => (held = holdWriteLock(path))));
  try {
    const result = await send();
    return { result, took: held !== null };
  } finally {
    watch.clear();
    (held as { release(): void } | null)?.release();
  }
}
