// Public API of containment: levers as resumable jobs with dry run, progress, audit and undo.
export * from "./lever.ts";
export * from "./scope.ts";
export * from "./errors.ts";
export * from "./tables.ts";
export * from "./encrypted-columns.ts";
export { runStages, TERMINAL, type ContainDeps, type RunOptions, type Stage, type ClaimedStage, type SequentialStage, type StepResult } from "./engine.ts";
export { CONTAIN_KIND, DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE_POSTGRES, DEFAULT_OPTIONS, countScope, createContainJob, dryRunContain, resolveLevers, storedLevers, type ContainRequest, type ContainSpec, type DryRunReport } from "./job.ts";
export { LEFT_ALONE_EVENT, leftAloneByJob, storedCreatorLacks, type LeftAloneUser } from "./outranked.ts";
export { UNDO_KIND, createUndoJob, skippedByUndo, type UndoSpec } from "./undo.ts";
export { cancelJob, containDeps, jobProgress, jobView, STALL_MS, resumableJobs, resumeJob, resumeUnfinishedJobs, runJob, type JobProgress, type ResumeOptions, type JobView, type ResumeLogger, type ResumeOutcome, type CancelCandidate, type CancelOptions, type CancelOutcome } from "./service.ts";
export { registerBuiltinLevers } from "./levers/index.ts";
