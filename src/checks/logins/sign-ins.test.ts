// SignInList (sign-ins.ts): what a finding names past the 100 it lists, and which sign-ins it marks as followed by a
// change of the account's own address. The rules' end-to-end attacks are in test/logins-second-look-red-team.test.ts.
import assert from "node:assert/strict";
import { it } from "node:test";
import { rawAuditStore } from "../../../test/helpers/audit-rows.ts";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { LISTED, SignInList, type SignIn } from "./sign-ins.ts";

const T0 = Date.UTC(2026, 11, 12);

const signIn = (userId: string, at: number, more: Partial<SignIn> = {}): SignIn => ({
  userId, email: null, at: new Date(at).toISOString(), ip: "198.51.100.1", sessionId: `ses_${userId}_${at}`, newDevice: true, failuresBefore: 0,
  fromSprayingAddress: false, emailChangedAt: null, emailChangeEvent: null, ...more,
});

it("attack: decoys ranked above a victim fill the list, and the victim's sign-in is named past it; one decoy account signed in to 50 times is named 10 times, and the finding says its names are incomplete (ASVS 16.3.1)", () => {
  const list = new SignInList(5);
  for (let k = 0; k < LISTED; k++) list.add(signIn(`usr_decoy${k}`, T0 + k, { fromSprayingAddress: true, failuresBefore: 5 }));
  list.add(signIn("usr_victim", T0 + 500));
  for (let i = 0; i < 50; i++) list.add(signIn("usr_again", T0 + 1000 + i, { failuresBefore: 5 }));
  list.add(signIn("usr_known", T0 + 2000, { newDevice: false, fromSprayingAddress: true }));
  const listed = list.items();
  assert.deepEqual(listed.slice(0, LISTED).map((s) => s.userId), Array.from({ length: LISTED }, (_, k) => `usr_decoy${k}`));
  const { otherSignIns, otherSignInsComplete } = SignInList.others([list], listed);
  assert.deepEqual(otherSignIns.map((s) => s.userId), ["usr_victim", ...Array.from({ length: 10 }, () => "usr_again")],
    "the victim is named, the account signed in to 50 times 10 times, a known browser's sign-in (not reported) never, the listed ones not twice");
  assert.equal(otherSignIns[0]!.sessionId, `ses_usr_victim_${T0 + 500}`);
  assert.equal(otherSignInsComplete, false);
  assert.equal(list.count, LISTED + 52);
});

forEachDialect("SignInList.fillEmails, address changes", (dialect) => {
  it("marks a sign-in followed by the account's own change of address (the first after it, whenever), not one whose account an administrator set the address of since, nor one after the change", async () => {
    const { database, insert } = await rawAuditStore(dialect, T0 - 30 * 24 * 3_600_000, "ac");
    const changed = (subject: string, at: number) => ({ type: "auth.email.changed", subject, at, data: { sessionsEnded: 1 } });
    await insert([
      changed("usr_moved", T0 + 10_000), changed("usr_moved", T0 + 20_000),
      changed("usr_restored", T0 + 10_000), { type: "user.email-set", subject: "usr_restored", at: T0 + 30_000, data: {} },
      changed("usr_before", T0 - 1),
    ]);
    const list = new SignInList(5);
    for (const id of ["usr_moved", "usr_restored", "usr_before", "usr_still"]) list.add(signIn(id, T0));
    const late = signIn("usr_moved", T0 + 15_000);
    list.add(late);
    await SignInList.fillEmails(database, [list]);
    const marks = list.items().map((s) => [s.userId, s.at, s.emailChangedAt, s.emailChangeEvent]);
    assert.deepEqual(marks, [
      ["usr_moved", new Date(T0).toISOString(), new Date(T0 + 10_000).toISOString(), "evt_ac1"],
      ["usr_restored", new Date(T0).toISOString(), null, null],
      ["usr_before", new Date(T0).toISOString(), null, null],
      ["usr_still", new Date(T0).toISOString(), null, null],
      ["usr_moved", new Date(T0 + 15_000).toISOString(), new Date(T0 + 20_000).toISOString(), "evt_ac2"],
    ]);
  });
});
