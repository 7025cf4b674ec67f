// The main thread's side of the line stage in a worker (line-worker.ts): sends each input's bytes as they are read,
// at most MAX_IN_FLIGHT chunks ahead of the worker, and hands the failures and logins the worker posts back to the
// analyzer's sink in their order. Memory stays bounded both ways: the worker gets no more than a few chunks ahead of
// it, and it posts one batch per chunk it was sent.
import { Worker } from "node:worker_threads";
import { replayEvents, type EventBatchMessage, type NameTable } from "./line-events.ts";
import type { LineSnapshot, LineStageOptions, SshdEventSink } from "./line-stage.ts";
import type { ToLineWorker } from "./line-worker.ts";

/** Chunks (1 MiB each from a file) sent and not yet read by the worker. */
const MAX_IN_FLIGHT = 4;

type FromLineWorker =
  | ({ type: "events"; read: number } & EventBatchMessage)
  | { type: "ended"; lines: number; snapshot: LineSnapshot }
  | { type: "failed"; message: string; stack: string };

// The worker's module beside this one, as built (.ts run by Node, .js in the package).
const WORKER = new URL(`./line-worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

/**
 * @example
 * const remote = new RemoteLines(options, sink);
 * const lines = await remote.feed("auth.log", 1, chunks);
 * remote.snapshot; // the stage's counters
 * remote.close();
 */
export class RemoteLines {
  readonly #options: LineStageOptions;
  readonly #sink: SshdEventSink;
  #worker: Worker | null = null;
  #inFlight = 0;
  #failed: Error | null = null;
  // The failure was the sink's own error (the caller's consumer), not the worker's.
  #sinkFailed = false;
  #closed = false;
  // Resolved when a chunk is read, the input ended, or the worker failed: what feed() waits on.
  #wake: (() => void) | null = null;
  // Rejects the wait for the input's next chunk when the sink or the worker fails (#unlessFailed).
  #onFailure: ((error: Error) => void) | null = null;
  // Set when the worker has read the whole input (its lines).
  #ended: { lines: number } | null = null;
  // The worker's kind and method names by code (line-events.ts).
  readonly #names: NameTable = [];
  /** The worker's stage as of the end of the last input. */
  snapshot: LineSnapshot | null = null;

  constructor(options: LineStageOptions, sink: SshdEventSink) {
    this.#options = options;
    this.#sink = sink;
  }

  #start(): Worker {
    const worker = new Worker(WORKER, { workerData: { referenceMs: this.#options.referenceMs, year: this.#options.year, utcOffsetMinutes: this.#options.utcOffsetMinutes, maxLineLength: this.#options.maxLineLength } });
    worker.on("message", (message: FromLineWorker) => this.#receive(message));
    worker.on("error", (error: Error) => this.#fail(error));
    worker.on("exit", (code) => {
      if (this.#worker === worker) this.#fail(new Error(`the auth-log worker thread stopped (exit code ${code})`));
    });
    return worker;
  }

  #receive(message: FromLineWorker): void {
    if (this.#failed !== null) return;
    try {
      if (message.type === "events") {
        // The sink is the analyzer's windows and rules, and the caller's onFailure (which may throw: stdout gone).
        replayEvents(message, this.#names, this.#sink);
        this.#inFlight -= message.read;
      } else if (message.type === "ended") {
        this.snapshot = message.snapshot;
        this.#ended = { lines: message.lines };
      } else {
        const error = new Error(`the auth-log worker thread failed: ${message.message}`);
        error.stack = message.stack;
        throw error;
      }
    } catch (error) {
      this.#sinkFailed = message.type === "events";
      this.#fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.#wake?.();
  }

  #fail(error: Error): void {
    if (this.#failed !== null) return;
    this.#failed = error;
    this.close();
    this.#wake?.();
    this.#onFailure?.(error);
  }

  #post(message: ToLineWorker, transfer?: ArrayBuffer[]): void {
    (this.#worker as Worker).postMessage(message, transfer ?? []);
  }

  /** `pending`, or the failure when one comes first (whatever `pending` does later is ignored). */
  #unlessFailed<T>(pending: Promise<T>): Promise<T> {
    pending.catch(() => undefined);
    if (this.#failed !== null) return Promise.reject(this.#failed);
    return new Promise<T>((resolve, reject) => {
      const settle = (): void => {
        this.#onFailure = null;
      };
      this.#onFailure = (error) => {
        settle();
        reject(error);
      };
      pending.then((value) => {
        settle();
        resolve(value);
      }, (error: unknown) => {
        settle();
        reject(error);
      });
    });
  }

  /** Waits until `done` holds (checked after each message), or throws what failed. */
  async #until(done: () => boolean): Promise<void> {
    for (;;) {
      if (this.#failed !== null) throw this.#failed;
      if (done()) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
  }

  /** Refuses to read more after finish() (close) or after the analysis stopped on an error: its state is gone or partial. */
  #usable(): void {
    if (this.#failed !== null) throw new Error(`the auth-log analysis stopped on an earlier error and reads no more: ${this.#failed.message}`, { cause: this.#failed });
    if (this.#closed) throw new Error("an auth-log analyzer with a worker reads no more input after finish()");
  }

  /**
   * Reads one input, file number `number` (1-based) named `name`, through the worker; returns its lines. When `chunks`
   * throws (corrupt compressed data, a read error), the lines before are still counted, and the error is thrown once
   * the worker has handed them all over. When the sink throws (a --matches consumer whose stdout is gone) or the
   * worker fails, that error is thrown and the analysis reads no more input (the worker had read ahead of the sink:
   * its state is past what was counted); what was counted stays for finish(), as in one thread, with the line counters
   * of the inputs read whole. The sink's error comes first, as in one thread, since it came from lines before the
   * point where the input failed. `modifiedMs`: the input's mtime, if it is a file (LineStage beginFile).
   */
  async feed(name: string, number: number, chunks: AsyncIterable<Buffer>, modifiedMs?: number): Promise<number> {
    this.#usable();
    this.#worker ??= this.#start();
    this.#worker.ref();
    this.#ended = null;
    this.#post({ type: "begin", name, number, modifiedMs });
    let inputError: { error: unknown } | null = null;
    const input = chunks[Symbol.asyncIterator]();
    try {
      for (;;) {
        // Waiting for the next chunk ends as soon as the sink or the worker fails: a followed log (`journalctl -f |
        // bulwark check authlog --matches - | head`) may send nothing more for hours after its reader went away.
        const next = await this.#unlessFailed(input.next());
        if (next.done === true) break;
        await this.#until(() => this.#inFlight < MAX_IN_FLIGHT);
        // A copy of exactly the chunk's bytes, moved to the worker (a Buffer may be a view of a larger pool).
        const bytes = new Uint8Array(next.value);
        this.#inFlight++;
        this.#post({ type: "chunk", bytes }, [bytes.buffer]);
      }
    } catch (error) {
      if (error !== this.#failed) inputError = { error };
      else {
        // Stopped on a failure: the input is let go without waiting (its read may never settle), as for-await would.
        input.return?.().catch(() => undefined);
      }
    }
    if (this.#failed === null) {
      this.#post({ type: "end", whole: inputError === null });
      await this.#until(() => this.#ended !== null).catch(() => {
        // this.#failed says what failed.
      });
    }
    this.#worker?.unref();
    if (this.#failed !== null && this.#sinkFailed) throw this.#failed;
    if (inputError !== null) throw inputError.error;
    if (this.#failed !== null) throw this.#failed;
    // Set by #receive meanwhile (TypeScript still sees the null assigned above).
    const ended = this.#ended as { lines: number } | null;
    return ended?.lines ?? 0;
  }

  /** Stops the worker (idempotent); no input is read after it. */
  close(): void {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = null;
    if (worker !== null) void worker.terminate();
  }
}
