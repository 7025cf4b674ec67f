// The client's address behind a reverse proxy (BULWARK_TRUST_PROXY): believed from X-Forwarded-For only when the
// peer is a configured proxy. Without it, a client cannot write its own address into flood control and the audit
// log; with it, everyone behind the proxy is not one address sharing one per-IP failure budget.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { authFixture } from "../src/http/auth/test-client.ts";

async function loginIP(env: Record<string, string>, forwardedFor: string): Promise<unknown> {
  const fx = await authFixture(env);
  try {
    const ana = await fx.user("proxied@example.org");
    const b = fx.browser();
    const res = await b.request("POST", "/auth/login", { body: { identifier: ana.email, password: ana.password }, headers: { "x-forwarded-for": forwardedFor } });
    assert.equal(res.statusCode, 200, res.body);
    const event = (await fx.app.audit.tail(10)).find((e) => e.type === "auth.login.succeeded");
    return event?.data["ip"];
  } finally {
    await fx.close();
  }
}

describe("BULWARK_TRUST_PROXY", () => {
  it("attack: without it, X-Forwarded-For is ignored: the peer's address is recorded", async () => {
    assert.equal(await loginIP({}, "203.0.113.9"), "127.0.0.1");
  });

  it("with the proxy's address, the client's address is the one the proxy forwards", async () => {
    assert.equal(await loginIP({ BULWARK_TRUST_PROXY: "127.0.0.1" }, "203.0.113.9"), "203.0.113.9");
  });

  it("attack: a client behind a trusted proxy cannot push a spoofed address past it: only the proxy's hop is believed", async () => {
    // The client sent "X-Forwarded-For: 198.51.100.66"; the proxy appended the address it saw.
    assert.equal(await loginIP({ BULWARK_TRUST_PROXY: "127.0.0.1" }, "198.51.100.66, 203.0.113.9"), "203.0.113.9");
  });

  it("attack: a proxy that writes the client hop with its source port (Azure, IIS ARR) gives the bare address, one client for every port", async () => {
    assert.equal(await loginIP({ BULWARK_TRUST_PROXY: "127.0.0.1" }, "203.0.113.9:51234"), "203.0.113.9");
    assert.equal(await loginIP({ BULWARK_TRUST_PROXY: "127.0.0.1" }, "[2001:db8:1:2::9]:443"), "2001:db8:1:2::9");
    // Text that is no address is not cut into one.
    assert.equal(await loginIP({ BULWARK_TRUST_PROXY: "127.0.0.1" }, "unknown:80"), "unknown:80");
    assert.equal(await loginIP({ BULWARK_TRUST_PROXY: "127.0.0.1" }, "203.0.113.9:99999"), "203.0.113.9:99999");
  });
});
