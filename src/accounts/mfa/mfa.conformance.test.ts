// MFA service behaviour on SQLite and PostgreSQL: TOTP enrolment and login (with RFC 6238 known answers),
// recovery codes, WebAuthn ceremonies with a real software authenticator, factors and removeAll.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { hashSecret } from "../../crypto/tokens.ts";
import { systemRandom } from "../../lib/random.ts";
import { createSessionManager } from "../sessions/index.ts";
import { sessionChallengeContext, totpCipherContext } from "./index.ts";
import { base32Decode, mfaFixture, ORIGIN, RP_ID, scriptedRandom, totpCode } from "./testing/setup.ts";
import { TOTP_ENROLMENT_TTL_MS, TOTP_REPLACEMENT_TTL_MS } from "./totp.ts";
import { SoftAuthenticator } from "./testing/soft-authenticator.ts";

/** The flow (a session) every challenge in these tests is asked for and answered in. */
const FLOW = { context: "session:tests" };

/** The flow the enrolment ceremonies here belong to (a session on the HTTP side). */
const REG = { context: sessionChallengeContext("ses_enrolment") };

const STEP = 30_000;

forEachDialect("MFA service", (fx) => {
  it("TOTP replacement: confirmed only by the session that began it and within 30 minutes, listed while that session stands; a password change's cancel drops it", async () => {
    const f = await mfaFixture(await fx.fresh());
    const sessions = createSessionManager({ database: f.database, clock: f.clock, random: systemRandom });
    const user = await f.users.create({ email: "replace-ttl@example.org" });
    const { secret: old } = await f.mfa.totp.begin(user.id, user.email);
    assert.equal(await f.mfa.totp.confirm(user.id, totpCode(old, f.clock.now())), true);
    const s1 = (await sessions.createSession(user.id, { aal: 2 })).session.id;
    const late = await f.mfa.totp.beginReplacement(user.id, user.email, { sessionId: s1 });
    await assert.rejects(f.mfa.totp.confirmReplacement(user.id, totpCode(late.secret, f.clock.now()), { sessionId: "s2" }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED", message: /waits for this session/ });
    f.clock.advance(TOTP_REPLACEMENT_TTL_MS);
    await assert.rejects(f.mfa.totp.confirmReplacement(user.id, totpCode(late.secret, f.clock.now()), { sessionId: s1 }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" }, "past its lifetime");
    assert.equal(await f.mfa.totp.pendingReplacement(user.id), null);
    const s3 = (await sessions.createSession(user.id, { aal: 2 })).session.id;
    const again = await f.mfa.totp.beginReplacement(user.id, user.email, { sessionId: s3 });
    assert.deepEqual(await f.mfa.totp.pendingReplacement(user.id), { startedAt: f.clock.now(), expiresAt: again.expiresAt });
    // Its session ended (by any path: here its row deleted): no session can confirm it, and it is not listed.
    assert.equal(await sessions.end(s3, user.id), true);
    assert.equal(await f.mfa.totp.pendingReplacement(user.id), null, "not listed once its session is gone");
    assert.equal(await f.mfa.totp.cancelUnconfirmed(user.id), true);
    await assert.rejects(f.mfa.totp.confirmReplacement(user.id, totpCode(again.secret, f.clock.now()), { sessionId: s3 }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" });
    f.clock.advance(60_000);
    assert.equal(await f.mfa.totp.verify(user.id, totpCode(old, f.clock.now())), "ok", "the app stands throughout");
  });

  it("TOTP enrolment: confirmed only by the session that began it (or handed it on) and within 30 minutes, listed while that session stands; cancelUnconfirmed and the maintenance purge drop it (ASVS 2.3.1, 7.4.3)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const sessions = createSessionManager({ database: f.database, clock: f.clock, random: systemRandom });
    const user = await f.users.create({ email: "enrol-ttl@example.org" });
    const s1 = (await sessions.createSession(user.id, { aal: 1 })).session.id;
    const s2 = (await sessions.createSession(user.id, { aal: 1 })).session.id;
    const first = await f.mfa.totp.begin(user.id, user.email, { sessionId: s1 });
    assert.deepEqual(await f.mfa.totp.pendingEnrolment(user.id), { startedAt: f.clock.now(), expiresAt: f.clock.now() + TOTP_ENROLMENT_TTL_MS });
    assert.deepEqual((await f.mfa.factors(user.id)).totpEnrolment, { startedAt: f.clock.now(), expiresAt: f.clock.now() + TOTP_ENROLMENT_TTL_MS }, "listed with the factors");
    // Another session, and a caller outside any session, confirm nothing; no guess is spent on the app's counter.
    await assert.rejects(f.mfa.totp.confirm(user.id, totpCode(first.secret, f.clock.now()), { sessionId: s2 }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED", message: /waits for this session/ });
    await assert.rejects(f.mfa.totp.confirm(user.id, totpCode(first.secret, f.clock.now())), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" });
    // Past its lifetime: the session that began it confirms nothing either, it is not listed, and the purge deletes it.
    f.clock.advance(TOTP_ENROLMENT_TTL_MS);
    await assert.rejects(f.mfa.totp.confirm(user.id, totpCode(first.secret, f.clock.now()), { sessionId: s1 }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" }, "past its lifetime");
    assert.equal(await f.mfa.totp.pendingEnrolment(user.id), null);
    assert.equal(await f.mfa.totp.purgeExpiredEnrolments(), 1);
    await assert.rejects(f.mfa.totp.confirm(user.id, totpCode(first.secret, f.clock.now()), { sessionId: s1 }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" });
    // Begun again, its session ended (a stamp, as a containment raises it first): not listed, nothing confirmed.
    const stamped = (await sessions.createSession(user.id, { aal: 1 })).session.id;
    const second = await f.mfa.totp.begin(user.id, user.email, { sessionId: stamped });
    f.clock.advance(1_000);
    await sessions.revokeUser(user.id);
    assert.equal(await f.mfa.totp.pendingEnrolment(user.id), null, "not listed once its session is refused");
    // Dropped by cancelUnconfirmed (a password change, a reset, signing out everywhere).
    assert.equal(await f.mfa.totp.cancelUnconfirmed(user.id), true);
    await assert.rejects(f.mfa.totp.confirm(user.id, totpCode(second.secret, f.clock.now()), { sessionId: stamped }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" });
    assert.equal(await f.mfa.totp.cancelUnconfirmed(user.id), false, "nothing waits any more");
    // Handed on to the session that replaced its own (a re-authentication), which confirms it; the row keeps no session.
    const s4 = (await sessions.createSession(user.id, { aal: 1 })).session.id;
    const s5 = (await sessions.createSession(user.id, { aal: 1 })).session.id;
    const third = await f.mfa.totp.begin(user.id, user.email, { sessionId: s4 });
    await f.mfa.totp.followSession(user.id, s4, s5);
    await assert.rejects(f.mfa.totp.confirm(user.id, totpCode(third.secret, f.clock.now()), { sessionId: s4 }), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" });
    assert.equal(await f.mfa.totp.confirm(user.id, totpCode(third.secret, f.clock.now()), { sessionId: s5 }), true);
    const row = await f.database.db.selectFrom("mfa_totp").select("enrolment_session_id").where("user_id", "=", user.id).executeTakeFirstOrThrow();
    assert.equal(row.enrolment_session_id, null);
    assert.equal(await f.mfa.totp.pendingEnrolment(user.id), null, "a confirmed app is no enrolment");
    assert.equal(await f.mfa.totp.cancelUnconfirmed(user.id), false, "a confirmed app is never dropped as unconfirmed");
    assert.equal(await f.mfa.totp.purgeExpiredEnrolments(), 0);
    f.clock.advance(TOTP_ENROLMENT_TTL_MS);
    assert.equal(await f.mfa.totp.purgeExpiredEnrolments(), 0, "nor purged, however old");
    assert.deepEqual(await f.mfa.factors(user.id), { totp: true, webauthn: 0, recoveryCodes: 0 });
  });

  it("TOTP: RFC 6238 Appendix B SHA-1 known answers are accepted at their times", async () => {
    // The RFC's 20-byte ASCII secret, fed through the service's random source. Expected values are the
    // last six digits of the RFC's 8-digit codes (RFC 4226 truncation is modulo 10^digits).
    const rfcSecret = new Uint8Array(Buffer.from("12345678901234567890", "ascii"));
    const vectors: Array<[number, string]> = [[59, "287082"], [1111111109, "081804"], [1111111111, "050471"], [1234567890, "005924"], [2000000000, "279037"]];
    for (const [seconds, code] of vectors) {
      const { users, mfa, clock } = await mfaFixture(await fx.fresh(), { random: scriptedRandom(20, rfcSecret), start: seconds * 1000 });
      const user = await users.create({ email: `kat${seconds}@example.org` });
      const { secret } = await mfa.totp.begin(user.id, user.email);
      assert.equal(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "base32 of the RFC secret");
      assert.equal(await mfa.totp.confirm(user.id, code), true, `T=${seconds}`);
      clock.advance(STEP);
      assert.equal(await mfa.totp.verify(user.id, totpCode(secret, clock.now())), "ok");
    }
  });

  it("TOTP: begin gives a QR-ready otpauth URI and a 160-bit base32 secret stored only encrypted", async () => {
    // ASVS 6.5.3 (CSPRNG seed), 13.3.x (secret encrypted at rest, bound to its row).
    const { database, users, mfa, keyring } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "app@example.org" });
    const { uri, secret } = await mfa.totp.begin(user.id, "app@example.org");
    assert.match(secret, /^[A-Z2-7]{32}$/, "32 base32 characters = 160 bits");
    const url = new URL(uri);
    assert.equal(url.protocol, "otpauth:");
    assert.equal(url.host, "totp");
    assert.equal(decodeURIComponent(url.pathname), "/Bulwark Test:app@example.org");
    assert.equal(url.searchParams.get("secret"), secret);
    assert.equal(url.searchParams.get("issuer"), "Bulwark Test");
    assert.equal(url.searchParams.get("algorithm"), "SHA1");
    assert.equal(url.searchParams.get("digits"), "6");
    assert.equal(url.searchParams.get("period"), "30");
    const row = await database.db.selectFrom("mfa_totp").selectAll().executeTakeFirstOrThrow();
    assert.ok(!row.secret_ct.includes(secret), "not stored in the clear");
    assert.equal(row.confirmed_at, null);
    assert.deepEqual(Buffer.from(keyring.decrypt(row.secret_ct, totpCipherContext(user.id))), base32Decode(secret), "decrypts to the secret, bound to (mfa_totp, secret_ct, user id)");
    assert.deepEqual(await mfa.factors(user.id), { totp: false, webauthn: 0, recoveryCodes: 0 }, "unconfirmed is not a factor");
    assert.equal(await mfa.totp.verify(user.id, totpCode(secret, Date.now())), "not-enrolled");
  });

  it("TOTP: confirm refuses a wrong code, accepts the right one, and the confirming code cannot log in again", async () => {
    const { users, mfa, clock } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "confirm@example.org" });
    const { secret } = await mfa.totp.begin(user.id, user.email);
    const right = totpCode(secret, clock.now());
    const wrong = right === "000000" ? "111111" : "000000";
    assert.equal(await mfa.totp.confirm(user.id, wrong), false);
    assert.equal(await mfa.totp.confirm(user.id, "12a456"), false);
    assert.equal(await mfa.totp.confirm(user.id, `${right.slice(0, 3)} ${right.slice(3)}`), true, "spaces as apps display them are fine");
    assert.equal(await mfa.totp.verify(user.id, right), "replayed", "ASVS 6.5.1: the step used to confirm is spent");
    assert.deepEqual(await mfa.factors(user.id), { totp: true, webauthn: 0, recoveryCodes: 0 });
    assert.equal(await mfa.hasMfa(user.id), true);
    await assert.rejects(mfa.totp.confirm(user.id, right), { code: "BULWARK_ERR_MFA_ALREADY_ENROLLED" });
  });

  it("TOTP: begin restarts an unconfirmed enrolment with a new secret but never replaces a confirmed one", async () => {
    const { users, mfa, clock } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "restart@example.org" });
    const first = await mfa.totp.begin(user.id, user.email);
    const second = await mfa.totp.begin(user.id, user.email);
    assert.notEqual(first.secret, second.secret);
    assert.equal(await mfa.totp.confirm(user.id, totpCode(first.secret, clock.now())), false, "the abandoned secret is dead");
    assert.equal(await mfa.totp.confirm(user.id, totpCode(second.secret, clock.now())), true);
    await assert.rejects(mfa.totp.begin(user.id, user.email), { code: "BULWARK_ERR_MFA_ALREADY_ENROLLED", message: /replace it with POST \/auth\/mfa\/totp\/replace/ });
    clock.advance(STEP);
    assert.equal(await mfa.totp.verify(user.id, totpCode(second.secret, clock.now())), "ok", "the confirmed app still works after the refused begin");
    await assert.rejects(mfa.totp.begin(user.id, "  "), { code: "BULWARK_ERR_MFA_INPUT" });
    await assert.rejects(mfa.totp.confirm("usr_none", "123456"), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" });
  });

  it("TOTP: verify accepts the previous, current and next step once each in order, then remove ends it", async () => {
    const { users, mfa, clock } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "verify@example.org" });
    const { secret } = await mfa.totp.begin(user.id, user.email);
    assert.equal(await mfa.totp.confirm(user.id, totpCode(secret, clock.now())), true);
    clock.advance(10 * STEP);
    assert.equal(await mfa.totp.verify(user.id, totpCode(secret, clock.now(), -1)), "ok", "one step behind (slow phone clock)");
    assert.equal(await mfa.totp.verify(user.id, totpCode(secret, clock.now())), "ok");
    assert.equal(await mfa.totp.verify(user.id, totpCode(secret, clock.now(), +1)), "ok", "one step ahead");
    assert.equal(await mfa.totp.remove(user.id), true);
    assert.equal(await mfa.totp.remove(user.id), false);
    assert.equal(await mfa.totp.verify(user.id, totpCode(secret, clock.now(), +1)), "not-enrolled");
  });

  it("recovery codes: ten distinct 120-bit codes, hashed at rest, each usable once, regenerate replaces all", async () => {
    // ASVS 6.5.1 (single use), 6.5.2 (≥ 112 bits, so SHA-256 storage is enough), 6.5.3 (CSPRNG).
    const { database, users, mfa } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "codes@example.org" });
    const codes = await mfa.recovery.generate(user.id);
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const c of codes) assert.match(c, /^[a-z2-7]{4}(-[a-z2-7]{4}){5}$/, "24 base32 characters = 120 bits, grouped by four");
    const rows = await database.db.selectFrom("mfa_recovery_codes").selectAll().where("user_id", "=", user.id).execute();
    assert.deepEqual(new Set(rows.map((r) => r.code_hash)), new Set(codes.map((c) => hashSecret(c.replaceAll("-", "")))), "only SHA-256 of each code is kept");
    assert.equal(await mfa.recovery.remaining(user.id), 10);
    assert.equal(await mfa.recovery.consume(user.id, codes[3]!.toUpperCase().replaceAll("-", " ")), true, "case and separators do not matter");
    assert.equal(await mfa.recovery.remaining(user.id), 9);
    assert.equal(await mfa.recovery.verify(user.id, codes[4]!), "ok");
    const fresh = await mfa.recovery.generate(user.id);
    assert.equal(await mfa.recovery.remaining(user.id), 10);
    assert.equal(await mfa.recovery.consume(user.id, codes[5]!), false, "the old set is gone");
    assert.equal(await mfa.recovery.consume(user.id, fresh[0]!), true);
    assert.deepEqual(await mfa.factors(user.id), { totp: false, webauthn: 0, recoveryCodes: 9 });
    assert.equal(await mfa.hasMfa(user.id), false, "recovery codes alone are a fallback, not a factor");
  });

  it("WebAuthn: registers a real ES256 credential, authenticates with it, lists and removes it", async () => {
    const { database, users, mfa, clock } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "passkey@example.org" });
    const key = new SoftAuthenticator({ counter: 5 });
    const creation = await mfa.webauthn.registrationOptions(user.id, user.email, REG);
    assert.equal(creation.rp.id, RP_ID);
    assert.equal(creation.attestation, "none");
    assert.equal(Buffer.from(creation.user.id, "base64url").toString("utf8"), user.id, "the user handle is the random id, not the email");
    assert.ok(Buffer.from(creation.challenge, "base64url").length >= 16, "ASVS 6.7.2: challenge ≥ 64 bits (we use 256)");
    const { credentialId } = await mfa.webauthn.verifyRegistration(user.id, key.register(creation, ORIGIN), "  YubiKey 5 ", REG);
    assert.equal(credentialId, key.id);
    assert.equal(await database.db.selectFrom("webauthn_challenges").select("challenge").executeTakeFirst(), undefined, "the challenge was consumed");
    clock.advance(60_000);
    const request = await mfa.webauthn.authenticationOptions(user.id, FLOW);
    assert.deepEqual(request.allowCredentials?.map((c) => c.id), [key.id]);
    assert.equal(await mfa.webauthn.verifyAuthentication(user.id, key.authenticate(request, ORIGIN), FLOW), true);
    const [listed] = await mfa.webauthn.list(user.id);
    assert.deepEqual(listed, { id: key.id, name: "YubiKey 5", createdAt: clock.now() - 60_000, lastUsedAt: clock.now(), suspendedAt: null });
    const stored = await database.db.selectFrom("webauthn_credentials").select("counter").executeTakeFirstOrThrow();
    assert.equal(Number(stored.counter), 6, "the new counter is stored");
    assert.deepEqual(await mfa.factors(user.id), { totp: false, webauthn: 1, recoveryCodes: 0 });
    assert.equal(await mfa.hasMfa(user.id), true);
    // excludeCredentials keeps the browser from registering the same authenticator twice.
    const again = await mfa.webauthn.registrationOptions(user.id, user.email, REG);
    assert.deepEqual(again.excludeCredentials?.map((c) => c.id), [key.id]);
    assert.equal(await mfa.webauthn.remove("usr_other", key.id), false, "only the owner removes it");
    assert.equal(await mfa.webauthn.remove(user.id, key.id), true);
    assert.deepEqual(await mfa.webauthn.list(user.id), []);
    await assert.rejects(mfa.webauthn.authenticationOptions(user.id, FLOW), { code: "BULWARK_ERR_MFA_NOT_ENROLLED" });
  });

  it("proofs: a factor proven but spent in a transaction that rolls back stays usable; spent once it is gone, and a second spend loses (ASVS 6.5.1)", async () => {
    const { database, users, mfa, clock } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "proofs@example.org" });
    const rolledBack = new Error("what the factor was for did not happen");
    /** Spends `proof` in a transaction that then fails, as a step-up that lost its rotation does. */
    const spendAndRollBack = (proof: { spend: (t: typeof database.db) => Promise<boolean> }): Promise<void> =>
      assert.rejects(database.transaction(async (trx) => {
        assert.equal(await proof.spend(trx), true);
        throw rolledBack;
      }), rolledBack);

    const [code] = await mfa.recovery.generate(user.id);
    const first = await mfa.recovery.prove(user.id, code as string);
    assert.ok(first.ok);
    assert.equal(await mfa.recovery.remaining(user.id), 10, "proving uses nothing up");
    await spendAndRollBack(first.proof);
    assert.equal(await mfa.recovery.remaining(user.id), 10, "the rollback gave the code back");
    const again = await mfa.recovery.prove(user.id, code as string);
    assert.ok(again.ok);
    const rival = await mfa.recovery.prove(user.id, code as string);
    assert.ok(rival.ok, "two requests can both prove the same code…");
    assert.equal(await again.proof.spend(database.db), true);
    assert.equal(await rival.proof.spend(database.db), false, "…but only one spends it");
    assert.equal(await mfa.recovery.verify(user.id, code as string), "invalid");

    const { secret } = await mfa.totp.begin(user.id, user.email);
    assert.equal(await mfa.totp.confirm(user.id, totpCode(secret, clock.now())), true);
    clock.advance(STEP);
    const step = totpCode(secret, clock.now());
    const totp = await mfa.totp.prove(user.id, step);
    assert.ok(totp.ok);
    await spendAndRollBack(totp.proof);
    assert.equal(await mfa.totp.verify(user.id, step), "ok", "the rolled-back spend left the time step unused");
    assert.equal(await mfa.totp.verify(user.id, step), "replayed");

    const key = new SoftAuthenticator({ counter: 5 });
    await mfa.webauthn.verifyRegistration(user.id, key.register(await mfa.webauthn.registrationOptions(user.id, user.email, REG), ORIGIN), "key", REG);
    const passkey = await mfa.webauthn.proveAuthentication(user.id, key.authenticate(await mfa.webauthn.authenticationOptions(user.id, FLOW), ORIGIN), FLOW);
    assert.ok(passkey);
    await spendAndRollBack(passkey);
    const counter = async (): Promise<number> => Number((await database.db.selectFrom("webauthn_credentials").select("counter").executeTakeFirstOrThrow()).counter);
    assert.equal(await counter(), 5, "the rolled-back spend left the signature counter where it was");
    assert.equal(await passkey.spend(database.db), true);
    assert.equal(await counter(), 6);
  });

  it("WebAuthn: authenticators without a counter (always 0) keep working", async () => {
    const { users, mfa } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "zero@example.org" });
    const key = new SoftAuthenticator({ counter: 0 });
    await mfa.webauthn.verifyRegistration(user.id, key.register(await mfa.webauthn.registrationOptions(user.id, user.email, REG), ORIGIN), "phone", REG);
    for (let i = 0; i < 2; i++) {
      assert.equal(await mfa.webauthn.verifyAuthentication(user.id, key.authenticate(await mfa.webauthn.authenticationOptions(user.id, FLOW), ORIGIN), FLOW), true);
    }
  });

  it("WebAuthn: refuses bad names with input errors and keeps nothing", async () => {
    const { users, mfa } = await mfaFixture(await fx.fresh());
    const user = await users.create({ email: "names@example.org" });
    const key = new SoftAuthenticator();
    for (const name of ["", "x".repeat(65), "tab\tname", "zero\u200bwidth"]) {
      const options = await mfa.webauthn.registrationOptions(user.id, user.email, REG);
      await assert.rejects(mfa.webauthn.verifyRegistration(user.id, key.register(options, ORIGIN), name, REG), { code: "BULWARK_ERR_MFA_INPUT", message: /passkey name/ });
    }
    assert.deepEqual(await mfa.webauthn.list(user.id), []);
  });

  it("removeAll deletes every factor of the user and nobody else's", async () => {
    const { users, mfa, clock } = await mfaFixture(await fx.fresh());
    const alice = await users.create({ email: "all-a@example.org" });
    const bob = await users.create({ email: "all-b@example.org" });
    for (const u of [alice, bob]) {
      const { secret } = await mfa.totp.begin(u.id, u.email);
      await mfa.totp.confirm(u.id, totpCode(secret, clock.now()));
      await mfa.recovery.generate(u.id);
      const key = new SoftAuthenticator();
      await mfa.webauthn.verifyRegistration(u.id, key.register(await mfa.webauthn.registrationOptions(u.id, u.email, REG), ORIGIN), "key", REG);
    }
    await mfa.webauthn.authenticationOptions(alice.id, FLOW); // leaves a pending challenge
    await mfa.removeAll(alice.id);
    assert.deepEqual(await mfa.factors(alice.id), { totp: false, webauthn: 0, recoveryCodes: 0 });
    assert.equal(await mfa.hasMfa(alice.id), false);
    assert.deepEqual(await mfa.factors(bob.id), { totp: true, webauthn: 1, recoveryCodes: 10 });
  });
});

