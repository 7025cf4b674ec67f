// Public API of the auth-log check: stream syslog/journal auth logs, find SSH brute force,
// logins that followed it, and root logins.
export { AuthLogAnalyzer, DEFAULTS as AUTHLOG_DEFAULTS, LIMITS as AUTHLOG_LIMITS } from "./analyzer.ts";
export { analyzeFile, analyzeStream, feedChunks, decompressed } from "./reader.ts";
export { authLogFindings, printable, formatDuration } from "./findings.ts";
export { renderNft, type NftOptions } from "./nft.ts";
export { hostAddresses, IgnoreList } from "./ignore-list.ts";
export { parseDuration } from "./duration.ts";
export { classifySshdMessage, messageStart, type SshdEvent, type Effect } from "./sshd-messages.ts";
export { splitLine, type SshdLine, type LineShape } from "./syslog-line.ts";
export { parseStamp, emptyStamp, YearResolver, type ParsedStamp } from "./timestamp.ts";
export { scanAddress, addressFamily, type AddressFamily } from "./address.ts";
export { AuthLogUnreadableError, AuthLogOptionError } from "./errors.ts";
export type * from "./types.ts";
