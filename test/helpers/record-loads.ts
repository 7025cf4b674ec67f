// Preloaded with `node --import` into a spawned `bulwark`: writes, at exit, the URL of every module the process
// loaded (one per line) to the file named by BULWARK_TEST_LOADED_OUT. Used to pin what a command's start imports.
import { writeFileSync } from "node:fs";
import { registerHooks } from "node:module";

const loaded: string[] = [];
registerHooks({
  load(url, context, next) {
    loaded.push(url);
    return next(url, context);
  },
});
process.on("exit", () => writeFileSync(process.env["BULWARK_TEST_LOADED_OUT"] ?? "/dev/null", loaded.join("\n")));
