// Test fixtures of the MFA module: a migrated database with a keyring, flood control under the MFA policy,
// an MFA service, and an RFC 4226/6238 code generator written against node:crypto alone, so the tests do not
// check the otpauth package against itself.
import { createHmac } from "node:crypto";
import { Keyring } from "../../../crypto/keyring.ts";
import { ManualClock } from "../../../lib/clock.ts";
import { systemRandom, type RandomSource } from "../../../lib/random.ts";
import type { Database } from "../../../store/database.ts";
import { createKeyStore } from "../../../store/key-store.ts";
import { migrate } from "../../../store/migrator.ts";
import { MIGRATIONS } from "../../../store/migrations/index.ts";
import { FloodControl } from "../../flood/flood.ts";
import { createUserStore, type UserStore } from "../../users/user-store.ts";
import { createMfaService, MFA_FLOOD_NAMESPACE, MFA_FLOOD_POLICY, type MfaService } from "../index.ts";

export const RP_ID = "bulwark.example.org";
export const ORIGIN = "https://bulwark.example.org";

export interface MfaFixture {
  database: Database;
  clock: ManualClock;
  users: UserStore;
  keyring: Keyring;
  flood: FloodControl;
  mfa: MfaService;
}

/** Migrates `database` and builds the MFA service over it. `random` feeds the service (secrets, codes). */
export async function mfaFixture(database: Database, options: { random?: RandomSource; start?: number } = {}): Promise<MfaFixture> {
  const clock = new ManualClock(options.start ?? Date.UTC(2026, 10, 1, 9));
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(database), clock, random: systemRandom });
  await keyring.ensureKeys();
  const flood = new FloodControl({ database, clock, keyOf: (text) => keyring.floodKey(text), policy: MFA_FLOOD_POLICY, namespace: MFA_FLOOD_NAMESPACE });
  const mfa = createMfaService({
    database, clock, random: options.random ?? systemRandom, keyring, flood, issuer: "Bulwark Test",
    webauthn: { rpID: RP_ID, rpName: "Bulwark Test", origins: [ORIGIN] },
  });
  return { database, clock, users: createUserStore({ database, clock, random: systemRandom }), keyring, flood, mfa };
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32 decoding (the alphabet authenticator apps use). */
export function base32Decode(text: string): Buffer {
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of text.replace(/=+$/, "").toUpperCase()) {
    const v = BASE32.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 4226 HOTP with HMAC-SHA-1 and dynamic truncation, `digits` long. */
export function hotp(key: Uint8Array, counter: number, digits = 6): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", key).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) | (mac[offset + 2]! << 8) | mac[offset + 3]!;
  return String(binary % 10 ** digits).padStart(digits, "0");
}

/** The RFC 6238 code for a base32 secret at `timeMs` (30-second steps), `stepOffset` steps away. */
export function totpCode(secretBase32: string, timeMs: number, stepOffset = 0): string {
  return hotp(base32Decode(secretBase32), Math.floor(timeMs / 30_000) + stepOffset);
}

/** A random source that answers requests of `size` bytes with `bytes` (once) and the CSPRNG otherwise. */
export function scriptedRandom(size: number, bytes: Uint8Array): RandomSource {
  let used = false;
  return {
    bytes(n: number): Uint8Array {
      if (n === size && !used) {
        used = true;
        return new Uint8Array(bytes);
      }
      return systemRandom.bytes(n);
    },
  };
}
