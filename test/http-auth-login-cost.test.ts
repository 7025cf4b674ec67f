// The cost of a login over HTTP, counted in statements (timing is the benchmark's job, bench/http.ts): the
// attempt is counted by flood control in one short transaction before the verify and taken back in one after it
// (so parallel guesses count each other); nothing else needs a transaction — not even a brand-new session — and
// no check is weakened: a login after failures still clears them, and a throttled account stays throttled.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { statementsDuring } from "./helpers/statements.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

describe("login cost", () => {
  it("a clean login: two short flood-control transactions around the verify, no other; at most 17 statements", async () => {
    const ana = await fx.user("cost@example.org");
    await fx.browser().login(ana.email, ana.password);
    const seen = await statementsDuring(async () => assert.equal((await fx.browser().login(ana.email, ana.password)).statusCode, 200));
    assert.equal(seen.filter((s) => s.startsWith("begin")).length, 2, `the attempt counted, then taken back; a new session needs none:\n${seen.join("\n")}`);
    assert.equal(seen.filter((s) => /^(insert|update|delete)\b/.test(s) && !/flood_/.test(s)).length, 3, "last login, audit event, session");
    assert.ok(seen.length <= 17, `a clean login ran ${seen.length} statements:\n${seen.join("\n")}`);
  });

  it("a login after failures still clears the account's counter and streak (ASVS 6.3.1)", async () => {
    const bo = await fx.user("cost-failures@example.org");
    for (let i = 0; i < 4; i++) assert.equal((await fx.browser().login(bo.email, `wrong ${i}`)).statusCode, 401);
    const flooding = { identifier: bo.email, ip: "127.0.0.1" };
    const before = await fx.app.accounts.flood.check(flooding);
    assert.equal(before.allowed && before.accountClean, false, "four failures are counted");
    const seen = await statementsDuring(async () => assert.equal((await fx.browser().login(bo.email, bo.password)).statusCode, 200));
    assert.ok(seen.some((s) => /^delete from "?flood_events"? where "?scope"? = /.test(s)), "the counter is cleared on success");
    const afterwards = await fx.app.accounts.flood.check(flooding);
    assert.equal(afterwards.allowed && afterwards.accountClean, true);
    for (let i = 0; i < 4; i++) assert.equal((await fx.browser().login(bo.email, `again ${i}`)).statusCode, 401, "a fresh window after the success");
  });

  it("attack: a throttled account stays throttled — the right password gets 429, not a session", async () => {
    const cy = await fx.user("cost-throttled@example.org");
    for (let i = 0; i < 5; i++) await fx.browser().login(cy.email, `guess ${i}`);
    const blocked = await fx.browser().login(cy.email, cy.password);
    assert.equal(blocked.statusCode, 429);
    assert.equal(blocked.headers["set-cookie"], undefined);
  });

  it("attack: a cookie planted before login is still rotated away (fixation, ASVS 7.2.4), inside one transaction", async () => {
    const di = await fx.user("cost-rotate@example.org");
    const planted = await fx.app.accounts.sessions.createSession(null);
    const b = fx.browser();
    b.cookie = planted.token;
    const seen = await statementsDuring(async () => assert.equal((await b.login(di.email, di.password)).statusCode, 200));
    assert.ok(seen.includes("begin immediate") && seen.some((s) => s.startsWith("delete from \"sessions\"")), "the planted session is deleted in the rotation");
    assert.notEqual(b.cookie, planted.token);
    assert.equal((await fx.app.accounts.sessions.validate(planted.token)).valid, false);
  });
});
