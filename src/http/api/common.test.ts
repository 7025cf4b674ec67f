// parseTime, the API's one reader of times in bodies and query strings: what it takes and what it refuses; and
// auditRefusal, the record of a refused request: which refusals it keeps, what they say, and how a flood is sampled.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FastifyRequest } from "fastify";
import { RefusalSampler } from "../../accounts/login/refusal-sampler.ts";
import type { App } from "../../app/types.ts";
import { BulwarkError } from "../../lib/errors.ts";
import { auditRefusal, MAX_DATE_MS, parseTime } from "./common.ts";
import { apiErrors } from "./errors.ts";

describe("parseTime", () => {
  it("reads epoch milliseconds as a number or as digits, and ISO 8601 with an offset", () => {
    assert.equal(parseTime(1_700_000_000_000, "t"), 1_700_000_000_000);
    assert.equal(parseTime("1700000000000", "t"), 1_700_000_000_000);
    assert.equal(parseTime("2026-12-03T08:00:00Z", "t"), Date.UTC(2026, 11, 3, 8));
    assert.equal(parseTime(MAX_DATE_MS, "t"), MAX_DATE_MS, "the last time a Date holds is still a time");
  });

  it("refuses a time no Date can hold, naming the field, instead of storing what every later view would fail on", () => {
    for (const value of [MAX_DATE_MS + 1, 9e15, Number.MAX_SAFE_INTEGER]) {
      assert.throws(() => parseTime(value, "expiresAt"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_API_TIME" && e.message.includes("expiresAt"), String(value));
      assert.ok(Number.isNaN(new Date(value).getTime()), "and indeed no Date holds it");
    }
  });

  it("refuses negative, fractional and non-date input", () => {
    for (const value of [-1, 1.5, "-1", "1 2", "tomorrow", "2026-02-30"]) {
      assert.throws(() => parseTime(value, "since"), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_API_TIME", String(value));
    }
  });
});

describe("auditRefusal", () => {
  // Only what auditRefusal reads: the sampler, the clock and the log (the real flow is test/audit-completeness-red-team.test.ts).
  const setup = () => {
    const appended: Array<{ type: string; actor: string; subject: string; requestId: string; data: Record<string, unknown> }> = [];
    const app = { accounts: { callerRefusals: new RefusalSampler() }, clock: { now: () => 1_700_000_000_000 }, audit: { append: async (e: (typeof appended)[number]) => void appended.push(e) } } as unknown as App;
    const request = (over: { params?: Record<string, string>; via?: "token" | "session"; anonymous?: boolean } = {}): FastifyRequest => ({
      id: "req-1", method: "POST", ip: "192.0.2.7", routeOptions: { url: "/api/v1/users/:id/lock" }, params: over.params ?? { id: "usr_target" },
      auth: over.anonymous ? null : over.via === "session"
        ? { userId: "usr_desk", via: "session", sessionId: "ses_public", tokenId: null }
        : { userId: "usr_desk", via: "token", sessionId: null, tokenId: "tok_desk" },
    }) as unknown as FastifyRequest;
    return { app, request, appended };
  };

  it("records a help desk's refused lock of an administrator: who (user, token, address), on whom, the route and the code", async () => {
    const { app, request, appended } = setup();
    await auditRefusal(app, request(), apiErrors.outranked("usr_target", "admin"));
    assert.deepEqual(appended, [{
      type: "api.refused", actor: "usr_desk", subject: "usr_target", requestId: "req-1",
      data: { route: "POST /api/v1/users/:id/lock", code: "BULWARK_ERR_API_OUTRANKED", status: 403, params: { id: "usr_target" }, auth: "token", tokenId: "tok_desk", ip: "192.0.2.7" },
    }]);
  });

  it("names the session a browser caller rode (its public id) and keeps the guard-rail conflicts (the last administrator)", async () => {
    const { app, request, appended } = setup();
    await auditRefusal(app, request({ via: "session" }), new BulwarkError("BULWARK_ERR_LAST_ADMIN", "conflict", "no admin left"));
    assert.equal(appended.length, 1);
    assert.equal(appended[0]?.data["sessionId"], "ses_public");
    assert.equal(appended[0]?.data["status"], 409);
  });

  it("samples a flood: 50 identical refusals in a window are one event, and the next window's event counts the 49 left out", async () => {
    const { app, request, appended } = setup();
    for (let i = 0; i < 50; i++) await auditRefusal(app, request(), apiErrors.missingPermission("admin"));
    assert.equal(appended.length, 1);
    (app.clock as { now: () => number }).now = () => 1_700_000_000_000 + 60_000;
    await auditRefusal(app, request(), apiErrors.missingPermission("admin"));
    assert.deepEqual(appended.map((e) => e.data["unrecordedBefore"]), [undefined, 49]);
  });

  it("keeps a different refusal of the same caller apart from a flood of another (its own sampling key)", async () => {
    const { app, request, appended } = setup();
    for (let i = 0; i < 5; i++) await auditRefusal(app, request(), apiErrors.missingPermission("admin"));
    await auditRefusal(app, request(), apiErrors.outranked("usr_target", "admin"));
    assert.deepEqual(appended.map((e) => e.data["code"]), ["BULWARK_ERR_API_FORBIDDEN", "BULWARK_ERR_API_OUTRANKED"]);
  });

  it("records nothing for anonymous callers, plain conflicts and input errors, nor twice what its source records (stale session, CSRF)", async () => {
    const { app, request, appended } = setup();
    await auditRefusal(app, request({ anonymous: true }), apiErrors.missingPermission("admin"));
    await auditRefusal(app, request(), new BulwarkError("BULWARK_ERR_EMAIL_TAKEN", "conflict", "taken"));
    await auditRefusal(app, request(), apiErrors.badBody("no"));
    await auditRefusal(app, request({ via: "session" }), new BulwarkError("BULWARK_ERR_REAUTH_REQUIRED", "forbidden", "stale"));
    await auditRefusal(app, request({ via: "session" }), new BulwarkError("BULWARK_ERR_CSRF", "forbidden", "cross-site"));
    await auditRefusal(app, request(), new Error("not ours"));
    assert.deepEqual(appended, []);
  });

  it("keeps a path parameter only in the shape the routes accept: the guard refuses before validation, and the text is the caller's", async () => {
    const { app, request, appended } = setup();
    await auditRefusal(app, request({ params: { id: `usr_x\u0000${"y".repeat(600)}`, role: "admin" } }), apiErrors.missingPermission("admin"));
    assert.equal(appended[0]?.subject, "");
    assert.deepEqual(appended[0]?.data["params"], { role: "admin" });
  });
});
