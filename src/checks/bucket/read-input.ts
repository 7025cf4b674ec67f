// Reads an input file for the bucket check without ever loading more than the size bound.
import { open } from "node:fs/promises";
import { BucketInputError } from "./errors.ts";
import { MAX_INPUT_BYTES } from "./json-input.ts";

/**
 * Reads `path` as UTF-8, refusing files larger than MAX_INPUT_BYTES (checked while reading, so a
 * FIFO or a growing file cannot exhaust memory either).
 *
 * @example
 * const text = await readBoundedFile("policy.json");
 */
export async function readBoundedFile(path: string): Promise<string> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (cause) {
    throw new BucketInputError(`${path}: cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > MAX_INPUT_BYTES) throw new BucketInputError(`${path}: file is larger than ${MAX_INPUT_BYTES} bytes`);
      chunks.push(buf.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks).toString("utf8");
  } catch (cause) {
    if (cause instanceof BucketInputError) throw cause;
    throw new BucketInputError(`${path}: cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  } finally {
    await handle.close();
  }
}
