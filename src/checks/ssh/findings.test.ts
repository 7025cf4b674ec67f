// Findings: severities per value, evidence with file and line, and findings that hold only in a Match block.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { evaluate } from "./evaluate.ts";
import { checkSshConfig, sshFindings } from "./findings.ts";
import { memorySource } from "./memory-source.ts";
import { parseSshdConfig } from "./parser.ts";

const parse = (text: string) => parseSshdConfig(text, "/etc/ssh/sshd_config");
const find = (text: string, id: string) => sshFindings(evaluate(parse(text))).find((f) => f.id === id);

describe("ssh findings", () => {
  test("rates PermitRootLogin yes critical, prohibit-password low, forced-commands-only info, no nothing", () => {
    assert.equal(find("PermitRootLogin yes\n", "ssh.root-login")?.severity, "critical");
    assert.equal(find("PermitRootLogin prohibit-password\n", "ssh.root-login")?.severity, "low");
    assert.equal(find("PermitRootLogin without-password\n", "ssh.root-login")?.severity, "low");
    assert.equal(find("PermitRootLogin forced-commands-only\n", "ssh.root-login")?.severity, "info");
    assert.equal(find("PermitRootLogin no\n", "ssh.root-login"), undefined);
  });
  test("reports PasswordAuthentication yes as high, with file and line", () => {
    const f = find("# x\nPasswordAuthentication yes\n", "ssh.password-authentication");
    assert.equal(f?.severity, "high");
    assert.deepEqual([f?.evidence["file"], f?.evidence["line"]], ["/etc/ssh/sshd_config", 2]);
  });
  test("reports the compiled-in default as the source when nothing is set", () => {
    assert.equal(find("", "ssh.password-authentication")?.evidence["source"], "compiled-in default");
  });
  test("reports empty passwords, keyboard-interactive, MaxAuthTries and X11 forwarding", () => {
    const text = "PermitEmptyPasswords yes\nKbdInteractiveAuthentication yes\nUsePAM yes\nMaxAuthTries 10\nX11Forwarding yes\n";
    assert.equal(find(text, "ssh.empty-passwords")?.severity, "critical");
    // Password prompts through PAM: high since the red-team round (was medium, below ssh.password-authentication).
    assert.equal(find(text, "ssh.kbd-interactive")?.severity, "high");
    assert.equal(find(text, "ssh.max-auth-tries")?.severity, "low");
    assert.equal(find(text, "ssh.x11-forwarding")?.severity, "low");
    assert.equal(find("MaxAuthTries 3\n", "ssh.max-auth-tries"), undefined);
  });
  test("reports weak ciphers, MACs and key exchanges added with +, none for the defaults", () => {
    const f = find("Ciphers +3des-cbc\nMACs +hmac-md5\nKexAlgorithms +diffie-hellman-group1-sha1\n", "ssh.weak-algorithms");
    assert.match(f?.title ?? "", /3des-cbc, hmac-md5, diffie-hellman-group1-sha1/);
    assert.equal(find("", "ssh.weak-algorithms"), undefined);
  });
  // ASVS 11.4.1 (no SHA-1 signatures). Missed before: these lists were not evaluated at all, so the
  // usual "PubkeyAcceptedAlgorithms +ssh-rsa" for old clients raised nothing.
  test("attack: SHA-1 RSA and DSA signatures re-enabled for user keys, host keys, host-based logins and CAs are reported", () => {
    const pub = find("PubkeyAcceptedAlgorithms +ssh-rsa,ssh-dss\n", "ssh.weak-pubkey-algorithms");
    assert.equal(pub?.severity, "medium");
    assert.match(pub?.title ?? "", /ssh-rsa, ssh-dss/);
    assert.deepEqual([pub?.evidence["file"], pub?.evidence["line"]], ["/etc/ssh/sshd_config", 1]);
    // A pattern enables them too: "ssh-*" is ssh-ed25519, ssh-dss and ssh-rsa with their certificates.
    assert.match(find("PubkeyAcceptedAlgorithms ssh-*\n", "ssh.weak-pubkey-algorithms")?.title ?? "", /ssh-dss, ssh-dss-cert-v01@openssh.com, ssh-rsa/);
    assert.match(find("HostKeyAlgorithms ^ssh-rsa\n", "ssh.weak-algorithms")?.title ?? "", /ssh-rsa/);
    assert.equal(find("HostbasedAuthentication yes\nHostbasedAcceptedAlgorithms +ssh-rsa\n", "ssh.weak-hostbased-algorithms")?.severity, "medium");
    assert.equal(find("CASignatureAlgorithms +ssh-rsa\n", "ssh.weak-ca-algorithms")?.severity, "low");
  });
  test("weak key algorithms stay quiet where nothing uses them, and for the defaults", () => {
    for (const id of ["ssh.weak-pubkey-algorithms", "ssh.weak-hostbased-algorithms", "ssh.weak-ca-algorithms", "ssh.weak-algorithms"]) assert.equal(find("", id), undefined, id);
    assert.equal(find("PubkeyAuthentication no\nPubkeyAcceptedAlgorithms +ssh-rsa\n", "ssh.weak-pubkey-algorithms"), undefined);
    assert.equal(find("AuthenticationMethods password\nPubkeyAcceptedAlgorithms +ssh-rsa\n", "ssh.weak-pubkey-algorithms"), undefined);
    // Host-based logins are off by default, so their list is not consulted.
    assert.equal(find("HostbasedAcceptedAlgorithms +ssh-rsa\n", "ssh.weak-hostbased-algorithms"), undefined);
    // "-" lists take the weak names away: removing only what the "!" spares ("-*,!rsa-sha2-256").
    assert.equal(find("PubkeyAcceptedAlgorithms -*,!rsa-sha2-256\n", "ssh.weak-pubkey-algorithms"), undefined);
  });
  test("attack: ssh-rsa re-enabled for one Match block only is reported for that block; its \"+\" adds to the defaults, not to the global list", () => {
    const findings = checkSshConfig(parse("PubkeyAcceptedAlgorithms ssh-rsa\nMatch User legacy\n  PubkeyAcceptedAlgorithms +ssh-dss\n"));
    const titles = findings.filter((f) => f.id === "ssh.weak-pubkey-algorithms").map((f) => f.title);
    // sshd assembles the block's "+ssh-dss" against the compiled-in defaults (copy_set_server_options): ssh-rsa is gone for legacy.
    assert.deepEqual(titles, ["weak public key algorithms accepted: ssh-rsa", "weak public key algorithms accepted: ssh-dss for User legacy"]);
    const only = checkSshConfig(parse("Match User legacy\n  PubkeyAcceptedAlgorithms +ssh-rsa\n")).filter((f) => f.id === "ssh.weak-pubkey-algorithms");
    assert.deepEqual(only.map((f) => [f.title, f.evidence["matchBlock"]]), [
      ["weak public key algorithms accepted: ssh-rsa for User legacy", { criteria: "User legacy", file: "/etc/ssh/sshd_config", line: 1 }],
    ]);
  });
  test("a \"-\" list spares what a \"!\" entry names, as sshd's denylist does (was: \"-aes*,!aes128-ctr\" removed aes128-ctr too)", () => {
    assert.equal(evaluate(parse("Ciphers -aes*,!aes128-ctr\n")).effective["ciphers"], "chacha20-poly1305@openssh.com,aes128-ctr");
  });
  test("a key list that names no algorithm stops sshd at load, and ends a connection its Match block applies to", () => {
    assert.throws(() => parse("PubkeyAcceptedAlgorithms RSA\n"), /line 1: assemble_algorithms: pubkeyacceptedalgorithms: invalid argument/);
    assert.throws(() => parse("CASignatureAlgorithms ssh-rsa-cert-v01@openssh.com\n"), /line 1: assemble_algorithms: casignaturealgorithms/);
    assert.throws(() => parse("HostKeyAlgorithms bogus\n"), /line 1: Bad key types 'bogus'\./);
    const config = parse("Match User bob\n  PubkeyAcceptedAlgorithms RSA\n");
    assert.throws(() => evaluate(config, { match: { user: "bob", host: "h", addr: "192.0.2.1" } }), /line 2: assemble_algorithms/);
    assert.equal(evaluate(config, { match: { user: "alice", host: "h", addr: "192.0.2.1" } }).effective["pubkeyacceptedalgorithms"]?.startsWith("ssh-ed25519-cert"), true);
  });
  test("names the Match block a finding holds in (root login allowed for Address 10.0.0.0/8)", () => {
    const findings = checkSshConfig(parse("PermitRootLogin no\nPasswordAuthentication no\nMatch Address 10.0.0.0/8\n  PermitRootLogin yes\n"));
    const root = findings.filter((f) => f.id === "ssh.root-login");
    assert.equal(root.length, 1);
    assert.equal(root[0]?.title, "root login allowed for Address 10.0.0.0/8");
    assert.equal(root[0]?.severity, "critical");
    assert.deepEqual(root[0]?.evidence["matchBlock"], { criteria: "Address 10.0.0.0/8", file: "/etc/ssh/sshd_config", line: 3 });
  });
  test("does not repeat a global finding for a block that changes nothing", () => {
    const findings = checkSshConfig(parse("PasswordAuthentication yes\nMatch User bob\n  X11Forwarding no\n"));
    assert.equal(findings.filter((f) => f.id === "ssh.password-authentication").length, 1);
  });
  test("does not report a block that makes things stricter", () => {
    const findings = checkSshConfig(parse("PermitRootLogin yes\nMatch User bob\n  PermitRootLogin no\n"));
    assert.deepEqual(findings.filter((f) => f.id === "ssh.root-login").map((f) => f.title), ["root login allowed"]);
  });

  test("reports a Match block inside an Include inside another Match block (root with a password from one network)", () => {
    // Missed attack: "Match User root" + Include of a file holding "Match Address …" was evaluated
    // with the outer block failing, so the critical root login never showed.
    const main = "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User root\n  Include inc/admin.conf\n";
    const files = { "/etc/ssh/sshd_config": main, "/etc/ssh/inc/admin.conf": "Match Address 203.0.113.0/24\n  PermitRootLogin yes\n  PasswordAuthentication yes\n" };
    const findings = checkSshConfig(parseSshdConfig(main, "/etc/ssh/sshd_config", { source: memorySource(files) }));
    const root = findings.find((f) => f.id === "ssh.root-login");
    assert.equal(root?.severity, "critical");
    assert.equal(root?.title, "root login allowed for User root and Address 203.0.113.0/24");
    assert.deepEqual(root?.evidence["matchBlock"], { criteria: "User root and Address 203.0.113.0/24", file: "/etc/ssh/inc/admin.conf", line: 1 });
    assert.equal(findings.find((f) => f.id === "ssh.password-authentication")?.title, "password authentication enabled for User root and Address 203.0.113.0/24");
  });
  test("a line of an enclosing block is reported for that block, not again for each block nested in it", () => {
    const main = "PermitRootLogin no\nMatch User root\n  PermitRootLogin yes\n  Include inc/x.conf\n";
    const files = { "/etc/ssh/sshd_config": main, "/etc/ssh/inc/x.conf": "Match Address 10.0.0.0/8\n  X11Forwarding yes\n" };
    const findings = checkSshConfig(parseSshdConfig(main, "/etc/ssh/sshd_config", { source: memorySource(files) }));
    assert.deepEqual(findings.filter((f) => f.id === "ssh.root-login").map((f) => f.title), ["root login allowed for User root"]);
    assert.deepEqual(findings.filter((f) => f.id === "ssh.x11-forwarding").map((f) => f.title), ["X11 forwarding enabled for User root and Address 10.0.0.0/8"]);
  });
  test("Mozilla's hardened configuration (AuthenticationMethods publickey) raises no password or keyboard-interactive finding", () => {
    // False alarm: PasswordAuthentication and KbdInteractiveAuthentication were left at their
    // default "yes", which sshd never uses when no method list names password or keyboard-interactive.
    const text = "AuthenticationMethods publickey\nPermitRootLogin No\nMaxAuthTries 3\n";
    assert.deepEqual(checkSshConfig(parse(text)), []);
  });
  test("with only key methods allowed, PermitRootLogin yes is a key login (low), as prohibit-password", () => {
    const f = find("AuthenticationMethods publickey\nPermitRootLogin yes\n", "ssh.root-login");
    assert.equal(f?.severity, "low");
    assert.equal(f?.title, "root login allowed with keys");
    assert.deepEqual(f?.evidence["authenticationMethods"], { value: "publickey", file: "/etc/ssh/sshd_config", line: 1 });
    assert.equal(find("AuthenticationMethods publickey,password\nPermitRootLogin yes\n", "ssh.root-login")?.severity, "critical");
    assert.equal(find("AuthenticationMethods any\nPermitRootLogin yes\n", "ssh.root-login")?.severity, "critical");
  });
  test("a method list naming keyboard-interactive keeps that finding and drops the password one", () => {
    const text = "AuthenticationMethods publickey,keyboard-interactive:pam\nUsePAM yes\n";
    assert.equal(find(text, "ssh.kbd-interactive")?.severity, "medium");
    assert.equal(find(text, "ssh.password-authentication"), undefined);
    assert.equal(find("AuthenticationMethods publickey,password publickey\n", "ssh.password-authentication")?.severity, "high");
  });
  // ASVS 6.3.1. The stock PAM stack for sshd prompts for the account password: a password login by another name.
  test("attack: KbdInteractiveAuthentication yes with UsePAM yes is high like PasswordAuthentication yes; a key first makes it medium, no PAM low", () => {
    const pam = find("PasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes\n", "ssh.kbd-interactive");
    assert.equal(pam?.severity, "high");
    assert.match(pam?.detail ?? "", /false positive.*AuthenticationMethods publickey,keyboard-interactive/);
    assert.equal(find("UsePAM yes\nAuthenticationMethods keyboard-interactive publickey\n", "ssh.kbd-interactive")?.severity, "high");
    assert.equal(find("UsePAM yes\nAuthenticationMethods password,keyboard-interactive:pam\n", "ssh.kbd-interactive")?.severity, "high", "two passwords are still passwords");
    assert.equal(find("UsePAM yes\nAuthenticationMethods publickey,keyboard-interactive\n", "ssh.kbd-interactive")?.severity, "medium");
    // Without PAM this build has no keyboard-interactive device: nothing can log in that way.
    assert.equal(find("UsePAM no\nKbdInteractiveAuthentication yes\n", "ssh.kbd-interactive")?.severity, "low");
    // A Match block turning it on is named, high.
    const block = checkSshConfig(parse("UsePAM yes\nKbdInteractiveAuthentication no\nPasswordAuthentication no\nMatch Address 10.0.0.0/8\n  KbdInteractiveAuthentication yes\n"));
    assert.deepEqual(block.filter((f) => f.id === "ssh.kbd-interactive").map((f) => [f.severity, f.title]), [["high", "keyboard-interactive authentication enabled: password prompts through PAM for Address 10.0.0.0/8"]]);
  });

  // MITRE ATT&CK T1098.004: a way back in that emptying ~/.ssh/authorized_keys does not close.
  test("attack: key sources beside the users' own files are named with value and line: AuthorizedKeysFile, AuthorizedKeysCommand, TrustedUserCAKeys, principals", () => {
    const text = [
      "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/.cache/%u",
      "AuthorizedKeysCommand /usr/local/libexec/ssh-keys %u",
      "AuthorizedKeysCommandUser root",
      "TrustedUserCAKeys /etc/ssh/.ca.pub",
      "AuthorizedPrincipalsFile /etc/ssh/principals/%u",
      "AuthorizedPrincipalsCommandUser nobody",
      "",
    ].join("\n");
    // sshd 9.2 reads AuthorizedPrincipalsCommand only before any AuthorizedKeysCommand line (keywords.ts SET_WHILE_UNSET).
    const principals = `AuthorizedPrincipalsCommand /usr/local/bin/principals %u\n${text}`;
    const got = (id: string): [string, string, unknown, unknown] | undefined => {
      const f = find(text, id);
      return f && [f.severity, f.title, f.evidence["value"], f.evidence["line"]];
    };
    assert.deepEqual(got("ssh.authorized-keys-file"), ["medium", "keys also accepted from /etc/ssh/.cache/%u", ".ssh/authorized_keys /etc/ssh/.cache/%u", 1]);
    assert.deepEqual(got("ssh.authorized-keys-command"), ["medium", "keys also accepted from the output of /usr/local/libexec/ssh-keys %u, run as root", "/usr/local/libexec/ssh-keys %u", 2]);
    assert.match(find(text, "ssh.authorized-keys-command")?.detail ?? "", /runs as root.*Set by \/etc\/ssh\/sshd_config:2\.$/);
    assert.deepEqual(got("ssh.trusted-user-ca-keys"), ["medium", "certificates signed by the CA keys in /etc/ssh/.ca.pub are accepted", "/etc/ssh/.ca.pub", 4]);
    assert.deepEqual(got("ssh.authorized-principals-file")?.slice(0, 2), ["low", "certificate principals mapped to users by /etc/ssh/principals/%u"]);
    assert.equal(find(text, "ssh.authorized-principals-command"), undefined);
    const command = find(principals, "ssh.authorized-principals-command");
    assert.deepEqual([command?.severity, command?.title, command?.evidence["line"]], ["low", "certificate principals mapped to users by the output of /usr/local/bin/principals %u, run as nobody", 1]);
  });

  test("the users' own key files, \"none\", or no public key logins at all raise no key-source finding", () => {
    const ids = ["ssh.authorized-keys-file", "ssh.authorized-keys-command", "ssh.trusted-user-ca-keys", "ssh.authorized-principals-file", "ssh.authorized-principals-command"];
    const none = (text: string): void => {
      for (const id of ids) assert.equal(find(text, id), undefined, `${id} for ${JSON.stringify(text)}`);
    };
    none("");
    none("AuthorizedKeysFile .ssh/authorized_keys\n");
    none("AuthorizedKeysFile none\nAuthorizedKeysCommand none\nTrustedUserCAKeys none\n");
    none("PubkeyAuthentication no\nAuthorizedKeysFile /etc/k/%u\nTrustedUserCAKeys /etc/ca\n");
    none("AuthenticationMethods password\nAuthorizedKeysFile /etc/k/%u\n");
    // Principals are read only for a certificate from a trusted CA.
    none("AuthorizedPrincipalsFile /etc/p/%u\nAuthorizedPrincipalsCommand /bin/p\nAuthorizedPrincipalsCommandUser nobody\n");
    assert.deepEqual(find("AuthorizedKeysFile none /etc/k/%u\n", "ssh.authorized-keys-file")?.title, "keys also accepted from /etc/k/%u");
  });

  test("a key source set in a Match block is named for that block; another file for another block is named too", () => {
    const findings = checkSshConfig(parse("AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/central/%u\nMatch User root\n  AuthorizedKeysFile /var/lib/.k\nMatch User bob\n  AuthorizedKeysFile /etc/ssh/central/%u\n"));
    assert.deepEqual(
      findings.filter((f) => f.id === "ssh.authorized-keys-file").map((f) => f.title),
      ["keys also accepted from /etc/ssh/central/%u", "keys also accepted from /var/lib/.k for User root"],
    );
    const command = checkSshConfig(parse("Match Address 203.0.113.0/24\n  AuthorizedKeysCommand /tmp/.k\n  AuthorizedKeysCommandUser root\n")).filter((f) => f.id === "ssh.authorized-keys-command");
    assert.deepEqual(command.map((f) => [f.title, f.evidence["matchBlock"]]), [
      ["keys also accepted from the output of /tmp/.k, run as root for Address 203.0.113.0/24", { criteria: "Address 203.0.113.0/24", file: "/etc/ssh/sshd_config", line: 1 }],
    ]);
  });

  // Round "sshd shapes": printed "none" that sshd does not take as none (checked on loopback with sshd -ddd, 9.2p1).
  test("attack: TrustedUserCAKeys none in a Match block is the CA file /none, AuthorizedPrincipalsFile none there ~/none; at load both are no file", () => {
    const scan = (text: string) => checkSshConfig(parse(text));
    assert.equal(scan("TrustedUserCAKeys none\nAuthorizedPrincipalsFile none\n").find((f) => f.id === "ssh.trusted-user-ca-keys"), undefined);
    const block = scan("Match User root\n  TrustedUserCAKeys NONE\n  AuthorizedPrincipalsFile None\n");
    assert.deepEqual(
      block.filter((f) => f.id.startsWith("ssh.trusted") || f.id.startsWith("ssh.authorized-principals")).map((f) => [f.id, f.severity, f.title]),
      [
        ["ssh.trusted-user-ca-keys", "medium", "certificates signed by the CA keys in /none are accepted for User root"],
        ["ssh.authorized-principals-file", "low", "certificate principals mapped to users by ~/None for User root"],
      ],
    );
    // "Match All" is applied in the pass for each connection too: the global evaluation already has it.
    assert.match(find("Match All\n  TrustedUserCAKeys none\n", "ssh.trusted-user-ca-keys")?.detail ?? "", /set in a Match block.*\/none/);
  });

  test("attack: AuthorizedKeysCommandUser none names the account called none (the command is reported); an unset user stays no user", () => {
    const f = find("AuthorizedKeysCommand /usr/local/bin/k %u\nAuthorizedKeysCommandUser none\n", "ssh.authorized-keys-command");
    assert.equal(f?.title, "keys also accepted from the output of /usr/local/bin/k %u, run as none");
    assert.match(f?.detail ?? "", /account called none/);
    const principals = find("TrustedUserCAKeys /etc/ssh/ca.pub\nAuthorizedPrincipalsCommand /bin/p %u\nAuthorizedPrincipalsCommandUser none\n", "ssh.authorized-principals-command");
    assert.equal(principals?.severity, "low");
    // A command in a Match block without a user: sshd skips it at login ("No user for AuthorizedKeysCommand specified").
    assert.equal(checkSshConfig(parse("Match User root\n  AuthorizedKeysCommand /tmp/.k\n")).find((f) => f.id === "ssh.authorized-keys-command"), undefined);
    assert.match(checkSshConfig(parse("Match User root\n  AuthorizedKeysCommand /tmp/.k\n  AuthorizedKeysCommandUser none\n")).find((f) => f.id === "ssh.authorized-keys-command")?.title ?? "", /run as none for User root/);
  });

  test("attack: HostbasedAuthentication yes is medium, high where the users' own ~/.shosts count (IgnoreRhosts no or shosts-only); nothing where no method list allows it", () => {
    assert.equal(find("", "ssh.hostbased-authentication"), undefined);
    assert.equal(find("HostbasedAuthentication yes\n", "ssh.hostbased-authentication")?.severity, "medium");
    assert.equal(find("HostbasedAuthentication yes\nIgnoreRhosts no\n", "ssh.hostbased-authentication")?.severity, "high");
    assert.equal(find("HostbasedAuthentication yes\nIgnoreRhosts shosts-only\n", "ssh.hostbased-authentication")?.title, "host-based authentication enabled, with the users' own ~/.shosts");
    assert.equal(find("HostbasedAuthentication yes\nIgnoreRhosts no\nAuthenticationMethods publickey\n", "ssh.hostbased-authentication"), undefined);
    assert.equal(find("HostbasedAuthentication yes\nAuthenticationMethods publickey,hostbased\n", "ssh.hostbased-authentication")?.severity, "medium");
    const block = checkSshConfig(parse("Match Address 192.0.2.0/24\n  HostbasedAuthentication yes\n  IgnoreRhosts no\n")).filter((f) => f.id === "ssh.hostbased-authentication");
    assert.deepEqual(block.map((f) => [f.severity, f.title]), [["high", "host-based authentication enabled, with the users' own ~/.shosts or ~/.rhosts for Address 192.0.2.0/24"]]);
  });

  test("past the work budget a block naming another key file, command or weak algorithm is still reported; one repeating the global line is not", () => {
    const text =
      "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/keys/%u\nMatch User bob\n  AuthorizedKeysFile /etc/ssh/keys/%u\n" +
      "Match User root\n  AuthorizedKeysFile /var/tmp/.k\nMatch User legacy\n  PubkeyAcceptedAlgorithms +ssh-rsa\n" +
      "Match User none\n  TrustedUserCAKeys none\n";
    const findings = checkSshConfig(parse(text), { combinationBudget: 0 });
    const named = (id: string) => findings.filter((f) => f.id === id).map((f) => [f.title, f.evidence["combinationChecked"]]);
    assert.deepEqual(named("ssh.authorized-keys-file"), [["keys also accepted from /etc/ssh/keys/%u", undefined], ["keys also accepted from /var/tmp/.k for User root", false]]);
    assert.deepEqual(named("ssh.weak-pubkey-algorithms"), [["weak public key algorithms accepted: ssh-rsa for User legacy", false]]);
    assert.deepEqual(named("ssh.trusted-user-ca-keys"), [["certificates signed by the CA keys in /none are accepted for User none", false]]);
  });

  test("a Match block that lifts the method restriction is named, though PasswordAuthentication is set globally", () => {
    const findings = checkSshConfig(parse("AuthenticationMethods publickey\nPermitRootLogin no\nMatch Address 10.0.0.0/8\n  AuthenticationMethods password\n"));
    const pw = findings.filter((f) => f.id === "ssh.password-authentication");
    assert.deepEqual(pw.map((f) => [f.severity, f.title]), [["high", "password authentication enabled for Address 10.0.0.0/8"]]);
    assert.deepEqual(pw[0]?.evidence["authenticationMethods"], { value: "password", file: "/etc/ssh/sshd_config", line: 4, match: "Address 10.0.0.0/8", matchFile: "/etc/ssh/sshd_config", matchLine: 3 });
  });

});

// The line to change, in the finding's own words: the human output shows only title, detail and fix, and
// a fix that says "Set PasswordAuthentication no" to a responder who just did, in a line sshd ignores, is wrong.
describe("ssh findings name the line sshd uses and the lines it ignores", () => {
  const MAIN = "/etc/ssh/sshd_config";
  const DROP_IN = "/etc/ssh/sshd_config.d/50-cloud-init.conf";
  const load = (files: Record<string, string>) => parseSshdConfig(files[MAIN] as string, MAIN, { source: memorySource(files) });
  // Ubuntu's cloud image: the Include comes first, so its drop-in's value is the one sshd keeps.
  const UBUNTU = { [MAIN]: "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\nPasswordAuthentication no\n", [DROP_IN]: "PasswordAuthentication yes\n" };

  test("attack: a drop-in read through an earlier Include keeps password logins on; the finding names it, the ignored line, and the Include", () => {
    const f = sshFindings(evaluate(load(UBUNTU))).find((x) => x.id === "ssh.password-authentication");
    assert.equal(f?.severity, "high");
    assert.match(f?.detail ?? "", /Set by \/etc\/ssh\/sshd_config\.d\/50-cloud-init\.conf:1\.$/);
    assert.equal(
      f?.remediation,
      `Set PasswordAuthentication no and use public keys. ${MAIN}:3 sets PasswordAuthentication to no, but sshd keeps the first value, from ${DROP_IN}:1: change or remove that line, or put the setting before the Include at ${MAIN}:1.`,
    );
    assert.deepEqual(f?.evidence["includedAt"], [{ file: MAIN, line: 1 }]);
    assert.deepEqual(f?.evidence["ignoredLines"], [{ option: "passwordauthentication", file: MAIN, line: 3, keyword: "PasswordAuthentication", value: "no", reason: "first-value-wins" }]);
  });

  test("a value set once names its line and says a line added later is ignored; a compiled-in default names none", () => {
    const f = find("# x\nPasswordAuthentication yes\n", "ssh.password-authentication");
    assert.match(f?.detail ?? "", /Set by \/etc\/ssh\/sshd_config:2\.$/);
    assert.match(f?.remediation ?? "", /Change PasswordAuthentication at \/etc\/ssh\/sshd_config:2, the line sshd uses \(it keeps the first value it reads: a second line after it is ignored\)\.$/);
    assert.equal(f?.evidence["ignoredLines"], undefined);
    const def = find("", "ssh.password-authentication");
    assert.equal(def?.detail, "PasswordAuthentication yes lets anyone on the network guess passwords (brute force).");
    assert.equal(def?.remediation, "Set PasswordAuthentication no and use public keys.");
  });

  test("a repeated line with the same value is not named as ignored (it changes nothing)", () => {
    const f = find("PasswordAuthentication yes\nPasswordAuthentication yes\n", "ssh.password-authentication");
    assert.equal(f?.evidence["ignoredLines"], undefined);
    assert.doesNotMatch(f?.remediation ?? "", /sshd_config:2/);
  });

  test("a value from a Match block names the Match line too, and the global line the block overrides", () => {
    const text = "PermitRootLogin no\nPasswordAuthentication no\nMatch Address 10.0.0.0/8\n  PermitRootLogin yes\n  PasswordAuthentication yes\n";
    const root = checkSshConfig(parse(text)).find((f) => f.id === "ssh.root-login");
    assert.match(root?.detail ?? "", /Set by \/etc\/ssh\/sshd_config:4, in the Match block at \/etc\/ssh\/sshd_config:3 \(Address 10\.0\.0\.0\/8\)\.$/);
    assert.match(root?.remediation ?? "", /\/etc\/ssh\/sshd_config:1 sets PermitRootLogin to no, but the Match block at \/etc\/ssh\/sshd_config:3 \(Address 10\.0\.0\.0\/8\) sets it again for its connections, at \/etc\/ssh\/sshd_config:4: change or remove that line\.$/);
    // The same for one connection (--match): the evidence carries the Match line.
    const one = sshFindings(evaluate(parse(text), { match: { user: "root", host: "h", addr: "10.1.2.3" } })).find((f) => f.id === "ssh.root-login");
    assert.deepEqual([one?.evidence["match"], one?.evidence["matchFile"], one?.evidence["matchLine"]], ["Address 10.0.0.0/8", MAIN, 3]);
    assert.match(one?.detail ?? "", /in the Match block at \/etc\/ssh\/sshd_config:3/);
  });

  test("two blocks one connection matches: the later block's line is ignored, the first block's value kept", () => {
    const text = "PermitRootLogin no\nMatch User root\n  PermitRootLogin yes\nMatch Address 10.0.0.0/8\n  PermitRootLogin no\n";
    const f = sshFindings(evaluate(parse(text), { match: { user: "root", host: "h", addr: "10.1.2.3" } })).find((x) => x.id === "ssh.root-login");
    assert.equal(f?.severity, "critical");
    assert.match(f?.remediation ?? "", /\/etc\/ssh\/sshd_config:5 sets PermitRootLogin to no, but sshd keeps the first value, from \/etc\/ssh\/sshd_config:3, in the Match block at \/etc\/ssh\/sshd_config:2 \(User root\): change or remove that line\./);
    assert.doesNotMatch(f?.remediation ?? "", /before the Include/);
  });

  test("an AuthenticationMethods line below the one sshd uses is named in the fix of the finding it would have prevented", () => {
    const f = find("AuthenticationMethods any\nAuthenticationMethods publickey\n", "ssh.password-authentication");
    assert.match(f?.remediation ?? "", /\/etc\/ssh\/sshd_config:2 sets AuthenticationMethods to publickey, but sshd keeps the first value, from \/etc\/ssh\/sshd_config:1/);
    assert.deepEqual((f?.evidence["ignoredLines"] as { option: string }[]).map((l) => l.option), ["authenticationmethods"]);
  });

  test("weak algorithms name the option and line of each list", () => {
    const f = find("Ciphers +aes128-cbc\nMACs +hmac-md5\nCiphers aes256-gcm@openssh.com\n", "ssh.weak-algorithms");
    assert.match(f?.detail ?? "", /Ciphers set by \/etc\/ssh\/sshd_config:1\. MACs set by \/etc\/ssh\/sshd_config:2\.$/);
    assert.match(f?.remediation ?? "", /\/etc\/ssh\/sshd_config:3 sets Ciphers to aes256-gcm@openssh\.com, but sshd keeps the first value, from \/etc\/ssh\/sshd_config:1/);
    assert.match(f?.remediation ?? "", /Change MACs at \/etc\/ssh\/sshd_config:2/);
  });

  test("nested Includes: the Include in the file of the ignored line is the one to put the setting before", () => {
    const files = {
      [MAIN]: "Include /etc/ssh/a.conf\nPasswordAuthentication no\n",
      "/etc/ssh/a.conf": "X11Forwarding no\nInclude /etc/ssh/b.conf\n",
      "/etc/ssh/b.conf": "PasswordAuthentication yes\n",
    };
    const f = sshFindings(evaluate(load(files))).find((x) => x.id === "ssh.password-authentication");
    assert.deepEqual(f?.evidence["includedAt"], [{ file: MAIN, line: 1 }, { file: "/etc/ssh/a.conf", line: 2 }]);
    assert.match(f?.remediation ?? "", /or put the setting before the Include at \/etc\/ssh\/sshd_config:1\.$/);
  });
});
