// Opens a file a check reads (a baseline, a checksum file) without letting a swapped-in special file stop the check:
// a named pipe with no writer blocks open() for ever, and a device such as /dev/zero never ends. An intruder who
// replaces the file would otherwise make a scheduled check hang in silence instead of failing loudly (ASVS 16.5.3).
import { constants, type ReadStream, type Stats } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

/** Paths an operator uses to hand a check a pipe on purpose: process substitution `<(…)`, a here-document, stdin. */
const OPERATOR_PIPE = /^\/(?:dev|proc\/self)\/fd\/\d+$|^\/dev\/stdin$/;

/** What a path that is not a regular file is, in words ("a named pipe (FIFO)"). */
export function kindOf(st: Stats): string {
  return st.isDirectory() ? "a directory" : st.isFIFO() ? "a named pipe (FIFO)" : st.isCharacterDevice() ? "a character device" : st.isBlockDevice() ? "a block device" : st.isSocket() ? "a socket" : "not a regular file";
}

/**
 * A handle on `path`, which must be a regular file unless it names a pipe the operator passed on purpose (/dev/fd/N,
 * /dev/stdin; never a directory). Opened without blocking (O_NONBLOCK: a FIFO swapped in does not hold the open) and
 * checked on the open descriptor, so nothing can be swapped between the check and the read. Throws an Error whose
 * message says what the path is instead (a directory's has the code EISDIR); the caller wraps it in its own code.
 * `pipeHint` ends the message: how this caller takes a pipe on purpose.
 *
 * @example
 * const handle = await openInputHandle(path); // rejects "it is a named pipe (FIFO), not a regular file…"
 */
export async function openInputHandle(path: string, pipeHint = "a pipe is read only when passed as /dev/fd/N, e.g. with <(…)"): Promise<FileHandle> {
  const operatorPipe = OPERATOR_PIPE.test(path);
  const handle = await open(path, operatorPipe ? constants.O_RDONLY : constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (st.isDirectory() || (!st.isFile() && !operatorPipe)) {
      throw Object.assign(new Error(`it is ${kindOf(st)}, not a regular file (${pipeHint})`), st.isDirectory() ? { code: "EISDIR" } : {});
    }
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}

/**
 * A read stream over `path`, opened and checked as openInputHandle does.
 *
 * @example
 * const stream = await openInputFile(options.baseline);
 */
export async function openInputFile(path: string): Promise<ReadStream> {
  return (await openInputHandle(path)).createReadStream();
}
