// Algorithm lists and lines as sshd assembles and reads them; expected values printed by `sshd -T` (OpenSSH 9.2p1).
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULTS, EVALUATED } from "./keywords.ts";
import { configLines } from "./lexer.ts";
import { assembleAlgorithmList, parseValue } from "./values.ts";

const CIPHERS = EVALUATED["ciphers"] as NonNullable<(typeof EVALUATED)[string]>;
const assemble = (value: string): string | undefined => assembleAlgorithmList(value, DEFAULTS["ciphers"] as string, "cipher")?.join(",");

test("names after an empty entry are not validated, then assembled as patterns", () => {
  assert.deepEqual(parseValue("Ciphers", CIPHERS, ["aes128-ctr,,bogus"]), { value: "aes128-ctr,,bogus" });
  assert.ok("error" in parseValue("Ciphers", CIPHERS, ["bogus,,aes128-ctr"]));
  assert.ok("error" in parseValue("Ciphers", CIPHERS, ["+"]));
  assert.equal(assemble("aes128-ctr,,3des-cbc"), "aes128-ctr,3des-cbc");
  assert.equal(assemble("aes128-ctr,,aes128-ctr,3des-cbc"), "aes128-ctr,3des-cbc");
  assert.equal(assemble("aes128-ctr,,aes*"), "aes128-ctr,aes128-cbc,aes192-cbc,aes256-cbc,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com");
  assert.equal(assemble("+aes128-cbc,,3des-cbc"), `${DEFAULTS["ciphers"]},aes128-cbc`);
  assert.equal(assemble("^aes128-cbc,,3des-cbc"), `aes128-cbc,3des-cbc,${DEFAULTS["ciphers"]}`);
  assert.equal(assemble(",bogus"), undefined);
  assert.equal(assemble("aes128-ctr,,!aes*"), undefined);
});

test("a NUL byte cuts its line and glues the next one on, after leading blanks are dropped", () => {
  assert.deepEqual(configLines("AcceptEnv A\0x\n  PermitRootLogin no\nPort 22\n"), ["AcceptEnv APermitRootLogin no", "Port 22", ""]);
  assert.deepEqual(configLines("a\nb"), ["a", "b"]);
});
