// Follows each sshd connection (host + PID) across lines, as fail2ban's multi-line sshd filter
// does: a line that only names the client ("Connection from", a PAM failure, a failed public key)
// is remembered, and counts only when the connection then fails without naming the client,
// tries a second user name, or ends in a failure. A success forgets the connection's doubts.
import type { SshdEvent } from "./sshd-messages.ts";

interface ConnectionState {
  address: string | null;
  firstUser: string | null;
  /** The connection tried more than one user name: an attacker rotating names, never benign. */
  multipleUsers: boolean;
  /** A failure came before the client's address was known; it counts when the address appears. */
  pendingFailure: boolean;
}

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

  /**
   * Applies one classified line of connection `key`. Returns the address to charge with a
   * failure, or null when the line does not count (yet).
   */
  apply(key: string, event: SshdEvent): string | null {
    let state = key === this.#lastKey ? this.#lastState : this.#states.get(key);
    if (state) {
      if (event.user) {
        if (state.firstUser === null) state.firstUser = detach(event.user);
        else if (state.firstUser !== event.user) state.multipleUsers = true;
      }
      if (event.address) state.address = event.address;
    } else if (!event.forget) {
      state = { address: event.address, firstUser: event.user ? detach(event.user) : null, multipleUsers: false, pendingFailure: false };
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
    else if (event.effect === "gained") {
      // A success clears failures still waiting for an address, unless user names were rotated.
      if (state) state.pendingFailure = false;
      counts = multiple;
    } else counts = (state?.pendingFailure ?? false) || multiple;

    let charged: string | null = null;
    if (counts) {
      charged = event.address ?? state?.address ?? null;
      if (state) state.pendingFailure = charged === null;
    }
    if (event.forget) {
      this.#states.delete(key);
      state = undefined;
    }
    this.#lastKey = key;
    this.#lastState = state;
    return charged;
  }

  /**
   * The event as this connection reads it: a Failed line that reads two ways (a forged " from VICTIM port N ssh2:"
   * in the user name, or in the auth-info) is taken the way that names the address this sshd process already
   * logged ("Invalid user … from", "Connection from"), so the victim is not blamed and the real client is counted.
   */
  resolve(key: string, event: SshdEvent): SshdEvent {
    const other = event.otherReading;
    if (!other || event.address === other.address) return event;
    const state = key === this.#lastKey ? this.#lastState : this.#states.get(key);
    return state?.address === other.address ? { ...event, address: other.address, user: other.user } : event;
  }

  /** Number of connections currently remembered. */
  get size(): number {
    return this.#states.size;
  }
}
