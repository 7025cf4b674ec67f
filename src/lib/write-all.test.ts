// writeAll against a file that takes fewer bytes than asked, as one does on a full disk (ASVS 16.5.3).
import assert from "node:assert/strict";
import type { FileHandle } from "node:fs/promises";
import { it } from "node:test";
import { writeAll, writeAllSync } from "./write-all.ts";

/** A file taking at most `perWrite` bytes a call, and `room` in all; then it fails like a full disk, or takes none. */
function smallFile(perWrite: number, room: number, full: "error" | "zero"): { handle: FileHandle; bytes: () => Buffer } {
  const kept: Buffer[] = [];
  let used = 0;
  const handle = {
    write: async (data: Uint8Array, offset: number, length: number) => {
      const n = Math.min(perWrite, length, room - used);
      if (n === 0 && full === "error") throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      kept.push(Buffer.from(data.subarray(offset, offset + n)));
      used += n;
      return { bytesWritten: n, buffer: data };
    },
  };
  return { handle: handle as unknown as FileHandle, bytes: () => Buffer.concat(kept) };
}

it("continues after short writes until every byte is written, in order", async () => {
  const file = smallFile(3, 100, "error");
  await writeAll(file.handle, Buffer.from("0123456789abcdef"));
  assert.equal(file.bytes().toString(), "0123456789abcdef");
});

it("attack: the disk fills mid-write — the short write is followed by the write that fails, and that error is thrown", async () => {
  const file = smallFile(1024, 10, "error");
  await assert.rejects(writeAll(file.handle, Buffer.alloc(64)), { code: "ENOSPC" });
  assert.equal(file.bytes().length, 10);
});

it("a write that makes no progress is an error, not an endless loop", async () => {
  const file = smallFile(1024, 10, "zero");
  await assert.rejects(writeAll(file.handle, Buffer.alloc(64)), /short write: 10 of 64 bytes written, then none/);
});

it("writes nothing for empty data", async () => {
  const file = smallFile(0, 0, "zero");
  await writeAll(file.handle, Buffer.alloc(0));
  assert.equal(file.bytes().length, 0);
});

/** writeSync's shape over smallFile's rules, for writeAllSync. */
function smallFd(perWrite: number, room: number, full: "error" | "zero"): { write: (fd: number, data: Uint8Array, offset: number, length: number) => number; bytes: () => Buffer } {
  const kept: Buffer[] = [];
  let used = 0;
  return {
    write: (_fd, data, offset, length) => {
      const n = Math.min(perWrite, length, room - used);
      if (n === 0 && full === "error") throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      kept.push(Buffer.from(data.subarray(offset, offset + n)));
      used += n;
      return n;
    },
    bytes: () => Buffer.concat(kept),
  };
}

it("writeAllSync: continues after short writes (the master key's line, three bytes at a time), and a full disk or no progress is an error", () => {
  const line = Buffer.from("q9Wm0c3rJb0pW8xkYQ1mYb6d2ZB3cY2Xk1wV0uT9sR8=\n");
  const file = smallFd(3, 100, "error");
  writeAllSync(7, line, file.write);
  assert.deepEqual(file.bytes(), line);
  assert.throws(() => writeAllSync(7, line, smallFd(1024, 10, "error").write), { code: "ENOSPC" });
  assert.throws(() => writeAllSync(7, line, smallFd(1024, 10, "zero").write), /short write: 10 of 45 bytes written, then none/);
});
