// Exit codes of the `bulwark` command: a public contract (DESIGN.md).
export const EXIT = {
  /** Everything asked for was done and holds. */
  ok: 0,
  /** The thing checked does not hold: a verify mismatch, findings at or above --fail-on, a broken chain. */
  fails: 1,
  /** Bad usage or bad input; the message names what is wrong. */
  usage: 2,
  /** A runtime failure (database unreachable, disk full, a bug). */
  runtime: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
