// Turns the evaluated access into Findings: the widest exposure per class (read, write), named
// cross-account access, and configuration findings (conflicts, transport, Block Public Access).
import type { Finding, Severity } from "../finding.ts";
import { actionCovered, type AccessClass } from "./actions.ts";
import type { PublicAccessBlock } from "./acl-parse.ts";
import { describeCaller, type Caller } from "./callers.ts";
import { evaluateConditions, TRANSPORT_KEYS } from "./conditions.ts";
import type { BucketAccess, BucketInputs, CallerAccess, ClassAccess, PinnedGrant } from "./evaluate.ts";
import type { Pin } from "./pins.ts";
import type { PolicyStatement } from "./policy-parse.ts";
import { principalCovers, reachesOthersOnlyAsService } from "./principals.ts";

// Severities. Writes are critical everywhere: tampering, deletion and ransom need no knowledge of
// the content. Reads by anonymous callers or by any AWS account are critical too: an AWS account is
// free and self-service, so "any account" is no barrier (seed 004: Sentry's database backups), and
// the check cannot see whether the objects are harmless. Named foreign accounts are medium: access
// someone chose to give, to be reviewed.
const EXPOSURE: Record<"anonymous" | "any-aws-account", Record<AccessClass, Severity>> = {
  anonymous: { read: "critical", write: "critical" },
  "any-aws-account": { read: "critical", write: "critical" },
};

function evidenceOf(cls: ClassAccess): Record<string, unknown> {
  return {
    actions: cls.actions,
    grantedBy: cls.grantedBy,
    narrowedBy: cls.narrowedBy,
    uncertainDenies: cls.uncertainDenies,
  };
}

/**
 * Why a grant through an AWS service is any account's: the statements among `grantedBy` that reach other accounts
 * only through a service, with the sentence that says so (AWS does not call them public, so the reader needs it).
 */
function throughServices(grantedBy: readonly string[], inputs: BucketInputs): { statements: string[]; text: string } {
  const statements = (inputs.policy?.statements ?? []).filter((st) => grantedBy.includes(st.label) && reachesOthersOnlyAsService(st)).map((st) => st.label);
  if (statements.length === 0) return { statements, text: "" };
  return {
    statements,
    text: ` ${listed(statements, "; ")} grant${statements.length === 1 ? "s" : ""} to an AWS service principal without a fixed aws:SourceArn, ` +
      "aws:SourceAccount or aws:SourceOrgID naming the owner's own resource or account: a service acts for whichever account asks it " +
      "(any account can point a CloudFront distribution of its own at this bucket), so this is open to every account although AWS does not call it public.",
  };
}

function exposure(who: "anonymous" | "any-aws-account", cls: AccessClass, access: ClassAccess, bucket: string, inputs: BucketInputs): Finding {
  const whom = who === "anonymous" ? "Anyone on the internet, without credentials," : "Any AWS account (accounts are free to create)";
  const verb = cls === "read" ? "read or list objects in" : "write, delete or re-permission objects in, or reconfigure,";
  const services = who === "any-aws-account" ? throughServices(access.grantedBy, inputs) : { statements: [], text: "" };
  return {
    id: `bucket.${who}-${cls}`,
    severity: EXPOSURE[who][cls],
    title: `${who === "anonymous" ? "Anonymous" : "Any AWS account"} ${cls} access to ${bucket}`,
    detail: `${whom} can ${verb} ${bucket} (${access.actions.join(", ")}), granted by ${access.grantedBy.join("; ")}.` +
      (access.narrowedBy.length > 0 ? ` Denies that narrow it but leave this open: ${access.narrowedBy.join("; ")}.` : "") +
      (access.uncertainDenies.length > 0 ? ` Denies not counted (the caller can avoid them, or their conditions are not understood): ${access.uncertainDenies.map((u) => u.statement).join("; ")}.` : "") +
      services.text,
    evidence: { bucket, class: cls, caller: who, ...evidenceOf(access), ...(services.statements.length > 0 ? { throughServices: services.statements } : {}) },
    remediation: "Remove the public grant (policy statement or ACL grant); turn on all four Block Public Access settings; " +
      "add a Deny whose condition every outsider meets (e.g. StringNotEquals aws:PrincipalAccount = your account)." +
      (services.statements.length > 0 ? ' For a service grant, add the condition its documentation gives, e.g. {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::OWNER:distribution/ID"}}.' : ""),
  };
}

function widest(access: BucketAccess, cls: AccessClass): "anonymous" | "any-aws-account" | "named" | undefined {
  if (access.anonymous[cls].allowed) return "anonymous";
  if (access.anyAccount[cls].allowed) return "any-aws-account";
  return access.named.some((n) => n[cls].allowed) ? "named" : undefined;
}

/** Whether a named caller is known to be outside the owner account (undefined: cannot tell). */
function foreign(caller: Caller, inputs: BucketInputs): boolean | undefined {
  if (caller.kind === "account") return inputs.ownerAccount === undefined ? undefined : caller.account !== inputs.ownerAccount;
  if (caller.kind === "canonical") return inputs.acl?.ownerId === undefined ? undefined : true;
  return true;
}

/** Names shown in a finding's text before "… and N more" (the evidence keeps them all): a policy may name thousands. */
const NAMED_IN_TEXT = 20;

/** The first items as `show` writes them (only those are written), then how many more. */
function listedBy<T>(items: readonly T[], show: (item: T) => string, separator: string): string {
  const shown = items.slice(0, NAMED_IN_TEXT).map(show).join(separator);
  return items.length > NAMED_IN_TEXT ? `${shown}${separator}… and ${items.length - NAMED_IN_TEXT} more (see the evidence)` : shown;
}

function listed(items: readonly string[], separator: string): string {
  return listedBy(items, (item) => item, separator);
}

function crossAccount(access: BucketAccess, inputs: BucketInputs, bucket: string): Finding[] {
  const findings: Finding[] = [];
  const rows: Record<string, unknown>[] = [];
  const unknown: string[] = [];
  for (const cls of ["read", "write"] as const) {
    if (widest(access, cls) !== "named") continue;
    for (const n of access.named) {
      if (!n[cls].allowed) continue;
      const f = foreign(n.caller, inputs);
      if (f === undefined) unknown.push(describeCaller(n.caller));
      else if (f) rows.push({ grantee: describeCaller(n.caller), class: cls, ...evidenceOf(n[cls]) });
    }
  }
  if (rows.length > 0) {
    findings.push({
      id: "bucket.cross-account",
      severity: "medium",
      title: `${bucket} is shared with other AWS accounts`,
      detail: listed(rows.map((r) => `${String(r["grantee"])} can ${String(r["class"])} (granted by ${(r["grantedBy"] as string[]).join("; ")})`), ". ") + ".",
      evidence: { bucket, grants: rows },
      remediation: "Confirm each account still needs this access; prefer a role in your account that the partner assumes, with a condition on aws:PrincipalOrgID or an external id.",
    });
  }
  if (unknown.length > 0) {
    findings.push({
      id: "bucket.owner-account-unknown",
      severity: "info",
      title: "Accounts with access could not be classified as own or foreign",
      detail: `Access is granted to ${listed([...new Set(unknown)], ", ")}; give --owner-account (or the ACL) to tell whether they are outside the bucket owner's account.`,
      evidence: { grantees: [...new Set(unknown)] },
      remediation: "Rerun with --owner-account ACCOUNT_ID.",
    });
  }
  return findings;
}

/** How a finding shows a pin's clause: `IpAddress aws:sourceip 198.51.100.7/32`. */
function describeClause(p: Pin): string {
  return `${p.operator} ${p.key} ${listed(p.values, ", ")}`;
}

/** Exception clauses of a Deny shown in a finding's text (the evidence keeps them all). */
const CLAUSES_IN_TEXT = 3;

/**
 * How a finding shows a Deny that an Allow escapes, where it first names it: `"OnlyFromThere" (#1) does not apply
 * (its StringNotEquals aws:sourcevpce vpce-1a2b fails)`; with several exception clauses, their count and the first
 * few (one failing is enough: a Deny applies only where all its conditions hold).
 */
function describeDeny(deny: string, pins: readonly Pin[]): string {
  const [only] = pins;
  if (pins.length === 1 && only) return `${deny} does not apply (its ${describeClause(only)} fails)`;
  const more = pins.length > CLAUSES_IN_TEXT ? `; … and ${pins.length - CLAUSES_IN_TEXT} more (see the evidence)` : "";
  return `${deny} does not apply (one of its ${pins.length} exception clauses fails: ${pins.slice(0, CLAUSES_IN_TEXT).map(describeClause).join("; ")}${more})`;
}

/** A pinned grant with its own pins apart, and the exception clauses of each Deny it escapes by the Deny's label. */
interface SplitGrant {
  grant: PinnedGrant;
  own: Pin[];
  denies: Map<string, Pin[]>;
}

function splitPins(grant: PinnedGrant): SplitGrant {
  const own: Pin[] = [];
  const denies = new Map<string, Pin[]>();
  for (const p of grant.pins) {
    if (p.deny === undefined) own.push(p);
    else {
      const clauses = denies.get(p.deny);
      if (clauses) clauses.push(p);
      else denies.set(p.deny, [p]);
    }
  }
  return { grant, own, denies };
}

// Medium, as bucket.cross-account: access someone gave to callers outside the owner account, to be reviewed. The
// check cannot tell whose address, endpoint or organisation a pin names (the owner's office, or an intruder's /32
// or an EC2 address in 3.0.0.0/8 that any account can rent), so it neither calls it public nor stays silent.
function pinned(access: BucketAccess, bucket: string): Finding[] {
  if (access.pinnedGrants.length === 0) return [];
  const whom = (g: PinnedGrant): string => (g.callers.includes("anonymous") ? "anyone (unsigned requests included)" : "any AWS account");
  const what = (g: PinnedGrant): string => [g.read.length > 0 ? `read (${g.read.join(", ")})` : "", g.write.length > 0 ? `write (${g.write.join(", ")})` : ""].filter(Boolean).join(" and ");
  // Every Allow beside a Deny with exceptions escapes it, so a Deny's clauses are written once (in the text where it
  // is first named, by label after; in the evidence under denyExceptions), not once per Allow: that made a 19 KB
  // policy's detail 900 KB and a 68 KB one's evidence 12 MB.
  const grants = access.pinnedGrants.map(splitPins);
  const exceptions = new Map<string, Set<Pin>>();
  for (const { denies } of grants) {
    for (const [deny, clauses] of denies) {
      const all = exceptions.get(deny);
      if (!all) exceptions.set(deny, new Set(clauses));
      else for (const p of clauses) all.add(p);
    }
  }
  const named = new Set<string>();
  // A grant's conditions are its own pins, then the Denies it escapes, by label.
  const condition = (c: Pin | string): string => {
    if (typeof c !== "string") return describeClause(c);
    if (named.has(c)) return `${c} does not apply`;
    named.add(c);
    return describeDeny(c, [...(exceptions.get(c) ?? [])]);
  };
  const sentence = ({ grant: g, own, denies }: SplitGrant): string =>
    `${g.statement} lets ${whom(g)} ${what(g)} when ${listedBy([...own, ...denies.keys()], condition, " and ")}`;
  return [{
    id: "bucket.pinned-grant",
    severity: "medium",
    title: `${bucket} is open to callers outside the owner account at an address, network or organisation the check cannot attribute`,
    detail: listedBy(grants, sentence, ". ") +
      ". Whoever holds that address, VPC endpoint, organisation, source resource, access point or KMS key has this access; the check cannot tell whether it is yours.",
    evidence: {
      bucket,
      grants: grants.map(({ grant: g, own, denies }) => ({ statement: g.statement, callers: g.callers, read: g.read, write: g.write, pins: own, ...(denies.size > 0 ? { denies: [...denies.keys()] } : {}) })),
      ...(exceptions.size > 0 ? { denyExceptions: [...exceptions].map(([deny, pins]) => ({ deny, pins: [...pins].map((p) => ({ operator: p.operator, key: p.key, values: p.values })) })) } : {}),
    },
    remediation: "Confirm that each pinned address, VPC, endpoint, organisation, source, access point or key is your own; prefer naming your account as the principal " +
      "(or aws:PrincipalAccount = your account) beside the network condition, so the grant does not rest on the pin alone.",
  }];
}

function conflicts(access: BucketAccess, inputs: BucketInputs, bucket: string): Finding[] {
  const items: Record<string, unknown>[] = [];
  const classes: [string, CallerAccess][] = [["anonymous", access.anonymous], ["any AWS account", access.anyAccount]];
  for (const [who, ca] of classes) {
    for (const cls of ["read", "write"] as const) {
      const c = ca[cls];
      // The Sentry case: the policy looks strict, but the ACL grants what the policy does not.
      if (inputs.policy && c.viaACL && !c.viaPolicy) {
        items.push({ kind: "acl-wider-than-policy", caller: who, class: cls, grants: c.grantedBy });
      }
      const dodgeable = c.uncertainDenies.filter((u) => u.undecidedKeys.some((k) => !TRANSPORT_KEYS.has(k)));
      if (c.allowed && dodgeable.length > 0) {
        items.push({ kind: "deny-may-not-apply", caller: who, class: cls, allows: c.grantedBy, denies: dodgeable });
      }
    }
  }
  if (items.length === 0) return [];
  return [{
    id: "bucket.conflicting-statements",
    severity: "medium",
    title: `Permissions on ${bucket} conflict: a restriction does not hold`,
    detail: "S3 grants a request when the policy OR the ACL allows it and no Deny certainly applies. " +
      items.map((i) => i["kind"] === "acl-wider-than-policy"
        ? `The ACL gives ${String(i["caller"])} ${String(i["class"])} access that no policy statement gives (${(i["grants"] as string[]).join("; ")}).`
        : `Deny ${(i["denies"] as { statement: string }[]).map((d) => d.statement).join("; ")} overlaps ${String(i["caller"])} ${String(i["class"])} access but its conditions can be avoided or are not understood.`).join(" "),
    evidence: { bucket, conflicts: items },
    remediation: "Keep one source of truth: disable ACLs (Object Ownership: BucketOwnerEnforced) and express access in the policy only; make each Deny's condition one every outsider meets.",
  }];
}

function enforcesTLS(st: PolicyStatement): boolean {
  if (st.effect !== "Deny" || principalCovers(st, { kind: "anonymous" }) !== "always") return false;
  if (!actionCovered(st, "s3:GetObject") || !actionCovered(st, "s3:PutObject")) return false;
  return st.conditions.some((c) => c.key === "aws:securetransport" && /^bool(ifexists)?$/i.test(c.operator) && c.values.some((v) => v.toLowerCase() === "false")) &&
    evaluateConditions(st.conditions.filter((c) => c.key !== "aws:securetransport"), { kind: "anonymous" }).truth !== "never";
}

function blockPublicAccess(pab: PublicAccessBlock): Finding[] {
  const off = (Object.keys(pab) as (keyof PublicAccessBlock)[]).filter((k) => !pab[k]);
  if (off.length === 0) return [];
  return [{
    id: "bucket.block-public-access-off",
    severity: "info",
    title: `Block Public Access settings off: ${off.join(", ")}`,
    detail: "IgnorePublicAcls and RestrictPublicBuckets change what existing grants allow (and are applied in this evaluation); " +
      "BlockPublicAcls and BlockPublicPolicy only refuse future PUTs of public ACLs and policies. Account-level settings, not shown here, may also apply.",
    evidence: { settings: pab, off },
    remediation: "aws s3api put-public-access-block --bucket BUCKET --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
  }];
}

/**
 * Builds the findings for an evaluated bucket.
 *
 * @example
 * const findings = bucketFindings(evaluateBucketAccess(inputs), inputs);
 */
export function bucketFindings(access: BucketAccess, inputs: BucketInputs): Finding[] {
  const bucket = access.bucket ?? "the bucket";
  const findings: Finding[] = [];
  for (const cls of ["read", "write"] as const) {
    const w = widest(access, cls);
    if (w === "anonymous") findings.push(exposure("anonymous", cls, access.anonymous[cls], bucket, inputs));
    if (w === "any-aws-account") findings.push(exposure("any-aws-account", cls, access.anyAccount[cls], bucket, inputs));
  }
  findings.push(...crossAccount(access, inputs, bucket), ...pinned(access, bucket), ...conflicts(access, inputs, bucket));
  if (inputs.policy && !inputs.policy.statements.some(enforcesTLS)) {
    findings.push({
      id: "bucket.no-secure-transport",
      severity: "low",
      title: `${bucket} accepts requests over plain HTTP`,
      detail: "No Deny statement refuses requests where aws:SecureTransport is false, so data and signed requests can travel unencrypted.",
      evidence: { bucket },
      remediation: 'Add {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":[bucket ARN, bucket ARN + "/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}.',
    });
  }
  if (inputs.publicAccessBlock) findings.push(...blockPublicAccess(inputs.publicAccessBlock));
  return findings;
}
