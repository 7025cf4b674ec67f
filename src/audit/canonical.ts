// Canonical JSON for audit data: keys sorted at every level, no undefined, finite numbers only.
// The same value always encodes to the same text, so its hash can be recomputed anywhere.
import { InputError } from "../lib/errors.ts";

const MAX_DEPTH = 32;

function normalise(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new InputError("BULWARK_ERR_AUDIT_DATA", `audit data is nested deeper than ${MAX_DEPTH} levels`);
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new InputError("BULWARK_ERR_AUDIT_DATA", "audit data holds a non-finite number");
    // JSON has no negative zero: -0 encodes as 0, so the value handed back must be 0 too.
    return value === 0 ? 0 : value;
  }
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : normalise(v, depth + 1)));
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value as object).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v === undefined) continue;
      // A key named __proto__ is data like any other: assigned, it would replace the prototype and vanish
      // from the encoding. Defined as an own property, it is kept, as JSON.parse keeps it.
      if (key === "__proto__") Object.defineProperty(out, key, { value: normalise(v, depth + 1), enumerable: true, writable: true, configurable: true });
      else out[key] = normalise(v, depth + 1);
    }
    return out;
  }
  throw new InputError("BULWARK_ERR_AUDIT_DATA", `audit data holds a value of type ${typeof value}`);
}

/**
 * The canonical form of `value` as plain data: what JSON.parse(canonicalJSON(value)) returns, without the
 * round trip (a fresh value, sharing nothing with `value`).
 *
 * @example
 * canonicalValue({ b: 1, a: new Date(0) }) // { a: "1970-01-01T00:00:00.000Z", b: 1 }
 */
export function canonicalValue(value: unknown): unknown {
  return normalise(value, 0);
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
