// A streaming RFC 4180 CSV reader: quoted fields, doubled quotes, CRLF, LF or CR, line breaks inside
// quotes. Field, record and column counts are bounded so a hostile file cannot exhaust memory.
import { ImportFormatError } from "./errors.ts";
import { decodeUTF8 } from "./utf8.ts";

/**
 * One record, or one that is malformed (a stray quote): reported with its line so a dry run lists
 * every bad row, and skipped to the end of its physical line, where reading resumes.
 */
export type CsvRecord = {
  /** The 1-based physical line the record starts on (what an operator finds in an editor). */
  line: number;
  fields: string[];
} | { line: number; error: string };

export interface CsvLimits {
  maxFieldChars: number;
  maxRecordChars: number;
  maxFields: number;
}

// Generous for account rows (a PHC hash is ~100 characters, an email at most 254), small enough
// that one record can never hold more than a few MiB however the file is built.
export const DEFAULT_CSV_LIMITS: Readonly<CsvLimits> = Object.freeze({ maxFieldChars: 64 * 1024, maxRecordChars: 1024 * 1024, maxFields: 256 });

const QUOTE = 34;
const COMMA = 44;
const CR = 13;
const LF = 10;

/**
 * Parses CSV arriving in chunks (bytes are decoded as UTF-8, see utf8.ts), yielding one record at a
 * time. Blank lines are skipped. A stray quote makes that record `{ line, error }` and reading goes on
 * at the next physical line. Throws ImportFormatError (with the line number) for an unterminated
 * quoted field or a bound exceeded: past those, nothing later in the file can be trusted.
 *
 * @example
 * for await (const r of parseCSV(createReadStream(file))) console.log(r.line, "error" in r ? r.error : r.fields);
 */
export async function* parseCSV(chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>, limits: CsvLimits = DEFAULT_CSV_LIMITS): AsyncGenerator<CsvRecord> {
  let line = 1;
  let recordLine = 1;
  let fields: string[] = [];
  let field = "";
  let recordChars = 0;
  let inQuotes = false;
  let afterQuote = false; // just read the closing quote of a quoted field
  let quoted = false; // the current field started with a quote
  let quotedCR = false; // the previous character inside quotes was a CR (CRLF is one line break)
  let pendingCR = false;
  let broken: string | null = null; // the current record is malformed: skip to the end of its line
  let first = true;

  const fail = (message: string): never => {
    throw new ImportFormatError(inQuotes ? recordLine : line, message);
  };
  const endField = (): void => {
    fields.push(field);
    if (fields.length > limits.maxFields) fail(`more than ${limits.maxFields} columns`);
    field = "";
    quoted = false;
    afterQuote = false;
  };
  const endRecord = (): CsvRecord | null => {
    let out: CsvRecord | null;
    if (broken !== null) {
      out = { line: recordLine, error: broken };
      broken = null;
    } else {
      const wasQuoted = quoted;
      endField();
      out = fields.length === 1 && fields[0] === "" && !wasQuoted ? null : { line: recordLine, fields };
    }
    fields = [];
    recordChars = 0;
    line++;
    recordLine = line;
    return out;
  };
  const breakRecord = (message: string): void => {
    broken = line === recordLine ? message : `${message} (on line ${line})`;
    fields = [];
    field = "";
    quoted = false;
    afterQuote = false;
  };
  const append = (c: string): void => {
    field += c;
    recordChars++;
    if (field.length > limits.maxFieldChars) fail(`a field is longer than ${limits.maxFieldChars} characters`);
    if (recordChars > limits.maxRecordChars) fail(`a record is longer than ${limits.maxRecordChars} characters`);
  };

  for await (let chunk of decodeUTF8(chunks)) {
    if (first) {
      first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1); // a UTF-8 byte-order mark, as spreadsheets write
    }
    for (let i = 0; i < chunk.length; i++) {
      const code = chunk.charCodeAt(i);
      if (pendingCR) {
        pendingCR = false;
        const rec = endRecord();
        if (rec) yield rec;
        if (code === LF) continue; // CRLF is one line break
      }
      if (broken !== null) {
        // Resynchronise at the end of the physical line: quotes mean nothing until then.
        if (code === CR) pendingCR = true;
        else if (code === LF) {
          const rec = endRecord();
          if (rec) yield rec;
        }
      } else if (inQuotes) {
        if (code === QUOTE) {
          inQuotes = false;
          afterQuote = true;
        } else {
          // A bare CR is a line break inside quotes as it is outside; the LF of a CRLF is not another.
          if (code === CR || (code === LF && !quotedCR)) line++;
          quotedCR = code === CR;
          append(chunk[i]!);
        }
      } else if (afterQuote) {
        if (code === QUOTE) {
          // A doubled quote inside a quoted field is one literal quote (RFC 4180 §2.7).
          inQuotes = true;
          quotedCR = false;
          afterQuote = false;
          append('"');
        } else if (code === COMMA) endField();
        else if (code === CR) pendingCR = true;
        else if (code === LF) {
          const rec = endRecord();
          if (rec) yield rec;
        } else breakRecord("unexpected character after a closing quote (a quote inside a quoted field must be doubled)");
      } else if (code === QUOTE) {
        if (field.length > 0) breakRecord("a quote inside an unquoted field (quote the whole field and double the quote)");
        else {
          inQuotes = true;
          quotedCR = false;
          quoted = true;
        }
      } else if (code === COMMA) endField();
      else if (code === CR) pendingCR = true;
      else if (code === LF) {
        const rec = endRecord();
        if (rec) yield rec;
      } else append(chunk[i]!);
    }
  }
  if (inQuotes) fail("a quoted field is not terminated before the end of the file");
  if (pendingCR || broken !== null || field !== "" || fields.length > 0 || quoted) {
    const rec = endRecord();
    if (rec) yield rec;
  }
}
