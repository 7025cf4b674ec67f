// The auth-log analysis with its line stage in a worker thread (AuthLogOptions.workers, what `bulwark check authlog`
// uses on a machine with two cores or more) must find exactly what the analysis in one thread finds: the same
// offenders, attacked users, suspect logins, root logins, untrusted writers, unread files and counters, on the same
// inputs read through the same reader. Inputs that cross the worker's protocol at its edges: lines cut by the 1 MiB
// chunks, an overlong line across a chunk boundary, several files (gzip among them) whose findings depend on each other,
// journal entries other writers forged, BSD and rsyslog repeat lines, names with NUL, non-ASCII and separator bytes, a
// last line without its newline, a file mostly not a log. And what must not change either: an input that fails midway
// (corrupt gzip) still counts the lines before, a --matches consumer that throws stops the analysis with its own error,
// and `line` on such an analyzer is refused with a message that says why.
import assert from "node:assert/strict";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, it } from "node:test";
import { generateAuthLog } from "../bench/checks/authlog.ts";
import { AuthLogAnalyzer, analyzeFile, analyzeStream, AuthLogUnreadableError } from "../src/checks/authlog/index.ts";
import { EventBatch, replayEvents } from "../src/checks/authlog/line-events.ts";
import type { AuthLogOptions, AuthLogResult, FailureMatch } from "../src/checks/authlog/types.ts";
import { REF, T0, bsd, tempDirs } from "./helpers/authlog-night.ts";

const tempDir = tempDirs("bulwark-authlog-workers-");
const FAIL2BAN_LOGS = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/** Reads `files` in order with one analyzer, in one thread or with a worker; the result and every --matches line. */
async function analyse(files: readonly string[], workers: boolean, options: Partial<AuthLogOptions> = {}): Promise<{ result: AuthLogResult; matches: FailureMatch[] }> {
  const matches: FailureMatch[] = [];
  const analyzer = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0, onFailure: (m) => matches.push(m), ...options, workers });
  for (const file of files) await analyzeFile(analyzer, file);
  return { result: analyzer.finish(), matches };
}

/** Both ways, and the two must agree in everything; returns the result for further checks. */
async function agree(files: readonly string[], options: Partial<AuthLogOptions> = {}): Promise<AuthLogResult> {
  const one = await analyse(files, false, options);
  const two = await analyse(files, true, options);
  assert.deepStrictEqual(two.result, one.result, "the analysis with a worker found what the analysis in one thread found");
  assert.deepStrictEqual(two.matches, one.matches, "the same failures, in the same order, with the same file and line");
  return one.result;
}

/** One `journalctl -o json` line `s` seconds after T0 by `fields`' writer. */
function journal(s: number, fields: Record<string, string>): string {
  const micros = String((T0 + s * 1000) * 1000);
  return JSON.stringify({ __REALTIME_TIMESTAMP: micros, _BOOT_ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", _HOSTNAME: "web", ...fields });
}

/** A night of edge cases, as one string (`\n` line ends unless a line brings its own). */
function edgeCases(): string {
  const lines: string[] = [];
  for (let i = 0; i < 12; i++) lines.push(`${bsd(i)} web sshd[${100 + i}]: Failed password for root from 203.0.113.9 port ${4000 + i} ssh2`);
  lines.push(`${bsd(13)} web sshd[200]: Accepted password for root from 203.0.113.9 port 4100 ssh2`);
  // rsyslog's repeat, the BSD syslogd's repeat (held events), another host between them.
  lines.push(`${bsd(14)} web sshd[201]: message repeated 5 times: [ Failed password for admin from 198.51.100.7 port 5000 ssh2]`);
  lines.push(`${bsd(15)} web sshd[202]: Failed password for invalid user oracle from 198.51.100.8 port 5001 ssh2`);
  lines.push(`${bsd(16)} db CRON[7]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)`);
  lines.push(`${bsd(17)} web last message repeated 4 times`);
  lines.push(`${bsd(18)} db sshd[300]: Failed password for alice from 2001:db8::1 port 22 ssh2`);
  lines.push(`${bsd(19)} db sshd[301]: Failed password for alice from 2001:db8::2 port 22 ssh2`);
  // Names of bytes: NUL, latin1 bytes that are UTF-8 (é), a separator-looking run, a long name.
  lines.push(`${bsd(20)} web sshd[400]: Failed password for invalid user a\u0000b from 192.0.2.1 port 1 ssh2`);
  lines.push(`${bsd(21)} web sshd[401]: Failed password for invalid user ren\u00c3\u00a9 from 192.0.2.1 port 2 ssh2`);
  lines.push(`${bsd(22)} web sshd[402]: Failed password for invalid user x\u001fy\u001e from 192.0.2.1 port 3 ssh2`);
  lines.push(`${bsd(23)} web sshd[403]: Failed password for invalid user ${"n".repeat(300)} from 192.0.2.1 port 4 ssh2`);
  lines.push(`${bsd(24)} web sshd[404]: Accepted publickey for deploy from 10.0.0.5 port 5 ssh2: ED25519 SHA256:abc`);
  // Journal entries: sshd's own, and a forged one by www-data's logger (its failure not counted, its login reported).
  const sshd = { SYSLOG_IDENTIFIER: "sshd", SYSLOG_PID: "500", _PID: "500", _UID: "0", _COMM: "sshd", _EXE: "/usr/sbin/sshd", _SYSTEMD_UNIT: "ssh.service", _TRANSPORT: "syslog" };
  const forged = { SYSLOG_IDENTIFIER: "sshd", SYSLOG_PID: "501", _PID: "9001", _UID: "33", _COMM: "logger", _EXE: "/usr/bin/logger", _SYSTEMD_UNIT: "php8.2-fpm.service", _TRANSPORT: "syslog" };
  lines.push(journal(25, { ...sshd, MESSAGE: "Failed password for root from 192.0.2.50 port 7 ssh2" }));
  lines.push(journal(26, { ...forged, MESSAGE: "Failed password for root from 192.0.2.99 port 8 ssh2" }));
  lines.push(journal(27, { ...forged, MESSAGE: "Accepted password for bob from 192.0.2.98 port 9 ssh2" }));
  lines.push("-- Boot 0f1e2d3c4b5a69788796a5b4c3d2e1f0 --");
  lines.push("");
  lines.push("\u0001\u0002 not a log line at all \u00ff");
  lines.push(`${bsd(28)} web sshd[600]: Failed password for root from 203.0.113.77 port 1 ssh2\r`);
  return `${lines.join("\n")}\n${bsd(29)} web sshd[601]: Failed password for root from 203.0.113.78 port 2 ssh2`;
}

describe("check authlog with a worker thread finds what one thread finds", () => {
  it("a generated log of 60,000 lines (brute force, sprays, logins, other programs) over several 1 MiB chunks", async () => {
    const dir = tempDir();
    const path = join(dir, "auth.log");
    await generateAuthLog(path, 60_000);
    const result = await agree([path], { referenceMs: Date.UTC(2026, 6, 1) });
    assert.equal(result.stats.lines, 60_000);
    assert.ok(result.stats.failures > 20_000 && result.offenders.length > 100, `control: the log holds attacks (${result.stats.failures} failures)`);
  });

  it("edge cases: repeat lines, other hosts, IPv6 /64s, names with NUL and non-ASCII bytes, forged journal entries, CRLF, no final newline", async () => {
    const dir = tempDir();
    const path = join(dir, "auth.log");
    writeFileSync(path, edgeCases(), "latin1");
    const result = await agree([path]);
    assert.ok(result.stats.untrustedEntries === 2 && result.stats.untrustedLogins === 1, `control: the forged entries were seen (${JSON.stringify(result.stats)})`);
    assert.ok(result.compromises.length > 0 && result.offenders.length > 0, "control: the brute force and the login after it were found");
  });

  it("an overlong line across a chunk boundary, a line cut by one, and a file mostly not a log, among three files (gzip one of them) read in order", async () => {
    const dir = tempDir();
    const filler: string[] = [];
    let size = 0;
    for (let i = 0; size < (1 << 20) - 4000; i++) {
      const line = `${bsd(i % 600)} web sshd[${7000 + i}]: Failed password for invalid user u${i % 97} from 198.51.100.${(i % 250) + 1} port ${1000 + i} ssh2`;
      filler.push(line);
      size += line.length + 1;
    }
    const overlong = `${bsd(700)} web sshd[9999]: Failed password for root from 192.0.2.200 port 1 ssh2 ${"x".repeat(20_000)}`;
    const first = join(dir, "auth.log.2.gz");
    writeFileSync(first, gzipSync(`${[...filler, overlong, ...filler.slice(0, 500)].join("\n")}\n`));
    const second = join(dir, "auth.log.1");
    writeFileSync(second, `${Array.from({ length: 40 }, (_, i) => `junk ${i} \u00ff\u00fe`).join("\n")}\n${bsd(800)} web sshd[1]: Failed password for root from 192.0.2.201 port 1 ssh2\n`, "latin1");
    const third = join(dir, "auth.log");
    writeFileSync(third, edgeCases(), "latin1");
    const result = await agree([first, second, third]);
    assert.equal(result.stats.overlong, 1, "control: the overlong line was counted once");
    assert.equal(result.stats.unreadFiles, 1, "control: the second file was mostly not a log");
    assert.equal(result.stats.files, 3);
  });

  it("a log whose every line has a method of its own (forged with logger): the same results, and the method names past the coded ones travel with their events", async () => {
    const dir = tempDir();
    const path = join(dir, "auth.log");
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) {
      lines.push(`${bsd(i)} web sshd[${i}]: Failed m${i}x for invalid user u${i % 7} from 198.51.100.${(i % 20) + 1} port ${i} ssh2`);
      if (i % 500 === 0) lines.push(`${bsd(i)} web sshd[${i}]: Accepted k${i}y for login${i} from 198.51.100.1 port ${i} ssh2`);
    }
    writeFileSync(path, `${lines.join("\n")}\n`);
    const result = await agree([path]);
    assert.equal(result.stats.failures, 3000);
    // The logins' methods (past the coded ones for most) arrive as written.
    assert.deepEqual(result.compromises.map((c) => c.method).sort(), ["k1000y", "k1500y", "k2000y", "k2500y", "k500y"]);
    // What crosses: at most 256 names coded for the run, the rest in their events' text, read back as written.
    const batch = new EventBatch();
    for (let i = 0; i < 1000; i++) batch.failure("192.0.2.1", { kind: "failed-other", effect: "fail", forget: false, address: "192.0.2.1", user: "root", method: `m${i}`, invalidUser: false }, T0 + i, i + 1);
    const sent = batch.take();
    assert.ok(sent.names.length <= 257, `names coded: ${sent.names.length}`);
    const methods: Array<string | null> = [];
    replayEvents(sent, [], { failure: (_a, e) => methods.push(e.method), success: () => undefined });
    assert.deepEqual(methods, Array.from({ length: 1000 }, (_, i) => `m${i}`));
  });

  it("fail2ban's own sample logs of sshd, as Debian installs them", { skip: existsSync(FAIL2BAN_LOGS) ? false : "fail2ban is not installed (CI installs it)" }, async () => {
    const files = readdirSync(FAIL2BAN_LOGS).filter((f) => /^sshd/.test(f)).map((f) => join(FAIL2BAN_LOGS, f));
    assert.ok(files.length >= 2, `control: sample logs found (${files.join(", ")})`);
    const result = await agree(files, { year: 2013 });
    assert.ok(result.stats.failures > 50, `control: the samples hold failures (${result.stats.failures})`);
  });
});

describe("check authlog with a worker thread: errors", () => {
  it("a gzip file corrupt midway is refused naming it, with the lines before it counted as in one thread", async () => {
    const dir = tempDir();
    const path = join(dir, "auth.log.1.gz");
    const whole = gzipSync(Array.from({ length: 40_000 }, (_, i) => `${bsd(i % 900)} web sshd[${i}]: Failed password for root from 203.0.113.${(i % 200) + 1} port 1 ssh2`).join("\n"));
    const corrupt = Buffer.from(whole);
    for (let i = Math.floor(corrupt.length * 0.7); i < corrupt.length - 8; i += 7) corrupt[i] = (corrupt[i] as number) ^ 0x5a;
    writeFileSync(path, corrupt);
    const outcomes: Array<{ error: unknown; lines: number; failures: number }> = [];
    for (const workers of [false, true]) {
      const analyzer = new AuthLogAnalyzer({ referenceMs: REF, utcOffsetMinutes: 0, workers });
      const error = await analyzeFile(analyzer, path).then(() => null, (e: unknown) => e);
      const result = analyzer.finish();
      outcomes.push({ error, lines: result.stats.lines, failures: result.stats.failures });
    }
    for (const { error } of outcomes) {
      assert.ok(error instanceof AuthLogUnreadableError, `refused as unreadable: ${String(error)}`);
      assert.match(error.message, /auth\.log\.1\.gz/);
    }
    assert.deepEqual({ lines: outcomes[1]?.lines, failures: outcomes[1]?.failures }, { lines: outcomes[0]?.lines, failures: outcomes[0]?.failures });
    assert.ok((outcomes[0]?.lines ?? 0) > 0, "control: some lines came before the corruption");
  });

  it("a --matches consumer that throws (stdout gone) stops the analysis with its own error, and nothing keeps the process alive", async () => {
    const dir = tempDir();
    const path = join(dir, "auth.log");
    await generateAuthLog(path, 60_000);
    const gone = new Error("stdout is gone");
    let calls = 0;
    const analyzer = new AuthLogAnalyzer({
      referenceMs: Date.UTC(2026, 6, 1), workers: true,
      onFailure: () => {
        if (++calls === 1000) throw gone;
      },
    });
    const error = await analyzeFile(analyzer, path).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof AuthLogUnreadableError && error.cause === gone, `the consumer's error, as the reader wraps any (the CLI looks at the cause): ${String(error)}`);
    assert.equal(calls, 1000, "no failure was handed over after the one that threw");
    analyzer.finish();
  });

  it("a consumer that throws while the input sends nothing more (a followed log gone quiet) stops the analysis then, not at the input's next chunk", async () => {
    const lines = Array.from({ length: 50 }, (_, i) => `${bsd(i)} web sshd[${i}]: Failed password for root from 203.0.113.9 port 22 ssh2\n`).join("");
    const gone = new Error("stdout is gone");
    for (const workers of [false, true]) {
      const analyzer = new AuthLogAnalyzer({
        referenceMs: REF, utcOffsetMinutes: 0, workers,
        onFailure: () => {
          throw gone;
        },
      });
      // One chunk, then a read that never settles: `journalctl -f` with nothing new to say.
      const quiet = async function* (): AsyncGenerator<Buffer> {
        yield Buffer.from(lines, "latin1");
        await new Promise<never>(() => undefined);
      };
      // Never settling is the defect; the bound only turns a hang into a failure with a message.
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still waiting for the input"), 30_000)));
      const outcome = await Promise.race([analyzeStream(analyzer, "-", quiet()).then(() => "read to the end", (e: unknown) => e), hung]);
      clearTimeout(timer);
      assert.ok(outcome instanceof AuthLogUnreadableError && outcome.cause === gone, `${workers ? "with a worker" : "in one thread"}: ${String(outcome)}`);
      analyzer.finish();
    }
  });

  it("an analyzer with a worker refuses single lines, saying it reads whole inputs", () => {
    const analyzer = new AuthLogAnalyzer({ referenceMs: REF, workers: true });
    analyzer.beginFile("auth.log");
    assert.throws(() => analyzer.line(`${bsd(0)} web sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2`, 1), /reads whole inputs/);
    analyzer.finish();
  });
});
