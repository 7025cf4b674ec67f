// End-to-end attacks and mistakes on the `bulwark` command line that used to be misread: an empty option value
// dropped (so containment widened), a global flag ignored, password bytes that are not UTF-8 replaced, the audit
// actor taken from $USER, a stdout write error reported as "chain broken", EOF at a prompt, raw Node errors on bad
// input files, repeated single-value options. Each must now be refused with a message naming what is wrong.
import assert from "node:assert/strict";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { CliContext } from "../src/cli/context.ts";
import { confirmOrRefuse } from "../src/cli/prompt.ts";
import { bulwark, bulwarkInProcess, initSite, type CLISite } from "./helpers/cli.ts";

let root: string;
let site: CLISite;
before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-cli-input-"));
  site = await initSite(join(root, "site"), { here: true });
  for (const n of [1, 2, 3]) {
    const r = await site.runHere(["users", "create", "--email", `admin${n}@example.org`, "--role", "admin", "--generate-password"]);
    assert.equal(r.code, 0, r.stderr);
  }
});
after(() => rmSync(root, { recursive: true, force: true }));

const EMPTY = /^bulwark: (--[a-z-]+) is empty( \(only white space\))?; give a value or leave the option out\n$/;

function assertEmptyRefused(r: { code: number | null; stdout: string; stderr: string }, option: string, what: string): void {
  assert.equal(r.code, 2, `${what}: ${r.stdout}${r.stderr}`);
  const m = EMPTY.exec(r.stderr);
  assert.ok(m, `${what}: ${r.stderr}`);
  assert.equal(m[1], option, what);
}

/** Runs the CLI in this process against the site: refusals happen while the options are read, before any command runs. */
function refusal(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return bulwarkInProcess(args, { BULWARK_DATA_DIR: site.env["BULWARK_DATA_DIR"] });
}

const lockedAdmins = (): number => Number(site.rows("SELECT count(*) AS n FROM users WHERE email LIKE 'admin%' AND locked_at IS NOT NULL")[0]!["n"]);

describe("an empty option value is refused, never dropped (was: dropped, and containment widened)", () => {
  it("contain lock-accounts --role admin --last-login-before \"\" locks nobody, dry run or not", async () => {
    const narrow = await site.run(["contain", "lock-accounts", "--role", "admin", "--last-login-before", "2000-01-01", "--dry-run", "--json"]);
    assert.equal(narrow.code, 0, narrow.stderr);
    assert.equal(JSON.parse(narrow.stdout).users, 0, "the intended scope holds nobody");
    for (const value of ["", "   "]) {
      assertEmptyRefused(await site.runHere(["contain", "lock-accounts", "--role", "admin", "--last-login-before", value, "--dry-run"]), "--last-login-before", `dry run ${JSON.stringify(value)}`);
      assertEmptyRefused(await site.runHere(["contain", "lock-accounts", "--role", "admin", "--last-login-before", value, "--yes"]), "--last-login-before", `real run ${JSON.stringify(value)}`);
    }
    assert.equal(lockedAdmins(), 0, "no administrator was locked");
    assert.equal(site.rows("SELECT count(*) AS n FROM jobs")[0]!["n"], 0, "no job was created");
  });

  it("every scope, time and value option of contain", async () => {
    const options: Array<[string, string[]]> = [
      ["--created-before", []], ["--created-after", []], ["--last-login-before", []], ["--last-login-after", []],
      ["--active-within", []], ["--active-between", ["1d"]], ["--scheme", []], ["--ids", []], ["--role", []],
      ["--incident", []], ["--lock-reason", []], ["--inactive-days", []], ["--batch-size", []],
    ];
    for (const [option, rest] of options) {
      const r = await refusal(["contain", "lock-accounts", "--role", "admin", option, "", ...rest, "--dry-run"]);
      assertEmptyRefused(r, option, option);
    }
  });

  it("audit export --since \"\" and --output \"\" (was: the whole log, on stdout)", async () => {
    for (const option of ["--since", "--output"]) {
      const r = await site.runHere(["audit", "export", option, ""]);
      assertEmptyRefused(r, option, option);
      assert.equal(r.stdout, "", `${option}: nothing exported`);
    }
  });

  it("every other command's value options, in the --opt \"\" and --opt= forms", async () => {
    const sums = site.file("SHA256SUMS", "");
    const csv = site.file("in.csv", "email\nana@example.org\n");
    const cases: Array<[string, string[]]> = [
      ["--since", ["audit", "export", "--since="]],
      ["--file", ["audit", "verify", "--file", ""]],
      ["--checkpoints", ["audit", "verify", "--checkpoints", ""]],
      ["--public-key", ["audit", "verify", "--checkpoints", sums, "--public-key", ""]],
      ["--export", ["audit", "checkpoint", "--export", ""]],
      ["--lines", ["audit", "tail", "--lines", ""]],
      ["--email", ["users", "create", "--email", "", "--generate-password"]],
      ["--username", ["users", "create", "--email", "u@example.org", "--username", " ", "--generate-password"]],
      ["--role", ["users", "create", "--email", "u@example.org", "--role", "", "--generate-password"]],
      ["--permission", ["roles", "create", "r1", "--permission", ""]],
      ["--description", ["roles", "create", "r1", "--permission", "admin", "--description", ""]],
      ["--source", ["users", "import", csv, "--source", "", "--dry-run"]],
      ["--map", ["users", "import", csv, "--map", "", "--dry-run"]],
      ["--salted", ["users", "import", csv, "--salted", "", "--salt-column", "salt", "--dry-run"]],
      ["--batch", ["users", "migrate-hashes", "--batch", "", "--dry-run"]],
      ["--limit", ["outbox", "status", "--limit", ""]],
      ["--users", ["dev", "seed", "--users", ""]],
      ["--policy", ["check", "bucket", "--policy", ""]],
      ["--owner-account", ["check", "bucket", "--policy", sums, "--owner-account", ""]],
      ["--fail-on", ["check", "downloads", sums, "--fail-on", ""]],
      ["--dir", ["check", "downloads", sums, "--dir", ""]],
      ["--year", ["check", "authlog", sums, "--year", ""]],
      ["--config", ["check", "ssh", "--config", ""]],
      ["--baseline", ["check", "files", "--baseline", "", root]],
      ["--exclude", ["check", "files", "--baseline", join(root, "b.json"), "--exclude", "", root]],
    ];
    for (const [option, args] of cases) assertEmptyRefused(await refusal(args), option, args.join(" "));
    assert.equal(existsSync(join(root, "b.json")), false);
    assert.equal(site.rows("SELECT count(*) AS n FROM users WHERE email = 'u@example.org'")[0]!["n"], 0);
  });
});

describe("--data-dir \"\" and --database-url \"\" are refused (was: ignored, and init made a new key in ./bulwark-data)", () => {
  it("init with an empty --data-dir creates nothing", async () => {
    const cwd = join(root, "cwd");
    mkdirSync(cwd);
    for (const args of [["--data-dir", "", "init"], ["--data-dir=", "init"], ["--data-dir", "  ", "init"]]) {
      const r = await bulwark(args, { cwd });
      assertEmptyRefused(r, "--data-dir", args.join(" "));
    }
    assert.deepEqual(readdirSync(cwd), [], "no ./bulwark-data, no key");
  });

  it("an empty --data-dir does not fall back to BULWARK_DATA_DIR, nor --database-url to SQLite", async () => {
    assertEmptyRefused(await bulwark(["--data-dir", "", "audit", "tail", "-n", "1"], { env: site.env }), "--data-dir", "--data-dir with env");
    assertEmptyRefused(await bulwark(["--database-url", "", "audit", "tail", "-n", "1"], { env: site.env }), "--database-url", "--database-url");
  });

  it("an empty --log-level gets the same refusal as every other option (was: commander's \"argument '' is invalid\")", async () => {
    for (const value of ["", "  "]) assertEmptyRefused(await refusal(["--log-level", value, "audit", "tail", "-n", "1"]), "--log-level", JSON.stringify(value));
    const unknown = await refusal(["--log-level", "loud", "audit", "tail", "-n", "1"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--log-level.*'loud' is invalid\. It must be one of fatal, error, warn, info, debug, trace, silent/);
  });
});

describe("a password on stdin that is not UTF-8 is refused (was: bytes replaced by U+FFFD, another password matched)", () => {
  it("users create refuses it and creates no account", async () => {
    // ASVS 6.2.8: a password is verified exactly as received, so one that cannot be received exactly is refused.
    const r = await site.run(["users", "create", "--email", "nonutf@example.org"], Buffer.from("Zq8-\xff\xfe\xfd-Kx9-mountain-river\n", "latin1"));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^bulwark: the password on stdin is not valid UTF-8/);
    assert.equal(site.rows("SELECT count(*) AS n FROM users WHERE email = 'nonutf@example.org'")[0]!["n"], 0);
  });
});

describe("the audit actor is the OS account (was: $USER, which anyone can set)", () => {
  it("USER=mallory changes nothing; every CLI event names cli:<os user>, as init does", async () => {
    const expected = `cli:${userInfo().username}`;
    const env = { ...site.env, USER: "mallory", LOGNAME: "mallory" };
    const dry = await bulwark(["contain", "revoke-sessions", "--role", "admin", "--dry-run"], { env });
    assert.equal(dry.code, 0, dry.stderr);
    const grant = await bulwark(["roles", "grant", "admin1@example.org", "admin"], { env });
    assert.equal(grant.code, 0, grant.stderr);
    const role = await bulwark(["roles", "create", "actor-test", "--permission", "audit.read"], { env });
    assert.equal(role.code, 0, role.stderr);
    const tail = await site.runHere(["audit", "tail", "-n", "1000", "--json"]);
    const events = tail.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; actor: string });
    const init = events.find((e) => e.type === "bulwark.init");
    assert.equal(init?.actor, expected);
    const dryRun = events.filter((e) => e.type === "contain.dry-run");
    assert.ok(dryRun.length > 0);
    for (const e of dryRun) assert.equal(e.actor, expected, e.type);
    const roleEvents = events.filter((e) => e.type.startsWith("role"));
    assert.ok(roleEvents.length > 0, "role changes are audited");
    for (const e of roleEvents) assert.equal(e.actor, expected, e.type);
    assert.equal(events.some((e) => /mallory/.test(e.actor)), false);
  });
});

describe("a stdout write error is an I/O failure, exit 3 (was: a stack trace and exit 1, \"chain broken\")", () => {
  const full = existsSync("/dev/full");
  for (const args of [["audit", "verify"], ["audit", "export"], ["audit", "tail", "--json"]]) {
    it(`${args.join(" ")} > /dev/full`, { skip: !full && "no /dev/full here" }, async () => {
      const fd = openSync("/dev/full", "w");
      try {
        const r = await bulwark(args, { env: site.env, stdout: fd });
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stderr, /^bulwark: cannot write to standard output \(ENOSPC: no space left on device, write\)\n$/);
      } finally {
        closeSync(fd);
      }
    });
  }
});

describe("EOF at a confirmation prompt is a no (was: an unsettled promise, Node's exit 13)", () => {
  function terminalContext(input: PassThrough): CliContext {
    Object.assign(input, { isTTY: true });
    const sink = new PassThrough();
    sink.resume();
    return { stdin: input, stdout: sink, stderr: sink, stderrIsTTY: false, app: () => Promise.reject(new Error("unused")), open: () => Promise.reject(new Error("unused")) };
  }
  const declined = (): Error => new Error("declined");
  const ask = (input: PassThrough): Promise<void> =>
    confirmOrRefuse(terminalContext(input), { question: "Go? ", noTerminal: () => new Error("no terminal"), declined });

  it("refuses as \"no\" does when stdin ends without a line (Ctrl-D)", { timeout: 5000 }, async () => {
    const input = new PassThrough();
    const asked = ask(input);
    setImmediate(() => input.end());
    await assert.rejects(asked, /^Error: declined$/);
  });

  it("refuses when stdin ends after a partial answer, and still passes on \"yes\"", { timeout: 5000 }, async () => {
    const partial = new PassThrough();
    const asked = ask(partial);
    setImmediate(() => partial.end("ye"));
    await assert.rejects(asked, /^Error: declined$/);
    const no = new PassThrough();
    const refused = ask(no);
    setImmediate(() => no.write("no\n"));
    await assert.rejects(refused, /^Error: declined$/);
    const yes = new PassThrough();
    const passed = ask(yes);
    setImmediate(() => yes.write("yes\n"));
    await passed;
  });
});

describe("bad input files: a named error and exit 2 (was: \"internal error: <Node message>\", exit 3)", () => {
  it("a directory given as a file", async () => {
    const dir = join(root, "a-dir");
    mkdirSync(dir);
    for (const [i, [args, message]] of ([
      [["audit", "verify", "--file", dir], /^bulwark: export file .*a-dir is a directory, not a file\n$/],
      [["audit", "verify", "--checkpoints", dir], /^bulwark: checkpoint file .*a-dir is a directory, not a file\n$/],
      [["contain", "revoke-sessions", "--ids", dir, "--dry-run"], /^bulwark: --ids .*a-dir is a directory, not a file\n$/],
    ] as const).entries()) {
      // The first one spawned, as an operator runs it; the others in this process.
      const r = await (i === 0 ? site.run : site.runHere)([...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
    }
  });

  it("a line that is JSON but not an object names the file and the line", async () => {
    for (const value of ["null", "5", "[]", "\"text\""]) {
      const file = site.file(`bad-${value.replace(/\W/g, "q")}.jsonl`, `\n${value}\n`);
      for (const [option, what] of [["--checkpoints", "checkpoint file"], ["--file", "export file"]] as const) {
        const r = await site.runHere(["audit", "verify", option, file]);
        assert.equal(r.code, 2, `${option} ${value}: ${r.stderr}`);
        assert.equal(r.stderr, `bulwark: ${what} ${file}, line 2: not a JSON object\n`, `${option} ${value}`);
      }
    }
  });

  it("an export line whose data cannot be read names the file and the line", async () => {
    const file = site.file("no-data.jsonl", "{}\n");
    const r = await site.runHere(["audit", "verify", "--file", file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^bulwark: export file ${file}, line 1: audit data holds a value of type undefined\\n$`));
    const cp = site.file("cp-missing.jsonl", `${JSON.stringify({ seq: 1 })}\n`);
    const c = await site.runHere(["audit", "verify", "--checkpoints", cp]);
    assert.equal(c.code, 2, c.stderr);
    assert.match(c.stderr, /^bulwark: checkpoint file .*, line 1: needs seq, hash, at, keyId and signature/);
  });

  it("audit checkpoint --export into a missing directory signs nothing", async () => {
    const before = site.rows("SELECT count(*) AS n FROM audit_checkpoints")[0]!["n"];
    const target = join(root, "no-such-dir", "cp.jsonl");
    const r = await site.runHere(["audit", "checkpoint", "--export", target]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, `bulwark: --export ${target}: the directory ${join(root, "no-such-dir")} does not exist\n`);
    assert.equal(site.rows("SELECT count(*) AS n FROM audit_checkpoints")[0]!["n"], before, "no checkpoint was signed");
    const out = join(root, "cp.jsonl");
    const ok = await site.runHere(["audit", "checkpoint", "--export", out]);
    assert.equal(ok.code, 0, ok.stderr);
    const again = await site.runHere(["audit", "checkpoint", "--export", out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already exists; refusing to overwrite it/);
  });
});

describe("options given twice and dry runs that accept what the run refuses", () => {
  it("a single-value option given twice is refused (was: the last one kept silently)", async () => {
    const r = await site.runHere(["users", "create", "--email", "a@example.org", "--email", "b@example.org", "--generate-password"]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, "bulwark: --email is given twice; give it once\n");
    assert.equal(site.rows("SELECT count(*) AS n FROM users WHERE email IN ('a@example.org', 'b@example.org')")[0]!["n"], 0);
    const since = await site.runHere(["audit", "export", "--since", "1d", "--since=2d"]);
    assert.equal(since.code, 2);
    assert.equal(since.stderr, "bulwark: --since is given twice; give it once\n");
  });

  it("repeatable options still repeat", async () => {
    const roles = await site.run(["contain", "revoke-sessions", "--role", "admin", "--role", "admin", "--active-between", "30d", "1d", "--dry-run"]);
    assert.equal(roles.code, 0, roles.stderr);
    const between = await site.runHere(["contain", "revoke-sessions", "--role", "admin", "--active-between", "30d", "--active-between", "1d", "--dry-run"]);
    assert.equal(between.code, 0, between.stderr);
  });

  it("--batch-size out of range is refused by the dry run as by the real run", async () => {
    for (const size of ["0", "99999"]) {
      for (const mode of ["--dry-run", "--yes"]) {
        const r = await site.runHere(["contain", "revoke-sessions", "--all", "--batch-size", size, mode]);
        assert.equal(r.code, 2, `${size} ${mode}: ${r.stdout}`);
        assert.match(r.stderr, /--batch-size must be between 1 and 5000/);
      }
    }
  });
});

describe("check files still takes repeated --exclude", () => {
  it("records a baseline without the two excluded directories", async () => {
    const tree = join(root, "tree");
    mkdirSync(join(tree, "a"), { recursive: true });
    mkdirSync(join(tree, "b"));
    writeFileSync(join(tree, "c.txt"), "c");
    const entries = async (name: string, excludes: string[], run: CLISite["run"] = site.run): Promise<number> => {
      const r = await run(["check", "files", "--baseline", join(root, name), ...excludes.flatMap((e) => ["--exclude", join(tree, e)]), tree, "--json"]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).entries as number;
    };
    // The excluding run spawned, as an operator runs it; the full baseline in this process.
    assert.equal(await entries("tree-excluded.json", ["a", "b"]), (await entries("tree-all.json", [], site.runHere)) - 2);
  });
});
