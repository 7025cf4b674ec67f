// The address flood control counts a client under: IPv4 as it is, IPv6 as its /64 in one spelling, IPv4-mapped
// IPv6 as the IPv4 address. Known answers written by hand from RFC 4291 §2.2 / §2.5.5.2 and RFC 5952 §4.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ipBucket, ipSite } from "./ip-bucket.ts";

describe("ipBucket", () => {
  test("keeps an IPv4 address as it is", () => {
    assert.equal(ipBucket("198.51.100.7"), "198.51.100.7");
    assert.equal(ipBucket("10.0.0.1"), "10.0.0.1");
  });

  test("attack: every address of one /64 — any spelling, any interface id — is one client", () => {
    const spellings = [
      "2001:db8:1:2::1", "2001:DB8:1:2::1", "2001:0db8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2:ffff:ffff:ffff:ffff",
      "2001:db8:1:2:a:b:c:d", "2001:db8:1:2::", "2001:db8:1:2:0:0:1.2.3.4", "2001:db8:1:2::9%eth0",
    ];
    for (const ip of spellings) assert.equal(ipBucket(ip), "2001:db8:1:2::/64", ip);
  });

  test("writes the prefix in RFC 5952's form: lower case, no leading zeros, the longest run of zero groups as ::", () => {
    assert.equal(ipBucket("2001:db8::1"), "2001:db8::/64");
    assert.equal(ipBucket("2a00:0:0:5::1"), "2a00:0:0:5::/64");
    assert.equal(ipBucket("::1"), "::/64");
    assert.equal(ipBucket("fe80::1%eth0"), "fe80::/64", "a zone id names an interface of ours, not the client");
    assert.equal(ipBucket("2001:db8:0:0:1::1"), "2001:db8::/64");
  });

  test("attack: an IPv4 client seen through a dual-stack socket (::ffff:a.b.c.d) is counted as a.b.c.d", () => {
    assert.equal(ipBucket("::ffff:198.51.100.7"), "198.51.100.7");
    assert.equal(ipBucket("::FFFF:198.51.100.7"), "198.51.100.7");
    assert.equal(ipBucket("::ffff:c633:6407"), "198.51.100.7");
    assert.equal(ipBucket("0:0:0:0:0:ffff:c633:6407"), "198.51.100.7");
  });

  test("neighbouring /64s stay apart, and text that is no address is kept as it is", () => {
    assert.notEqual(ipBucket("2001:db8:1:2::1"), ipBucket("2001:db8:1:3::1"));
    assert.equal(ipBucket("not an address"), "not an address");
    assert.equal(ipBucket("unknown"), "unknown");
  });
});

describe("ipSite", () => {
  test("an IPv6 client by its /48, so one subscriber's many /64s are one site; IPv4 (mapped too) as itself; ports dropped", () => {
    assert.equal(ipSite("2001:db8:ab:1::1"), "2001:db8:ab::/48");
    assert.equal(ipSite("2001:db8:ab:ff:1:2:3:4"), "2001:db8:ab::/48");
    assert.equal(ipSite("[2001:db8:ab:7::9]:443"), "2001:db8:ab::/48");
    assert.notEqual(ipSite("2001:db8:ab::1"), ipSite("2001:db8:ac::1"));
    assert.equal(ipSite("::ffff:198.51.100.7"), "198.51.100.7");
    assert.equal(ipSite("198.51.100.7:8080"), "198.51.100.7");
    assert.equal(ipSite("not an address"), "not an address");
  });

  test("attack: IPv4 clients behind a NAT64/SIIT translator (64:ff9b::/96) are each the IPv4 address embedded, for flood control too", () => {
    assert.equal(ipSite("64:ff9b::c000:201"), "192.0.2.1");
    assert.equal(ipBucket("64:ff9b::cb00:7109"), "203.0.113.9");
    assert.equal(ipBucket("64:ff9b::203.0.113.9"), "203.0.113.9");
    assert.notEqual(ipSite("64:ff9b::c000:201"), ipSite("64:ff9b::cb00:7109"));
    assert.equal(ipSite("64:ff9b:1::c000:201"), "192.0.2.1", "the local-use prefix (RFC 8215) as a /96");
    assert.equal(ipBucket("64:ff9b:0:0:1::1"), "64:ff9b::/64", "outside the /96: an ordinary IPv6 client");
  });

  test("attack: an IPv4 host's own 6to4 and Teredo space is that IPv4 host, for flood control and the gate's sites", () => {
    // 6to4: 2002:V4::/48 belongs to whoever holds V4 (RFC 3056); every /64 in it is still V4.
    assert.equal(ipBucket("2002:cb00:7109:1::1"), "203.0.113.9");
    assert.equal(ipBucket("2002:cb00:7109:ffff:1:2:3:4"), "203.0.113.9");
    assert.equal(ipSite("2002:cb00:7109::9"), "203.0.113.9");
    // Teredo: the client's address inverted in the last 32 bits (RFC 4380); the server, flags and port change nothing.
    const client = "34ff:8ef6"; // ~203.0.113.9
    assert.equal(ipBucket(`2001:0:4136:e378:8000:63bf:${client}`), "203.0.113.9");
    assert.equal(ipBucket(`2001:0:c000:201:0:1:${client}`), "203.0.113.9");
    assert.equal(ipSite(`2001:0:aaaa:bbbb::${client}`), "203.0.113.9");
    // Neighbours are not folded in: 2001:db8::/32 and 2001:1::/32 are ordinary IPv6 space.
    assert.equal(ipBucket("2001:db8:0:1::9"), "2001:db8:0:1::/64");
    assert.equal(ipBucket("2001:1:2:3::9"), "2001:1:2:3::/64");
  });
});
