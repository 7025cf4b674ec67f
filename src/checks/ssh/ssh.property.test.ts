// Property tests: random and hostile configuration text always yields a value map or a clear
// SshConfigError, never a crash or a hang.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { SshConfigError } from "./errors.ts";
import { evaluate } from "./evaluate.ts";
import { EVALUATED } from "./keywords.ts";
import { memorySource } from "./memory-source.ts";
import { parseSshdConfig } from "./parser.ts";
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
