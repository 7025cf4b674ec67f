// A master key for tests: 32 bytes that look random (a SHA-256 of the label), as base64. Constant fill bytes
// (Buffer.alloc(32, n)) are refused as placeholders (src/crypto/master-key.ts), as they must be.
import { createHash } from "node:crypto";

/** The same key for the same label, a different one for each label. */
export function testMasterKey(label: string | number): string {
  return createHash("sha256").update(`bulwark test master key ${label}`).digest("base64");
}
