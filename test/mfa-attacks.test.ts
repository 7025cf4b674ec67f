// Attacks on the MFA library itself (src/accounts/mfa: TOTP, recovery codes, passkeys), in-process on SQLite,
// beyond its own security tests and the HTTP attacks in http-factors-links-attacks: TOTP codes in odd shapes,
// replay and brute-force state across a restart, secrets left in the clear in the database files, assertions
// without user presence, ceremonies run in a cross-origin iframe, origin look-alikes, a passkey revoked while
// its challenge is live, an unsupported algorithm, the passkey cap raced, and invisible passkey names.
// Each test is an attack that must fail; "(was: …)" names what the code did before its fix. ASVS 5.0 ids.
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { FloodControl } from "../src/accounts/flood/flood.ts";
import { createMfaService, MFA_FLOOD_NAMESPACE, MFA_FLOOD_POLICY, sessionChallengeContext, type MfaService } from "../src/accounts/mfa/index.ts";
import { base32Decode, mfaFixture, ORIGIN, RP_ID, totpCode, type MfaFixture } from "../src/accounts/mfa/testing/setup.ts";
import { encodeCBOR, FLAG_AT, FLAG_UP, FLAG_UV, SoftAuthenticator, type CBORValue } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from "../src/accounts/mfa/index.ts";
import { createUserStore, type UserStore } from "../src/accounts/users/user-store.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";

const STEP = 30_000;
const dir = mkdtempSync(join(tmpdir(), "bulwark-mfa-attacks-"));
const opened: Database[] = [];
after(async () => {
  for (const db of opened) await db.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});
let n = 0;

function dbPath(): string {
  return join(dir, `db${++n}.sqlite`);
}

async function fixture(): Promise<MfaFixture> {
  const database = openSQLite(dbPath(), { create: true });
  opened.push(database);
  return mfaFixture(database);
}

/** A user with a confirmed authenticator app, the clock moved past the confirming step. */
async function withTOTP(f: MfaFixture, email: string): Promise<{ userId: string; secret: string }> {
  const user = await f.users.create({ email });
  const { secret } = await f.mfa.totp.begin(user.id, email);
  assert.equal(await f.mfa.totp.confirm(user.id, totpCode(secret, f.clock.now())), true);
  f.clock.advance(5 * STEP);
  return { userId: user.id, secret };
}

const FLOW = { context: sessionChallengeContext("ses_attacks") };
const REG = { context: sessionChallengeContext("ses_enrol") };

async function withPasskey(f: MfaFixture, email: string, counter = 10): Promise<{ userId: string; key: SoftAuthenticator }> {
  const user = await f.users.create({ email });
  const key = new SoftAuthenticator({ counter });
  await f.mfa.webauthn.verifyRegistration(user.id, key.register(await f.mfa.webauthn.registrationOptions(user.id, email, REG), ORIGIN), "key", REG);
  return { userId: user.id, key };
}

const sha256 = (data: Uint8Array | string): Buffer => createHash("sha256").update(data).digest();
const b64url = (data: Uint8Array | string): string => Buffer.from(data).toString("base64url");

/** The response with its clientDataJSON replaced (a registration: "none" attestation signs nothing over it). */
function withClientData(response: RegistrationResponseJSON, patch: Record<string, unknown>): RegistrationResponseJSON {
  const clientData = { ...JSON.parse(Buffer.from(response.response.clientDataJSON, "base64url").toString("utf8")), ...patch };
  return { ...response, response: { ...response.response, clientDataJSON: b64url(JSON.stringify(clientData)) } };
}

/** The assertion with its clientDataJSON replaced and re-signed by the genuine key (what a real browser in that context sends). */
function resigned(key: SoftAuthenticator, response: AuthenticationResponseJSON, patch: Record<string, unknown>): AuthenticationResponseJSON {
  const clientData = JSON.stringify({ ...JSON.parse(Buffer.from(response.response.clientDataJSON, "base64url").toString("utf8")), ...patch });
  const authData = Buffer.from(response.response.authenticatorData, "base64url");
  const signature = sign("sha256", Buffer.concat([authData, sha256(clientData)]), key.privateKey);
  return { ...response, response: { ...response.response, clientDataJSON: b64url(clientData), signature: b64url(signature) } };
}

/** A process's view of one database file: what a restart builds again from the file and the master key. */
interface Booted {
  database: Database;
  mfa: MfaService;
  users: UserStore;
  flood: FloodControl;
}

async function boot(path: string, masterKey: Uint8Array, clock: ManualClock): Promise<Booted> {
  const database = openSQLite(path, { create: true });
  opened.push(database);
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  const keyring = await Keyring.open({ masterKey, store: createKeyStore(database), clock, random: systemRandom });
  await keyring.ensureKeys();
  const flood = new FloodControl({ database, clock, keyOf: (text) => keyring.floodKey(text), policy: MFA_FLOOD_POLICY, namespace: MFA_FLOOD_NAMESPACE });
  const mfa = createMfaService({
    database, clock, random: systemRandom, keyring, flood, issuer: "Bulwark Test",
    webauthn: { rpID: RP_ID, rpName: "Bulwark Test", origins: [ORIGIN] },
  });
  return { database, mfa, users: createUserStore({ database, clock, random: systemRandom }), flood };
}

describe("TOTP codes in odd shapes", () => {
  it("attack: 5 or 7 digits around the right code, the right code with junk or a second code attached, and non-ASCII digits log in nobody (ASVS 6.5.4)", async () => {
    const f = await fixture();
    const { userId, secret } = await withTOTP(f, "shapes@example.org");
    const right = totpCode(secret, f.clock.now());
    const arabicIndic = [...right].map((d) => String.fromCharCode(0x0660 + Number(d))).join("");
    const fullwidth = [...right].map((d) => String.fromCharCode(0xff10 + Number(d))).join("");
    const devanagari = [...right].map((d) => String.fromCharCode(0x0966 + Number(d))).join("");
    const mathBold = [...right].map((d) => String.fromCodePoint(0x1d7ce + Number(d))).join("");
    const variants = [
      right.slice(0, 5), right.slice(1), `${right}0`, `0${right}`, `${right}${right}`, `${right}x`, `+${right}`, `${right}.0`,
      `${right}\u200b`, `${right.slice(0, 3)}\u200b${right.slice(3)}`, arabicIndic, fullwidth, devanagari, mathBold, `${right};${right}`,
    ];
    for (const code of variants) {
      assert.notEqual(await f.mfa.totp.verify(userId, code), "ok", `${JSON.stringify(code)} must not be the right code`);
      await f.mfa.clearThrottle(userId);
    }
    for (const code of [Number(right), [right], { toString: () => right }, null]) {
      assert.notEqual(await f.mfa.totp.verify(userId, code as unknown as string), "ok", `a ${typeof code} holding the code is not a code`);
      await f.mfa.clearThrottle(userId);
    }
    assert.equal(await f.mfa.totp.verify(userId, `\t ${right} \n`), "ok", "the right code itself still works (surrounding whitespace is typing noise)");
  });

  it("attack: a pending enrolment is not confirmed by a code of another user's secret, nor by its own code two steps away (ASVS 6.5.5)", async () => {
    const f = await fixture();
    const other = await withTOTP(f, "other-secret@example.org");
    const user = await f.users.create({ email: "pending@example.org" });
    const { secret } = await f.mfa.totp.begin(user.id, user.email);
    const now = f.clock.now();
    const inWindow = new Set([-1, 0, 1].map((o) => totpCode(secret, now, o)));
    for (const code of [totpCode(other.secret, now), totpCode(secret, now, -2), totpCode(secret, now, +2)]) {
      if (inWindow.has(code)) continue; // a one-in-a-million collision with a valid code
      assert.equal(await f.mfa.totp.confirm(user.id, code), false, code);
    }
    assert.deepEqual(await f.mfa.factors(user.id), { totp: false, webauthn: 0, recoveryCodes: 0 });
  });
});

describe("state that must survive a restart", () => {
  it("attack: a TOTP code spent before a restart is still spent after it, and the guesses counted before it still throttle (ASVS 6.5.1, 6.3.1)", async () => {
    const path = dbPath();
    const masterKey = systemRandom.bytes(32);
    const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
    const first = await boot(path, masterKey, clock);
    const user = await first.users.create({ email: "restart@example.org" });
    const { secret } = await first.mfa.totp.begin(user.id, user.email);
    assert.equal(await first.mfa.totp.confirm(user.id, totpCode(secret, clock.now())), true);
    clock.advance(3 * STEP);
    const code = totpCode(secret, clock.now());
    assert.equal(await first.mfa.totp.verify(user.id, code), "ok");
    const [recovery] = await first.mfa.recovery.generate(user.id);
    assert.equal(await first.mfa.recovery.consume(user.id, recovery!), true);
    for (let i = 0; i < MFA_FLOOD_POLICY.accountLimit - 1; i++) assert.equal(await first.mfa.totp.verify(user.id, "abcdef"), "invalid");
    await first.database.close();

    const second = await boot(path, masterKey, clock);
    assert.equal(await second.mfa.totp.verify(user.id, code), "replayed", "the spent step is remembered in the database, not in memory");
    assert.equal(await second.mfa.recovery.consume(user.id, recovery!), false, "a used recovery code stays used");
    assert.equal(await second.mfa.totp.verify(user.id, totpCode(secret, clock.now(), +1)), "throttled", "the fifth failure (the replay) filled the window: the restart gave no fresh budget");
  });

  it("attack: a WebAuthn challenge spent before a restart cannot be replayed after it (ASVS 6.5.1)", async () => {
    const path = dbPath();
    const masterKey = systemRandom.bytes(32);
    const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
    const first = await boot(path, masterKey, clock);
    const user = await first.users.create({ email: "restart-key@example.org" });
    const key = new SoftAuthenticator({ counter: 0 });
    await first.mfa.webauthn.verifyRegistration(user.id, key.register(await first.mfa.webauthn.registrationOptions(user.id, user.email, REG), ORIGIN), "k", REG);
    // A counterless authenticator: only the challenge stands between a captured assertion and a replay.
    const response = key.authenticate(await first.mfa.webauthn.authenticationOptions(user.id, FLOW), ORIGIN);
    assert.equal(await first.mfa.webauthn.verifyAuthentication(user.id, response, FLOW), true);
    await first.database.close();
    const second = await boot(path, masterKey, clock);
    assert.equal(await second.mfa.webauthn.verifyAuthentication(user.id, response, FLOW), false);
  });
});

describe("secrets at rest", () => {
  it("attack: a copy of the database files (main file and WAL) holds no TOTP secret and no recovery code in any encoding (ASVS 6.5.2, 13.3.1)", async () => {
    const path = dbPath();
    const database = openSQLite(path, { create: true });
    opened.push(database);
    const f = await mfaFixture(database);
    const user = await f.users.create({ email: "at-rest@example.org" });
    const { secret, uri } = await f.mfa.totp.begin(user.id, user.email);
    assert.equal(await f.mfa.totp.confirm(user.id, totpCode(secret, f.clock.now())), true);
    const codes = await f.mfa.recovery.generate(user.id);
    const files = [path, `${path}-wal`].filter((p) => existsSync(p)).map((p) => readFileSync(p));
    const image = Buffer.concat(files);
    const raw = base32Decode(secret);
    const needles: Array<[string, Buffer]> = [
      ["secret base32", Buffer.from(secret)], ["secret base32 lower", Buffer.from(secret.toLowerCase())], ["secret bytes", raw],
      ["secret hex", Buffer.from(raw.toString("hex"))], ["secret base64", Buffer.from(raw.toString("base64").replace(/=+$/, ""))],
      ["secret base64url", Buffer.from(raw.toString("base64url"))], ["otpauth uri", Buffer.from(uri)],
    ];
    for (const code of codes) {
      const plain = code.replaceAll("-", "");
      needles.push(["recovery code", Buffer.from(code)], ["recovery code raw", Buffer.from(plain)], ["recovery code bytes", base32Decode(plain)]);
      needles.push(["recovery code upper", Buffer.from(plain.toUpperCase())], ["recovery code bytes hex", Buffer.from(base32Decode(plain).toString("hex"))]);
    }
    assert.ok(image.length > 0);
    for (const [what, needle] of needles) assert.equal(image.indexOf(needle), -1, `${what} found in the database files`);
  });
});

describe("passkey assertions", () => {
  it("attack: an assertion signed without the user-presence flag (a silent signature, no touch) is refused, with or without UV alone", async () => {
    const f = await fixture();
    const { userId, key } = await withPasskey(f, "silent@example.org");
    for (const flags of [0, FLAG_UV]) {
      const silent = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { flags });
      assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, silent, FLOW), false, `flags ${flags}`);
    }
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN), FLOW), true, "a touched key works");
  });

  it("attack: origin look-alikes — http downgrade, another port, a subdomain, a trailing slash, upper case, the bare RP id — sign nobody in", async () => {
    const f = await fixture();
    const { userId, key } = await withPasskey(f, "lookalike@example.org");
    for (const origin of ["http://bulwark.example.org", "https://bulwark.example.org:8443", "https://evil.bulwark.example.org", `${ORIGIN}/`, "https://BULWARK.example.org", RP_ID, "null", `${ORIGIN}@evil.test`]) {
      const response = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { origin });
      assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, response, FLOW), false, origin);
    }
    // The registrable domain's parent or a sibling as RP ID.
    for (const rpID of ["example.org", "evil.bulwark.example.org", "BULWARK.EXAMPLE.ORG"]) {
      const response = key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN, { rpID });
      assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, response, FLOW), false, rpID);
    }
  });

  it("attack: an assertion from a cross-origin iframe naming its top origin (evil.test) is refused", async () => {
    const f = await fixture();
    const { userId, key } = await withPasskey(f, "iframe-auth-top@example.org");
    const framed = resigned(key, key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN), { crossOrigin: true, topOrigin: "https://evil.test" });
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, framed, FLOW), false);
  });

  it("attack: an assertion made in a cross-origin iframe (clientData crossOrigin: true, no topOrigin, as Safari sends) is refused (was: accepted)", async () => {
    // WebAuthn L3 §7.2 step 12: if C.crossOrigin is true, verify the RP expects to be framed by another origin.
    // Bulwark never expects that (its pages send frame-ancestors 'none'); the library only checks topOrigin.
    const f = await fixture();
    const { userId, key } = await withPasskey(f, "iframe-auth@example.org");
    const framed = resigned(key, key.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN), { crossOrigin: true });
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, framed, FLOW), false);
  });

  it("attack: a passkey removed after its challenge was issued proves nothing with that challenge; the user's other passkey still does (ASVS 6.5.6)", async () => {
    const f = await fixture();
    const { userId, key: lost } = await withPasskey(f, "revoke@example.org");
    const spare = new SoftAuthenticator({ counter: 3 });
    await f.mfa.webauthn.verifyRegistration(userId, spare.register(await f.mfa.webauthn.registrationOptions(userId, "revoke@example.org", REG), ORIGIN), "spare", REG);
    const options = await f.mfa.webauthn.authenticationOptions(userId, FLOW);
    assert.deepEqual(new Set(options.allowCredentials?.map((c) => c.id)), new Set([lost.id, spare.id]));
    const stolen = lost.authenticate(options, ORIGIN);
    assert.equal(await f.mfa.webauthn.remove(userId, lost.id), true);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, stolen, FLOW), false, "the revoked key over a challenge issued while it was live");
    const later = lost.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN);
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, later, FLOW), false, "the revoked key over a new challenge");
    assert.equal(await f.mfa.webauthn.verifyAuthentication(userId, spare.authenticate(await f.mfa.webauthn.authenticationOptions(userId, FLOW), ORIGIN), FLOW), true);
  });
});

describe("passkey registration", () => {
  it("attack: a registration for another RP ID, or typed as an assertion (webauthn.get), stores nothing", async () => {
    const f = await fixture();
    const user = await f.users.create({ email: "reg-rp@example.org" });
    const key = new SoftAuthenticator();
    for (const rpID of ["evil.test", "example.org"]) {
      const options = await f.mfa.webauthn.registrationOptions(user.id, user.email, REG);
      await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, key.register(options, ORIGIN, { rpID }), "k", REG), { code: "BULWARK_ERR_MFA_INPUT" }, rpID);
    }
    const options = await f.mfa.webauthn.registrationOptions(user.id, user.email, REG);
    await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, withClientData(key.register(options, ORIGIN), { type: "webauthn.get" }), "k", REG), { code: "BULWARK_ERR_MFA_INPUT" });
    assert.deepEqual(await f.mfa.webauthn.list(user.id), []);
    assert.equal(await f.mfa.hasMfa(user.id), false);
  });

  it("attack: a credential whose public key uses an algorithm never offered (ES384) is not registered", async () => {
    const f = await fixture();
    const user = await f.users.create({ email: "reg-alg@example.org" });
    const options = await f.mfa.webauthn.registrationOptions(user.id, user.email, REG);
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
    const jwk = publicKey.export({ format: "jwk" });
    const cose = encodeCBOR(new Map<number, CBORValue>([[1, 2], [3, -35], [-1, 2], [-2, new Uint8Array(Buffer.from(jwk.x!, "base64url"))], [-3, new Uint8Array(Buffer.from(jwk.y!, "base64url"))]]));
    const credentialId = new Uint8Array(systemRandom.bytes(32));
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(credentialId.length);
    const authData = Buffer.concat([sha256(RP_ID), Buffer.from([FLAG_UP | FLAG_AT]), Buffer.alloc(4), Buffer.alloc(16), idLength, credentialId, cose]);
    const attestationObject = encodeCBOR(new Map<string, CBORValue>([["fmt", "none"], ["attStmt", new Map()], ["authData", new Uint8Array(authData)]]));
    const response: RegistrationResponseJSON = {
      id: b64url(credentialId), rawId: b64url(credentialId), type: "public-key", clientExtensionResults: {},
      response: { clientDataJSON: b64url(JSON.stringify({ type: "webauthn.create", challenge: options.challenge, origin: ORIGIN, crossOrigin: false })), attestationObject: b64url(attestationObject) },
    };
    await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, response, "p384", REG), { code: "BULWARK_ERR_MFA_INPUT", message: /alg/ });
    assert.deepEqual(await f.mfa.webauthn.list(user.id), []);
  });

  it("attack: a registration made in a cross-origin iframe under evil.test (crossOrigin: true, topOrigin) is refused (was: stored as a passkey)", async () => {
    // WebAuthn L3 §7.1 step 10: a topOrigin must be one the RP expects to be framed by. Authentication refuses
    // it (the library checks topOrigin there); registration does not, so the two ceremonies disagree.
    const f = await fixture();
    const user = await f.users.create({ email: "iframe-reg@example.org" });
    const key = new SoftAuthenticator();
    const options = await f.mfa.webauthn.registrationOptions(user.id, user.email, REG);
    const framed = withClientData(key.register(options, ORIGIN), { crossOrigin: true, topOrigin: "https://evil.test" });
    await assert.rejects(f.mfa.webauthn.verifyRegistration(user.id, framed, "framed", REG), { code: "BULWARK_ERR_MFA_INPUT" });
    assert.deepEqual(await f.mfa.webauthn.list(user.id), []);
  });

  it("attack: the twenty-first passkey is refused and leaves the twenty working", async () => {
    const f = await fixture();
    const user = await f.users.create({ email: "cap@example.org" });
    for (let i = 0; i < 20; i++) {
      const key = new SoftAuthenticator();
      await f.mfa.webauthn.verifyRegistration(user.id, key.register(await f.mfa.webauthn.registrationOptions(user.id, user.email, REG), ORIGIN), `k${i}`, REG);
    }
    const extra = new SoftAuthenticator();
    await assert.rejects(
      f.mfa.webauthn.verifyRegistration(user.id, extra.register(await f.mfa.webauthn.registrationOptions(user.id, user.email, REG), ORIGIN), "extra", REG),
      { code: "BULWARK_ERR_MFA_INPUT", message: /at most 20 passkeys/ },
    );
    assert.equal((await f.mfa.webauthn.list(user.id)).length, 20);
  });

  it("attack: registrations raced in parallel (one per session) stop at the 20-passkey cap (was: overshot it)", async () => {
    // "every bound an attacker controls is bounded" (policy.ts MAX_WEBAUTHN_CREDENTIALS): the count is read,
    // then the response verified (async), then the row inserted, with nothing holding the count in between.
    const f = await fixture();
    const user = await f.users.create({ email: "cap-race@example.org" });
    for (let i = 0; i < 19; i++) {
      const key = new SoftAuthenticator();
      await f.mfa.webauthn.verifyRegistration(user.id, key.register(await f.mfa.webauthn.registrationOptions(user.id, user.email, REG), ORIGIN), `k${i}`, REG);
    }
    const flows = Array.from({ length: 8 }, (_, i) => ({ context: sessionChallengeContext(`ses_race_${i}`) }));
    const responses = await Promise.all(flows.map(async (flow) => new SoftAuthenticator().register(await f.mfa.webauthn.registrationOptions(user.id, user.email, flow), ORIGIN)));
    const results = await Promise.allSettled(responses.map((r, i) => f.mfa.webauthn.verifyRegistration(user.id, r, `race${i}`, flows[i]!)));
    const stored = (await f.mfa.webauthn.list(user.id)).length;
    assert.ok(stored <= 20, `${stored} passkeys stored; ${results.filter((r) => r.status === "fulfilled").length} of 8 raced registrations succeeded`);
  });

  it("attack: a passkey name that is invisible (Hangul filler U+3164, braille blank U+2800) or breaks the line (U+2028) is refused (was: accepted)", async () => {
    // docs/mfa-and-tokens.md: "names of 1–64 characters without control or invisible characters". cleanName
    // used to refuse only \p{Cc} and \p{Cf}: default-ignorable letters (Lo), blank symbols and line separators
    // passed, so a session thief's passkey could be listed under a name the owner cannot see.
    const f = await fixture();
    const user = await f.users.create({ email: "names@example.org" });
    const accepted: string[] = [];
    for (const name of ["\u3164", "\u2800\u2800", "\u115f", "key\u2028Your account is safe", "\u034f"]) {
      const key = new SoftAuthenticator();
      const options = await f.mfa.webauthn.registrationOptions(user.id, user.email, REG);
      try {
        await f.mfa.webauthn.verifyRegistration(user.id, key.register(options, ORIGIN), name, REG);
        accepted.push(JSON.stringify(name));
      } catch (e) {
        assert.equal((e as { code?: string }).code, "BULWARK_ERR_MFA_INPUT");
      }
    }
    assert.deepEqual(accepted, [], `accepted names: ${accepted.join(", ")}`);
    // An emoji in its coloured form (a variation selector after it) is still a name.
    const options = await f.mfa.webauthn.registrationOptions(user.id, user.email, REG);
    await f.mfa.webauthn.verifyRegistration(user.id, new SoftAuthenticator().register(options, ORIGIN), "YubiKey \u2764\ufe0f", REG);
    assert.deepEqual((await f.mfa.webauthn.list(user.id)).map((p) => p.name), ["YubiKey \u2764\ufe0f"]);
  });
});
