// A software WebAuthn authenticator for tests: an ES256 key pair from node:crypto, "none" attestation and
// real signatures, so the server's verification path runs for real. Test-only; never used by the product.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from "@simplewebauthn/server";

/** The subset of CBOR (RFC 8949) a "none" attestation needs: integers, byte and text strings, maps. */
export type CBORValue = number | string | Uint8Array | Map<number | string, CBORValue>;

function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

/** Encodes `value` as CBOR (definite lengths only). */
export function encodeCBOR(value: CBORValue): Buffer {
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new TypeError("only integers are supported");
    return value >= 0 ? head(0, value) : head(1, -1 - value);
  }
  if (typeof value === "string") {
    const bytes = Buffer.from(value, "utf8");
    return Buffer.concat([head(3, bytes.length), bytes]);
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), value]);
  const parts: Buffer[] = [head(5, value.size)];
  for (const [k, v] of value) parts.push(encodeCBOR(k), encodeCBOR(v));
  return Buffer.concat(parts);
}

const sha256 = (data: Uint8Array | string): Buffer => createHash("sha256").update(data).digest();
const b64url = (data: Uint8Array | string): string => Buffer.from(data).toString("base64url");

export const FLAG_UP = 0x01;
export const FLAG_UV = 0x04;
export const FLAG_AT = 0x40;

export interface CeremonyOverrides {
  /** Sign over this origin instead of the real one (phishing site). */
  origin?: string;
  /** Claim this RP ID in the authenticator data. */
  rpID?: string;
  /** Answer this challenge instead of the one in the options. */
  challenge?: string;
  /** Use this signature counter instead of incrementing. */
  counter?: number;
  flags?: number;
  /** Sign with another key while claiming this authenticator's credential id. */
  signWith?: KeyObject;
  /** Claim another credential id. */
  credentialId?: string;
}

/** One authenticator holding one credential. */
export class SoftAuthenticator {
  readonly credentialId: Uint8Array;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The signature counter; incremented on every assertion unless an override says otherwise. */
  counter: number;

  constructor(options: { counter?: number } = {}) {
    const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
    this.credentialId = new Uint8Array(randomBytes(32));
    this.counter = options.counter ?? 0;
  }

  get id(): string {
    return b64url(this.credentialId);
  }

  /** COSE_Key of the public key (RFC 9053 EC2: kty 2, alg -7 ES256, crv 1 P-256). */
  coseKey(): Buffer {
    const jwk = this.publicKey.export({ format: "jwk" });
    return encodeCBOR(
      new Map<number, CBORValue>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, new Uint8Array(Buffer.from(jwk.x as string, "base64url"))],
        [-3, new Uint8Array(Buffer.from(jwk.y as string, "base64url"))],
      ]),
    );
  }

  #authData(rpID: string, flags: number, counter: number, attested: boolean): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter >>> 0, 0);
    const parts = [sha256(rpID), Buffer.from([flags]), count];
    if (attested) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(this.credentialId.length, 0);
      parts.push(Buffer.alloc(16), len, Buffer.from(this.credentialId), this.coseKey());
    }
    return Buffer.concat(parts);
  }

  /** navigator.credentials.create() with "none" attestation. */
  register(options: PublicKeyCredentialCreationOptionsJSON, origin: string, o: CeremonyOverrides = {}): RegistrationResponseJSON {
    const clientDataJSON = JSON.stringify({ type: "webauthn.create", challenge: o.challenge ?? options.challenge, origin: o.origin ?? origin, crossOrigin: false });
    const authData = this.#authData(o.rpID ?? options.rp.id ?? "", o.flags ?? FLAG_UP | FLAG_AT, o.counter ?? this.counter, true);
    const attestationObject = encodeCBOR(new Map<string, CBORValue>([["fmt", "none"], ["attStmt", new Map()], ["authData", new Uint8Array(authData)]]));
    return {
      id: o.credentialId ?? this.id,
      rawId: o.credentialId ?? this.id,
      type: "public-key",
      response: { clientDataJSON: b64url(clientDataJSON), attestationObject: b64url(attestationObject), transports: ["usb"] },
      clientExtensionResults: {},
    };
  }

  /** navigator.credentials.get(): signs authenticatorData ‖ SHA-256(clientDataJSON) with ES256. */
  authenticate(options: PublicKeyCredentialRequestOptionsJSON, origin: string, o: CeremonyOverrides = {}): AuthenticationResponseJSON {
    if (o.counter === undefined && this.counter > 0) this.counter++;
    const counter = o.counter ?? this.counter;
    const clientDataJSON = JSON.stringify({ type: "webauthn.get", challenge: o.challenge ?? options.challenge, origin: o.origin ?? origin, crossOrigin: false });
    const authData = this.#authData(o.rpID ?? options.rpId ?? "", o.flags ?? FLAG_UP, counter, false);
    const signature = sign("sha256", Buffer.concat([authData, sha256(clientDataJSON)]), o.signWith ?? this.privateKey);
    return {
      id: o.credentialId ?? this.id,
      rawId: o.credentialId ?? this.id,
      type: "public-key",
      response: { clientDataJSON: b64url(clientDataJSON), authenticatorData: b64url(authData), signature: b64url(signature) },
      clientExtensionResults: {},
    };
  }
}
