// One check for the settings tests: a value of a BULWARK_* variable that loadConfig must refuse, naming the variable.
import assert from "node:assert/strict";
import { loadConfig } from "../../src/app/config.ts";

/**
 * Asserts that loadConfig refuses each of `values` for the variable `name` (the data dir at `root`) with
 * BULWARK_ERR_CONFIG and a message naming it: the service never starts on a number it read some other way.
 *
 * @example
 * assertConfigRefuses(root, "PORT", ["0x50", "8e1", "-1"]);
 */
export function assertConfigRefuses(root: string, name: string, values: readonly string[]): void {
  for (const value of values) {
    assert.throws(() => loadConfig({ [name]: value }, {}, root), (error: { code?: string; message: string }) => {
      assert.equal(error.code, "BULWARK_ERR_CONFIG", `${name}=${value}: ${error.message}`);
      assert.ok(error.message.includes(name), error.message);
      return true;
    }, `${name}=${JSON.stringify(value)} was accepted`);
  }
}
