// Red team, round twenty-one: the race attacker against this session's new code. The attacker fires dozens of requests
// at once (Promise.all over app.inject), on one node and across two Bulwark nodes behind one load balancer on one
// PostgreSQL schema of the private cluster (READ COMMITTED; test/helpers/two-nodes.ts). Who: one at the owner's unlocked
// computer with a fresh session (the hourly factor-enrolment budget, b2d9b1a); a thief holding a copy of the owner's
// known-device cookie and a botnet of client addresses (the known browser's own failure window and the stop at 200 in a
// row, 352975f); a password holder (a relay, a stuffer) who wants its real browser's sign-in named late or not at all
// (the new-device notice's first-sign-in key and the hour's follow-up, b2d9b1a). For each, the invariant is asserted
// (at most the limit, exactly once, named at once) and the side effects counted (rows, verifies, notices, records).
// Not repeated (pinned elsewhere): the app-replacement and recovery-code budgets and password-change guesses over two
// nodes (race-red-team), the enrolment budget's documented answers and refunds one at a time (docs-claims-sixth), the
// follow-up's text and due time (docs-claims-sixth, notice-suppression), the known browser past the outsider's stop
// (lockout-red-team), the lever's link spending one node at a time (mailbox-thief). Read and not tested: device_told
// (the second-factor step cannot race the login's mark: the session's cookie reaches the browser only in the login's
// answer, written after the mark; a mark lost to a crash only leaves a told browser unremembered), the follow-up's
// rewrite racing a sender's claim (the row is due only after its hour plus the skew allowance, when no sign-in of that
// hour is left to revise it unless a node's clock lags past the allowance, which is logged and documented), and the
// sender's run loop on two nodes (claims are SKIP LOCKED and every outcome is written under the claimer; slots, stop and
// lease are pinned on both dialects by sender-slow-relay, sender and mail-path).
// Found ("attack: … (was: …)", fixed since: deletes of one flood row pick it FOR UPDATE SKIP LOCKED; the first key's
// loser falls back to the hour's): a refund of the enrolment budget racing another refund on
// PostgreSQL deletes nothing, so refused registrations fired at once spend the owner's hour for good; and two first
// sign-ins of an account at once both take the "first" key, so the loser's browser is left for the hour's follow-up
// (named up to an hour later) though the hour's at-once notice was never spent.
// Held (kept as attacks): one enrolment left and four sessions racing for it, a stolen known-device cookie guessing from
// thirty addresses over two nodes (ten verified), the stop at 200 in a row under a volley, fourteen left-out sign-ins
// gathered in one follow-up, and a kept reset link completed across the lever's commit.
// Loopback and temp dirs only; the PostgreSQL suites are skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { authFixture, GOOD_PASSWORD, ORIGIN, totpCode, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { AddressedBrowser, nextHourPlus } from "./helpers/addressed-browser.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";
import { on, twoNodeCluster } from "./helpers/two-nodes.ts";

type Res = LightMyRequestResponse;
const MASTER = testMasterKey("race-twentyone-red-team");
const unavailable = postgresUnavailable();
const MINUTE = 60_000;
const show = (r: Res): string => `${r.statusCode} ${r.body.slice(0, 160)}`;
const tally = (rs: Res[]): Record<number, number> => rs.reduce<Record<number, number>>((t, r) => ((t[r.statusCode] = (t[r.statusCode] ?? 0) + 1), t), {});
/** The account's factor enrolments an hour (FACTOR_ENROLMENTS_PER_HOUR, src/app/accounts.ts). */
const ENROLMENTS = 10;
/** A known browser's own failure window (KNOWN_LIMIT) and its stop (twice the account's 100: knownMaxConsecutive). */
const KNOWN_WINDOW = 10;
const KNOWN_STOP = 200;

async function eventsOf(fx: AuthFixture, type: string, subject: string): Promise<number> {
  return (await fx.app.db.db.selectFrom("audit_events").select("seq").where("type", "=", type).where("subject", "=", subject).execute()).length;
}

async function outboxTo(fx: AuthFixture, address: string, kind?: string): Promise<Array<{ kind: string; key: string; text: string; due: number }>> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["kind", "idempotency_key", "body_text", "next_attempt_at", "to_address"]).orderBy("created_at").orderBy("id").execute();
  return rows.filter((r) => r.to_address.toLowerCase() === address.toLowerCase() && (kind === undefined || r.kind === kind))
    .map((r) => ({ kind: r.kind, key: r.idempotency_key, text: r.body_text, due: Number(r.next_attempt_at) }));
}

/** Counts every password verified against a stored hash on the nodes `fxs` (argon2 work an attacker makes us do). */
function countVerifies(...fxs: AuthFixture[]): { readonly n: number } {
  const counter = { n: 0 };
  for (const fx of fxs) {
    // The login checks through verifyAndRehash, the password-change and re-authentication routes through verify.
    const passwords = fx.app.accounts.passwords as unknown as Record<"verify" | "verifyAndRehash", (password: string, hash: string) => Promise<unknown>>;
    for (const method of ["verify", "verifyAndRehash"] as const) {
      const original = passwords[method].bind(passwords);
      passwords[method] = async (password, hash) => {
        counter.n++;
        return original(password, hash);
      };
    }
  }
  return counter;
}

/** A passkey registration from `b`'s session: its own options (challenge), then the response made for `origin`. */
async function registerPasskey(b: Browser, origin = ORIGIN): Promise<Res> {
  const options = await b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
  assert.equal(options.statusCode, 200, options.body);
  return b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: new SoftAuthenticator().register(options.json(), origin), name: "key" } });
}

/** A registration response no challenge of the account was ever issued for: refused after the budget's slot is taken. */
const UNASKED = { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: "e30", attestationObject: "AA" } };

describe("red team twenty-one: this session's new code raced on two nodes of one PostgreSQL schema", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  const { twoServers } = twoNodeCluster("race21_rt", MASTER);
  let made = 0;

  describe("the hourly factor-enrolment budget (takeEnrolment over FloodControl.takeFor, b2d9b1a)", () => {
    // takeFor counts the slot under the key's transaction lock; its refund is a bare
    // DELETE … WHERE ctid IN (SELECT ctid … WHERE key = k AND at = t LIMIT 1), no lock, no transaction. Two refunds of slots
    // taken in the same millisecond run at once: both subselects pick the same row, the first deletes it, the second finds
    // it gone on its recheck (READ COMMITTED) and deletes nothing. The slot of a registration that enrolled nothing stays
    // spent. A session fires refused registrations (no challenge asked for: nothing checked, nothing stored, nothing
    // mailed) at once over both nodes, and the owner cannot enrol a factor for the hour.
    // Picking the row FOR UPDATE SKIP LOCKED left a rarer race (a refund that sees only rows others hold, its twin not yet
    // visible), seen once in a fresh-clone CI run: made deterministic in test/flood-refund-race.test.ts.
    it("attack: refused passkey registrations fired at once over two nodes give back every slot of the owner's hourly enrolment budget — concurrent refunds each delete a row of their own — so the owner's own enrolments still go through (ASVS 2.4.1, 6.3.7) (was: the refunds raced on PostgreSQL, some deleted nothing, and the owner met 429 with no factor enrolled)", async () => {
      const { a, b, close } = await twoServers();
      try {
        const owner = await authFlows(() => a).signedIn(`refund-race-${++made}@example.org`);
        const browsers = [owner.b, on(b, owner.b)];
        const slotsHeld = async (): Promise<number> => (await a.app.db.db.selectFrom("flood_events").select("key").where("scope", "=", "ip").execute()).length;
        assert.equal(await slotsHeld(), 0, "precondition: no per-subject window holds anything");
        // Volleys of thirty, until one leaves a slot spent (on code that gives every place back: ten volleys, none).
        const burst: Res[] = [];
        for (let round = 0; round < 10 && (await slotsHeld()) === 0; round++) {
          burst.push(...await Promise.all(Array.from({ length: 30 }, (_, i) =>
            (browsers[i % 2] as Browser).request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: UNASKED, name: "key" } }))));
        }
        assert.ok(burst.every((r) => r.statusCode === 400 || r.statusCode === 429), `control: every registration of the burst was refused: ${JSON.stringify(tally(burst))}`);
        assert.equal(await eventsOf(a, "auth.mfa.added", owner.id), 0, "control: nothing was enrolled");
        assert.equal((await outboxTo(a, owner.email, "security.mfa-added")).length, 0, "control: nothing was mailed to the owner");
        const leaked = await slotsHeld();
        // The owner, minutes later, enrols their keys one at a time, as the budget promises (10 an hour).
        a.clock.advance(2 * MINUTE);
        b.clock.set(a.clock.now());
        let enrolled = 0;
        let refused: Res | undefined;
        for (let i = 0; i < ENROLMENTS && refused === undefined; i++) {
          const r = await registerPasskey(owner.b);
          if (r.statusCode === 200) enrolled++;
          else refused = r;
        }
        // Secure: a registration that enrolled nothing gives its place back whatever else runs at the time
        // (docs/mfa-and-tokens.md): the owner enrols ten. Today: the budget holds slots no enrolment used.
        assert.equal(enrolled, ENROLMENTS,
          `after ${burst.length} refused registrations (${JSON.stringify(tally(burst))}), ${leaked} slot(s) of the hour stayed spent; the owner's enrolment ${enrolled + 1} answered ${refused ? show(refused) : "-"}`);
      } finally {
        await close();
      }
    });

    // Four sessions of the account at full assurance (each passed the app's code), so nothing but the budget stands
    // between them and a second passkey each: the others would enrol too without it.
    it("attack: with one enrolment left in the hour, valid passkey registrations fired at once from four full-assurance sessions over two nodes enrol one: one 200, three 429 BULWARK_ERR_MFA_ENROL_RATE, one passkey stored, one auth.mfa.added, one notice (ASVS 2.4.1, 6.3.7)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const owner = await authFlows(() => a).withTOTP(`one-left-${++made}@example.org`); // the hour's first enrolment
        advance(0);
        const sessions: Browser[] = [owner.b];
        for (let i = 0; i < 3; i++) {
          advance(STEP); // a TOTP step is spent once: each session passes the factor with the next step's code
          const browser = (i % 2 === 0 ? b : a).browser({ newDevice: true });
          assert.equal((await browser.login(owner.email, owner.password)).json().mfaRequired, true);
          const verified = await browser.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, a.clock.now()) } });
          assert.equal(verified.statusCode, 200, verified.body);
          sessions.push(browser);
        }
        // Eight more of the hour's enrolments spent (the counter the routes take: factorEnrolments.takeFor per account).
        for (let i = 0; i < ENROLMENTS - 2; i++) assert.ok(await a.app.accounts.factorEnrolments.takeFor(owner.id), "control: a slot of the hour");
        // Each session asks for its own challenge first, then all four responses go at once.
        const prepared = await Promise.all(sessions.map(async (s) => ({ s, options: (await s.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true })).json() })));
        const answers = await Promise.all(prepared.map(({ s, options }) =>
          s.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: new SoftAuthenticator().register(options, ORIGIN), name: "key" } })));
        assert.deepEqual(answers.map((r) => r.statusCode).sort(), [200, 429, 429, 429], answers.map(show).join(" | "));
        assert.ok(answers.filter((r) => r.statusCode === 429).every((r) => r.json().error?.code === "BULWARK_ERR_MFA_ENROL_RATE"));
        const stored = await a.app.db.db.selectFrom("webauthn_credentials").select("id").where("user_id", "=", owner.id).execute();
        assert.equal(stored.length, 1, "one passkey stored");
        assert.equal(await eventsOf(a, "auth.mfa.added", owner.id), 2, "the app's and one passkey's enrolments recorded");
        assert.equal((await outboxTo(a, owner.email, "security.mfa-added")).length, 2, "the app's and one passkey's notices queued");
      } finally {
        await close();
      }
    });
  });

  describe("a stolen known-device cookie guessing from a botnet (Attempt.known, knownLimit, knownMaxConsecutive, 352975f)", () => {
    /** The owner's own browser on node A: signed in twice (known the second time) and signed out; its device cookie. */
    async function knownCookie(a: AuthFixture, email: string): Promise<{ id: string; email: string; device: string }> {
      const u = await a.user(email);
      const home = new AddressedBrowser(() => a, "192.0.2.10");
      for (let i = 0; i < 2; i++) {
        assert.equal((await home.login(u.email, u.password)).statusCode, 200);
        assert.equal((await home.request("POST", "/auth/logout", { csrf: true })).statusCode, 200);
      }
      assert.ok(home.device, "precondition: the owner's browser holds a known-device cookie");
      return { id: u.id, email: u.email, device: home.device };
    }

    /** `n` wrong passwords with the stolen cookie, each from its own client address, alternating nodes, all at once. */
    function volley(a: AuthFixture, b: AuthFixture, email: string, device: string, n: number, net: number): Promise<Res[]> {
      return Promise.all(Array.from({ length: n }, (_, i) => {
        const thief = new AddressedBrowser(() => (i % 2 === 0 ? a : b), `198.18.${net}.${i + 1}`);
        thief.device = device;
        return thief.login(email, `stolen cookie guess ${net}.${i}`);
      }));
    }

    // The known browser's window is not per client address: it follows the cookie, and every node counts in it (its key
    // locked with the account's in begin). Thirty addresses, one per guess (so no account+IP or per-IP window ever fills).
    it("attack: thirty wrong passwords fired at once with one stolen known-device cookie, each from its own address, over two nodes, get ten verified against the hash, not thirty: the rest are told to wait 'from this browser' (ASVS 6.3.1; NIST SP 800-63B §5.2.2)", async () => {
      const { a, b, close } = await twoServers();
      try {
        const owner = await knownCookie(a, `known-window-${++made}@example.org`);
        const verifies = countVerifies(a, b);
        const guesses = await volley(a, b, owner.email, owner.device, 30, 40);
        assert.deepEqual(tally(guesses), { 401: KNOWN_WINDOW, 429: 30 - KNOWN_WINDOW }, guesses.map(show).join(" | "));
        assert.equal(verifies.n, KNOWN_WINDOW, "ten passwords checked against the hash in the window");
        assert.ok(guesses.filter((r) => r.statusCode === 429).every((r) => /from this browser/.test(r.body) && Number(r.headers["retry-after"]) > 0),
          "the refusals are the known browser's window (a wait), not the account's stop");
      } finally {
        await close();
      }
    });

    // The stop for known attempts is the account's streak reaching 200: a browser with a fresh window, with the streak at
    // 195 (an outsider's 100 and the owner's and thief's since), gets five more, however many it sends at once.
    it("attack: with the account's streak at 195, twelve wrong passwords fired at once with a stolen known-device cookie over two nodes get five verified, then the stop at 200 in a row holds on both nodes, and an unknown browser with the right password is stopped after it (ASVS 6.3.1)", async () => {
      const { a, b, close } = await twoServers();
      try {
        const owner = await knownCookie(a, `known-stop-${++made}@example.org`);
        // One outsider failure makes the identifier's streak row; it is moved to 195 (as 195 failures would leave it).
        const outsider = new AddressedBrowser(() => b, "198.18.50.1");
        assert.equal((await outsider.login(owner.email, "an outsider's guess")).statusCode, 401);
        const streaks = await a.app.db.db.selectFrom("flood_streaks").selectAll().execute();
        assert.equal(streaks.length, 1, "precondition: one streak row, the account's");
        await a.app.db.db.updateTable("flood_streaks").set({ failures: KNOWN_STOP - 5 }).execute();
        const verifies = countVerifies(a, b);
        const guesses = await volley(a, b, owner.email, owner.device, 12, 51);
        assert.deepEqual(tally(guesses), { 401: 5, 429: 7 }, guesses.map(show).join(" | "));
        assert.equal(verifies.n, 5, "five passwords checked: the streak stops at 200");
        assert.ok(guesses.filter((r) => r.statusCode === 429).every((r) => /in a row/.test(r.body)), "refused by the stop, not by a window");
        const [streak] = await a.app.db.db.selectFrom("flood_streaks").select("failures").execute();
        assert.equal(Number(streak?.failures), KNOWN_STOP, "the streak counted exactly to the stop");
        // Hours later, the right password from a browser the account does not know: still the stop (no wait lifts it).
        a.clock.advance(7 * 60 * MINUTE);
        b.clock.set(a.clock.now());
        const unknown = new AddressedBrowser(() => b, "198.18.52.1");
        assert.equal((await unknown.login(owner.email, GOOD_PASSWORD)).statusCode, 429, "an unknown browser is stopped");
        assert.equal(verifies.n, 5, "nothing more was checked");
      } finally {
        await close();
      }
    });
  });

  describe("require-mfa-reenrolment's link spending raced by a reset on the other node (touchesLinks, a537de0)", () => {
    // The completion reads the link (resets.check), then asks whether the account has a factor, then redeems the link in
    // a transaction of its own. The worst interleaving is forced: node B's completion has found the link open and is
    // about to look at the factors when node A's batch (factors deleted, links spent, one transaction) commits; the
    // completion then finds no factor to ask for. Only the redeem's compare-and-set stands between it and the reset.
    it("attack: a kept reset link whose completion on node B found it open just before node A's require-mfa-reenrolment batch committed, and so finds no factor to ask for, resets nothing — nor do completions fired right after: the batch spent the link (ASVS 6.4.3, 7.4.3)", async () => {
      const { a, b, advance, close } = await twoServers();
      try {
        const flows = authFlows(() => a);
        const owner = await flows.withTOTP(`lever-race-${++made}@example.org`);
        const kept = await flows.resetToken(owner.email);
        advance(MINUTE);
        const thiefPassword = "the thief's own new password 42";
        const complete = (): Promise<Res> => b.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: kept, newPassword: thiefPassword } });
        // Node B's factor look for this account waits (once) for node A's batch to commit.
        const mfa = b.app.accounts.mfa as unknown as { hasMfa: (userId: string) => Promise<boolean> };
        const hasMfa = mfa.hasMfa.bind(mfa);
        let reached = (): void => {};
        const atFactorLook = new Promise<void>((resolve) => (reached = resolve));
        let commit = (): void => {};
        const committed = new Promise<void>((resolve) => (commit = resolve));
        let held = false;
        mfa.hasMfa = async (userId) => {
          if (userId === owner.id && !held) {
            held = true;
            reached();
            await committed;
          }
          return hasMfa(userId);
        };
        const during = complete();
        await Promise.race([atFactorLook, during]);
        assert.ok(held, `control: the completion reached its factor look with the link open (it answered ${held ? "-" : show(await during)})`);
        const job = await createContainJob(containDeps(a.app), { levers: ["require-mfa-reenrolment"], scope: { ids: [owner.id] }, actor: "responder" });
        assert.equal((await runJob(containDeps(a.app), job.id)).status, "done");
        assert.equal(await hasMfa(owner.id), false, "control: the factor is gone when the completion looks");
        commit();
        const answers = [await during, ...await Promise.all(Array.from({ length: 4 }, () => complete()))];
        assert.ok(answers.every((r) => r.statusCode !== 200), answers.map(show).join(" | "));
        assert.equal(await eventsOf(a, "auth.password.reset", owner.id), 0, "no reset recorded");
        assert.equal((await outboxTo(a, owner.email, "security.password-reset")).length, 0, "no reset notice");
        assert.equal((await b.browser({ newDevice: true }).login(owner.email, thiefPassword)).statusCode, 401, "the thief's password signs nobody in");
        assert.equal((await a.browser({ newDevice: true }).login(owner.email, owner.password)).statusCode, 200, "the owner's password still works (and asks to enrol again)");
      } finally {
        await close();
      }
    });
  });

  describe("the hour's new-device follow-up written by two nodes at once (newDeviceFollowUp, Outbox.queueOrRevise, b2d9b1a)", () => {
    // Each left-out sign-in appends its record and rewrites the one follow-up from the hour's records, under the account's
    // transaction lock: of writers racing on two nodes, the last to commit reads every record committed before it.
    it("attack: after a throwaway spends the hour's notice, fourteen new browsers signing in at once over two nodes leave one follow-up that names ten and counts the other four: fourteen records, one row, nothing lost to the race (ASVS 6.3.5, 6.3.7)", async () => {
      const { a, b, close } = await twoServers();
      try {
        const owner = await a.user(`follow-up-race-${++made}@example.org`);
        assert.equal((await new AddressedBrowser(() => a, "192.0.2.10").login(owner.email, owner.password)).statusCode, 200, "the owner's first sign-in of all");
        nextHourPlus(a, 5);
        b.clock.set(a.clock.now());
        assert.equal((await new AddressedBrowser(() => b, "203.0.113.7").login(owner.email, owner.password)).statusCode, 200, "the throwaway");
        a.clock.advance(MINUTE);
        b.clock.set(a.clock.now());
        const ips = Array.from({ length: 14 }, (_, i) => `198.51.100.${i + 11}`);
        const logins = await Promise.all(ips.map((ip, i) => new AddressedBrowser(() => (i % 2 === 0 ? a : b), ip).login(owner.email, owner.password)));
        assert.deepEqual(tally(logins), { 200: 14 }, logins.map(show).join(" | "));
        assert.equal(await eventsOf(a, "auth.login.new-device-left-out", owner.id), 14, "each left-out sign-in recorded");
        const followUps = await outboxTo(a, owner.email, "security.new-device-follow-up");
        assert.equal(followUps.length, 1, "one follow-up row for the hour");
        const text = followUps[0]!.text;
        const named = ips.filter((ip) => text.includes(`from the IP address ${ip},`));
        assert.equal(named.length, 10, `the follow-up names ten of the fourteen: ${text}`);
        assert.match(text, /and 4 more such sign-ins in that hour/, "and counts the rest");
        assert.equal((await outboxTo(a, owner.email, "security.new-device-sign-in")).length, 2, "the first sign-in's and the hour's notices, no more");
      } finally {
        await close();
      }
    });
  });
});

describe("red team twenty-one: an account's first sign-ins raced (suspiciousSignIn.newDevice, the `first` key)", () => {
  const fx = sharedFixture(() => authFixture());
  let made = 0;

  // The login decides `first` from the user row it read (lastLoginAt === null) before any sign-in recorded itself, so
  // two first sign-ins at once both ask for `new-device:<user>:first`. One gets it; the other, refused that key, goes
  // straight to the hour's follow-up (due after the hour) without asking for the hour's own notice — which nothing spent.
  // One after the other, the second sign-in gets that at-once notice. A password holder of an account never signed in
  // (imported, made by an administrator, or a sign-up it watched) sends its throwaway and its real browser together: the
  // owner hears of the throwaway at once and of the real browser only after the hour (and no notice is ever at once for it).
  it("attack: two first sign-ins of an account fired at once are both told at once — the loser of the first sign-in's key takes the hour's unspent notice (ASVS 6.3.5) (was: the loser was named only in the follow-up after the hour)", async () => {
    // Control: one after the other.
    const calm = await fx.user(`first-calm-${++made}@example.org`);
    nextHourPlus(fx, 5);
    assert.equal((await new AddressedBrowser(() => fx, "203.0.113.7").login(calm.email, calm.password)).statusCode, 200);
    assert.equal((await new AddressedBrowser(() => fx, "198.51.100.23").login(calm.email, calm.password)).statusCode, 200);
    const calmNotices = (await outboxTo(fx, calm.email, "security.new-device-sign-in")).filter((m) => m.due <= fx.clock.now());
    assert.equal(calmNotices.length, 2, "control: one after the other, both sign-ins are told at once (the first's key and the hour's)");

    const raced = await fx.user(`first-raced-${++made}@example.org`);
    nextHourPlus(fx, 5);
    const now = fx.clock.now();
    const logins = await Promise.all(["203.0.113.7", "198.51.100.23"].map((ip) => new AddressedBrowser(() => fx, ip).login(raced.email, raced.password)));
    assert.deepEqual(logins.map((r) => r.statusCode), [200, 200]);
    const atOnce = (await outboxTo(fx, raced.email)).filter((m) => m.kind.startsWith("security.new-device") && m.due <= now);
    const later = (await outboxTo(fx, raced.email)).filter((m) => m.kind.startsWith("security.new-device") && m.due > now);
    // Secure: each of two new browsers is told at once, as when they come one after the other (the loser of the first
    // key falls back to the hour's). Today: one at-once notice; the other browser waits for the follow-up.
    assert.equal(atOnce.length, 2,
      `raced, ${atOnce.length} sign-in(s) told at once (${atOnce.map((m) => m.key.split(":").slice(2, 4).join(":")).join(", ")}); ${later.length} left for later: ${later.map((m) => `${m.kind} due in ${Math.round((m.due - now) / MINUTE)} min`).join(", ")}`);
  });
});
