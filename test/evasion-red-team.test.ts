// Red-team round: detection evasion against `bulwark check authlog | ssh | files`. The attacker has read Bulwark's
// source and docs/checks.md and shapes the intrusion around what each check judges, so the checks a team runs after
// the intrusion say "nothing wrong" (or something harmless) while the thing they exist to find is there. Footholds:
// the ability to make SSH attempts from addresses of their choosing (authlog); root on the server for a while, leaving
// a way back in that sshd_config does not show as weak (ssh); a shell as the web user, and later root, planting files
// in a recorded tree (files). Each test is an attack that must fail. Six findings, fixed (the names say "was: …"):
// paced spraying and guessing (authlog's slow rules), kbd-interactive through PAM and unreported key sources (ssh), and
// planted web scripts and persistence files rated low (files). In-process library and CLI calls on temp dirs only.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { authLogFindings } from "../src/checks/authlog/findings.ts";
import { analyzeLines } from "../src/checks/authlog/test-helpers.ts";
import type { AuthLogResult } from "../src/checks/authlog/types.ts";
import { compareBaseline, createBaseline } from "../src/checks/files/check.ts";
import { classify } from "../src/checks/files/classify.ts";
import type { FileEntry } from "../src/checks/files/entry.ts";
import { tempDir, testSigner } from "../src/checks/files/test-helpers.ts";
import type { Finding } from "../src/checks/finding.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

const REF = Date.UTC(2026, 10, 22);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) execFileSync("rm", ["-rf", d]);
});

function sandbox(prefix: string): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

const analyze = (lines: readonly string[]): AuthLogResult => analyzeLines(lines, { referenceMs: REF, utcOffsetMinutes: 0 });
const ids = (findings: readonly Finding[]): string => findings.map((f) => `${f.id}/${f.severity}`).join(", ") || "none";
const atLeastHigh = (f: Finding): boolean => f.severity === "high" || f.severity === "critical";

/** A BSD syslog stamp (UTC) `minutes` after Nov 21 00:00 of the reference year. */
function stamp(minutes: number): string {
  const d = new Date(Date.UTC(2026, 10, 21) + minutes * 60_000);
  return `Nov ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
}

// ---------------------------------------------------------------------------------------------------------------------
// authlog: guessing shaped around fail2ban's window (maxretry 5 within findtime 10m), per address and per user
// ---------------------------------------------------------------------------------------------------------------------

describe("authlog: guessing paced under the per-address and per-user windows", () => {
  // ASVS 6.3.1, 16.3.1. The attacker holds the user list of the breached web app (its accounts are also shell
  // accounts here) and tries one common password per account, from one address, one connection every 3 minutes:
  // 100 accounts in 5 hours, never 5 failures within 10 minutes, never more than one failure per user. Then it logs in
  // with the password that worked. Bulwark's own `check logins` judges exactly this shape ("a list being worked through
  // slowly, under every rate, is still a list": logins.spraying-address, at any pace); `check authlog` reports
  // nothing at all and exits 0, so the one account that fell is never named. The same campaign at fail2ban's pace is
  // a critical compromise (the precondition below), so only the pacing hides it.
  test("attack: a password login from an address that failed on 100 different accounts, one try every 3 minutes, is reported high (authlog.success-after-slow-failures: spraying paced under --find-time; ASVS 6.3.1, 16.3.1) (was: reported as nothing)", () => {
    const ATTACKER = "203.0.113.9";
    const spray = (everyMinutes: number): string[] => {
      const lines = Array.from(
        { length: 100 },
        (_, i) => `${stamp(i * everyMinutes)} web sshd[${1000 + i}]: Failed password for user${i} from ${ATTACKER} port ${40000 + i} ssh2`,
      );
      lines.push(`${stamp(100 * everyMinutes + 1)} web sshd[2000]: Accepted password for user57 from ${ATTACKER} port 50000 ssh2`);
      return lines;
    };
    // Precondition: the same spray at a fast pace is a brute force and its login a compromise.
    const fast = authLogFindings(analyze(spray(0.1)));
    assert.ok(fast.some((f) => f.id === "authlog.success-after-failures"), `fast spray: ${ids(fast)}`);

    const r = analyze(spray(3));
    assert.equal(r.stats.failures, 100, "every guess is read and counted as a failure");
    const findings = authLogFindings(r);
    const login = findings.filter((f) => atLeastHigh(f) && JSON.stringify(f).includes("user57"));
    assert.ok(login.length > 0, `the login of user57 from the address that failed on 100 accounts must be reported high or critical; findings: ${ids(findings)}`);
  });

  // ASVS 6.3.1, 16.3.1. A botnet (or a pool of cloud addresses) guesses one shell account's password at 1 try every
  // 3 minutes, each try from a new address: 300 guesses over 15 hours, so no address and no user ever has 5 failures
  // within 10 minutes. Then a password login from an address that never failed. Bulwark's `check logins` raises
  // logins.after-failures for a sign-in after 5 failures in a row on the account at any pace; `check authlog` says
  // nothing (no user brute force, no compromise), exit 0. At fail2ban's pace the same is a critical compromise.
  test("attack: a password login after 300 failed guesses on the account from 300 addresses, one every 3 minutes, is reported high (authlog.success-after-slow-failures: distributed guessing paced under --find-time; ASVS 6.3.1, 16.3.1) (was: reported as nothing)", () => {
    const guesses = (everyMinutes: number): string[] => {
      const lines = Array.from(
        { length: 300 },
        (_, i) => `${stamp(i * everyMinutes)} web sshd[${1000 + i}]: Failed password for deploy from 198.51.${100 + (i >> 8)}.${i & 255} port ${40000 + i} ssh2`,
      );
      lines.push(`${stamp(300 * everyMinutes + 1)} web sshd[2000]: Accepted password for deploy from 192.0.2.200 port 50000 ssh2`);
      return lines;
    };
    // Precondition: the same guesses at a fast pace are a user brute force and the login a compromise.
    const fast = authLogFindings(analyze(guesses(0.1)));
    assert.ok(fast.some((f) => f.id === "authlog.success-after-failures"), `fast botnet: ${ids(fast)}`);

    const r = analyze(guesses(3));
    assert.equal(r.stats.failures, 300, "every guess is read and counted as a failure");
    const findings = authLogFindings(r);
    const login = findings.filter((f) => atLeastHigh(f) && JSON.stringify(f).includes("192.0.2.200"));
    assert.ok(login.length > 0, `the password login of deploy after 300 failed guesses on it must be reported high or critical; findings: ${ids(findings)}`);
  });

  // Pins a documented defence no test held: "a login from any address of an offending /64 is judged as one from an
  // offending address". The attacker rotates through its routed /64 (RFC 7421) while guessing, then comes back with a
  // key it planted (another user, another address of the same /64): still the brute-forcing client. ASVS 6.3.1.
  test("attack: a key login by another user from a fresh address of the IPv6 /64 that brute-forced is refused as innocent (still a critical compromise)", () => {
    const lines = Array.from(
      { length: 12 },
      (_, i) => `Nov 21 04:00:${String(i * 4).padStart(2, "0")} web sshd[${200 + i}]: Failed password for deploy from 2001:db8:1:2::${(i + 1).toString(16)} port ${40000 + i} ssh2`,
    );
    lines.push("Nov 21 05:00:00 web sshd[300]: Accepted publickey for www-data from 2001:db8:1:2:aaaa::77 port 50000 ssh2: ED25519 SHA256:planted");
    const findings = authLogFindings(analyze(lines));
    const critical = findings.filter((f) => f.id === "authlog.success-after-failures");
    assert.equal(critical.length, 1, ids(findings));
    assert.equal(critical[0]?.severity, "critical");
    assert.match(critical[0]?.title ?? "", /www-data logged in from 2001:db8:1:2:aaaa::77/);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// ssh: a way back in that sshd_config does not show as weak
// ---------------------------------------------------------------------------------------------------------------------

describe("ssh: configurations that pass the check and still let the intruder in", () => {
  async function checkSsh(config: string, json = false): Promise<{ code: number; stdout: string; stderr: string }> {
    const dir = sandbox("bulwark-evasion-ssh-");
    const file = join(dir, "sshd_config");
    writeFileSync(file, config);
    return bulwarkInProcess(["check", "ssh", "--config", file, "--include-base", dir, ...(json ? ["--json"] : [])]);
  }

  // ASVS 6.3.1 (password brute force). The intruder, root for a while, re-opens password logins without
  // touching PasswordAuthentication: `KbdInteractiveAuthentication yes` with `UsePAM yes`. Debian's own sshd_config
  // says PAM authentication runs through keyboard-interactive, and with the stock /etc/pam.d/sshd (common-auth,
  // pam_unix) the client is prompted "Password:" and the Unix password is checked: password guessing and stolen
  // passwords work exactly as with `PasswordAuthentication yes`. The check's own detail admits it ("usually means
  // password prompts through PAM, even with PasswordAuthentication no") but rates it medium, below
  // ssh.password-authentication (high), so `bulwark check ssh` at the default --fail-on high exits 0 on this file.
  test("attack: password logins re-enabled through KbdInteractiveAuthentication yes with UsePAM yes (PasswordAuthentication no) fail the default run: ssh.kbd-interactive is high when PAM's stock stack would prompt for the password (ASVS 6.3.1) (was: medium, exit 0)", async () => {
    const r = await checkSsh("PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes\nMaxAuthTries 3\n", true);
    const findings = (JSON.parse(r.stdout) as { findings: Finding[] }).findings;
    // Precondition: the check sees the setting (the gap is its rating, not its parsing).
    assert.ok(findings.some((f) => f.id === "ssh.kbd-interactive"), ids(findings));
    assert.ok(
      findings.some((f) => (f.id === "ssh.kbd-interactive" || f.id === "ssh.password-authentication") && atLeastHigh(f)),
      `password prompts through PAM must be rated like PasswordAuthentication yes (high): ${ids(findings)}`,
    );
    assert.equal(r.code, 1, "the default --fail-on high must fail on a configuration that accepts passwords");
  });

  // MITRE ATT&CK T1098.004 (no ASVS requirement names sshd's key sources). The intruder's way back in, with the configuration still "keys only, no root
  // password": sshd_config(5) — AuthorizedKeysFile takes several files, each tried ("%u" the user name), so a second
  // one in a hidden root-owned place (passes StrictModes) holds the intruder's key for every user, root included with
  // prohibit-password, and survives the team emptying ~/.ssh/authorized_keys; AuthorizedKeysCommand runs a program as
  // AuthorizedKeysCommandUser whose output is accepted as authorized keys; TrustedUserCAKeys makes any certificate
  // signed by that CA valid for every principal it names. None of them is evaluated, listed in `effective` or
  // reported: the run shows one low finding (root by key) and exits 0.
  test("attack: an extra AuthorizedKeysFile, an AuthorizedKeysCommand run as root and a TrustedUserCAKeys planted in sshd_config are each named with their value and line (the intruder's key source; MITRE ATT&CK T1098.004) (was: not reported at all)", async () => {
    const r = await checkSsh(
      [
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "MaxAuthTries 3",
        "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/.cache/%u",
        "AuthorizedKeysCommand /usr/local/libexec/ssh-keys %u",
        "AuthorizedKeysCommandUser root",
        "TrustedUserCAKeys /etc/ssh/.ca.pub",
        "",
      ].join("\n"),
      true,
    );
    assert.notEqual(r.code, 2, `sshd accepts this file, and so must the check: ${r.stderr}`);
    const findings = (JSON.parse(r.stdout) as { findings: Finding[] }).findings;
    for (const [keyword, value] of [
      ["AuthorizedKeysFile", "/etc/ssh/.cache/%u"],
      ["AuthorizedKeysCommand", "/usr/local/libexec/ssh-keys"],
      ["TrustedUserCAKeys", "/etc/ssh/.ca.pub"],
    ] as const) {
      assert.ok(
        findings.some((f) => JSON.stringify(f).includes(value)),
        `${keyword} ${value} (a source of accepted keys outside ~/.ssh/authorized_keys) must be named by a finding; findings: ${ids(findings)}`,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// files: planted webshells and persistence, recorded as harmless additions
// ---------------------------------------------------------------------------------------------------------------------

describe("files: what an intruder plants, rated as harmless", () => {
  const signer = testSigner();
  const clock = new ManualClock();

  // ASVS 16.5.3; the Drupal.org 2013 and Miraheze kind of intrusion. The web user (its foothold: an upload or
  // an RCE in the app) writes a PHP webshell into the recorded web root, and an .htaccess that makes Apache run any
  // upload as PHP (`AddType application/x-httpd-php .jpg`). Both are new files, not changed ones, and outside the
  // system directories, so both are files.added at "low": the compare lists them among routine additions, and a run at
  // the default --fail-on high exits 0 (exit codes, docs/checks.md). A new server-side script or server configuration in a watched tree is the very
  // thing a file-integrity check of a web root exists to raise.
  test("attack: a PHP webshell and an .htaccess that runs uploads as PHP, planted in a recorded web root, are files.added high, failing the default run (ASVS 16.5.3) (was: low, like any upload)", async () => {
    const root = sandbox("bulwark-evasion-files-");
    const web = join(root, "www");
    mkdirSync(join(web, "sites/default/files"), { recursive: true });
    writeFileSync(join(web, "index.php"), "<?php require 'core/bootstrap.php';\n");
    writeFileSync(join(web, "sites/default/files/logo.png"), "\x89PNG\r\n");
    const baseline = join(root, "www.baseline");
    await createBaseline({ paths: [web], out: baseline, signer, clock });

    const shell = join(web, "sites/default/files/cache.php");
    const htaccess = join(web, "sites/default/files/.htaccess");
    writeFileSync(shell, "<?php if (isset($_POST['c'])) system($_POST['c']);\n");
    writeFileSync(htaccess, "AddType application/x-httpd-php .jpg\n");
    const r = await compareBaseline({ baseline, signer });

    const listed = (path: string): Finding[] =>
      r.findings.filter((f) => ((f.evidence["entries"] as Array<{ path: string }> | undefined) ?? []).some((e) => e.path === path));
    // Precondition: both are seen (the gap is how they are rated).
    assert.equal(r.totals.added, 2, ids(r.findings));
    for (const path of [shell, htaccess]) {
      assert.ok(listed(path).length > 0, `${path} is listed`);
      assert.ok(listed(path).some(atLeastHigh), `${path} must be rated high or critical: ${ids(listed(path))}`);
    }
  });

  // ASVS 16.5.3; MITRE ATT&CK T1574.006, T1053.003, T1548.003, T1098.004, T1543.002, T1037. After the web user's
  // foothold comes root, and the classic ways to stay: /etc/ld.so.preload (its library loads into every dynamically
  // linked process, root's included — what a new .so under /lib would do, which is rated high), a cron job, a sudoers
  // drop-in, a key in root's authorized_keys, a systemd unit, an update-motd.d script (run as root by pam_motd at
  // every SSH login). Each is a new file outside the system binary and library directories, so each is files.added
  // "low", like /etc/motd, and the compare of / at the default --fail-on high exits 0.
  test("attack: persistence files added as root (/etc/ld.so.preload, cron.d, sudoers.d, root's authorized_keys, a systemd unit, an update-motd.d script) are rated high (ASVS 16.5.3) (was: low, like /etc/motd)", () => {
    const added = (path: string, mode: string): FileEntry => ({
      path, type: "file", status: "ok", mode, uid: 0, gid: 0, size: 64, mtime: "1", ctime: "1", ino: "7", target: null, sha256: "a".repeat(64), error: null,
    });
    const planted: Array<[string, string]> = [
      ["/etc/ld.so.preload", "0644"],
      ["/etc/cron.d/0hourly-sync", "0644"],
      ["/etc/sudoers.d/90-cloud-sync", "0440"],
      ["/root/.ssh/authorized_keys", "0600"],
      ["/etc/systemd/system/dbus-broker-sync.service", "0644"],
      ["/etc/update-motd.d/99-sync", "0755"],
    ];
    // Precondition: a new shared object under /lib, which does what ld.so.preload does, is rated high today.
    assert.equal(classify({ kind: "added", path: "/lib/x86_64-linux-gnu/libsync.so", before: null, after: added("/lib/x86_64-linux-gnu/libsync.so", "0644"), changes: [], content: true }).severity, "high");
    const low = planted
      .map(([path, mode]) => ({ path, c: classify({ kind: "added", path, before: null, after: added(path, mode), changes: [], content: true }) }))
      .filter(({ c }) => c.severity !== "high" && c.severity !== "critical")
      .map(({ path, c }) => `${path}: ${c.id}/${c.severity} (${c.reason})`);
    assert.deepEqual(low, [], "each planted persistence file must be rated high or critical");
  });
});
