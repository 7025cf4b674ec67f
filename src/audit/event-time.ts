// Event times as stored: epoch milliseconds from the appending clock. Pure and import-free, so the CLI can load it
// without the store.

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

/**
 * An event's time as ISO 8601, or null for one no Date can hold (an altered row). Never throws: every reader of
 * the log (verify's report, tail, the API) formats times with it, so one altered time cannot fail the reader
 * (`new Date(ms).toISOString()` throws a RangeError) and hide the events after it.
 *
 * @example
 * eventTimeISO(0)       // "1970-01-01T00:00:00.000Z"
 * eventTimeISO(9e15)    // null
 */
export function eventTimeISO(ms: number): string | null {
  return isEventTime(ms) ? new Date(ms).toISOString() : null;
}
