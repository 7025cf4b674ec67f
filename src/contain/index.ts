// Public API of containment: levers as resumable jobs with dry run, progress, audit and undo.
export * from "./lever.ts";
export * from "./scope.ts";
export * from "./errors.ts";
export * from "./tables.ts";
export * from "./encrypted-columns.ts";
export { runStages, TERMINAL, type ContainDeps, type RunOptions, type Stage, type StepResult } from "./engine.ts";
export { CONTAIN_KIND, DEFAULT_BATCH_SIZE, DEFAULT_OPTIONS, countScope, createContainJob, dryRunContain, resolveLevers, type ContainRequest, type ContainSpec, type DryRunReport } from "./job.ts";
export { UNDO_KIND, createUndoJob, skippedByUndo, type UndoSpec } from "./undo.ts";
export { containDeps, jobView, resumeJob, resumeUnfinished, runJob, type JobView } from "./service.ts";
export { registerBuiltinLevers } from "./levers/index.ts";
