// Which PostgreSQL statements met a held lock, told without a stopwatch: every query sent through pg's Client (Bulwark's
// pool included: src/store/database.ts opens pg.Pool, whose clients are pg.Client; promise or callback form, the form
// pg-pool's own Pool.query uses) is watched, and one that fails as busy is recorded with the bound it waited: for 55P03
// (lock_not_available, past its lock_timeout) the lock_timeout in force on its connection when it was sent, for 57014
// (query_canceled) the statement_timeout in force (none: unbounded, Infinity). In force: the pool's start-up setting
// (the connection's parameters, or `-c` options), or a SET / set_config of the session, or a SET LOCAL / set_config(…,
// true) of the explicit transaction it ran in (a SET LOCAL outside one does nothing, as in PostgreSQL), in any unit
// PostgreSQL takes, found in the statements of a multi-statement text and inside a DO block too. While another session
// holds a lock for the whole of a request, a statement of that request that waited on it is exactly one that failed
// 55P03, after waiting that lock_timeout: "the 503 came after one bound, not two" is "one statement met the pool's bound".
// Loopback only: it looks at queries, it sends none.
import pg from "pg";

/** A statement that failed as busy: its text, its SQLSTATE and the bound (ms) it waited: lock_timeout for 55P03 (0 = none), statement_timeout for 57014. */
export interface LockWait {
  sql: string;
  code: string;
  boundMs: number;
}

type Setting = "lock_timeout" | "statement_timeout";

interface ConnectionTimeouts {
  /** Whether an explicit transaction is open (BEGIN seen, no COMMIT/ROLLBACK since): SET LOCAL is a no-op outside one. */
  inTransaction: boolean;
  /** SET LOCAL (or set_config(…, true)) in the open transaction, if any. */
  local: Partial<Record<Setting, number>>;
  /** SET (or set_config(…, false)) for the session, if any (RESET clears it). */
  session: Partial<Record<Setting, number>>;
}

const BUSY = new Set(["55P03", "57014"]);
const UNITS: Record<string, number> = { "": 1, us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };
const VALUE = String.raw`'?\s*([\d.]+)\s*([a-z]*)\s*'?`;
const SET = new RegExp(String.raw`\bset\s+(local\s+|session\s+)?(lock_timeout|statement_timeout)\s*(?:=|to)\s*(?:(default)\b|${VALUE})`, "gi");
const SET_CONFIG = new RegExp(String.raw`\bset_config\s*\(\s*'(lock_timeout|statement_timeout)'\s*,\s*${VALUE}\s*,\s*(true|false)\s*\)`, "gi");

/** A PostgreSQL duration setting's value in ms (a bare number is ms), or NaN when its unit is not one of PostgreSQL's. */
function ms(value: string, unit: string): number {
  const factor = UNITS[unit.toLowerCase()];
  return factor === undefined ? Number.NaN : Number(value) * factor;
}

/** The top-level statements of a simple query's text: split at `;` outside quotes and dollar-quoted bodies. */
function statements(text: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      i = end < 0 ? text.length : end;
    } else if (c === "$") {
      const tag = /^\$\w*\$/.exec(text.slice(i))?.[0];
      if (tag) {
        const end = text.indexOf(tag, i + tag.length);
        i = end < 0 ? text.length : end + tag.length - 1;
      }
    } else if (c === ";") {
      out.push(text.slice(from, i));
      from = i + 1;
    }
  }
  out.push(text.slice(from));
  return out.map((x) => x.trim()).filter((x) => x !== "");
}

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
    if (ignore.has(this)) return original.apply(this, args);
    const first = args[0];
    const text = typeof first === "string" ? first : typeof (first as { text?: unknown } | null)?.text === "string" ? (first as { text: string }).text : "";
    let state = timeouts.get(this);
    if (!state) timeouts.set(this, (state = { inTransaction: false, local: {}, session: {} }));
    const params = (this as unknown as { connectionParameters?: Partial<Record<Setting, unknown>> & { options?: unknown } }).connectionParameters;
    const startup = (name: Setting): number => {
      const option = new RegExp(String.raw`-c\s*${name}=(\d+)`).exec(String(params?.options ?? ""));
      return Number(params?.[name] ?? option?.[1] ?? 0) || 0;
    };
    const inForce = (name: Setting): number => state.local[name] ?? state.session[name] ?? startup(name);
    // The bound of a statement that failed: 55P03 waited its lock_timeout; 57014 ran into its statement_timeout (none
    // in force: an unbounded wait someone cancelled). For a text of several statements, the largest in force at any.
    const bound = (code: string): number => {
      if (code !== "57014") return inForce("lock_timeout");
      return inForce("statement_timeout") || Number.POSITIVE_INFINITY;
    };
    const seen: Array<{ lock: number; statement: number }> = [];
    for (const statement of statements(text)) {
      const control = /^(begin|start\s+transaction)\b/i.test(statement) ? "begin"
        : /^(commit|end|abort|prepare\s+transaction)\b/i.test(statement) || /^rollback\b(?!\s+to\b)/i.test(statement) ? "end" : null;
      if (control) {
        state.inTransaction = control === "begin";
        state.local = {};
        continue;
      }
      const reset = /^reset\s+(lock_timeout|statement_timeout|all)\b/i.exec(statement);
      if (reset) {
        const name = reset[1]!.toLowerCase();
        if (name === "all") state.session = {};
        else delete state.session[name as Setting];
        delete state.local[name as Setting];
        continue;
      }
      // SET and set_config, wherever they are (a DO block's too), in order; LOCAL ones only inside a transaction.
      const changes = [
        ...[...statement.matchAll(SET)].map((m) => ({ at: m.index, local: m[1]?.trim().toLowerCase() === "local", name: m[2]!.toLowerCase() as Setting, value: m[3] ? null : ms(m[4]!, m[5]!) })),
        ...[...statement.matchAll(SET_CONFIG)].map((m) => ({ at: m.index, local: m[4]!.toLowerCase() === "true", name: m[1]!.toLowerCase() as Setting, value: ms(m[2]!, m[3]!) })),
      ].sort((a, b) => a.at - b.at);
      for (const change of changes) {
        const value = change.value === null ? undefined : Number.isNaN(change.value) ? Number.POSITIVE_INFINITY : change.value;
        if (change.local) {
          if (state.inTransaction) state.local[change.name] = value ?? state.session[change.name] ?? startup(change.name);
        } else {
          if (value === undefined) delete state.session[change.name];
          else state.session[change.name] = value;
          delete state.local[change.name];
        }
      }
      if (changes.length === 0 || !/^set\b/i.test(statement)) seen.push({ lock: bound("55P03"), statement: bound("57014") });
    }
    if (seen.length === 0) seen.push({ lock: bound("55P03"), statement: bound("57014") });
    const boundFor = (code: string): number => Math.max(...seen.map((x) => (code === "57014" ? x.statement : x.lock)));
    const collectors = [...open];
    const record = (error: unknown): void => {
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code !== "string" || !BUSY.has(code)) return;
      const wait = { sql: text.replace(/\s+/g, " ").slice(0, 160), code, boundMs: boundFor(code) };
      waits.push(wait);
      for (const c of collectors) c.push(wait);
    };
    // A callback (pg's callback form, and how pg-pool's Pool.query sends a statement) hears the failure first.
    const last = args.length - 1;
    if (typeof args[last] === "function") {
      const callback = args[last] as (error: unknown, ...rest: unknown[]) => unknown;
      args[last] = function (this: unknown, error: unknown, ...rest: unknown[]) {
        if (error) record(error);
        return callback.call(this, error, ...rest);
      };
    } else if (first && typeof first === "object" && typeof (first as { callback?: unknown }).callback === "function") {
      const query = first as { callback: (error: unknown, ...rest: unknown[]) => unknown };
      const callback = query.callback;
      query.callback = function (this: unknown, error: unknown, ...rest: unknown[]) {
        if (error) record(error);
        return callback.call(this, error, ...rest);
      };
    }
    const result = original.apply(this, args);
    if (result && typeof (result as Promise<unknown>).then === "function") {
      // A side branch: the caller's promise is returned untouched and rejects to the caller as before.
      (result as Promise<unknown>).then(undefined, record);
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
