// Event times as stored: epoch milliseconds from the appending clock. Pure and import-free, so the CLI can load it
// without the store. Readers format them with isoOrNull (src/lib/calendar.ts), which never throws on an altered one.

/**
 * The latest time a JavaScript Date holds, either side of the epoch: 8.64e15 ms (ECMA-262, "Time Values and Time
 * Range"). No append writes a time past it (appends read the clock, Date.now()), so a stored time past it
 * is an altered row.
 */
export const MAX_EVENT_TIME_MS = 8.64e15;

/** Whether `ms` is a time an append can have written: a finite number a Date can hold. */
export function isEventTime(ms: number): boolean {
  return Math.abs(ms) <= MAX_EVENT_TIME_MS;
}
