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
    assert.equal(find(text, "ssh.kbd-interactive")?.severity, "medium");
    assert.equal(find(text, "ssh.max-auth-tries")?.severity, "low");
    assert.equal(find(text, "ssh.x11-forwarding")?.severity, "low");
    assert.equal(find("MaxAuthTries 3\n", "ssh.max-auth-tries"), undefined);
  });
  test("reports weak ciphers, MACs and key exchanges added with +, none for the defaults", () => {
    const f = find("Ciphers +3des-cbc\nMACs +hmac-md5\nKexAlgorithms +diffie-hellman-group1-sha1\n", "ssh.weak-algorithms");
    assert.match(f?.title ?? "", /3des-cbc, hmac-md5, diffie-hellman-group1-sha1/);
    assert.equal(find("", "ssh.weak-algorithms"), undefined);
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
  test("a Match block that lifts the method restriction is named, though PasswordAuthentication is set globally", () => {
    const findings = checkSshConfig(parse("AuthenticationMethods publickey\nPermitRootLogin no\nMatch Address 10.0.0.0/8\n  AuthenticationMethods password\n"));
    const pw = findings.filter((f) => f.id === "ssh.password-authentication");
    assert.deepEqual(pw.map((f) => [f.severity, f.title]), [["high", "password authentication enabled for Address 10.0.0.0/8"]]);
    assert.deepEqual(pw[0]?.evidence["authenticationMethods"], { value: "password", file: "/etc/ssh/sshd_config", line: 4, match: "Address 10.0.0.0/8" });
  });
});
