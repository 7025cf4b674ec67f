// The line stage's events as a worker hands them to the main thread: per batch, one Float64Array of numbers (nine per
// record), one string holding the addresses and user names back to back, each cut out again by its length (lengths,
// not separators: a user name is whatever bytes the log holds, a separator among them included), and the kind and
// method names by code. One message per chunk of log instead of one per event: the cost of crossing threads is paid
// ~10,000 lines at a time. An event the same as the one before (a repeat line stands for up to 1,000 of its message)
// is one record with a count: a batch then holds no more records than its chunk has lines, and no more text than the
// chunk (was: each repeat a record of its own, and 100 repeat lines after an 8,000-byte user name made a batch string
// past V8's limit; 200 KB of repeat lines took a gigabyte).
import type { SshdEventSink } from "./line-stage.ts";
import type { SshdEvent } from "./sshd-messages.ts";

/** Numbers per record: kind of record, time, line, flags, the lengths of address and user, the kind and method's codes, and how many times in a row. */
const STRIDE = 9;
const FAILURE = 0;
const SUCCESS = 1;
const INVALID_USER = 1;
const NO_USER = 2;
const NO_ADDRESS = 8;
/** The code of "no method"; a code below it is a method sent in the text, -2 - its length. */
const NO_METHOD = -1;
/**
 * Names coded at most: kinds are a fixed set of the matchers', but a method is the word a line has after "Failed" or
 * "Accepted", and a forged line (`logger -t sshd`) can give each its own; past the bound they go in the text (was: every
 * new method coded, so a log of distinct methods grew both threads' tables without bound).
 */
const MAX_CODES = 256;

/**
 * One batch, as posted. Kinds and methods (a few dozen names) go by code: `names` holds the ones this batch uses for
 * the first time, in the order of their codes.
 */
export interface EventBatchMessage {
  numbers: Float64Array<ArrayBuffer>;
  text: string;
  names: string[];
}

/** Collects the events of a chunk of log (a sink for the line stage) until `take` posts them. */
export class EventBatch implements SshdEventSink {
  #numbers = new Float64Array(STRIDE * 4096);
  #length = 0;
  #text = "";
  // Kind and method names, coded once for the whole run (the receiver keeps the same list, NameTable).
  readonly #codes = new Map<string, number>();
  #newNames: string[] = [];

  /** The code of `name`; for a method (`bounded`), undefined when the table is full and `name` not in it. */
  #code(name: string, bounded: boolean): number | undefined {
    let code = this.#codes.get(name);
    if (code === undefined && (!bounded || this.#codes.size < MAX_CODES)) {
      code = this.#codes.size;
      this.#codes.set(name, code);
      this.#newNames.push(name);
    }
    return code;
  }

  // The last record's event and address, to count an event the same as it in that record.
  #lastEvent: SshdEvent | null = null;
  #lastAddress: string | null = null;
  #lastRecord = -1;

  #push(record: number, event: SshdEvent, address: string | null, t: number, lineNo: number): void {
    const { user, method } = event;
    const last = this.#length - STRIDE;
    if (last >= 0 && this.#lastEvent === event && this.#lastAddress === address && this.#lastRecord === record && this.#numbers[last + 1] === t && this.#numbers[last + 2] === lineNo) {
      (this.#numbers[last + 8] as number)++;
      return;
    }
    this.#lastEvent = event;
    this.#lastAddress = address;
    this.#lastRecord = record;
    if (this.#length + STRIDE > this.#numbers.length) {
      const more = new Float64Array(this.#numbers.length * 2);
      more.set(this.#numbers);
      this.#numbers = more;
    }
    const n = this.#numbers;
    const i = this.#length;
    n[i] = record;
    n[i + 1] = t;
    n[i + 2] = lineNo;
    n[i + 3] = (event.invalidUser ? INVALID_USER : 0) | (user === null ? NO_USER : 0) | (address === null ? NO_ADDRESS : 0);
    n[i + 4] = address === null ? 0 : address.length;
    n[i + 5] = user === null ? 0 : user.length;
    // Kinds are the matchers' own literals (a few dozen): always coded.
    n[i + 6] = this.#code(event.kind, false) as number;
    const methodCode = method === null ? NO_METHOD : this.#code(method, true);
    n[i + 7] = methodCode ?? -2 - (method as string).length;
    n[i + 8] = 1;
    this.#length = i + STRIDE;
    if (address !== null) this.#text += address;
    if (user !== null) this.#text += user;
    if (methodCode === undefined) this.#text += method as string;
  }

  failure(address: string, event: SshdEvent, t: number, lineNo: number): void {
    this.#push(FAILURE, event, address, t, lineNo);
  }

  success(event: SshdEvent, t: number, lineNo: number): void {
    this.#push(SUCCESS, event, event.address, t, lineNo);
  }

  /** The batch so far, emptied. */
  take(): EventBatchMessage {
    const batch = { numbers: this.#numbers.slice(0, this.#length), text: this.#text, names: this.#newNames };
    this.#length = 0;
    this.#text = "";
    this.#newNames = [];
    this.#lastEvent = null;
    this.#lastAddress = null;
    return batch;
  }
}

/** The receiving side's list of kind and method names, by code (grown by each batch's `names`). */
export type NameTable = string[];

/**
 * Hands a batch's events to `sink` in their order; `names` is the run's name table (grown here). The event object is
 * reused from one to the next: a sink keeps none (the analyzer copies what it records).
 */
export function replayEvents(batch: EventBatchMessage, names: NameTable, sink: SshdEventSink): void {
  const { numbers, text } = batch;
  for (const name of batch.names) names.push(name);
  const event: SshdEvent = { kind: "", effect: "fail", forget: false, address: null, user: null, method: null, invalidUser: false };
  let at = 0;
  for (let i = 0; i + STRIDE <= numbers.length; i += STRIDE) {
    const flags = numbers[i + 3] as number;
    let address: string | null = null;
    if ((flags & NO_ADDRESS) === 0) {
      const end = at + (numbers[i + 4] as number);
      address = text.slice(at, end);
      at = end;
    }
    if ((flags & NO_USER) === 0) {
      const end = at + (numbers[i + 5] as number);
      event.user = text.slice(at, end);
      at = end;
    } else event.user = null;
    event.kind = names[numbers[i + 6] as number] as string;
    const method = numbers[i + 7] as number;
    if (method < NO_METHOD) {
      const end = at + (-2 - method);
      event.method = text.slice(at, end);
      at = end;
    } else event.method = method === NO_METHOD ? null : (names[method] as string);
    event.invalidUser = (flags & INVALID_USER) !== 0;
    event.address = address;
    const t = numbers[i + 1] as number;
    const lineNo = numbers[i + 2] as number;
    if (numbers[i] === FAILURE) {
      event.effect = "fail";
      for (let k = numbers[i + 8] as number; k > 0; k--) sink.failure(address as string, event, t, lineNo);
    } else {
      event.effect = "gained";
      for (let k = numbers[i + 8] as number; k > 0; k--) sink.success(event, t, lineNo);
    }
  }
}
