// The connection tracker's bound: a log of connections whose end was never logged keeps at most
// 50,000, forgetting the oldest, in linear time (a churned Map once made this quadratic).
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
