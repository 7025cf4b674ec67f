// A browser on its own computer, as the red-team rounds need one: it sends from a chosen socket address with a chosen
// User-Agent, the Origin and Sec-Fetch-Site of the real site, and keeps the session and known-device cookies the answers
// set — so two of them are two browsers to the server, each with its own address, session and device.
import type { LightMyRequestResponse } from "fastify";
import { DEVICE_COOKIE, SESSION_COOKIE } from "../../src/accounts/sessions/index.ts";
import { HOST, ORIGIN, type AuthFixture } from "../../src/http/auth/test-client.ts";

export const DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/**
 * @example
 * const home = new AddressedBrowser(() => fx, "192.0.2.10");
 * await home.login(owner.email, owner.password);
 * await home.request("DELETE", "/auth/sessions", { csrf: true });
 */
export class AddressedBrowser {
  cookie: string | null = null;
  device: string | null = null;
  readonly #fx: () => AuthFixture;
  readonly address: string;
  readonly userAgent: string;
  constructor(fx: () => AuthFixture, address: string, userAgent: string = DESKTOP_UA) {
    this.#fx = fx;
    this.address = address;
    this.userAgent = userAgent;
  }

  async request(method: "GET" | "POST" | "DELETE", url: string, options: { body?: unknown; csrf?: boolean; headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "user-agent": this.userAgent };
    const cookies = [...(this.cookie ? [`${SESSION_COOKIE}=${this.cookie}`] : []), ...(this.device ? [`${DEVICE_COOKIE}=${this.device}`] : [])];
    if (cookies.length > 0) headers["cookie"] = cookies.join("; ");
    if (options.csrf) headers["x-csrf-token"] = (await this.request("GET", "/auth/csrf")).json().token as string;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    Object.assign(headers, options.headers ?? {});
    const res = await this.#fx().server.inject({ method, url, headers, remoteAddress: this.address, ...(options.body === undefined ? {} : { payload: JSON.stringify(options.body) }) });
    const set = res.headers["set-cookie"];
    for (const line of Array.isArray(set) ? set : set ? [set] : []) {
      const s = new RegExp(`^${SESSION_COOKIE}=([^;]*)`).exec(line);
      if (s) this.cookie = s[1] ? (s[1] as string) : null;
      const d = new RegExp(`^${DEVICE_COOKIE}=([^;]*)`).exec(line);
      if (d) this.device = d[1] ? (d[1] as string) : null;
    }
    return res;
  }

  login(identifier: string, password: string): Promise<LightMyRequestResponse> {
    return this.request("POST", "/auth/login", { body: { identifier, password } });
  }
}

/** Moves the manual clock of `fx` to the start of the next clock hour plus `minutes`. */
export function nextHourPlus(fx: AuthFixture, minutes: number): void {
  const hour = 3_600_000;
  const now = fx.clock.now();
  fx.clock.advance(hour - (now % hour) + minutes * 60_000);
}
