// Attacks on the password policy that must fail: oversized passwords that would be scanned,
// passwords that cannot be stored as typed (unpaired surrogates, NUL), hostile range servers (endless or lying bodies, redirects, fake "clean" answers).
import assert from "node:assert/strict";
import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import type { CommonPasswordList } from "./common-list.ts";
import { createPasswordPolicy } from "./policy.ts";
import { createRangeBreachChecker } from "./range-checker.ts";
import type { BreachChecker } from "./types.ts";

async function withServer(handler: RequestListener, run: (baseUrl: string) => Promise<void>): Promise<void> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe("oversized passwords", () => {
  test("a multi-megabyte password is refused as too long without being normalised, listed or looked up", async () => {
    // ASVS 6.2.9 accepts 64+; the bound stops an attacker making every registration scan megabytes.
    let listLookups = 0;
    let breachLookups = 0;
    const list: CommonPasswordList = {
      size: 1,
      has: () => {
        listLookups++;
        return false;
      },
    };
    const checker: BreachChecker = {
      name: "spy",
      check: async () => {
        breachLookups++;
        return { status: "clean" };
      },
    };
    const policy = createPasswordPolicy({ commonPasswords: list, breachCheckers: [checker] });
    for (const password of ["a".repeat(8 * 1024 * 1024), "🔑".repeat(129), "x".repeat(257)]) {
      const result = await policy.check(password, { username: "alice" });
      assert.deepEqual(result, { ok: false, reasons: [{ code: "too-long", message: "Use at most 128 characters." }] });
    }
    assert.equal(listLookups, 0);
    assert.equal(breachLookups, 0);
  });
});

describe("passwords that are not text", () => {
  const NOT_TEXT = "The password holds characters that are not valid text (a NUL character or a broken surrogate pair); type it again.";

  test("attack: unpaired surrogates are refused as not-text, before any list or breach lookup (ASVS 6.2.8)", async () => {
    let lookups = 0;
    const list: CommonPasswordList = { size: 1, has: () => (lookups++, false) };
    const policy = createPasswordPolicy({ commonPasswords: list });
    // Each of these would be stored as the same UTF-8 bytes as twenty U+FFFD characters.
    for (const password of ["\ud800".repeat(20), "\udfff".repeat(20), "a long and fine passphrase \ud83d"]) {
      assert.deepEqual(await policy.check(password), { ok: false, reasons: [{ code: "not-text", message: NOT_TEXT }] });
    }
    assert.equal(lookups, 0);
    assert.deepEqual(await policy.check("\ud83d\udd11 keys and locks and doors"), { ok: true }, "a surrogate pair is one character, and fine");
  });

  test("attack: a password holding NUL is refused as not-text, before any list or breach lookup (ASVS 6.2.8)", async () => {
    // HMAC-based hashes cannot tell "…\0" from its prefix and bcrypt stops at NUL; the hash layer refuses it.
    let lookups = 0;
    const list: CommonPasswordList = { size: 1, has: () => (lookups++, false) };
    const checker: BreachChecker = { name: "spy", check: async () => (lookups++, { status: "clean" as const }) };
    const policy = createPasswordPolicy({ commonPasswords: list, breachCheckers: [checker] });
    for (const password of ["copper meadow whistles softly\0", "\0copper meadow whistles softly", "copper meadow\0whistles softly"]) {
      assert.deepEqual(await policy.check(password), { ok: false, reasons: [{ code: "not-text", message: NOT_TEXT }] });
    }
    assert.equal(lookups, 0);
    assert.deepEqual(await policy.check("copper meadow whistles softly"), { ok: true });
  });
});

describe("hostile range servers", () => {
  test("an endless response body is cut at maxResponseBytes, not buffered", async () => {
    let sent = 0;
    await withServer(
      (_req, res) => {
        res.writeHead(200);
        const line = "0123456789ABCDEF0123456789ABCDEF012:1\r\n".repeat(1000);
        const pump = (): void => {
          // Stops by itself after 64 MiB even if the client kept reading.
          while (sent < 64 * 1024 * 1024 && res.write(line)) sent += line.length;
          if (sent < 64 * 1024 * 1024) res.once("drain", pump);
          else res.end();
        };
        res.on("close", () => res.removeAllListeners("drain"));
        pump();
      },
      async (baseUrl) => {
        const range = createRangeBreachChecker({ baseUrl, timeoutMs: 10_000, padding: true, maxResponseBytes: 64 * 1024 });
        assert.deepEqual(await range.check("password"), {
          status: "unavailable",
          reason: "range API response is larger than 65536 bytes",
          failClosed: true,
        });
      },
    );
    assert.ok(sent < 64 * 1024 * 1024, "the client read the whole endless body");
  });

  test("a Content-Length above the bound is refused before reading", async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, { "content-length": String(50 * 1024 * 1024) });
        res.write("1E4C9B93F3F0682250B6CF8331B7EE68FD8:1\r\n");
      },
      async (baseUrl) => {
        const verdict = await createRangeBreachChecker({ baseUrl, timeoutMs: 5000, padding: true }).check("password");
        assert.equal(verdict.status, "unavailable");
      },
    );
  });

  test("a redirect is not followed, so the hash prefix goes to no other host", async () => {
    let otherHostHit = false;
    await withServer(
      (_req, res) => {
        otherHostHit = true;
        res.writeHead(200).end("1E4C9B93F3F0682250B6CF8331B7EE68FD8:0\r\n");
      },
      async (otherUrl) => {
        await withServer(
          (req, res) => res.writeHead(302, { location: `${otherUrl}${req.url ?? ""}` }).end(),
          async (baseUrl) => {
            const verdict = await createRangeBreachChecker({ baseUrl, timeoutMs: 5000, padding: true }).check("password");
            assert.equal(verdict.status, "unavailable");
          },
        );
      },
    );
    assert.equal(otherHostHit, false);
  });

  test("answers that are not the range format never read as clean", async () => {
    const bodies = [
      "1E4C9B93F3F0682250B6CF8331B7EE68FD8:99999999999999999999\r\n", // count beyond 15 digits
      "1E4C9B93F3F0682250B6CF8331B7EE68FD8\r\n", // no count
      "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:5\r\n", // full hash instead of the suffix
      "{\"error\":\"rate limited\"}",
      "1E4C9B93F3F0682250B6CF8331B7EE68FD8:-1\r\n",
    ];
    for (const body of bodies) {
      await withServer(
        (_req, res) => res.writeHead(200).end(body),
        async (baseUrl) => {
          const verdict = await createRangeBreachChecker({ baseUrl, timeoutMs: 5000, padding: true }).check("password");
          assert.equal(verdict.status, "unavailable", body);
          const policy = createPasswordPolicy({ minLength: 8, commonPasswords: { size: 0, has: () => false }, breachCheckers: [createRangeBreachChecker({ baseUrl, timeoutMs: 5000, padding: true })] });
          const result = await policy.check("password");
          assert.deepEqual(result.ok ? [] : result.reasons.map((r) => r.code), ["breach-check-unavailable"], body);
        },
      );
    }
  });

  test("an injected fetch that ignores the abort signal still cannot hold the check past timeoutMs", async () => {
    const hanging: typeof fetch = () => new Promise<Response>(() => undefined);
    const verdict = await createRangeBreachChecker({ baseUrl: "https://range.example.test", fetch: hanging, timeoutMs: 50, padding: true }).check("x");
    assert.deepEqual(verdict, { status: "unavailable", reason: "range API did not answer within 50 ms", failClosed: true });
  });
});
