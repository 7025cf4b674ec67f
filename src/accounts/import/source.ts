// Reads an import file as numbered rows with named columns, whatever its format: CSV with a header
// row (RFC 4180) or JSONL (one object per line). Malformed rows are reported, not thrown.
import { InputError } from "../../lib/errors.ts";
import { parseCSV, type CsvLimits } from "./csv.ts";
import { readLines } from "./lines.ts";

export type ImportFormat = "csv" | "jsonl";

export type SourceRow = { line: number; get: (column: string) => string | undefined } | { line: number; error: string };

export interface SourceOptions {
  format: ImportFormat;
  /** Called once with the CSV header (before any row), to check the mapping against it. */
  onHeader?: (header: string[]) => void;
  csvLimits?: CsvLimits;
  maxLineChars?: number;
}

function scalar(value: unknown): string | undefined | null {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "boolean") return value ? "1" : "0";
  return null; // objects, arrays: not a field value
}

/**
 * Yields every data row of the file. CSV rows whose column count differs from the header, and
 * JSONL lines that are not a JSON object, are yielded as `{ line, error }`.
 *
 * @example
 * for await (const row of readRows(createReadStream(path, "utf8"), { format: "csv" })) if ("get" in row) row.get("mail");
 */
export async function* readRows(chunks: AsyncIterable<string | Buffer>, options: SourceOptions): AsyncGenerator<SourceRow> {
  if (options.format === "csv") {
    let header: string[] | null = null;
    let index = new Map<string, number>();
    for await (const rec of parseCSV(chunks, options.csvLimits)) {
      if (header === null) {
        header = rec.fields.map((f) => f.trim());
        index = new Map(header.map((name, i) => [name, i]));
        options.onHeader?.(header);
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
    let value: unknown;
    try {
      value = JSON.parse(l.text);
    } catch (error) {
      yield { line: l.line, error: `is not valid JSON (${(error as Error).message.slice(0, 80)})` };
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      yield { line: l.line, error: "is not a JSON object" };
      continue;
    }
    const object = value as Record<string, unknown>;
    let bad: string | null = null;
    const get = (column: string): string | undefined => {
      if (!Object.hasOwn(object, column)) return undefined;
      const v = scalar(object[column]);
      if (v === null) bad ??= column;
      return v ?? undefined;
    };
    yield {
      line: l.line,
      get: (column) => {
        const v = get(column);
        if (bad !== null) throw new InputError("BULWARK_ERR_IMPORT_ROW", `"${bad.slice(0, 40)}" holds an object or array, not a value`);
        return v;
      },
    };
  }
}
