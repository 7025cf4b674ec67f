// Linear-time benchmark: three checks the red-team rounds made slow with inputs inside their documented bounds, each
// timed on a large input against a small one of the same shape in the same run, printed as that ratio beside the
// ratio linear work gives. The tests count the work done (list lookups, clause reads, statements); this is the time.
//   1. the password policy: five-plus adversarial shapes at 1024 characters ÷ the same shapes at 64 (linear: 16×; a
//      quadratic period scan or a lookup per candidate period tends to 256×);
//   2. `check bucket` on pinned Allows beside Denies with many exception clauses: a 68 KB policy (52 Allows, 10 one-
//      action Allows, 20 Denies of 100 clauses) ÷ a 19 KB one (30 Allows, 5 Denies), against the ratio of their sizes
//      (each Deny re-evaluated for every Allow gives about four times that);
//   3. `check logins` over an account's altered failure rows (data that is not JSON, 100,000-character and numeric
//      addresses, an "ip" forged in the user agent): ten times the rows ÷ the rows once (linear: 10×);
//   4. a JSON request body through Bulwark's parser (registerJSONParser: parse, then the duplicate-key scan): 200,000
//      nested arrays ÷ 200,000 empty arrays side by side, the same bytes (linear in the bytes: about 1×; work growing
//      with the depth, such as a key path copied per level, tends to thousands);
//   5. four parsers the tests feed hostile input without a stopwatch: a salted-hash template padded with 100,000
//      spaces ÷ 10,000; sshd's time value of 16,000 digits and a bad character ÷ 1,600; an sshd wildcard pattern
//      (5,000 characters against 200 stars) ÷ a tenth of both; an sshd_config of 300 Match blocks ÷ 30 (each linear
//      10× for the first two; backtracking shows as thousands or as a run that does not end).
// Each ratio is the median of ROUNDS rounds (BENCH_LINEAR_ROUNDS, 7), with the middle half to show the noise.
import Fastify from "fastify";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCommonPasswordList } from "../src/accounts/password-policy/common-list.ts";
import { createPasswordPolicy } from "../src/accounts/password-policy/index.ts";
import { canonicalJSON } from "../src/audit/canonical.ts";
import { checkBucket } from "../src/checks/bucket/check.ts";
import { parseBucketPolicy } from "../src/checks/bucket/policy-parse.ts";
import { checkLogins, DEFAULT_LOGINS_OPTIONS } from "../src/checks/logins/index.ts";
import { registerJSONParser } from "../src/http/auth/form-body.ts";
import { parseSaltedTemplate } from "../src/accounts/passwords/salted.ts";
import { checkSshConfig } from "../src/checks/ssh/findings.ts";
import { parseSshdConfig } from "../src/checks/ssh/parser.ts";
import { matchPattern } from "../src/checks/ssh/patterns.ts";
import { parseTime } from "../src/checks/ssh/values.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { line, median, now, seconds, spread } from "./lib.ts";

const ROUNDS = Number(process.env["BENCH_LINEAR_ROUNDS"] ?? 7);

/** Seconds for `reps` calls of `fn`, after one call to warm it. */
async function time(reps: number, fn: () => unknown): Promise<number> {
  await fn();
  const t = now();
  for (let i = 0; i < reps; i++) await fn();
  return seconds(t);
}

/** Per round: time of `large` ÷ time of `small`, each run `reps` times, alternating which goes first. */
async function ratios(reps: number, small: () => unknown, large: () => unknown): Promise<number[]> {
  const out: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      const s = await time(reps, small);
      out.push((await time(reps, large)) / s);
    } else {
      const l = await time(reps, large);
      out.push(l / (await time(reps, small)));
    }
  }
  return out;
}

/** The adversarial shapes of test/third-batch-red-team.test.ts, at `n` code points. */
function passwordShapes(n: number): string[] {
  return [
    "a".repeat(n - 1) + "b",
    "ab".repeat(n / 2 - 1) + "c",
    "abcdefghijkl".repeat(Math.ceil(n / 12)).slice(0, n - 1) + "!",
    "e\u0301".repeat(n / 2),
    "\u200B".repeat(n - 24) + "x".repeat(24),
    "abcdefghijklmnop".repeat(n / 16),
    "abcdefghijklmno-".repeat(n / 16).slice(0, n - 1),
  ];
}

async function passwordPolicy(): Promise<void> {
  const p = createPasswordPolicy({ maxLength: 1024, commonPasswords: createCommonPasswordList(["x".repeat(12)]) });
  const context = { extraWords: ["Ångström ".repeat(20), "İ".repeat(150)], username: "ab".repeat(30) };
  const checkAll = (inputs: string[]) => async (): Promise<void> => {
    for (const password of inputs) await p.check(password, context);
  };
  const r = await ratios(40, checkAll(passwordShapes(64)), checkAll(passwordShapes(1024)));
  line("password policy: 1024 chars ÷ 64 chars", `${median(r).toFixed(1)}×`, `${spread(r, 1)}; linear work: 16×, quadratic up to 256×`);
}

function bucketPolicy(allows: number, denies: number, perAction: boolean): string {
  const B = "arn:aws:s3:::acme-backups";
  const keys = ["aws:SourceVpce", "aws:SourceVpc", "aws:PrincipalOrgID", "aws:SourceAccount", "aws:PrincipalAccount", "aws:SourceOwner", "aws:SourceOrgID", "aws:SourceVpcArn", "aws:PrincipalArn", "aws:SourceArn", "aws:PrincipalOrgPaths", "aws:SourceOrgPaths", "s3:DataAccessPointAccount"];
  const operators = ["StringNotEquals", "StringNotEqualsIfExists", "StringNotLike", "StringNotLikeIfExists", "StringNotEqualsIgnoreCase", "StringNotEqualsIgnoreCaseIfExists", "ArnNotEquals", "ArnNotEqualsIfExists"];
  const exceptions: Record<string, Record<string, string>> = {};
  let n = 0;
  for (const op of operators) for (const key of keys) if (n++ < 100) (exceptions[op] ??= {})[key] = `x${n}`;
  const actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:GetObjectVersion", "s3:PutObjectAcl", "s3:ListBucket", "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:RestoreObject", "s3:AbortMultipartUpload"];
  const statements = [
    ...Array.from({ length: allows }, (_, i) => ({ Sid: `At${i}`, Effect: "Allow", Principal: "*", Action: "s3:*", Resource: `${B}/*`, Condition: { StringEquals: { "aws:SourceVpce": `vpce-${i}` } } })),
    ...(perAction ? actions : []).map((a, i) => ({ Sid: `One${i}`, Effect: "Allow", Principal: "*", Action: a, Resource: `${B}/*`, Condition: { StringEquals: { "aws:SourceVpce": "vpce-one" } } })),
    ...Array.from({ length: denies }, (_, i) => ({ Sid: `Fence${i}`, Effect: "Deny", Principal: "*", Action: "s3:*", Resource: `${B}/*`, Condition: exceptions })),
  ];
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

async function bucket(): Promise<void> {
  const small = bucketPolicy(30, 5, false);
  const large = bucketPolicy(52, 20, true);
  const judge = (text: string) => (): void => {
    checkBucket({ policy: parseBucketPolicy(text, "policy.json"), ownerAccount: "111122223333" });
  };
  const r = await ratios(5, judge(small), judge(large));
  line("check bucket: 68 KB policy ÷ 19 KB policy", `${median(r).toFixed(1)}×`, `${spread(r, 1)}; sizes ${(large.length / small.length).toFixed(1)}×, Denies per Allow about 4× that`);
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const T0 = Date.UTC(2026, 11, 10);

/** A store holding `copies` batches of test/new-code-twentytwo-red-team.test.ts's altered failure rows for one account. */
async function alteredStore(dir: string, copies: number): Promise<Database> {
  const database = openSQLite(join(dir, `logins-${copies}.db`), { create: true });
  await migrate(database, new ManualClock(T0 - 30 * 24 * HOUR));
  const rows: Array<{ type: string; at: number; data: string }> = [];
  let at = T0 + HOUR;
  const step = (23 * HOUR) / (26 * copies + 2);
  const failure = (data: Record<string, unknown>): void => {
    rows.push({ type: "auth.login.failed", at: Math.round((at += step)), data: canonicalJSON({ reason: "wrong-password", userAgent: "Mozilla/5.0", ...data }) });
  };
  for (let c = 0; c < copies; c++) {
    for (let i = 0; i < 10; i++) failure({ ip: `198.51.${100 + c}.${1 + i}` });
    for (let i = 0; i < 3; i++) failure({ ip: "9".repeat(100_000) });
    for (let i = 0; i < 3; i++) failure({ ip: 1_234_567 });
    for (let i = 0; i < 4; i++) failure({ ip: null, userAgent: `x","ip":"203.0.113.${200 + i}","y":"` });
    for (const data of ["{\"reason\":\"wrong-password\",", "not json at all", "{\"userAgent\":\"x\"", "\"reason\"", "[\"ip\"]"]) rows.push({ type: "auth.login.failed", at: Math.round((at += step)), data });
  }
  rows.push({ type: "auth.login.succeeded", at: Math.round((at += step)), data: canonicalJSON({ ip: "203.0.113.77", userAgent: "Mozilla/5.0", rehashed: false, fromScheme: "argon2id", mustChangePassword: false, failuresBefore: 3, sessionId: "ses_bench_hit", newDevice: true }) });
  for (let i = 0; i < rows.length; i += 500) {
    await database.db.insertInto("audit_events").values(rows.slice(i, i + 500).map((r, j) => {
      const seq = i + j + 1;
      return { seq, id: `evt_bench${seq}`, type: r.type, actor: r.type === "auth.login.succeeded" ? "usr_altered" : "anonymous", subject: "usr_altered", data: r.data, at: r.at, request_id: `req${seq}`, prev_hash: "0".repeat(64), hash: seq.toString(16).padStart(64, "0") };
    })).execute();
  }
  return database;
}

async function logins(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-bench-linear-"));
  try {
    const once = await alteredStore(dir, 1);
    const tenfold = await alteredStore(dir, 10);
    const run = (database: Database) => async (): Promise<void> => {
      await checkLogins(database, { since: T0, until: T0 + 24 * HOUR, ...DEFAULT_LOGINS_OPTIONS, pageSize: 50 });
    };
    const r = await ratios(10, run(once), run(tenfold));
    line("check logins: 260 altered rows ÷ 26", `${median(r).toFixed(1)}×`, `${spread(r, 1)}; linear work: 10× at most, fixed costs make it less`);
    await once.close();
    await tenfold.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function deepJSON(): Promise<void> {
  const server = Fastify({ bodyLimit: 4 * 1024 * 1024 });
  registerJSONParser(server);
  server.post("/", async (_request, reply) => reply.code(204).send());
  await server.ready();
  const N = 200_000;
  const deep = `{"z":${"[".repeat(N)}${"]".repeat(N)}}`;
  const wide = `{"z":[${"[],".repeat(N - 1)}[]]}`.padEnd(deep.length, " ");
  const send = (payload: string) => async (): Promise<void> => {
    const res = await server.inject({ method: "POST", url: "/", headers: { "content-type": "application/json" }, payload });
    // A refusal is fine (the parser may bound the depth); an answer that is neither is a broken bench.
    if (res.statusCode !== 204 && res.statusCode !== 400) throw new Error(`the JSON parser answered ${res.statusCode}: ${res.body.slice(0, 120)}`);
  };
  try {
    const r = await ratios(3, send(wide), send(deep));
    line(`JSON body: ${N.toLocaleString("en")}-deep ÷ as wide, ${(deep.length / 1024).toFixed(0)} KiB`, `${median(r).toFixed(1)}×`, `${spread(r, 1)}; linear in the bytes: about 1×`);
  } finally {
    await server.close();
  }
}

async function parsers(): Promise<void> {
  const template = (n: number): string => `sha256(${" ".repeat(n)}salt+password)`;
  const r1 = await ratios(5, () => parseSaltedTemplate(template(10_000)), () => parseSaltedTemplate(template(100_000)));
  line("salted template: 100,000 spaces ÷ 10,000", `${median(r1).toFixed(1)}×`, `${spread(r1, 1)}; linear: 10×`);
  const r2 = await ratios(5, () => parseTime(`${"1".repeat(1_600)}x`), () => parseTime(`${"1".repeat(16_000)}x`));
  line("sshd time value: 16,000 digits ÷ 1,600", `${median(r2).toFixed(1)}×`, `${spread(r2, 1)}; linear: 10×`);
  const r3 = await ratios(5, () => matchPattern("a".repeat(500), `${"*a".repeat(20)}b`), () => matchPattern("a".repeat(5000), `${"*a".repeat(200)}b`));
  line("sshd wildcard: 5,000 chars, 200 stars ÷ a tenth", `${median(r3).toFixed(1)}×`, `${spread(r3, 1)}; text × pattern: 100×`);
  const config = (blocks: number): string => {
    let text = "AuthenticationMethods publickey\nPermitRootLogin no\nPasswordAuthentication no\n";
    for (let i = 0; i < blocks / 2; i++) text += `Match User u${i}\n  PermitRootLogin yes\n  AuthenticationMethods publickey\n`;
    for (let i = 0; i < blocks / 2; i++) text += `Match Address 10.${i}.0.0/16\n  AuthenticationMethods password\n  PermitRootLogin no\n`;
    return text;
  };
  const small = config(30);
  const large = config(300);
  const r4 = await ratios(1, () => checkSshConfig(parseSshdConfig(small, "/etc/ssh/sshd_config")), () => checkSshConfig(parseSshdConfig(large, "/etc/ssh/sshd_config")));
  line("check ssh: 300 Match blocks ÷ 30", `${median(r4).toFixed(1)}×`, `${spread(r4, 1)}; each block alone, the rest over-approximated`);
}

export default async function linearTime(): Promise<void> {
  await passwordPolicy();
  await bucket();
  await logins();
  await deepJSON();
  await parsers();
}
