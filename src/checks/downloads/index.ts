// Public API of the downloads check: verify release artifacts against SHA256SUMS.
export { verifyDownloads, DEFAULT_MAX_ARTIFACT_BYTES, MAX_SUMS_BYTES, type VerifyDownloadsOptions, type VerifyDownloadsResult } from "./verify.ts";
export { foldedName, LOOKALIKE_SCAN_LIMIT } from "./lookalike.ts";
export { parseSums, parseSumsLine, unsafeNameReason, MAX_SUMS_LINE, type SumsLine } from "./sums-parse.ts";
