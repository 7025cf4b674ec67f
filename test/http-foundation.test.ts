// The HTTP shell: /healthz, request ids, security headers, JSON errors that hide internals, body limits,
// and `bulwark start` serving /healthz then shutting down gracefully with audit events.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { buildServer } from "../src/http/server.ts";
import { RuntimeFailure, InputError } from "../src/lib/errors.ts";
import { bulwark, MAIN } from "./helpers/cli.ts";

let root: string;
let app: OpenedApp;
before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-http-"));
  app = await openApp({ env: { BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent" }, mode: "init" });
});
after(async () => {
  await app.close();
  rmSync(root, { recursive: true, force: true });
});

describe("HTTP shell", () => {
  it("answers /healthz with the database dialect and security headers", async () => {
    const server = await buildServer(app);
    const res = await server.inject({ method: "GET", url: "/healthz" });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: "ok", database: "sqlite", writes: "ok" });
    assert.match(String(res.headers["content-security-policy"]), /frame-ancestors 'none'/);
    assert.doesNotMatch(String(res.headers["content-security-policy"]), /unsafe-inline/);
    assert.equal(res.headers["x-content-type-options"], "nosniff");
    assert.equal(res.headers["referrer-policy"], "no-referrer");
    assert.equal(res.headers["strict-transport-security"], undefined, "no HSTS over plain HTTP");
    assert.match(String(res.headers["x-request-id"]), /^req_[a-z0-9]{26}$/);
    await server.close();
  });

  it("sends HSTS when the service is published over https, though it listens on plain HTTP behind the proxy", async () => {
    const published = app.config.http.publicURL;
    app.config.http.publicURL = "https://bulwark.example";
    try {
      const server = await buildServer(app);
      const res = await server.inject({ method: "GET", url: "/healthz" });
      assert.equal(res.headers["strict-transport-security"], "max-age=31536000; includeSubDomains");
      await server.close();
    } finally {
      app.config.http.publicURL = published;
    }
  });

  it("answers a URL it cannot decode with our error body and every security header", async () => {
    const server = await buildServer(app);
    const res = await server.inject({ method: "GET", url: "/api/v1/users/%E0%A4%A" });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, "BULWARK_ERR_HTTP_BAD_URL");
    assert.equal(res.json().error.requestId, res.headers["x-request-id"]);
    assert.match(String(res.headers["content-security-policy"]), /default-src 'none'/);
    assert.equal(res.headers["x-content-type-options"], "nosniff");
    assert.equal(res.headers["x-frame-options"], "DENY");
    assert.equal(res.headers["cache-control"], "no-store");
    await server.close();
  });

  it("keeps a plain client request id and replaces a hostile one", async () => {
    const server = await buildServer(app);
    const ok = await server.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": "abc-123" } });
    assert.equal(ok.headers["x-request-id"], "abc-123");
    const bad = await server.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": "a\u0000b<script>" + "x".repeat(100) } });
    assert.match(String(bad.headers["x-request-id"]), /^req_/);
    await server.close();
  });

  it("maps error kinds to statuses and never leaks internals in a 5xx", async () => {
    const server = await buildServer(app);
    server.get("/boom", async () => {
      throw new Error("connection string postgres://admin:hunter2@db/prod failed");
    });
    server.get("/runtime", async () => {
      throw new RuntimeFailure("BULWARK_ERR_X", "disk path /var/secret/thing failed");
    });
    server.get("/input", async () => {
      throw new InputError("BULWARK_ERR_Y", "email is not valid");
    });
    const boom = await server.inject({ method: "GET", url: "/boom" });
    assert.equal(boom.statusCode, 500);
    assert.equal(boom.json().error.code, "BULWARK_ERR_INTERNAL");
    assert.doesNotMatch(boom.body, /hunter2|postgres:/);
    assert.ok(boom.json().error.requestId);
    const runtime = await server.inject({ method: "GET", url: "/runtime" });
    assert.equal(runtime.statusCode, 500);
    assert.doesNotMatch(runtime.body, /\/var\/secret/);
    const input = await server.inject({ method: "GET", url: "/input" });
    assert.equal(input.statusCode, 400);
    assert.deepEqual(input.json().error.code, "BULWARK_ERR_Y");
    const missing = await server.inject({ method: "GET", url: "/nope?x=1" });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, "BULWARK_ERR_NOT_FOUND");
    assert.equal(missing.headers["cache-control"], "no-store", "a 404 is no page to keep: no cache keeps it");
    const apiMissing = await server.inject({ method: "GET", url: "/api/v1/no-such-thing" });
    assert.equal(apiMissing.statusCode, 404);
    assert.equal(apiMissing.headers["cache-control"], "no-store", "docs/api.md: every /api/v1 answer carries no-store, an anonymous 404 too");
    await server.close();
  });

  it("attack: parameter pollution — a JSON body or form repeating a key is refused by name before any route sees it", async () => {
    const server = await buildServer(app);
    try {
      const post = (payload: string, type = "application/json") =>
        server.inject({ method: "POST", url: "/auth/login", headers: { "content-type": type, "sec-fetch-site": "same-origin" }, payload });
      // A proxy or log that reads the first "identifier" sees one account; JSON.parse would log in as the last.
      const top = await post('{"identifier":"alice@example.org","password":"x","identifier":"mallory@example.org"}');
      assert.equal(top.statusCode, 400, top.body);
      assert.deepEqual([top.json().error.code, top.json().error.message], ["BULWARK_ERR_JSON", 'the JSON body has the key "identifier" more than once']);
      const nested = await post('{"identifier":"a@example.org","password":"x","next":"/","extra":{"role":"user","r\\u006fle":"admin"}}');
      assert.equal(nested.statusCode, 400, nested.body);
      assert.equal(nested.json().error.message, 'the JSON body has the key "extra.role" more than once');
      const form = await post("identifier=alice%40example.org&password=x&identifier=mallory%40example.org", "application/x-www-form-urlencoded");
      assert.equal(form.statusCode, 400, form.body);
      assert.deepEqual([form.json().error.code, form.json().error.message], ["BULWARK_ERR_FORM", 'form field "identifier" is given more than once']);
      // What Fastify's own parser refused is still refused; a plain body still reaches the route (401: no such account).
      assert.equal((await post('{"identifier":"a@example.org","password":"x","__proto__":{"admin":true}}')).statusCode, 400);
      assert.equal((await post("")).statusCode, 400);
      assert.equal((await post("{not json")).statusCode, 400);
      const plain = await post('{"identifier":"nobody@example.org","password":"x","same":{"identifier":1}}');
      assert.equal(plain.statusCode, 401, plain.body);
    } finally {
      await server.close();
    }
  });

  it("refuses bodies over the limit with 413", async () => {
    const server = await buildServer(app, { bodyLimit: 1024 });
    server.post("/echo", async (req) => ({ size: JSON.stringify(req.body).length }));
    const res = await server.inject({ method: "POST", url: "/echo", payload: JSON.stringify({ a: "x".repeat(5000) }), headers: { "content-type": "application/json" } });
    assert.equal(res.statusCode, 413);
    assert.ok(res.json().error.code);
    await server.close();
  });
});

describe("bulwark start", () => {
  it("initialises, serves /healthz, and records start and stop on SIGTERM", async () => {
    const dataDir = join(root, "start");
    const env = { ...process.env, BULWARK_DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1" };
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", MAIN, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed: ${stderr}`)), 30_000);
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve(m[1] as string);
        }
      });
      child.stdout.resume();
    });
    const res = await fetch(`${url}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, "ok");
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    const tail = await bulwark(["audit", "tail", "--json"], { env: { BULWARK_DATA_DIR: dataDir } });
    const types = tail.stdout.trim().split("\n").map((l) => JSON.parse(l).type);
    assert.ok(types.includes("server.start"));
    assert.equal(types.at(-1), "server.stop");
    assert.equal((await bulwark(["audit", "verify"], { env: { BULWARK_DATA_DIR: dataDir } })).code, 0);
  });
});
