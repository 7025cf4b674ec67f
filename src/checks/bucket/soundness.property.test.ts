// Soundness of the abstract evaluator against a concrete one: on random policies and ACLs, every
// concrete request that S3's rules would allow (any attacker choice of transport, VPC endpoint,
// Referer; any object key) must show up as exposure of at least that caller's class. This is the
// "no false negatives" property a conservative checker owes its users (ASVS 8.2.2).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ACL_ACTIONS, S3_ACTIONS } from "./actions.ts";
import { parseBucketACL } from "./acl-parse.ts";
import { checkBucket } from "./check.ts";
import { globMatch } from "./glob.ts";
import { parseBucketPolicy, type PolicyStatement } from "./policy-parse.ts";

const B = "arn:aws:s3:::b";
const OWNER = "111122223333";
const NAMED = "444455556666";

interface Request {
  anonymous: boolean;
  account?: string;
  arn?: string;
  action: string;
  resource: string;
  context: Record<string, string | undefined>;
}

// ---- A concrete IAM evaluator (small, literal, for the vocabulary generated below) ----
function principalIn(st: PolicyStatement, r: Request): boolean {
  const p = st.principals;
  const member = p.everyone || p.aws.some((e) => e === "*" || (!r.anonymous && (e === r.account || e === `arn:aws:iam::${r.account}:root` || e === r.arn)));
  return st.notPrincipal ? !member : member;
}
function conditionHolds(op: string, key: string, values: string[], ctx: Request["context"]): boolean {
  const v = ctx[key];
  const base = op.replace(/IfExists$/, "");
  if (base === "Null") return values.includes(v === undefined ? "true" : "false");
  if (v === undefined) return op.endsWith("IfExists") || base.startsWith("StringNot") || base === "NotIpAddress";
  switch (base) {
    case "StringEquals": return values.includes(v);
    case "StringNotEquals": return !values.includes(v);
    case "StringLike": case "ArnLike": return values.some((p) => globMatch(p, v));
    case "StringNotLike": return !values.some((p) => globMatch(p, v));
    case "Bool": return values.includes(v);
    case "IpAddress": return values.some((c) => c === "0.0.0.0/0");  // the vocabulary's caller IP is public, 203.0.113.9
    case "NotIpAddress": return !values.some((c) => c === "0.0.0.0/0");
    default: throw new Error(`vocabulary operator missing: ${op}`);
  }
}
function matches(st: PolicyStatement, r: Request): boolean {
  const act = st.actions.some((a) => globMatch(a, r.action, { ignoreCase: true })) !== st.notAction;
  const res = st.resources.some((x) => globMatch(x, r.resource)) !== st.notResource;
  return act && res && principalIn(st, r) && st.conditions.every((c) => conditionHolds(c.operator, c.key, c.values, r.context));
}
function allowed(statements: PolicyStatement[], grants: { uri: string; permission: keyof typeof ACL_ACTIONS }[], r: Request): boolean {
  if (statements.some((s) => s.effect === "Deny" && matches(s, r))) return false;
  if (statements.some((s) => s.effect === "Allow" && matches(s, r))) return true;
  return grants.some((g) => ACL_ACTIONS[g.permission].includes(r.action) &&
    (g.uri.endsWith("AllUsers") || (g.uri.endsWith("AuthenticatedUsers") && !r.anonymous)));
}

// ---- Random inputs ----
const principal = fc.constantFrom<unknown>("*", { AWS: "*" }, { AWS: NAMED }, { AWS: `arn:aws:iam::${OWNER}:root` }, { AWS: `arn:aws:iam::${NAMED}:user/bob` }, { Service: "logging.s3.amazonaws.com" });
const action = fc.constantFrom("s3:*", "s3:Get*", "s3:GetObject", "s3:List*", "s3:ListBucket", "s3:PutObject", "s3:Delete*", "*", "s3:PutBucketAcl", "s3:*Acl");
const resource = fc.constantFrom(B, `${B}/*`, `${B}/public/*`, `${B}/secret/*`, "*", `${B}*`, `${B}/?`);
const condition = fc.constantFrom<unknown>(undefined,
  { Bool: { "aws:SecureTransport": "false" } }, { Bool: { "aws:SecureTransport": "true" } },
  { StringNotEquals: { "aws:PrincipalAccount": OWNER } }, { StringEquals: { "aws:PrincipalAccount": NAMED } },
  { StringEquals: { "aws:SourceVpce": "vpce-1" } }, { StringNotEquals: { "aws:SourceVpce": "vpce-1" } }, { StringEqualsIfExists: { "aws:SourceVpc": "vpc-1" } },
  { Null: { "aws:SourceVpce": "true" } }, { Null: { "aws:SourceVpce": "false" } },
  { IpAddress: { "aws:SourceIp": "0.0.0.0/0" } }, { IpAddress: { "aws:SourceIp": "10.0.0.0/8" } }, { NotIpAddress: { "aws:SourceIp": "10.0.0.0/8" } },
  { StringLike: { "aws:Referer": "x*" } }, { StringNotLike: { "aws:Referer": "x*" } });
const statement = fc.record({
  Effect: fc.constantFrom("Allow", "Deny"), negA: fc.boolean(), negP: fc.boolean(), negR: fc.boolean(), Principal: principal,
  Action: fc.array(action, { minLength: 1, maxLength: 2 }), Resource: fc.array(resource, { minLength: 1, maxLength: 2 }), Condition: condition,
}).map(({ negA, negP, negR, Condition, Principal, Action, Resource, Effect }) => ({
  Effect,
  [negP && typeof Principal === "object" ? "NotPrincipal" : "Principal"]: Principal,
  [negA ? "NotAction" : "Action"]: Action,
  [negR ? "NotResource" : "Resource"]: Resource,
  ...(Condition ? { Condition } : {}),
}));
const grant = fc.record({ uri: fc.constantFrom("http://acs.amazonaws.com/groups/global/AllUsers", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"), permission: fc.constantFrom("READ", "WRITE", "WRITE_ACP", "FULL_CONTROL", "READ_ACP") as fc.Arbitrary<keyof typeof ACL_ACTIONS> });

const CALLERS = [
  { who: "anonymous", anonymous: true },
  { who: "any-account", anonymous: false, account: "999988887777", arn: "arn:aws:iam::999988887777:user/eve" },
  { who: "named", anonymous: false, account: NAMED, arn: `arn:aws:iam::${NAMED}:user/bob` },
] as const;
const CONTEXTS: Request["context"][] = [];
for (const tls of ["true", "false"]) for (const vpce of [undefined, "vpce-attacker"]) for (const vpc of [undefined, "vpc-attacker"]) for (const referer of [undefined, "x-site", "zzz"]) {
  CONTEXTS.push({ "aws:securetransport": tls, "aws:sourcevpce": vpce, "aws:sourcevpc": vpc, "aws:referer": referer, "aws:sourceip": "203.0.113.9" });
}
const KEYS = ["public/a.txt", "secret/y", "x", "q"];

test("every concrete request S3 would allow is reported as exposure of that caller's class or a wider one", () => {
  fc.assert(fc.property(fc.array(statement, { maxLength: 5 }), fc.array(grant, { maxLength: 2 }), (sts, grants) => {
    const policy = parseBucketPolicy(JSON.stringify({ Statement: sts }), "p.json");
    const acl = parseBucketACL(JSON.stringify({ Owner: { ID: "owner" }, Grants: grants.map((g) => ({ Grantee: { Type: "Group", URI: g.uri }, Permission: g.permission })) }), "a.json");
    const { access } = checkBucket({ policy, acl, ownerAccount: OWNER, bucket: "b" });
    const named = access.named.find((n) => n.caller.kind === "account" && n.caller.account === NAMED);
    for (const c of CALLERS) {
      for (const a of S3_ACTIONS) {
        const resources = a.level === "bucket" ? [B] : KEYS.map((k) => `${B}/${k}`);
        const context = (ctx: Request["context"]): Request["context"] => ({ ...ctx, "aws:principalaccount": c.anonymous ? undefined : c.account });
        const hit = resources.some((resource) => CONTEXTS.some((ctx) => allowed(policy.statements, grants, { ...c, action: a.name, resource, context: context(ctx) })));
        if (!hit) continue;
        const k = a.class;
        const reported = c.who === "anonymous" ? access.anonymous[k].allowed
          : c.who === "any-account" ? access.anonymous[k].allowed || access.anyAccount[k].allowed
          : access.anonymous[k].allowed || access.anyAccount[k].allowed || named?.[k].allowed === true;
        assert.ok(reported, `${c.who} can ${a.name} concretely but the evaluator reports no ${k} exposure`);
      }
    }
  }), { numRuns: 400 });
});
