// `bulwark hash identify|verify|new`: the password-hash table from the command line, no database.
// Exit codes (DESIGN.md): 0 match/ok, 1 mismatch, 2 unknown, malformed or out-of-bounds hash, or no usable password
// on stdin (empty, not UTF-8, holding a NUL, over the size limit, or longer than the hash's scheme is ever checked for).
import type { Command } from "commander";
import type { CliContext, CommandModule } from "../context.ts";
import { InputError } from "../../lib/errors.ts";
import { EXIT } from "../exit-codes.ts";
import { action, group, readPassword, readStdin, writeJSON, writeLine } from "../run.ts";

// Loaded lazily: argon2/bcrypt native bindings are not needed for the rest of the CLI.
// New hashes take the configured argon2id parameters (BULWARK_ARGON2_*), as `users create` and the server do.
async function passwordContext() {
  const [{ createPasswordContext }, { systemRandom }, { loadArgon2Config }] = await Promise.all([
    import("../../accounts/passwords/index.ts"),
    import("../../lib/random.ts"),
    import("../../app/config.ts"),
  ]);
  return createPasswordContext({ random: systemRandom, argon2: loadArgon2Config(process.env) });
}

// A stored hash is one line: a file holding more (a whole dump) is a mistake to name, not to guess at.
const MAX_HASH_FILE_BYTES = 4096;

/**
 * The stored hash to work on: the argument, or the one line of `--hash-file` (`-`: stdin, for `identify` only). On the
 * command line the hash is in every local account's `ps` and /proc/PID/cmdline for as long as the command runs —
 * `verify` waits for a password to be typed — and an unsalted hash is as good as its password against a lookup table
 * (CWE-214, the reason `--database-url` refuses passwords). Exactly one of the two.
 */
async function storedHash(ctx: CliContext, argument: string | undefined, file: string | undefined, command: "identify" | "verify"): Promise<string> {
  const oneOf = (): InputError => new InputError("BULWARK_ERR_USAGE", `give the hash either as an argument or with --hash-file FILE (not both, not neither): hash ${command} --hash-file FILE keeps it out of the process list`);
  if (argument !== undefined) {
    if (file !== undefined) throw oneOf();
    return argument;
  }
  if (file === undefined) throw oneOf();
  let text: string;
  if (file === "-") {
    if (command === "verify") throw new InputError("BULWARK_ERR_USAGE", "hash verify reads the password on stdin: give the hash in a file (--hash-file FILE)");
    text = await readStdin(ctx, { what: "the hash", maxBytes: MAX_HASH_FILE_BYTES, tooLong: () => new InputError("BULWARK_ERR_USAGE", `stdin holds more than ${MAX_HASH_FILE_BYTES} bytes: a stored hash is one line`) });
  } else {
    // Opened as the checks open their inputs (src/checks/input-file.ts): a regular file only, without blocking, so a
    // named pipe given by mistake is refused instead of holding the command for ever.
    const { openInputHandle } = await import("../../checks/input-file.ts");
    let handle;
    try {
      handle = await openInputHandle(file);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new InputError("BULWARK_ERR_USAGE", `--hash-file ${JSON.stringify(file.slice(0, 200))} cannot be read (${reason})`);
    }
    try {
      const buffer = Buffer.alloc(MAX_HASH_FILE_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_HASH_FILE_BYTES) throw new InputError("BULWARK_ERR_USAGE", `--hash-file holds more than ${MAX_HASH_FILE_BYTES} bytes: a stored hash is one line`);
      text = buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await handle.close();
    }
  }
  // One trailing line end, as an editor or `echo` leaves it; any other line is a second value (never quoted: a hash).
  const line = text.replace(/\r?\n$/, "");
  if (/[\r\n]/.test(line)) throw new InputError("BULWARK_ERR_USAGE", "the hash file holds more than one line: give one stored hash");
  if (line === "") throw new InputError("BULWARK_ERR_USAGE", "the hash file is empty");
  return line;
}

function register(program: Command, ctx: CliContext): void {
  const hash = group(program, "hash", "Identify, verify and create password hashes (every supported legacy format).");

  hash
    .command("identify")
    .description("Print the scheme id of a stored password hash (exit 2 when unknown, malformed or out of bounds).")
    .argument("[hash]", "the stored hash (quote it: it contains $); other local accounts see arguments in ps: prefer --hash-file")
    .option("--hash-file <file>", "read the hash from FILE, one line (- for stdin), keeping it out of the process list")
    .option("--json", "print { scheme, params } as JSON")
    .action(
      action(ctx, async (argument: string | undefined, opts: { json?: boolean; hashFile?: string }) => {
        const stored = await storedHash(ctx, argument, opts.hashFile, "identify");
        const passwords = await passwordContext();
        if (opts.json) writeJSON(ctx, passwords.describe(stored));
        else writeLine(ctx, passwords.identify(stored));
        return EXIT.ok;
      }),
    );

  hash
    .command("verify")
    .description("Read a password from stdin (one trailing newline stripped; empty is refused) and check it against HASH: exit 0 match, 1 mismatch.")
    .argument("[hash]", "the stored hash (quote it: it contains $); other local accounts see arguments in ps while the password is typed: prefer --hash-file")
    .option("--hash-file <file>", "read the hash from FILE, one line, keeping it out of the process list")
    .option("--json", "print { match } as JSON")
    .action(
      action(ctx, async (argument: string | undefined, opts: { json?: boolean; hashFile?: string }) => {
        const stored = await storedHash(ctx, argument, opts.hashFile, "verify");
        const passwords = await passwordContext();
        // Refuse an unsupported hash before waiting for a password.
        const scheme = passwords.identify(stored);
        // The checks of `hash new`: "mismatch" would say a password was compared, and none (or none storable) was.
        const password = await readPassword(ctx, { maxBytes: passwords.limits.maxPasswordBytes, ifEmpty: "pipe one in, e.g. printf '%s' \"$PASSWORD\" | bulwark hash verify HASH" });
        // Longer than this scheme is ever checked for (its loop costs rounds × length): verify would answer "no match"
        // without comparing, which here would read as a real mismatch.
        const bound = passwords.maxPasswordBytesFor(stored);
        const bytes = Buffer.byteLength(password, "utf8");
        if (bytes > bound) {
          throw new InputError("BULWARK_ERR_PASSWORD_TOO_LONG", `the password is ${bytes} bytes, and ${scheme} hashes are checked only up to ${bound} bytes ` +
            "(a longer one would cost seconds of CPU per try; a login answers such a password \"no match\" without comparing): nothing was compared");
        }
        const match = await passwords.verify(password, stored);
        if (opts.json) writeJSON(ctx, { match });
        else writeLine(ctx, match ? "match" : "mismatch");
        return match ? EXIT.ok : EXIT.fails;
      }),
    );

  hash
    .command("new")
    .description("Read a password from stdin (one trailing newline stripped; empty is refused) and print a default-scheme (argon2id) hash.")
    .action(
      action(ctx, async () => {
        const passwords = await passwordContext();
        // As `users create`: a hash of the empty password would let anyone in with no password at all.
        const password = await readPassword(ctx, { maxBytes: passwords.limits.maxPasswordBytes, ifEmpty: "pipe one in, e.g. printf '%s' \"$PASSWORD\" | bulwark hash new" });
        writeLine(ctx, await passwords.hash(password));
        return EXIT.ok;
      }),
    );
}

export default { register } satisfies CommandModule;
