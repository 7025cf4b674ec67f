// Public API of the files check: scan, signed baselines, compare, findings.
export { createBaseline, compareBaseline, type CreateBaselineOptions, type CreateBaselineResult, type CompareBaselineOptions, type CompareBaselineResult, type ScanTuning } from "./check.ts";
export { scanTree, normaliseRoots, canonicalPath, nodeScanFS, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_SCAN_BYTES, type ScanOptions, type ScanStats } from "./scan.ts";
export { hashFile, type ScanFS, type HashOutcome, type HashLimits, type ByteLimit } from "./hash-file.ts";
export { writeBaseline, writeBaselineFile, type BaselineSink, type WriteBaselineOptions, type BaselineWriteResult } from "./baseline-write.ts";
export { BaselineReader, type BaselineIntegrity } from "./baseline-read.ts";
export { BASELINE_FORMAT, BASELINE_VERSION, MAX_LINE, type BaselineHeader, type BaselineTrailer } from "./baseline-format.ts";
export { diffEntries, diffEntry, type DiffEvent, type DiffKind } from "./compare.ts";
export { classify, isSystemExecutable, isSystemPath, SYSTEM_BINARY_DIRS, type Classification } from "./classify.ts";
export { FindingCollector, tapScan, EVIDENCE_LIMIT } from "./findings.ts";
export { comparePaths, type FileEntry, type EntryType, type EntryStatus } from "./entry.ts";
export { boundedLines, type Line } from "./line-reader.ts";
export { filesErrors } from "./errors.ts";
export { recordBaseline, supersedingRecord, treeKey, BASELINE_RECORDED, type RecordedBaseline } from "./records.ts";
