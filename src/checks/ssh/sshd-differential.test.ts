// Differential property test: random configurations built from sshd's own vocabulary (every option we
// evaluate, valid and invalid values, quoting, "Keyword=value", case, comments, Match blocks with every
// attribute and negation, Include globs over several files) are evaluated by us and by the real
// `sshd -T` (and `-T -C` for a connection); both must reject, or both accept with the same values.
// Skips LOUDLY without openssh-server (CI installs it). BULWARK_SSH_DIFF_RUNS raises the run count.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import fc from "fast-check";
import { differences, ensurePrivsepDir, findSshd, runSshdTest, sshdTestContext, systemGroups } from "./cross-check.ts";
import { SshConfigError } from "./errors.ts";
import { evaluate } from "./evaluate.ts";
import { EVALUATED, type ValueKind } from "./keywords.ts";
import type { MatchContext } from "./match.ts";
import { loadSshdConfig } from "./parser.ts";

const sshd = findSshd();
const usable = sshd !== null && ensurePrivsepDir();
if (!usable) process.stderr.write("\n*** SKIPPING the sshd -T differential test: sshd (openssh-server) is not installed ***\n\n");
const dir = mkdtempSync(join(tmpdir(), "bulwark-ssh-diff-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const RUNS = Number(process.env["BULWARK_SSH_DIFF_RUNS"] ?? 400);

/** Values to try for each kind of option: accepted ones in several spellings, and some sshd refuses. */
function valuesFor(kind: ValueKind): string[] {
  switch (kind.type) {
    case "choice": {
      const words = Object.keys(kind.words);
      return [...words, ...words.map((w) => w.toUpperCase()), "maybe"];
    }
    case "int":
      return ["0", "3", "10", "+5", "007", "2147483647", "2147483648", "-1", "-0", "x", "3 4", '" 5"', "0x10", `${"0".repeat(30)}3`];
    case "time":
      return ["0", "30", "1m", "2h30m", "1M", "1w2d", "10x", "99999999999", "-5", "+30", "1m+5", '" 30"', `${"0".repeat(70)}1m`];
    case "loglevel":
      return ["info", "DEBUG", "debug1", "debug2", "verbose", "QUIET", "silent", "fatal", "bogus", "constructor"];
    case "path":
      return ["none", "/etc/issue.net", '"/etc/my banner"', "%h/jail", "'/srv/q'", "NONE"];
    case "file":
      return ["none", "NONE", "/etc/issue.net", '"/etc/my banner"', "rel/banner", "~/banner", "~", "./x"];
    case "userfile":
      return ["none", "NONE", ".ssh/principals", "/etc/ssh/principals/%u", "~/p", "~", '"/etc/my p"', '""'];
    case "userfiles":
      // A lone "# x" is read and sets nothing; an empty argument is refused.
      return [".ssh/authorized_keys", ".ssh/authorized_keys /etc/ssh/keys/%u", "none", "NONE /etc/k", "~/k ~", '"/etc/a b" c', 'a ""', "# x"];
    case "command":
      // The rest of the line as written; it must start with "/" (a quote before it does not) or be "none".
      return ["none", "NONE", "none", "/usr/local/bin/keys %u %f", "/usr/bin/keys", "keys", '"/usr/bin/k"', "/x\ty  z"];
    case "user":
      return ["nobody", "root", "NONE", '"a b"', '""', "# x"];
    case "authmethods":
      // Valid lists in several shapes, lists sshd refuses at load (a disabled method), and bad spellings.
      return [
        "any", "publickey", "publickey,password", "publickey,keyboard-interactive:pam publickey,password", "password", "keyboard-interactive",
        "hostbased", "gssapi-with-mic", "gssapi-keyex", "none", "publickey:x", "ANY", "PublicKey", "frob", "any publickey", "publickey any",
        "any any", "publickey,,password", '"publickey,password"',
      ];
    case "algorithms":
      switch (kind.family) {
        case "cipher":
          return ["+aes128-cbc", "-aes*", "^3des-cbc", "aes256-ctr,aes128-ctr", "rot13", "-*", "+aes128-cbc,3des-cbc", "-chacha20-poly1305@openssh.com", "aes128-ctr,aes128-ctr", "-aes*,!aes128-ctr"];
        case "mac":
          return ["+hmac-md5", "-*sha1*", "hmac-sha2-256", "^hmac-sha1-96", "-umac*,hmac-sha1", "hmac-md4"];
        case "kex":
          return ["+diffie-hellman-group1-sha1", "-ecdh*", "curve25519-sha256", "^diffie-hellman-group14-sha1", "-*", "sntrup761x25519-sha512@openssh.com,curve25519-sha256"];
        case "key":
          // Short names ("RSA") pass the line's check but name no algorithm; "!" passes it and stops the assembly.
          return [
            "+ssh-rsa", "-ssh-ed25519*", "^ssh-dss", "ssh-ed25519,rsa-sha2-512", "RSA", "+RSA", "rsa,ssh-ed25519", "ssh-*", "!ssh-rsa",
            "ecdsa-cert", "-*,!rsa-sha2-256", "ssh-ed25519,,bogus", "bogus", "+ssh-rsa-cert-v01@openssh.com", "+,ssh-rsa",
          ];
        case "casig":
          return ["+ssh-rsa", "ssh-rsa-cert-v01@openssh.com", "ssh-*", "-rsa*", "ssh-ed25519", "DSA", "bogus", "*-cert-v01@openssh.com"];
      }
  }
}

const OPTIONS: Array<[string, string[]]> = [
  ...Object.entries(EVALUATED).map(([k, kind]): [string, string[]] => [k, valuesFor(kind)]),
  // Aliases, and keywords we parse but do not evaluate (they must not disturb anything else).
  ["ChallengeResponseAuthentication", ["yes", "no"]],
  ["SKeyAuthentication", ["yes", "no"]],
  ["KeepAlive", ["yes", "no"]],
  ["GSSAPICleanupCreds", ["yes", "no"]],
  ["Port", ["22", "2222", "0", "+22", "65536", "x", "22 23", `${"0".repeat(30)}22`]],
  ["Protocol", ["2"]],
  ["AllowUsers", ["alice bob", "root@10.0.0.0/8"]],
  ["ForceCommand", ["/bin/true", "internal-sftp -d /x"]],
  ["Subsystem", ["sftp /usr/lib/openssh/sftp-server"]],
];
// Spellings of a keyword: sshd compares keywords case-insensitively, and a quoted keyword is allowed.
const KEYWORD_STYLE = ["as-is", "upper", "mixed", "quoted"] as const;
const SEPARATORS = [" ", "=", " = ", "\t", "  =\t"];

const optionLine = fc
  .tuple(fc.constantFrom(...OPTIONS), fc.nat(), fc.constantFrom(...SEPARATORS), fc.constantFrom(...KEYWORD_STYLE), fc.constantFrom("", "", " # trailing", "  ", '"'))
  .map(([[k, vs], i, sep, style, tail]) => {
    const key = style === "upper" ? k.toUpperCase() : style === "mixed" ? k.replace(/[a-z]/g, (c, n: number) => (n % 2 ? c.toUpperCase() : c)) : style === "quoted" ? `"${k}"` : k;
    return `${key}${sep}${vs[i % vs.length]}${tail}`;
  });

const CRITERIA: Array<[string, string[]]> = [
  ["User", ["root", "*,!root", "!root", "ro?t", "alice,bob", "ROOT"]],
  ["Group", ["root", "*,!root", "nogroup", "r*"]],
  ["Host", ["*.example.org", "A.EXAMPLE.ORG", "h", "!h,*"]],
  ["Address", ["10.0.0.0/8", "10.0.0.0/8,!10.9.0.0/16", "192.0.2.*", "2001:db8::/32", "10.0.0.1/8", "!10.1.2.3,*", "::1"]],
  ["LocalAddress", ["192.0.2.10", "192.0.2.0/24", "!192.0.2.10,*"]],
  ["LocalPort", ["22", "2222", "0", "x", `${"0".repeat(30)}2222`]],
  ["RDomain", ["rd1", "*"]],
];
const criterion = fc.tuple(fc.constantFrom(...CRITERIA), fc.nat(), fc.constantFrom("as-is", "lower", "upper"), fc.constantFrom(" ", "=")).map(([[a, vs], i, kase, sep]) => {
  const attr = kase === "lower" ? a.toLowerCase() : kase === "upper" ? a.toUpperCase() : a;
  return `${attr}${sep}${vs[i % vs.length]}`;
});
const matchLine = fc.oneof(
  { weight: 6, arbitrary: fc.array(criterion, { minLength: 1, maxLength: 3 }).map((cs) => `Match ${cs.join(" ")}`) },
  { weight: 2, arbitrary: fc.constantFrom("Match All", "match all", "Match All # everyone") },
  { weight: 1, arbitrary: fc.constantFrom("Match", "Match User", "Match All User root", "Match Bogus x") },
);
const filler = fc.constantFrom("# comment", "", "  ", "\t# indented comment");

const INCLUDES = ["Include @DIR@/inc-a.conf", "Include @DIR@/inc-*.conf", "Include @DIR@/inc-b.conf @DIR@/inc-a.conf", "Include @DIR@/missing-*.conf", "Include sshd_config.d/*.conf"];
const plainLine = fc.oneof({ weight: 8, arbitrary: optionLine }, { weight: 2, arbitrary: matchLine }, { weight: 1, arbitrary: filler });
const mainLine = fc.oneof({ weight: 10, arbitrary: plainLine }, { weight: 1, arbitrary: fc.constantFrom(...INCLUDES) });

const CONTEXTS: MatchContext[] = [
  { user: "root", host: "a.example.org", addr: "10.1.2.3" },
  { user: "bob", host: "h", addr: "192.0.2.7" },
  { user: "alice", host: "h", addr: "2001:db8::5", laddr: "192.0.2.10", lport: 2222 },
  { user: "root", host: "H", addr: "10.9.1.1", laddr: "198.51.100.1", lport: 22, rdomain: "rd1" },
  { user: "nobody", addr: "::1" },
];

test("random configurations: same verdict and values as sshd -T", { skip: usable ? false : "sshd not installed", timeout: 900_000 }, async () => {
  let n = 0;
  let accepted = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(mainLine, { maxLength: 14 }),
      fc.array(plainLine, { maxLength: 5 }),
      fc.array(plainLine, { maxLength: 5 }),
      fc.constantFrom(undefined, ...CONTEXTS),
      async (lines, incA, incB, ctx) => {
        const caseDir = join(dir, `c${n++}`);
        mkdirSync(caseDir);
        const path = join(caseDir, "sshd_config");
        writeFileSync(path, `${lines.join("\n").replaceAll("@DIR@", caseDir)}\n`);
        writeFileSync(join(caseDir, "inc-a.conf"), `${incA.join("\n")}\n`);
        writeFileSync(join(caseDir, "inc-b.conf"), `${incB.join("\n")}\n`);
        let ours: Record<string, string> | SshConfigError;
        let sshdCtx = ctx;
        try {
          const config = loadSshdConfig(path);
          sshdCtx = sshdTestContext(config, ctx);
          // "Match Group" needs the user's groups as sshd finds them in the system databases.
          const match = ctx === undefined ? undefined : { ...ctx, ...(ctx.user !== undefined ? { groups: systemGroups(ctx.user) } : {}) };
          ours = evaluate(config, match === undefined ? {} : { match }).effective;
        } catch (error) {
          if (!(error instanceof SshConfigError)) throw error;
          ours = error;
        }
        const theirs = await runSshdTest(sshd as string, path, sshdCtx);
        rmSync(caseDir, { recursive: true, force: true });
        if (!theirs.ok) {
          assert.ok(ours instanceof SshConfigError, `sshd rejected, we accepted: ${theirs.message}`);
          // sshd names the line it stopped at; so must we.
          const at = /line (\d+)/.exec(theirs.message);
          if (at !== null) assert.equal(ours.line, Number(at[1]), `sshd: ${theirs.message}; we: ${ours.message}`);
        } else {
          assert.ok(!(ours instanceof SshConfigError), `we rejected, sshd accepted: ${ours instanceof SshConfigError ? ours.message : ""}`);
          assert.deepEqual(differences(ours, theirs.values), []);
          accepted++;
        }
      },
    ),
    { numRuns: RUNS },
  );
  // A generator that only produced rejected files would prove little about values.
  assert.ok(accepted >= RUNS / 5, `only ${accepted} of ${RUNS} random configurations were valid`);
});
