// One realistic message per kind sshd logs, as OpenSSH 8.x–9.x writes them (written by hand).
import assert from "node:assert/strict";
import { test } from "node:test";
import { classifySshdMessage, messageStart } from "./sshd-messages.ts";

function pick(message: string): Record<string, unknown> | null {
  const e = classifySshdMessage(message.slice(messageStart(message, 0)));
  return e && { kind: e.kind, effect: e.effect, forget: e.forget, address: e.address, user: e.user };
}

const cases: Array<[string, string, Record<string, unknown> | null]> = [
  ["a failed password", "Failed password for root from 203.0.113.9 port 52144 ssh2", { kind: "failed-password", effect: "fail", forget: false, address: "203.0.113.9", user: "root" }],
  ["a failed password for an invalid user", "Failed password for invalid user oracle from 198.51.100.23 port 40022 ssh2", { kind: "failed-password", effect: "fail", forget: false, address: "198.51.100.23", user: "oracle" }],
  ["a failed public key of an existing user (no failure by itself)", "Failed publickey for deploy from 192.0.2.44 port 50500 ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", { kind: "failed-publickey", effect: "nofail", forget: false, address: "192.0.2.44", user: "deploy" }],
  ["a failed public key for an invalid user", "Failed publickey for invalid user git from 192.0.2.45 port 50501 ssh2: RSA SHA256:xyz", { kind: "failed-publickey", effect: "fail", forget: false, address: "192.0.2.45", user: "git" }],
  ["a failed keyboard-interactive/pam attempt", "Failed keyboard-interactive/pam for invalid user admin from 2001:db8::17 port 33723 ssh2", { kind: "failed-keyboard-interactive", effect: "fail", forget: false, address: "2001:db8::17", user: "admin" }],
  ["an invalid user", "Invalid user ubnt from 203.0.113.77 port 41422", { kind: "invalid-user", effect: "fail", forget: false, address: "203.0.113.77", user: "ubnt" }],
  ["a PAM authentication failure with rhost", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root", { kind: "pam-failure", effect: "nofail", forget: false, address: "203.0.113.9", user: "root" }],
  ["a PAM failure of an unknown user", "pam_unix(sshd:auth): check pass; user unknown", null],
  ["maximum authentication attempts exceeded", "error: maximum authentication attempts exceeded for root from 203.0.113.9 port 52144 ssh2 [preauth]", { kind: "max-auth-attempts", effect: "fail", forget: false, address: "203.0.113.9", user: "root" }],
  ["a preauth close of an authenticating user", "Connection closed by authenticating user root 203.0.113.9 port 52144 [preauth]", { kind: "preauth-close", effect: "fail", forget: true, address: "203.0.113.9", user: "root" }],
  ["a preauth disconnect of an invalid user", "Disconnected from invalid user test 198.51.100.2 port 60000 [preauth]", { kind: "preauth-close", effect: "fail", forget: true, address: "198.51.100.2", user: "test" }],
  ["a normal disconnect after a session", "Disconnected from user alice 192.0.2.10 port 51000", { kind: "connection-closed", effect: "nofail", forget: true, address: "192.0.2.10", user: null }],
  ["an accepted password", "Accepted password for root from 198.51.100.77 port 50022 ssh2", { kind: "accepted-password", effect: "gained", forget: true, address: "198.51.100.77", user: "root" }],
  ["an accepted public key", "Accepted publickey for alice from 192.0.2.10 port 51000 ssh2: ED25519 SHA256:abc", { kind: "accepted-publickey", effect: "gained", forget: true, address: "192.0.2.10", user: "alice" }],
  ["an accepted keyboard-interactive/pam", "Accepted keyboard-interactive/pam for bob from 192.0.2.11 port 51001 ssh2", { kind: "accepted-keyboard-interactive", effect: "gained", forget: true, address: "192.0.2.11", user: "bob" }],
  ["too many authentication failures", "Disconnecting: Too many authentication failures for root [preauth]", { kind: "too-many-failures", effect: "fail", forget: false, address: null, user: "root" }],
  ["a client without identification string", "Did not receive identification string from 203.0.113.50 port 61000", { kind: "no-identification", effect: "fail", forget: false, address: "203.0.113.50", user: null }],
  ["a failed negotiation", "Unable to negotiate with 203.0.113.51 port 61001: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]", { kind: "negotiation-failed", effect: "fail", forget: false, address: "203.0.113.51", user: null }],
  ["a connection line (tells the address only)", "Connection from 203.0.113.52 port 61002 on 192.0.2.1 port 22 rdomain \"\"", { kind: "connection-from", effect: "nofail", forget: false, address: "203.0.113.52", user: null }],
  ["a session opened line", "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)", null],
  ["a Postponed publickey line", "Postponed publickey for alice from 192.0.2.10 port 51000 ssh2 [preauth]", null],
  ["a Received disconnect with reason 11", "Received disconnect from 203.0.113.9 port 52144:11: Bye Bye [preauth]", { kind: "disconnect-bye", effect: "nofail", forget: true, address: "203.0.113.9", user: null }],
  ["an IPv4-mapped IPv6 address reduced to IPv4", "Failed password for root from ::ffff:203.0.113.9 port 1 ssh2", { kind: "failed-password", effect: "fail", forget: false, address: "203.0.113.9", user: "root" }],
];

for (const [name, message, expected] of cases) {
  test(`recognises ${name}`, () => {
    assert.deepEqual(pick(message), expected);
  });
}

test("takes the sshd-chosen address, not one inside an attacker-chosen user name", () => {
  // ssh 'x from 6.6.6.6 port 22 ssh2'@host: sshd prints the user name as given.
  assert.equal(pick("Failed password for invalid user x from 6.6.6.6 port 22 ssh2 from 203.0.113.9 port 4711 ssh2")?.["address"], "203.0.113.9");
  assert.equal(pick("Invalid user x from 6.6.6.6 port 22 from 203.0.113.9 port 4711")?.["address"], "203.0.113.9");
  assert.equal(pick("Connection closed by invalid user x 6.6.6.6 port 22 203.0.113.9 port 4711 [preauth]")?.["address"], "203.0.113.9");
});

// ASVS 6.3.1, 16.3.1: a directory account (SSSD, winbind) can hold a space; the one word after " for " dropped the login.
test("reads an Accepted line whose user name holds spaces, and the address sshd wrote after it", () => {
  assert.deepEqual(pick("Accepted password for john smith from 203.0.113.9 port 41100 ssh2"), {
    kind: "accepted-password", effect: "gained", forget: true, address: "203.0.113.9", user: "john smith",
  });
  assert.equal(pick("Accepted publickey for CORP\\jane doe from 2001:db8::5 port 1 ssh2: ED25519 SHA256:abc")?.["user"], "CORP\\jane doe");
  // ssh 'x from 192.0.2.10 port 22 ssh2'@host: the address inside the name is not followed by sshd's end of line.
  assert.deepEqual(pick("Accepted password for x from 192.0.2.10 port 22 ssh2 from 203.0.113.9 port 4711 ssh2"), {
    kind: "accepted-password", effect: "gained", forget: true, address: "203.0.113.9", user: "x from 192.0.2.10 port 22 ssh2",
  });
  assert.equal(pick("Accepted password for  from 203.0.113.9 port 1 ssh2"), null, "no user name");
  assert.equal(pick("Accepted password for root from 203.0.113.9 port 1 ssh2 and more"), null, "not sshd's format");
});

test("an Accepted line that reads two ways carries the other reading, as a Failed line does", () => {
  const e = classifySshdMessage("Accepted password for x from 192.0.2.10 port 22 ssh2: y from 203.0.113.9 port 4711 ssh2");
  assert.equal(e?.address, "192.0.2.10");
  assert.deepEqual(e?.otherReading, { address: "203.0.113.9", user: "x from 192.0.2.10 port 22 ssh2: y" });
});

test("does not take a fake address that is not a valid IP", () => {
  assert.equal(pick("Failed password for root from 999.1.1.1 port 22 ssh2"), null);
  assert.equal(pick("Failed password for root from 1:2:3:4:5:6:7:8:9 port 22 ssh2"), null);
});

// ASVS 16.4.1: ssh 'x 192.0.2.10 on'@host. fail2ban's optional " on IFACE" tail read " on 203.0.113.9" as an interface.
test("takes the address just before sshd's port in closes and disconnects, whatever the user name ends with", () => {
  for (const [message, user] of [
    ["Connection closed by invalid user x 192.0.2.10 on 203.0.113.9 port 4711 [preauth]", "x 192.0.2.10 on"],
    ["Disconnected from authenticating user x 192.0.2.10 port 22 on 203.0.113.9 port 4711 [preauth]", "x 192.0.2.10 port 22 on"],
    ["Connection reset by invalid user x 192.0.2.10 on 203.0.113.9 port 4711", "x 192.0.2.10 on"],
  ] as const) {
    const e = pick(message);
    assert.equal(e?.["address"], "203.0.113.9", message);
    assert.equal(e?.["user"], user, message);
  }
  assert.equal(pick("Connection closed by 203.0.113.9 [preauth]")?.["address"], "203.0.113.9", "old sshd: no port");
});

test("reads 'Change of username' disconnects from the first ':', with IPv4, IPv6 and user names holding spaces", () => {
  const tail = ": Change of username or service not allowed: (a,ssh-connection) -> (root,ssh-connection) [preauth]";
  for (const [head, address, user] of [
    ["Disconnecting invalid user admin 192.0.2.117 port 44004", "192.0.2.117", "admin"],
    ["Disconnecting invalid user x 127.0.0.1 on 203.0.113.9 port 41000", "203.0.113.9", "x 127.0.0.1 on"],
    ["Disconnecting authenticating user x 127.0.0.1 port 22 on 2001:db8::7 port 41000", "2001:db8::7", "x 127.0.0.1 port 22 on"],
    ["Disconnecting invalid user y 2001:db8:: port 41000", "2001:db8::", "y"],
    ["Disconnecting invalid user z 203.0.113.9", "203.0.113.9", "z"],
  ] as const) {
    assert.deepEqual(pick(head + tail), { kind: "change-of-user", effect: "fail", forget: true, address, user }, head);
  }
  assert.equal(pick(`Disconnecting invalid user x 203.0.113.9 port 4: Something else [preauth]`), null);
});

test("a timeout before authentication and a fatal dispatch error end the connection and count nothing", () => {
  assert.deepEqual(pick("fatal: Timeout before authentication for 203.0.113.9 port 40000"), { kind: "auth-timeout", effect: "end", forget: true, address: null, user: null });
  assert.deepEqual(pick("ssh_dispatch_run_fatal: Connection from 203.0.113.9 port 40000: message authentication code incorrect [preauth]"), {
    kind: "dispatch-fatal", effect: "end", forget: true, address: null, user: null,
  });
});
