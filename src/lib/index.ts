// Public API of the lib layer: clock, randomness, encodings, base errors. Imports nothing from src/.
export * from "./errors.ts";
export * from "./clock.ts";
export * from "./random.ts";
export * from "./encoding.ts";
export * from "./calendar.ts";
