// A display name that begins with a combining mark (Unicode category M). The mark has no letter of its own, so it
// draws on whatever is shown before the name: "Welcome, " + U+0301 + "Bob" in a notice mail puts an accent on the
// comma, an administrator's list puts it on the previous cell, and a name made only of marks shows nothing at all.
// Usernames and addresses were refused so already (src/accounts/users/normalise.ts); display names, free text checked
// only for control characters, were not. Every door that sets one is attacked here: POST /api/v1/users, the account
// store a library caller uses, and `bulwark users import` (new accounts and --on-conflict update). A decomposed
// "Zoë" (marks after their letter) must still pass. ASVS 1.2.1 (output encoding depends on what is stored).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { displayNameProblem } from "../src/accounts/users/index.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { initSite } from "./helpers/cli.ts";
import { scratchRoot } from "./helpers/scratch.ts";

const { fresh } = scratchRoot("bulwark-display-name-marks-");

/** Names that must be refused, each with the code point the refusal has to name. */
const HOSTILE: Array<[string, string]> = [
  ["\u0301Bob", "U+0301"], // an acute accent that lands on what comes before
  ["\u0301\u0308\u20DD", "U+0301"], // marks only: shows as nothing of its own
  ["\u0903Ravi", "U+0903"], // a spacing mark (Mc), Devanagari visarga
  ["\u20DDadmin", "U+20DD"], // an enclosing mark (Me), the combining enclosing circle
  ["\u200F\u0301Bob", "U+0301"], // behind a right-to-left mark, which shows nothing the accent could sit on
];

/** Decomposed "Zoë" (e + U+0308) and other names whose marks follow their letters. */
const FINE = ["Zoe\u0308", "Ana\u0301 Lo\u0301pez", "\u0930\u0935\u093F", "\u200F\u05E9\u05DC\u05D5\u05DD"];

describe("a display name beginning with a combining mark", () => {
  let fx: APIFixture;
  let adminToken: string;
  before(async () => {
    fx = await openAPIFixture();
    const admin = await fx.user(["admin"]);
    adminToken = await fx.token(admin.id, ["admin"]);
  });
  after(async () => {
    await fx?.close();
  });

  it("attack: POST /api/v1/users with a display name that starts with a combining mark is refused 400, naming the field and the mark, and no account is made (was: 201)", async () => {
    let i = 0;
    for (const [name, point] of HOSTILE) {
      const email = `mark-${++i}@example.org`;
      const res = await fx.call("POST", "/api/v1/users", { token: adminToken, body: { email, displayName: name } });
      assert.equal(res.statusCode, 400, `${JSON.stringify(name)}: ${res.body}`);
      const error = (res.json() as { error: { code: string; message: string } }).error;
      assert.equal(error.code, "BULWARK_ERR_DISPLAY_NAME_INVALID");
      assert.match(error.message, /displayName/, "the message names the field");
      assert.match(error.message, new RegExp(`combining mark \\(${point.replace("+", "\\+")}\\)`), "the message names the reason and the mark");
      assert.equal(await fx.app.accounts.users.findByIdentifier(email), null, "no account was made");
    }
  });

  it("attack: the account store refuses such a display name to a library caller too (was: stored)", async () => {
    let i = 0;
    for (const [name] of HOSTILE) {
      const email = `store-mark-${++i}@example.org`;
      await assert.rejects(fx.app.accounts.users.create({ email, displayName: name }), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_DISPLAY_NAME_INVALID", JSON.stringify(name));
      assert.equal(await fx.app.accounts.users.findByIdentifier(email), null);
      assert.notEqual(displayNameProblem(name), null, JSON.stringify(name));
    }
  });

  it("accepts marks that follow their letter (a decomposed Zoë), over the API and in the store, and keeps them as sent", async () => {
    let i = 0;
    for (const name of FINE) {
      assert.equal(displayNameProblem(name), null, JSON.stringify(name));
      const res = await fx.call("POST", "/api/v1/users", { token: adminToken, body: { email: `fine-${++i}@example.org`, displayName: name } });
      assert.equal(res.statusCode, 201, `${JSON.stringify(name)}: ${res.body}`);
      assert.equal((res.json() as { user: { displayName: string } }).user.displayName, name);
      const made = await fx.app.accounts.users.create({ email: `store-fine-${i}@example.org`, displayName: name });
      assert.equal(made.displayName, name);
    }
  });

  it("leaves a name stored before the rule as it is: the account still reads back (existing names are not touched)", async () => {
    const made = await fx.app.accounts.users.create({ email: "older@example.org", displayName: "Bob" });
    await fx.app.db.db.updateTable("users").set({ display_name: "\u0301Bob" }).where("id", "=", made.id).execute();
    const res = await fx.call("GET", `/api/v1/users/${made.id}`, { token: adminToken });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((res.json() as { user: { displayName: string } }).user.displayName, "\u0301Bob");
  });
});

describe("users import with a display name beginning with a combining mark", () => {
  it("attack: a CSV row whose display_name starts with a combining mark is a bad row naming the mark, for a new account and for --on-conflict update (was: imported)", async () => {
    const s = await initSite(fresh("site"), { here: true });
    const first = await s.runHere(["users", "import", s.file("first.csv", "email,display_name\nzoe@example.org,Zoe\u0308\nbob@example.org,Bob\n"), "--json"]);
    assert.equal(first.code, 0, first.stderr);

    const csv = s.file("marks.csv", [
      "email,display_name",
      "new@example.org,\u0301Mallory", // line 2: a new account
      "bob@example.org,\u0301\u0301", // line 3: marks only, over an existing account's name
      "zoe@example.org,Zoe\u0308 Smith", // line 4: fine
    ].join("\n") + "\n");
    const r = await s.runHere(["users", "import", csv, "--on-conflict", "update", "--skip-bad", "--json"]);
    const report = JSON.parse(r.stdout) as { bad: Array<{ line: number; reason: string }> };
    assert.deepEqual(report.bad.map((b) => b.line), [2, 3], r.stdout);
    for (const b of report.bad) assert.match(b.reason, /display_name .*combining mark \(U\+0301\)/, b.reason);
    assert.deepEqual(s.rows("SELECT email, display_name FROM users ORDER BY email"), [
      { email: "bob@example.org", display_name: "Bob" },
      { email: "zoe@example.org", display_name: "Zoe\u0308 Smith" },
    ], "no name with a leading mark was stored, nor the account that carried one; the decomposed Zoë was updated");
  });
});
