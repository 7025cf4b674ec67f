// Small helpers for benchmarks: timing and formatted ratios.
export function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export function now(): bigint {
  return process.hrtime.bigint();
}

export function rate(count: number, secs: number): string {
  return `${Math.round(count / secs).toLocaleString("en-US")}/s`;
}

export function line(label: string, value: string, note: string = ""): void {
  process.stdout.write(`${label.padEnd(44)} ${value}${note ? `  (${note})` : ""}\n`);
}

/** CPU seconds of this process so far, every thread included (the libuv pool too): getrusage(RUSAGE_SELF). */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * CPU seconds (user and system) of the calling thread alone: on the server's thread, its event-loop work without the
 * hashing threads or other workers. Linux charges thread time at the scheduler's tick, so it is only meaningful
 * summed over many requests (hundreds), never for one.
 */
export function threadSeconds(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Runs `count` calls of `fn` (given their index) with `limit` in flight; returns the wall time in seconds. */
export async function inFlight(count: number, limit: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t = now();
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) await fn(next++);
  }));
  return seconds(t);
}

/** The nearest-rank percentile `p` (0–100) of values sorted ascending. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/**
 * The median and middle half of per-round ratios, so a reader can tell a difference from run-to-run noise.
 *
 * @example
 * spread([0.93, 0.95, 0.96, 0.97]) // "median 0.96, middle half 0.95–0.97 over 4 rounds"
 */
export function spread(ratios: readonly number[], digits = 2): string {
  if (ratios.length === 0) return "no rounds";
  const sorted = [...ratios].sort((a, b) => a - b);
  const at = (p: number): string => percentile(sorted, p).toFixed(digits);
  return `median ${at(50)}, middle half ${at(25)}–${at(75)} over ${sorted.length} rounds`;
}
