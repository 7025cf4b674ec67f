// For the outbox tests: a reset link queued the way the server queues one (the mailer's real path, sealed at rest).
import assert from "node:assert/strict";
import { createResetMailer } from "../../src/accounts/password-reset/reset-mail.ts";
import { createPasswordResetService, type PasswordResetService } from "../../src/accounts/password-reset/reset-service.ts";
import { createUserStore } from "../../src/accounts/users/user-store.ts";
import { systemRandom } from "../../src/lib/random.ts";
import type { NotifyFixture } from "../../src/notify/test-setup.ts";
import type { Database } from "../../src/store/database.ts";

/** Creates the user ana@example.org and queues a password-reset link for her in `f.outbox`. */
export async function queueResetLink(database: Database, f: NotifyFixture): Promise<{ resets: PasswordResetService }> {
  const user = await createUserStore({ database, clock: f.clock, random: systemRandom }).create({ email: "ana@example.org" });
  const resets = createPasswordResetService({ database, clock: f.clock, random: systemRandom });
  const mailer = createResetMailer({ database, resets, outbox: f.outbox, random: systemRandom });
  assert.equal(await mailer.request({ id: user.id, email: user.email }, { publicURL: "https://bulwark.test", serviceName: "Bulwark" }, "reset"), "queued");
  return { resets };
}
