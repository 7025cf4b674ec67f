// Which PostgreSQL statements met a held lock, told without a stopwatch: every query sent through pg's Client (Bulwark's
// pool included: src/store/database.ts opens pg.Pool, whose clients are pg.Client) is watched, and one that fails as
// busy (55P03 lock_not_available, past its lock_timeout; 57014 query_canceled) is recorded with the lock_timeout in
// force on its connection when it was sent: the pool's start-up setting (lock_timeout in the connection's
// parameters), or the SET LOCAL / SET of the transaction or session it ran in. While another session holds a lock for
// the whole of a request, a statement of that request that waited on it is exactly one that failed 55P03, after
// waiting that lock_timeout: "the 503 came after one bound, not two" is "one statement met the pool's bound".
// Loopback only: it looks at queries, it sends none.
import pg from "pg";

/** A statement that failed as busy: its text, its SQLSTATE and the lock_timeout (ms, 0 = none) it waited. */
export interface LockWait {
  sql: string;
  code: string;
  boundMs: number;
}

interface ConnectionTimeouts {
  /** SET LOCAL lock_timeout in the open transaction, if any. */
  local: number | null;
  /** SET lock_timeout for the session, if any (RESET clears it). */
  session: number | null;
}

const BUSY = new Set(["55P03", "57014"]);
const SET_LOCK_TIMEOUT = /^\s*set\s+(local\s+|session\s+)?lock_timeout\s*(?:=|to)\s*'?(\d+)(ms)?'?\s*;?\s*$/i;

type Query = (...args: unknown[]) => unknown;

export interface LockWaitWatch {
  /** Every busy failure recorded since install, oldest first. */
  readonly waits: readonly LockWait[];
  /** Runs `work`; its value and the busy failures of the statements sent while it ran. */
  during<T>(work: () => Promise<T>): Promise<{ value: T; waits: LockWait[] }>;
  /** Puts pg's Client.prototype.query back. */
  restore(): void;
}

/**
 * Watches every pg.Client's queries but those of `ignore` (the DBA's client that holds the lock) until `restore`.
 *
 * @example
 * const watch = watchLockWaits({ ignore: [dba] });
 * try { const { value, waits } = await watch.during(() => fx.server.inject(…)); } finally { watch.restore(); }
 */
export function watchLockWaits(options: { ignore?: readonly pg.Client[] } = {}): LockWaitWatch {
  const ignore = new Set<unknown>(options.ignore ?? []);
  const proto = pg.Client.prototype as unknown as { query: Query };
  const original = proto.query;
  const timeouts = new WeakMap<object, ConnectionTimeouts>();
  const waits: LockWait[] = [];
  // The collectors of the `during` calls running: a statement's failure comes back later, and goes to the collectors
  // open when it was sent (its reaction runs before the caller's, so it is in by the time the caller goes on).
  const open = new Set<LockWait[]>();

  proto.query = function watchedQuery(this: pg.Client, ...args: unknown[]): unknown {
    const result = original.apply(this, args);
    if (ignore.has(this)) return result;
    const first = args[0];
    const text = typeof first === "string" ? first : typeof (first as { text?: unknown } | null)?.text === "string" ? (first as { text: string }).text : "";
    let state = timeouts.get(this);
    if (!state) timeouts.set(this, (state = { local: null, session: null }));
    const startup = Number((this as unknown as { connectionParameters?: { lock_timeout?: unknown } }).connectionParameters?.lock_timeout ?? 0) || 0;
    const boundMs = state.local ?? state.session ?? startup;
    const set = SET_LOCK_TIMEOUT.exec(text);
    if (set) {
      if (set[1]?.trim().toLowerCase() === "local") state.local = Number(set[2]);
      else state.session = Number(set[2]);
    } else if (/^\s*(begin|start\s+transaction|commit|rollback|end)\b/i.test(text)) state.local = null;
    else if (/^\s*reset\s+lock_timeout\b/i.test(text)) state.session = null;
    const collectors = [...open];
    if (result && typeof (result as Promise<unknown>).then === "function") {
      // A side branch: the caller's promise is returned untouched and rejects to the caller as before.
      (result as Promise<unknown>).then(undefined, (error: unknown) => {
        const code = (error as { code?: unknown } | null)?.code;
        if (typeof code !== "string" || !BUSY.has(code)) return;
        const wait = { sql: text.replace(/\s+/g, " ").slice(0, 160), code, boundMs };
        waits.push(wait);
        for (const c of collectors) c.push(wait);
      });
    }
    return result;
  };

  return {
    waits,
    async during(work) {
      const mine: LockWait[] = [];
      open.add(mine);
      try {
        const value = await work();
        return { value, waits: mine };
      } finally {
        open.delete(mine);
      }
    },
    restore() {
      proto.query = original;
    },
  };
}
