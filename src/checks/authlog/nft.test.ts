import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
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

const nft = spawnSync("nft", ["--version"], { encoding: "utf8" });
const haveNft = !nft.error && nft.status === 0;
if (!haveNft) process.stderr.write("\n*** SKIPPED nft syntax check: nft (package nftables) is not installed ***\n\n");

test("nft accepts the output in check mode", { skip: haveNft ? false : "nft is not installed" }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), "bulwark-nft-"));
  try {
    for (const list of [["203.0.113.9", "2001:db8::1", "10.0.0.1"], []]) {
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
