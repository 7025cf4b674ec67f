// Red-team round: the client who controls every header. The attacker sends raw HTTP requests with any Host,
// X-Forwarded-*, Forwarded, X-Real-IP, Origin, Sec-Fetch-Site, Cookie and User-Agent it likes, to a Bulwark server
// deployed directly and behind a trusted reverse proxy (BULWARK_TRUST_PROXY). Its goals: links mailed to a host of
// its own; evidence (audit log, GET /auth/sessions, notices, a token's last use) that names an address or a browser
// it chose, or the owner's instead of its own; per-address limits escaped by header tricks. Each test is an attack
// that must fail. Two findings, fixed: a session made by re-authentication or a password change (and, the same gap,
// a step-up or "sign out everywhere else") recorded the replaced session's address and browser, not the request's.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, GOOD_PASSWORD, HOST, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const OWNER_IP = "192.0.2.10";
const OWNER_UA = "Mozilla/5.0 (Owner's laptop) Firefox/140.0";
const THIEF_IP = "198.51.100.23";
const THIEF_UA = "curl/8.9 (thief)";

/** A client that keeps one session cookie and speaks from socket address `from` with user agent `ua`. */
class Client {
  cookie: string | null = null;
  readonly fx: AuthFixture;
  from: string;
  ua: string;
  constructor(fx: AuthFixture, from: string, ua: string) {
    this.fx = fx;
    this.from = from;
    this.ua = ua;
  }

  async send(method: "GET" | "POST" | "DELETE", url: string, options: { body?: unknown; csrf?: boolean; headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "user-agent": this.ua };
    if (this.cookie) headers["cookie"] = `${SESSION_COOKIE}=${this.cookie}`;
    if (options.csrf) {
      const t = await this.send("GET", "/auth/csrf");
      assert.equal(t.statusCode, 200, t.body);
      headers["x-csrf-token"] = (t.json() as { token: string }).token;
    }
    Object.assign(headers, options.headers ?? {});
    let payload: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(options.body);
    }
    const res = await this.fx.server.inject({ method, url, headers, remoteAddress: this.from, ...(payload === undefined ? {} : { payload }) });
    const set = res.headers["set-cookie"];
    for (const line of Array.isArray(set) ? set : set ? [set] : []) {
      const m = new RegExp(`^${SESSION_COOKIE}=([^;]*)`).exec(line);
      if (m) this.cookie = m[1] ? (m[1] as string) : null;
    }
    return res;
  }
}

type Listed = { id: string; ip: string | null; userAgent: string | null; current: boolean };

async function sessionsSeenBy(c: Client): Promise<Listed[]> {
  const res = await c.send("GET", "/auth/sessions");
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { sessions: Listed[] }).sessions;
}

describe("headers red team: a session copied by a thief and replaced from its own address", () => {
  const fx = sharedFixture();

  /** The owner signs in from home; the thief holds a copy of that cookie (and, as an infostealer's haul has, the password). */
  async function ownerAndThief(email: string): Promise<{ owner: Client; thief: Client; ownerSessionId: string }> {
    await fx.user(email);
    const owner = new Client(fx, OWNER_IP, OWNER_UA);
    const login = await owner.send("POST", "/auth/login", { body: { identifier: email, password: GOOD_PASSWORD } });
    assert.equal(login.statusCode, 200, login.body);
    const thief = new Client(fx, THIEF_IP, THIEF_UA);
    thief.cookie = owner.cookie;
    return { owner, thief, ownerSessionId: (login.json() as { sessionId: string }).sessionId };
  }

  it("attack: a thief re-authenticating on a copied cookie gets a fresh session that the session list shows with the thief's address and browser, so the owner reviewing it sees a stranger (ASVS 7.5.2, 16.2.1) (was: listed with the owner's address and browser, copied from the replaced session)", async () => {
    const { thief } = await ownerAndThief("hdr-reauth@example.org");
    fx.clock.advance(11 * 60_000); // past the re-authentication window: the thief must re-authenticate to change anything
    const reauth = await thief.send("POST", "/auth/reauthenticate", { csrf: true, body: { password: GOOD_PASSWORD } });
    assert.equal(reauth.statusCode, 200, reauth.body);
    const fresh = (reauth.json() as { sessionId: string }).sessionId;
    // The audit event of the re-authentication names the thief's address: the request context is right there.
    const event = (await fx.app.audit.tail(20)).find((e) => e.type === "auth.reauthenticated" && e.data["newSessionId"] === fresh);
    assert.equal(event?.data["ip"], THIEF_IP, "the audit names the thief's address");
    // The session created now, by this request, is listed as what an owner reviewing "where am I signed in" reads.
    const listed = (await sessionsSeenBy(thief)).find((s) => s.id === fresh);
    assert.ok(listed, "the fresh session is listed");
    assert.deepEqual({ ip: listed.ip, userAgent: listed.userAgent }, { ip: THIEF_IP, userAgent: THIEF_UA },
      "the session this request created records this request's address and browser (today: the owner's, copied from the replaced session)");
  });

  it("attack: a thief changing the password on a copied cookie keeps a session that the session list shows with the thief's address and browser (ASVS 7.5.2, 16.2.1) (was: with the owner's, copied from the replaced session)", async () => {
    const { thief } = await ownerAndThief("hdr-pwchange@example.org");
    const changed = await thief.send("POST", "/auth/password/change", { csrf: true, body: { currentPassword: GOOD_PASSWORD, newPassword: "thief chose this long passphrase 42" } });
    assert.equal(changed.statusCode, 200, changed.body);
    const sessions = await sessionsSeenBy(thief);
    assert.equal(sessions.length, 1, "every other session ended: only the thief's remains");
    const [mine] = sessions as [Listed];
    assert.deepEqual({ ip: mine.ip, userAgent: mine.userAgent }, { ip: THIEF_IP, userAgent: THIEF_UA },
      "the one session left, made by the thief's request, names the thief's address and browser (today: the owner's)");
  });

  it("attack: a thief signing everyone else out on a copied cookie keeps a session the list shows with the thief's address and browser, not the owner's (ASVS 7.5.2, 16.2.1) (was: the replaced session's, so the owner's own address)", async () => {
    const { thief } = await ownerAndThief("hdr-signout-others@example.org");
    const ended = await thief.send("DELETE", "/auth/sessions", { csrf: true });
    assert.equal(ended.statusCode, 200, ended.body);
    const sessions = await sessionsSeenBy(thief);
    assert.equal(sessions.length, 1, "the owner's browser is out: only the thief's session remains");
    const [mine] = sessions as [Listed];
    assert.deepEqual({ ip: mine.ip, userAgent: mine.userAgent }, { ip: THIEF_IP, userAgent: THIEF_UA });
  });
});

describe("headers red team: behind a trusted proxy (BULWARK_TRUST_PROXY=127.0.0.1)", () => {
  // The proxy is the socket peer (127.0.0.1, what inject connects from) and appends the client's address as the last
  // X-Forwarded-For hop; every other forwarding header, and every hop before its own, is the client's text.
  const FORWARDED_CLIENT = "203.0.113.9";
  const INNOCENT = "192.0.2.77";
  const clientHeaders = (extraHops: string): Record<string, string> => ({
    "x-forwarded-for": `${extraHops}${FORWARDED_CLIENT}`,
    forwarded: `for=${INNOCENT};proto=https;host=evil.test`, "x-real-ip": INNOCENT, "true-client-ip": INNOCENT, "cf-connecting-ip": INNOCENT,
    "x-forwarded-host": "evil.test", "x-forwarded-proto": "http",
  });
  const fx = sharedFixture(() => authFixture({ BULWARK_TRUST_PROXY: "127.0.0.1", BULWARK_MAIL_REQUESTS_PER_HOUR: "3", BULWARK_REGISTRATION: "open" }));

  it("attack: the client's own Forwarded, X-Real-IP, True-Client-IP, CF-Connecting-IP and hops written before the proxy's reach none of the evidence — the login event, the session list and the new-device notice all name the hop the proxy appended (ASVS 16.2.1, 16.3.1, 6.3.5)", async () => {
    const u = await fx.user("hdr-proxy-evidence@example.org");
    const c = new Client(fx, "127.0.0.1", OWNER_UA);
    const login = await c.send("POST", "/auth/login", { body: { identifier: u.email, password: u.password }, headers: clientHeaders(`${INNOCENT}, 10.0.0.1, `) });
    assert.equal(login.statusCode, 200, login.body);
    const sessionId = (login.json() as { sessionId: string }).sessionId;
    const event = (await fx.app.audit.tail(20)).find((e) => e.type === "auth.login.succeeded" && e.data["sessionId"] === sessionId);
    assert.equal(event?.data["ip"], FORWARDED_CLIENT, "the login event names the proxy's hop");
    const listed = (await sessionsSeenBy(c)).find((s) => s.id === sessionId);
    assert.equal(listed?.ip, FORWARDED_CLIENT, "the session list names the proxy's hop");
    await fx.deliver();
    const notice = fx.mailTo(u.email).find((m) => /new device|new browser|signed in/i.test(m.subject));
    assert.ok(notice, `a new-device notice was mailed (got: ${fx.mailTo(u.email).map((m) => m.subject).join(" | ")})`);
    assert.match(notice.body, new RegExp(`from the IP address ${FORWARDED_CLIENT.replaceAll(".", "\\.")}\\.`));
    for (const text of [JSON.stringify(event?.data), JSON.stringify(listed), notice.body]) {
      assert.equal(text.includes(INNOCENT) || text.includes("10.0.0.1") || text.includes("evil.test"), false, text);
    }
  });

  it("attack: a client spending the hourly mail budget cannot get a second one by spelling the proxy's hop another way (IPv4-mapped, with a port, bracketed), by adding hops or forwarding headers of its own, or by moving from reset requests to sign-ups; another client is still served (ASVS 2.4.1)", async () => {
    const spellings = [FORWARDED_CLIENT, `::ffff:${FORWARDED_CLIENT}`, `${FORWARDED_CLIENT}:51234`, `[::ffff:${FORWARDED_CLIENT}]:443`];
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const hop = spellings[i % spellings.length] as string;
      const headers = { ...clientHeaders(`198.51.100.${i}, `), "x-forwarded-for": `198.51.100.${i}, ${hop}` };
      const url = i % 2 === 0 ? "/auth/password/reset/request" : "/auth/register";
      const res = await fx.server.inject({ method: "POST", url, remoteAddress: "127.0.0.1", headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json", ...headers }, payload: JSON.stringify({ email: `hdr-budget-${i}@example.org` }) });
      statuses.push(res.statusCode);
    }
    assert.deepEqual(statuses, [202, 202, 202, 429, 429, 429, 429, 429], "three mail-sending requests an hour for the one client, however its hop is written");
    const other = await fx.server.inject({ method: "POST", url: "/auth/password/reset/request", remoteAddress: "127.0.0.1", headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json", "x-forwarded-for": `${FORWARDED_CLIENT}, 198.51.100.200` }, payload: JSON.stringify({ email: "hdr-budget-other@example.org" }) });
    assert.equal(other.statusCode, 202, "a client at another address, naming the first one in a hop of its own, still has its budget");
  });

  it("attack: over a real socket, a client's own X-Forwarded-For line before the one the proxy adds (HAProxy's option forwardfor adds a header line), and an absolute-form request target change neither the recorded address nor the mailed link, and a second Host line is refused (400, RFC 9112 §3.2) with nothing mailed (ASVS 16.2.1, 6.4.1) (was: the second Host line was dropped and the request served)", async () => {
    const u = await fx.user("hdr-socket@example.org");
    const client = "203.0.113.50"; // its own mail budget: not the client the test above spent
    await fx.server.listen({ host: "127.0.0.1", port: 0 });
    const { port } = fx.server.server.address() as { port: number };
    const body = JSON.stringify({ email: u.email });
    const raw = (hosts: readonly string[]): string => [
      `POST http://evil.test/auth/password/reset/request HTTP/1.1`,
      ...hosts, `Origin: ${ORIGIN}`, "Sec-Fetch-Site: same-origin",
      `X-Forwarded-For: ${INNOCENT}`, "X-Forwarded-Host: evil.test", `X-Forwarded-For: ${client}`,
      "Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`, "Connection: close", "", body,
    ].join("\r\n");
    const exchange = (text: string): Promise<string> => new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => socket.end(text));
      let out = "";
      socket.setEncoding("latin1").on("data", (d: string) => (out += d)).on("end", () => resolve(out)).on("error", reject);
    });
    // A second Host line: refused before anything reads the request (a proxy keeping the last would name evil.test).
    const doubled = await exchange(raw([`Host: ${HOST}`, "Host: evil.test"]));
    assert.match(doubled, /^HTTP\/1\.1 400 /, doubled.slice(0, 300));
    assert.match(doubled, /BULWARK_ERR_DUPLICATE_HEADER/);
    await fx.deliver();
    assert.equal(fx.mailTo(u.email).length, 0, "nothing was mailed for the refused request");
    const answer = await exchange(raw([`Host: ${HOST}`]));
    // Node routes the absolute-form target by its path; the Host line names our host.
    assert.match(answer, /^HTTP\/1\.1 202 /, answer.slice(0, 300));
    const event = (await fx.app.audit.tail(20)).find((e) => e.type === "auth.password.reset-requested" && e.subject === u.id);
    assert.equal(event?.data["ip"], client, "the last X-Forwarded-For line, the proxy's, is believed");
    await fx.deliver();
    assert.equal(fx.mailTo(u.email).length, 1, "the link was mailed");
    for (const m of fx.mailTo(u.email)) {
      assert.match(m.body, /https:\/\/bulwark\.test\/reset-password#token=/);
      assert.doesNotMatch(m.body, /evil\.test/);
    }
  });
});
