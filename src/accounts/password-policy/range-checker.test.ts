// The k-anonymity range checker against a local node:http server on 127.0.0.1 that speaks the
// Pwned Passwords range format (never the internet).
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { PasswordPolicyConfigError } from "./errors.ts";
import { sha1Hex } from "./normalize.ts";
import { createPasswordPolicy } from "./policy.ts";
import { createCommonPasswordList } from "./common-list.ts";
import { createRangeBreachChecker } from "./range-checker.ts";

// SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8 (sha1sum).
const PASSWORD_HASH = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8";
const BREACHED = new Map<string, number>([[PASSWORD_HASH, 3_730_471]]);
const PADDED_ONLY = "violet tugboat evening cactus"; // its suffix is served as a padding entry (count 0)

interface Seen {
  url: string;
  headers: IncomingMessage["headers"];
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function startServer(handler: Handler): Promise<{ server: Server; baseUrl: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, baseUrl: `http://127.0.0.1:${port}` };
}

function stopServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

// A faithful little range API: the suffixes of known hashes with the prefix, padding lines with
// count 0, CRLF line endings as the real API sends.
function rangeApi(seen: Seen[]): Handler {
  return (req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    const match = /^\/range\/([0-9A-F]{5})$/.exec(req.url ?? "");
    if (req.method !== "GET" || match === null) {
      res.writeHead(400).end("The hash prefix was not in a valid format");
      return;
    }
    const prefix = match[1] ?? "";
    const lines: string[] = [];
    for (const [hash, count] of BREACHED) if (hash.startsWith(prefix)) lines.push(`${hash.slice(5)}:${count}`);
    const padded = sha1Hex(PADDED_ONLY);
    if (req.headers["add-padding"] === "true") {
      if (padded.startsWith(prefix)) lines.push(`${padded.slice(5)}:0`);
      for (let i = 0; i < 20; i++) lines.push(`${i.toString(16).toUpperCase().padStart(35, "F")}:0`);
    }
    res.writeHead(200, { "content-type": "text/plain" }).end(lines.join("\r\n"));
  };
}

describe("createRangeBreachChecker", () => {
  const seen: Seen[] = [];
  let server: Server;
  let baseUrl: string;
  before(async () => {
    ({ server, baseUrl } = await startServer(rangeApi(seen)));
  });
  after(() => stopServer(server));

  test("reports a breached password with its count", async () => {
    // ASVS 6.2.12.
    const range = createRangeBreachChecker({ baseUrl, timeoutMs: 2000, padding: true });
    assert.deepEqual(await range.check("password"), { status: "breached", count: 3_730_471 });
  });

  test("sends only the 5-digit upper-case prefix, with the padding header and a user agent", async () => {
    seen.length = 0;
    const range = createRangeBreachChecker({ baseUrl: `${baseUrl}/`, timeoutMs: 2000, padding: true });
    await range.check("password");
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.url, "/range/5BAA6");
    assert.equal(seen[0]?.headers["add-padding"], "true");
    assert.equal(seen[0]?.headers["user-agent"], "bulwark-password-policy");
    const everything = JSON.stringify(seen);
    assert.ok(!everything.includes(PASSWORD_HASH.slice(5)), "the suffix left the process");
    assert.ok(!everything.toLowerCase().includes(PASSWORD_HASH.toLowerCase().slice(0, 6)), "more than the prefix left the process");
    assert.equal(range.rangeUrl("5BAA6"), `${baseUrl}/range/5BAA6`);
  });

  test("omits the padding header when padding is off", async () => {
    seen.length = 0;
    await createRangeBreachChecker({ baseUrl, timeoutMs: 2000, padding: false }).check("password");
    assert.equal(seen[0]?.headers["add-padding"], undefined);
  });

  test("treats padding entries (count 0) and absent suffixes as clean", async () => {
    const range = createRangeBreachChecker({ baseUrl, timeoutMs: 2000, padding: true });
    assert.deepEqual(await range.check(PADDED_ONLY), { status: "clean" });
    assert.deepEqual(await range.check("a password nobody has ever used 8d1f"), { status: "clean" });
  });

  test("plugs into the policy as a breach checker", async () => {
    const policy = createPasswordPolicy({
      minLength: 8,
      commonPasswords: createCommonPasswordList([]),
      breachCheckers: [createRangeBreachChecker({ baseUrl, timeoutMs: 2000, padding: true })],
    });
    const result = await policy.check("password");
    assert.deepEqual(result.ok ? [] : result.reasons.map((r) => r.code), ["breached"]);
    assert.deepEqual(await policy.check(PADDED_ONLY), { ok: true });
  });
});

describe("createRangeBreachChecker when the service fails", () => {
  test("fails closed by default and open when configured on an HTTP error", async () => {
    const { server, baseUrl } = await startServer((_req, res) => res.writeHead(503).end("down"));
    try {
      const closed = await createRangeBreachChecker({ baseUrl, timeoutMs: 2000, padding: true }).check("password");
      assert.deepEqual(closed, { status: "unavailable", reason: "range API answered HTTP 503", failClosed: true });
      const open = await createRangeBreachChecker({ baseUrl, timeoutMs: 2000, padding: true, onFailure: "open" }).check("password");
      assert.deepEqual(open, { status: "unavailable", reason: "range API answered HTTP 503", failClosed: false });
    } finally {
      await stopServer(server);
    }
  });

  test("gives up after timeoutMs when the server never answers", async () => {
    const { server, baseUrl } = await startServer(() => {
      /* never answers */
    });
    try {
      const verdict = await createRangeBreachChecker({ baseUrl, timeoutMs: 150, padding: true }).check("password");
      assert.deepEqual(verdict, { status: "unavailable", reason: "range API did not answer within 150 ms", failClosed: true });
    } finally {
      await stopServer(server);
    }
  });

  test("reports a refused connection as unavailable with the reason", async () => {
    const { server, baseUrl } = await startServer(() => undefined);
    await stopServer(server); // the port is now closed
    const verdict = await createRangeBreachChecker({ baseUrl, timeoutMs: 2000, padding: true, onFailure: "open" }).check("x");
    assert.equal(verdict.status, "unavailable");
    assert.ok(verdict.status === "unavailable" && /request failed/.test(verdict.reason) && !verdict.failClosed);
  });

  test("reports a response that is not in the range format as unavailable", async () => {
    const { server, baseUrl } = await startServer((_req, res) => res.writeHead(200).end("<html>captive portal</html>"));
    try {
      const verdict = await createRangeBreachChecker({ baseUrl, timeoutMs: 2000, padding: true }).check("password");
      assert.deepEqual(verdict, { status: "unavailable", reason: "range API malformed response line 1: expected SUFFIX:COUNT", failClosed: true });
    } finally {
      await stopServer(server);
    }
  });

  test("uses an injected fetch", async () => {
    const urls: string[] = [];
    const fakeFetch: typeof fetch = async (input) => {
      urls.push(String(input));
      return new Response("1E4C9B93F3F0682250B6CF8331B7EE68FD8:7\n", { status: 200 });
    };
    const range = createRangeBreachChecker({ baseUrl: "https://range.example.test/pwned", fetch: fakeFetch, timeoutMs: 1000, padding: true });
    assert.deepEqual(await range.check("password"), { status: "breached", count: 7 });
    assert.deepEqual(urls, ["https://range.example.test/pwned/range/5BAA6"]);
  });
});

describe("createRangeBreachChecker configuration", () => {
  test("refuses bad URLs, plain http to other hosts, and out-of-range numbers", () => {
    const bad = [
      { baseUrl: "not a url" },
      { baseUrl: "http://pwned.example.com" },
      { baseUrl: "ftp://127.0.0.1" },
      { baseUrl: "https://user:secret@example.com" },
      { baseUrl: "https://example.com/?q=1" },
      { baseUrl: "https://example.com", timeoutMs: 0 },
      { baseUrl: "https://example.com", timeoutMs: 1.5 },
      { baseUrl: "https://example.com", maxResponseBytes: 10 },
      { baseUrl: "https://example.com", onFailure: "maybe" as "open" },
    ];
    for (const options of bad) assert.throws(() => createRangeBreachChecker(options), PasswordPolicyConfigError, JSON.stringify(options));
    assert.throws(() => createRangeBreachChecker({ baseUrl: "http://10.0.0.1" }), /https \(plain http is allowed for loopback only\)/);
    for (const baseUrl of ["https://example.com", "http://localhost:8080", "http://127.0.0.1", "http://[::1]:9000/x"]) {
      assert.doesNotThrow(() => createRangeBreachChecker({ baseUrl }), baseUrl);
    }
  });
});
