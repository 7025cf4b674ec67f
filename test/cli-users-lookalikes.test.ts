// `bulwark users lookalikes`: the accounts stored before look-alikes were refused (migration 23 marked them) are listed
// with the account each reads like, exit 1 while any is left to judge; --claim-free puts an account whose look-alike
// is gone back under the unique index. A marked account refuses new look-alikes of itself all along. ASVS 1.1.1.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

const root = mkdtempSync(join(tmpdir(), "bulwark-lookalikes-"));
after(() => rmSync(root, { recursive: true, force: true }));

const PAY_CYRILLIC = "\u0440\u0430\u0443@example.org"; // рау@example.org
const SCOPE_CYRILLIC = "\u0455\u0441\u043e\u0440\u0435"; // ѕсоре

describe("bulwark users lookalikes", () => {
  it("lists the stored look-alike pairs, exits 1 while any is left, and --claim-free protects one whose twin has gone", async () => {
    const env = { BULWARK_DATA_DIR: join(root, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent" };
    assert.equal((await bulwarkInProcess(["init"], env)).code, 0);
    assert.deepEqual(await bulwarkInProcess(["users", "lookalikes"], env), { code: 0, stdout: "no account reads like another\n", stderr: "" });
    const app = await openApp({ env });
    let pay: string;
    let gone: string;
    try {
      pay = (await app.accounts.users.create({ email: "pay@example.org", username: "scope" })).id;
      gone = (await app.accounts.users.create({ email: "ace@example.org" })).id;
      // As migration 23 leaves accounts stored before it that read like another: marked, out of the unique index.
      const legacy = app.accounts.users.prepare({ email: PAY_CYRILLIC, username: SCOPE_CYRILLIC });
      await app.db.db.insertInto("users").values({ ...legacy, id: "usr_legacy_pay", email_lookalike: 1, username_lookalike: 1 }).execute();
      const twin = app.accounts.users.prepare({ email: "\u0430\u0441\u0435@example.org" }); // асе@, reads like ace@
      await app.db.db.insertInto("users").values({ ...twin, id: "usr_legacy_ace", email_lookalike: 1 }).execute();
      // ace@ leaves: its twin now reads like no account, and its skeleton is free for anyone to take.
      await app.db.db.updateTable("users").set({ email: "moved@example.org", email_key: "moved@example.org", email_skeleton: "moved@example.org" }).where("id", "=", gone).execute();
    } finally {
      await app.close();
    }

    const listed = await bulwarkInProcess(["users", "lookalikes", "--json"], env);
    assert.equal(listed.code, 1, listed.stderr);
    const { lookalikes } = JSON.parse(listed.stdout) as { lookalikes: Array<{ account: { id: string }; field: string; readsLike: { id: string } | null; claimed: boolean }> };
    assert.deepEqual(lookalikes.map((l) => [l.account.id, l.field, l.readsLike?.id ?? null, l.claimed]), [
      ["usr_legacy_ace", "email", null, false],
      ["usr_legacy_pay", "email", pay, false],
      ["usr_legacy_pay", "username", pay, false],
    ]);
    const human = await bulwarkInProcess(["users", "lookalikes"], env);
    assert.equal(human.code, 1);
    assert.match(human.stdout, new RegExp(`usr_legacy_pay ${PAY_CYRILLIC} \\(${SCOPE_CYRILLIC}\\): its email reads like ${pay} pay@example.org \\(scope\\)`));
    assert.match(human.stdout, /3 look-alike identifier\(s\) left to judge/);

    const claimed = await bulwarkInProcess(["users", "lookalikes", "--claim-free", "--json"], env);
    assert.equal(claimed.code, 1, "the pay@ pair is still there to judge");
    assert.deepEqual((JSON.parse(claimed.stdout) as { lookalikes: Array<{ claimed: boolean }> }).lookalikes.map((l) => l.claimed), [true, false, false]);
    // A new ace@ beside асе@ is refused (as it was before the claim too), and асе@ is under the unique index again.
    const again = await openApp({ env });
    try {
      await assert.rejects(again.accounts.users.create({ email: "ace@example.org" }), { code: "BULWARK_ERR_EMAIL_CONFUSABLE" });
      const row = await again.db.db.selectFrom("users").select("email_lookalike").where("id", "=", "usr_legacy_ace").executeTakeFirstOrThrow();
      assert.equal(Number(row.email_lookalike), 0);
    } finally {
      await again.close();
    }
  });
});
