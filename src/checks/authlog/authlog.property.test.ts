// Property tests: random and hostile input never crashes or hangs the reader or the matchers;
// whatever cannot be parsed is counted.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { AuthLogAnalyzer } from "./analyzer.ts";
import { classifySshdMessage } from "./sshd-messages.ts";
import { feedChunks } from "./reader.ts";
import { scanAddress } from "./address.ts";
import { emptyStamp, parseStamp } from "./timestamp.ts";

const REF = Date.UTC(2026, 10, 22);

async function* chunks(parts: Uint8Array[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

function newlines(parts: Uint8Array[]): number {
  const all = Buffer.concat(parts.map((p) => Buffer.from(p)));
  if (all.length === 0) return 0;
  let n = 0;
  for (const b of all) if (b === 10) n++;
  return all[all.length - 1] === 10 ? n : n + 1;
}

test("binary junk in any chunking: every line is counted, nothing throws", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 8 }), async (parts) => {
      const a = new AuthLogAnalyzer({ referenceMs: REF, maxLineLength: 256 });
      a.beginFile("junk");
      const count = await feedChunks(a, chunks(parts));
      assert.equal(count, newlines(parts));
      assert.equal(a.stats.lines, count);
      const s = a.stats;
      assert.equal(s.blank + s.malformed + s.overlong + s.sshdLines <= s.lines, true);
    }),
    { numRuns: 200 },
  );
});

test("unicode and huge lines: counted as lines or overlong, never a crash", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.string({ unit: "grapheme", maxLength: 200 }), fc.string({ minLength: 9000, maxLength: 20000 })), { maxLength: 6 }), async (lines) => {
      const a = new AuthLogAnalyzer({ referenceMs: REF });
      a.beginFile("u");
      const text = lines.map((l) => l.replace(/\n/g, " ")).join("\n");
      await feedChunks(a, chunks([Buffer.from(text, "utf8")]));
      const long = lines.filter((l) => Buffer.byteLength(l.replace(/\n/g, " ")) > 8192).length;
      assert.equal(a.stats.overlong, long);
    }),
    { numRuns: 60 },
  );
});

const FRAGMENTS = [
  "Failed password for ", "invalid user ", "Invalid user ", " from ", "from ", " port ", "22", " ssh2", ": ", "[preauth]", " [preauth]",
  "203.0.113.9", "::ffff:1.2.3.4", "2001:db8::1", "999.1.1.1", "a.b", "root", " ", "  ", "Connection closed by ", "authenticating user ",
  "Accepted password for ", "pam_unix(sshd:auth): authentication failure; ", "ruser=", "rhost=", "user=", "Received disconnect from ",
  ":11: ", "3: x: Auth fail", "Disconnecting: Too many authentication failures", "Unable to negotiate with ", ": no matching ", " found.",
  "Bad protocol version identification '", "'", "(", ")", "\u0000", "\u00ff", "é", "kex_exchange_identification: ", "SSH: Server;Ltype: Kex;Remote: ",
  "-22;A:", "User ", " not allowed because listed in DenyUsers", "maximum authentication attempts exceeded for ", "ROOT LOGIN REFUSED FROM ",
];

test("hostile sshd messages built from real fragments: no crash, and any address found is a valid one taken from the line", () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 40 }), (parts) => {
      const m = parts.join("");
      const e = classifySshdMessage(m);
      if (e?.address) {
        const again = scanAddress(e.address, 0);
        assert.equal(again?.address, e.address);
        assert.equal(again?.end, e.address.length);
      }
    }),
    { numRuns: 3000 },
  );
});

// ASVS 1.3.12: no backtracking blow-up on hostile input.
test("deeply repeated 'from' clauses in one 8 KiB line are handled (linear scans)", () => {
  for (const unit of [" from 1.2.3.4 port 1", " from ", "from from ", " from 1.2.3.4 port 1 ssh2 from", " on x on y port 1 [preauth]"]) {
    const body = unit.repeat(Math.floor(8000 / unit.length));
    for (const prefix of ["Failed password for invalid user x", "Invalid user x", "Connection closed by x", "maximum authentication attempts exceeded for x", "User x", "Authentication failure for x"]) {
      const e = classifySshdMessage(prefix + body);
      assert.ok(e === null || typeof e.kind === "string");
    }
  }
});

test("time stamp parser: random text never throws and never reads a stamp out of range", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (s) => {
      const out = emptyStamp();
      if (parseStamp(s, out)) {
        assert.ok(out.month >= 0 && out.month <= 11);
        assert.ok(out.day >= 1 && out.day <= 31);
        assert.ok(out.msOfDay >= 0 && out.msOfDay < 86_401_000);
        assert.ok(out.end <= s.length);
      }
    }),
    { numRuns: 3000 },
  );
});
