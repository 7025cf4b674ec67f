// `bulwark check logins` (src/checks/logins/): a credential-stuffing wave and what got through it, read back from the
// audit log — over real HTTP logins end to end, and on both dialects from events appended at chosen times (the hourly
// counts are one GROUP BY each dialect must run alike; the sign-ins are read in pages).
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { checkLogins, DEFAULT_LOGINS_OPTIONS } from "../src/checks/logins/index.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";
import { loginFrom } from "./helpers/checks.ts";

const HOUR = 3_600_000;

describe("bulwark check logins, over real sign-ins [sqlite]", () => {
  const fx = sharedFixture();

  const login = (identifier: string, password: string, address: string) => loginFrom(fx, identifier, password, address);

  it("attack: a stuffing wave that guessed one account's password from a new browser is reported high, naming that account and the session to end; the owner's own sign-in from a known browser is not listed (ASVS 6.3.5, 16.3.1)", async () => {
    const victim = await fx.user("stuffed@example.org");
    const regular = await fx.user("regular@example.org");
    const home = fx.browser();
    assert.equal((await home.login(regular.email, regular.password)).statusCode, 200, "the regular user's browser is known from here on");
    const start = Math.floor(fx.clock.now() / HOUR) * HOUR + HOUR;
    fx.clock.set(start);
    // Twelve quiet hours: two mistyped passwords an hour.
    for (let h = 0; h < 12; h++) {
      fx.clock.set(start + h * HOUR + 60_000);
      for (let i = 0; i < 2; i++) assert.equal((await login(`typo${h}-${i}@example.org`, "not it at all", `192.0.2.${10 + 2 * h + i}`)).statusCode, 401);
    }
    // The wave: 110 leaked pairs tried from five addresses in one hour, six of them on the victim's account (one per
    // address, so no window stops them), then its right password from a sixth address and a browser it never used.
    const wave = start + 12 * HOUR;
    fx.clock.set(wave + 60_000);
    for (let i = 0; i < 104; i++) assert.equal((await login(`leaked${i}@example.net`, `hunter${i}`, `198.51.100.${1 + (i % 5)}`)).statusCode, 401);
    for (let i = 0; i < 6; i++) assert.equal((await login(victim.email, `guess number ${i}`, `203.0.113.${10 + i}`)).statusCode, 401);
    const hit = await login(victim.email, victim.password, "203.0.113.99");
    assert.equal(hit.statusCode, 200, hit.body);
    assert.equal((await home.login(regular.email, regular.password)).statusCode, 200, "the regular user, at home, during the wave");
    fx.clock.set(wave + 2 * HOUR);

    const since = new Date(start).toISOString();
    const until = new Date(wave + 2 * HOUR).toISOString();
    const run = await bulwarkInProcess(["check", "logins", "--since", since, "--until", until, "--json"], { BULWARK_DATA_DIR: fx.app.config.dataDir });
    assert.equal(run.code, 1, run.stderr);
    const out = JSON.parse(run.stdout) as { failed: number; medianFailedPerHour: number; waves: Array<Record<string, unknown>>; findings: Array<{ id: string; severity: string; evidence: Record<string, unknown> }> };
    assert.equal(out.failed, 24 + 110);
    assert.equal(out.medianFailedPerHour, 2);
    assert.equal(out.waves.length, 1);
    assert.deepEqual([out.waves[0]!["from"], out.waves[0]!["failed"], out.waves[0]!["succeeded"], out.waves[0]!["newDeviceSignIns"]], [new Date(wave).toISOString(), 110, 2, 1]);
    const waveFinding = out.findings.find((f) => f.id === "logins.failure-wave")!;
    assert.equal(waveFinding.severity, "high");
    const listed = waveFinding.evidence["newDeviceSignInsListed"] as Array<Record<string, unknown>>;
    assert.deepEqual(listed.map((s) => [s["email"], s["userId"], s["ip"], s["sessionId"], s["failuresBefore"]]), [[victim.email, victim.id, "203.0.113.99", hit.json().sessionId, 6]]);
    const after = out.findings.find((f) => f.id === "logins.after-failures")!;
    assert.equal(after.severity, "high");
    assert.deepEqual((after.evidence["signIns"] as Array<Record<string, unknown>>).map((s) => s["sessionId"]), [hit.json().sessionId]);

    // Human output names the account and the session too, and --fail-on none exits 0.
    const human = await bulwarkInProcess(["check", "logins", "--since", since, "--until", until, "--fail-on", "none"], { BULWARK_DATA_DIR: fx.app.config.dataDir });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /\[HIGH\] logins\.failure-wave/);
    assert.ok(human.stdout.includes(`${victim.email} (${victim.id})`) && human.stdout.includes(hit.json().sessionId as string), human.stdout);

    // --ids-out: every reported account, one per line, in a new private file; an existing file is never overwritten.
    const ids = join(fx.app.config.dataDir, "..", "reported-ids.txt");
    const withIds = await bulwarkInProcess(["check", "logins", "--since", since, "--until", until, "--fail-on", "none", "--ids-out", ids], { BULWARK_DATA_DIR: fx.app.config.dataDir });
    assert.equal(withIds.code, 0, withIds.stderr);
    assert.equal(readFileSync(ids, "utf8"), `${victim.id}\n`);
    assert.equal(statSync(ids).mode & 0o777, 0o600);
    const again = await bulwarkInProcess(["check", "logins", "--since", since, "--until", until, "--ids-out", ids], { BULWARK_DATA_DIR: fx.app.config.dataDir });
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /--ids-out .*exists already/);
    assert.equal(readFileSync(ids, "utf8"), `${victim.id}\n`, "left as it was");

    // The quiet hours alone: nothing to report.
    const quiet = await bulwarkInProcess(["check", "logins", "--since", since, "--until", new Date(wave).toISOString(), "--json"], { BULWARK_DATA_DIR: fx.app.config.dataDir });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.deepEqual(JSON.parse(quiet.stdout).findings, []);

    // --time-zone: an IANA name in any case (or an offset), reported as the platform spells it.
    for (const [zone, spelled] of [["europe/berlin", "Europe/Berlin"], ["+05:30", "+05:30"]]) {
      const zoned = await bulwarkInProcess(["check", "logins", "--since", since, "--until", new Date(wave).toISOString(), "--json", "--time-zone", zone!], { BULWARK_DATA_DIR: fx.app.config.dataDir });
      assert.equal(zoned.code, 0, zoned.stderr);
      const report = JSON.parse(zoned.stdout);
      assert.equal(report.timeZone, spelled);
      assert.equal(report.usualByTenMinutes.length, 144);
    }
  });

  it("bad options are refused by name, before the store is read (exit 2)", async () => {
    const env = { BULWARK_DATA_DIR: fx.app.config.dataDir };
    for (const [args, named] of [
      [["--wave-min", "0"], "--wave-min"], [["--wave-factor", "1.5"], "--wave-factor"], [["--streak", "-1"], "--streak"],
      [["--since", "yesterday"], "--since"], [["--since", "2026-11-02", "--until", "2026-11-01"], "--since"],
      [["--time-zone", "Mars/Olympus"], "--time-zone \"Mars/Olympus\""], [["--time-zone", "UTC+2"], "--time-zone \"UTC\\+2\""],
    ] as const) {
      const run = await bulwarkInProcess(["check", "logins", ...args], env);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, new RegExp(named), run.stderr);
    }
  });
});

forEachDialect("checkLogins", (dialect) => {
  it("counts hours in the database, merges adjacent wave hours, pages through sign-ins, and leaves events without the new fields unjudged", async () => {
    const database = await dialect.fresh();
    const clock = new ManualClock(Date.UTC(2026, 11, 1));
    await migrate(database, clock);
    const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(database), clock, random: systemRandom });
    await keyring.ensureKeys();
    const audit = new AuditLog({ database, clock, random: systemRandom, signer: () => keyring.signer() });
    const start = Date.UTC(2026, 11, 1, 0);
    const at = (hour: number, minute: number): void => clock.set(start + hour * HOUR + minute * 60_000);
    const failed = (subject: string) => audit.append({ type: "auth.login.failed", actor: "anonymous", subject, data: { ip: "198.51.100.7", reason: "unknown-account" } });
    const succeeded = (subject: string, data: Record<string, unknown>) => audit.append({ type: "auth.login.succeeded", actor: subject, subject, data });
    for (let h = 0; h < 10; h++) {
      at(h, 5);
      await failed(`id:quiet${h}`);
    }
    // Two adjacent hours of 30 failures each, one every two minutes: one wave of 60.
    for (const h of [10, 11]) {
      for (let i = 0; i < 30; i++) {
        at(h, 2 * i);
        await failed(`id:w${h}-${i % 12}`);
      }
    }
    at(11, 30);
    await succeeded("usr_guessed", { ip: "203.0.113.5", sessionId: "ses_guessed", newDevice: true, failuresBefore: 7 });
    await succeeded("usr_home", { ip: "192.0.2.1", sessionId: "ses_home", newDevice: false, failuresBefore: 0 });
    await succeeded("usr_old", { ip: "192.0.2.2" }); // written before the fields existed
    at(12, 0);
    await succeeded("usr_later", { ip: "203.0.113.6", sessionId: "ses_later", newDevice: true, failuresBefore: 5 });

    const report = await checkLogins(database, { since: start, until: start + 14 * HOUR, ...DEFAULT_LOGINS_OPTIONS, waveMin: 20, pageSize: 2 });
    assert.equal(report.failed, 70);
    assert.equal(report.medianFailedPerHour, 1);
    assert.equal(report.succeeded, 4);
    assert.equal(report.succeededWithoutDetail, 1);
    // accountsTried sums each 10 minutes' distinct identifiers (an upper bound): 5 a bucket, 12 buckets.
    assert.deepEqual(report.waves, [{ from: new Date(start + 10 * HOUR).toISOString(), to: new Date(start + 12 * HOUR).toISOString(), failed: 60, typos: 0, accountsTried: 60, unknownShare: 1, succeeded: 3, newDeviceSignIns: 1,
      // The store being younger than the baseline, the usual is the window's median hour (1) at every hour of the day.
      // Found by its 60 minutes (a bar of 20 at every hour); quoted: the first holding the most, 10:00–11:00 with 30.
      usualFailedPerHour: 1, bars: [{ hours: 1, at: 20, failed: 30, from: new Date(start + 10 * HOUR).toISOString(), to: new Date(start + 11 * HOUR).toISOString() }] }]);
    assert.deepEqual(report.usualByHourOfDay, Array.from({ length: 24 }, () => 1));
    const byId = Object.fromEntries(report.findings.map((f) => [f.id, f]));
    assert.equal(byId["logins.failure-wave"]!.severity, "high");
    assert.deepEqual((byId["logins.failure-wave"]!.evidence["newDeviceSignInsListed"] as Array<{ sessionId: string }>).map((s) => s.sessionId), ["ses_guessed"]);
    assert.deepEqual((byId["logins.after-failures"]!.evidence["signIns"] as Array<{ sessionId: string }>).map((s) => s.sessionId), ["ses_guessed", "ses_later"]);

    // Every failure came from one address, over 34 identifiers: a list being worked through (medium: no sign-in from it).
    assert.deepEqual(report.sprayingAddresses, [{ ip: "198.51.100.7", failed: 70, accounts: 34, signIns: 0 }]);
    assert.equal(byId["logins.spraying-address"]!.severity, "medium");
    // A threshold above the wave: no wave, and the guessed sign-ins and the address are still reported.
    const calm = await checkLogins(database, { since: start, until: start + 14 * HOUR, ...DEFAULT_LOGINS_OPTIONS });
    assert.deepEqual(calm.findings.map((f) => f.id), ["logins.spraying-address", "logins.after-failures"]);
    await assert.rejects(checkLogins(database, { since: start, until: start, ...DEFAULT_LOGINS_OPTIONS }), /window/);
  });
});
