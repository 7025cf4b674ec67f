// Key rotation and TOTP secrets, on SQLite and PostgreSQL: the rotate-keys containment lever re-encrypts
// mfa_totp.secret_ct under the new data key (registered in src/contain/encrypted-columns.ts), and the
// authenticator app keeps working afterwards (ASVS 11.1.x key lifecycle).
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { createContainJob, jobView, runJob, type ContainDeps } from "../../contain/index.ts";
import { Keyring } from "../../crypto/keyring.ts";
import { JobStore } from "../../jobs/job-store.ts";
import { systemRandom } from "../../lib/random.ts";
import { mfaFixture, totpCode } from "./testing/setup.ts";

forEachDialect("TOTP secrets under key rotation", (fx) => {
  it("rotate-keys re-encrypts a replacement app waiting for its first code (mfa_totp.pending_secret_ct, migration 30), and the replacement still goes through with the new app's code", async () => {
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "rot-pending@example.org" });
    const { secret: old } = await f.mfa.totp.begin(user.id, user.email);
    assert.equal(await f.mfa.totp.confirm(user.id, totpCode(old, f.clock.now())), true);
    const { secret: replacement } = await f.mfa.totp.beginReplacement(user.id, user.email, { sessionId: "tab" });
    const deps: ContainDeps = {
      database: f.database, clock: f.clock, random: systemRandom, keyring: f.keyring, notifier: null,
      audit: new AuditLog({ database: f.database, clock: f.clock, random: systemRandom }),
      jobs: new JobStore({ database: f.database, clock: f.clock, random: systemRandom }),
    };
    const job = await createContainJob(deps, { levers: ["rotate-keys"], scope: { all: true }, actor: "test" });
    assert.equal(jobView(await runJob(deps, job.id)).status, "done");
    const row = await f.database.db.selectFrom("mfa_totp").select(["secret_ct", "pending_secret_ct"]).executeTakeFirstOrThrow();
    assert.equal(Keyring.keyIdOf(row.secret_ct), f.keyring.currentDataKeyId);
    assert.equal(Keyring.keyIdOf(row.pending_secret_ct!), f.keyring.currentDataKeyId, "the waiting secret is under the new key too");
    f.clock.advance(60_000);
    assert.equal(await f.mfa.totp.confirmReplacement(user.id, totpCode(replacement, f.clock.now()), { sessionId: "tab" }), true);
    f.clock.advance(60_000);
    assert.equal(await f.mfa.totp.verify(user.id, totpCode(replacement, f.clock.now())), "ok");
    f.clock.advance(60_000);
    assert.equal(await f.mfa.totp.verify(user.id, totpCode(old, f.clock.now())), "invalid", "the replaced app's codes no longer pass");
  });

  it("rotate-keys re-encrypts every TOTP secret under the new key and codes still verify", async () => {
    const f = await mfaFixture(await fx.fresh());
    const enrolled: Array<{ id: string; secret: string }> = [];
    for (let i = 0; i < 3; i++) {
      const user = await f.users.create({ email: `rot${i}@example.org` });
      const { secret } = await f.mfa.totp.begin(user.id, user.email);
      assert.equal(await f.mfa.totp.confirm(user.id, totpCode(secret, f.clock.now())), true);
      enrolled.push({ id: user.id, secret });
    }
    const oldKey = f.keyring.currentDataKeyId;
    const deps: ContainDeps = {
      database: f.database, clock: f.clock, random: systemRandom, keyring: f.keyring, notifier: null,
      audit: new AuditLog({ database: f.database, clock: f.clock, random: systemRandom }),
      jobs: new JobStore({ database: f.database, clock: f.clock, random: systemRandom }),
    };
    const job = await createContainJob(deps, { levers: ["rotate-keys"], scope: { all: true }, actor: "test" });
    const view = jobView(await runJob(deps, job.id));
    assert.equal(view.status, "done");
    assert.deepEqual(view.counts["rotate-keys"], { reencrypted: 3 });
    assert.notEqual(f.keyring.currentDataKeyId, oldKey);
    for (const row of await f.database.db.selectFrom("mfa_totp").select("secret_ct").execute()) {
      assert.equal(Keyring.keyIdOf(row.secret_ct), f.keyring.currentDataKeyId);
    }
    f.clock.advance(60_000);
    for (const u of enrolled) assert.equal(await f.mfa.totp.verify(u.id, totpCode(u.secret, f.clock.now())), "ok");
  });
});
