// The one check and refusal of an account's new password (account.ts), as the routes and `bulwark users create` use it.
import assert from "node:assert/strict";
import { it } from "node:test";
import { accountPasswordContext, throwIfRefused } from "./account.ts";
import { createPasswordPolicy } from "./policy.ts";
import { createCommonPasswordList } from "./common-list.ts";

it("an account's context words are its address, username, display name and the service's name: a password built from the display name is refused however the caller is reached (ASVS 6.2.11)", async () => {
  const policy = createPasswordPolicy({ commonPasswords: createCommonPasswordList([]) });
  const context = accountPasswordContext({ email: "ada@example.org", username: null, displayName: "Ada Lovelace" }, "Example Cloud");
  assert.deepEqual(context, { email: "ada@example.org", serviceName: "Example Cloud", extraWords: ["Ada Lovelace"] });
  const verdict = await policy.check("lovelace lovelace harbour", context);
  assert.equal(verdict.ok, false);
  assert.throws(() => throwIfRefused(verdict), (error: Error & { code?: string; details?: { reasons?: string[] } }) => {
    assert.equal(error.code, "BULWARK_ERR_PASSWORD_POLICY");
    assert.match(error.message, /^the new password is refused: /);
    assert.ok(error.details?.reasons?.includes("context-word"), JSON.stringify(error.details));
    return true;
  });
  assert.doesNotThrow(() => throwIfRefused({ ok: true }));
});

it("a refusal that is only the breach lookup's outage is the server's failure (503 / exit 3), not bad input", () => {
  assert.throws(() => throwIfRefused({ ok: false, reasons: [{ code: "breach-check-unavailable", message: "the breach check is unavailable" }] }), { code: "BULWARK_ERR_BREACH_CHECK_UNAVAILABLE" });
});
