import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { AuthLogOptionError } from "./errors.ts";
import { hostAddresses, IgnoreList } from "./ignore-list.ts";
import { renderNft } from "./nft.ts";

test("renders IPv4 and IPv6 offenders in separate sets and lists host names as comments", () => {
  const text = renderNft(["203.0.113.9", "2001:db8::1", "198.51.100.2", "203.0.113.9", "scanner.example.net"]);
  assert.match(text, /set authlog_offenders_v4 \{\n {4}type ipv4_addr\n {4}elements = \{\n {6}198\.51\.100\.2,\n {6}203\.0\.113\.9\n {4}\}/);
  assert.match(text, /set authlog_offenders_v6 \{\n {4}type ipv6_addr\n {4}elements = \{\n {6}2001:db8::1\n {4}\}/);
  assert.match(text, /^# not an address, resolve and block by hand: scanner\.example\.net$/m);
  assert.equal(text.match(/203\.0\.113\.9/g)?.length, 1);
});

test("an empty offender list gives sets without an elements line (nft rejects empty braces)", () => {
  const text = renderNft([]);
  assert.doesNotMatch(text, /elements/);
  assert.match(text, /table inet bulwark \{/);
});

// ASVS 16.4.1: a forged sshd line (`logger -t 'sshd[1]'`) naming loopback must not cut the host off from itself.
test("keeps loopback and --ignore'd addresses out of the sets, listing each as a comment with the reason", () => {
  const text = renderNft(["203.0.113.9", "127.0.0.1", "127.8.0.1", "::1", "10.1.2.3", "2001:db8::5", "2001:db9::5"], { ignore: new IgnoreList(["10.0.0.0/8", "2001:db8::/32"]) });
  assert.match(text, /^# SSH offenders found by bulwark check authlog: 1 IPv4, 1 IPv6\.$/m);
  assert.match(text, /elements = \{\n {6}203\.0\.113\.9\n {4}\}/);
  assert.match(text, /elements = \{\n {6}2001:db9::5\n {4}\}/);
  for (const line of ["# not blocked (loopback, this host itself): 127.0.0.1", "# not blocked (loopback, this host itself): 127.8.0.1", "# not blocked (loopback, this host itself): ::1", "# not blocked (--ignore 10.0.0.0/8): 10.1.2.3", "# not blocked (--ignore 2001:db8::/32): 2001:db8::5"]) {
    assert.ok(text.split("\n").includes(line), line);
  }
  assert.doesNotMatch(renderNft(["127.0.0.1"]), /elements/, "loopback is left out without any --ignore");
});

// ASVS 16.4.1: a local user's forged lines naming the server's public address must not have it block itself (as
// fail2ban's ignoreself); a /64 holding one of its addresses is left out too.
test("attack: forged failures from this host's own interface addresses keep them (and a /64 holding one) out of the sets (was: only loopback was kept out)", () => {
  const own = hostAddresses({
    lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", mac: "00:00:00:00:00:00", internal: true, cidr: "127.0.0.1/8" }],
    eth0: [
      { address: "192.0.2.2", netmask: "255.255.255.0", family: "IPv4", mac: "02:fc:00:00:00:01", internal: false, cidr: "192.0.2.2/24" },
      { address: "2001:db8:5:6::2", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "02:fc:00:00:00:01", internal: false, cidr: "2001:db8:5:6::2/64", scopeid: 0 },
    ],
  });
  assert.deepEqual(own, [{ address: "192.0.2.2", name: "eth0" }, { address: "2001:db8:5:6::2", name: "eth0" }]);
  const text = renderNft(["192.0.2.2", "192.0.2.3", "2001:db8:5:6::2", "2001:db8:5:6::/64", "2001:db8:5:7::/64"], { ignore: new IgnoreList([], own) });
  const lines = text.split("\n");
  for (const line of ["# not blocked (this host's own address (eth0)): 192.0.2.2", "# not blocked (this host's own address (eth0)): 2001:db8:5:6::2", "# not blocked (this host's own address (eth0)): 2001:db8:5:6::/64"]) {
    assert.ok(lines.includes(line), `missing: ${line}\n${text}`);
  }
  assert.match(text, /elements = \{\n {6}192\.0\.2\.3\n {4}\}/, "a neighbour on the same /24 is still blocked");
  assert.match(text, /2001:db8:5:7::\/64/);
  assert.doesNotMatch(text, /^ +(192\.0\.2\.2|2001:db8:5:6::2),?$/m);
});

test("--ignore takes IPv4 and IPv6 addresses and CIDR ranges, and refuses anything else", () => {
  const ignore = new IgnoreList(["192.0.2.7", "198.51.100.0/24", "2001:db8::1"]);
  assert.equal(ignore.reason("192.0.2.7"), "--ignore 192.0.2.7");
  assert.equal(ignore.reason("192.0.2.8"), null);
  assert.equal(ignore.reason("198.51.100.200"), "--ignore 198.51.100.0/24");
  assert.equal(ignore.reason("2001:db8::1"), "--ignore 2001:db8::1");
  assert.equal(ignore.reason("scanner.example.net"), null);
  for (const bad of ["", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8/8", "10.0.0.256", "example.net", "10.0.0.0/-1"]) {
    assert.throws(() => new IgnoreList([bad]), AuthLogOptionError, bad);
  }
});

const nft = spawnSync("nft", ["--version"], { encoding: "utf8" });
const haveNft = !nft.error && nft.status === 0;
if (!haveNft) process.stderr.write("\n*** SKIPPED nft syntax check: nft (package nftables) is not installed ***\n\n");

test("nft accepts the output in check mode", { skip: haveNft ? false : "nft is not installed" }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-nft-"));
  try {
    for (const list of [["203.0.113.9", "2001:db8::1", "10.0.0.1"], [], ["127.0.0.1", "::1"]]) {
      const file = join(dir, "offenders.nft");
      writeFileSync(file, renderNft(list));
      const r = spawnSync("nft", ["-c", "-f", file], { encoding: "utf8" });
      if (/Operation not permitted|cache initialization failed/i.test(r.stderr)) {
        t.skip("nft -c needs CAP_NET_ADMIN here");
        return;
      }
      assert.equal(r.status, 0, r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Red team 38, findings 6 and 7. A link-local offender carries its zone: an ipv6_addr set cannot hold the interface, and
// without it the address would be blocked on every link. A NAT64 client is one address (no /64): its IPv6 form, what
// the translated packets carry on this host, goes into the _v6 set.
test("a link-local offender is listed, not blocked on every link; a NAT64 client's IPv6 address goes into the _v6 set", () => {
  const text = renderNft(["fe80::bad:1%eth0", "64:ff9b::cb00:7142"]);
  assert.match(text, /^# not blocked \(link-local, on interface eth0 only: block with iifname by hand\): fe80::bad:1%eth0$/m);
  assert.doesNotMatch(text, /^ {6}fe80/m);
  assert.match(text, /set authlog_offenders_v6 \{\n {4}type ipv6_addr\n {4}elements = \{\n {6}64:ff9b::cb00:7142\n {4}\}/);
  assert.doesNotMatch(text, /64:ff9b::\/64/);
});

// Red team 38b, finding 4: the analyzer counts a 64:ff9b::/96 address and the IPv4 address it embeds as one client.
test("a 64:ff9b::/96 offender blocks its IPv4 client too, unless that IPv4 address is kept out; a 64:ff9b:1::/48 one only itself", () => {
  const text = renderNft(["64:ff9b::cb00:7142", "64:ff9b::a01:203", "64:ff9b::7f00:1", "64:ff9b:1:cb00:71:4200::"], { ignore: new IgnoreList(["10.0.0.0/8"]) });
  assert.match(text, /set authlog_offenders_v4 \{\n {4}type ipv4_addr\n {4}elements = \{\n {6}203\.0\.113\.66\n {4}\}/);
  assert.match(text, /set authlog_offenders_v6 \{\n {4}type ipv6_addr\n {4}elements = \{\n {6}64:ff9b:1:cb00:71:4200::,\n {6}64:ff9b::cb00:7142\n {4}\}/);
  const lines = text.split("\n");
  for (const line of ["# not blocked (its IPv4 client 10.1.2.3: --ignore 10.0.0.0/8): 64:ff9b::a01:203", "# not blocked (its IPv4 client 127.0.0.1: loopback, this host itself): 64:ff9b::7f00:1"]) {
    assert.ok(lines.includes(line), `missing: ${line}\n${text}`);
  }
  assert.match(text, /^# SSH offenders found by bulwark check authlog: 1 IPv4, 2 IPv6\.$/m);
});
