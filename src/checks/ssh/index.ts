// Public API of the sshd_config check: load (with Includes), evaluate as sshd -T does, find problems,
// and cross-check against the installed sshd.
export { SshConfigError, SshConfigUnreadableError, SshMatchSpecError } from "./errors.ts";
export { DEFAULTS, EVALUATED, keywordScope } from "./keywords.ts";
export { parseMatchSpec, parseCriteria, type MatchContext, type Criterion } from "./match.ts";
export { loadSshdConfig, parseSshdConfig, MAX_INCLUDE_DEPTH, type SshConfig, type Directive, type MatchBlock, type ConfigLine, type ConfigSource, type LoadOptions, type ReadOptions, type GlobOptions, type GlobBudget } from "./parser.ts";
export { fileSystemSource } from "./file-system-source.ts";
export { parseServices, systemServices, type ServiceLookup } from "./services.ts";
export { evaluate, type Evaluation, type EvaluateOptions, type Source, type IgnoredLine, type IgnoredReason } from "./evaluate.ts";
export { sshFindings, checkSshConfig, MAX_AUTH_TRIES_LIMIT } from "./findings.ts";
export { weakAlgorithms, WEAK_ALGORITHMS } from "./weak-algorithms.ts";
export { memorySource } from "./memory-source.ts";
export { findSshd, ensurePrivsepDir, runSshdTest, sshdTestContext, differences, crossCheckFindings, systemGroups, type SshdResult, type Difference } from "./cross-check.ts";
