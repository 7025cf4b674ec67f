// Attacks on the link pages (/reset-password, /confirm-email and their assets) and login flood control, written as
// attacks that must fail. Pages: nothing from the request reaches the HTML, every kind of answer carries a strict
// CSP and anti-framing / anti-sniffing / no-referrer headers, /assets serves no file from disk, and a hostile
// fragment runs no script in a real browser. Flood: parallel guesses in many spellings of one account, spoofed
// forwarding headers, one /64 behind a trusted proxy, the attacker's own success, and enumeration through 429s.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, GOOD_PASSWORD, HOST, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";

const CHROMIUM = process.env["BULWARK_CHROMIUM"] ?? "/usr/bin/chromium";
const PAGES = ["/reset-password", "/confirm-email"] as const;
const ASSETS = ["/assets/bulwark-pages.js", "/assets/bulwark-pages.css"] as const;

let fx: AuthFixture; // no proxy trusted (the default)
let proxied: AuthFixture; // BULWARK_TRUST_PROXY=127.0.0.1: the injected requests come from the proxy
before(async () => {
  fx = await authFixture();
  proxied = await authFixture({ BULWARK_TRUST_PROXY: "127.0.0.1" });
});
after(async () => {
  await fx?.close();
  await proxied?.close();
});

const get = (url: string, headers: Record<string, string> = {}, method: "GET" | "HEAD" = "GET") =>
  fx.server.inject({ method, url, headers: { host: HOST, ...headers } });

/** A JSON login as a same-origin page sends it, from the socket address `address`. */
function loginFrom(f: AuthFixture, identifier: string, password: string, address = "127.0.0.1", headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return f.server.inject({
    method: "POST", url: "/auth/login", remoteAddress: address,
    headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json", ...headers },
    payload: JSON.stringify({ identifier, password }),
  });
}

async function account(f: AuthFixture, email: string, username?: string): Promise<string> {
  const hash = await f.app.accounts.passwords.hash(GOOD_PASSWORD);
  return (await f.app.accounts.users.create({ email, ...(username ? { username } : {}), passwordHash: hash, passwordScheme: "argon2id" })).id;
}

const statuses = (list: LightMyRequestResponse[]): number[] => list.map((r) => r.statusCode);
const count = (list: number[], status: number): number => list.filter((s) => s === status).length;

/** The CSP as directive → sources. */
function parseCSP(value: unknown): Map<string, string[]> {
  assert.equal(typeof value, "string", "a Content-Security-Policy header");
  const map = new Map<string, string[]>();
  for (const part of (value as string).split(";")) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) map.set(name.toLowerCase(), sources);
  }
  return map;
}

describe("link pages", () => {
  it("attack: reflected XSS — query strings and hostile Host / X-Forwarded-Host / Referer / Cookie never reach the HTML: byte-identical to a plain request (ASVS 1.2.1)", async () => {
    const queries = [
      "?token=<script>alert(1)</script>",
      `?email="><svg/onload=alert(1)>&name='\`</script><script>alert(1)</script>`,
      "?next=javascript:alert(1)&%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E=1",
      "?token=prt_aaaaaaaaaaaaaaaaaaaaaaaaaa.secretsecretsecret",
    ];
    const hostile = { host: `evil.example"><script>alert(1)</script>`, "x-forwarded-host": "evil.example", referer: "https://evil.example/<script>", cookie: "x=\"><script>alert(1)</script>" };
    for (const path of PAGES) {
      const plain = await get(path);
      assert.equal(plain.statusCode, 200);
      for (const q of queries) {
        const res = await get(path + q);
        assert.equal(res.statusCode, 200, `${path}${q}`);
        assert.equal(res.body, plain.body, `${path}${q}: the query must not change the page`);
      }
      const res = await fx.server.inject({ method: "GET", url: path, headers: hostile });
      assert.equal(res.body, plain.body, `${path}: request headers must not change the page`);
      assert.ok(!/alert\(1\)|evil\.example|secretsecret/.test(plain.body));
      // No inline code of any kind: no <script> body, no event-handler attribute, no javascript: URL, no inline style.
      assert.ok(![...plain.body.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].some((m) => (m[1] ?? "").trim() !== ""), "no inline script");
      assert.ok(!/\son[a-z]+\s*=|javascript:|\sstyle\s*=|<style/i.test(plain.body), `${path}: no inline handler, javascript: URL or style`);
      assert.equal(plain.headers["set-cookie"], undefined, `${path}: a link page sets no cookie`);
    }
  });

  it("attack: every kind of answer — page, HEAD, asset, a 404 echoing a <script> path, a 400 for a bad URL or body, login 401/429 — carries a strict CSP, nosniff, no framing and no-referrer (ASVS 3.4.3–3.4.6, 14.3.2)", async () => {
    const victim = "headers-victim@example.org";
    for (let i = 0; i < 5; i++) await loginFrom(fx, victim, `wrong ${i}`, "192.0.2.5");
    const answers: Array<[string, LightMyRequestResponse]> = [
      ...(await Promise.all(PAGES.map(async (p) => [p, await get(p)] as [string, LightMyRequestResponse]))),
      ["HEAD /reset-password", await get("/reset-password", {}, "HEAD")],
      ...(await Promise.all(ASSETS.map(async (p) => [p, await get(p)] as [string, LightMyRequestResponse]))),
      ["404", await get("/assets/<script>alert(1)</script>.html")],
      ["bad URL", await get("/assets/%E0%A4%A")],
      ["bad body", await fx.server.inject({ method: "POST", url: "/auth/login", headers: { host: HOST, "content-type": "application/json" }, payload: "{\"identifier\":" })],
      ["401", await loginFrom(fx, "nobody-headers@example.org", "x", "192.0.2.6")],
      ["429", await loginFrom(fx, victim, "x", "192.0.2.5")],
    ];
    const expected = new Map([["/reset-password", 200], ["/confirm-email", 200], ["HEAD /reset-password", 200], [ASSETS[0], 200], [ASSETS[1], 200], ["404", 404], ["bad URL", 400], ["bad body", 400], ["401", 401], ["429", 429]]);
    for (const [what, res] of answers) {
      assert.equal(res.statusCode, expected.get(what), what);
      const csp = parseCSP(res.headers["content-security-policy"]);
      assert.deepEqual(csp.get("default-src"), ["'none'"], what);
      assert.deepEqual(csp.get("script-src"), ["'self'"], `${what}: scripts only from this origin`);
      assert.deepEqual(csp.get("style-src"), ["'self'"], what);
      assert.deepEqual(csp.get("frame-ancestors"), ["'none'"], `${what}: not framable`);
      assert.deepEqual(csp.get("base-uri"), ["'none'"], what);
      assert.ok(!csp.has("object-src") || csp.get("object-src")?.join(" ") === "'none'", what);
      for (const [directive, sources] of csp) {
        for (const source of sources) {
          assert.ok(!/unsafe|strict-dynamic|\*|^blob:$|^https?:$|^filesystem:$/i.test(source), `${what}: ${directive} ${source}`);
          if (source === "data:") assert.equal(directive, "img-src", `${what}: data: only for images`);
        }
      }
      assert.equal(res.headers["x-content-type-options"], "nosniff", what);
      assert.equal(res.headers["x-frame-options"], "DENY", what);
      assert.equal(res.headers["referrer-policy"], "no-referrer", `${what}: a link token never leaves in a Referer`);
      const isPage = res.statusCode === 200 && (PAGES as readonly string[]).some((p) => what.endsWith(p));
      assert.equal(String(res.headers["content-type"]).startsWith("text/html"), isPage, `${what}: only the link pages are HTML`);
    }
    for (const [what, res] of answers.slice(0, 3)) assert.equal(res.headers["cache-control"], "no-store", `${what}: a link page is never cached`);
    assert.match(String(answers[3]?.[1].headers["content-type"]), /^text\/javascript; charset=utf-8$/);
    assert.match(String(answers[4]?.[1].headers["content-type"]), /^text\/css; charset=utf-8$/);
    const notFound = answers[5]?.[1];
    assert.match(String(notFound?.headers["content-type"]), /^application\/json/, "the echoed path is JSON, not HTML");
    assert.ok(!notFound?.body.includes("<script>"), "and percent-encoded, not raw markup");
  });

  it("attack: path traversal under /assets — dot segments, %2e/%2f/%5c, double encoding, NUL, case — never serves a file from disk (ASVS 13.4.7)", async () => {
    const known = new Set<string>();
    for (const p of [...PAGES, ...ASSETS]) known.add((await get(p)).body);
    const urls = [
      "/assets/../package.json", "/assets/..%2fpackage.json", "/assets/%2e%2e/%2e%2e/etc/passwd", "/assets/..%5c..%5cpackage.json",
      "/assets/%252e%252e%252fpackage.json", "/assets/bulwark-pages.js%00.html", "/assets/bulwark-pages.js/..%2f..%2fpackage.json",
      "/assets/", "/assets", "/assets//etc/passwd", "/assets/.git/config", "/.git/config", "/package.json", "/src/http/pages/pages.ts",
      "/assets/BULWARK-PAGES.JS", "/assets/bulwark-pages.js;.html", "/assets/bulwark-pages.ts", "/assets/%2e%2e/src/http/pages/assets.ts",
      "/assets/bulwark-pages.css/.%2e/.%2e/tsconfig.json",
    ];
    for (const url of urls) {
      const res = await get(url);
      if (res.statusCode === 200) {
        assert.ok(known.has(res.body), `${url}: a 200 must be one of the four fixed resources`);
        continue;
      }
      assert.ok([400, 404].includes(res.statusCode), `${url} answered ${res.statusCode}`);
      assert.match(String(res.headers["content-type"]), /^application\/json/, url);
      assert.ok(!/"devDependencies"|root:x:0|\[core\]|import type|compilerOptions/.test(res.body), `${url}: no file content`);
    }
  });

  it("attack: DOM XSS through the fragment — a hostile #token runs no script, shows no form, POSTs nothing and leaves the address bar (ASVS 1.2.1)", { skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}` }, async () => {
    const { chromium } = await import("playwright-core");
    await fx.server.listen({ host: "127.0.0.1", port: 0 });
    const origin = `http://127.0.0.1:${(fx.server.server.address() as AddressInfo).port}`;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
    try {
      const fragments = [
        `#token=x"><img src=x onerror="window.__xss=1">`,
        "#token=<script>window.__xss=1</script>",
        "#token=abc&token=<svg/onload=window.__xss=1>",
        "#token=abc%22%3E%3Cimg%20src=x%20onerror=window.__xss=1%3E",
        `#token=${"a".repeat(201)}`,
        "#javascript:window.__xss=1",
      ];
      for (const path of PAGES) {
        for (const fragment of fragments) {
          const page = await browser.newPage();
          const posted: string[] = [];
          const problems: string[] = [];
          page.on("request", (r) => { if (r.method() !== "GET") posted.push(r.url()); });
          page.on("dialog", (d) => { problems.push(`dialog ${d.message()}`); void d.dismiss(); });
          page.on("pageerror", (e) => problems.push(e.message));
          await page.goto(origin + path + fragment);
          await page.waitForSelector("#status.error");
          // (Evaluated as text: this project's TypeScript has no DOM library.)
          const state = JSON.parse(await page.evaluate(`JSON.stringify({
            xss: window.__xss ?? null,
            formHidden: document.querySelector("form")?.hidden ?? null,
            injected: document.querySelectorAll("img, svg, main script, body > script").length,
            hash: location.hash,
            status: document.getElementById("status")?.textContent ?? "",
          })`)) as { xss: unknown; formHidden: boolean | null; injected: number; hash: string; status: string };
          // Submitting is impossible (the form is hidden); try anyway, as a user tricked into pressing Enter would.
          await page.keyboard.press("Enter");
          assert.deepEqual({ ...state, posted, problems }, { xss: null, formHidden: true, injected: 0, hash: "", status: state.status, posted: [], problems: [] }, `${path}${fragment}`);
          assert.match(state.status, /link is incomplete/);
          await page.close();
        }
      }
    } finally {
      await browser.close();
    }
  });
});

describe("login flood control", () => {
  it("attack: 30 parallel wrong guesses in six spellings of one account (case, padding, Kelvin-sign K, username) get five password checks; 60 parallel sprays from one address get fifty (ASVS 6.3.1)", async () => {
    const id = await account(fx, "Kim.Victim@Example.org", "kimv");
    const spellings = ["kim.victim@example.org", "KIM.VICTIM@EXAMPLE.ORG", "  kim.victim@example.org  ", "\u212Aim.victim@example.org", "kimv", "\u00a0KIMV\u2003"];
    const race = statuses(await Promise.all(Array.from({ length: 30 }, (_, i) => loginFrom(fx, spellings[i % spellings.length] as string, `race guess ${i}`, "192.0.2.10"))));
    // Two spellings once normalised (the address and the username): each answers like an unknown identifier, five
    // failures then 429, so ten 401s; only the account's first five had their password checked.
    assert.deepEqual([count(race, 401), count(race, 429), race.length], [10, 20, 30], `answers: ${race.join(",")}`);
    const checked = (await fx.app.audit.tail(200)).filter((e) => e.type === "auth.login.failed" && e.subject === id && e.data["reason"] === "wrong-password");
    assert.equal(checked.length, 5, "five passwords were checked against the account, not thirty");
    assert.equal((await loginFrom(fx, "kimv", GOOD_PASSWORD, "192.0.2.10")).statusCode, 429, "even the right password waits");
    assert.equal((await loginFrom(fx, "\u212Aim.victim@example.org", GOOD_PASSWORD, "192.0.2.11")).statusCode, 200, "the spellings all named this account");

    const spray = statuses(await Promise.all(Array.from({ length: 60 }, (_, i) => loginFrom(fx, `spray${i}@example.org`, "Winter2026!", "192.0.2.12"))));
    assert.deepEqual([count(spray, 401), count(spray, 429)], [50, 10], "the per-address limit holds under a race too");
  });

  it("attack: X-Forwarded-For, X-Real-IP, Forwarded, True-Client-IP and CF-Connecting-IP rotated per request, with no proxy trusted, buy no guesses: five per account, fifty per address (ASVS 6.3.1)", async () => {
    await account(fx, "spoofed@example.org");
    const spoof = (i: number): Record<string, string> => {
      const ip = `203.0.113.${i % 250}`;
      return { "x-forwarded-for": ip, "x-real-ip": ip, forwarded: `for=${ip}`, "true-client-ip": ip, "cf-connecting-ip": ip, "x-client-ip": ip };
    };
    const guesses: number[] = [];
    for (let i = 0; i < 7; i++) guesses.push((await loginFrom(fx, "spoofed@example.org", `guess ${i}`, "192.0.2.20", spoof(i))).statusCode);
    assert.deepEqual(guesses, [401, 401, 401, 401, 401, 429, 429]);
    const sprays: number[] = [];
    for (let i = 0; i < 46; i++) sprays.push((await loginFrom(fx, `sprayed${i}@example.org`, "Winter2026!", "192.0.2.20", spoof(100 + i))).statusCode);
    assert.deepEqual([count(sprays.slice(0, 45), 401), sprays[45]], [45, 429], "5 + 45 failures from one socket address, whatever the headers say");
  });

  it("attack: behind a trusted proxy, a client prepending its own X-Forwarded-For hops, or rotating addresses of its IPv6 /64 in any spelling, stays on one counter (ASVS 6.3.1)", async () => {
    await account(proxied, "behind-proxy@example.org");
    const hops = ["2001:db8:42:1::1", "2001:DB8:42:1:0:0:0:2", "2001:0db8:0042:0001:ffff::3", "2001:db8:42:1:abcd:ef01:2345:6789", "2001:db8:42:1::5", "2001:db8:42:1:1::6", "2001:db8:42:1::7"];
    const codes: number[] = [];
    for (const [i, hop] of hops.entries()) {
      // The client wrote "X-Forwarded-For: 198.51.100.<i>"; the trusted proxy appended the address it saw.
      codes.push((await loginFrom(proxied, "behind-proxy@example.org", `guess ${i}`, "127.0.0.1", { "x-forwarded-for": `198.51.100.${i}, ${hop}` })).statusCode);
    }
    assert.deepEqual(codes, [401, 401, 401, 401, 401, 429, 429]);
    const neighbour = await loginFrom(proxied, "behind-proxy@example.org", "guess from the next /64", "127.0.0.1", { "x-forwarded-for": "2001:db8:42:2::1" });
    assert.equal(neighbour.statusCode, 401, "the next /64 is another client, with its own account+address window");
  });

  it("attack: the attacker's own successful login from the same address lifts neither the victim's window nor the address's count (ASVS 6.3.1)", async () => {
    await account(fx, "target@example.org");
    await account(fx, "attacker@example.org");
    const ip = "192.0.2.40";
    for (let i = 0; i < 5; i++) assert.equal((await loginFrom(fx, "target@example.org", `guess ${i}`, ip)).statusCode, 401);
    assert.equal((await loginFrom(fx, "attacker@example.org", GOOD_PASSWORD, ip)).statusCode, 200, "the attacker's own account signs in");
    assert.equal((await loginFrom(fx, "target@example.org", GOOD_PASSWORD, ip)).statusCode, 429, "the victim's window is untouched");
    for (let i = 0; i < 44; i++) assert.equal((await loginFrom(fx, `filler${i}@example.org`, "x", ip)).statusCode, 401);
    assert.equal((await loginFrom(fx, "attacker@example.org", GOOD_PASSWORD, ip)).statusCode, 200, "49 failures: still allowed");
    assert.equal((await loginFrom(fx, "filler-last@example.org", "x", ip)).statusCode, 401, "the 50th failure: the success took back only its own count");
    const blocked = await loginFrom(fx, "attacker@example.org", GOOD_PASSWORD, ip);
    assert.equal(blocked.statusCode, 429, "the address is throttled for every account, the attacker's own included");
    assert.match(String(blocked.headers["retry-after"]), /^\d+$/);
  });

  it("attack: enumeration under throttling — a known account (by email, by username), an unknown one, a locked and a disabled one (with the right password) answer byte-identical 401s, then 429s with the same Retry-After (ASVS 6.3.8)", async () => {
    await account(fx, "enum-known@example.org", "enumknown");
    const lockedId = await account(fx, "enum-locked@example.org");
    await fx.app.db.db.updateTable("users").set({ locked_at: fx.clock.now(), locked_reason: "test" }).where("id", "=", lockedId).execute();
    const hash = await fx.app.accounts.passwords.hash(GOOD_PASSWORD);
    await fx.app.accounts.users.create({ email: "enum-disabled@example.org", passwordHash: hash, passwordScheme: "argon2id", status: "disabled" });
    const cases: Array<[string, string]> = [
      ["enum-known@example.org", "wrong password"], ["enumknown", "wrong password"], ["enum-ghost@example.org", "wrong password"],
      ["enumghost", "wrong password"], ["enum-locked@example.org", GOOD_PASSWORD], ["enum-disabled@example.org", GOOD_PASSWORD],
    ];
    const seen: string[] = [];
    for (const [n, [identifier, password]] of cases.entries()) {
      const answers: string[] = [];
      for (let i = 0; i < 7; i++) {
        const r = await loginFrom(fx, identifier, password, `192.0.2.${60 + n}`);
        answers.push(JSON.stringify([r.statusCode, r.body, r.headers["retry-after"] ?? null, r.headers["content-type"], r.headers["set-cookie"] ?? null]));
      }
      seen.push(answers.join("\n"));
    }
    for (const [n, [identifier]] of cases.entries()) assert.equal(seen[n], seen[2], `${identifier} answers like an unknown address`);
    assert.match(seen[2] ?? "", /^\[401,[\s\S]*\[429,/);
  });

  // A known account is counted under its email whatever names it; an unknown identifier under itself. A 429 from the
  // shared window came for a username and its email together exactly when they were one account; the answer now
  // follows the spelling typed (flood.ts, Attempt.spelling).
  it("attack: enumeration by shared counters — five failures by a username make its account's email answer 429, while an unknown username's email still answers 401 (ASVS 6.3.8)", async () => {
    await account(fx, "jdoe@example.org", "jdoe");
    const probe = async (username: string, email: string, ip: string): Promise<number[]> => {
      const codes: number[] = [];
      for (let i = 0; i < 5; i++) codes.push((await loginFrom(fx, username, `wrong ${i}`, ip)).statusCode);
      codes.push((await loginFrom(fx, email, "wrong again", ip)).statusCode);
      return codes;
    };
    const known = await probe("jdoe", "jdoe@example.org", "192.0.2.80");
    const unknown = await probe("nosuch", "nosuch@example.org", "192.0.2.81");
    assert.deepEqual(known, unknown, "the email's answer after its username's failures tells whether the pair is an account");
  });
});
