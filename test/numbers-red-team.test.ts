// Red team, round "numbers": every number an outsider, an API caller or an operator can hand Bulwark, at its edges
// (0, -0, -1, 1e400 → Infinity, 2^53 + 1, 8.64e15 + 1, hex, exponents, full-width and Arabic-Indic digits, white space,
// JSON null and booleans where a number is declared, ages of millennia, year 9999).
//
// Attackers and what they hold:
// - an API client of /api/v1 with a `contain.run`/`admin` token (automation that serialises an unset option as null,
//   as Python's None or a Go nil pointer do; the API already refuses that for booleans: `"dryRun": null` ran a real job);
// - an operator on the server's shell typing options (`bulwark check logins --since/--until`, `contain --batch-size`…);
// - whoever sets the service's environment (BULWARK_* numbers).
//
// What must hold: a clear error naming the bad value (exit 2, 400), never an internal error or a 500, never a value
// silently read as another one that changes what happens, never an allocation or a loop sized by the input.
//
// Tried and held (pinned here when not pinned elsewhere): the BULWARK_* whole numbers not yet pinned by
// test/keyring-config-attacks.test.ts, in every odd spelling; the CLI's numeric options in hex, exponent, full-width,
// negative and over-long spellings; JSON numbers at the edges in every /api/v1 time field. Already pinned elsewhere and
// not repeated: page sizes (tokens-roles-second-round-attacks), `since` of the audit API (fixes-twentytwo), token expiries
// past 8.64e15 (api-access-attacks), PORT and the session/argon2 variables (keyring-config-attacks). Also looked at and
// sound: the API's time parser (ISO or 1–15 digits; 24:00, offsets past ±23:59, leap seconds, Unicode digits), the
// Retry-After values (fixed, never computed from a window), TOTP codes in full-width digits, the session-list cursor.
// Accepted as documented, not findings: a time given in epoch *seconds* is read as milliseconds (1970), as docs/api.md
// says times are ms; `audit tail -n 0x14` reads 20 (Number()), harmless for a display count.
//
// Found:
// - `bulwark check logins` sizes arrays and loops by its window: `--since 999999w` (an age its parser accepts) or
//   `--until 9999-12-31` allocates one number per hour of the window (168 million, 69 million) and walks every ten
//   minutes of it, whatever the log holds: internal error "Invalid array length" after 1.3 GB (exit 3), or 14 s and
//   2.1 GB for the year-9999 spelling; in a 64 MiB heap the process dies of heap exhaustion (fixed since: the median
//   hour and the wave scan walk only the hours and buckets that hold failures, src/checks/logins/index.ts);
// - the containment route's integer options are coerced by Fastify's Ajv like the booleans were: `null` and `false` read
//   as 0, `true` as 1. `"emailChangedWithinDays": null` (an unset option) turns the 30-day hold on reset links into 0,
//   and the reset link of an account whose address was moved yesterday goes to the new (perhaps the intruder's)
//   mailbox; `"inactiveDays": true` means one day instead of 90; `"batchSize": true` batches of one (fixed since: the
//   /api/v1 preValidation hook, src/http/api/strict-fields.ts, refuses in a JSON body any value whose JSON type the
//   field's schema does not name, for number and time fields as for booleans: a 400 naming the field, before Ajv
//   coerces it; `"10"` and `[10]` too).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { bulwark, bulwarkInProcess, initSite, type CLISite } from "./helpers/cli.ts";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { assertConfigRefuses } from "./helpers/config-refusal.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

describe("red team, numbers: the operator's shell", () => {
  let root: string;
  let site: CLISite;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "bulwark-numbers-"));
    site = await initSite(join(root, "site"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("attack: `bulwark check logins --since 999999w` (the largest age it accepts) or `--until 9999-12-31` runs in the memory of a short window — never an internal error or a heap sized by the window (ASVS 2.2.1, 1.4.2, 16.5.3) (was: one array slot per hour of the window: 'Invalid array length' after 1.3 GB, or 14 s and 2.1 GB)", async () => {
    // A 64 MiB heap is far more than the check of a day (or a month) of an empty log needs; the process is given no
    // more so that an allocation sized by the window shows at once instead of after gigabytes (without the limit:
    // `--since 999999w` ends in "internal error: Invalid array length", exit 3, after 1.3 GB and 7 s; `--until
    // 9999-12-31` takes 14 s and 2.1 GB). checkLogins (src/checks/logins/index.ts) makes `perHour` one entry per hour
    // of [since, until) and findWaves walks every 10-minute bucket of it, before looking at what the log holds.
    const env = { ...site.env, NODE_OPTIONS: "--max-old-space-size=64" };
    const control = await bulwark(["check", "logins", "--since", "30d", "--fail-on", "none"], { env, limitMs: 60_000 });
    assert.equal(control.code, 0, `the control run (30 days) needs no more than this heap: ${control.stderr.slice(-300)}`);
    const runs = await Promise.all([
      ["--since", "999999w"],
      ["--since", "2026-01-01", "--until", "9999-12-31"],
    ].map(async (window) => ({ window, r: await bulwark(["check", "logins", ...window, "--fail-on", "none"], { env, limitMs: 60_000 }) })));
    const wrong = runs.filter(({ r }) => !(r.signal === null && (r.code === 0 || (r.code === 2 && /--since|--until/.test(r.stderr)))));
    assert.deepEqual(wrong.map(({ window, r }) => `check logins ${window.join(" ")}: exit ${r.code}, signal ${r.signal}, ${(r.stderr.match(/internal error[^\n]*|heap[^\n]*|FATAL[^\n]*/i) ?? [r.stderr.slice(-160)])[0]}`), [],
      "a window of millennia made `check logins` allocate and walk one slot per hour (per 10 minutes) of it: it ran out of memory instead of reading the log or naming the option");
  });

  it("attack: numeric options of the CLI in hex, exponent, full-width or Arabic-Indic digits, signed, fractional or past 2^53 are refused naming the option (exit 2), before anything is changed (ASVS 2.2.1)", async () => {
    const cases: Array<[string[], string]> = [
      [["contain", "lock-accounts", "--all", "--dry-run", "--batch-size", "0x10"], "--batch-size"],
      [["contain", "lock-accounts", "--all", "--dry-run", "--batch-size", "1e3"], "--batch-size"],
      [["contain", "lock-accounts", "--all", "--dry-run", "--batch-size", "１０"], "--batch-size"],
      [["contain", "lock-accounts", "--all", "--dry-run", "--batch-size=-1"], "--batch-size"],
      [["contain", "lock-accounts", "--all", "--dry-run", "--batch-size", "9007199254740993"], "--batch-size"],
      [["contain", "demote-inactive-admins", "--all", "--dry-run", "--inactive-days", "0"], "--inactive-days"],
      [["contain", "demote-inactive-admins", "--all", "--dry-run", "--inactive-days", "٩٠"], "--inactive-days"],
      [["contain", "demote-inactive-admins", "--all", "--dry-run", "--inactive-days", "90.5"], "--inactive-days"],
      [["contain", "invalidate-passwords", "--all", "--dry-run", "--email-changed-within", "0x1e"], "--email-changed-within"],
      [["contain", "invalidate-passwords", "--all", "--dry-run", "--email-changed-within", "36501d"], "--email-changed-within"],
      [["contain", "revoke-sessions", "--dry-run", "--active-within", "1e3h"], "--active-within"],
      [["contain", "revoke-sessions", "--dry-run", "--created-before", "１d"], "--created-before"],
      [["check", "logins", "--baseline-days=-1"], "--baseline-days"],
      [["check", "logins", "--streak", "0x5"], "--streak"],
      [["check", "logins", "--wave-factor", "Infinity"], "--wave-factor"],
      [["check", "logins", "--since", "NaN"], "--since"],
      [["outbox", "status", "--limit", "1e2"], "--limit"],
      [["users", "migrate-hashes", "--dry-run", "--batch", "0x10"], "--batch"],
    ];
    const before = site.rows("SELECT count(*) AS n FROM jobs")[0]?.["n"];
    const wrong: string[] = [];
    for (const [args, option] of cases) {
      const r = await bulwarkInProcess(args, site.env);
      if (r.code !== 2 || !r.stderr.includes(option)) wrong.push(`${args.join(" ")}: exit ${r.code}, ${r.stderr.trim().slice(0, 160) || r.stdout.trim().slice(0, 160)}`);
    }
    assert.deepEqual(wrong, [], "a numeric option in an odd spelling was read as some number instead of being refused by name");
    assert.equal(site.rows("SELECT count(*) AS n FROM jobs")[0]?.["n"], before, "no job was created");
  });
});

describe("red team, numbers: the environment", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "bulwark-numbers-env-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  // The whole-number settings test/keyring-config-attacks.test.ts does not pin, each with the spellings Number() would
  // have read as a value (hex, exponent, binary, fractional, signed, full-width and Arabic-Indic digits, 2^53 + 1).
  const cases: Array<[string, string[]]> = [
    ["BULWARK_INITIAL_PASSWORD_HOURS", ["0", "0x48", "72e0", "-72", "72.5", "337", "７２", "٧٢", "9007199254740993", "Infinity"]],
    ["BULWARK_OUTBOX_RETENTION_DAYS", ["13", "0x1e", "3e1", "-30", "3651", "３０", "1e400"]],
    ["BULWARK_MAX_CLOCK_SKEW_SECONDS", ["-1", "0x1e", "3e1", "3601", "30s", "３０", "NaN"]],
    ["BULWARK_BREACH_TIMEOUT_MS", ["0", "0xbb8", "3e3", "60001", "3s", "-3000"]],
    ["BULWARK_MAIL_REQUESTS_PER_HOUR", ["0", "0x14", "2e1", "100001", "-20", "２０"]],
    ["BULWARK_PASSWORD_CHECKS_IN_FLIGHT", ["0", "0x20", "3.2e1", "100001", "-1", "1_000"]],
  ];
  for (const [name, values] of cases) {
    it(`attack: ${name} outside its range, or spelled as anything but plain decimal digits (${values.join(" ")}), stops the start naming the variable (ASVS 2.2.1)`, () => {
      assertConfigRefuses(root, name, values);
    });
  }
});

describe("red team, numbers: /api/v1", () => {
  let fx: AuthFixture;
  let token: string;
  let n = 0;

  before(async () => {
    fx = await authFixture();
    const admin = await fx.user("numbers-admin@example.org", { roles: ["admin"] });
    await ensureSecondFactor(fx.app, admin.id); // the MFA policy holds an administrator's token while the account has no factor
    token = await mint(admin.id, ["admin"]);
  });
  after(async () => {
    await fx.close();
  });

  async function mint(userId: string, scopes: string[]): Promise<string> {
    return (await fx.app.accounts.tokens.create(userId, { name: `numbers-${++n}`, scopes })).token;
  }

  /** A request with a bearer token; a string body is sent as it is (raw JSON). */
  function call(method: "GET" | "POST", url: string, bearer: string, body?: unknown): Promise<LightMyRequestResponse> {
    return fx.server.inject({
      method, url, headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { payload: typeof body === "string" ? body : JSON.stringify(body) }),
    });
  }

  /** A user with a password whose address the account itself changed a day ago (the audit event POST /auth/email/confirm writes). */
  async function movedYesterday(): Promise<string> {
    const u = await fx.user(`moved-${++n}@example.org`);
    const now = fx.clock.now();
    fx.clock.set(now - 86_400_000);
    await fx.app.audit.append({ type: "auth.email.changed", actor: u.id, subject: u.id, data: {} });
    fx.clock.set(now);
    return u.id;
  }

  async function withheld(options: Record<string, unknown> | undefined, id: string): Promise<{ status: number; withheld: unknown; body: string }> {
    const res = await call("POST", "/api/v1/contain/jobs", token, { levers: ["invalidate-passwords"], scope: { ids: [id] }, dryRun: true, ...(options === undefined ? {} : { options }) });
    const counts = res.statusCode === 200 ? (res.json() as { levers: Record<string, { counts: Record<string, number> }> }).levers["invalidate-passwords"]?.counts : undefined;
    return { status: res.statusCode, withheld: counts?.["resetEmailsWithheld"], body: res.body.slice(0, 300) };
  }

  it("attack: `\"emailChangedWithinDays\": null` (an unset option, as None or nil serialise) is refused with a 400 naming the field — never read as 0, which would release the hold and mail the reset link to an address moved yesterday (ASVS 2.2.1, 6.4.3, 16.5.3) (was: null and false read as 0 days, the hold released)", async () => {
    const victim = await movedYesterday();
    const byDefault = await withheld(undefined, victim);
    assert.equal(byDefault.status, 200, byDefault.body);
    assert.equal(byDefault.withheld, 1, `control: without the option the account's reset link is held back (${byDefault.body})`);
    const zero = await withheld({ emailChangedWithinDays: 0 }, victim);
    assert.equal(zero.withheld, 0, `control: 0 days, given on purpose, releases it (${zero.body})`);
    const wrong: string[] = [];
    for (const value of [null, false]) {
      const r = await withheld({ emailChangedWithinDays: value }, victim);
      const refused = r.status === 400 && r.body.includes("emailChangedWithinDays");
      if (!refused && !(r.status === 200 && r.withheld === 1)) wrong.push(`emailChangedWithinDays: ${JSON.stringify(value)} answered ${r.status} with resetEmailsWithheld ${String(r.withheld)}`);
    }
    assert.deepEqual(wrong, [], "Fastify's Ajv coerced null/false to 0 days: the hold on reset links was released, and the real run would mail the link to the address the account moved to yesterday");
  });

  it("attack: JSON null, true or false in an integer field of POST /api/v1/contain/jobs (batchSize, inactiveDays, emailChangedWithinDays) is a 400 naming the field, as it is for a boolean field — never read as 0 or 1 (ASVS 2.2.1, 16.5.3) (was: 200, null and false read as 0, true as 1)", async () => {
    const victim = (await fx.user(`plain-${++n}@example.org`)).id;
    const wrong: string[] = [];
    const fields: Array<[string, (v: unknown) => Record<string, unknown>]> = [
      ["batchSize", (v) => ({ batchSize: v })],
      ["inactiveDays", (v) => ({ options: { inactiveDays: v } })],
      ["emailChangedWithinDays", (v) => ({ options: { emailChangedWithinDays: v } })],
    ];
    for (const [field, put] of fields) {
      for (const value of [null, true, false]) {
        const res = await call("POST", "/api/v1/contain/jobs", token, { levers: ["demote-inactive-admins", "invalidate-passwords"], scope: { ids: [victim] }, dryRun: true, ...put(value) });
        if (!(res.statusCode === 400 && res.body.includes(field))) wrong.push(`${field}: ${JSON.stringify(value)} → ${res.statusCode}`);
      }
    }
    assert.deepEqual(wrong, [], "an integer field took a JSON null or boolean as a number (Ajv coercion: null/false → 0, true → 1): inactiveDays true is one day, not 90; emailChangedWithinDays null is no hold");
  });

  it("attack: JSON numbers at the edges (1e400 → Infinity, 1e-7, 1.5, 2^53 + 1, 8.64e15 + 1, -1; -0 as an expiry) in every /api/v1 time field are a 400 naming the field, never a 500, and nothing is stored (ASVS 2.2.1)", async () => {
    const victim = (await fx.user(`edge-${++n}@example.org`)).id;
    const tokensBefore = (await fx.app.db.db.selectFrom("api_tokens").select("id").execute()).length;
    const jobsBefore = (await fx.app.db.db.selectFrom("jobs").select("id").execute()).length;
    // Raw JSON: 1e400 is no number a test could serialise, and JSON.parse reads it as Infinity.
    // -0 is the epoch itself (0) in a scope, which is a time; as an expiry it is in the past, and refused as such.
    const edges = ["1e400", "-1e400", "-0", "1e-7", "1.5", "9007199254740993", "8640000000000001", "-1"];
    const wrong: string[] = [];
    for (const edge of edges) {
      for (const field of edge === "-0" ? [] : ["createdBefore", "createdAfter", "lastLoginBefore", "lastLoginAfter", "activeFrom", "activeTo"]) {
        const res = await call("POST", "/api/v1/contain/jobs", token, `{"levers":["lock-accounts"],"scope":{"ids":["${victim}"],"${field}":${edge}},"dryRun":false}`);
        if (!(res.statusCode === 400 && res.body.includes(field))) wrong.push(`scope.${field}: ${edge} → ${res.statusCode} ${res.body.slice(0, 120)}`);
      }
      const minted = await call("POST", "/api/v1/tokens", token, `{"name":"edge","scopes":["accounts.read"],"expiresAt":${edge}}`);
      if (!(minted.statusCode === 400 && minted.body.includes("expiresAt"))) wrong.push(`expiresAt: ${edge} → ${minted.statusCode} ${minted.body.slice(0, 120)}`);
    }
    assert.deepEqual(wrong, []);
    assert.equal((await fx.app.db.db.selectFrom("api_tokens").select("id").execute()).length, tokensBefore, "no token was minted");
    assert.equal((await fx.app.db.db.selectFrom("jobs").select("id").execute()).length, jobsBefore, "no job was created");
    assert.equal((await fx.app.accounts.users.getById(victim))?.lockedAt ?? null, null, "the account was not locked");
  });
});
