// Attacks on WebAuthn that must fail, on SQLite and PostgreSQL, with real ES256 signatures from a software
// authenticator: replayed assertions (challenge reused, also raced), a stolen credential row, a cloned
// authenticator, phishing origins, another RP, another user's challenge or credential, expired challenges; public keys
// that can verify nothing, credential ids too short to be an authenticator's, junk transports, a clone told apart from
// a forgery, and a passkey suspended once caught as cloned.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { MAX_LIVE_WEBAUTHN_CHALLENGES, resetChallengeContext, sessionChallengeContext, WEBAUTHN_CHALLENGE_TTL_MS } from "./index.ts";
import { mfaFixture, ORIGIN, type MfaFixture } from "./testing/setup.ts";
import { encodeCBOR, FLAG_AT, SoftAuthenticator, type CBORValue } from "./testing/soft-authenticator.ts";
import type { PasskeyRefusal } from "./webauthn.ts";

/** The flow (a session) every challenge in these tests is asked for and answered in. */
const FLOW = { context: "session:tests" };

/** The flow the enrolment ceremonies here belong to (a session on the HTTP side). */
const REG = { context: sessionChallengeContext("ses_enrolment") };

/** A user with one registered passkey. */
async function withPasskey(f: MfaFixture, email: string, counter = 10): Promise<{ userId: string; key: SoftAuthenticator }> {
  const user = await f.users.create({ email });
  const key = new SoftAuthenticator({ counter });
  await f.mfa.webauthn.verifyRegistration(user.id, key.register(await f.mfa.webauthn.registrationOptions(user.id, email, REG), ORIGIN), "key", REG);
  return { userId: user.id, key };
}

/** Registers a second passkey for `userId`: assertion options are still given once the first is suspended. */
async function addSpare(f: MfaFixture, userId: string): Promise<SoftAuthenticator> {
  const spare = new SoftAuthenticator();
  await f.mfa.webauthn.verifyRegistration(userId, spare.register(await f.mfa.webauthn.registrationOptions(userId, "spare", REG), ORIGIN), "spare", REG);
  return spare;
}

/** An authenticator that registers `cose` as its credential public key (what a hostile client can put there). */
class KeyedAuthenticator extends SoftAuthenticator {
  readonly #cose: Buffer;
  constructor(cose: Buffer) {
    super();
    this.#cose = cose;
  }
  override coseKey(): Buffer {
    return this.#cose;
  }
}

/** An authenticator whose attested credential id is `id` (what a hostile client can put there; the library wants the response's own id non-empty). */
class IdentifiedAuthenticator extends SoftAuthenticator {
  constructor(id: Uint8Array) {
    super();
    (this as { credentialId: Uint8Array }).credentialId = id;
  }
  override register(...[options, origin, o]: Parameters<SoftAuthenticator["register"]>): ReturnType<SoftAuthenticator["register"]> {
    return super.register(options, origin, { credentialId: this.credentialId.length > 0 ? this.id : "AAAAAAAAAAAAAAAAAAAAAA", ...o });
  }
}

const cose = (entries: Array<[number, CBORValue]>): Buffer => encodeCBOR(new Map<number, CBORValue>(entries));
const jwkBytes = (value: string | undefined): Uint8Array => new Uint8Array(Buffer.from(value ?? "", "base64url"));

forEachDialect("WebAuthn attacks", (fx) => {
  it("a replayed assertion (challenge reused) is refused", async () => {
    // ASVS 6.5.1-style single use for the challenge; the server deletes it when consumed.
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "replay@example.org");
    const response = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, response, FLOW), true);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, response, FLOW), false, "same response again");
    // A fresh signature (higher counter) over the spent challenge is refused too: the challenge is gone.
    const spent = JSON.parse(Buffer.from(response.response.clientDataJSON, "base64url").toString()).challenge as string;
    const again = key.authenticate({ challenge: spent, rpId: "bulwark.example.org" }, ORIGIN);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, again, FLOW), false);
  });

  it("one assertion raced by concurrent requests passes exactly once", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "race@example.org");
    const response = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN);
    const results = await Promise.all(Array.from({ length: 4 }, () => f.mfa.webauthn.verifyAuthentication(userId, response, FLOW)));
    assert.equal(results.filter(Boolean).length, 1, JSON.stringify(results));
  });

  it("a stolen webauthn_credentials row does not let an attacker sign in", async () => {
    // The row holds only the public key. An attacker who copies it signs with their own key under the
    // victim's credential id: the signature does not verify against the stored public key.
    const f = await mfaFixture(await fx.fresh());
    const victim = await withPasskey(f, "victim@example.org");
    const row = await f.database.db.selectFrom("webauthn_credentials").selectAll().executeTakeFirstOrThrow();
    assert.equal(row.id, victim.key.id);
    const forger = new SoftAuthenticator({ counter: 1000 });
    const forged = forger.authenticate(await f.mfa.webauthn.authenticationOptions(victim.userId, FLOW), ORIGIN, { credentialId: row.id });
    assert.equal(await f.mfa.webauthn.verifyAuthentication(victim.userId, forged, FLOW), false);
    // Nor can the row be planted into the attacker's own account and used for the victim.
    const attacker = await f.users.create({ email: "attacker@example.org" });
    await assert.rejects(
      f.database.db.insertInto("webauthn_credentials").values({ ...row, user_id: attacker.id }).execute(),
      "the credential id is the primary key: one account per credential",
    );
    // A signature by another key over a genuine challenge, under the victim's own credential id.
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const resigned = victim.key.authenticate(await f.mfa.webauthn.authenticationOptions(victim.userId, FLOW), ORIGIN, { signWith: privateKey });
    assert.equal(await f.mfa.webauthn.verifyAuthentication(victim.userId, resigned, FLOW), false);
  });

  it("a cloned authenticator (counter that does not grow) is refused", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "clone@example.org", 10);
    await addSpare(f, userId);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN), FLOW), true);
    // The clone holds the same private key but its counter lags behind the original's (11 stored now). Once caught it
    // is no longer offered, but a hostile client answers the options with it anyway.
    for (const counter of [11, 5]) {
      const cloned = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { counter });
      assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, cloned, FLOW), false, `counter ${counter}`);
    }
    const row = await f.database.db.selectFrom("webauthn_credentials").select("counter").where("id", "=", key.id).executeTakeFirstOrThrow();
    assert.equal(Number(row.counter), 11, "a refused response does not move the counter");
  });

  it("attack: an assertion whose user handle names another account is refused, though signed by this account's passkey; one naming this account, or none, passes (WebAuthn L3 §7.2 step 6) (was: the user handle was never compared)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "handle@example.org");
    const other = await f.users.create({ email: "handle-other@example.org" });
    const withHandle = (handle: string | undefined, response: ReturnType<SoftAuthenticator["authenticate"]>) =>
      handle === undefined ? response : { ...response, response: { ...response.response, userHandle: handle } };
    const options = (): ReturnType<typeof f.mfa.webauthn.authenticationOptions> => f.mfa.webauthn.authenticationOptions(userId, FLOW);
    const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64url");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, withHandle(b64(other.id), key.authenticate(await options(), ORIGIN)), FLOW), false, "another account's handle");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, withHandle("!!not base64!!", key.authenticate(await options(), ORIGIN)), FLOW), false, "a handle that is no user id");
    const row = await f.database.db.selectFrom("webauthn_credentials").select("counter").where("user_id", "=", userId).executeTakeFirstOrThrow();
    assert.equal(Number(row.counter), 10, "the refusals moved nothing");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, withHandle(b64(userId), key.authenticate(await options(), ORIGIN)), FLOW), true, "its own handle");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate(await options(), ORIGIN), FLOW), true, "no handle");
  });

  it("an assertion made for a phishing origin or another relying party is refused", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "phish@example.org");
    const phished = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { origin: "https://bulwark.example.org.evil.test" });
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, phished, FLOW), false);
    const otherRP = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { rpID: "evil.test" });
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, otherRP, FLOW), false);
    const tampered = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN);
    const sig = Buffer.from(tampered.response.signature, "base64url");
    sig[sig.length - 1]! ^= 1;
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, { ...tampered, response: { ...tampered.response, signature: sig.toString("base64url") } }, FLOW), false);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN), FLOW), true, "the genuine flow still works");
  });

  it("another user's challenge or credential proves nothing for this user", async () => {
    const f = await mfaFixture(await fx.fresh());
    const alice = await withPasskey(f, "alice@example.org");
    const mallory = await withPasskey(f, "mallory@example.org");
    // Mallory answers a challenge issued to Alice with Mallory's own (valid) passkey.
    const aliceChallenge = await f.mfa.webauthn.authenticationOptions(alice.userId, FLOW);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(alice.userId, mallory.key.authenticate(aliceChallenge, ORIGIN), FLOW), false);
    // Mallory's challenge answered by Mallory, presented as Alice.
    const malloryChallenge = await f.mfa.webauthn.authenticationOptions(mallory.userId, FLOW);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(alice.userId, mallory.key.authenticate(malloryChallenge, ORIGIN), FLOW), false);
  });

  it("an expired challenge, a registration challenge used to sign in, and an unknown challenge are refused", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "stale@example.org");
    const stale = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN);
    f.clock.advance(WEBAUTHN_CHALLENGE_TTL_MS);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, stale, FLOW), false, "expired");
    const registration = await f.mfa.webauthn.registrationOptions(userId, "stale@example.org", REG);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate({ challenge: registration.challenge, rpId: "bulwark.example.org" }, ORIGIN), FLOW), false, "wrong ceremony");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate({ challenge: "A".repeat(43), rpId: "bulwark.example.org" }, ORIGIN), FLOW), false, "never issued");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, { junk: true } as never, FLOW), false, "junk");
  });

  it("registration: a reused, foreign or forged response is refused with an input error and stores nothing", async () => {
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "reg@example.org" });
    const other = await f.users.create({ email: "reg-other@example.org" });
    const key = new SoftAuthenticator();
    const options = await f.mfa.webauthn.registrationOptions(user.id, "reg@example.org", REG);
    const refused = { code: "BULWARK_ERR_MFA_INPUT" };
    // For another user's challenge.
    await assert.rejects(f.mfa.webauthn.verifyRegistration(other.id, key.register(options, ORIGIN), "k", REG), refused);
    // Phishing origin: the challenge is spent by the failed attempt, so a retry needs new options.
    const phish = await f.mfa.webauthn.registrationOptions(user.id, "reg@example.org", REG);
    await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, key.register(phish, ORIGIN, { origin: "https://evil.test" }), "k", REG), { code: "BULWARK_ERR_MFA_INPUT", message: /refused/ });
    // User presence missing (only the AT flag set): the authenticator was not touched.
    const noAT = await f.mfa.webauthn.registrationOptions(user.id, "reg@example.org", REG);
    await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, key.register(noAT, ORIGIN, { flags: FLAG_AT }), "k", REG), refused, "user presence missing");
    assert.deepEqual(await f.mfa.webauthn.list(user.id), []);
    // The genuine response, once; the same response again is refused (challenge spent).
    const good = await f.mfa.webauthn.registrationOptions(user.id, "reg@example.org", REG);
    const response = key.register(good, ORIGIN);
    await f.mfa.webauthn.verifyRegistration(user.id, response, "k", REG);
    await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, response, "k", REG), { code: "BULWARK_ERR_MFA_INPUT", message: /no live challenge/ });
    // The same authenticator registered for a second account is refused (its credential id is taken).
    const second = await f.mfa.webauthn.registrationOptions(other.id, "reg-other@example.org", REG);
    await assert.rejects(f.mfa.webauthn.verifyRegistration(other.id, key.register(second, ORIGIN), "k", REG), { code: "BULWARK_ERR_MFA_INPUT", message: /already registered/ });
    assert.equal((await f.mfa.webauthn.list(user.id)).length, 1);
    assert.deepEqual(await f.mfa.webauthn.list(other.id), []);
  });

  it("attack: a challenge asked for in one flow is refused in every other flow, and stays usable in its own", async () => {
    // A second pending session of the same user, a reset link, or any other flow must not spend it.
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "flows@example.org");
    const first = { context: sessionChallengeContext("ses_first") };
    const response = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, first), ORIGIN);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, response, { context: sessionChallengeContext("ses_second") }), false, "another session");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, response, { context: resetChallengeContext("prt_link") }), false, "a reset link");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, response, FLOW), false, "any other flow");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, response, first), true, "the flow that asked");

    // The other way round: a challenge asked for with a reset link does not step up a session.
    const reset = { context: resetChallengeContext("prt_link") };
    const viaLink = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, reset), ORIGIN);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, viaLink, first), false);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, viaLink, reset), true);

    // Registration likewise: options asked for in one session do not enrol a key from another.
    const newKey = new SoftAuthenticator();
    const creation = await f.mfa.webauthn.registrationOptions(userId, "flows@example.org", first);
    await assert.rejects(f.mfa.webauthn.verifyRegistration(userId, newKey.register(creation, ORIGIN), "k2", { context: sessionChallengeContext("ses_second") }), { code: "BULWARK_ERR_MFA_INPUT", message: /no live challenge/ });
    assert.equal((await f.mfa.webauthn.list(userId)).length, 1);
    await f.mfa.webauthn.verifyRegistration(userId, newKey.register(creation, ORIGIN), "k2", first);
    assert.equal((await f.mfa.webauthn.list(userId)).length, 2);
  });

  it("refuses an empty or oversized flow context instead of binding to nothing", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId } = await withPasskey(f, "ctx@example.org");
    for (const context of ["", "x".repeat(129)]) {
      await assert.rejects(f.mfa.webauthn.authenticationOptions(userId, { context }), { code: "BULWARK_ERR_MFA_INPUT" });
      await assert.rejects(f.mfa.webauthn.registrationOptions(userId, "ctx@example.org", { context }), { code: "BULWARK_ERR_MFA_INPUT" });
    }
  });

  it("attack: a flood of options calls keeps at most a few live challenges per flow, the newest usable", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "flood@example.org");
    const flooded = { context: sessionChallengeContext("ses_flood") };
    const other = { context: sessionChallengeContext("ses_other") };
    const otherResponse = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, other), ORIGIN);
    const oldest = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, flooded), ORIGIN);
    let newest = oldest;
    for (let i = 0; i < 60; i++) {
      f.clock.advance(1); // "oldest" is by creation time; within one millisecond any older one may go
      newest = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, flooded), ORIGIN);
    }
    const rows = await f.database.db.selectFrom("webauthn_challenges").select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", userId).executeTakeFirstOrThrow();
    assert.equal(Number(rows.n), MAX_LIVE_WEBAUTHN_CHALLENGES + 1, "five of the flooded flow, one of the other");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, oldest, flooded), false, "the oldest was evicted");
    // Signed in counter order (the software authenticator counts up): the other flow's first, then the newest.
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, otherResponse, other), true, "another flow's challenge was not evicted");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, newest, flooded), true, "the newest works");
  });

  it("attack: a registration whose credential public key can verify nothing is refused with what is wrong with the key, and stores nothing; real EdDSA and RS256 keys enrol (ASVS 2.2.3)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "keys@example.org" });
    const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" });
    const [x, y] = [jwkBytes(p256.x), jwkBytes(p256.y)];
    const ed = jwkBytes(generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x);
    const rsa = (modulusLength: number, publicExponent = 65537): { n: Uint8Array; e: Uint8Array } => {
      const jwk = generateKeyPairSync("rsa", { modulusLength, publicExponent }).publicKey.export({ format: "jwk" });
      return { n: jwkBytes(jwk.n), e: jwkBytes(jwk.e) };
    };
    const weak = rsa(1024);
    const smallExponent = rsa(2048, 3);
    const strong = rsa(2048);
    const bogus: Array<[Buffer, RegExp]> = [
      [cose([[1, 2], [3, -7], [-1, 1], [-3, y]]), /EC2 key without its x coordinate/],
      [cose([[1, 2], [3, -7], [-1, 1], [-2, x]]), /EC2 key without its y coordinate/],
      [cose([[1, 2], [3, -7], [-1, 1], [-2, new Uint8Array(32).fill(1)], [-3, new Uint8Array(32).fill(2)]]), /not a point on the P-256 curve/],
      [cose([[1, 2], [3, -7], [-1, 1], [-2, new Uint8Array(3)], [-3, new Uint8Array(3)]]), /P-256 coordinates of 3 and 3 bytes, not 32/],
      [cose([[1, 2], [3, -7], [-1, 2], [-2, x], [-3, y]]), /curve is 2, not P-256/],
      [cose([[3, -7]]), /names ES256 \(-7\) but its key type is missing/],
      [cose([[1, 2], [3, -8], [-1, 1], [-2, x], [-3, y]]), /names EdDSA \(-8\) but its key type is 2, not OKP/],
      [cose([[1, 1], [3, -8], [-1, 6], [-2, ed.subarray(1)]]), /Ed25519 key of 31 bytes/],
      [cose([[1, 3], [3, -257]]), /RSA key without its modulus/],
      [cose([[1, 3], [3, -257], [-1, weak.n], [-2, weak.e]]), /RSA key of 1024 bits/],
      [cose([[1, 3], [3, -257], [-1, smallExponent.n], [-2, smallExponent.e]]), /public exponent/],
    ];
    for (const [key, message] of bogus) {
      const options = await f.mfa.webauthn.registrationOptions(user.id, "keys@example.org", REG);
      await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, new KeyedAuthenticator(key).register(options, ORIGIN), "bogus", REG), { code: "BULWARK_ERR_MFA_INPUT", message }, String(message));
    }
    assert.deepEqual(await f.mfa.webauthn.list(user.id), [], "nothing stored");
    for (const [name, key] of [["ed25519", cose([[1, 1], [3, -8], [-1, 6], [-2, ed]])], ["rsa", cose([[1, 3], [3, -257], [-1, strong.n], [-2, strong.e]])]] as const) {
      const options = await f.mfa.webauthn.registrationOptions(user.id, "keys@example.org", REG);
      await f.mfa.webauthn.verifyRegistration(user.id, new KeyedAuthenticator(key).register(options, ORIGIN), name, REG);
    }
    assert.deepEqual((await f.mfa.webauthn.list(user.id)).map((p) => p.name), ["ed25519", "rsa"]);
  });

  it("attack: a registration's transports keep only transport tokens, each once, at most 8; junk stored before is served clean (ASVS 2.2.1)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "transports@example.org" });
    const key = new SoftAuthenticator();
    const response = key.register(await f.mfa.webauthn.registrationOptions(user.id, "transports@example.org", REG), ORIGIN);
    const sent = ["usb", "usb", "NFC", "<img src=x>", "\u0000", "a".repeat(33), 7, "hybrid", "internal", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];
    await f.mfa.webauthn.verifyRegistration(user.id, { ...response, response: { ...response.response, transports: sent as never } }, "key", REG);
    const row = await f.database.db.selectFrom("webauthn_credentials").select("transports").executeTakeFirstOrThrow();
    assert.deepEqual(JSON.parse(row.transports), ["usb", "hybrid", "internal", "t1", "t2", "t3", "t4", "t5"]);
    // A row stored as sent, before the filter: its options carry only the tokens.
    await f.database.db.updateTable("webauthn_credentials").set({ transports: JSON.stringify(["ble", "<script>", "x".repeat(7000)]) }).execute();
    const options = await f.mfa.webauthn.authenticationOptions(user.id, FLOW);
    assert.deepEqual(options.allowCredentials?.map((c) => c.transports), [["ble"]]);
  });

  it("attack: a clone's genuine signature with a counter behind the stored one is refused and named as a clone; a forgery is refused as invalid, whatever counter it claims (WebAuthn §6.1.1)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const prove = async (userId: string, response: ReturnType<SoftAuthenticator["authenticate"]>): Promise<PasskeyRefusal | "proof"> => {
      const refusals: PasskeyRefusal[] = [];
      const proof = await f.mfa.webauthn.proveAuthentication(userId, response, { ...FLOW, onRefusal: (r) => refusals.push(r) });
      assert.equal(refusals.length, proof ? 0 : 1, "told once, for a refusal only");
      return proof && (await proof.spend(f.database.db)) ? "proof" : (refusals[0] ?? { reason: "invalid" });
    };
    const options = async (userId: string): Promise<Parameters<SoftAuthenticator["authenticate"]>[0]> => f.mfa.webauthn.authenticationOptions(userId, FLOW);
    // Each way a counter fails to grow, on a passkey of its own (the first one suspends it).
    for (const [label, counter] of [["behind", 5], ["equal", 11], ["a counter gone back to 0", 0]] as const) {
      const { userId, key } = await withPasskey(f, `clone-told-${counter}@example.org`, 10);
      assert.equal(await prove(userId, key.authenticate(await options(userId), ORIGIN)), "proof", "the original: 11 stored");
      assert.deepEqual(await prove(userId, key.authenticate(await options(userId), ORIGIN, { counter })), { reason: "counter-regressed", credentialId: key.id }, label);
    }
    // Another key's signature under this credential id: not the passkey's, so no clone alarm (the library compares the
    // counters before the signature; a forgery with a low counter must not pass for a leaked key, nor suspend it).
    const { userId, key } = await withPasskey(f, "clone-forged@example.org", 10);
    assert.equal(await prove(userId, key.authenticate(await options(userId), ORIGIN)), "proof", "the original: 11 stored");
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    for (const counter of [5, 50]) {
      assert.deepEqual(await prove(userId, key.authenticate(await options(userId), ORIGIN, { counter, signWith: privateKey })), { reason: "invalid" }, `forged, counter ${counter}`);
    }
    assert.deepEqual(await prove(userId, { junk: true } as never), { reason: "invalid" });
    const row = await f.database.db.selectFrom("webauthn_credentials").select(["counter", "suspended_at"]).where("user_id", "=", userId).executeTakeFirstOrThrow();
    assert.deepEqual([Number(row.counter), row.suspended_at], [11, null], "no refusal moved the counter or suspended the passkey");
    assert.equal(await prove(userId, key.authenticate(await options(userId), ORIGIN, { counter: 12 })), "proof", "the original still works");
  });

  it("attack: a passkey caught as cloned stays refused whatever counter comes next, the clone's jump or the original's next, without a write; it is listed as suspended and its owner removes it (WebAuthn §6.1.1; ASVS 6.3.3, 6.5.6)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "clone-suspended@example.org", 10);
    // Another passkey of the account keeps the options coming; the clone answers them with the suspended one anyway.
    await addSpare(f, userId);
    const refusalOf = async (response: ReturnType<SoftAuthenticator["authenticate"]>): Promise<PasskeyRefusal | "proof"> => {
      const refusals: PasskeyRefusal[] = [];
      const proof = await f.mfa.webauthn.proveAuthentication(userId, response, { ...FLOW, onRefusal: (r) => refusals.push(r) });
      return proof && (await proof.spend(f.database.db)) ? "proof" : (refusals[0] ?? { reason: "invalid" });
    };
    const options = (): ReturnType<typeof f.mfa.webauthn.authenticationOptions> => f.mfa.webauthn.authenticationOptions(userId, FLOW);
    // A proof of the original, made before the clone is caught and spent after (a request in flight).
    const inFlight = await f.mfa.webauthn.proveAuthentication(userId, key.authenticate(await options(), ORIGIN), FLOW);
    assert.ok(inFlight);
    f.clock.advance(1_000);
    assert.deepEqual(await refusalOf(key.authenticate(await options(), ORIGIN, { counter: 5 })), { reason: "counter-regressed", credentialId: key.id });
    const caughtAt = f.clock.now();
    assert.equal(await inFlight.spend(f.database.db), false, "a proof made before the suspension loses its spend");
    const before = await f.database.db.selectFrom("webauthn_credentials").selectAll().where("id", "=", key.id).executeTakeFirstOrThrow();
    assert.equal(Number(before.suspended_at), caughtAt);
    f.clock.advance(1_000);
    const suspended = { reason: "credential-suspended", credentialId: key.id };
    assert.deepEqual(await refusalOf(key.authenticate(await options(), ORIGIN, { counter: 1_000 })), suspended, "the clone's jump");
    assert.deepEqual(await refusalOf(key.authenticate(await options(), ORIGIN)), suspended, "the original's next");
    assert.deepEqual(await refusalOf(key.authenticate(await options(), ORIGIN, { counter: 3 })), suspended, "a regression again: still suspended, first time kept");
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    assert.deepEqual(await refusalOf(key.authenticate(await options(), ORIGIN, { counter: 2_000, signWith: privateKey })), { reason: "invalid" }, "a forgery is still told apart");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate(await options(), ORIGIN, { counter: 3_000 }), FLOW), false);
    assert.deepEqual(await f.database.db.selectFrom("webauthn_credentials").selectAll().where("id", "=", key.id).executeTakeFirstOrThrow(), before, "no refusal wrote anything");
    const [listed] = await f.mfa.webauthn.list(userId);
    assert.equal(listed?.suspendedAt, caughtAt);
    assert.equal(await f.mfa.webauthn.remove(userId, key.id), true);
    assert.deepEqual((await f.mfa.webauthn.list(userId)).map((p) => p.name), ["spare"]);
  });

  it("attack: a suspended passkey is no longer offered to the browser, and with every passkey suspended no challenge is issued at all: the error names what happened and the way back (WebAuthn L3 §6.1.1; ASVS 6.3.3) (was: the suspended key was still offered, so the owner was asked to touch a key whose answer would be refused)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, key } = await withPasskey(f, "clone-offered@example.org", 10);
    const spare = await addSpare(f, userId);
    const offered = async (): Promise<string[]> => ((await f.mfa.webauthn.authenticationOptions(userId, FLOW)).allowCredentials ?? []).map((c) => c.id);
    assert.deepEqual((await offered()).sort(), [key.id, spare.id].sort());
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN), FLOW), true);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { counter: 5 }), FLOW), false);
    assert.deepEqual(await offered(), [spare.id], "only the usable passkey is offered");
    // The spare is caught too (its copy ahead of it): nothing usable is left to offer.
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, spare.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { counter: 50 }), FLOW), true);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, spare.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { counter: 20 }), FLOW), false);
    const challengesBefore = await f.database.db.selectFrom("webauthn_challenges").select((eb) => eb.fn.countAll<number | string>().as("n")).executeTakeFirstOrThrow();
    await assert.rejects(f.mfa.webauthn.authenticationOptions(userId, FLOW), { code: "BULWARK_ERR_MFA_PASSKEY_SUSPENDED", message: /every passkey of this account is suspended.*another factor or a recovery code/ });
    const challengesAfter = await f.database.db.selectFrom("webauthn_challenges").select((eb) => eb.fn.countAll<number | string>().as("n")).executeTakeFirstOrThrow();
    assert.equal(Number(challengesAfter.n), Number(challengesBefore.n), "no challenge was issued");
    // They still count as factors of the account until removed (it is never left behind the password alone).
    assert.equal((await f.mfa.webauthn.list(userId)).length, 2);
  });

  it("attack: a registration whose credential id is shorter than the 16 bytes authenticators make (empty, 15 bytes) is refused and stores nothing; 16 bytes enrol (WebAuthn L3 §6.1; ASVS 6.5.6)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "short-credential-id@example.org" });
    for (const bytes of [0, 1, 15]) {
      const key = new IdentifiedAuthenticator(new Uint8Array(bytes).fill(7));
      const response = key.register(await f.mfa.webauthn.registrationOptions(user.id, user.email, REG), ORIGIN);
      await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, response, "key", REG), { code: "BULWARK_ERR_MFA_INPUT", message: new RegExp(`credential id is ${bytes} bytes, under the 16`) }, `${bytes} bytes`);
    }
    assert.deepEqual(await f.mfa.webauthn.list(user.id), []);
    const key = new IdentifiedAuthenticator(new Uint8Array(16).fill(9));
    const response = key.register(await f.mfa.webauthn.registrationOptions(user.id, user.email, REG), ORIGIN);
    assert.deepEqual(await f.mfa.webauthn.verifyRegistration(user.id, response, "key", REG), { credentialId: key.id });
    assert.equal(await f.mfa.webauthn.verifyAuthentication(user.id, key.authenticate(await f.mfa.webauthn.authenticationOptions(user.id, FLOW), ORIGIN), FLOW), true);
  });
});
