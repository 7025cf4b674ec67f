// Reads an import file as numbered rows with named columns, whatever its format: CSV with a header
// row (RFC 4180) or JSONL (one object per line). Malformed rows are reported, not thrown.
import { InputError } from "../../lib/errors.ts";
import { parseCSV, type CsvLimits } from "./csv.ts";
import { ImportFormatError } from "./errors.ts";
import { parseJSONLine } from "./json-line.ts";
import { readLines } from "./lines.ts";
import { encodingProblem } from "./utf8.ts";

export type ImportFormat = "csv" | "jsonl";

/**
 * A data row, or why it cannot be one. A JSONL row lists its keys (`columns`): a JSONL file has no header, so each
 * line names its own columns, and a key no field reads must be found per line (importer.ts refuses it).
 */
export type SourceRow = { line: number; get: (column: string) => string | undefined; columns?: readonly string[] } | { line: number; error: string };

export interface SourceOptions {
  format: ImportFormat;
  /** Called once with the CSV header (before any row), to check the mapping against it. */
  onHeader?: (header: string[]) => void;
  csvLimits?: CsvLimits;
  maxLineChars?: number;
}

// A whole number written out in digits: kept exactly as written, whatever its size.
const INTEGER = /^-?(0|[1-9][0-9]*)$/;

/** A JSON value as a field value: the text, undefined when absent, or why it cannot be one. */
function scalar(value: unknown, numberText: string | undefined): string | undefined | { bad: string } {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number") {
    // Never through a double: 12345678901234567891 would become "12345678901234567000" (and collide
    // with its neighbours), 1e21 "1e+21". A fraction or an exponent is refused rather than guessed at.
    const text = numberText ?? String(value);
    if (INTEGER.test(text)) return text;
    return { bad: `holds the number ${text.slice(0, 40)}, which is not a whole number written in digits (quote it to keep it as text)` };
  }
  if (typeof value === "boolean") return value ? "1" : "0";
  return { bad: "holds an object or array, not a value" };
}

/** Column names must be unique: with a repeat, which column feeds a field would be a silent guess. */
function checkUniqueColumns(header: readonly string[], line: number): void {
  const seen = new Map<string, number>();
  for (const [i, name] of header.entries()) {
    if (name === "") continue; // unnamed columns (a trailing comma) can feed no field
    const before = seen.get(name);
    if (before !== undefined) throw new ImportFormatError(line, `the header names the column ${JSON.stringify(name.slice(0, 40))} twice (columns ${before + 1} and ${i + 1}); rename or remove one`);
    seen.set(name, i);
  }
}

/**
 * Yields every data row of the file. CSV rows whose column count differs from the header, rows with
 * a stray quote, JSONL lines that are not a JSON object (or repeat a key, or escape a lone surrogate), and
 * rows holding bytes that are not UTF-8 are yielded as `{ line, error }`. A header that is malformed, not UTF-8 or names a
 * column twice throws ImportFormatError.
 *
 * @example
 * for await (const row of readRows(createReadStream(path), { format: "csv" })) if ("get" in row) row.get("mail");
 */
export async function* readRows(chunks: AsyncIterable<string | Uint8Array>, options: SourceOptions): AsyncGenerator<SourceRow> {
  if (options.format === "csv") {
    let header: string[] | null = null;
    let index = new Map<string, number>();
    for await (const rec of parseCSV(chunks, options.csvLimits)) {
      if (header === null) {
        if ("error" in rec) throw new ImportFormatError(rec.line, `the header row: ${rec.error}`);
        const encoding = encodingProblem(...rec.fields);
        if (encoding) throw new ImportFormatError(rec.line, `the header row ${encoding}`);
        header = rec.fields.map((f) => f.trim());
        checkUniqueColumns(header, rec.line);
        index = new Map(header.map((name, i) => [name, i]));
        options.onHeader?.(header);
        continue;
      }
      if ("error" in rec) {
        yield { line: rec.line, error: rec.error };
        continue;
      }
      const encoding = encodingProblem(...rec.fields);
      if (encoding) {
        yield { line: rec.line, error: encoding };
        continue;
      }
      if (rec.fields.length !== header.length) {
        yield { line: rec.line, error: `has ${rec.fields.length} fields, the header has ${header.length}` };
        continue;
      }
      const fields = rec.fields;
      yield { line: rec.line, get: (column) => { const i = index.get(column); return i === undefined ? undefined : fields[i]; } };
    }
    if (header === null) options.onHeader?.([]);
    return;
  }
  for await (const l of readLines(chunks, options.maxLineChars)) {
    if (l.tooLong) {
      yield { line: l.line, error: "line is too long" };
      continue;
    }
    if (l.text.trim() === "") continue;
    const encoding = encodingProblem(l.text);
    if (encoding) {
      yield { line: l.line, error: encoding };
      continue;
    }
    const parsed = parseJSONLine(l.text);
    if ("error" in parsed) {
      yield { line: l.line, error: parsed.error };
      continue;
    }
    const { object, numberText } = parsed;
    let bad: string | null = null;
    const get = (column: string): string | undefined => {
      if (!Object.hasOwn(object, column)) return undefined;
      const v = scalar(object[column], numberText.get(column));
      if (typeof v === "object") {
        bad ??= `"${column.slice(0, 40)}" ${v.bad}`;
        return undefined;
      }
      return v;
    };
    yield {
      line: l.line,
      columns: Object.keys(object),
      get: (column) => {
        const v = get(column);
        if (bad !== null) throw new InputError("BULWARK_ERR_IMPORT_ROW", bad);
        return v;
      },
    };
  }
}
