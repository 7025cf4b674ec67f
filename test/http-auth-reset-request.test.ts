// The password reset request does the same database work whether or not the address has an account (ASVS 6.3.8),
// and its mail is committed before the 202 leaves (durable: a crash after the answer loses nothing). Timing
// itself is compared in bench/http.ts, never in a test; here the statements are counted instead.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RESET_ACCEPTED } from "../src/http/auth/index.ts";
import { statementsDuring } from "./helpers/statements.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const isWrite = (s: string): boolean => /^(insert|update|delete)\b/.test(s);

describe("POST /auth/password/reset/request", () => {
  it("attack: enumeration by work done — a known, an unknown and a rate-limited address run the same number of statements and writes (ASVS 6.3.8)", async () => {
    await fx.user("even@example.org");
    await fx.user("limited@example.org");
    const ask = (email: string) => fx.browser().request("POST", "/auth/password/reset/request", { body: { email } });
    // Warm the statement caches so that first-use preparation is not counted for one side only.
    await ask("warm-known@example.org");
    await ask("even@example.org");
    for (let i = 0; i < 3; i++) assert.equal((await ask("limited@example.org")).statusCode, 202);
    const known = await statementsDuring(async () => assert.equal((await ask("even@example.org")).statusCode, 202));
    const unknown = await statementsDuring(async () => assert.equal((await ask("nobody-here@example.org")).statusCode, 202));
    const limited = await statementsDuring(async () => assert.equal((await ask("limited@example.org")).statusCode, 202));
    assert.ok(known.some((s) => s.startsWith("insert into \"password_reset_tokens\"")), "the known address got a link");
    assert.ok(!unknown.some((s) => s.includes("password_reset_tokens") && isWrite(s)), "the unknown one did not");
    for (const [name, other] of [["unknown", unknown], ["rate-limited", limited]] as const) {
      assert.equal(other.length, known.length, `${name}: same number of statements\n${known.join("\n")}\n--\n${other.join("\n")}`);
      assert.equal(other.filter(isWrite).length, known.filter(isWrite).length, `${name}: same number of writes`);
      // Reads hit the same tables in the same order (the user lookup, the hourly count, the audit head).
      assert.deepEqual(other.filter((s) => !isWrite(s)), known.filter((s) => !isWrite(s)), `${name}: same reads`);
    }
  });

  it("leaves no throw-away row behind, and the real mail is queued before the 202 is sent (durable)", async () => {
    const ana = await fx.user("durable@example.org");
    const count = async (): Promise<number> => Number((await fx.app.db.db.selectFrom("outbox_messages").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);
    const before = await count();
    const unknown = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "ghost@example.org" } });
    assert.deepEqual(unknown.json(), RESET_ACCEPTED);
    assert.equal(await count(), before, "nothing queued for an unknown address");
    assert.equal(await fx.app.db.db.selectFrom("outbox_messages").select("id").where("to_address", "=", "reset-decoy@bulwark.invalid").executeTakeFirst(), undefined);
    const known = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    assert.deepEqual(known.json(), RESET_ACCEPTED);
    // No delivery, no waiting: at the moment the answer exists, the message and its token are committed rows.
    const queued = await fx.app.db.db.selectFrom("outbox_messages").select(["to_address", "kind", "status"]).where("to_address", "=", ana.email).execute();
    assert.deepEqual(queued.map((r) => ({ ...r })), [{ to_address: ana.email, kind: "account.password-reset-link", status: "queued" }]);
    const tokens = await fx.app.db.db.selectFrom("password_reset_tokens").select("id").where("user_id", "=", ana.id).execute();
    assert.equal(tokens.length, 1);
    await fx.deliver();
    assert.match(fx.mailTo(ana.email)[0]?.body ?? "", /reset-password#token=prt_/);
  });
});
