// Confirming an authenticator app while the keyring is rotated (rotate-keys re-encrypts the pending secret: the
// same secret under a new ciphertext), and while the enrolment is restarted (a new secret): the first must
// succeed with the right code, the second must never confirm the new secret with the old secret's code.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { mfaFixture, totpCode, type MfaFixture } from "../src/accounts/mfa/testing/setup.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { createContainJob, runJob, type ContainDeps } from "../src/contain/index.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite } from "../src/store/database.ts";

const dir = mkdtempSync(join(tmpdir(), "bulwark-mfa-rotation-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A fixture whose keyring runs `between` once, right after confirm() has opened the pending secret. */
async function fixture(): Promise<{ f: MfaFixture; between: (fn: () => Promise<void>) => void }> {
  const f = await mfaFixture(openSQLite(join(dir, `db${++n}.sqlite`), { create: true }));
  const unseal = f.keyring.unseal.bind(f.keyring);
  let pending: (() => Promise<void>) | null = null;
  f.keyring.unseal = async (...args: Parameters<typeof unseal>) => {
    const out = await unseal(...args);
    const run = pending;
    pending = null;
    if (run) await run();
    return out;
  };
  return { f, between: (fn) => void (pending = fn) };
}

it("a right code confirms the enrolment even when a key rotation re-encrypts the secret in between", async () => {
  const { f, between } = await fixture();
  const user = await f.users.create({ email: "ana@example.org" });
  const { secret } = await f.mfa.totp.begin(user.id, user.email);
  const deps: ContainDeps = {
    database: f.database, clock: f.clock, random: systemRandom, keyring: f.keyring, notifier: null,
    audit: new AuditLog({ database: f.database, clock: f.clock, random: systemRandom }), jobs: new JobStore({ database: f.database, clock: f.clock, random: systemRandom }),
  };
  const before = (await f.database.db.selectFrom("mfa_totp").select("secret_ct").executeTakeFirstOrThrow()).secret_ct;
  between(async () => {
    const job = await createContainJob(deps, { levers: ["rotate-keys"], scope: { all: true }, actor: "cli" });
    assert.equal((await runJob(deps, job.id)).status, "done");
  });
  assert.equal(await f.mfa.totp.confirm(user.id, totpCode(secret, f.clock.now())), true);
  const row = await f.database.db.selectFrom("mfa_totp").select(["secret_ct", "confirmed_at"]).executeTakeFirstOrThrow();
  assert.notEqual(row.secret_ct, before, "the rotation did re-encrypt it");
  assert.notEqual(row.confirmed_at, null);
});

it("attack: a code for the old secret never confirms an enrolment restarted in between (a new secret)", async () => {
  const { f, between } = await fixture();
  const user = await f.users.create({ email: "bo@example.org" });
  const first = await f.mfa.totp.begin(user.id, user.email);
  between(async () => {
    await f.mfa.totp.begin(user.id, user.email);
  });
  assert.equal(await f.mfa.totp.confirm(user.id, totpCode(first.secret, f.clock.now())), false);
  const row = await f.database.db.selectFrom("mfa_totp").select("confirmed_at").executeTakeFirstOrThrow();
  assert.equal(row.confirmed_at, null, "the new secret stays unconfirmed");
});
