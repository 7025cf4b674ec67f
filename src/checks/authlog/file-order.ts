// What the analyzer keeps of bans and brute-force windows, file by file, so that a login is judged against a brute
// force in any other file by the stamps, whatever order the files come in (`auth.log*` expands newest first).
import type { AttackRun, BanSpan, LineRef } from "./types.ts";

/**
 * Runs kept per user. Each is one file's brute-force windows without a gap longer than the compromise window, so a
 * user needs more than this many separate attacks (or files) to reach it; past it the last run is stretched (and
 * belongs to no file), which can only make more logins suspect, never fewer.
 */
export const MAX_ATTACK_RUNS = 16;

/**
 * Records a ban at `t` in file `file` (1-based, in the order read).
 *
 * @example
 * const span = recordBan(null, t, 2, "auth.log.1", 30);
 */
export function recordBan(span: BanSpan | null, t: number, file: number, name: string, line: number): BanSpan {
  // The line is only made into an object when it is kept: a sustained brute force bans every few failures.
  if (span === null) return { earliestMs: t, earliestFile: file, earliestAt: { file: name, line }, otherMs: Number.NaN, otherFile: 0, otherAt: null, lastFile: file };
  span.lastFile = file;
  if (file === span.earliestFile) {
    // The earliest outside this file is unchanged.
    if (t < span.earliestMs) [span.earliestMs, span.earliestAt] = [t, { file: name, line }];
  } else if (t < span.earliestMs) {
    // The old earliest lies in another file than `file`, and no ban outside `file` is earlier than it.
    [span.otherMs, span.otherFile, span.otherAt] = [span.earliestMs, span.earliestFile, span.earliestAt];
    [span.earliestMs, span.earliestFile, span.earliestAt] = [t, file, { file: name, line }];
  } else if (!(t >= span.otherMs)) {
    [span.otherMs, span.otherFile, span.otherAt] = [t, file, { file: name, line }];
  }
  return span;
}

/** The earliest ban outside file `file`, if any. */
export function earliestBanOutside(span: BanSpan, file: number): { ms: number; at: LineRef } | undefined {
  if (span.earliestFile !== file) return { ms: span.earliestMs, at: span.earliestAt };
  return span.otherAt === null ? undefined : { ms: span.otherMs, at: span.otherAt };
}

/**
 * Records a brute-force window a user completed at `t` in file `file`: it joins the last run when that run is of the
 * same file and within `windowMs`, else starts one. Within a run no two consecutive windows lie more than `windowMs`
 * apart, so "a window within `windowMs` before t" holds for a run exactly when the run's span meets [t - windowMs, t].
 */
export function recordAttack(runs: AttackRun[] | null, t: number, file: number, windowMs: number, name: string, line: number): AttackRun[] {
  const list = runs ?? [];
  const last = list[list.length - 1];
  if (last !== undefined && ((last.file === file && t >= last.firstMs - windowMs && t <= last.lastMs + windowMs) || list.length >= MAX_ATTACK_RUNS)) {
    // A stretched run holding windows of two files belongs to none (files count from 1): every login is judged by it.
    if (last.file !== file) last.file = 0;
    if (t < last.firstMs) [last.firstMs, last.firstAt] = [t, { file: name, line }];
    if (t > last.lastMs) last.lastMs = t;
    return list;
  }
  list.push({ file, firstMs: t, lastMs: t, firstAt: { file: name, line } });
  return list;
}

/**
 * A run outside file `file` with a window in [t - windowMs, t + slackMs] (the slack forgives a sending host's clock
 * that lags by a second), if any.
 */
export function attackBefore(runs: readonly AttackRun[], t: number, file: number, windowMs: number, slackMs: number): AttackRun | undefined {
  return runs.find((r) => r.file !== file && r.firstMs <= t + slackMs && r.lastMs >= t - windowMs);
}
