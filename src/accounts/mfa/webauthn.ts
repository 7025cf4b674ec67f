// WebAuthn / passkeys over @simplewebauthn/server: registration and authentication ceremonies whose
// challenges live on the server (short life, single use, bound to the flow that asked), a signature counter
// that refuses clones and suspends a passkey caught as one, list, remove.
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from "@simplewebauthn/server";
import type { Kysely } from "kysely";
import { createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import type { Clock } from "../../lib/clock.ts";
import { fromBase64URL, toBase64URL, utf8 } from "../../lib/encoding.ts";
import type { RandomSource } from "../../lib/random.ts";
import { hidesSomething } from "../../lib/visible-text.ts";
import { mfaErrors } from "./errors.ts";
import { factorRef, MAX_CREDENTIAL_ID_BYTES, MAX_CREDENTIAL_NAME, MIN_CREDENTIAL_ID_BYTES, MAX_WEBAUTHN_CREDENTIALS, WEBAUTHN_CHALLENGE_BYTES, WEBAUTHN_CHALLENGE_TTL_MS, type FactorProof, type FactorRemovalOptions } from "./policy.ts";
import { lockKeyOf, serialiseTransactions, type Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";

export interface WebAuthnSettings {
  /** The relying party id: the site's registrable domain, e.g. "bulwark.example.org". */
  rpID: string;
  /** Shown by the browser during registration. */
  rpName: string;
  /** Origins a ceremony may come from, e.g. ["https://bulwark.example.org"]. */
  origins: string[];
}

export interface Passkey {
  id: string;
  name: string;
  createdAt: number;
  lastUsedAt: number | null;
  /** When the passkey was caught as cloned: it proves nothing from then on, and its owner should remove it. */
  suspendedAt: number | null;
}

/**
 * The flow a challenge belongs to: only a response presented in the same flow may spend it. Build it with
 * `sessionChallengeContext` (step-up, enrolment) or `resetChallengeContext` (password reset); an id, never a secret.
 */
export interface ChallengeOptions {
  context: string;
}

export interface WebAuthnFactor {
  registrationOptions(userId: string, userName: string, options: ChallengeOptions): Promise<PublicKeyCredentialCreationOptionsJSON>;
  /** Verifies a registration response and stores the credential; throws InputError when refused. */
  /** `within` runs in the transaction that stores the credential, given its id (see FactorChangeOptions). */
  verifyRegistration(
    userId: string, response: RegistrationResponseJSON, name: string, options: ChallengeOptions & { within?: (trx: Kysely<Schema>, credentialId: string) => Promise<void> },
  ): Promise<{ credentialId: string }>;
  authenticationOptions(userId: string, options: ChallengeOptions): Promise<PublicKeyCredentialRequestOptionsJSON>;
  /** True only for a fresh, correctly signed assertion by one of the user's credentials, over a challenge of this flow. */
  verifyAuthentication(userId: string, response: AuthenticationResponseJSON, options: ChallengeOptions): Promise<boolean>;
  /**
   * Checks an assertion (spending its challenge) without recording the signature counter: the proof's `spend`
   * does, in the caller's transaction (FactorProof). Null when the assertion proves nothing; `onRefusal` is then
   * told why (PasskeyRefusal), so the caller can audit a cloned passkey apart from a forgery.
   */
  proveAuthentication(userId: string, response: AuthenticationResponseJSON, options: ChallengeOptions & { onRefusal?: (refusal: PasskeyRefusal) => void }): Promise<FactorProof | null>;
  list(userId: string): Promise<Passkey[]>;
  remove(userId: string, credentialId: string, options?: FactorRemovalOptions): Promise<boolean>;
}

/**
 * Why an assertion proved nothing. "counter-regressed": a genuine signature by the passkey whose signature counter did
 * not grow past the stored one, WebAuthn L3 §6.1.1's sign that the authenticator (its private key) has been cloned;
 * the passkey is suspended from then on. "credential-suspended": a genuine signature by a passkey suspended so (the
 * clone or the original, no one can tell which). Both name the passkey so responders know which one to revoke.
 * "invalid": everything else (a bad signature, an unknown credential, no live challenge, a malformed response).
 */
export type PasskeyRefusal = { reason: "invalid" } | { reason: "counter-regressed" | "credential-suspended"; credentialId: string };

/**
 * EdDSA, ES256, RS256: what authenticators in the field sign with. Same list offered and accepted; each needs its case
 * in `whyKeyUnusable` (an algorithm without one is refused at registration: fail closed).
 */
const ALGORITHMS = [-8, -7, -257];

/** Smallest RSA modulus accepted: NIST SP 800-131A Rev. 2 disallows shorter ones for signatures. */
const MIN_RSA_MODULUS_BITS = 2048;
/** Largest RSA modulus accepted: each sign-in's check costs more with it; authenticators (TPMs, Windows Hello) use 2048. */
const MAX_RSA_MODULUS_BITS = 8192;
/** RSA public exponents accepted: odd, 2^16 < e < 2^256 (FIPS 186-5 §A.1.1); a huge one would slow every check. */
const MIN_RSA_EXPONENT = 2n ** 16n + 1n;
const MAX_RSA_EXPONENT = 2n ** 256n;

/**
 * Transports kept per passkey. They are hints (WebAuthn L3 §5.2.1 getTransports) served back in the options of every
 * later sign-in, re-authentication and reset: only AuthenticatorTransport tokens (§5.8.4: usb, nfc, ble, smart-card,
 * hybrid, internal, and values yet to be defined, all lower-case words), each once, at most 8 (there are six today).
 */
const MAX_TRANSPORTS = 8;
const TRANSPORT_TOKEN = /^[a-z0-9-]{1,32}$/;

let library: Promise<typeof import("@simplewebauthn/server")> | null = null;
/**
 * @simplewebauthn/server, loaded at the first ceremony rather than by every process that opens the accounts
 * (~0.2 s of start-up for each CLI command). The server loads it before it listens (see runServer), so a broken
 * install still stops `bulwark start` at once rather than failing the first passkey.
 */
export function webAuthnLibrary(): Promise<typeof import("@simplewebauthn/server")> {
  library ??= import("@simplewebauthn/server").catch((error: unknown) => {
    library = null;
    throw error;
  });
  return library;
}
/** A response larger than this is refused before parsing (attestation objects are a few KiB at most). */
const MAX_RESPONSE_CHARS = 64 * 1024;

/**
 * Live challenges kept per user, ceremony and flow; issuing one more deletes the oldest. Five covers a user
 * who retries or opens a second tab; without a bound every options call of one session added a row (a
 * storage flood). Per flow, not per user: options asked in one session never evict another flow's challenge.
 */
export const MAX_LIVE_WEBAUTHN_CHALLENGES = 5;
/** Longest accepted context: a prefix and an id (session and reset-token ids are under 40 characters). */
const MAX_CONTEXT_CHARS = 128;

type Purpose = "registration" | "authentication";

/** The context of a challenge asked for by a session (login step-up, enrolment), from its public id. */
export function sessionChallengeContext(sessionId: string): string {
  return `session:${sessionId}`;
}

/** The context of a challenge asked for with a password-reset link, from the token's id (never its secret). */
export function resetChallengeContext(tokenId: string): string {
  return `reset:${tokenId}`;
}

function contextOf(options: ChallengeOptions): string {
  const context = options?.context;
  // Fail closed: an empty context would be one bucket shared by every flow of the user.
  if (typeof context !== "string" || context.length === 0 || context.length > MAX_CONTEXT_CHARS) throw mfaErrors.invalidInput("the challenge context must be 1 to 128 characters");
  return context;
}

/** A response's decoded clientDataJSON (a response over MAX_RESPONSE_CHARS is not read); null when unreadable. */
function clientDataOf(response: unknown): Record<string, unknown> | null {
  try {
    if (typeof response !== "object" || response === null || JSON.stringify(response).length > MAX_RESPONSE_CHARS) return null;
    const clientData = (response as { response?: { clientDataJSON?: unknown } }).response?.clientDataJSON;
    if (typeof clientData !== "string") return null;
    const parsed: unknown = JSON.parse(Buffer.from(clientData, "base64url").toString("utf8"));
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The challenge a response claims to answer, read from its clientDataJSON; null when unreadable. */
function claimedChallenge(response: unknown): string | null {
  const challenge = clientDataOf(response)?.["challenge"];
  return typeof challenge === "string" && /^[A-Za-z0-9_-]{16,128}$/.test(challenge) ? challenge : null;
}

function cleanName(name: unknown): string {
  if (typeof name !== "string") throw mfaErrors.invalidInput("the passkey name must be text");
  const trimmed = name.trim();
  if (trimmed.length === 0) throw mfaErrors.invalidInput("the passkey name is empty");
  if ([...trimmed].length > MAX_CREDENTIAL_NAME) throw mfaErrors.invalidInput(`the passkey name is longer than ${MAX_CREDENTIAL_NAME} characters`);
  if (hidesSomething(trimmed)) throw mfaErrors.invalidInput("the passkey name contains control or invisible characters (such as a Hangul filler or a line separator), or an unpaired surrogate");
  return trimmed;
}

/**
 * Whether the browser ran the ceremony inside a frame of another origin (clientData `crossOrigin: true`, or a
 * `topOrigin`, WebAuthn L3 §7.1 step 10 and §7.2 step 13). No Bulwark page is meant to be framed
 * (`frame-ancestors 'none'`), so such a response is refused in both ceremonies. @simplewebauthn/server checks
 * neither during registration, and during authentication only a `topOrigin` (Safari sends none). An unreadable
 * clientData is left to the library, which refuses it.
 */
function madeInAFrame(response: unknown): boolean {
  const data = clientDataOf(response);
  return data !== null && (data["crossOrigin"] === true || data["topOrigin"] !== undefined);
}

/**
 * The transports of `value` that are transport tokens, each once, at most MAX_TRANSPORTS. Anything else a browser
 * reported (markup, control characters, kilobytes of text) is dropped rather than refused: the passkey works without
 * hints. Applied to stored rows too, so one registered before this filter is served clean.
 */
function transportTokens(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const tokens = value.filter((t): t is string => typeof t === "string" && TRANSPORT_TOKEN.test(t));
  return [...new Set(tokens)].slice(0, MAX_TRANSPORTS);
}

/** A COSE value as an error message shows it: numbers as they are, anything else by its kind. */
function shown(value: unknown): string {
  if (value === undefined) return "missing";
  return typeof value === "number" ? String(value) : `a ${value instanceof Uint8Array ? "byte string" : typeof value}`;
}

/**
 * Why a registration's credential public key (COSE_Key, RFC 9052 §7) could never verify an assertion, or null when it
 * is a real key of the algorithm it names. The library checks only that `alg` is one offered; a key without its
 * coordinates, a point off the curve, an RSA key without a modulus or a P-256 key labelled EdDSA passed, and enrolled
 * a factor no one can ever pass (the account locked behind it, the registering session stepped up on it). Decoded by
 * the library's CBOR decoder and imported by node:crypto (COSE → JWK, RFC 9053 §7, RFC 8230 §4): a key node:crypto
 * refuses is one every sign-in would fail to verify.
 */
async function whyKeyUnusable(publicKey: Uint8Array<ArrayBuffer>): Promise<string | null> {
  const { cose, decodeCredentialPublicKey } = await import("@simplewebauthn/server/helpers");
  const { COSEALG, COSECRV, COSEKEYS, COSEKTY } = cose;
  let decoded: unknown;
  try {
    decoded = decodeCredentialPublicKey(publicKey);
  } catch {
    return "is not CBOR";
  }
  if (!(decoded instanceof Map)) return "is not a COSE_Key (a CBOR map)";
  const key = decoded as Map<number, unknown>;
  const alg = key.get(COSEKEYS.alg);
  const kty = key.get(COSEKEYS.kty);
  const bytes = (label: number): Uint8Array | null => {
    const value = key.get(label);
    return value instanceof Uint8Array ? value : null;
  };
  let jwk: JsonWebKey;
  let notAKey: string;
  switch (alg) {
    case COSEALG.ES256: {
      if (kty !== COSEKTY.EC2) return `names ES256 (-7) but its key type is ${shown(kty)}, not EC2 (2)`;
      const crv = key.get(COSEKEYS.crv);
      if (crv !== COSECRV.P256) return `names ES256 (-7) but its curve is ${shown(crv)}, not P-256 (1)`;
      const x = bytes(COSEKEYS.x);
      const y = bytes(COSEKEYS.y);
      if (x === null || y === null) return `is an EC2 key without its ${x === null ? "x" : "y"} coordinate`;
      // SEC 1 §2.3.3 / RFC 9053 §7.1.1: each coordinate is the field size, leading zeros kept.
      if (x.length !== 32 || y.length !== 32) return `has P-256 coordinates of ${x.length} and ${y.length} bytes, not 32 each`;
      jwk = { kty: "EC", crv: "P-256", x: toBase64URL(x), y: toBase64URL(y) };
      notAKey = "is not a point on the P-256 curve";
      break;
    }
    case COSEALG.EdDSA: {
      // Ed25519 only: the curve the EdDSA authenticators in the field use (Ed448 is not offered).
      if (kty !== COSEKTY.OKP) return `names EdDSA (-8) but its key type is ${shown(kty)}, not OKP (1)`;
      const crv = key.get(COSEKEYS.crv);
      if (crv !== COSECRV.ED25519) return `names EdDSA (-8) but its curve is ${shown(crv)}, not Ed25519 (6)`;
      const x = bytes(COSEKEYS.x);
      if (x === null) return "is an OKP key without its x (the public key)";
      if (x.length !== 32) return `is an Ed25519 key of ${x.length} bytes, not 32`;
      jwk = { kty: "OKP", crv: "Ed25519", x: toBase64URL(x) };
      notAKey = "is not an Ed25519 public key";
      break;
    }
    case COSEALG.RS256: {
      if (kty !== COSEKTY.RSA) return `names RS256 (-257) but its key type is ${shown(kty)}, not RSA (3)`;
      const n = bytes(COSEKEYS.n);
      const e = bytes(COSEKEYS.e);
      if (n === null || e === null) return `is an RSA key without its ${n === null ? "modulus (n)" : "public exponent (e)"}`;
      jwk = { kty: "RSA", n: toBase64URL(n), e: toBase64URL(e) };
      notAKey = "is not an RSA public key";
      break;
    }
    default:
      return `names the algorithm ${shown(alg)}, not one offered (EdDSA -8, ES256 -7, RS256 -257)`;
  }
  let imported: KeyObject;
  try {
    imported = createPublicKey({ key: jwk, format: "jwk" });
  } catch {
    return notAKey;
  }
  if (imported.asymmetricKeyType === "rsa") {
    const { modulusLength = 0, publicExponent = 0n } = imported.asymmetricKeyDetails ?? {};
    if (modulusLength < MIN_RSA_MODULUS_BITS || modulusLength > MAX_RSA_MODULUS_BITS) {
      return `is an RSA key of ${modulusLength} bits, not ${MIN_RSA_MODULUS_BITS} to ${MAX_RSA_MODULUS_BITS}`;
    }
    if (publicExponent < MIN_RSA_EXPONENT || publicExponent >= MAX_RSA_EXPONENT || publicExponent % 2n === 0n) {
      return "is an RSA key whose public exponent is not odd and between 2^16 and 2^256 (FIPS 186-5)";
    }
  }
  return null;
}

/** Builds the WebAuthn factor over webauthn_credentials and webauthn_challenges. */
export function createWebAuthnFactor(deps: { database: Database; clock: Clock; random: RandomSource; settings: WebAuthnSettings }): WebAuthnFactor {
  const { database, clock, random, settings } = deps;
  const db = database.db;

  /**
   * Issues a challenge bound to the user, the ceremony and the flow; expired ones are swept on the way, and the
   * flow keeps at most MAX_LIVE_WEBAUTHN_CHALLENGES (the oldest go, in the same transaction as the insert).
   */
  async function issueChallenge(userId: string, purpose: Purpose, context: string): Promise<Uint8Array> {
    const now = clock.now();
    const bytes = random.bytes(WEBAUTHN_CHALLENGE_BYTES);
    // The sweep stays outside the transaction: it touches every user's rows, and holding those locks until the
    // insert commits would make concurrent issuers on PostgreSQL wait on (or deadlock with) each other.
    await db.deleteFrom("webauthn_challenges").where("expires_at", "<=", now).execute();
    await db.transaction().execute(async (trx) => {
      const live = await trx
        .selectFrom("webauthn_challenges")
        .select("challenge")
        .where("user_id", "=", userId)
        .where("purpose", "=", purpose)
        .where("context", "=", context)
        .orderBy("created_at", "desc")
        .orderBy("challenge", "desc")
        .execute();
      // The oldest go; among challenges of the same millisecond (only a flood makes those) any may. The one being
      // issued always stays. Concurrent issuers in one flow may overshoot the cap by their number on PostgreSQL
      // (read committed); the next issue trims it back, so the bound holds up to the concurrency of one flow.
      const evicted = live.slice(MAX_LIVE_WEBAUTHN_CHALLENGES - 1).map((r) => r.challenge);
      if (evicted.length > 0) await trx.deleteFrom("webauthn_challenges").where("challenge", "in", evicted).execute();
      await trx
        .insertInto("webauthn_challenges")
        .values({ challenge: toBase64URL(bytes), user_id: userId, purpose, context, created_at: now, expires_at: now + WEBAUTHN_CHALLENGE_TTL_MS })
        .execute();
    });
    return bytes;
  }

  /**
   * Deletes the challenge a response answers, if it is this user's, for this ceremony, of this flow and still
   * alive. The DELETE is the check: of two requests replaying one challenge only one deletes the row (single
   * use), and a challenge asked for in another session or with a reset link is not found here.
   */
  async function consumeChallenge(userId: string, purpose: Purpose, context: string, response: unknown): Promise<string | null> {
    const challenge = claimedChallenge(response);
    if (challenge === null) return null;
    const result = await db
      .deleteFrom("webauthn_challenges")
      .where("challenge", "=", challenge)
      .where("user_id", "=", userId)
      .where("purpose", "=", purpose)
      .where("context", "=", context)
      .where("expires_at", ">", clock.now())
      .executeTakeFirst();
    return Number(result.numDeletedRows) === 1 ? challenge : null;
  }

  /**
   * Marks the passkey suspended (a copy of it caught), once: a suspension already made keeps its time. True only for
   * the request that made it: of several racing copies, one records and mails it (the others are refused as
   * credential-suspended, which mails nothing), so a clone's holder cannot fill the owner's mailbox by racing N logins.
   */
  async function suspend(userId: string, credentialId: string): Promise<boolean> {
    const result = await db.updateTable("webauthn_credentials").set({ suspended_at: clock.now() })
      .where("id", "=", credentialId).where("user_id", "=", userId).where("suspended_at", "is", null).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async function credentialsOf(userId: string): Promise<Array<{ id: string; transports: string; suspended_at: number | null }>> {
    return db.selectFrom("webauthn_credentials").select(["id", "transports", "suspended_at"]).where("user_id", "=", userId).orderBy("created_at").execute();
  }

  const descriptor = (c: { id: string; transports: string }): { id: string; transports?: string[] } => {
    const transports = transportTokens(JSON.parse(c.transports));
    return transports.length > 0 ? { id: c.id, transports } : { id: c.id };
  };

  async function proveAuthentication(
    userId: string, response: AuthenticationResponseJSON, options: ChallengeOptions & { onRefusal?: (refusal: PasskeyRefusal) => void },
  ): Promise<FactorProof | null> {
    const proven = await checkAssertion(userId, response, options);
    if ("spend" in proven) return proven;
    options.onRefusal?.(proven);
    return null;
  }

  /** The proof an assertion gives (see proveAuthentication), or why it gives none. */
  async function checkAssertion(userId: string, response: AuthenticationResponseJSON, options: ChallengeOptions): Promise<FactorProof | PasskeyRefusal> {
    const invalid = { reason: "invalid" } as const;
    // The challenge is spent first, whatever follows: a refused response cannot be retried with it.
    const challenge = await consumeChallenge(userId, "authentication", contextOf(options), response);
    if (challenge === null) return invalid;
    if (madeInAFrame(response)) return invalid;
    const id = (response as { id?: unknown }).id;
    if (typeof id !== "string") return invalid;
    // Only the user's own credentials: another account's passkey proves nothing about this one.
    const row = await db.selectFrom("webauthn_credentials").selectAll().where("id", "=", id).where("user_id", "=", userId).executeTakeFirst();
    if (!row) return invalid;
    // WebAuthn L3 §7.2 step 6: a user handle, when the authenticator returns one, must be this account's (the user id
    // given at registration). Not signed, so it proves nothing by itself; a different one is a response assembled for
    // another account (or by a client that mixes them up), refused before any work.
    const userHandle = (response as { response?: { userHandle?: unknown } }).response?.userHandle;
    if (userHandle !== undefined && userHandle !== null && userHandle !== "" && (typeof userHandle !== "string" || !Buffer.from(userHandle, "base64url").equals(Buffer.from(utf8(userId))))) return invalid;
    const stored = Number(row.counter);
    const { verifyAuthenticationResponse } = await webAuthnLibrary();
    let newCounter: number;
    try {
      const result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: settings.origins,
        expectedRPID: settings.rpID,
        // Counter 0: the library then checks the signature alone. It compares the counters before it checks the
        // signature, so its refusal cannot tell a clone from a forgery; the counters are compared below, once the
        // signature is known to be the passkey's.
        credential: { id: row.id, publicKey: new Uint8Array(fromBase64URL(row.public_key)), counter: 0, transports: transportTokens(JSON.parse(row.transports)) },
        requireUserVerification: false,
      });
      if (!result.verified) return invalid;
      newCounter = result.authenticationInfo.newCounter;
    } catch {
      return invalid;
    }
    const credentialId = row.id;
    // A passkey caught as cloned proves nothing more, whatever counter it claims next: the copy would otherwise pass by
    // jumping ahead (and leave the owner's genuine key the one refused). Refused after the signature, so the record
    // says the suspended key itself is still in use; nothing is updated.
    if (row.suspended_at !== null) return { reason: "credential-suspended", credentialId };
    // Clone detection (WebAuthn L3 §6.1.1, and §7.2's signCount step): a genuine signature whose counter does not grow past the
    // stored one, unless both are 0 (authenticators without a counter), comes from a copy of the authenticator.
    // Refused and named, so the record tells responders which passkey's private key has leaked. The spend below
    // checks the counter again, atomically, against a copy racing the original.
    if ((newCounter > 0 || stored > 0) && newCounter <= stored) {
      // Suspended until its owner removes it: WebAuthn leaves the response to the relying party (§6.1.1), and this one
      // chooses safety over convenience. Two copies of one key cannot be told apart, so the genuine one is suspended
      // too; the owner signs in with another factor or a recovery code and registers a new passkey. Written here, not
      // in the caller's transaction: the refusal commits nothing else, and the suspension must hold whatever follows.
      return { reason: (await suspend(userId, credentialId)) ? "counter-regressed" : "credential-suspended", credentialId };
    }
    return {
      factor: factorRef.passkey(credentialId),
      async spend(executor) {
        // Clone detection, atomically: the counter must grow unless both are zero (authenticators without a
        // counter). A copy of the authenticator racing the original cannot both pass (WebAuthn §6.1.1).
        const result = await executor
          .updateTable("webauthn_credentials")
          .set({ counter: newCounter, last_used_at: clock.now() })
          .where("id", "=", credentialId)
          .where("user_id", "=", userId)
          .where((eb) => (newCounter === 0 ? eb("counter", "=", 0) : eb("counter", "<", newCounter)))
          // Suspended since it was proven (a copy caught by a concurrent request): lost, like a replay.
          .where("suspended_at", "is", null)
          .executeTakeFirst();
        return Number(result.numUpdatedRows) === 1;
      },
      async outrun() {
        // Both passed the counter check against the same stored value (two nodes, the same instant); the one that won
        // left its counter behind. As high as ours or higher: the same signal as a regressed counter, which the
        // unraced path acts on (a genuine authenticator never signs two assertions with the same counter).
        if (newCounter === 0) return false;
        const now = await db.selectFrom("webauthn_credentials").select("counter").where("id", "=", credentialId).where("user_id", "=", userId).executeTakeFirst();
        if (now === undefined || Number(now.counter) < newCounter) return false;
        // Caught by this request only if it made the suspension: a racing copy that made it already recorded it.
        return suspend(userId, credentialId);
      },
      // Passkeys have no failure counter to clear or to give back.
      settle: async () => {},
      release: async () => {},
    };
  }

  return {
    async registrationOptions(userId, userName, options) {
      if (typeof userName !== "string" || userName.trim().length === 0) throw mfaErrors.invalidInput("the user name shown by the browser is empty");
      const context = contextOf(options);
      const existing = await credentialsOf(userId);
      const challenge = await issueChallenge(userId, "registration", context);
      const { generateRegistrationOptions } = await webAuthnLibrary();
      return generateRegistrationOptions({
        rpName: settings.rpName,
        rpID: settings.rpID,
        userName: userName.trim(),
        userDisplayName: userName.trim(),
        // The random user id, never the email: the user handle is stored on the authenticator.
        userID: new Uint8Array(utf8(userId)),
        challenge: new Uint8Array(challenge),
        timeout: WEBAUTHN_CHALLENGE_TTL_MS,
        attestationType: "none",
        // The same authenticator cannot be registered twice for one account.
        excludeCredentials: existing.map(descriptor),
        authenticatorSelection: { residentKey: "preferred", userVerification: "preferred" },
        supportedAlgorithmIDs: ALGORITHMS,
      });
    },

    async verifyRegistration(userId, response, name, options) {
      const label = cleanName(name);
      const challenge = await consumeChallenge(userId, "registration", contextOf(options), response);
      if (challenge === null) throw mfaErrors.invalidInput("the registration response answers no live challenge of this account and session (unknown, expired or already used); start again");
      const full = async (executor: Kysely<Schema>): Promise<void> => {
        const { n } = await executor.selectFrom("webauthn_credentials").select((eb) => eb.fn.countAll<number | string>().as("n")).where("user_id", "=", userId).executeTakeFirstOrThrow();
        if (Number(n) >= MAX_WEBAUTHN_CREDENTIALS) throw mfaErrors.invalidInput(`an account may hold at most ${MAX_WEBAUTHN_CREDENTIALS} passkeys; remove one first`);
      };
      await full(db);
      if (madeInAFrame(response)) throw mfaErrors.invalidInput("the registration response was refused: the browser made it inside a frame of another site");
      const { verifyRegistrationResponse } = await webAuthnLibrary();
      let verified;
      try {
        verified = await verifyRegistrationResponse({
          response,
          expectedChallenge: challenge,
          expectedOrigin: settings.origins,
          expectedRPID: settings.rpID,
          // A passkey is a second factor after the password here: presence is required, verification (PIN,
          // biometrics) is asked for but not demanded, so plain security keys work (ASVS 6.5.7).
          requireUserVerification: false,
          supportedAlgorithmIDs: ALGORITHMS,
        });
      } catch (cause) {
        throw mfaErrors.invalidInput(`the registration response was refused: ${(cause as Error).message}`, { cause });
      }
      if (!verified.verified) throw mfaErrors.invalidInput("the registration response was refused: it did not verify");
      const { credential } = verified.registrationInfo;
      const idBytes = fromBase64URL(credential.id).length;
      if (idBytes < MIN_CREDENTIAL_ID_BYTES) throw mfaErrors.invalidInput(`the registration response was refused: its credential id is ${idBytes} bytes, under the ${MIN_CREDENTIAL_ID_BYTES} every authenticator makes (WebAuthn Level 3 §6.1)`);
      if (idBytes > MAX_CREDENTIAL_ID_BYTES) throw mfaErrors.invalidInput(`the registration response was refused: its credential id is ${idBytes} bytes, over WebAuthn's ${MAX_CREDENTIAL_ID_BYTES}`);
      const unusable = await whyKeyUnusable(credential.publicKey);
      if (unusable !== null) throw mfaErrors.unusablePublicKey(unusable);
      const transports = transportTokens(credential.transports);
      await db.transaction().execute(async (trx) => {
        // Counted again where it is stored, one registration of the account at a time: registrations raced from
        // several sessions each passed the count above.
        await serialiseTransactions(database, trx, lockKeyOf(`webauthn-credentials:${userId}`));
        await full(trx);
        try {
          await trx
            .insertInto("webauthn_credentials")
            .values({
              id: credential.id, user_id: userId, public_key: toBase64URL(credential.publicKey), counter: credential.counter,
              transports: JSON.stringify(transports), created_at: clock.now(), last_used_at: null, name: label,
            })
            .execute();
        } catch (cause) {
          if (/unique|duplicate|constraint/i.test((cause as Error).message)) throw mfaErrors.invalidInput("this passkey is already registered", { cause });
          throw cause;
        }
        await options.within?.(trx, credential.id);
      });
      return { credentialId: credential.id };
    },

    async authenticationOptions(userId, options) {
      const context = contextOf(options);
      const existing = await credentialsOf(userId);
      if (existing.length === 0) throw mfaErrors.notEnrolled("passkey");
      // A suspended passkey is not offered: the browser would ask the owner to touch a key whose answer is refused.
      // (A client that answers with it anyway is still checked, and recorded as credential-suspended.)
      const usable = existing.filter((c) => c.suspended_at === null);
      if (usable.length === 0) throw mfaErrors.passkeysSuspended();
      const challenge = await issueChallenge(userId, "authentication", context);
      const { generateAuthenticationOptions } = await webAuthnLibrary();
      return generateAuthenticationOptions({
        rpID: settings.rpID,
        allowCredentials: usable.map(descriptor),
        challenge: new Uint8Array(challenge),
        timeout: WEBAUTHN_CHALLENGE_TTL_MS,
        userVerification: "preferred",
      });
    },

    async verifyAuthentication(userId, response, options) {
      const proof = await proveAuthentication(userId, response, options);
      return proof !== null && (await proof.spend(db));
    },

    proveAuthentication,

    async list(userId) {
      const rows = await db.selectFrom("webauthn_credentials").select(["id", "name", "created_at", "last_used_at", "suspended_at"]).where("user_id", "=", userId).orderBy("created_at").execute();
      return rows.map((r) => ({
        id: r.id, name: r.name, createdAt: Number(r.created_at), lastUsedAt: r.last_used_at === null ? null : Number(r.last_used_at),
        suspendedAt: r.suspended_at === null ? null : Number(r.suspended_at),
      }));
    },

    async remove(userId, credentialId, options = {}) {
      return db.transaction().execute(async (trx) => {
        await options.first?.(trx);
        const result = await trx.deleteFrom("webauthn_credentials").where("id", "=", credentialId).where("user_id", "=", userId).executeTakeFirst();
        if (Number(result.numDeletedRows) === 0) return false;
        await options.within?.(trx);
        return true;
      });
    },
  };
}
