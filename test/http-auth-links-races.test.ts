// Link transactions of one account racing each other over HTTP, on SQLite and PostgreSQL, written as attacks that
// must fail: two reset links completed at once, a reset completion against an email confirmation (on PostgreSQL
// both used to deadlock into a 500), and a reset request racing an email confirmation (it used to mail a working
// link to the address the account had just left).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { testMasterKey } from "./helpers/master-key.ts";

const RESET_LINK = /#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
const EMAIL_LINK = /#token=(ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
// Enough rounds for the PostgreSQL lock cycle to show (it did in about two rounds of three before the fix).
const ROUNDS = 12;

type Response = Awaited<ReturnType<ReturnType<AuthFixture["browser"]>["request"]>>;

/** The outcome of two racing requests as `status code` or `status code error code`, sorted. */
function outcomes(responses: Response[]): string[] {
  return responses.map((r) => (r.statusCode === 200 ? "200" : `${r.statusCode} ${String(r.json()?.error?.code)}`)).sort();
}

let clusterStarted = false;
after(async () => {
  if (clusterStarted) await (await sharedCluster())?.stop();
});

function linkRaces(dialect: "sqlite" | "postgres"): void {
  let fx: AuthFixture;
  before(async () => {
    if (dialect === "sqlite") {
      fx = await authFixture();
      return;
    }
    clusterStarted = true;
    const cluster = await sharedCluster();
    assert.ok(cluster, "PostgreSQL did not start");
    fx = await authFixture({ BULWARK_DATABASE_URL: await cluster.createDatabase(`links_races_${process.pid}`), BULWARK_MASTER_KEY: testMasterKey(3) });
  });
  after(async () => {
    await fx?.close();
  });

  /** The reset tokens mailed to `address`, oldest first. */
  async function resetTokensTo(address: string): Promise<string[]> {
    await fx.deliver();
    return fx.mailTo(address).filter((m) => /reset your password/.test(m.subject)).map((m) => RESET_LINK.exec(m.body)?.[1]).filter((t): t is string => t !== undefined);
  }

  it("attack: two reset links of one account completed at once — one resets, the other gets the link refusal, never a 500 (ASVS 6.4.1)", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const user = await fx.user(`two-links-${i}@example.org`);
      for (let k = 0; k < 2; k++) assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: user.email } })).statusCode, 202);
      const tokens = await resetTokensTo(user.email);
      assert.equal(tokens.length, 2);
      const res = await Promise.all(tokens.map((token, k) => fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: `copper meadow whistles softly ${k}` } })));
      assert.deepEqual(outcomes(res), ["200", "400 BULWARK_ERR_RESET_TOKEN"], `round ${i}: ${res.map((r) => r.body).join(" | ")}`);
    }
  });

  it("attack: an email confirmation and a reset completion of one account at once — exactly one wins, the other is refused, never a 500", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const user = await fx.user(`both-${i}@example.org`);
      const b = fx.browser();
      assert.equal((await b.login(user.email, user.password)).statusCode, 200);
      assert.equal((await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: `both-new-${i}@example.org` } })).statusCode, 202);
      assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: user.email } })).statusCode, 202);
      await fx.deliver();
      const emailToken = EMAIL_LINK.exec(fx.mailTo(`both-new-${i}@example.org`).at(-1)?.body ?? "")?.[1];
      const resetToken = (await resetTokensTo(user.email)).at(-1);
      assert.ok(emailToken && resetToken);
      fx.clock.advance(1000);
      const res = await Promise.all([
        fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: resetToken, newPassword: "copper meadow whistles softly" } }),
        fx.browser().request("POST", "/auth/email/confirm", { body: { token: emailToken } }),
      ]);
      const [reset, confirm] = outcomes([res[0]!]).concat(outcomes([res[1]!]));
      const winners = [reset, confirm].filter((o) => o === "200").length;
      assert.equal(winners, 1, `round ${i}: ${res.map((r) => `${r.statusCode} ${r.body}`).join(" | ")}`);
      // The loser gets its route's normal link refusal: each winner supersedes the other flow's open links.
      assert.ok(reset === "400 BULWARK_ERR_RESET_TOKEN" || confirm === "400 BULWARK_ERR_EMAIL_CHANGE_TOKEN", `round ${i}: ${reset} / ${confirm}`);
    }
  });

  it("attack: a reset request racing an email confirmation mails no working link to the address the account left", async () => {
    const ana = await fx.user("old-box@example.org");
    const b = fx.browser();
    assert.equal((await b.login(ana.email, ana.password)).statusCode, 200);
    assert.equal((await b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "new-box@example.org" } })).statusCode, 202);
    await fx.deliver();
    const confirmToken = EMAIL_LINK.exec(fx.mailTo("new-box@example.org").find((m) => /confirm your new email/.test(m.subject))?.body ?? "")?.[1];
    assert.ok(confirmToken);

    // The interleaving a second connection produces on its own: the reset request's lookup has returned (with the
    // old address) when the owner's confirmation runs and commits, before the request's transaction begins.
    const users = fx.app.accounts.users as { findByIdentifier: AuthFixture["app"]["accounts"]["users"]["findByIdentifier"] };
    const original = users.findByIdentifier;
    let confirmed: Response | undefined;
    users.findByIdentifier = async (identifier) => {
      users.findByIdentifier = original;
      const found = await original(identifier);
      confirmed = await fx.browser().request("POST", "/auth/email/confirm", { body: { token: confirmToken } });
      return found;
    };
    let requested: Response;
    try {
      requested = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "old-box@example.org" } });
    } finally {
      users.findByIdentifier = original;
    }
    assert.equal(confirmed?.statusCode, 200, confirmed?.body);
    assert.equal((await fx.app.accounts.users.getById(ana.id))?.email, "new-box@example.org", "the address changed");
    assert.equal(requested.statusCode, 202, "the same answer as ever");

    assert.deepEqual(await resetTokensTo("old-box@example.org"), [], "no reset link went to the old mailbox");
    const open = await fx.app.db.db.selectFrom("password_reset_tokens").select("id").where("user_id", "=", ana.id).where("used_at", "is", null).execute();
    assert.equal(open.length, 0, "no reset link of the account is open after the change");
  });
}

describe("link races [sqlite]", () => linkRaces("sqlite"));
const unavailable = postgresUnavailable();
describe("link races [postgres]", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => linkRaces("postgres"));
