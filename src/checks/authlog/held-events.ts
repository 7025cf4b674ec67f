// Each host's last line, when it was an sshd event: what a BSD syslogd "HOST last message repeated N times" line
// after it stands for N more of. The line just read is held as sliced from its log chunk (one line's worth kept
// alive); only when a line of another host comes between (a central log) is it copied into a table of hosts.
import { detach } from "./connection-tracker.ts";
import type { SshdEvent } from "./sshd-event.ts";

/**
 * Hosts held at once. A central log of more hosts than this (or forged host names) empties the table, costing at
 * most the repeats of the lines just before.
 */
const MAX_HOSTS = 10_000;

export interface HeldEvent {
  /** The sshd connection key ("host sshd[PID]:") the event belongs to. */
  connection: string;
  event: SshdEvent;
}

/**
 * @example
 * const held = new HeldEvents();
 * held.seen("web");
 * held.hold("web", "web sshd[7]:", event);
 * held.get("web"); // { connection: "web sshd[7]:", event }
 */
export class HeldEvents {
  #host: string | null = null;
  #connection = "";
  #event: SshdEvent | undefined;
  readonly #parked = new Map<string, HeldEvent>();

  /** Anything held: lines of other programs need looking at only then. */
  get active(): boolean {
    return this.#host !== null || this.#parked.size > 0;
  }

  /** Called before each line of `host` is handled. */
  seen(host: string): void {
    if (this.#host === null || this.#host === host) return;
    // Another host's line: the held event is copied out of its chunk into the table.
    const event = this.#event as SshdEvent;
    if (this.#parked.size >= MAX_HOSTS) this.#parked.clear();
    const { address, user, method } = event;
    this.#parked.set(this.#host, {
      connection: detach(this.#connection),
      event: { ...event, address: address === null ? null : detach(address), user: user === null ? null : detach(user), method: method === null ? null : detach(method) },
    });
    this.#host = null;
    this.#event = undefined;
  }

  /** The line of `host` just handled was `event` of `connection`. */
  hold(host: string, connection: string, event: SshdEvent): void {
    // It replaces an older one of this host, parked when another host's line came.
    if (this.#host === null && this.#parked.size > 0) this.#parked.delete(host);
    this.#host = host;
    this.#connection = connection;
    this.#event = event;
  }

  /** The line of `host` just handled was no sshd event: a repeat line after it repeats nothing counted. */
  forget(host: string): void {
    if (this.#host === host) {
      this.#host = null;
      this.#event = undefined;
    } else if (this.#parked.size > 0) this.#parked.delete(host);
  }

  /** The event a repeat line of `host` stands for, if its last line was one. */
  get(host: string): HeldEvent | undefined {
    if (this.#host === host && this.#event !== undefined) return { connection: this.#connection, event: this.#event };
    return this.#parked.get(host);
  }

  /** A new file: syslogd writes out a pending "last message repeated" before the log is rotated, never after. */
  clear(): void {
    this.#host = null;
    this.#event = undefined;
    this.#parked.clear();
  }
}
