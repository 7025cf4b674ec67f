// Unit tests of the sshd_config evaluator: tokenising, first-wins, case, aliases, Include, Match.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SshConfigError } from "./errors.ts";
import { evaluate } from "./evaluate.ts";
import { argvSplit, splitLine } from "./lexer.ts";
import { parseCriteria, parseMatchSpec, type MatchContext } from "./match.ts";
import { memorySource } from "./memory-source.ts";
import { parseSshdConfig } from "./parser.ts";
import { addressMatchList, matchPatternList } from "./patterns.ts";
import { parseServices } from "./services.ts";
import { assembleAlgorithms, parseTime } from "./values.ts";

const MAIN = "/etc/ssh/sshd_config";
function eff(text: string, match?: MatchContext, files: Record<string, string> = {}): Record<string, string> {
  const config = parseSshdConfig(text, MAIN, { source: memorySource({ [MAIN]: text, ...files }) });
  return evaluate(config, match === undefined ? {} : { match }).effective;
}

describe("lexer", () => {
  test("splits Keyword=value, Keyword = value and quoted keywords like strdelim", () => {
    assert.deepEqual(splitLine("PermitRootLogin=no"), { kind: "directive", keyword: "PermitRootLogin", rest: "no", args: ["no"] });
    assert.deepEqual(splitLine("  MaxAuthTries  =  3  "), { kind: "directive", keyword: "MaxAuthTries", rest: "3", args: ["3"] });
    assert.equal((splitLine('"Banner" "/a b"') as { keyword: string }).keyword, "Banner");
  });
  test("treats comments and blank lines as empty", () => {
    assert.equal(splitLine("   # note").kind, "empty");
    assert.equal(splitLine("\t\r").kind, "empty");
  });
  test("reports a keyword without argument and unterminated quotes", () => {
    assert.deepEqual(splitLine("PermitRootLogin"), { kind: "error", message: 'no argument after keyword "PermitRootLogin"' });
    assert.deepEqual(splitLine('Banner "/etc/issue'), { kind: "error", message: "invalid quotes" });
  });
  test("argv_split handles escapes, single quotes and trailing comments", () => {
    assert.deepEqual(argvSplit("a\\ b 'c d' \"e\\\"f\" # g"), ["a b", "c d", 'e"f']);
    assert.deepEqual(argvSplit('""'), [""]);
  });
});

describe("patterns and addresses", () => {
  test("a negated pattern alone never matches (OpenSSH match_pattern_list)", () => {
    assert.equal(matchPatternList("alice", "!root", false), 0);
    assert.equal(matchPatternList("alice", "*,!root", false), 1);
    assert.equal(matchPatternList("root", "*,!root", false), -1);
  });
  test("host patterns are case-insensitive, user patterns are not", () => {
    assert.equal(matchPatternList("WEB01.example.org", "web??.example.org", true), 1);
    assert.equal(matchPatternList("Alice", "alice", false), 0);
  });
  test("matches IPv4 and IPv6 CIDR blocks, with negation", () => {
    assert.equal(addressMatchList("10.1.2.3", "10.0.0.0/8,!10.9.0.0/16"), 1);
    assert.equal(addressMatchList("10.9.2.3", "10.0.0.0/8,!10.9.0.0/16"), -1);
    assert.equal(addressMatchList("2001:db8::1", "2001:db8::/32"), 1);
    assert.equal(addressMatchList("2001:db9::1", "2001:db8::/32"), 0);
    assert.equal(addressMatchList("192.168.1.7", "192.168.1.*"), 1);
  });
  test("refuses a network written with host bits set, as sshd does", () => {
    assert.equal(addressMatchList(null, "10.0.0.1/8"), -2);
    assert.equal(typeof parseCriteria("Address 10.0.0.1/8"), "string");
  });
});

describe("values", () => {
  test("converts times like convtime", () => {
    assert.equal(parseTime("1m30s"), 90);
    assert.equal(parseTime("2h"), 7200);
    assert.equal(parseTime("soon"), null);
    // Checked with sshd -T (OpenSSH 9.2p1): each part is read by strtol, blanks, sign and leading zeros included.
    assert.equal(parseTime("+120"), 120);
    assert.equal(parseTime("1m+5"), 65);
    assert.equal(parseTime(`${"0".repeat(80)}1m${"0".repeat(80)}5s`), 65);
    assert.equal(parseTime("1m-5"), null);
    assert.equal(parseTime("2147483648"), null);
    assert.equal(parseTime("35791395m"), null);
  });
  test("reads a long run of digits followed by a bad character in one pass", () => {
    // A pattern such as /^(\d+[smhdw]?)+$/ backtracks exponentially here: 30 digits took 50 s, "LoginGraceTime" with 40 would take days.
    // Backtracking shows here as a test that never ends; the time of 16,000 digits against 1,600 is measured in
    // bench/linear-time.ts, never asserted here.
    assert.equal(parseTime(`${"1".repeat(30)}x`), null);
    assert.equal(parseTime(`${"1".repeat(16_000)}x`), null);
  });
  test("assembles +, - and ^ algorithm lists against the defaults", () => {
    assert.equal(assembleAlgorithms("+aes128-cbc", "aes128-ctr", "cipher"), "aes128-ctr,aes128-cbc");
    assert.equal(assembleAlgorithms("^aes128-cbc", "aes128-ctr", "cipher"), "aes128-cbc,aes128-ctr");
    assert.equal(assembleAlgorithms("-*-ctr", "aes128-ctr,aes256-gcm@openssh.com", "cipher"), "aes256-gcm@openssh.com");
  });
});

describe("evaluate", () => {
  test("uses Debian 12's compiled-in defaults for an empty file", () => {
    const e = eff("");
    assert.equal(e["permitrootlogin"], "without-password");
    assert.equal(e["passwordauthentication"], "yes");
    assert.equal(e["maxauthtries"], "6");
    assert.equal(e["usepam"], "no");
  });
  test("the first value of a keyword wins, whatever its case", () => {
    const e = eff("permitrootlogin NO\nPermitRootLogin yes\n");
    assert.equal(e["permitrootlogin"], "no");
  });
  test("checks PasswordAuthentication (Lynis does not)", () => {
    assert.equal(eff("PasswordAuthentication no\n")["passwordauthentication"], "no");
  });
  test("maps aliases: ChallengeResponseAuthentication and without-password", () => {
    const e = eff("ChallengeResponseAuthentication no\nPermitRootLogin prohibit-password\n");
    assert.equal(e["kbdinteractiveauthentication"], "no");
    assert.equal(e["permitrootlogin"], "without-password");
  });
  test("honours Match blocks for a connection (Wazuh's policy does not)", () => {
    const text = "PasswordAuthentication no\nMatch Address 10.0.0.0/8\n  PasswordAuthentication yes\n";
    assert.equal(eff(text)["passwordauthentication"], "no");
    assert.equal(eff(text, { user: "u", host: "h", addr: "10.2.3.4" })["passwordauthentication"], "yes");
    assert.equal(eff(text, { user: "u", host: "h", addr: "192.0.2.1" })["passwordauthentication"], "no");
  });
  test("a Match block lasts until the next Match", () => {
    const text = "Match User bob\nX11Forwarding yes\nMatch User carol\nMaxAuthTries 2\n";
    const bob = eff(text, { user: "bob", host: "h", addr: "192.0.2.1" });
    assert.equal(bob["x11forwarding"], "yes");
    assert.equal(bob["maxauthtries"], "6");
  });
  test("Match All applies even without a connection", () => {
    assert.equal(eff("PermitRootLogin no\nMatch All\nPermitRootLogin yes\n")["permitrootlogin"], "yes");
  });
  test("Includes globs in lexical order, relative to /etc/ssh, first value wins", () => {
    const files = { "/etc/ssh/d/20.conf": "PermitRootLogin yes\n", "/etc/ssh/d/10.conf": "PermitRootLogin no\n", "/etc/ssh/d/.hidden.conf": "MaxAuthTries 1\n" };
    const e = eff("Include d/*.conf\n", undefined, files);
    assert.equal(e["permitrootlogin"], "no");
    assert.equal(e["maxauthtries"], "6");
  });
  test("an Include inside a Match belongs to that block", () => {
    const files = { "/etc/ssh/m.conf": "PasswordAuthentication no\n" };
    assert.equal(eff("Match User ops\nInclude m.conf\n", { user: "ops", host: "h", addr: "192.0.2.1" }, files)["passwordauthentication"], "no");
    assert.equal(eff("Match User ops\nInclude m.conf\n", { user: "dev", host: "h", addr: "192.0.2.1" }, files)["passwordauthentication"], "yes");
  });
  test("accepts deprecated keywords that sshd only warns about", () => {
    assert.equal(eff("Protocol 2\nUsePrivilegeSeparation sandbox\nPasswordAuthentication no\n")["passwordauthentication"], "no");
  });
});

describe("errors name the file and line", () => {
  const fails = (text: string, pattern: RegExp): void => {
    assert.throws(() => eff(text), (e: unknown) => e instanceof SshConfigError && pattern.test(e.message));
  };
  test("an unknown keyword", () => fails("\n\nFrobnicate yes\n", /sshd_config line 3: Bad configuration option: Frobnicate/));
  test("a global keyword inside a Match block", () => fails("Match User bob\nPort 2222\n", /line 2: Directive 'Port' is not allowed within a Match block/));
  test("a bad value", () => fails("PermitRootLogin maybe\n", /line 1: unsupported option "maybe"/));
  test("extra arguments", () => fails("MaxAuthTries 3 4\n", /line 1: keyword MaxAuthTries extra arguments/));
  test("a bad Match line", () => fails("Match Colour blue\n", /line 1: Bad Match condition/));
  test("an unknown cipher", () => fails("Ciphers rot13\n", /Bad SSH2 cipher spec/));
});

describe("AuthenticationMethods", () => {
  const fails = (text: string, pattern: RegExp, match?: MatchContext): void => {
    assert.throws(() => eff(text, match), (e: unknown) => e instanceof SshConfigError && pattern.test(e.message));
  };
  test("prints as sshd -T does: any by default, the first value's lists, a matching block's value for a connection", () => {
    assert.equal(eff("")["authenticationmethods"], "any");
    assert.equal(eff("AuthenticationMethods publickey,password publickey,keyboard-interactive:pam\nAuthenticationMethods password\n")["authenticationmethods"], "publickey,password publickey,keyboard-interactive:pam");
    const text = "AuthenticationMethods publickey\nMatch Address 10.0.0.0/8\n  AuthenticationMethods publickey,password\n";
    assert.equal(eff(text)["authenticationmethods"], "publickey");
    assert.equal(eff(text, { user: "u", addr: "10.1.2.3" })["authenticationmethods"], "publickey,password");
  });
  test("refuses unknown or miscased methods and an \"any\" that is not alone, naming the line", () => {
    fails("PermitRootLogin no\nAuthenticationMethods PublicKey\n", /line 2: invalid AuthenticationMethods method list/);
    fails("AuthenticationMethods publickey,,password\n", /line 1: invalid AuthenticationMethods method list/);
    fails("AuthenticationMethods any publickey\n", /line 1: "any" must appear alone/);
    fails("AuthenticationMethods publickey any\n", /line 1: "any" must appear alone/);
  });
  test("an \"any\" after a stored list stops sshd even inside a block that does not match", () => {
    fails("AuthenticationMethods publickey\nMatch User nobody\n  AuthenticationMethods any\n", /line 3: "any" must appear alone/);
  });
  test("a list of methods disabled at load time stops sshd", () => {
    fails("PasswordAuthentication no\nAuthenticationMethods password\n", /line 2: AuthenticationMethods cannot be satisfied by enabled authentication methods/);
    assert.equal(eff("PasswordAuthentication no\nAuthenticationMethods password publickey\n")["authenticationmethods"], "password publickey");
  });
  test("a block that matches the connection and sets a list makes a later \"any\" stop sshd for that connection only (its reprocess pass)", () => {
    // Checked against sshd -T -C 9.2: "reprocess config line 4" for user ops, "any" for bob.
    const text = "Match User ops\n  AuthenticationMethods publickey\nMatch Address 10.0.0.0/8\n  AuthenticationMethods any\n";
    fails(text, /line 4: "any" must appear alone/, { user: "ops", addr: "10.1.2.3" });
    fails(text, /line 4: "any" must appear alone/, { user: "ops", addr: "192.0.2.1" });
    assert.equal(eff(text, { user: "bob", addr: "10.1.2.3" })["authenticationmethods"], "any");
    assert.equal(eff(text)["authenticationmethods"], "any");
  });
});

describe("--match specification", () => {
  test("parses user, host, addr, laddr, lport and rdomain", () => {
    assert.deepEqual(parseMatchSpec("user=a,host=h,addr=1.2.3.4,laddr=5.6.7.8,lport=22,rdomain=r"), { user: "a", host: "h", addr: "1.2.3.4", laddr: "5.6.7.8", lport: 22, rdomain: "r" });
  });
  test("rejects unknown keys and bad ports with a clear message", () => {
    assert.throws(() => parseMatchSpec("colour=blue"), /knows user, host, addr/);
    assert.throws(() => parseMatchSpec("lport=99999"), /lport must be a port number/);
  });
});

// Each of these was a disagreement with sshd -T 9.2 found by sshd-differential.test.ts; they are kept
// here too so that a machine without openssh-server still checks them.
describe("sshd -T spellings found by the differential test", () => {
  const at = (text: string): Record<string, string> => evaluate(parseSshdConfig(text, MAIN, { source: memorySource({ [MAIN]: text }), cwd: "/srv/cfg", home: "/home/op" })).effective;
  test("PermitTunnel is case-sensitive; other choices are not", () => {
    assert.throws(() => at("PermitTunnel YES\n"), /line 1: unsupported option "YES"/);
    assert.equal(at("PermitTunnel point-to-point\nGatewayPorts CLIENTSPECIFIED\n")["gatewayports"], "clientspecified");
  });
  test("LogLevel QUIET and SILENT print as SILENT", () => {
    assert.equal(at("LogLevel quiet\n")["loglevel"], "SILENT");
    assert.equal(at("LogLevel Silent\n")["loglevel"], "SILENT");
  });
  test("NONE clears a path option; a relative Banner is made absolute like derelativise_path()", () => {
    assert.equal(at("ChrootDirectory NONE\n")["chrootdirectory"], "none");
    assert.equal(at("Banner NONE\n")["banner"], "none");
    assert.equal(at("Banner etc/issue\n")["banner"], "/srv/cfg/etc/issue");
    assert.equal(at("Banner ~/issue\n")["banner"], "/home/op/issue");
    assert.equal(at("Banner /etc/issue.net\n")["banner"], "/etc/issue.net");
  });
  test("integers accept leading blanks and a sign as strtonum does, and refuse negatives", () => {
    assert.equal(at('MaxAuthTries " +3"\n')["maxauthtries"], "3");
    assert.equal(at("MaxAuthTries -0\n")["maxauthtries"], "0");
    assert.equal(at(`MaxAuthTries ${"0".repeat(30)}3\n`)["maxauthtries"], "3", "strtoll takes any number of leading zeros");
    assert.throws(() => at("MaxAuthTries -1\n"), /line 1: MaxAuthTries integer value invalid/);
    assert.throws(() => at("MaxAuthTries 0x10\n"), /line 1: MaxAuthTries integer value invalid/);
  });
  test("Match LocalPort 0 is accepted and never matches; a bad Port is refused", () => {
    assert.equal(evaluate(parseSshdConfig("Match LocalPort 0\n  PermitRootLogin yes\n", MAIN), { match: { user: "u", lport: 22 } }).effective["permitrootlogin"], "without-password");
    assert.throws(() => at("Port 0\n"), /line 1: Badly formatted port number/);
    assert.throws(() => at("Port 22 23\n"), /line 1: keyword Port extra arguments/);
    assert.doesNotThrow(() => at("Port +2222\n"));
    assert.doesNotThrow(() => at(`Port ${"0".repeat(30)}22\n`), "strtoll takes any number of leading zeros");
    assert.throws(() => at("Port 99999999999999999999999\n"), /line 1: Badly formatted port number/);
  });
  test("ports by service name are read as sshd's a2port() reads them (strtonum, then getservbyname): Port ssh, Match LocalPort ssh", () => {
    // Checked with sshd -T -C lport=22 (OpenSSH 9.2p1): "Port ssh" listens on 22, "Port SSH" and "Port -0" are refused,
    // "Match LocalPort ssh" and 'Match LocalPort " 22"' apply to port 22, "Match LocalPort -0" to none.
    const services = parseServices("ssh\t\t22/tcp\t\t# SSH Remote Login Protocol\n");
    const load = (text: string) => parseSshdConfig(text, MAIN, { services });
    assert.doesNotThrow(() => load("Port ssh\n"));
    assert.throws(() => load("Port SSH\n"), /line 1: Badly formatted port number/);
    assert.throws(() => load("Port -0\n"), /line 1: Badly formatted port number/);
    assert.throws(() => load("Match LocalPort http\n"), /Invalid LocalPort 'http'/);
    const root = (text: string): string | undefined => evaluate(load(`${text}\n  PermitRootLogin yes\n`), { match: { user: "u", lport: 22 } }).effective["permitrootlogin"];
    assert.deepEqual([root("Match LocalPort ssh"), root('Match LocalPort " 22"'), root("Match LocalPort -0")], ["yes", "yes", "without-password"]);
  });
  test("FingerprintHash is the one keyword whose last value wins, as in sshd", () => {
    assert.equal(at("FingerprintHash sha256\nFingerprintHash md5\n")["fingerprinthash"], "MD5");
    assert.equal(at("FingerprintHash md5\nMatch All\n  FingerprintHash sha256\n")["fingerprinthash"], "SHA256");
    assert.equal(at("PermitRootLogin no\nPermitRootLogin yes\n")["permitrootlogin"], "no", "others keep the first value");
  });
  test("key sources print as sshd -T prints them: every AuthorizedKeysFile entry with \"~\" expanded, a command as written", () => {
    assert.equal(at("AuthorizedKeysFile .ssh/authorized_keys ~/k ~ /etc/k/%u\n")["authorizedkeysfile"], ".ssh/authorized_keys /home/op/k /home/op/ /etc/k/%u");
    assert.equal(at("AuthorizedKeysFile # none yet\nAuthorizedKeysFile /etc/k\n")["authorizedkeysfile"], "/etc/k", "a line of only a comment sets nothing");
    assert.equal(at("AuthorizedKeysCommand /usr/bin/keys %u  # planted\nAuthorizedKeysCommandUser u\n")["authorizedkeyscommand"], "/usr/bin/keys %u  # planted");
    assert.equal(at("TrustedUserCAKeys ca.pub\n")["trustedusercakeys"], "/srv/cfg/ca.pub");
    assert.equal(at("AuthorizedPrincipalsFile NONE\n")["authorizedprincipalsfile"], "none");
    assert.equal(at("AuthorizedPrincipalsFile ~/p\n")["authorizedprincipalsfile"], "/home/op/p");
    assert.throws(() => at("AuthorizedKeysCommand \"/usr/bin/keys\"\n"), /line 1: AuthorizedKeysCommand must be an absolute path/);
    assert.throws(() => at("AuthorizedKeysFile a \"\"\n"), /line 1: keyword AuthorizedKeysFile empty argument/);
    assert.throws(() => at("AuthorizedKeysCommandUser \"\"\n"), /line 1: missing AuthorizedKeysCommandUser argument/);
  });
  test("a keys or principals command without its user at load is refused as sshd refuses to start; in a Match block it is not", () => {
    assert.throws(() => at("PermitRootLogin no\nAuthorizedKeysCommand /usr/bin/keys\n"), /line 2: AuthorizedKeysCommand set without AuthorizedKeysCommandUser/);
    assert.throws(() => at("Match All\n  AuthorizedPrincipalsCommand /usr/bin/p\n"), /line 2: AuthorizedPrincipalsCommand set without AuthorizedPrincipalsCommandUser/);
    assert.doesNotThrow(() => at("AuthorizedKeysCommand none\n"));
    assert.doesNotThrow(() => at("Match User bob\n  AuthorizedKeysCommand /usr/bin/keys\n"));
  });
  test("AuthorizedPrincipalsCommand lines count only until an AuthorizedKeysCommand line, the last before it winning (sshd 9.2's guard)", () => {
    const text = "AuthorizedPrincipalsCommand /a\nAuthorizedPrincipalsCommand /b\nAuthorizedKeysCommand /k\nAuthorizedPrincipalsCommand /c\nAuthorizedKeysCommandUser u\nAuthorizedPrincipalsCommandUser u\n";
    assert.equal(at(text)["authorizedprincipalscommand"], "/b");
    const ignored = evaluate(parseSshdConfig(text, MAIN, { source: memorySource({ [MAIN]: text }) })).ignored["authorizedprincipalscommand"];
    assert.deepEqual(ignored?.map((l) => [l.line, l.reason]), [[1, "last-value-wins"], [4, "first-value-wins"]]);
  });
  test("a Subsystem name defined twice at load, or one without a command, is refused as sshd refuses it", () => {
    assert.throws(() => at("Subsystem sftp /usr/lib/openssh/sftp-server\nSubsystem sftp /x\n"), /line 2: Subsystem 'sftp' already defined/);
    assert.throws(() => at("Subsystem sftp /a\nMatch All\n  Subsystem sftp /b\n"), /line 3: Subsystem 'sftp' already defined/);
    assert.throws(() => at("Subsystem sftp\n"), /line 1: Missing subsystem command/);
    assert.doesNotThrow(() => at("Subsystem sftp /a\nSubsystem SFTP /b\n"), "names compare exactly");
  });
});
