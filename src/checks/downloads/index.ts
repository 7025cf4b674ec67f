// Public API of the downloads check: verify release artifacts against SHA256SUMS.
export { verifyDownloads, type VerifyDownloadsOptions, type VerifyDownloadsResult } from "./verify.ts";
export { parseSums, parseSumsLine, unsafeNameReason, MAX_SUMS_LINE, type SumsLine } from "./sums-parse.ts";
