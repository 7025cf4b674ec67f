// Canonical JSON for audit data: keys sorted at every level, no undefined, finite numbers only.
// The same value always encodes to the same text, so its hash can be recomputed anywhere.
import { InputError } from "../lib/errors.ts";

const MAX_DEPTH = 32;

function normalise(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new InputError("BULWARK_ERR_AUDIT_DATA", `audit data is nested deeper than ${MAX_DEPTH} levels`);
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new InputError("BULWARK_ERR_AUDIT_DATA", "audit data holds a non-finite number");
    return value;
  }
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : normalise(v, depth + 1)));
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value as object).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = normalise(v, depth + 1);
    }
    return out;
  }
  throw new InputError("BULWARK_ERR_AUDIT_DATA", `audit data holds a value of type ${typeof value}`);
}

/**
 * Encodes `value` as canonical JSON.
 *
 * @example
 * canonicalJSON({ b: 1, a: [true, null] }) // '{"a":[true,null],"b":1}'
 */
export function canonicalJSON(value: unknown): string {
  return JSON.stringify(normalise(value, 0));
}
