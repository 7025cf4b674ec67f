// Public API of the password-hash census.
export { passwordCensus } from "./census.ts";
export type { Census, CensusRow } from "./census.ts";
