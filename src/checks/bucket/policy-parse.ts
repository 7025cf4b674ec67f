// Parses a bucket policy as `aws s3api get-bucket-policy` prints it ({"Policy": "<json string>"})
// or as a plain policy document, into typed statements. Shape errors name the file and the path.
import { BucketInputError } from "./errors.ts";
import { excerpt } from "../../lib/terminal.ts";
import { MAX_PATTERN_LENGTH } from "./glob.ts";
import { describe, isObject, parseBoundedJSON, stringList, type JSONObject, type JSONValue } from "./json-input.ts";

/** AWS caps a bucket policy at 20 KB, so real policies hold a few dozen statements at most. */
export const MAX_STATEMENTS = 500;

export interface PrincipalSet {
  /** `"*"` as the whole element. */
  everyone: boolean;
  aws: string[];
  service: string[];
  federated: string[];
  canonicalUser: string[];
}

export interface ConditionClause {
  /** Operator as written, e.g. `StringEqualsIfExists`, `ForAnyValue:StringLike`. */
  operator: string;
  /** Condition key in lower case (IAM keys are case-insensitive). */
  key: string;
  values: string[];
}

export interface PolicyStatement {
  index: number;
  sid: string | undefined;
  /** How findings name the statement: its Sid, or its position. */
  label: string;
  effect: "Allow" | "Deny";
  principals: PrincipalSet;
  /** True for NotPrincipal: the statement applies to everyone except `principals`. */
  notPrincipal: boolean;
  actions: string[];
  notAction: boolean;
  resources: string[];
  notResource: boolean;
  conditions: ConditionClause[];
}

export interface BucketPolicy {
  statements: PolicyStatement[];
  /** The file the policy came from, for messages about the policy as a whole. */
  source?: string | undefined;
}

const PRINCIPAL_KINDS: Record<string, keyof Omit<PrincipalSet, "everyone">> = {
  AWS: "aws",
  Service: "service",
  Federated: "federated",
  CanonicalUser: "canonicalUser",
};

function parsePrincipal(value: JSONValue | undefined, source: string, path: string): PrincipalSet {
  const set: PrincipalSet = { everyone: false, aws: [], service: [], federated: [], canonicalUser: [] };
  if (value === "*") {
    set.everyone = true;
    return set;
  }
  if (!isObject(value)) throw new BucketInputError(`${source}: ${path} must be "*" or an object such as {"AWS": ...}, got ${describe(value)}`);
  const keys = Object.keys(value);
  if (keys.length === 0) throw new BucketInputError(`${source}: ${path} is an empty object`);
  for (const key of keys) {
    // Own keys only: an inherited name (toString, constructor, __proto__) is an unknown type, not a crash.
    const kind = Object.hasOwn(PRINCIPAL_KINDS, key) ? PRINCIPAL_KINDS[key] : undefined;
    if (!kind) throw new BucketInputError(`${source}: ${path} has an unknown principal type "${excerpt(key)}" (expected AWS, Service, Federated or CanonicalUser)`);
    set[kind].push(...stringList(value[key], source, `${path}.${key}`));
  }
  return set;
}

// Operators and keys are quoted as short escaped excerpts: a hostile 500 KB key would otherwise be a 500 KB
// line on the operator's terminal.
function parseConditions(value: JSONValue | undefined, source: string, path: string): ConditionClause[] {
  if (value === undefined) return [];
  if (!isObject(value)) throw new BucketInputError(`${source}: ${path} must be an object, got ${describe(value)}`);
  const clauses: ConditionClause[] = [];
  for (const [operator, block] of Object.entries(value)) {
    if (!isObject(block)) throw new BucketInputError(`${source}: ${path}.${excerpt(operator)} must be an object of condition keys, got ${describe(block)}`);
    for (const [key, raw] of Object.entries(block)) {
      const list = Array.isArray(raw) ? raw : [raw];
      const values: string[] = [];
      for (const v of list) {
        if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") values.push(String(v));
        else throw new BucketInputError(`${source}: ${path}.${excerpt(operator)}.${excerpt(key)} values must be strings, numbers or booleans, got ${describe(v)}`);
      }
      clauses.push({ operator, key: key.toLowerCase(), values });
    }
  }
  return clauses;
}

/** Reads exactly one of `positive` / `negative` (Action/NotAction...) and says which was used. */
function pair(st: JSONObject, positive: string, negative: string, source: string, path: string): { list: JSONValue | undefined; negated: boolean } {
  const hasPos = positive in st;
  const hasNeg = negative in st;
  if (hasPos === hasNeg) throw new BucketInputError(`${source}: ${path} must have exactly one of ${positive} or ${negative}`);
  return hasPos ? { list: st[positive], negated: false } : { list: st[negative], negated: true };
}

/**
 * `list` checked for over-long values, each value once: an Action or Resource list is a set to IAM, and the pattern
 * work bound charges each new comparison, not a repeated one (was: 22,000 copies of one Resource beside 22,000 of
 * another cost 1 min 40 s of CPU, uncharged, past the README's bound).
 */
function bounded(list: string[], source: string, path: string): string[] {
  for (const s of list) {
    if (s.length > MAX_PATTERN_LENGTH) throw new BucketInputError(`${source}: ${path} has a value longer than ${MAX_PATTERN_LENGTH} characters`);
  }
  return [...new Set(list)];
}

function parseStatement(st: JSONValue, index: number, source: string): PolicyStatement {
  const path = `Statement[${index}]`;
  if (!isObject(st)) throw new BucketInputError(`${source}: ${path} must be an object, got ${describe(st)}`);
  const effect = st["Effect"];
  if (effect !== "Allow" && effect !== "Deny") throw new BucketInputError(`${source}: ${path}.Effect must be "Allow" or "Deny", got ${typeof effect === "string" ? JSON.stringify(effect.slice(0, 40)) : describe(effect)}`);
  const sidValue = st["Sid"];
  if (sidValue !== undefined && typeof sidValue !== "string") throw new BucketInputError(`${source}: ${path}.Sid must be a string, got ${describe(sidValue)}`);
  const sid = sidValue === undefined || sidValue === "" ? undefined : sidValue.slice(0, 200);
  const principal = pair(st, "Principal", "NotPrincipal", source, path);
  const action = pair(st, "Action", "NotAction", source, path);
  const resource = pair(st, "Resource", "NotResource", source, path);
  return {
    index,
    sid,
    label: sid === undefined ? `#${index}` : `${JSON.stringify(sid)} (#${index})`,
    effect,
    principals: parsePrincipal(principal.list, source, `${path}.${principal.negated ? "NotPrincipal" : "Principal"}`),
    notPrincipal: principal.negated,
    actions: bounded(stringList(action.list, source, `${path}.${action.negated ? "NotAction" : "Action"}`), source, path),
    notAction: action.negated,
    resources: bounded(stringList(resource.list, source, `${path}.${resource.negated ? "NotResource" : "Resource"}`), source, path),
    notResource: resource.negated,
    conditions: parseConditions(st["Condition"], source, `${path}.Condition`),
  };
}

/**
 * Parses a bucket policy file's text: either the document itself or get-bucket-policy's wrapper.
 *
 * @example
 * const policy = parseBucketPolicy('{"Statement":[]}', "policy.json"); // { statements: [] }
 */
export function parseBucketPolicy(text: string, source: string): BucketPolicy {
  let doc = parseBoundedJSON(text, source);
  if (isObject(doc) && Object.hasOwn(doc, "Policy")) {
    const inner = doc["Policy"];
    if (typeof inner !== "string") throw new BucketInputError(`${source}: Policy must be a string holding the policy JSON, got ${describe(inner)}`);
    doc = parseBoundedJSON(inner, `${source} (Policy)`);
  }
  if (!isObject(doc)) throw new BucketInputError(`${source}: a policy must be a JSON object, got ${describe(doc)}`);
  const version = doc["Version"];
  if (version !== undefined && typeof version !== "string") throw new BucketInputError(`${source}: Version must be a string, got ${describe(version)}`);
  const raw = doc["Statement"];
  if (raw === undefined) throw new BucketInputError(`${source}: the policy has no Statement`);
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length > MAX_STATEMENTS) throw new BucketInputError(`${source}: more than ${MAX_STATEMENTS} statements`);
  return { statements: list.map((st, i) => parseStatement(st, i, source)), source };
}
