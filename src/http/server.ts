// The Fastify shell: request ids, structured logs, security headers, body limits, an error handler that
// maps error codes to statuses and hides internals, and /healthz. Routes of each domain plug in here.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { BlockList, isIP } from "node:net";
import type { Duplex } from "node:stream";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyError, type FastifyReply } from "fastify";
import type { App } from "../app/types.ts";
import { ipBucket } from "../accounts/flood/ip-bucket.ts";
import { newId } from "../crypto/tokens.ts";
import { isBulwarkError, Unavailable } from "../lib/errors.ts";
import { storeBusyError } from "../store/errors.ts";
import { inertJSONText } from "../lib/terminal.ts";
import { registerApiRoutes } from "./api/index.ts";
import { formatSchemaErrors } from "./api/strict-fields.ts";
import { registerHealth } from "./health.ts";
import { registerAuth } from "./auth/index.ts";
import { registerPages } from "./pages/pages.ts";
import { STATUS_BY_KIND, type ErrorBody } from "./errors.ts";
import { framingRefusal } from "./framing.ts";
import { applySecurityHeaders, HSTS, SECURITY_HEADERS } from "./security-headers.ts";

export interface ServerOptions {
  /** Largest request body accepted, in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Trust X-Forwarded-* from these reverse proxies (default: BULWARK_TRUST_PROXY, see HTTPAuthConfig.trustProxy). */
  trustProxy?: boolean | string[];
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A request's id: the client's own when it is short and plain (it ends up in logs), else a new one. */
function requestIdOf(app: App, headers: IncomingHttpHeaders): string {
  const given = headers["x-request-id"];
  return typeof given === "string" && REQUEST_ID.test(given) ? given : newId("req", app.random);
}

/**
 * Open connections the server holds at once, and from one client address (a trusted reverse proxy excepted: every
 * connection of its carries other clients, and it bounds them itself; 256 leaves room for an office behind one NAT
 * address). One client held a thousand idle sockets, and a few thousand exhaust a process's file
 * descriptors. A socket silent for IDLE_SOCKET_MS is closed.
 */
export const MAX_CONNECTIONS = 4096;
export const MAX_CONNECTIONS_PER_ADDRESS = 256;
export const IDLE_SOCKET_MS = 60_000;

/** How long a request may take to arrive, headers and body (ms). */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * What the answer to a URL Fastify cannot route says, by its error code: fixed words, never the path (Fastify's own
 * message quotes it). A link to the genuine origin at a path that is a sentence ("/Your_account_is_locked._Call_…")
 * would otherwise have Bulwark say the attacker's words back (content spoofing); the request id names the request, and
 * the server log has its URL.
 */
const FRAMEWORK_ERROR_MESSAGE: Readonly<Record<string, string>> = {
  FST_ERR_BAD_URL: "the request's path could not be decoded",
  FST_ERR_MAX_PARAM_LENGTH: "a parameter in the request's path is too long",
};

const CLIENT_ERROR_STATUS: Readonly<Record<string, [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, "Request Header Fields Too Large"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout"],
};

/**
 * The headers and error body of an answer written outside Fastify's pipeline, where no hook adds ours: the security
 * headers, a request id, no-store, and the connection closed (what follows a request refused this early is not parsed).
 */
function answerOutsidePipeline(error: ErrorBody["error"] & { requestId: string }, hsts: boolean): { headers: Record<string, string>; body: string } {
  const body = JSON.stringify({ error } satisfies ErrorBody);
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS, ...(hsts ? { "strict-transport-security": HSTS } : {}),
    "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(body)), "cache-control": "no-store",
    "x-request-id": error.requestId, connection: "close",
  };
  return { headers, body };
}

/** Answers a request Node could not parse: our security headers and error body, then the connection is closed. */
function answerClientError(app: App, error: NodeJS.ErrnoException & { bytesParsed?: number }, socket: Duplex, hsts: boolean): void {
  const code = typeof error.code === "string" ? error.code : "UNKNOWN";
  app.logger.debug({ code }, "a request could not be parsed");
  // A reset connection, or one already answered: nothing can be written.
  if (code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason] = CLIENT_ERROR_STATUS[code] ?? [400, "Bad Request"];
  const { headers, body } = answerOutsidePipeline({
    code: `BULWARK_ERR_HTTP_${code.replace(/^HPE_|^ERR_/, "")}`, message: `the request could not be read (${reason.toLowerCase()})`, requestId: newId("req", app.random),
  }, hsts);
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${head}\r\n${body}`);
}

/**
 * Answers a request whose Expect header asks for anything but 100-continue (Node's 'checkExpectation' event, which
 * takes the place of 'request': Fastify never sees it): 417 with our headers and body (RFC 9110 §10.1.1), and the
 * connection closed, so its body, unread, is never parsed as a request of its own. Without the listener Node wrote a
 * bare 417: no security headers, no request id, no no-store though the request carried a session cookie.
 */
function answerExpectation(app: App, request: IncomingMessage, response: ServerResponse, hsts: boolean): void {
  const requestId = requestIdOf(app, request.headers);
  app.logger.debug({ requestId }, "a request's Expect header was refused");
  const { headers, body } = answerOutsidePipeline({
    code: "BULWARK_ERR_HTTP_EXPECTATION_FAILED", message: "the request's Expect header asks for something other than 100-continue", requestId,
  }, hsts);
  response.writeHead(417, headers).end(body);
}

/**
 * Which peers are trusted proxies, from the trust setting: `true` (every peer: a test or a benchmark behind its own
 * load generator), or the addresses and CIDR ranges of BULWARK_TRUST_PROXY.
 */
function trustedPeer(trust: boolean | string[]): (address: string) => boolean {
  if (trust === true) return () => true;
  if (trust === false || trust.length === 0) return () => false;
  const list = new BlockList();
  for (const entry of trust) {
    const [address = "", bits] = entry.split("/");
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  // BlockList matches an IPv4-mapped IPv6 peer (::ffff:a.b.c.d) against the IPv4 rules itself.
  return (address) => {
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 6 ? "ipv6" : "ipv4");
  };
}

/**
 * Caps the connections `server` holds: in all, and from one client — counted as flood control counts it (ipBucket:
 * an IPv6 client by its /64, an IPv4-mapped one as IPv4), so one home line cannot take every slot by rotating its
 * interface ids. Trusted proxies are exempt (every connection of theirs carries other clients); other peers are not,
 * whatever BULWARK_TRUST_PROXY says.
 */
function boundConnections(server: FastifyInstance, trust: boolean | string[]): void {
  server.server.maxConnections = MAX_CONNECTIONS;
  const trusted = trustedPeer(trust);
  const open = new Map<string, number>();
  server.server.on("connection", (socket: Duplex & { remoteAddress?: string }) => {
    const peer = socket.remoteAddress ?? "";
    if (trusted(peer)) return;
    const client = ipBucket(peer);
    const count = (open.get(client) ?? 0) + 1;
    if (count > MAX_CONNECTIONS_PER_ADDRESS) {
      socket.destroy();
      return;
    }
    open.set(client, count);
    socket.once("close", () => {
      const left = (open.get(client) ?? 1) - 1;
      if (left <= 0) open.delete(client);
      else open.set(client, left);
    });
  });
}

/**
 * A JSON answer's text with DEL, the C1 controls, the bidirectional controls and U+2028/U+2029 written as \uNNNN
 * (inertJSONText; it parses back to the same strings). JSON.stringify escapes only C0, so stored text a client chose
 * (a User-Agent holding U+009B "2J", an 8-bit CSI) reached a responder's terminal raw through curl (CWE-150, ASVS
 * 16.4.1). Done on the serialized text, in onSend, rather than by setReplySerializer: that serializer would take the
 * place of a route's response schema (fast-json-stringify and the fields it leaves out), and a route may send JSON it
 * wrote itself. Cheap on every answer: a header read, then one regex test, and a replace only when it matches.
 */
function inertJSONReply(reply: FastifyReply, payload: string): string {
  const type = reply.getHeader("content-type");
  return typeof type === "string" && type.includes("json") ? inertJSONText(payload) : payload;
}

/** Builds the HTTP server over an opened app. The caller listens and closes it. */
export async function buildServer(app: App, options: ServerOptions = {}): Promise<FastifyInstance> {
  // pino's Logger and Fastify's base logger type differ only in generics; the instance is compatible.
  const loggerInstance = app.logger as unknown as FastifyBaseLogger;
  const server = Fastify({
    loggerInstance,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    trustProxy: options.trustProxy ?? app.config.http.trustProxy,
    // A client-supplied request id is kept only when it is short and plain (it ends up in logs).
    genReqId: (req) => requestIdOf(app, req.headers),
    // An HTTP/1.1 request without Host is refused by the onRequest hook below, with our headers and body: Node's own
    // refusal (requireHostHeader) was a bare 400, written before any hook ran.
    http: { requireHostHeader: false },
    logController: new LogController({ requestIdLogLabel: "requestId" }),
    // A request must arrive whole within this time: a client trickling its body one byte at a time would otherwise
    // hold its connection, and a graceful shutdown, for ever (Fastify's default is no limit). Bodies are ≤ 1 MiB.
    requestTimeout: REQUEST_TIMEOUT_MS,
    // Node's socket inactivity timeout: a connection that sends nothing (or stops half way) is closed.
    connectionTimeout: IDLE_SOCKET_MS,
    // A path parameter may be as long as a request line can be (Node refuses heads over 16 KiB): each route's schema
    // bounds its own. Fastify's default of 100 characters refused the removal of a passkey whose id WebAuthn allows
    // (up to 1023 bytes, 1364 as base64url), and no lost authenticator may be impossible to revoke (ASVS 6.5.6).
    routerOptions: { maxParamLength: 16 * 1024 },
    // Answered by the onRequest hook below instead, with our headers and body (Fastify's is bare).
    return503OnClosing: false,
    // A request Node's parser refuses (a bad header line, headers over 16 KiB, a malformed chunked body) is answered
    // here, outside the pipeline: with our headers and body, and logged by its code only. The default handler logged
    // the error whole, and Node puts the raw bytes read so far on it (cookies, a bearer token, a password).
    clientErrorHandler: (error, socket) => answerClientError(app, error, socket, hsts),
    // Fastify answers a URL it cannot decode before any hook runs: give that answer our headers and body too.
    frameworkErrors: (error, request, reply) => {
      reply.header("x-request-id", request.id);
      applySecurityHeaders(request, reply, hsts);
      const message = FRAMEWORK_ERROR_MESSAGE[error.code] ?? "the request's path could not be read";
      const body: ErrorBody = { error: { code: `BULWARK_ERR_HTTP_${(error.code ?? "BAD_REQUEST").replace(/^FST_ERR_/, "")}`, message, requestId: request.id } };
      void (reply as unknown as FastifyReply).header("cache-control", "no-store").status(400).send(body);
    },
  });
  const hsts = new URL(app.config.http.publicURL).protocol === "https:";
  boundConnections(server, options.trustProxy ?? app.config.http.trustProxy);
  server.server.on("checkExpectation", (request: IncomingMessage, response: ServerResponse) => answerExpectation(app, request, response, hsts));

  // Set when the server begins to close: a request that still arrives is answered 503, and every answer from then
  // on closes its connection, so a keep-alive client does not hold the shutdown until its idle timeout.
  let closing = false;
  server.addHook("preClose", async () => {
    closing = true;
  });
  server.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    applySecurityHeaders(request, reply, hsts);
    if (closing) {
      const body: ErrorBody = { error: { code: "BULWARK_ERR_SHUTTING_DOWN", message: "the server is shutting down; try again in a moment", requestId: request.id } };
      return reply.status(503).header("cache-control", "no-store").header("retry-after", "5").send(body);
    }
    // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without Host (HTTP/1.0 needs none). Refused before
    // anything reads the request, and the connection closed, as Node's own refusal (turned off above) closed it.
    if (request.headers.host === undefined && request.raw.httpVersionMajor === 1 && request.raw.httpVersionMinor >= 1) {
      const body: ErrorBody = { error: { code: "BULWARK_ERR_HTTP_HOST_REQUIRED", message: "an HTTP/1.1 request must name its host in a Host header", requestId: request.id } };
      return reply.status(400).headers({ "cache-control": "no-store", connection: "close" }).send(body);
    }
    // A body in a coding not applied here, or with two media types, is refused before anything reads it (framing.ts).
    const refused = framingRefusal(request.raw);
    if (refused !== null) {
      const body: ErrorBody = { error: { code: refused.code, message: refused.message, requestId: request.id } };
      // The connection goes too: what follows a body read one way here and another in front is not worth parsing.
      return reply.status(refused.status).headers({ ...refused.headers, "cache-control": "no-store", connection: "close" }).send(body);
    }
  });
  // Callback style: no promise per answer on the hot path.
  server.addHook("onSend", (_request, reply, payload, done) => {
    if (closing) reply.header("connection", "close");
    done(null, typeof payload === "string" ? inertJSONReply(reply, payload) : payload);
  });

  // A pooled PostgreSQL connection lost under us (a restart, a failover, a backend killed): the request it served fails
  // on its own and the pool drops the connection; the operator hears of it here (the driver's words, no URL, no secret).
  app.db.onConnectionLost?.((error) => {
    server.log.warn({ code: (error as { code?: unknown }).code, reason: error.message }, "a PostgreSQL connection was lost; the pool drops it and opens another");
  });

  server.setErrorHandler((thrown: FastifyError, request, reply) => {
    // A statement past its lock or statement timeout (another session holds what it needs): a busy store, said as such
    // (503, Retry-After), not an internal error; its transaction rolled back whole. Logged, without the request's data.
    const busy = storeBusyError(thrown);
    if (busy) request.log.warn({ code: (thrown as { code?: unknown }).code }, "a statement ran past its lock or statement timeout");
    const error = (busy ?? thrown) as FastifyError;
    let status: number;
    let code: string;
    let message: string;
    if (isBulwarkError(error)) {
      status = STATUS_BY_KIND[error.kind];
      code = error.code;
      message = error.message;
    } else if (error.validation) {
      status = 400;
      code = "BULWARK_ERR_VALIDATION";
      message = error.message;
    } else if (typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode;
      code = error.code ? `BULWARK_ERR_HTTP_${error.code.replace(/^FST_ERR_/, "")}` : "BULWARK_ERR_HTTP";
      message = error.message;
    } else {
      status = 500;
      code = "BULWARK_ERR_INTERNAL";
      message = "internal error";
    }
    // Unavailable: a dependency's outage, said to the caller as it is, with when to try again (nothing internal in it).
    // Not logged here, once per request: what it reports is logged where it happens (the lookup's outage by its
    // checker, a full gate by its at-most-once-a-minute report), and a flood of refusals would be a flood of lines.
    if (error instanceof Unavailable) {
      void reply.header("retry-after", String(error.retryAfterSeconds)).header("cache-control", "no-store");
    } else if (status >= 500) {
      request.log.error({ err: error }, "request failed");
      message = "internal error; the request id identifies it in the server log";
      code = status === 500 ? "BULWARK_ERR_INTERNAL" : code;
    }
    const body: ErrorBody = { error: { code, message, requestId: request.id } };
    void reply.status(status).send(body);
  });

  server.setNotFoundHandler((request, reply) => {
    // Fixed words, never the path: a link to the genuine origin at a path that is a sentence would have Bulwark say
    // it (content spoofing, ASVS 1.2.1). The request id names the request; the server log has its method and URL.
    const body: ErrorBody = { error: { code: "BULWARK_ERR_NOT_FOUND", message: "no route matches the request's method and path", requestId: request.id } };
    // No route ran its hooks, so nothing else marks this answer: no cache keeps it.
    void reply.status(404).header("cache-control", "no-store").send(body);
  });

  registerHealth(server, app);

  // Fastify's wording for schema errors, except that a control character is named as such, not by its pattern;
  // for every route (/auth, the pages and /api/v1, whose scope inherits it).
  server.setSchemaErrorFormatter(formatSchemaErrors);
  // Authentication, gates, CSRF and /auth first: their hooks are global, so they run before /api/v1's own.
  registerAuth(server, app);
  registerPages(server, app);
  await registerApiRoutes(server, app);

  return server;
}
