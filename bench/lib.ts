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
