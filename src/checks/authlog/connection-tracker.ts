// Follows each sshd connection (host + PID) across lines, as fail2ban's multi-line sshd filter
// does: a line that only names the client ("Connection from", a PAM failure, a failed public key)
// is remembered, and counts only when the connection then fails without naming the client,
// tries a second user name, or ends in a failure. A success forgets the connection's doubts and
// is never itself counted. A connection idle for CONNECTION_IDLE_MS of log time is forgotten.
import type { SshdEvent } from "./sshd-messages.ts";

interface ConnectionState {
  address: string | null;
  firstUser: string | null;
  /** The connection tried more than one user name: an attacker rotating names, never benign. */
  multipleUsers: boolean;
  /** A failure came before the client's address was known; it counts when the address appears. */
  pendingFailure: boolean;
  /** Log time of the connection's last line. */
  lastMs: number;
}

/**
 * A connection whose last line is older than this (log time) is forgotten: its PID may now belong to another
 * connection. Some ends are never logged in a form we know (a crash, a signal, a message of a newer sshd), and on a
 * host a botnet keeps busy the PID counter wraps within days; a later connection on that PID would otherwise inherit
 * the dead one's user name, and the admin's failed keys and even the login after them would count as a second user
 * name's failures. sshd's LoginGraceTime (default 2 minutes) bounds the unauthenticated phase, whose state is the
 * only one that matters; fail2ban forgets a connection after 5 minutes too (of its own clock, not the log's).
 */
export const CONNECTION_IDLE_MS = 5 * 60_000;

/**
 * Bound on remembered connections. A connection is forgotten when sshd logs its end; ones whose
 * end is missing (rotated logs, crashes) are evicted oldest first so memory stays bounded.
 */
const MAX_CONNECTIONS = 50_000;

/**
 * A copy of `s` that shares no memory with the 1 MiB chunk string it was sliced from, so keeping
 * it does not keep the chunk alive. V8 copies strings under 13 chars anyway; longer ones are
 * flattened into a fresh small string by slicing a concatenation.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1);
}

export class ConnectionTracker {
  readonly #states = new Map<string, ConnectionState>();
  // One live iterator finds the oldest connection: asking a fresh `keys()` each time walks over
  // every deleted slot V8 keeps at the front of a churned Map, which made a log of 500,000
  // connections without end lines take minutes. A live iterator moves past each slot only once.
  #oldest: MapIterator<string> = this.#states.keys();
  // A connection's lines often come one after another: compare with the last key before hashing.
  #lastKey = "";
  #lastState: ConnectionState | undefined;

  /** The live state of `key` at log time `t`: a state idle for longer than CONNECTION_IDLE_MS is dropped. */
  #live(key: string, t: number): ConnectionState | undefined {
    const state = key === this.#lastKey ? this.#lastState : this.#states.get(key);
    // Both ways: a line stamped long before the state's last one (a wrong clock, a straggler) is no longer its connection.
    if (state === undefined || Math.abs(t - state.lastMs) <= CONNECTION_IDLE_MS) return state;
    this.#states.delete(key);
    if (key === this.#lastKey) this.#lastState = undefined;
    return undefined;
  }

  /**
   * Applies one classified line of connection `key`, logged at `t` (epoch ms). Returns the address
   * to charge with a failure, or null when the line does not count (yet).
   */
  apply(key: string, event: SshdEvent, t: number): string | null {
    let state = this.#live(key, t);
    if (state) {
      state.lastMs = t;
      if (event.user) {
        if (state.firstUser === null) state.firstUser = detach(event.user);
        else if (state.firstUser !== event.user) state.multipleUsers = true;
      }
      if (event.address) state.address = event.address;
    } else if (!event.forget && event.effect !== "end") {
      state = { address: event.address, firstUser: event.user ? detach(event.user) : null, multipleUsers: false, pendingFailure: false, lastMs: t };
      this.#states.set(detach(key), state);
      if (this.#states.size > MAX_CONNECTIONS) {
        let next = this.#oldest.next();
        if (next.done === true) {
          // An iterator that once reached the end stays there: start a new one.
          this.#oldest = this.#states.keys();
          next = this.#oldest.next();
        }
        if (next.done !== true) this.#states.delete(next.value);
        // The evicted one may be the cached one; the new state is cached below in any case.
      }
    }
    const multiple = state?.multipleUsers ?? false;
    let counts: boolean;
    if (event.effect === "fail") counts = true;
    else if (event.effect === "gained" || event.effect === "end") {
      // A login is no failed authentication, whatever came before it on the connection: fail2ban counts it when the
      // connection tried a second user name, so a connection that wrongly inherited a stale user name (PID reuse)
      // turned the admin's own login into a failure. The rotation was counted on the line that showed it.
      // A timeout or fatal error ends the connection: failures still waiting for an address never get one.
      counts = false;
    } else counts = (state?.pendingFailure ?? false) || multiple;

    let charged: string | null = null;
    if (counts) {
      charged = event.address ?? state?.address ?? null;
      if (state) state.pendingFailure = charged === null;
    }
    if (event.forget || event.effect === "end") {
      this.#states.delete(key);
      state = undefined;
    }
    this.#lastKey = key;
    this.#lastState = state;
    return charged;
  }

  /**
   * The event as this connection reads it: a Failed or Accepted line that reads two ways (a forged " from VICTIM port N ssh2:"
   * in the user name, or in the auth-info) is taken the way that names the address this sshd process already
   * logged ("Invalid user … from", "Connection from"), so the victim is not blamed and the real client is counted.
   */
  resolve(key: string, event: SshdEvent, t: number): SshdEvent {
    const other = event.otherReading;
    if (!other || event.address === other.address) return event;
    const state = this.#live(key, t);
    return state?.address === other.address ? { ...event, address: other.address, user: other.user } : event;
  }

  /** Number of connections currently remembered. */
  get size(): number {
    return this.#states.size;
  }
}
