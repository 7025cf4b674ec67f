import assert from "node:assert/strict";
import { isIPv6 } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { addressFamily, canonicalIPv6, clientKeyOf, ipv6GroupOf, isIPv6Text, isTranslatedIPv4, scanAddress } from "./address.ts";

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

// ASVS 16.3.1. Red team 38, finding 6: the zone was dropped, so fe80::1 on eth0 and on eth1 were one client.
test("a link-local address keeps its zone (two links, two hosts); any other address drops it", () => {
  assert.deepEqual(scanAddress("fe80::BAD:1%eth0 port 22", 0), { address: "fe80::bad:1%eth0", end: 16 });
  assert.deepEqual(scanAddress("febf::1%2 port", 0), { address: "febf::1%2", end: 9 });
  assert.deepEqual(scanAddress("2001:db8::9%eth0 port", 0), { address: "2001:db8::9", end: 16 });
  assert.deepEqual(scanAddress("fe80::1 port", 0), { address: "fe80::1", end: 7 });
});

// Red team 38, findings 6 and 7: a /64 that is no one host's is not counted as one.
test("ipv6GroupOf: the /64 of an ordinary address; none for link-local or NAT64 addresses", () => {
  assert.equal(ipv6GroupOf("2001:db8:1:2::7"), "2001:db8:1:2::/64");
  assert.equal(ipv6GroupOf("fec0::1"), "fec0::/64", "site-local (deprecated) is not link-local");
  for (const a of ["fe80::1%eth0", "fe80::1", "febf:ffff::1%eth1", "64:ff9b::cb00:7142", "64:ff9b:1::cb00:7142", "64:ff9b:1:ab00:7142::"]) assert.equal(ipv6GroupOf(a), null, a);
  assert.equal(ipv6GroupOf("64:ff9b:0:1::cb00:7142"), "64:ff9b:0:1::/64", "64:ff9b::/32 outside the /96 and the local-use /48");
  assert.equal(isTranslatedIPv4(canonicalIPv6("64:ff9b::203.0.113.66")), true);
});

// Red team 38b, finding 4: one IPv4 client, natively and through the translator, was two counts.
test("clientKeyOf: a 64:ff9b::/96 address is the IPv4 client it embeds; any other address (the local-use /48 too) is itself", () => {
  assert.equal(clientKeyOf(canonicalIPv6("64:ff9b::203.0.113.66")), "203.0.113.66");
  assert.equal(clientKeyOf("64:ff9b::c000:221"), "192.0.2.33");
  assert.equal(clientKeyOf("64:ff9b::1"), "0.0.0.1");
  for (const a of ["203.0.113.66", "2001:db8::1", "64:ff9b:1::cb00:7142", "64:ff9b:1:cb00:71:4200::", "64:ff9b::1:0:0:1", "64:ff9b::/64", "scanner.example.net", "fe80::1%eth0"]) {
    assert.equal(clientKeyOf(a), a, a);
  }
  fc.assert(
    fc.property(fc.ipV4(), (v4) => clientKeyOf(canonicalIPv6(`64:ff9b::${v4}`)) === v4),
    { numRuns: 1000 },
  );
});
