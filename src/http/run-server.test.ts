// runServer never keeps serving half-started: when anything after listen fails (here the outbox sender refusing
// its configuration), the server stops listening, the audit log records the stop next to the start, and the error
// reaches the caller (the CLI exits non-zero) — it used to log the error and keep answering /healthz 503.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../app/index.ts";
import type { App } from "../app/types.ts";
import { publicURLOnPortZero, runServer } from "./run-server.ts";

let root: string;
let app: OpenedApp;

before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-run-server-"));
  app = await openApp({
    env: { BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent", PORT: "0", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" },
    mode: "init",
  });
});
after(async () => {
  await app.close();
  rmSync(root, { recursive: true, force: true });
});

/** Resolves true when something accepts a TCP connection at `url`. */
function accepts(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname.replace(/^\[|\]$/g, ""), port: Number(port) });
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

/** The server.start and server.stop events written after `afterSeq`. */
async function lifecycle(afterSeq: number): Promise<Array<{ type: string; data: Record<string, unknown> }>> {
  const rows = await app.db.db.selectFrom("audit_events").select(["type", "data"]).where("seq", ">", afterSeq).where("type", "in", ["server.start", "server.stop"]).orderBy("seq").execute();
  return rows.map((r) => ({ type: r.type, data: JSON.parse(r.data) as Record<string, unknown> }));
}

async function lastSeq(): Promise<number> {
  const row = await app.db.db.selectFrom("audit_events").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst();
  return Number(row?.seq ?? 0);
}

describe("runServer: a start that fails after listen", () => {
  it("stops listening and audits the stop when the outbox sender refuses its configuration (error kept, exit 2)", async () => {
    const from = await lastSeq();
    const broken: App = { ...app, config: { ...app.config, http: { ...app.config.http, mail: { smtp: { host: "localhost", port: 2525, secure: false }, from: "not an email" } } } };
    await assert.rejects(runServer(broken), { code: "BULWARK_ERR_MAIL_CONFIG", kind: "input" });
    const events = await lifecycle(from);
    assert.deepEqual(events.map((e) => e.type), ["server.start", "server.stop"]);
    const url = String(events[0]?.data["url"]);
    assert.match(String(events[1]?.data["reason"]), /start failed/);
    assert.equal(await accepts(url), false, `nothing listens on ${url} any more`);
    assert.ok(app.db.sqlite?.isOpen, "the app stays open for its owner (the CLI) to close, as after a listen failure");
  });

  it("turns a raw error from the mail sender's start into a named runtime failure (exit 3), never an internal error", async () => {
    const from = await lastSeq();
    // Read only when the SMTP transport is built, after listen: stands for any failure of a dependency there.
    const smtp = { host: "localhost", port: 2525, secure: false, get tls(): never { throw new Error("transport exploded"); } };
    const broken: App = { ...app, config: { ...app.config, http: { ...app.config.http, mail: { smtp, from: "security@example.org" } } } };
    await assert.rejects(runServer(broken), (error: Error & { code?: string; kind?: string }) => {
      assert.equal(error.code, "BULWARK_ERR_SERVER_START");
      assert.equal(error.kind, "runtime");
      assert.match(error.message, /transport exploded/);
      assert.match(error.message, /stopped/);
      return true;
    });
    const events = await lifecycle(from);
    assert.deepEqual(events.map((e) => e.type), ["server.start", "server.stop"]);
    assert.equal(await accepts(String(events[0]?.data["url"])), false);
  });
});

describe("publicURLOnPortZero", () => {
  it("warns only for PORT=0 with the public URL built from it, naming the port bound", () => {
    assert.match(publicURLOnPortZero(0, "http://localhost:0", 41234) ?? "", /set BULWARK_PUBLIC_URL \(this server listens on port 41234\)/);
    assert.equal(publicURLOnPortZero(0, "https://accounts.example.org", 41234), null, "a public URL given: links are right");
    assert.equal(publicURLOnPortZero(8080, "http://localhost:8080", 8080), null);
  });
});
