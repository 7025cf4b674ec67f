// What one sshd message means for fail2ban-style accounting: the shape shared by the matchers.

/**
 * What a message means for the connection it belongs to (fail2ban's multi-line semantics):
 * `fail` counts, `nofail` only tells who is connecting (it counts if the same connection later
 * tries a second user name or fails without saying where from), `gained` is a successful login
 * (never counted), `end` closes a connection without a word on authentication (a timeout before
 * authentication, a fatal protocol error): its state is dropped and nothing is counted.
 */
export type Effect = "fail" | "nofail" | "gained" | "end";

export interface SshdEvent {
  /** Stable name of the message kind, printed by --matches ("failed-password", "invalid-user"…). */
  kind: string;
  effect: Effect;
  /** The connection ends with this message (fail2ban's MLFFORGET). */
  forget: boolean;
  address: string | null;
  user: string | null;
  /** Authentication method for Failed/Accepted lines ("password", "publickey"…). */
  method: string | null;
  /** The user name does not exist on the host (sshd said "invalid user"). */
  invalidUser: boolean;
  /**
   * A Failed or Accepted line that reads two ways: the client may have written " from HOST port N ssh2:" into its
   * user name, or into the text after the ssh tag (auth-info). `address`/`user` take the first reading (fail2ban's);
   * this is the other. The connection tracker takes it when the same sshd process already named this address.
   */
  otherReading?: { address: string; user: string };
}

/**
 * Builds an event; the matchers set `method` and `invalidUser` where they apply.
 *
 * @example
 * ev("invalid-user", "fail", false, "203.0.113.9", "oracle");
 */
export function ev(kind: string, effect: Effect, forget: boolean, address: string | null, user: string | null): SshdEvent {
  return { kind, effect, forget, address, user, method: null, invalidUser: false };
}
