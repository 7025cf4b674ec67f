// The slow rules' bookkeeping: an address working through many user names, and a user taking many failures, within
// the compromise window (24 h) at any pace. fail2ban's window (maxretry within findtime) sees neither when each try
// waits out --find-time; `check logins` judges the same two shapes (logins.spraying-address, logins.after-failures).
import { detach } from "./connection-tracker.ts";
import { attackBefore, recordAttack } from "./file-order.ts";
import type { AttackRun, SlowMarks, SprayState } from "./types.ts";

/**
 * Records a failure naming `user` at `t`: its latest failure moves to t, and a new name past `n` takes the place of
 * the name whose latest failure is oldest (the least recently tried). Keeping the `n` most recently tried names is
 * enough to tell whether `n` different names failed within a window ending now, and bounds what an address costs
 * whatever the number of names it tries. True when the `n` names held all failed within `windowMs` before `t`.
 *
 * @example
 * const s: SprayState = { names: [], times: [], oldest: 0, marks: null };
 * pushName(s, "alice", t, 20, 86_400_000); // false until 20 names failed within 24 hours
 */
export function pushName(s: SprayState, user: string, t: number, n: number, windowMs: number): boolean {
  // By read order too, once the names are full: failures stamped after the spray and read before it (a central log's
  // sender chooses both) fill the by-stamp list below with names no spray name can push out; read first, they are the
  // first to go here.
  // Once the names are full the read-order list runs beside it, starting from the same names.
  if (s.read === undefined && s.names.length >= n) s.read = { names: [...s.names], times: [...s.times], next: 0 };
  const byRead = s.read === undefined ? false : pushRead(s.read, user, t, windowMs);
  return pushByStamp(s, user, t, n, windowMs) || byRead;
}

/** pushName's read-order list: a name not held takes the place of the one read longest ago. */
function pushRead(r: { names: string[]; times: number[]; next: number }, user: string, t: number, windowMs: number): boolean {
  const i = r.names.indexOf(user);
  if (i >= 0) {
    if (t > (r.times[i] as number)) r.times[i] = t;
  } else {
    r.names[r.next] = detach(user);
    r.times[r.next] = t;
    r.next = (r.next + 1) % r.names.length;
  }
  let lo = t;
  let hi = t;
  for (const x of r.times) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return hi - lo <= windowMs;
}

/** pushName's by-stamp list: the `n` names whose latest failures are the latest. */
function pushByStamp(s: SprayState, user: string, t: number, n: number, windowMs: number): boolean {
  // This runs for most failures: the names stay where they are (no order to keep, no strings moved), and the oldest
  // is looked for again only when it was the one that changed.
  const { names, times } = s;
  const i = names.indexOf(user);
  if (i >= 0) {
    // The latest failure (a maximum: lines are not always in order, a lagging host, DST).
    if (t > (times[i] as number)) times[i] = t;
    if (i === s.oldest) s.oldest = oldest(times);
  } else if (names.length < n) {
    // Copied out of the chunk it was sliced from, as every kept name is (see detach).
    names.push(detach(user));
    times.push(t);
    if (t < (times[s.oldest] as number)) s.oldest = times.length - 1;

  } else if (t > (times[s.oldest] as number)) {
    names[s.oldest] = detach(user);
    times[s.oldest] = t;
    s.oldest = oldest(times);
  } else {
    // Older than every name held: the n held were all tried later, and a line stamped long before (a central log's
    // sender chooses its stamps) must not push one of them out. Before, it took the place of the oldest, so forged
    // old failures on new names wore a real spray down, and a full set was then judged from this stamp.
    return false;
  }
  if (names.length < n || t - (times[s.oldest] as number) > windowMs) return false;
  // Read out of order, `t` need not be the latest: the n names lie within the window only if the latest does too.
  let latest = t;
  for (const x of times) if (x > latest) latest = x;
  return latest - (times[s.oldest] as number) <= windowMs;
}

/** The index of the smallest time. */
function oldest(times: readonly number[]): number {
  let j = 0;
  for (let k = 1; k < times.length; k++) if ((times[k] as number) < (times[j] as number)) j = k;
  return j;
}

/**
 * Records that a slow rule was met at `t` in file `file` (1-based, in the order read), at line `line` of `name`.
 *
 * @example
 * rec.guessed = markSlow(rec.guessed, t, 1, DEFAULTS.compromiseWindowMs, "auth.log", 300);
 */
export function markSlow(marks: SlowMarks | null, t: number, file: number, windowMs: number, name: string, line: number): SlowMarks {
  // A campaign marks every failure once it is past the threshold: the common case, later in the same run, is cheap.
  const run = marks?.runs[marks.runs.length - 1];
  if (marks && run && run.file === file && t >= run.lastMs && t <= run.lastMs + windowMs) {
    run.lastMs = t;
    marks.lastMs = t;
    marks.lastFile = file;
    return marks;
  }
  const m = marks ?? { lastMs: t, lastFile: file, runs: [] };
  m.lastMs = t;
  m.lastFile = file;
  m.runs = recordAttack(m.runs, t, file, windowMs, name, line);
  return m;
}

/**
 * The run of marks that makes a login at `t`, read in file `file`, suspect: a mark read above it in its own file (line
 * order decides there, as for a ban) no more than `windowMs` before it, else one in another file stamped within
 * `windowMs` before it (`slackMs` forgives a lagging clock). The second look at the end takes only the latter
 * (`attackBefore` on the runs): the login's own file was judged as it was read.
 */
export function slowRunBefore(marks: SlowMarks | null, t: number, file: number, windowMs: number, slackMs: number): AttackRun | undefined {
  if (marks === null) return undefined;
  if (marks.lastFile === file && t - marks.lastMs <= windowMs) return marks.runs[marks.runs.length - 1];
  return attackBefore(marks.runs, t, file, windowMs, slackMs);
}
