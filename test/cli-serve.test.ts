// `bulwark serve` and the global options, end to end: a listen address the operator got wrong, a bad --port or
// --log-level, are bad input (exit 2) with a message naming the option typed and the reason — not "internal
// error" (exit 3), and not the name of an environment variable the operator never set. Loopback only: the host
// that does not resolve is answered by a stubbed lookup, no DNS query leaves the machine.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MAIN, type CLIResult } from "./helpers/cli.ts";

let dir: string;
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent", ...extra };
  for (const key of ["HOST", "PORT", "BULWARK_DATABASE_URL", "BULWARK_MASTER_KEY"]) if (!(key in extra)) delete e[key];
  return e;
};

/** Runs the CLI; a server that did start (the defect under test being back) is killed so the test fails instead of hanging. */
function run(args: string[], options: { env?: NodeJS.ProcessEnv; preload?: string } = {}): Promise<CLIResult> {
  return new Promise((resolve, reject) => {
    const node = ["--disable-warning=ExperimentalWarning", ...(options.preload ? ["--import", options.preload] : []), MAIN, ...args];
    const child = spawn(process.execPath, node, { env: options.env ?? env(), stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("is listening on")) child.kill("SIGTERM");
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end();
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-cli-serve-"));
  const init = await run(["init"]);
  assert.equal(init.code, 0, init.stderr);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("bulwark serve: a listen address the operator got wrong", () => {
  let busy: Server;
  let port: number;
  before(async () => {
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    port = (busy.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((resolve) => busy.close(resolve));
  });

  it("a port already in use exits 2 naming --port (or PORT, when that is what was set) and the reason (was: internal error, exit 3)", async () => {
    const r = await run(["serve", "--host", "127.0.0.1", "--port", String(port)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^bulwark: --port ${port} is already in use on 127\\.0\\.0\\.1 \\(EADDRINUSE\\)`));
    assert.doesNotMatch(r.stderr, /internal error/);
    const fromEnv = await run(["serve"], { env: env({ HOST: "127.0.0.1", PORT: String(port) }) });
    assert.equal(fromEnv.code, 2, fromEnv.stderr);
    assert.match(fromEnv.stderr, new RegExp(`^bulwark: PORT ${port} is already in use`));
  });

  const nonlocalBind = existsSync("/proc/sys/net/ipv4/ip_nonlocal_bind") && readFileSync("/proc/sys/net/ipv4/ip_nonlocal_bind", "utf8").trim() !== "0";
  it("an address that is not one of this machine's exits 2 naming --host (was: internal error, exit 3)", { skip: nonlocalBind ? "net.ipv4.ip_nonlocal_bind is on: any address can be bound" : false }, async () => {
    // 192.0.2.1 (TEST-NET-1, RFC 5737) is never assigned to a machine; binding it sends nothing.
    const r = await run(["serve", "--host", "192.0.2.1", "--port", "0"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^bulwark: --host "192\.0\.2\.1" is not an address of this machine \(EADDRNOTAVAIL\)/);
    assert.doesNotMatch(r.stderr, /internal error/);
  });

  it("a host that does not resolve exits 2 naming --host (was: internal error getaddrinfo ENOTFOUND, exit 3)", async () => {
    // The resolver answers ENOTFOUND for 999.1.1.1 as a real one does, without a query leaving the machine.
    const stub = join(dir, "dns-stub.mjs");
    writeFileSync(stub, `import dns from "node:dns";
const lookup = dns.lookup;
dns.lookup = function (host, ...rest) {
  if (host !== "999.1.1.1") return lookup.call(this, host, ...rest);
  process.nextTick(rest[rest.length - 1], Object.assign(new Error("getaddrinfo ENOTFOUND " + host), { code: "ENOTFOUND", syscall: "getaddrinfo", hostname: host }));
  return {};
};
`);
    const r = await run(["serve", "--host", "999.1.1.1", "--port", "0"], { preload: stub });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^bulwark: --host "999\.1\.1\.1" does not resolve to an address \(ENOTFOUND\)/);
    assert.doesNotMatch(r.stderr, /internal error/);
  });
});

describe("options named as typed", () => {
  it("serve --port abc and a --host with a space name the option, not PORT or HOST", async () => {
    const port = await run(["serve", "--port", "abc"]);
    assert.equal(port.code, 2, port.stderr);
    assert.match(port.stderr, /^bulwark: --port must be an integer between 0 and 65535, got "abc"/);
    const host = await run(["serve", "--host", "local host"]);
    assert.equal(host.code, 2, host.stderr);
    assert.match(host.stderr, /^bulwark: --host must be a host name or IP address, got "local host"/);
  });

  it("--log-level bogus names --log-level and the levels, not BULWARK_LOG_LEVEL; the variable is still named when it is wrong", async () => {
    const flag = await run(["--log-level", "bogus", "init"]);
    assert.equal(flag.code, 2, flag.stderr);
    assert.match(flag.stderr, /--log-level <level>' argument 'bogus' is invalid\. It must be one of fatal, error, warn, info, debug, trace, silent/);
    assert.doesNotMatch(flag.stderr, /BULWARK_LOG_LEVEL/);
    assert.equal((await run(["--log-level", "WARN", "init"])).code, 0, "levels are case-insensitive, as BULWARK_LOG_LEVEL");
    const variable = await run(["init"], { env: env({ BULWARK_LOG_LEVEL: "loud" }) });
    assert.equal(variable.code, 2, variable.stderr);
    assert.match(variable.stderr, /BULWARK_LOG_LEVEL must be one of/);
  });
});
