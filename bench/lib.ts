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

/**
 * The median and middle half of per-round ratios, so a reader can tell a difference from run-to-run noise.
 *
 * @example
 * spread([0.93, 0.95, 0.96, 0.97]) // "median 0.95, middle half 0.94–0.96 over 4 rounds"
 */
export function spread(ratios: readonly number[], digits = 2): string {
  if (ratios.length === 0) return "no rounds";
  const sorted = [...ratios].sort((a, b) => a - b);
  const at = (q: number): number => {
    const i = q * (sorted.length - 1);
    const lo = Math.floor(i);
    const hi = Math.ceil(i);
    return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (i - lo);
  };
  return `median ${at(0.5).toFixed(digits)}, middle half ${at(0.25).toFixed(digits)}–${at(0.75).toFixed(digits)} over ${sorted.length} rounds`;
}
