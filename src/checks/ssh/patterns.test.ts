// Addresses as sshd's addr_pton()/addr_pton_cidr() read them (glibc getaddrinfo with AI_NUMERICHOST, which
// takes inet_aton(3) forms); each expectation was checked with `sshd -T -C addr=10.0.0.1` (OpenSSH 9.2p1).
import assert from "node:assert/strict";
import { test } from "node:test";
import { addressBytes, addressMatchList, matchPatternList, parseCidr, patternListTooLong } from "./patterns.ts";

test("IPv4 addresses in every inet_aton form are the same address", () => {
  for (const text of ["10.0.0.1", "012.0.0.1", "10.1", "10.0.1", "0x0a000001", "167772161", "0xa.0.0.1"]) {
    assert.deepEqual(addressBytes(text), Uint8Array.from([10, 0, 0, 1]), text);
  }
  for (const text of ["09.0.0.1", "10..1", "10.0.0.1.", "256.0.0.1", "10.0.0.256", "4294967296", "10.0.0.1 x", "1.2.3.4.5"]) {
    assert.equal(addressBytes(text), null, text);
  }
});

test("a mask longer than the family is inconsistent; above 128 or not digits the entry is a pattern", () => {
  assert.equal(parseCidr("10.0.0.0/33"), "inconsistent");
  assert.equal(parseCidr("10.0.0.1/129"), null);
  assert.equal(parseCidr("10.0.0.0/+8"), null);
  assert.deepEqual(parseCidr("10.0.0.0/0008"), { bytes: Uint8Array.from([10, 0, 0, 0]), bits: 8 });
});

test("an empty entry makes the whole address list invalid", () => {
  for (const list of ["10.0.0.0/8,,192.0.2.1", "10.0.0.0/8,", ",10.0.0.0/8", "!"]) assert.equal(addressMatchList(null, list), -2, list);
  assert.equal(addressMatchList("10.0.0.1", "012.0.0.1"), 1);
});

// match.c match_pattern_list() copies each entry into a 1,024-byte buffer and answers 0 for the whole list at an
// entry of 1,023 characters or more (checked with sshd -T -C user=root, OpenSSH 9.2p1: "Match User root,!<1,100 x>"
// is never applied).
test("a list with an entry of 1,023 characters or more never matches; a negated entry read before it still refuses", () => {
  assert.equal(matchPatternList("root", `root,!${"x".repeat(1022)}`, false), 1);
  assert.equal(matchPatternList("root", `root,!${"x".repeat(1023)}`, false), 0);
  assert.equal(matchPatternList("root", `root,${"x".repeat(1100)}`, false), 0);
  assert.equal(matchPatternList("root", `!root,${"x".repeat(1100)}`, false), -1);
  assert.equal(patternListTooLong(`a,!${"x".repeat(1022)}`), false);
  assert.equal(patternListTooLong(`a,!${"x".repeat(1023)}`), true);
});
