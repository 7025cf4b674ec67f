// The connection tracker: its bound (a log of connections whose end was never logged keeps at most
// 50,000, forgetting the oldest, in linear time: a churned Map once made this quadratic), the end of
// a connection's state (idle 5 minutes, a timeout or fatal line), and logins that never count.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthLogAnalyzer } from "./analyzer.ts";

const REF = Date.UTC(2026, 10, 22);

test("past 50,000 open connections the oldest are forgotten first, also when others ended in between", () => {
  const charged: Array<[number, string]> = [];
  const a = new AuthLogAnalyzer({ referenceMs: REF, onFailure: (m) => charged.push([m.line, m.address]) });
  a.beginFile("auth.log");
  let n = 0;
  const open = (pid: number): void => a.line(`Nov 21 04:00:00 web sshd[${pid}]: Connection from 198.51.100.${pid % 250} port 4242 on 10.0.0.1 port 22`, ++n);
  for (let pid = 1; pid <= 50_000; pid++) open(pid);
  // Every third connection from 10,003 to 30,000 ends: deleted slots in the middle of the map.
  for (let pid = 10_003; pid <= 30_000; pid += 3) a.line(`Nov 21 04:00:00 web sshd[${pid}]: Connection closed by 198.51.100.${pid % 250} port 4242`, ++n);
  // 20,000 more: 13,333 of them evict, pids 1 to 10,000 and then the open ones up to about 15,000.
  for (let pid = 50_001; pid <= 70_000; pid++) open(pid);
  assert.equal(charged.length, 0);
  // A failure that does not name the client is charged to the address its connection remembers;
  // a forgotten connection's failure waits for an address that never comes.
  for (const pid of [16_001, 49_999, 69_999, 2, 9_999, 14_000]) a.line(`Nov 21 04:00:01 web sshd[${pid}]: Disconnecting: Too many authentication failures for root [preauth]`, ++n);
  assert.deepEqual(charged.map(([, address]) => address), [16_001, 49_999, 69_999].map((pid) => `198.51.100.${pid % 250}`));
});

function charges(lines: string[]): Array<[number, string]> {
  const charged: Array<[number, string]> = [];
  const a = new AuthLogAnalyzer({ referenceMs: REF, onFailure: (m) => charged.push([m.line, m.address]) });
  a.beginFile("auth.log");
  lines.forEach((l, i) => a.line(l, i + 1));
  return charged;
}

// ASVS 6.3.5: a PID that comes round again is another connection; it must not inherit the old one's user name.
test("a connection silent for more than 5 minutes of log time is forgotten; within 5 minutes a second user name still counts", () => {
  const reused = (at: string): string[] => [
    "Nov 21 04:00:00 web sshd[7]: Invalid user x from 203.0.113.9 port 1",
    `Nov 21 ${at} web sshd[7]: Failed publickey for admin from 192.0.2.10 port 2 ssh2: RSA SHA256:k`,
  ];
  assert.deepEqual(charges(reused("04:05:01")), [[1, "203.0.113.9"]]);
  assert.deepEqual(charges(reused("04:04:59")), [[1, "203.0.113.9"], [2, "192.0.2.10"]], "fail2ban's multi-user rule, inside the window");
});

test("a timeout before authentication or a fatal dispatch error ends the connection at once", () => {
  for (const end of ["fatal: Timeout before authentication for 203.0.113.9 port 1", "ssh_dispatch_run_fatal: Connection from 203.0.113.9 port 1: Connection corrupted [preauth]"]) {
    const lines = [
      "Nov 21 04:00:00 web sshd[7]: Invalid user x from 203.0.113.9 port 1",
      `Nov 21 04:00:01 web sshd[7]: ${end}`,
      "Nov 21 04:00:02 web sshd[7]: Failed publickey for admin from 192.0.2.10 port 2 ssh2: RSA SHA256:k",
    ];
    assert.deepEqual(charges(lines), [[1, "203.0.113.9"]], end);
  }
});

// fail2ban counts it (the connection tried two user names); the line that showed the second name was counted already.
test("an Accepted line is never counted as a failure, even on a connection that tried two user names", () => {
  const lines = [
    "Nov 21 04:00:00 web sshd[7]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=a rhost=192.0.2.10",
    "Nov 21 04:00:01 web sshd[7]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=b rhost=192.0.2.10",
    "Nov 21 04:00:02 web sshd[7]: Accepted password for a from 192.0.2.10 port 5 ssh2",
  ];
  assert.deepEqual(charges(lines), [[2, "192.0.2.10"]]);
});
