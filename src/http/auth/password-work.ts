// The routes that check or hash a password go through the password-work gate (accounts/passwords/work-gate.ts):
// admitted, the handler runs and gives its slot back when it ends, however it ends; refused, the answer is an
// immediate 503 with Retry-After, before flood control counts anything, before any lookup or hash, and the same
// for every account and every password (it tells nothing about either).
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from "fastify";
import { ipSite } from "../../accounts/flood/ip-bucket.ts";
import type { App } from "../../app/types.ts";
import { Unavailable } from "../../lib/errors.ts";
import { clientIP } from "./request-info.ts";

export const BUSY_CODE = "BULWARK_ERR_BUSY";

/**
 * `handler`, admitted through the app's password-work gate, by the client's site (`ipSite`: an IPv4 address, an IPv6
 * /48, so that one subscriber's many /64s are one client; behind a trusted proxy, the address the proxy forwarded).
 *
 * @example
 * server.post("/auth/login", options, withPasswordWork(app, async (request, reply) => { ... }));
 */
export function withPasswordWork<Req extends FastifyRequest, Result>(app: App, handler: (request: Req, reply: FastifyReply) => Promise<Result>): (request: Req, reply: FastifyReply) => Promise<Result | FastifyReply> {
  const gate = app.accounts.passwordWork;
  return async (request, reply) => {
    const ip = clientIP(request);
    const client = ip === null ? "" : ipSite(ip);
    const release = gate.tryEnter(client);
    if (release === null) {
      reportPasswordWorkRefusals(app, request.log);
      return reply.status(503).header("retry-after", "1").header("cache-control", "no-store")
        .send({ error: { code: BUSY_CODE, message: BUSY_MESSAGE } });
    }
    const slot: Slot = { client, release };
    slots.set(request, slot);
    try {
      return await handler(request, reply);
    } finally {
      slot.release?.();
      slot.release = null;
      slots.delete(request);
    }
  };
}

const BUSY_MESSAGE = "the server is busy checking other passwords; try again in a second";

/** A request's place in the password-work gate: its client key, and the release of the slot it holds (null: none). */
interface Slot {
  client: string;
  release: (() => void) | null;
}
const slots = new WeakMap<FastifyRequest, Slot>();

/**
 * Runs `wait` — a breached-password lookup, which may wait on the network until its timeout — with the request's
 * password-work slot given back, then takes one again. Requests waiting on a hanging lookup held every slot, so that
 * logins (which look nothing up) were answered 503 while four link holders waited. The waits have a gate of their own
 * (app.accounts.breachLookups, the same size and per-client share): past it, or with no slot to be had again after it,
 * the request is answered 503 like a full gate's. Outside withPasswordWork, `wait` simply runs.
 *
 * @example
 * const verdict = await outsidePasswordWork(app, request, () => app.accounts.policy.check(password, context));
 */
export async function outsidePasswordWork<T>(app: App, request: FastifyRequest, wait: () => Promise<T>): Promise<T> {
  const slot = slots.get(request);
  if (slot === undefined || slot.release === null) return wait();
  slot.release();
  slot.release = null;
  const lookup = app.accounts.breachLookups.tryEnter(slot.client);
  if (lookup === null) {
    reportPasswordWorkRefusals(app, request.log);
    throw new Unavailable(BUSY_CODE, BUSY_MESSAGE, 1);
  }
  let result: T;
  try {
    result = await wait();
  } finally {
    lookup();
  }
  const again = app.accounts.passwordWork.tryEnter(slot.client);
  if (again === null) {
    reportPasswordWorkRefusals(app, request.log);
    throw new Unavailable(BUSY_CODE, BUSY_MESSAGE, 1);
  }
  slot.release = again;
  return result;
}

/**
 * Logs how many password-checking requests the gates refused since the last report: at most once a minute from the
 * refusals themselves, and with `force` (the maintenance pass, the shutdown) whatever the time, so that a burst
 * followed by no further refusal is counted too. Returns the count reported (0 when none).
 */
export function reportPasswordWorkRefusals(app: App, logger: Pick<FastifyBaseLogger, "warn">, options: { force?: boolean } = {}): number {
  let total = 0;
  // Both gates: the hashing one, and the one breached-password lookups wait under (outsidePasswordWork).
  for (const [gate, what] of [[app.accounts.passwordWork, "password checks"], [app.accounts.breachLookups, "breached-password lookups"]] as const) {
    const refused = gate.takeReport(app.clock.now(), options);
    if (refused === null) continue;
    logger.warn({ refused, capacity: gate.capacity, perClient: gate.perClient }, `${what} at capacity: ${refused} request(s) answered 503 since the last report`);
    total += refused;
  }
  return total;
}
