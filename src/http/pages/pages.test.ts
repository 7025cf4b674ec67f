// The link pages as served: HTML with the service name escaped, no-store, the CSP of every response, and their
// script and stylesheet with the right types. (test/http-pages.test.ts drives them in Chromium.)
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { authFixture, type AuthFixture } from "../auth/test-client.ts";
import { CONTENT_SECURITY_POLICY } from "../security-headers.ts";
import { escapeHTML } from "./pages.ts";

const HOSTILE = `Acme <img src=x onerror="alert(1)"> & 'co'`;

describe("link pages (served)", () => {
  let fx: AuthFixture;
  before(async () => {
    fx = await authFixture({ BULWARK_SERVICE_NAME: HOSTILE });
  });
  after(async () => {
    await fx.close();
  });

  it("escapes every HTML metacharacter", () => {
    assert.equal(escapeHTML(`<a href="x" title='y'>&</a>`), "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  });

  for (const path of ["/reset-password", "/confirm-email"]) {
    it(`GET ${path}: HTML, no-store, the CSP, the service name escaped, no inline script`, async () => {
      const res = await fx.server.inject({ method: "GET", url: path });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["content-type"]), /^text\/html; charset=utf-8/);
      assert.equal(res.headers["cache-control"], "no-store");
      assert.equal(res.headers["content-security-policy"], CONTENT_SECURITY_POLICY);
      assert.ok(!res.body.includes("<img"), "the service name cannot inject markup");
      assert.ok(res.body.includes(escapeHTML(HOSTILE)));
      assert.deepEqual([...res.body.matchAll(/<script([^>]*)>/g)].map((m) => m[1]), [' src="/assets/bulwark-pages.js" defer'], "one external script, nothing inline");
    });
  }

  it("serves the script and the stylesheet with their types", async () => {
    const js = await fx.server.inject({ method: "GET", url: "/assets/bulwark-pages.js" });
    assert.equal(js.statusCode, 200);
    assert.match(String(js.headers["content-type"]), /^text\/javascript/);
    assert.match(js.body, /\/auth\/password\/reset\/complete/);
    const css = await fx.server.inject({ method: "GET", url: "/assets/bulwark-pages.css" });
    assert.equal(css.statusCode, 200);
    assert.match(String(css.headers["content-type"]), /^text\/css/);
  });
});
