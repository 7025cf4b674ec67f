// Public API of the password-hash census.
export { passwordCensus } from "./census.ts";
export type { Census, CensusRow } from "./census.ts";
export { BCRYPT_MIN_COST, belowMinimumCost, SCRYPT_MIN_MEMORY, SCRYPT_MIN_WORK } from "./minimum-cost.ts";
