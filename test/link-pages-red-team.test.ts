// Red-team round on the pages a mailed link opens (/reset-password, /confirm-email), the hand-off of their token to
// the JSON routes, and the email-change flow. Attackers: (1) someone who sees a link's URL afterwards — the next
// person at a shared computer reading the browser's history, a mail gateway's link scanner that fetches every URL;
// (2) a page or crafted link that a victim opens; (3) a thief holding a fresh session cookie who moves the account to
// their own mailbox, and the owner trying to get it back; (4) several writers racing for one account's address.
// "attack:" tests pass when the product defends; those named "(was: …)" were this round's findings, fixed the same day.
// One finding is kept as a known limit (a todo test, below, with the reason).
// test/http-pages.test.ts, test/link-pages-browser-attacks.test.ts, test/http-auth-email.test.ts and
// test/http-factors-links-attacks.test.ts already cover leaks through Referer, cookies and web storage, framing, the
// Back button, XSS through the fragment, superseded/forged links and the owner's remedies; they are not repeated here.
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { authFixtureOn, EMAIL_LINK, RESET_LINK } from "./helpers/auth-flows.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { CHROMIUM, chromiumAvailable, listeningPagesFixture } from "./helpers/page-browser.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const NEW_PASSWORD = "quiet orchard lanterns under snow";

/** The mail-link helpers over one fixture. */
function flows(fx: () => AuthFixture) {
  async function signedIn(email: string): Promise<{ id: string; email: string; password: string; b: Browser }> {
    const user = await fx().user(email);
    const b = fx().browser();
    const res = await b.login(user.email, user.password);
    assert.equal(res.statusCode, 200, res.body);
    return { ...user, b };
  }
  /** The token of the newest mail to `address` holding `link` (after delivering the outbox), or null. */
  async function tokenTo(address: string, link: RegExp): Promise<string | null> {
    await fx().deliver();
    const hit = fx().mailTo(address).filter((m) => link.test(m.body)).at(-1);
    return hit ? ((link.exec(hit.body) as RegExpExecArray)[1] as string) : null;
  }
  function requestChange(b: Browser, newEmail: string): ReturnType<Browser["request"]> {
    return b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail } });
  }
  function confirm(token: string): ReturnType<Browser["request"]> {
    return fx().browser().request("POST", "/auth/email/confirm", { body: { token } });
  }
  async function emailOf(id: string): Promise<string | undefined> {
    return (await fx().app.accounts.users.getById(id))?.email;
  }
  return { signedIn, tokenTo, requestChange, confirm, emailOf };
}

describe("link pages and email change: red team (SQLite, in process)", () => {
  const fx = sharedFixture();
  const { signedIn, tokenTo, requestChange, confirm, emailOf } = flows(() => fx);

  it("attack: the owner whose account a thief moved to the thief's mailbox is not sent after a remedy that cannot reach them: the notice to the old address names a person to contact and the event's reference, not a password reset (ASVS 6.3.7, 6.4.3) (was: 'reset your password now', which from that address mailed nothing while the account's reset went to the thief)", async () => {
    // The thief holds a fresh copy of the owner's cookie (a shared computer, a stolen cookie within the window).
    const owner = await signedIn("moved-away@example.org");
    assert.equal((await requestChange(owner.b, "thief-inbox@evil.example")).statusCode, 202);
    const link = await tokenTo("thief-inbox@evil.example", EMAIL_LINK);
    assert.ok(link, "the thief's mailbox got the link");
    assert.equal((await confirm(link)).statusCode, 200);
    assert.equal(await emailOf(owner.id), "thief-inbox@evil.example", "the account is at the thief's address");

    await fx.deliver();
    const notice = fx.mailTo(owner.email).filter((m) => /your email address was changed/.test(m.subject)).at(-1);
    assert.ok(notice, "the old address is told (ASVS 6.3.7)");
    const advisesReset = /reset your password/i.test(notice.body);

    // The owner does what the notice says, from the only address they have.
    fx.clock.advance(MINUTE);
    const before = fx.mailTo(owner.email).length;
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: owner.email } })).statusCode, 202);
    await fx.deliver();
    const reachedOwner = fx.mailTo(owner.email).slice(before).filter((m) => /#token=/.test(m.body));
    // Meanwhile the account's reset, asked for by its current address, goes to the thief.
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "thief-inbox@evil.example" } })).statusCode, 202);
    assert.ok(await tokenTo("thief-inbox@evil.example", RESET_LINK), "the account's reset link reaches the thief's mailbox");

    // Secure: the notice to the old address gives its reader a way back that works from that mailbox (a revert link,
    // or a reset that reaches it) — or at least does not send them after a remedy that cannot reach them.
    assert.ok(
      !advisesReset || reachedOwner.length > 0,
      `the notice to the old address says "reset your password now", but a reset asked for from it mailed it nothing:\n---\n${notice.body}---`,
    );
  });

  it("attack: a hijacker trying the email-change link that the owner's password reset killed leaves an audit event against the account, auth.email.confirm-refused (ASVS 16.3.3, 16.3.1) (was: no trace)", async () => {
    const owner = await signedIn("audited-owner@example.org");
    assert.equal((await requestChange(owner.b, "audited-thief@evil.example")).statusCode, 202);
    const link = await tokenTo("audited-thief@evil.example", EMAIL_LINK);
    assert.ok(link);
    // The owner reads the request notice and resets the password: the hijacker's link dies.
    fx.clock.advance(MINUTE);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: owner.email } })).statusCode, 202);
    const reset = await tokenTo(owner.email, RESET_LINK);
    assert.ok(reset);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: reset, newPassword: NEW_PASSWORD } })).statusCode, 200);

    fx.clock.advance(MINUTE);
    const events = (): Promise<Array<{ type: string }>> => fx.app.db.db.selectFrom("audit_events").select(["type"]).where("subject", "=", owner.id).orderBy("seq").execute();
    const seen = (await events()).length;
    // The hijacker presents the genuine link (right id, right secret), now refused.
    const refused = await confirm(link);
    assert.equal(refused.statusCode, 400, refused.body);
    assert.equal(await emailOf(owner.id), owner.email, "the defence itself holds: the address did not move");
    const after = (await events()).slice(seen).map((e) => e.type);
    assert.ok(after.length > 0, "a refused use of a genuine link of this account is audited against the account (got no event)");
  });

  it("attack: a link scanner or prefetcher that fetches the link in every way it might — GET and HEAD of the page, the token copied into the query string or the path, OPTIONS, a native POST of the form — confirms nothing and spends nothing, and the page it gets reflects none of what it sent", async () => {
    const owner = await signedIn("scanned@example.org");
    assert.equal((await requestChange(owner.b, "scanned-new@example.org")).statusCode, 202);
    const token = await tokenTo("scanned-new@example.org", EMAIL_LINK);
    assert.ok(token);
    const plain = await fx.server.inject({ method: "GET", url: "/confirm-email", headers: { host: "bulwark.test" } });
    const scans: Array<{ method: "GET" | "HEAD" | "OPTIONS" | "POST"; url: string; payload?: string; type?: string }> = [
      { method: "GET", url: "/confirm-email" },
      { method: "HEAD", url: "/confirm-email" },
      { method: "GET", url: `/confirm-email?token=${token}` },
      { method: "GET", url: `/confirm-email?token=${token}&confirm=1&submit=yes` },
      { method: "GET", url: `/confirm-email/${token}` },
      { method: "OPTIONS", url: "/confirm-email" },
      { method: "POST", url: "/confirm-email", payload: "", type: "application/x-www-form-urlencoded" },
      { method: "POST", url: "/confirm-email", payload: `token=${token}`, type: "application/x-www-form-urlencoded" },
      { method: "GET", url: `/auth/email/confirm?token=${token}` },
      { method: "HEAD", url: `/auth/email/confirm?token=${token}` },
    ];
    for (const scan of scans) {
      const res = await fx.server.inject({
        method: scan.method, url: scan.url,
        // A scanner sends no Origin, but it may claim anything else.
        headers: { host: "evil.example", "x-forwarded-host": "evil.example", "user-agent": "<script>scanner</script>", ...(scan.type ? { "content-type": scan.type } : {}) },
        ...(scan.payload === undefined ? {} : { payload: scan.payload }),
      });
      assert.ok([200, 404].includes(res.statusCode), `${scan.method} ${scan.url.slice(0, 40)} → ${res.statusCode}`);
      if (res.statusCode === 200) {
        // The HTML page: the same bytes whatever was sent, so nothing a crafted link carries reaches the markup.
        if (scan.method === "GET") assert.equal(res.body, plain.body, `${scan.url.slice(0, 40)}: the page is the same bytes whatever was sent`);
        assert.ok(!res.body.includes(token) && !res.body.includes("evil.example") && !res.body.includes("<script>scanner"), `${scan.method} ${scan.url.slice(0, 40)}: nothing reflected`);
      } else {
        // A 404 may name the path it did not find, back to the one who sent it, as JSON (never HTML).
        assert.match(String(res.headers["content-type"]), /^application\/json/, `${scan.method} ${scan.url.slice(0, 40)}`);
      }
      assert.equal(res.headers["cache-control"], "no-store", `${scan.method} ${scan.url.slice(0, 40)}: not kept by a cache`);
    }
    assert.equal(await emailOf(owner.id), "scanned@example.org", "no scan confirmed the change");
    assert.deepEqual(await fx.app.accounts.emailChanges.check(token).then((c) => c.valid), true, "no scan spent the link");
    assert.equal((await confirm(token)).statusCode, 200, "the owner's click still works");
  });
});

/**
 * Two writers racing for one account's address over HTTP: the owner asking for a new address while the thief
 * confirms the link already in the thief's mailbox. On PostgreSQL (READ COMMITTED) the request's session re-check
 * and the confirmation's supersede meet only under the account's link lock.
 */
forEachDialect("email change races", (dx) => {
  let fx: AuthFixture;
  let dialect: "sqlite" | "postgres";
  before(async () => {
    fx = await authFixtureOn(dx, "link-pages-red-team");
    dialect = fx.app.db.dialect;
  });
  after(async () => {
    await fx?.close();
  });
  const { signedIn, tokenTo, requestChange, confirm, emailOf } = flows(() => fx);

  it("attack: the owner's new request racing the thief's confirmation of an earlier link — never both: either the thief's link was superseded, or the owner's session ended with the move and the owner's request was refused (no live link of the owner's outlives a completed move, and no mail goes out for it)", async () => {
    for (let round = 0; round < 8; round++) {
      const owner = await signedIn(`race-${dialect}-${round}@example.org`);
      // The thief rides a copy of the owner's fresh cookie: the owner's browser and the thief's are one session.
      const thief = fx.browser();
      thief.cookie = owner.b.cookie;
      assert.equal((await requestChange(thief, `race-thief-${dialect}-${round}@evil.example`)).statusCode, 202);
      const thiefLink = await tokenTo(`race-thief-${dialect}-${round}@evil.example`, EMAIL_LINK);
      assert.ok(thiefLink);
      const csrf = await owner.b.csrf();
      const ownerNew = `race-mine-${dialect}-${round}@example.org`;
      // Each side in turn is given a head start of a few milliseconds, so both orders (and overlaps) are met.
      const later = <T>(ms: number, go: () => Promise<T>): Promise<T> => new Promise((resolve) => setTimeout(resolve, ms)).then(go);
      const [asked, confirmed] = await Promise.all([
        later(round % 2 === 0 ? 0 : round, () => owner.b.request("POST", "/auth/email/change", { csrf, body: { newEmail: ownerNew } })),
        later(round % 2 === 0 ? round : 0, () => confirm(thiefLink)),
      ]);
      const ownerLink = await tokenTo(ownerNew, EMAIL_LINK);
      const where = `round ${round}: request ${asked.statusCode} ${asked.body.slice(0, 80)}, thief's confirm ${confirmed.statusCode} ${confirmed.body.slice(0, 80)}`;
      assert.ok([200, 400].includes(confirmed.statusCode), where);
      if (confirmed.statusCode === 200) {
        assert.equal(await emailOf(owner.id), `race-thief-${dialect}-${round}@evil.example`, where);
        assert.notEqual(asked.statusCode, 202, `${where}: the owner's request must not be accepted once the move ended its session`);
        assert.equal(ownerLink, null, `${where}: no link mailed for a request refused`);
      } else {
        assert.equal(asked.statusCode, 202, where);
        assert.equal(await emailOf(owner.id), owner.email, where);
        assert.ok(ownerLink, where);
        assert.equal((await confirm(ownerLink)).statusCode, 200, `${where}: the owner's own link works`);
        assert.equal(await emailOf(owner.id), ownerNew, where);
      }
    }
  });
});

const available = chromiumAvailable("link-pages-red-team");

describe("link pages in Chromium: what stays on a shared computer", { skip: !available && `no Chromium at ${CHROMIUM}` }, () => {
  let fx: AuthFixture;
  let origin: string;
  before(async () => {
    ({ fx, origin } = await listeningPagesFixture());
  });
  after(async () => {
    await fx?.close();
  });
  const { tokenTo } = flows(() => fx);

  // Kept as a known limit, not fixed: the only cure is a link that stops working once its page has run (swapped for a
  // secret held by the page alone), and mail gateways that run a link's scripts to scan it would then spend every
  // link before its owner clicks. The link's life (30 minutes; a containment's 24 hours) and single use bound it
  // (docs/http-auth.md, "The link pages"). Marked todo: it runs, and says so while it fails.
  it("known limit: a reset link opened and left unfinished on a shared computer stays usable from the browser's history — replaceState cleans the address bar and Back, not the profile's History, which keeps /reset-password#token=… (and offers it in the address bar) — so the next person at the computer sets the password (ASVS 14.2.1, 14.3.1)", { todo: "accepted limit, docs/http-auth.md \"The link pages\"" }, async () => {
    const user = await fx.user("shared-computer@example.org");
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: user.email } })).statusCode, 202);
    const token = await tokenTo(user.email, RESET_LINK);
    assert.ok(token);
    const link = `${origin}/reset-password#token=${token}`;

    const { chromium } = await import("playwright-core");
    const profile = mkdtempSync(join(tmpdir(), "bulwark-profile-"));
    try {
      // The owner's session at the shared computer: a real profile on disk, as a kiosk or family computer has.
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      });
      try {
        const page = await context.newPage();
        await page.goto(link);
        await page.waitForSelector("#reset:not([hidden])");
        assert.equal(page.url(), `${origin}/reset-password`, "the address bar is clean");
        // The owner is called away (or has no phone for the second step) and closes the window.
      } finally {
        await context.close();
      }

      // The next person at the computer reads the history (chrome://history, or the address bar's suggestions).
      const history = join(profile, "Default", "History");
      assert.ok(existsSync(history), "Chromium wrote the profile's history");
      const copy = join(profile, "history-copy.sqlite");
      copyFileSync(history, copy);
      const db = new DatabaseSync(copy, { readOnly: true });
      const urls = (db.prepare("SELECT url FROM urls").all() as Array<{ url: string }>).map((r) => r.url);
      db.close();
      const found = urls.map((u) => RESET_LINK.exec(u)?.[1]).find((t) => t !== undefined);
      if (found === undefined) return; // nothing to use: secure

      const used = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: found, newPassword: NEW_PASSWORD } });
      assert.notEqual(
        used.statusCode, 200,
        `the token read back from the History file (${urls.filter((u) => u.includes("#token=")).map((u) => u.replace(/\.[A-Za-z0-9_-]{43}/, ".…")).join(", ")}) set a new password`,
      );
      assert.equal((await fx.browser().login(user.email, user.password)).statusCode, 200, "the owner's password still works");
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
