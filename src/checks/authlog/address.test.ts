import assert from "node:assert/strict";
import { isIPv6 } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { addressFamily, canonicalIPv6, isIPv6Text, scanAddress } from "./address.ts";

test("scans IPv4, IPv6, IPv4-mapped IPv6 and host names, stopping at punctuation", () => {
  assert.deepEqual(scanAddress("x 203.0.113.9 port", 2), { address: "203.0.113.9", end: 13 });
  assert.deepEqual(scanAddress("from 127.0.0.1: 14:", 5), { address: "127.0.0.1", end: 14 });
  assert.deepEqual(scanAddress("::ffff:1.2.3.4 x", 0), { address: "1.2.3.4", end: 14 });
  assert.deepEqual(scanAddress("2001:DB8::1: 11:", 0), { address: "2001:db8::1", end: 11 });
  assert.deepEqual(scanAddress("Example.COM port", 0), { address: "example.com", end: 11 });
  assert.deepEqual(scanAddress("192.030.0.6", 0), { address: "192.30.0.6", end: 11 });
});

test("refuses tokens that are not addresses", () => {
  for (const t of ["", "[preauth]", "256.1.1.1", "1.2.3", "1:2:3:4:5:6:7:8:9", "1::2::3", "-x", "host-", "12345"]) assert.equal(scanAddress(t, 0), null, t);
});

test("writes IPv6 in RFC 5952 canonical form so one address is one key", () => {
  assert.equal(canonicalIPv6("2001:db8:0::1"), "2001:db8::1");
  assert.equal(canonicalIPv6("2001:0db8:0000:0000:0001:0000:0000:0001"), "2001:db8::1:0:0:1");
  assert.equal(canonicalIPv6("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  assert.equal(canonicalIPv6("::"), "::");
  assert.equal(canonicalIPv6("::1"), "::1");
  assert.equal(canonicalIPv6("1::"), "1::");
  assert.equal(canonicalIPv6("64:ff9b::192.0.2.33"), "64:ff9b::c000:221");
});

test("agrees with node's isIPv6 on random hex-and-colon strings", () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom("0", "1", "a", "f", "F", ":", ":", ".", "9"), maxLength: 45 }), (s) => {
      assert.equal(isIPv6Text(s), isIPv6(s), s);
    }),
    { numRuns: 5000 },
  );
});

test("canonical IPv6 text is valid and stable", () => {
  fc.assert(
    fc.property(fc.ipV6(), (a) => {
      const c = canonicalIPv6(a.toLowerCase());
      assert.ok(isIPv6(c), `${a} -> ${c}`);
      assert.equal(canonicalIPv6(c), c);
      assert.equal(addressFamily(c), 6);
    }),
    { numRuns: 2000 },
  );
});
