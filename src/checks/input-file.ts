// Opens a file a check reads (a baseline, a checksum file) without letting a swapped-in special file stop the check:
// a named pipe with no writer blocks open() for ever, and a device such as /dev/zero never ends. An intruder who
// replaces the file would otherwise make a scheduled check hang in silence instead of failing loudly (ASVS 16.5.3).
import { constants, type ReadStream } from "node:fs";
import { open } from "node:fs/promises";

/** Paths an operator uses to hand a check a pipe on purpose: process substitution `<(…)`, a here-document, stdin. */
const OPERATOR_PIPE = /^\/(?:dev|proc\/self)\/fd\/\d+$|^\/dev\/stdin$/;

/**
 * A read stream over `path`, which must be a regular file unless it names a pipe the operator passed on purpose
 * (/dev/fd/N, /dev/stdin). Opened without blocking (O_NONBLOCK: a FIFO swapped in does not hold the open) and
 * checked on the open descriptor, so nothing can be swapped between the check and the read. Throws an Error whose
 * message says what the path is instead; the caller wraps it in its own code.
 *
 * @example
 * const stream = await openInputFile(options.baseline); // rejects "it is a named pipe (FIFO), not a regular file…"
 */
export async function openInputFile(path: string): Promise<ReadStream> {
  if (OPERATOR_PIPE.test(path)) return (await open(path, constants.O_RDONLY)).createReadStream();
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      const kind = st.isDirectory() ? "a directory" : st.isFIFO() ? "a named pipe (FIFO)" : st.isCharacterDevice() ? "a character device" : st.isBlockDevice() ? "a block device" : st.isSocket() ? "a socket" : "not a regular file";
      throw new Error(`it is ${kind}, not a regular file (a pipe is read only when passed as /dev/fd/N, e.g. with <(…))`);
    }
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle.createReadStream();
}
