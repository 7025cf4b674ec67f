// The line stage in a worker thread (remote-lines.ts starts it): the main thread sends the bytes of each input as they
// are read, this thread splits them into lines and reads them, and posts back, per chunk, the failures and logins they
// hold (line-events.ts) for the main thread's windows and rules. Two threads on two cores: the analysis's halves
// overlap instead of taking turns. The messages, in order:
//   in:  { type: "begin", name, number, modifiedMs? } · { type: "chunk", bytes } · { type: "end", whole }
//   out: { type: "events", read, numbers, text, names } per chunk and at the end · { type: "ended", lines, snapshot }
//        · { type: "failed", message, stack } (a bug here: the main thread rejects the analysis with it)
import { parentPort, workerData } from "node:worker_threads";
import { EventBatch } from "./line-events.ts";
import { LineSplitter } from "./line-splitter.ts";
import { emptyLineStats, LineStage, type LineStageOptions } from "./line-stage.ts";

export type ToLineWorker = { type: "begin"; name: string; number: number; modifiedMs?: number | undefined } | { type: "chunk"; bytes: Uint8Array } | { type: "end"; whole: boolean };

const port = parentPort;
if (port === null) throw new Error("line-worker.ts runs as a worker thread (remote-lines.ts)");

const batch = new EventBatch();
const stage = new LineStage(workerData as LineStageOptions, emptyLineStats(), batch);
let splitter = new LineSplitter(stage);

/** The events so far; `read`: 1 when they end a chunk the main thread sent (it sends the next when it has room). */
function post(read: number): void {
  const events = batch.take();
  port?.postMessage({ type: "events", read, ...events }, [events.numbers.buffer]);
}

port.on("message", (message: ToLineWorker) => {
  try {
    if (message.type === "begin") {
      stage.beginFile(message.name, message.number, message.modifiedMs);
      splitter = new LineSplitter(stage);
    } else if (message.type === "chunk") {
      splitter.push(Buffer.from(message.bytes.buffer, message.bytes.byteOffset, message.bytes.byteLength));
      post(1);
    } else {
      // An input cut short by an error (corrupt compressed data) ends without its last partial line, as in one thread.
      if (message.whole) splitter.end();
      stage.endFile();
      post(0);
      port.postMessage({ type: "ended", lines: splitter.lines, snapshot: stage.snapshot() });
    }
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    port.postMessage({ type: "failed", message: e.message, stack: e.stack ?? "" });
  }
});
