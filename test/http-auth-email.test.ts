// Changing the account's email address over HTTP, written as attacks that must fail — a stale (stolen) session,
// a forged, tampered, expired, superseded or reused link, an address taken meanwhile, enumeration through the
// form — and the notices both addresses get (ASVS 6.3.7, 7.5.1), read from a real in-process SMTP server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { EMAIL_CHANGE_ACCEPTED } from "../src/http/auth/routes/email-routes.ts";
import { authFixture, HOST, ORIGIN, type Browser } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const LINK = /https:\/\/bulwark\.test\/confirm-email#token=(ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;

const fx = sharedFixture();

/** A user signed in (fresh) in one browser. */
async function signedIn(email: string): Promise<{ id: string; email: string; password: string; b: Browser }> {
  const user = await fx.user(email);
  const b = fx.browser();
  const res = await b.login(user.email, user.password);
  assert.equal(res.statusCode, 200, res.body);
  return { ...user, b };
}

function requestChange(b: Browser, newEmail: string): ReturnType<Browser["request"]> {
  return b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail } });
}

function confirm(token: string, b: Browser = fx.browser()): ReturnType<Browser["request"]> {
  return b.request("POST", "/auth/email/confirm", { body: { token } });
}

/** Delivers the queue over SMTP and returns the mails to `address` with the given subject part. */
async function mails(address: string, subject: RegExp): Promise<Array<{ subject: string; body: string }>> {
  await fx.deliver();
  return fx.mailTo(address).filter((m) => subject.test(m.subject));
}

/** The token in the newest confirmation mail to `address`. */
async function linkFor(address: string): Promise<string> {
  const last = (await mails(address, /confirm your new email address/)).at(-1);
  assert.ok(last, `no confirmation mail to ${address}`);
  const m = LINK.exec(last.body);
  assert.ok(m, `no link in: ${last.body}`);
  return m[1] as string;
}

async function emailOf(userId: string): Promise<string | undefined> {
  return (await fx.app.accounts.users.getById(userId))?.email;
}

describe("POST /auth/email/change", () => {
  it("attack: a stolen cookie that is no longer fresh cannot request a change, even with a CSRF token (ASVS 7.5.1)", async () => {
    const ana = await signedIn("stale@example.org");
    const csrf = await ana.b.csrf();
    fx.clock.advance(11 * MINUTE);
    const thief = fx.browser();
    thief.cookie = ana.b.cookie;
    const refused = await thief.request("POST", "/auth/email/change", { csrf, body: { newEmail: "thief-stale@evil.example" } });
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.json().error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    assert.equal((await mails("thief-stale@evil.example", /./)).length, 0, "no mail to the thief's address");
    // The owner re-authenticates and may then ask.
    const reauth = await ana.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: ana.password } });
    assert.equal(reauth.statusCode, 200, reauth.body);
    assert.equal((await requestChange(ana.b, "stale-new@example.org")).statusCode, 202);
  });

  it("attack: a cross-site request or one without a CSRF token is refused (ASVS 3.5.1)", async () => {
    const ana = await signedIn("csrf-email@example.org");
    const noToken = await ana.b.request("POST", "/auth/email/change", { body: { newEmail: "csrf-new@example.org" } });
    assert.equal(noToken.statusCode, 403);
    const crossSite = await ana.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "csrf-new@example.org" }, headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
    assert.equal(crossSite.statusCode, 403);
    const anonymous = await fx.browser().request("POST", "/auth/email/change", { body: { newEmail: "csrf-new@example.org" } });
    assert.equal(anonymous.statusCode, 401);
    assert.equal((await mails("csrf-new@example.org", /./)).length, 0);
  });

  it("refuses an invalid address and the account's own, naming what is wrong", async () => {
    const ana = await signedIn("Own@Example.org");
    const own = await requestChange(ana.b, " own@example.ORG ");
    assert.equal(own.statusCode, 400);
    assert.equal(own.json().error.code, "BULWARK_ERR_EMAIL_UNCHANGED");
    const bad = await requestChange(ana.b, "not an address");
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, "BULWARK_ERR_EMAIL_INVALID");
    assert.equal(await emailOf(ana.id), "Own@Example.org", "bad input changes nothing");
  });

  it("attack: enumeration — a free and a taken address get the same status and body; the taken one gets no link (ASVS 6.3.8)", async () => {
    await fx.user("taken@example.org");
    const ana = await signedIn("enum-a@example.org");
    const bo = await signedIn("enum-b@example.org");
    const free = await requestChange(ana.b, "free@example.org");
    const taken = await requestChange(bo.b, "taken@example.org");
    assert.equal(free.statusCode, 202);
    assert.equal(taken.statusCode, 202);
    assert.equal(free.body, taken.body);
    assert.deepEqual(free.json(), EMAIL_CHANGE_ACCEPTED);
    assert.ok(LINK.test((await mails("free@example.org", /./))[0]?.body ?? ""), "the free address gets a link");
    const attempt = await mails("taken@example.org", /./);
    assert.equal(attempt.length, 1);
    assert.match(attempt[0]?.subject ?? "", /someone tried to use your email address/);
    assert.doesNotMatch(attempt[0]?.body ?? "", /confirm-email|ect_/, "no link to an address that belongs to someone else");
    // Each requester's old address hears of the request in the same words either way (ASVS 6.3.7).
    assert.equal((await mails("enum-a@example.org", /a change of your email address was requested/)).length, 1);
    assert.equal((await mails("enum-b@example.org", /a change of your email address was requested/)).length, 1);
    assert.equal(await emailOf(bo.id), "enum-b@example.org");
  });

  it("throttles to 3 requests per account per hour, silently", async () => {
    const ana = await signedIn("throttle@example.org");
    for (let i = 0; i < 4; i++) {
      const res = await requestChange(ana.b, `throttle-${i}@example.org`);
      assert.equal(res.statusCode, 202);
      assert.deepEqual(res.json(), EMAIL_CHANGE_ACCEPTED);
    }
    assert.equal((await mails("throttle-2@example.org", /./)).length, 1);
    assert.equal((await mails("throttle-3@example.org", /./)).length, 0, "the fourth request sends nothing");
    assert.equal((await mails("throttle@example.org", /was requested/)).length, 3);
  });

  it("an account whose address the outbox cannot mail (an import's jörg@…) can move to one it can: the link goes out", async () => {
    const jorg = await signedIn("jörg@example.org");
    const res = await requestChange(jorg.b, "jorg@example.org");
    assert.equal(res.statusCode, 202, res.body);
    const link = await linkFor("jorg@example.org");
    assert.equal((await confirm(link)).statusCode, 200);
    assert.equal(await emailOf(jorg.id), "jorg@example.org");
  });
});

describe("POST /auth/email/confirm", () => {
  it("changes the address once: both addresses are told, every session ends, only the new address signs in (ASVS 6.3.7, 7.4.3)", async () => {
    const ana = await signedIn("old@example.org");
    const phone = fx.browser();
    assert.equal((await phone.login(ana.email, ana.password)).statusCode, 200);
    assert.equal((await requestChange(ana.b, "New@example.org")).statusCode, 202);
    const requested = await mails("old@example.org", /a change of your email address was requested/);
    assert.equal(requested.length, 1, "the old address is told at request time");
    assert.match(requested[0]?.body ?? "", /New@example\.org/);
    const token = await linkFor("New@example.org");
    assert.equal(await emailOf(ana.id), "old@example.org", "nothing changes before the link is used");
    fx.clock.advance(MINUTE);
    // Opened in another browser (the link is public); the same-origin page posts the token from the fragment.
    const done = await confirm(token);
    assert.equal(done.statusCode, 200, done.body);
    assert.equal(done.json().sessionsEnded, 2);
    assert.equal(await emailOf(ana.id), "New@example.org");
    assert.equal((await ana.b.request("GET", "/auth/session")).json().authenticated, false, "the requesting session ended");
    assert.equal((await phone.request("GET", "/auth/session")).json().authenticated, false, "every other session ended");
    fx.clock.advance(1000);
    assert.equal((await fx.browser().login("new@example.org", ana.password)).statusCode, 200, "the new address signs in");
    assert.equal((await fx.browser().login("old@example.org", ana.password)).statusCode, 401, "the old one does not");
    const oldNotice = await mails("old@example.org", /your email address was changed/);
    assert.equal(oldNotice.length, 1, "the old address is told at completion");
    assert.match(oldNotice[0]?.body ?? "", /changed from old@example\.org to New@example\.org/);
    assert.equal((await mails("New@example.org", /your email address was changed/)).length, 1);
    const events = await fx.app.db.db.selectFrom("audit_events").select(["type"]).where("subject", "=", ana.id).execute();
    assert.ok(events.some((e) => e.type === "auth.email.change-requested"));
    assert.ok(events.some((e) => e.type === "auth.email.changed"));
    // Reused: the link works once.
    const again = await confirm(token);
    assert.equal(again.statusCode, 400);
    assert.equal(again.json().error.code, "BULWARK_ERR_EMAIL_CHANGE_TOKEN");
  });

  it("attack: a change whose notice cannot be written does not happen — address, sessions and link stay; a retry changes and tells both once (ASVS 6.3.7)", async () => {
    const ana = await signedIn("atomic-old@example.org");
    assert.equal((await requestChange(ana.b, "atomic-new@example.org")).statusCode, 202);
    const token = await linkFor("atomic-new@example.org");
    const outbox = fx.app.accounts.outbox;
    outbox.enqueue = async () => { throw new Error("disk I/O error"); };
    try {
      const failed = await confirm(token);
      assert.equal(failed.statusCode, 500, failed.body);
    } finally {
      delete (outbox as { enqueue?: unknown }).enqueue;
    }
    assert.equal(await emailOf(ana.id), "atomic-old@example.org", "the address did not change");
    assert.equal((await ana.b.request("GET", "/auth/session")).json().authenticated, true, "no session was ended");
    const done = await confirm(token);
    assert.equal(done.statusCode, 200, done.body);
    assert.equal(await emailOf(ana.id), "atomic-new@example.org");
    assert.equal((await mails("atomic-old@example.org", /your email address was changed/)).length, 1);
    assert.equal((await mails("atomic-new@example.org", /your email address was changed/)).length, 1);
  });

  it("attack: forged, tampered, expired and superseded links are refused with one answer (ASVS 6.4.1)", async () => {
    const ana = await signedIn("forge@example.org");
    await requestChange(ana.b, "forge-1@example.org");
    const superseded = await linkFor("forge-1@example.org");
    await requestChange(ana.b, "forge-2@example.org");
    const live = await linkFor("forge-2@example.org");
    const [id, secret] = live.split(".") as [string, string];
    const forged = `ect_${"a".repeat(26)}.${secret}`;
    const tampered = `${id}.${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    const resetShaped = live.replace(/^ect_/, "prt_");
    const bodies = new Set<string>();
    for (const token of [forged, tampered, superseded, resetShaped, "", "x".repeat(150)]) {
      const res = await confirm(token);
      assert.equal(res.statusCode, 400, `${token.slice(0, 20)} → ${res.body}`);
      if (token.length > 0 && token.length <= 74) bodies.add(JSON.stringify(res.json().error.code));
    }
    assert.deepEqual([...bodies], ['"BULWARK_ERR_EMAIL_CHANGE_TOKEN"']);
    fx.clock.advance(31 * MINUTE);
    const expired = await confirm(live);
    assert.equal(expired.statusCode, 400);
    assert.equal(expired.json().error.code, "BULWARK_ERR_EMAIL_CHANGE_TOKEN");
    assert.equal(await emailOf(ana.id), "forge@example.org");
  });

  it("attack: a cross-site POST of a valid link is refused (login CSRF), and the link stays usable", async () => {
    const ana = await signedIn("xsite@example.org");
    await requestChange(ana.b, "xsite-new@example.org");
    const token = await linkFor("xsite-new@example.org");
    const cross = await fx.browser().request("POST", "/auth/email/confirm", { body: { token }, headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
    assert.equal(cross.statusCode, 403);
    assert.equal(await emailOf(ana.id), "xsite@example.org");
    assert.equal((await confirm(token)).statusCode, 200);
  });

  it("attack: a password reset in the same millisecond as a hijacker's change request still cancels it", async () => {
    const ana = await signedIn("same-ms@example.org");
    assert.equal((await requestChange(ana.b, "same-ms-evil@example.org")).statusCode, 202);
    const link = await linkFor("same-ms-evil@example.org");
    // The owner resets the password without the clock moving: only the reset's own revocation can stop the link.
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } })).statusCode, 202);
    const resetMail = (await mails(ana.email, /reset your password/)).at(-1);
    const reset = /reset-password#token=([A-Za-z0-9_.-]+)/.exec(resetMail?.body ?? "")?.[1];
    assert.ok(reset, "a reset link was mailed");
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: reset, newPassword: "copper meadow whistles softly at noon" } })).statusCode, 200);
    const confirmed = await confirm(link);
    assert.equal(confirmed.statusCode, 400, confirmed.body);
    assert.equal(await emailOf(ana.id), ana.email);
  });

  it("attack: confirming onto an address another account took meanwhile answers 409 and changes nothing", async () => {
    const ana = await signedIn("race@example.org");
    await requestChange(ana.b, "contested@example.org");
    const token = await linkFor("contested@example.org");
    await fx.user("CONTESTED@example.org");
    const res = await confirm(token);
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    assert.equal(await emailOf(ana.id), "race@example.org");
    assert.equal((await ana.b.request("GET", "/auth/session")).json().authenticated, true, "no session ended");
    assert.equal((await mails("race@example.org", /your email address was changed/)).length, 0, "no change notice");
  });

  it("attack: a hijacker's pending change cannot move an account whose password containment invalidated (the owner's reset link stays the way back)", async () => {
    // Through the containment job (the lever voids open change links) and directly (the confirm refuses an invalidated password).
    for (const via of ["lever", "flag"] as const) {
      const ana = await signedIn(`contained-${via}@example.org`);
      await requestChange(ana.b, `thief-${via}@evil.example`);
      const token = await linkFor(`thief-${via}@evil.example`);
      fx.clock.advance(MINUTE);
      if (via === "lever") {
        const deps = containDeps(fx.app);
        const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [ana.id] }, actor: "responder" });
        assert.equal((await runJob(deps, job.id)).status, "done");
      } else {
        await fx.app.db.db.updateTable("users").set({ password_invalidated_at: fx.clock.now() }).where("id", "=", ana.id).execute();
      }
      const links = async (): Promise<number> => (await fx.app.db.db.selectFrom("password_reset_tokens").select("id").where("user_id", "=", ana.id).where("used_at", "is", null).execute()).length;
      const before = await links();
      fx.clock.advance(MINUTE);
      const res = await confirm(token);
      assert.equal(res.statusCode, 400, `${via}: ${res.body}`);
      assert.equal(await emailOf(ana.id), `contained-${via}@example.org`, via);
      assert.equal(await links(), before, `${via}: the owner's reset link is not cancelled`);
    }
  });

  it("attack: the owner ending the hijacker's session — one, or all others — cancels the hijacker's pending change", async () => {
    for (const how of ["one", "all others"] as const) {
      const ana = await signedIn(`signout-${how.replace(" ", "-")}@example.org`);
      const thief = fx.browser();
      assert.equal((await thief.login(ana.email, ana.password)).statusCode, 200);
      assert.equal((await requestChange(thief, `thief-${how.replace(" ", "-")}@evil.example`)).statusCode, 202);
      const token = await linkFor(`thief-${how.replace(" ", "-")}@evil.example`);
      if (how === "one") {
        const sessions = (await ana.b.request("GET", "/auth/sessions")).json().sessions as Array<{ id: string; current: boolean }>;
        const other = sessions.find((x) => !x.current);
        assert.ok(other);
        assert.equal((await ana.b.request("DELETE", `/auth/sessions/${other.id}`, { csrf: true })).statusCode, 200);
      } else {
        assert.equal((await ana.b.request("DELETE", "/auth/sessions", { csrf: true })).statusCode, 200);
      }
      fx.clock.advance(MINUTE);
      const res = await confirm(token);
      assert.equal(res.statusCode, 400, `${how}: ${res.body}`);
      assert.equal(await emailOf(ana.id), ana.email, how);
    }
  });

  it("attack: the owner's password reset cancels a hijacker's pending change", async () => {
    const ana = await signedIn("hijacked@example.org");
    await requestChange(ana.b, "hijacker@evil.example");
    const token = await linkFor("hijacker@evil.example");
    // The owner reads the notice at the old address and resets the password.
    fx.clock.advance(MINUTE);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } })).statusCode, 202);
    await fx.deliver();
    const reset = /reset-password#token=(prt_[^\s]+)/.exec(fx.mailTo(ana.email).filter((m) => /reset your password/.test(m.subject)).at(-1)?.body ?? "")?.[1];
    assert.ok(reset);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: reset, newPassword: "harbour lantern quietly hums" } })).statusCode, 200);
    fx.clock.advance(MINUTE);
    const res = await confirm(token);
    assert.equal(res.statusCode, 400);
    assert.equal(await emailOf(ana.id), "hijacked@example.org");
  });
});

describe("one mailbox's two hourly budgets: sign-ups apart from email changes (ASVS 2.4.1)", () => {
  // Sign-up open: the other way an outsider makes this server mail a mailbox.
  const open = sharedFixture(() => authFixture({ BULWARK_REGISTRATION: "open" }));

  it("attack: a crowd of clients signing up spellings of a mailbox, and accounts asking to move to it, mail it at most 3 + 3 times an hour; the sign-ups spend none of the changes' budget", async () => {
    const spelling = (tag: string): string => `crowd-box+${tag}@example.net`;
    const toMailbox = async (tags: string[]): Promise<number> => {
      await open.deliver();
      return tags.reduce((n, tag) => n + open.mailTo(spelling(tag)).length, 0);
    };
    // Five sign-ups first, each from its own client address: the sign-up budget (3) is spent, the rest get the usual 202.
    const signUpTags = ["s1", "s2", "s3", "s4", "s5"];
    for (const [i, tag] of signUpTags.entries()) {
      const res = await open.server.inject({
        method: "POST", url: "/auth/register", remoteAddress: `198.51.100.${i + 1}`, payload: { email: spelling(tag) },
        headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json" },
      });
      assert.equal(res.statusCode, 202, res.body);
    }
    assert.equal(await toMailbox(signUpTags), 3, "sign-ups mail one mailbox 3 times an hour, however many clients ask");
    const limited = await open.app.db.db.selectFrom("audit_events").select("type").where("type", "=", "auth.register.mailbox-limited").execute();
    assert.ok(limited.length >= 1, "a limited sign-up is still audited");
    // Then five accounts, each freshly signed in, ask to move to other spellings of it: 3 links go out, as if no sign-up
    // had named it, and the rest are withheld (the owner's current address told why).
    const changeTags = ["c1", "c2", "c3", "c4", "c5"];
    const asked: string[] = [];
    for (const tag of changeTags) {
      const user = await open.user(`crowd-mover-${tag}@example.org`);
      const b = open.browser();
      assert.equal((await b.login(user.email, user.password)).statusCode, 200);
      const res = await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: spelling(tag) } });
      assert.equal(res.statusCode, 202, res.body);
      asked.push(user.id);
    }
    assert.equal(await toMailbox(changeTags), 3, "email changes have their own 3 an hour per mailbox");
    const rows = await open.app.db.db.selectFrom("audit_events").select(["subject", "data"]).where("type", "=", "auth.email.change-requested").execute();
    const outcomes = asked.map((id) => {
      const data = rows.find((r) => r.subject === id)?.data;
      return ((typeof data === "string" ? JSON.parse(data) : data) as { outcome?: string } | undefined)?.outcome;
    });
    assert.deepEqual(outcomes, ["queued", "queued", "queued", "recipient-limited", "recipient-limited"]);
    // The bound the documentation gives (docs/http-auth.md): at most 6 such mails an hour to one mailbox, all told.
    assert.equal(await toMailbox([...signUpTags, ...changeTags]), 6);
  });
});
