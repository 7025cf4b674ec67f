// Red team round, second look at this session's latest fixes, attacked as new code: known-device tags and flood-control
// keys under keys of their own (3be2a9f: Keyring.deviceTag, Keyring.floodKey, migration 31), an authenticator-app
// replacement bound to the session that began it and mailed (63ac88c: migration 32, auth.mfa.replacement-begun) with
// administrative grants mailed to both accounts, and API-made containment jobs that re-check their creator (17019cd).
// The attackers: an intruder at an administrator's or an owner's unlocked computer (a fresh, fully signed-in session,
// a copy of its cookie, or the administrator's API token) who wants a confederate made an administrator with nobody
// told, a replacement app of its own, or the owner's mailbox buried; and a botnet whose stops on a victim's account a
// master key rotation or a restart must not lift. Each test is an attack that must fail on correct code; the two findings
// are fixed (their tests say what was, "was: …"). Steps pinned by the earlier rounds (planted-persistence-, insider-, database-dump- red-team files,
// contain-cancel, api-roles-notices, device-cookie-attacks, http-auth-mfa) are not repeated.
// Found: an undo of demote-inactive-admins hands an administrator's role back with nobody told (the grant notices of
// 63ac88c go around it); each begin of an app replacement mails the owner, without limit.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { FloodControl } from "../src/accounts/flood/flood.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { jobRunnerOf } from "../src/http/api/index.ts";
import { authFixture, HOST, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { systemRandom } from "../src/lib/random.ts";
import { createKeyStore, rotateMasterKey } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

const DAY = 86_400_000;

let fx: AuthFixture;
let n = 0;
let admin: { id: string; email: string; token: string };

before(async () => {
  fx = await authFixture();
  // Containment jobs are driven by hand (runJob) so each step happens at a known moment.
  await jobRunnerOf(fx.server)?.stop();
  const a = await fx.user(`second-admin-${++n}@example.org`, { roles: ["admin"] });
  await ensureSecondFactor(fx.app, a.id); // the MFA policy holds an administrator's token while it has no factor
  admin = { id: a.id, email: a.email, token: (await fx.app.accounts.tokens.create(a.id, { name: "desk", scopes: ["admin"] })).token };
});
after(async () => {
  await fx.close();
});

const { withTOTP } = authFlows(() => fx);

function api(method: "GET" | "POST" | "DELETE", url: string, bearer: string, body?: unknown): Promise<LightMyRequestResponse> {
  return fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${bearer}` }, ...(body === undefined ? {} : { payload: body as object }) });
}

/** The security notices of `kinds` queued to `address` so far (the outbox, before delivery). */
async function queued(address: string, kinds: string[]): Promise<string[]> {
  const rows = await fx.app.db.db.selectFrom("outbox_messages").select(["kind"]).where("to_address", "=", address).where("kind", "in", kinds).execute();
  return rows.map((r) => r.kind);
}

const ROLE_NOTICES = ["security.admin-role-given", "security.admin-role-received"];

describe("red team, second look: administrative grants and the app replacement's notices", () => {
  it("attack: an intruder holding an administrator's token who re-arms a dormant administrator by undoing the demote-inactive-admins job is told, as a direct grant is: the undo records role.granted and mails the acting account and the account that holds the role again (ASVS 8.2.2, 6.3.7) (was: the undo re-inserted the role with no event and no notice, a way around the grant's notices)", async () => {
    // A dormant administrator (the Drupal.org lesson): its password leaked long ago, the intruder holds it.
    const dormant = await fx.user(`dormant-${++n}@example.org`, { roles: ["admin"] });
    await fx.app.db.db.updateTable("users").set({ created_at: fx.clock.now() - 200 * DAY, last_login_at: fx.clock.now() - 200 * DAY }).where("id", "=", dormant.id).execute();
    fx.clock.advance(60_000);
    // The service's hygiene: an administrator demoted the inactive administrators (its own job, run to the end).
    const deps = containDeps(fx.app);
    const hygiene = await createContainJob(deps, { levers: ["demote-inactive-admins"], scope: { ids: [dormant.id] }, actor: "cli:ops", options: { inactiveDays: 90 } });
    assert.equal((await runJob(deps, hygiene.id)).status, "done");
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(dormant.id), [], "control: the dormant administrator was demoted");
    fx.clock.advance(DAY);
    // Control: the direct grant is mailed to both accounts (api-roles-notices pins it); the intruder avoids it.
    const before = { acting: await queued(admin.email, ROLE_NOTICES), grantee: await queued(dormant.email, ROLE_NOTICES) };
    // The intruder, with the administrator's token: undo the hygiene job instead of granting.
    const undo = await api("POST", `/api/v1/contain/jobs/${hygiene.id}/undo`, admin.token);
    assert.equal(undo.statusCode, 202, undo.body);
    assert.equal((await runJob(deps, (undo.json() as { job: { id: string } }).job.id)).status, "done");
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(dormant.id), ["admin"], "control: the undo handed the administrator's role back");
    const told = {
      acting: (await queued(admin.email, ROLE_NOTICES)).slice(before.acting.length),
      grantee: (await queued(dormant.email, ROLE_NOTICES)).slice(before.grantee.length),
    };
    // Secure: an administrative role handed back is told as one granted is — to the account whose request did it, and to
    // the account that holds it again.
    assert.deepEqual(told, { acting: ["security.admin-role-given"], grantee: ["security.admin-role-received"] },
      "an undo made an account an administrator again with nobody told");
  });

  it("attack: a session cannot mail the owner without limit by beginning an authenticator-app replacement again and again: 5 begins an hour per account, then 429 BULWARK_ERR_MFA_REPLACE_RATE (recovery-code sets likewise) (ASVS 2.4.1, 6.3.7) (was: one begin and one notice per call, unthrottled)", async () => {
    const o = await withTOTP(`flooded-${++n}@example.org`);
    const tries = 25;
    let begun = 0;
    for (let i = 0; i < tries; i++) {
      const res = await o.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
      if (res.statusCode === 200) begun++;
    }
    const mailed = (await queued(o.email, ["security.mfa-replacement-begun"])).length;
    assert.ok(begun > 0, "control: a begin is allowed");
    // Secure: repeated begins are throttled or their notices bounded (as the other notices an actor can repeat at will:
    // suspiciousSignIn keys them by the hour); the owner's mailbox is not a channel the session fills at will.
    assert.ok(mailed < tries, `${mailed} "replacement started" notices were queued for ${begun} of ${tries} begins within a minute`);
  });

  it("attack: a replacement the intruder began from a copy of the owner's session (keeping the seed) cannot be confirmed with that copy once the owner re-authenticates in their browser: the rotated-away session id the replacement was bound to confirms nothing (ASVS 7.2.4, 6.5.6)", async () => {
    const o = await withTOTP(`rotated-${++n}@example.org`);
    // The intruder copies the owner's cookie to its own machine and begins there, keeping the seed.
    const thief = fx.browser({ newDevice: true });
    thief.cookie = o.b.cookie;
    const begun = await thief.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const seed = begun.json().secret as string;
    const appBefore = await fx.app.db.db.selectFrom("mfa_totp").select("secret_ct").where("user_id", "=", o.id).executeTakeFirstOrThrow();
    // A CSRF token of the session, taken while it lived: the refusal below must be the session's, not the token's.
    const thiefCsrf = await thief.csrf();
    // The owner, at their computer, re-authenticates (the freshness window ran out): the session is rotated.
    fx.clock.advance(11 * 60_000);
    const reauth = await o.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: o.password, totp: totpCode(o.secret, fx.clock.now()) } });
    assert.equal(reauth.statusCode, 200, reauth.body);
    fx.clock.advance(STEP);
    // Within the replacement's 30 minutes, with the seed's current code.
    const byThief = await thief.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: thiefCsrf, body: { code: totpCode(seed, fx.clock.now()) } });
    const appAfter = await fx.app.db.db.selectFrom("mfa_totp").select("secret_ct").where("user_id", "=", o.id).executeTakeFirstOrThrow();
    assert.deepEqual(
      { swapped: appAfter.secret_ct !== appBefore.secret_ct, thief: byThief.statusCode },
      { swapped: false, thief: 401 },
      `the intruder's seed became the account's app (thief's confirm: ${byThief.statusCode} ${byThief.body})`,
    );
  });
});

describe("red team, second look: roles cannot be made administrative behind a grant", () => {
  it("attack: a confederate given a harmless role (no notice, by design) cannot have it turned administrative afterwards — no route changes a role's permissions, a second POST /roles of its name is refused, and deleting it and creating it again takes it from its holders (ASVS 8.2.2)", async () => {
    const role = `helpers-${++n}`;
    const mate = await fx.user(`mate-${n}@attacker.example`);
    const created = await api("POST", "/api/v1/roles", admin.token, { name: role, permissions: ["accounts.read"] });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal((await api("POST", `/api/v1/users/${mate.id}/roles/${role}`, admin.token)).statusCode, 200);
    assert.deepEqual(await queued(mate.email, ROLE_NOTICES), [], "control: a read-only role is granted without a notice");
    // Every way to give the role's holders administrative permissions without a grant.
    const answers: Record<string, number> = {};
    for (const method of ["PUT", "PATCH"] as const) {
      const res = await fx.server.inject({ method, url: `/api/v1/roles/${role}`, headers: { host: HOST, authorization: `Bearer ${admin.token}` }, payload: { permissions: ["admin"] } });
      answers[method] = res.statusCode;
    }
    answers["POST again"] = (await api("POST", "/api/v1/roles", admin.token, { name: role, permissions: ["accounts.read", "admin"] })).statusCode;
    answers["DELETE"] = (await api("DELETE", `/api/v1/roles/${role}`, admin.token)).statusCode;
    answers["POST after DELETE"] = (await api("POST", "/api/v1/roles", admin.token, { name: role, permissions: ["admin"] })).statusCode;
    assert.equal(answers["POST after DELETE"], 201, `control: the name was free again (${JSON.stringify(answers)})`);
    const held = await fx.app.accounts.roles.permissionsOf(mate.id);
    const told = await queued(mate.email, ROLE_NOTICES);
    // Secure: the account holds no administrative permission it was not told of.
    assert.ok(!held.has("admin") || told.includes("security.admin-role-received"),
      `the confederate holds ${JSON.stringify([...held])} untold (answers: ${JSON.stringify(answers)})`);
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(mate.id), [], "the re-created role has no holders");
  });
});

describe("red team, second look: keyed flood-control rows and a master key rotation", () => {
  it("attack: no limiter stores a row key that did not come from Keyring.floodKey — the login (by address, by username, an unknown name), re-authentication, the reset form, an email change's mailbox, a token mint and the app's code guesses all key their flood rows through the keyring (ASVS 14.2.4, 16.2.5)", async () => {
    const own = await authFixture();
    try {
      // Every key the keyring hands out, from now on: a row key not among them was computed some other way.
      const made = new Map<string, string>();
      const ring = own.app.keyring;
      const floodKey = ring.floodKey.bind(ring);
      ring.floodKey = (text: string): string => {
        const key = floodKey(text);
        made.set(key, text);
        return key;
      };
      const flows = authFlows(() => own);
      const o = await flows.withTOTP("keyed-rows-owner@example.org");
      await own.app.db.db.updateTable("users").set({ username: "keyedowner" }).where("id", "=", o.id).execute();
      await own.app.accounts.roles.create({ name: "keyed-reader", permissions: ["audit.read"] }, "test");
      await own.app.accounts.roles.grant(o.id, "keyed-reader", "test");
      const stranger = own.browser({ newDevice: true });
      // The login: a password typed as the login name, the account by its address and by its username.
      for (const identifier of ["Marmalade Summer 2013!", o.email, "keyedowner"]) {
        assert.equal((await stranger.login(identifier, "not the password at all 1")).statusCode, 401);
      }
      // The reset form (per-address mail requests), an email change (the new mailbox's own count), a token mint.
      assert.equal((await stranger.request("POST", "/auth/password/reset/request", { body: { email: o.email } })).statusCode, 202);
      const reauth = await o.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: o.password, totp: totpCode(o.secret, own.clock.now() + STEP) } });
      assert.equal(reauth.statusCode, 200, reauth.body);
      assert.equal((await o.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "keyed-rows-new@example.net" } })).statusCode, 202);
      const minted = await o.b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "keyed", scopes: ["audit.read"] } });
      assert.equal(minted.statusCode, 201, minted.body);
      // Last (a success clears its counter's window): re-authentication with a wrong password, then a wrong app code.
      own.clock.advance(STEP);
      assert.equal((await o.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: "wrong wrong wrong 42" } })).statusCode, 401);
      const wrongCode = await o.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: o.password, totp: "000000" } });
      assert.notEqual(wrongCode.statusCode, 200, wrongCode.body);

      const events = await own.app.db.db.selectFrom("flood_events").select(["scope", "key", "via"]).execute();
      const streaks = await own.app.db.db.selectFrom("flood_streaks").select(["key"]).execute();
      const stored = [...events.flatMap((e) => [e.key, ...(e.via ? [e.via] : [])]), ...streaks.map((r) => r.key)];
      // Control: every limiter wrote rows (the kind a row was keyed under, its text's first part: "ip", "mail:ip", …).
      const kinds = new Set(stored.map((k) => made.get(k)?.split("\u0000")[0]).filter((k) => k !== undefined));
      for (const kind of ["account", "streak", "ip", "mail:ip", "mail-to:ip", "mint:ip", "mfa:account", "mfa:streak"]) {
        assert.ok(kinds.has(kind), `control: a ${kind} row was written (kinds: ${[...kinds].join(", ")})`);
      }
      const foreign = stored.filter((k) => !made.has(k));
      assert.deepEqual(foreign, [], `${foreign.length} of ${stored.length} flood row keys were not made by Keyring.floodKey`);
    } finally {
      await own.close();
    }
  });

  it("attack: a victim's 100-failure stop and an account's full window survive `keys rotate-master`, a second node's keyring and the migrations run again (migration 31 does not run twice): the keys an attacker's reset would need never change (ASVS 6.3.1, 11.1.1); the device key does", async () => {
    const own = await authFixture();
    try {
      const victim = "victim-of-a-botnet@example.org";
      const target = "target-of-five@example.org";
      // The botnet: 100 failures on the victim, from 100 addresses (the streak), and 5 on the target from one.
      for (let i = 0; i < 100; i++) await own.app.accounts.flood.begin({ identifier: victim, ip: `10.1.${i >> 8}.${i & 255}` });
      for (let i = 0; i < 5; i++) await own.app.accounts.flood.begin({ identifier: target, ip: "10.2.0.1" });
      const verdicts = async (flood: FloodControl) => [
        await flood.check({ identifier: victim, ip: "10.9.9.9" }), await flood.check({ identifier: target, ip: "10.2.0.1" }),
      ].map((v) => (v.allowed ? "allowed" : v.reason));
      assert.deepEqual(await verdicts(own.app.accounts.flood), ["consecutive", "account"], "control: both stops stand");
      const tag = own.app.keyring.deviceTag("known-device:x:y:0");
      // The responder rotates the master key after a leak; the migrations run again (a second node's start).
      const newMaster = systemRandom.bytes(32);
      await rotateMasterKey(own.app.db, own.app.keyring, newMaster);
      const again = await migrate(own.app.db, own.clock);
      const ring = await Keyring.open({ masterKey: newMaster, store: createKeyStore(own.app.db), clock: own.clock, random: systemRandom });
      const node = new FloodControl({ database: own.app.db, clock: own.clock, keyOf: (text) => ring.floodKey(text) });
      assert.deepEqual(
        // The device key, unlike the flood key, changes with the master key (ADR 0017's amendment): a copied old master
        // key must forge no known-device cookie; every browser counts as new once after a rotation.
        { stops: await verdicts(node), sameOnThisNode: await verdicts(own.app.accounts.flood), deviceTagChanged: ring.deviceTag("known-device:x:y:0") !== tag },
        { stops: ["consecutive", "account"], sameOnThisNode: ["consecutive", "account"], deviceTagChanged: true },
        `a rotation or a restart reset the stops (migrations applied again: ${JSON.stringify(again)})`,
      );
    } finally {
      await own.close();
    }
  });
});
