// The hidden password prompt (readHiddenLine) against a fake terminal: what is typed is never written back, editing
// keys edit, escape sequences are not taken as text, Ctrl-C cancels, and the terminal's mode is always restored.
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import type { CliContext } from "./context.ts";
import { canPromptHidden, readHiddenLine } from "./prompt.ts";

/** A terminal: raw mode recorded, keys fed as chunks; everything the prompt writes is kept. */
function terminal(): { ctx: CliContext; keys: (...chunks: string[]) => void; modes: boolean[]; written: () => string } {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, isRaw: false, modes: [] as boolean[] });
  (stdin as unknown as { setRawMode: (m: boolean) => void }).setRawMode = (m: boolean) => {
    stdin.isRaw = m;
    stdin.modes.push(m);
  };
  let out = "";
  const stderr = new PassThrough();
  stderr.on("data", (d: Buffer) => (out += d.toString()));
  const stdout = new PassThrough();
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  const ctx = { stdin, stdout, stderr, stderrIsTTY: true } as unknown as CliContext;
  return { ctx, keys: (...chunks) => chunks.forEach((c, i) => setTimeout(() => stdin.write(Buffer.from(c)), i)), modes: stdin.modes, written: () => out };
}

const tooLong = (): Error => new RangeError("too long");

describe("readHiddenLine (CWE-549: a typed password is never echoed)", () => {
  it("reads one line with echo off, writes back only the question and a newline, and restores the mode", async () => {
    const t = terminal();
    assert.equal(canPromptHidden(t.ctx), true);
    t.keys("s3cr", "ét \u2603\r", "after the line");
    assert.equal(await readHiddenLine(t.ctx, "Password: ", { maxBytes: 100, tooLong }), "s3crét \u2603");
    assert.equal(t.written(), "Password: \n");
    assert.deepEqual(t.modes, [true, false]);
  });

  it("backspace deletes one character (a whole code point), Ctrl-U the line; arrow keys and other controls are not text", async () => {
    const t = terminal();
    t.keys("wrong\u0015pa", "\u00e9\u{1F511}\u007f\u007fss", "\u001b[A\u001b[D\u001bOB", "\u0001w\u0008", "word\n");
    assert.equal(await readHiddenLine(t.ctx, "Password: ", { maxBytes: 100, tooLong }), "password");
  });

  it("Ctrl-C cancels with an input error (exit 2), and the terminal is left as it was", async () => {
    const t = terminal();
    t.keys("half typed\u0003");
    await assert.rejects(readHiddenLine(t.ctx, "Password: ", { maxBytes: 100, tooLong }), (e: Error & { code?: string }) => e.code === "BULWARK_ERR_CANCELLED");
    assert.deepEqual(t.modes, [true, false]);
    assert.equal(t.written().includes("half"), false);
  });

  it("stops at maxBytes of UTF-8 instead of holding whatever is pasted", async () => {
    const t = terminal();
    t.keys("é".repeat(6));
    await assert.rejects(readHiddenLine(t.ctx, "Password: ", { maxBytes: 10, tooLong }), /too long/);
    assert.deepEqual(t.modes, [true, false]);
  });

  it("a pipe is not a terminal: no hidden prompt (the password is read as piped)", () => {
    const ctx = { stdin: new PassThrough() } as unknown as CliContext;
    assert.equal(canPromptHidden(ctx), false);
  });
});
