// Red-team round on the operator's CLI paths that landed with the way back from a hijack: `bulwark users set-email
// <identifier> <email> [--dry-run] [--json]` (src/cli/commands/users-admin.ts, src/accounts/email-change/
// set-by-administrator.ts) and `bulwark audit checkpoint --first` (src/cli/commands/audit.ts, src/audit/audit-log.ts).
// Attackers: (1) a hijacker who controls stored text the operator's terminal shows (an address stored by an import or
// an older release, a username they chose) and wants the output to lie, drive the terminal, or the command to move the
// wrong account; (2) an operator's mistake the CLI must catch with exit 2 and no change (an identifier naming two
// accounts, a refused address, a dry run), or a --first that must not vouch for more than the operator meant;
// (3) a failure halfway through the change (a full disk at the outbox write) that must leave nothing half done.
// Each test is an attack that must fail: it passes when the product defends. Three findings were fixed the same day
// (findUser refuses an id that is another's username; inertJSON escapes bidirectional controls; --first is audited);
// their tests say "(was: …)". Temp dirs and in-process CLI runs only.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Outbox } from "../src/notify/outbox.ts";
import { bulwarkInProcess, initSite, type CLISite } from "./helpers/cli.ts";
import { scratchRoot } from "./helpers/scratch.ts";

const QUIET = { BULWARK_LOG_LEVEL: "silent", BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "" };
// What must never reach the operator's terminal raw: C0 (but for \n), DEL, C1 and the bidirectional controls.
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
// An address as an import or an older release could have stored it: a right-to-left override that shows
// "mallory@evil.example" reversed as something else, a C1 CSI that clears the screen, an OSC 52 that sets the
// clipboard, and a newline followed by a forged line of output.
const HOSTILE = "owner\u202eelpmaxe.live@yrollam\u009b2J\u001b]52;c;Y3VybCBldmlsfHNo\u0007\nusr_x now has the address <owner@example.org>@x";

const { root } = scratchRoot("bulwark-set-email-redteam-");
let sites = 0;
const site = (): Promise<CLISite> => initSite(join(root, `site-${++sites}`), { here: true });
const run = (s: CLISite, args: string[]): ReturnType<typeof bulwarkInProcess> => bulwarkInProcess(args, { ...s.env, ...QUIET });

async function createUser(s: CLISite, email: string, extra: string[] = []): Promise<string> {
  const r = await run(s, ["users", "create", "--email", email, "--generate-password", "--json", ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { id: string }).id;
}

/** Writes straight into the site's database, as an intruder with the file, an import or an older release would. */
function write(s: CLISite, sql: string, ...params: Array<string | number | null>): void {
  const db = new DatabaseSync(join(s.dir, "data", "bulwark.db"));
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

/** Every table a set-email writes to, counted, and the account's row: what a refused or dry-run change must leave as it was. */
function footprint(s: CLISite, userId: string): unknown {
  const count = (table: string): number => Number(s.rows(`SELECT count(*) AS n FROM ${table}`)[0]!["n"]);
  return {
    events: count("audit_events"), checkpoints: count("audit_checkpoints"), outbox: count("outbox_messages"),
    resets: count("password_reset_tokens"), keys: count("keyring_keys"),
    user: s.rows(`SELECT email, email_key, password_hash, password_invalidated_at, password_unproven, updated_at FROM users WHERE id = '${userId}'`),
  };
}

describe("set-email: which account the operator named", () => {
  it("attack: a username chosen to equal an administrator's id does not make `set-email <that username>` move the administrator's account: text that is one account's id and another's username is refused, naming both (ASVS 8.2.2) (was: the id won, silently)", async () => {
    const s = await site();
    const admin = await createUser(s, "root@example.org", ["--role", "admin"]);
    // The hijacker's own account, its username the administrator's id (usernames may begin with usr_). Its ticket:
    // "I lost my account, username usr_…; please set it to mallory@evil.example". The operator checks out of band
    // that the hijacker owns that account (they do), and runs the command with the username from the ticket.
    const puppet = await createUser(s, "puppet@example.org", ["--username", admin]);
    const before = footprint(s, admin);
    for (const extra of [["--dry-run"], []]) {
      const r = await run(s, ["users", "set-email", admin, "mallory@evil.example", ...extra]);
      assert.equal(r.code, 2, `\`set-email ${admin} ${extra.join(" ")}\` went ahead (exit ${r.code}) though "${admin}" is one account's id and another's username: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${admin}.*${puppet}|${puppet}.*${admin}|ambiguous|two accounts`), "the message names the clash");
    }
    assert.deepEqual(footprint(s, admin), before, "the administrator's account is untouched");
  });
});

describe("set-email: stored text on the operator's terminal", () => {
  it("attack: a stored address with a right-to-left override, CSI, OSC 52 and a newline is shown inert by set-email's human output, dry run and real: no terminal control, no forged line", async () => {
    const s = await site();
    const id = await createUser(s, "placeholder@example.org");
    write(s, "UPDATE users SET email = ? WHERE id = ?", HOSTILE, id);
    for (const [extra, to] of [[["--dry-run"], "owner@example.org"], [[], "owner@example.org"], [[], "OWNER@example.org"]] as const) {
      const r = await run(s, ["users", "set-email", id, to, ...extra]);
      assert.equal(r.code, 0, r.stderr);
      const out = r.stdout + r.stderr;
      assert.equal(TERMINAL_CONTROL.test(out), false, `terminal controls reached the operator raw: ${JSON.stringify(out)}`);
      assert.equal(out.split("\n").filter((line) => line.startsWith("usr_x now has")).length, 0, `a forged line: ${JSON.stringify(out)}`);
    }
  });

  it("attack: `set-email --json` writes a stored address's right-to-left override as an escape, so the JSON on screen reads as the address it holds (was: printed raw, in every --json output)", async () => {
    const s = await site();
    const id = await createUser(s, "placeholder2@example.org");
    // Shows as "owner@example.org" (reversed tail) on a terminal; holds "owner\u202egro.elpmaxe@x".
    const stored = "owner\u202egro.elpmaxe@x";
    write(s, "UPDATE users SET email = ? WHERE id = ?", stored, id);
    for (const extra of [["--dry-run", "--json"], ["--json"]]) {
      const r = await run(s, ["users", "set-email", id, "back@example.org", ...extra]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).oldEmail, stored, "the JSON still parses to the stored address");
      assert.equal(TERMINAL_CONTROL.test(r.stdout), false, `\`set-email ${extra.join(" ")}\` wrote a bidirectional control raw: ${JSON.stringify(r.stdout)}`);
    }
  });
});

describe("set-email: an operator's mistake changes nothing", () => {
  it("attack: an unknown account, an invalid, undeliverable, taken or look-alike address are exit 2 with the reason, dry run or not, and write no event, outbox row, reset link or key; a valid dry run writes nothing either", async () => {
    const s = await site();
    const id = await createUser(s, "target@example.org");
    await createUser(s, "taken@example.org");
    await createUser(s, "pay@example.org");
    const before = footprint(s, id);
    for (const [identifier, email, reason] of [
      ["nobody@example.org", "owner@example.org", /no user "nobody@example\.org"/],
      ["usr_aaaaaaaaaaaaaaaaaaaaaaaaaa", "owner@example.org", /no user/],
      [id, "no-at-sign", /not an address/],
      [id, "jos\u00e9@example.org", /./],
      [id, "Taken@Example.org", /already|taken/i],
      // A whole-Cyrillic look-alike of pay@example.org: refused (as undeliverable before the skeleton rule is reached).
      [id, "\u0440\u0430\u0443@example.org", /./],
      [id, "owner\u200b@example.org", /invisible/],
    ] as const) {
      for (const extra of [["--dry-run"], ["--json"], []]) {
        const r = await run(s, ["users", "set-email", identifier, email, ...extra]);
        assert.equal(r.code, 2, `${identifier} → ${JSON.stringify(email)} ${extra.join(" ")}: exit ${r.code} ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, reason);
        assert.equal(r.stdout, "", "nothing printed as if it had worked");
      }
    }
    const dry = await run(s, ["users", "set-email", id, "owner@example.org", "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(JSON.parse(dry.stdout).changed, true);
    assert.deepEqual(footprint(s, id), before, "nothing was written");
  });
});

describe("set-email: a failure halfway", () => {
  it("attack: a full disk at the outbox write, after the address, the password, the links and the audit event were written, rolls all of them back: exit 3, nothing printed as done, and the retry does the whole change", async () => {
    const s = await site();
    const id = await createUser(s, "hijacked@evil.example");
    const before = footprint(s, id);
    const enqueue = Outbox.prototype.enqueue;
    Outbox.prototype.enqueue = async function () {
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    };
    let r;
    try {
      r = await run(s, ["users", "set-email", id, "owner@example.org"]);
    } finally {
      Outbox.prototype.enqueue = enqueue;
    }
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.equal(r.stdout, "", "no line says the address was set");
    assert.doesNotMatch(r.stderr, /now has the address|nothing to do/);
    assert.deepEqual(footprint(s, id), before, "one transaction: the address, password mark, audit event and reset link are all rolled back");
    const retry = await run(s, ["users", "set-email", id, "owner@example.org", "--json"]);
    assert.equal(retry.code, 0, retry.stderr);
    const outcome = JSON.parse(retry.stdout) as { changed: boolean; passwordInvalidated: boolean; eventId: string };
    assert.deepEqual([outcome.changed, outcome.passwordInvalidated], [true, true], "the retry is not taken for done");
    assert.equal(s.rows(`SELECT id FROM audit_events WHERE id = '${outcome.eventId}'`).length, 1, "the retry's event is stored");
    assert.ok(Number(s.rows("SELECT count(*) AS n FROM outbox_messages")[0]!["n"]) > (before as { outbox: number }).outbox, "the reset link and notices are queued");
  });
});

describe("audit checkpoint --first", () => {
  it("attack: --first on a log that has checkpoints is no wider than a plain checkpoint: an event rewritten after the newest checkpoint is still refused, and nothing is signed", async () => {
    const s = await site();
    await createUser(s, "someone@example.org");
    const checkpoints = s.rows("SELECT seq FROM audit_checkpoints").length;
    assert.ok(checkpoints >= 1, "init signed one");
    // The intruder edits the newest event (no relink: the chain breaks there) and waits for a routine signature.
    const head = Number(s.rows("SELECT max(seq) AS n FROM audit_events")[0]!["n"]);
    write(s, "UPDATE audit_events SET data = ? WHERE seq = ?", JSON.stringify({ via: "rewritten" }), head);
    for (const extra of [["--first"], ["--first", "--json"]]) {
      const r = await run(s, ["audit", "checkpoint", ...extra]);
      assert.notEqual(r.code, 0, `--first signed over a rewritten event: ${r.stdout}`);
    }
    assert.equal(s.rows("SELECT seq FROM audit_checkpoints").length, checkpoints, "nothing was signed");
  });

  it("attack: `audit checkpoint --first` records who vouched for the log (audit.first-checkpoint by cli:<account>), and the checkpoint covers that event (ASVS 16.3.2) (was: no event)", async () => {
    const s = await site();
    // A store as an older release left it: events, keys, no checkpoint (and, as time passes, keys over an hour old;
    // --first is what the operator is told to run, so it is also what an intruder who deleted the checkpoints hopes for).
    write(s, "DELETE FROM audit_checkpoints");
    const before = Number(s.rows("SELECT max(seq) AS n FROM audit_events")[0]!["n"]);
    const r = await run(s, ["audit", "checkpoint", "--first", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const recorded = s.rows(`SELECT type, actor FROM audit_events WHERE seq > ${before}`);
    assert.ok(recorded.some((e) => /checkpoint/.test(String(e["type"])) && /^cli:/.test(String(e["actor"]))),
      `no audit event records that an operator vouched for the log with --first: ${JSON.stringify(recorded)}`);
  });
});
