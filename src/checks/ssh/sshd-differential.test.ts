// Differential property test: random configurations built from sshd's own vocabulary are evaluated by
// us and by the real `sshd -T` (and `-T -C`); both must reject, or both accept with the same values.
// Skips LOUDLY without openssh-server (CI installs it).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import fc from "fast-check";
import { differences, ensurePrivsepDir, findSshd, runSshdTest } from "./cross-check.ts";
import { SshConfigError } from "./errors.ts";
import { evaluate } from "./evaluate.ts";
import type { MatchContext } from "./match.ts";
import { loadSshdConfig } from "./parser.ts";

const sshd = findSshd();
const usable = sshd !== null && ensurePrivsepDir();
if (!usable) process.stderr.write("\n*** SKIPPING the sshd -T differential test: sshd (openssh-server) is not installed ***\n\n");
const dir = mkdtempSync(join(tmpdir(), "bulwark-ssh-diff-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const VALUE_LINES: Array<[string, string[]]> = [
  ["PermitRootLogin", ["yes", "no", "prohibit-password", "without-password", "forced-commands-only", "YES", "maybe"]],
  ["PasswordAuthentication", ["yes", "no", "No"]],
  ["ChallengeResponseAuthentication", ["yes", "no"]],
  ["KbdInteractiveAuthentication", ["yes", "no"]],
  ["MaxAuthTries", ["3", "10", "x", "3 4"]],
  ["X11Forwarding", ["yes", "no"]],
  ["PermitEmptyPasswords", ["yes", "no"]],
  ["UsePAM", ["yes", "no"]],
  ["Ciphers", ["+aes128-cbc", "-aes*", "^3des-cbc", "aes256-ctr,aes128-ctr", "rot13"]],
  ["MACs", ["+hmac-md5", "-*sha1*", "hmac-sha2-256"]],
  ["KexAlgorithms", ["+diffie-hellman-group1-sha1", "-ecdh*", "curve25519-sha256"]],
  ["LoginGraceTime", ["30", "1m", "2h30m"]],
  ["Port", ["22", "2222"]],
  ["Protocol", ["2"]],
];
const MATCHES = ["Match User root", "Match User *,!root", "Match User !root", "Match Address 10.0.0.0/8", "Match Address 10.0.0.0/8,!10.9.0.0/16", "Match Host *.example.org", "Match All", "Match User bob Address 192.0.2.0/24", "match user=root", "Match Address 2001:db8::/32"];
const CONTEXTS: MatchContext[] = [
  { user: "root", host: "a.example.org", addr: "10.1.2.3" },
  { user: "bob", host: "h", addr: "192.0.2.7" },
  { user: "alice", host: "h", addr: "2001:db8::5" },
];

const line = fc.oneof(
  fc
    .tuple(fc.constantFrom(...VALUE_LINES), fc.nat(), fc.constantFrom(" ", "=", " = ", "\t"), fc.constantFrom("as-is", "upper", "lower"))
    .map(([[k, vs], i, sep, kase]) => `${kase === "upper" ? k.toUpperCase() : kase === "lower" ? k.toLowerCase() : k}${sep}${vs[i % vs.length]}`),
  fc.constantFrom(...MATCHES),
  fc.constantFrom("# comment", "", "  "),
);

test("random configurations: same verdict and values as sshd -T", { skip: usable ? false : "sshd not installed", timeout: 300_000 }, async () => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(line, { maxLength: 12 }), fc.constantFrom(undefined, ...CONTEXTS), async (lines, ctx) => {
      const path = join(dir, `c${n++}.conf`);
      writeFileSync(path, `${lines.join("\n")}\n`);
      const theirs = await runSshdTest(sshd as string, path, ctx);
      let ours: Record<string, string> | SshConfigError;
      try {
        ours = evaluate(loadSshdConfig(path), ctx === undefined ? {} : { match: ctx }).effective;
      } catch (error) {
        if (!(error instanceof SshConfigError)) throw error;
        ours = error;
      }
      if (!theirs.ok) assert.ok(ours instanceof SshConfigError, `sshd rejected, we accepted: ${theirs.message}`);
      else {
        assert.ok(!(ours instanceof SshConfigError), `we rejected, sshd accepted: ${ours instanceof SshConfigError ? ours.message : ""}`);
        assert.deepEqual(differences(ours, theirs.values), []);
      }
    }),
    { numRuns: 200 },
  );
});
