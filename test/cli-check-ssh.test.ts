// End-to-end: `bulwark check ssh` as an operator runs it: JSON shape, exit codes, Match blocks,
// no running daemon needed, and --cross-check against the installed sshd (skipped loudly without it).
// Most runs are in this process (bulwarkHere); the first test and one --cross-check run spawn the CLI.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ensurePrivsepDir, findSshd, runSshdTest } from "../src/checks/ssh/cross-check.ts";
import { bulwark, bulwarkHere } from "./helpers/cli.ts";


interface Output {
  effective: Record<string, string>;
  findings: Array<{ id: string; severity: string; title: string; evidence: Record<string, unknown> }>;
}

describe("bulwark check ssh", () => {
  let dir: string;
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-cli-ssh-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("SourceLair's configuration (seed 001): root login with a password is critical, exit 1, JSON effective map", async () => {
    const config = file("sourcelair.conf", "PermitRootLogin yes\nPasswordAuthentication yes\n");
    const run = await bulwark(["check", "ssh", "--config", config, "--json"]);
    assert.equal(run.code, 1, run.stderr);
    const out = JSON.parse(run.stdout) as Output;
    for (const k of ["permitrootlogin", "passwordauthentication", "kbdinteractiveauthentication", "pubkeyauthentication", "permitemptypasswords", "maxauthtries", "usepam", "x11forwarding", "ciphers", "macs", "kexalgorithms"]) {
      assert.equal(typeof out.effective[k], "string", k);
    }
    assert.equal(out.effective["permitrootlogin"], "yes");
    const root = out.findings.find((f) => f.id === "ssh.root-login");
    assert.equal(root?.severity, "critical");
    assert.deepEqual([root?.evidence["file"], root?.evidence["line"]], [config, 1]);
    assert.equal(out.findings.find((f) => f.id === "ssh.password-authentication")?.severity, "high");
  });

  test("a hardened configuration exits 0 and needs no running sshd (Lynis skips SSH without one)", async () => {
    const config = file("hardened.conf", "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxAuthTries 3\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((JSON.parse(run.stdout) as Output).findings, []);
  });

  test("reports root login allowed only inside a Match block, naming it", async () => {
    const config = file("match.conf", "PermitRootLogin no\nPasswordAuthentication no\nMaxAuthTries 3\nKbdInteractiveAuthentication no\nMatch Address 10.0.0.0/8\n  PermitRootLogin yes\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /\[CRITICAL\] ssh\.root-login: root login allowed for Address 10\.0\.0\.0\/8/);
  });

  test("--match evaluates for one connection like sshd -T -C", async () => {
    const config = file("match2.conf", "PasswordAuthentication no\nMatch User deploy Address 192.0.2.0/24\n  PasswordAuthentication yes\n");
    const inside = JSON.parse((await bulwarkHere(["check", "ssh", "--config", config, "--match", "user=deploy,host=h,addr=192.0.2.9", "--json"])).stdout) as Output;
    const outside = JSON.parse((await bulwarkHere(["check", "ssh", "--config", config, "--match", "user=deploy,host=h,addr=198.51.100.1", "--json"])).stdout) as Output;
    assert.equal(inside.effective["passwordauthentication"], "yes");
    assert.equal(outside.effective["passwordauthentication"], "no");
  });

  test("relative Includes resolve against --include-base", async () => {
    mkdirSync(join(dir, "conf.d"), { recursive: true });
    writeFileSync(join(dir, "conf.d", "10-root.conf"), "PermitRootLogin yes\n");
    const config = file("inc.conf", "Include conf.d/*.conf\nPermitRootLogin no\n");
    const out = JSON.parse((await bulwarkHere(["check", "ssh", "--config", config, "--include-base", dir, "--json"])).stdout) as Output;
    assert.equal(out.effective["permitrootlogin"], "yes");
  });

  test("an unknown keyword exits 2 naming the file and line", async () => {
    const config = file("bad.conf", "PermitRootLogin no\nFrobnicate yes\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`${config.replaceAll("/", "\\/")} line 2: Bad configuration option: Frobnicate`));
  });

  test("a missing configuration file exits 2 with a clear message", async () => {
    const run = await bulwarkHere(["check", "ssh", "--config", join(dir, "absent.conf")]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /cannot read sshd configuration ".*absent\.conf": no such file/);
  });

  test("a malformed --match exits 2", async () => {
    const config = file("ok.conf", "PermitRootLogin no\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--match", "colour=blue"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--match knows user, host, addr/);
  });

  test("PasswordAuthentication left at its compiled-in default is a high finding, with no daemon needed (Lynis misses both)", async () => {
    const config = file("default-password.conf", "PermitRootLogin no\nKbdInteractiveAuthentication no\nMaxAuthTries 3\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--json"]);
    assert.equal(run.code, 1, run.stderr);
    const out = JSON.parse(run.stdout) as Output;
    assert.equal(out.effective["passwordauthentication"], "yes");
    const finding = out.findings.find((f) => f.id === "ssh.password-authentication");
    assert.equal(finding?.severity, "high");
    assert.equal(finding?.evidence["source"], "compiled-in default");
  });

  test("human output names the effective values and each finding with its severity", async () => {
    const config = file("human.conf", "PermitRootLogin forced-commands-only\nPasswordAuthentication no\nX11Forwarding yes\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--fail-on", "low"]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /^  permitrootlogin forced-commands-only$/m);
    assert.match(run.stdout, /\[INFO\] ssh\.root-login: root login allowed for forced commands/);
    assert.match(run.stdout, /\[LOW\] ssh\.x11-forwarding/);
    assert.equal((await bulwarkHere(["check", "ssh", "--config", config])).code, 0, "nothing at or above the default --fail-on high");
  });

  test("--record stores the ssh run in an initialised Bulwark", async () => {
    const env = { BULWARK_DATA_DIR: join(dir, "data") };
    const init = await bulwarkHere(["init"], { env: env });
    assert.equal(init.code, 0, init.stderr);
    const config = file("record.conf", "PermitRootLogin yes\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--record", "--json"], { env: env });
    assert.equal(run.code, 1, run.stderr);
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(join(dir, "data", "bulwark.db"), { readOnly: true });
    const row = db.prepare("SELECT check_name, findings FROM check_runs").get() as { check_name: string; findings: number };
    db.close();
    assert.deepEqual({ ...row }, { check_name: "ssh", findings: (JSON.parse(run.stdout) as Output).findings.length });
  });

  const sshd = findSshd();
  const sshdUsable = sshd !== null && ensurePrivsepDir();
  test("--match prints the issue's effective keys exactly as sshd -T -C does", { skip: sshdUsable ? false : "sshd not installed" }, async () => {
    const config = file(
      "keys.conf",
      "PermitRootLogin no\nChallengeResponseAuthentication no\nCiphers -*cbc\nMACs +hmac-md5\nKexAlgorithms -ecdh*\n" +
        "Match Address 10.0.0.0/8 User !root,*\n  PermitRootLogin prohibit-password\n  PasswordAuthentication no\n  MaxAuthTries 2\n" +
        "Match LocalPort 2222\n  X11Forwarding yes\n",
    );
    const keys = ["permitrootlogin", "passwordauthentication", "kbdinteractiveauthentication", "pubkeyauthentication", "permitemptypasswords", "maxauthtries", "usepam", "x11forwarding", "ciphers", "macs", "kexalgorithms"];
    for (const spec of ["user=alice,host=h.example.org,addr=10.2.3.4,lport=2222", "user=root,host=h,addr=10.2.3.4,lport=22", "user=alice,host=h,addr=192.0.2.1,lport=22"]) {
      const run = await bulwarkHere(["check", "ssh", "--config", config, "--match", spec, "--json", "--fail-on", "none"]);
      assert.equal(run.code, 0, run.stderr);
      const ours = (JSON.parse(run.stdout) as Output).effective;
      const ctx = Object.fromEntries(spec.split(",").map((kv) => kv.split("=") as [string, string]));
      const theirs = await runSshdTest(sshd as string, config, { ...ctx, lport: Number(ctx["lport"]) });
      assert.ok(theirs.ok, theirs.ok ? "" : theirs.message);
      for (const k of keys) assert.equal(ours[k], theirs.values[k], `${k} for ${spec}`);
    }
  });

  test("--cross-check works on a file with Match LocalPort, which plain sshd -T refuses", { skip: sshdUsable ? false : "sshd not installed" }, async () => {
    const config = file("lport.conf", "PermitRootLogin no\nPasswordAuthentication no\nMatch LocalPort 2222\n  PermitRootLogin yes\n");
    const run = await bulwark(["check", "ssh", "--config", config, "--cross-check", "--json", "--fail-on", "none"]);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as Output;
    assert.deepEqual(out.findings.filter((f) => f.id === "ssh.cross-check"), []);
    assert.ok(out.findings.some((f) => f.id === "ssh.root-login" && /for LocalPort 2222/.test(f.title)));
  });

  test("--cross-check reports what sshd refuses although Bulwark accepts it (values we do not evaluate)", { skip: sshdUsable ? false : "sshd not installed" }, async () => {
    const config = file("unvalidated.conf", "PermitRootLogin no\nStreamLocalBindMask 9999\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--cross-check", "--json", "--fail-on", "medium"]);
    assert.equal(run.code, 1, run.stderr);
    const cross = (JSON.parse(run.stdout) as Output).findings.filter((f) => f.id === "ssh.cross-check");
    assert.equal(cross.length, 1);
    assert.match(cross[0]?.title ?? "", /sshd -T rejected a configuration Bulwark accepted/);
  });

  test("a root login with a password allowed by a Match block inside an Include inside another Match block exits 1", async () => {
    // Missed attack: only MaxAuthTries (low) was reported and the exit code was 0.
    mkdirSync(join(dir, "nested", "inc"), { recursive: true });
    writeFileSync(join(dir, "nested", "inc", "admin.conf"), "Match Address 203.0.113.0/24\n  PermitRootLogin yes\n  PasswordAuthentication yes\n");
    const config = file("nested/sshd_config", "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User root\n  Include inc/admin.conf\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--include-base", join(dir, "nested"), "--json"]);
    assert.equal(run.code, 1, run.stderr);
    const out = JSON.parse(run.stdout) as Output;
    const root = out.findings.find((f) => f.id === "ssh.root-login");
    assert.equal(root?.severity, "critical");
    assert.equal(root?.title, "root login allowed for User root and Address 203.0.113.0/24");
    assert.equal(out.findings.find((f) => f.id === "ssh.password-authentication")?.severity, "high");
    const conn = await bulwarkHere(["check", "ssh", "--config", config, "--include-base", join(dir, "nested"), "--match", "user=root,host=h,addr=203.0.113.5", "--json"]);
    assert.equal(conn.code, 1, conn.stderr);
    assert.equal((JSON.parse(conn.stdout) as Output).effective["permitrootlogin"], "yes");
  });

  test("the nested Match block is evaluated as sshd -T -C evaluates it", { skip: sshdUsable ? false : "sshd not installed" }, async () => {
    mkdirSync(join(dir, "nested2"), { recursive: true });
    writeFileSync(join(dir, "nested2", "admin.conf"), "Match Address 203.0.113.0/24\n  PermitRootLogin yes\n  PasswordAuthentication yes\n");
    const config = file("nested2/sshd_config", `PermitRootLogin no\nPasswordAuthentication no\nMatch User root\n  Include ${join(dir, "nested2", "admin.conf")}\n`);
    for (const spec of ["user=root,host=h,addr=203.0.113.5", "user=root,host=h,addr=192.0.2.1", "user=bob,host=h,addr=203.0.113.5"]) {
      const run = await bulwarkHere(["check", "ssh", "--config", config, "--match", spec, "--cross-check", "--json", "--fail-on", "none"]);
      assert.equal(run.code, 0, run.stderr);
      const out = JSON.parse(run.stdout) as Output;
      assert.deepEqual(out.findings.filter((f) => f.id === "ssh.cross-check"), [], spec);
      assert.equal(out.effective["permitrootlogin"], spec === "user=root,host=h,addr=203.0.113.5" ? "yes" : "no", spec);
    }
  });

  const MOZILLA =
    "# Mozilla OpenSSH guidelines (modern)\nKexAlgorithms curve25519-sha256@libssh.org,ecdh-sha2-nistp521,ecdh-sha2-nistp384,ecdh-sha2-nistp256,diffie-hellman-group-exchange-sha256\n" +
    "Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr\n" +
    "MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256,umac-128@openssh.com\n" +
    "AuthenticationMethods publickey\nLogLevel VERBOSE\nSubsystem sftp  /usr/lib/ssh/sftp-server -f AUTHPRIV -l INFO\nPermitRootLogin No\nUsePrivilegeSeparation sandbox\n";

  test("Mozilla's hardened configuration (AuthenticationMethods publickey, no PasswordAuthentication line) raises no password finding", async () => {
    // False alarm: high ssh.password-authentication and low ssh.kbd-interactive for a keys-only server.
    const config = file("mozilla.conf", MOZILLA);
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--json", "--fail-on", "low"]);
    const out = JSON.parse(run.stdout) as Output;
    assert.equal(out.effective["authenticationmethods"], "publickey");
    assert.deepEqual(out.findings.map((f) => f.id), ["ssh.max-auth-tries"]);
    const rootYes = file("mozilla-root.conf", MOZILLA.replace("PermitRootLogin No", "PermitRootLogin yes"));
    const root = (JSON.parse((await bulwarkHere(["check", "ssh", "--config", rootYes, "--json"])).stdout) as Output).findings.find((f) => f.id === "ssh.root-login");
    assert.equal(root?.severity, "low", "root can only use a key");
  });

  test("Mozilla's configuration: AuthenticationMethods is evaluated as sshd -T does", { skip: sshdUsable ? false : "sshd not installed" }, async () => {
    const config = file("mozilla-cross.conf", `${MOZILLA}Match Address 10.0.0.0/8\n  AuthenticationMethods publickey,keyboard-interactive:pam publickey,password\n`);
    for (const extra of [[], ["--match", "user=alice,host=h,addr=10.1.2.3"], ["--match", "user=alice,host=h,addr=192.0.2.1"]]) {
      const run = await bulwarkHere(["check", "ssh", "--config", config, "--cross-check", "--json", "--fail-on", "none", ...extra]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual((JSON.parse(run.stdout) as Output).findings.filter((f) => f.id === "ssh.cross-check"), [], extra.join(" "));
    }
  });

  test("the human summary shows AuthenticationMethods beside the other evaluated authentication keywords", async () => {
    // Was: only in --json; a reader of the summary saw "passwordauthentication yes" without the list that rules it out.
    const config = file("mozilla-human.conf", MOZILLA);
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--fail-on", "none"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^  authenticationmethods publickey$/m);
    assert.match(run.stdout, /^  passwordauthentication yes$/m);
    const plain = await bulwarkHere(["check", "ssh", "--config", file("plain-human.conf", "PermitRootLogin no\n"), "--fail-on", "none"]);
    assert.match(plain.stdout, /^  authenticationmethods any$/m);
  });

  test("the human output names the line sshd uses, the Match block it sits in, and the line it ignores", async () => {
    // Was: only --json had file and line, and the fix said "Set PasswordAuthentication no" to a responder who just
    // had, below the Include of a drop-in that sshd reads first.
    mkdirSync(join(dir, "human.d"), { recursive: true });
    writeFileSync(join(dir, "human.d", "50-cloud-init.conf"), "PasswordAuthentication yes\n");
    const config = file("human-where.conf", "Include human.d/*.conf\nPermitRootLogin no\nPasswordAuthentication no\nMatch User deploy\n  X11Forwarding yes\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config, "--include-base", dir]);
    assert.equal(run.code, 1, run.stderr);
    const block = (id: string): string => (run.stdout.slice(run.stdout.indexOf(`] ${id}:`)).split("\n[")[0] ?? "");
    const dropIn = join(dir, "human.d", "50-cloud-init.conf");
    assert.ok(block("ssh.password-authentication").includes(`Set by ${dropIn}:1.`), run.stdout);
    assert.ok(block("ssh.password-authentication").includes(`fix: Set PasswordAuthentication no and use public keys. ${config}:3 sets PasswordAuthentication to no, but sshd keeps the first value, from ${dropIn}:1: change or remove that line, or put the setting before the Include at ${config}:1.`), run.stdout);
    assert.ok(block("ssh.x11-forwarding").includes(`Set by ${config}:5, in the Match block at ${config}:4 (User deploy).`), run.stdout);
    // The summary lines keep their shape (scripts read them).
    assert.match(run.stdout, /^  passwordauthentication yes$/m);
    const json = JSON.parse((await bulwarkHere(["check", "ssh", "--config", config, "--include-base", dir, "--json"])).stdout) as Output;
    const pw = json.findings.find((f) => f.id === "ssh.password-authentication");
    assert.deepEqual([pw?.evidence["file"], pw?.evidence["line"], pw?.evidence["includedAt"]], [dropIn, 1, [{ file: config, line: 1 }]]);
    assert.deepEqual(pw?.evidence["ignoredLines"], [{ option: "passwordauthentication", file: config, line: 3, keyword: "PasswordAuthentication", value: "no", reason: "first-value-wins" }]);
  });

  test("an AuthenticationMethods value sshd refuses exits 2 naming the file and line", async () => {
    const config = file("bad-methods.conf", "PermitRootLogin no\nAuthenticationMethods frobnicate\n");
    const run = await bulwarkHere(["check", "ssh", "--config", config]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /bad-methods\.conf line 2: invalid AuthenticationMethods method list/);
  });

  if (!sshdUsable) process.stderr.write("\n*** SKIPPING bulwark check ssh --cross-check tests: sshd (openssh-server) is not installed ***\n\n");
  test("--cross-check agrees with the installed sshd -T", { skip: sshdUsable ? false : "sshd not installed" }, async () => {
    const config = file("cross.conf", "PermitRootLogin no\nCiphers +aes128-cbc\nMatch User bob\n  X11Forwarding yes\n");
    for (const extra of [[], ["--match", "user=bob,host=h,addr=192.0.2.1"]]) {
      const run = await bulwarkHere(["check", "ssh", "--config", config, "--cross-check", "--json", "--fail-on", "none", ...extra]);
      assert.equal(run.code, 0, run.stderr);
      const out = JSON.parse(run.stdout) as Output;
      assert.deepEqual(out.findings.filter((f) => f.id === "ssh.cross-check"), []);
      assert.ok(out.findings.some((f) => f.id === "ssh.weak-algorithms"));
    }
  });
});
