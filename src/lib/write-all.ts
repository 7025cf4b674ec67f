// Writes every byte given to a file. write(2) may write fewer bytes than asked without an error (a full disk, a quota,
// a file size limit): a caller that ignores the count publishes a file cut short as if it were whole.
import { writeSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";

/**
 * Writes all of `data` at the handle's current position, continuing after a short write: the next write then
 * reports why (ENOSPC, EDQUOT, EFBIG) and rejects. A write that makes no progress rejects too, rather than loop.
 *
 * @example
 * await writeAll(handle, Buffer.from(text, "utf8"));
 */
export async function writeAll(handle: FileHandle, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    if (bytesWritten <= 0) throw new Error(`short write: ${offset} of ${data.length} bytes written, then none (is the disk full?)`);
    offset += bytesWritten;
  }
}

/**
 * writeAll for a file descriptor, synchronously (the master key file is written before anything is wrapped under it).
 * `write` is writeSync but for tests.
 *
 * @example
 * writeAllSync(fd, Buffer.from(`${line}\n`, "utf8"));
 */
export function writeAllSync(fd: number, data: Uint8Array, write: (fd: number, data: Uint8Array, offset: number, length: number) => number = writeSync): void {
  let offset = 0;
  while (offset < data.length) {
    const written = write(fd, data, offset, data.length - offset);
    if (written <= 0) throw new Error(`short write: ${offset} of ${data.length} bytes written, then none (is the disk full?)`);
    offset += written;
  }
}
