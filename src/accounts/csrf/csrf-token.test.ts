// Known-answer test for the CSRF token construction, checked against an independent implementation.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { RandomSource } from "../../lib/random.ts";
import { csrfToken, verifyCSRF } from "./csrf-token.ts";

// Vector from OpenSSL 3.0.19 (Debian), not from our code:
//   SECRET=session-secret-for-known-answer-vector-0000
//   KEY=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "key:$SECRET" -kdfopt salt:bulwark/csrf \
//         -kdfopt info:csrf-token-v1 HKDF | tr -d ':')
//   (printf '\x10'; echo -n 000102030405060708090a0b0c0d0e0f | xxd -r -p; printf 'password.change') > msg.bin
//   MAC=$(openssl mac -digest SHA256 -macopt hexkey:$KEY -in msg.bin HMAC)
//   token = base64url(nonce ‖ MAC) without padding
const SECRET = "session-secret-for-known-answer-vector-0000";
const NONCE = Uint8Array.from({ length: 16 }, (_, i) => i);
const EXPECTED = "AAECAwQFBgcICQoLDA0OD8QqTy52b8pmdmOTUvGYOfwo1WENGFWTcrgWuii_oes6";

const fixedNonce: RandomSource = { bytes: (size) => NONCE.slice(0, size) };

it("builds the token HKDF-SHA256 + HMAC-SHA256 exactly as OpenSSL computes it", () => {
  assert.equal(csrfToken(SECRET, "password.change", fixedNonce), EXPECTED);
  assert.equal(verifyCSRF(SECRET, "password.change", EXPECTED), true);
});

it("rejects the known-answer token under another secret or action", () => {
  assert.equal(verifyCSRF(`${SECRET}1`, "password.change", EXPECTED), false);
  assert.equal(verifyCSRF(SECRET, "password.changE", EXPECTED), false);
});
