// Property tests: random and hostile configuration text always yields a value map or a clear
// SshConfigError, never a crash or a hang.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { SshConfigError } from "./errors.ts";
import { evaluate } from "./evaluate.ts";
import { EVALUATED } from "./keywords.ts";
import { memorySource } from "./memory-source.ts";
import { MAX_INCLUDE_DEPTH, parseSshdConfig } from "./parser.ts";
import { addressMatchList, matchPatternList } from "./patterns.ts";

const MAIN = "/etc/ssh/sshd_config";
const KEYWORDS = ["PermitRootLogin", "passwordauthentication", "MATCH", "Match", "Include", "Ciphers", "MACs", "MaxAuthTries", "Port", "X11Forwarding", "Banner", "Protocol", "Unknown"];
const WORDS = ["yes", "no", "All", "User", "Address", "10.0.0.0/8", "!root", "*", "+aes128-cbc", "-aes*", "^hmac-md5", "1m", '"', "'", "=", "#", "\\", "*.conf", "/etc/ssh/x", "::1/128", "\u00e9\u6f22", "\0", "\t"];

function outcome(text: string): void {
  try {
    const config = parseSshdConfig(text, MAIN, { source: memorySource({ [MAIN]: text, "/etc/ssh/x": text.slice(0, 200) }) });
    const { effective } = evaluate(config, { match: { user: "root", host: "h", addr: "10.1.2.3" } });
    for (const k of Object.keys(EVALUATED)) assert.equal(typeof effective[k], "string");
  } catch (error) {
    assert.ok(error instanceof SshConfigError, `unexpected ${String(error)}`);
    assert.match(error.message, /line \d+: /);
  }
}

test("random text gives values or a clear error", () => {
  fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 2000 }), outcome), { numRuns: 300 });
});

test("config-shaped lines built from sshd's vocabulary give values or a clear error", () => {
  const line = fc.tuple(fc.constantFrom(...KEYWORDS), fc.array(fc.constantFrom(...WORDS), { maxLength: 5 }), fc.constantFrom(" ", "=", " = ", "\t")).map(([k, ws, sep]) => `${k}${sep}${ws.join(" ")}`);
  fc.assert(fc.property(fc.array(line, { maxLength: 40 }), (lines) => outcome(lines.join("\n"))), { numRuns: 500 });
});

test("huge lines and deep repetition stay bounded", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 200_000 }), fc.constantFrom("Match User ", "Banner ", "#", '"'), (n, prefix) => outcome(prefix + "*".repeat(n))), { numRuns: 20 });
});

test("pattern and address lists never throw", () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 200 }), (s, list) => {
    assert.ok([1, 0, -1].includes(matchPatternList(s, list, true)));
    assert.ok([1, 0, -1, -2].includes(addressMatchList(s, list)));
  }), { numRuns: 500 });
});

test("unicode in keywords, values and Match patterns gives values or a clear error", () => {
  const word = fc.oneof(fc.constantFrom(...WORDS), fc.string({ unit: "grapheme", maxLength: 12 }));
  const line = fc.tuple(fc.constantFrom(...KEYWORDS, "Ünïcødé", "Permit\u200bRootLogin"), fc.array(word, { maxLength: 4 })).map(([k, ws]) => `${k} ${ws.join(" ")}`);
  fc.assert(fc.property(fc.array(line, { maxLength: 30 }), fc.constantFrom("\n", "\r\n"), (lines, eol) => outcome(lines.join(eol))), { numRuns: 400 });
});

test("deep Include chains (with Match blocks at every level) stop at sshd's depth limit with a clear error", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.boolean(), (depth, withMatch) => {
      const files: Record<string, string> = {};
      for (let i = 0; i < depth; i++) {
        const next = i + 1 < depth ? `Include /etc/ssh/n${i + 1}.conf\n` : "PermitRootLogin yes\n";
        files[i === 0 ? MAIN : `/etc/ssh/n${i}.conf`] = `${withMatch ? `Match User u${i}\n` : ""}${next}`;
      }
      try {
        const config = parseSshdConfig(files[MAIN] as string, MAIN, { source: memorySource(files) });
        assert.ok(depth <= MAX_INCLUDE_DEPTH + 1, `accepted a chain of ${depth} files`);
        assert.equal(config.files.length, depth);
        // Nested Match blocks are named by every level, so a finding says which chain of blocks holds.
        if (withMatch) assert.match(config.blocks.at(-1)?.label ?? "", new RegExp(`^User u0 and .*User u${depth - 1}$|^User u0$`));
      } catch (error) {
        assert.ok(error instanceof SshConfigError, String(error));
        assert.match(error.message, /Too many recursive configuration includes/);
        assert.ok(depth > MAX_INCLUDE_DEPTH);
      }
    }),
    { numRuns: 80 },
  );
});

test("an Include loop and an Include fan-out end with a clear error instead of hanging", () => {
  assert.throws(() => parseSshdConfig(`Include ${MAIN}\n`, MAIN, { source: memorySource({ [MAIN]: `Include ${MAIN}\n` }) }), /line 1: Too many recursive configuration includes/);
  const many: Record<string, string> = { [MAIN]: "Include /etc/ssh/d/*.conf\n" };
  for (let i = 0; i < 1000; i++) many[`/etc/ssh/d/${String(i).padStart(4, "0")}.conf`] = "Include /etc/ssh/d/*.conf\n";
  assert.throws(() => parseSshdConfig(many[MAIN] as string, MAIN, { source: memorySource(many) }), /line 1: (more than 256 configuration files included|Too many recursive)/);
});
