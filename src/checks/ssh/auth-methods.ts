// AuthenticationMethods as OpenSSH 9.2p1 (Debian 12) reads it (servconf.c sAuthenticationMethods,
// auth2.c auth2_methods_valid, sshd.c start-up check), and what it means for the findings: a method
// no list contains cannot be used, whatever PasswordAuthentication or PermitRootLogin say.

/**
 * Method names of the Debian 12 build (auth2.c authmethods[] plus Debian's GSSAPI key exchange
 * patch), each with the option that enables it; "none" is always enabled.
 */
const METHODS: ReadonlyMap<string, string | null> = new Map([
  ["none", null],
  ["publickey", "pubkeyauthentication"],
  ["gssapi-keyex", "gssapiauthentication"],
  ["gssapi-with-mic", "gssapiauthentication"],
  ["password", "passwordauthentication"],
  ["keyboard-interactive", "kbdinteractiveauthentication"],
  ["hostbased", "hostbasedauthentication"],
]);

/** A method name without its submethod ("keyboard-interactive:pam" → "keyboard-interactive"), as auth2.c compares it. */
function methodName(method: string): string {
  const colon = method.indexOf(":");
  return colon < 0 ? method : method.slice(0, colon);
}

/**
 * auth2_methods_valid(list, 0): a comma-separated list of known methods, names compared exactly
 * (case-sensitive; "PublicKey" is refused), none empty.
 */
export function methodListValid(list: string): boolean {
  return list !== "" && list.split(",").every((m) => METHODS.has(methodName(m)));
}

/** How many method lists sshd has stored so far in the pass it is making over the file. */
export interface MethodsState {
  count: number;
}

/**
 * One AuthenticationMethods line as servconf.c checks it: "any" must stand alone and may not follow
 * a value already stored in this pass (even when the line itself is inactive), every other argument
 * must be a valid list, and the first active line stores its arguments. Returns sshd's message, or
 * null; updates `state`.
 *
 * @example
 * authMethodsLineProblem(["publickey", "any"], { count: 0 }, true); // "\"any\" must appear alone in AuthenticationMethods"
 */
export function authMethodsLineProblem(args: readonly string[], state: MethodsState, active: boolean): string | null {
  const store = state.count === 0 && active;
  let seenAny = false;
  for (const arg of args) {
    if (arg === "any") {
      if (state.count > 0) return '"any" must appear alone in AuthenticationMethods';
      seenAny = true;
    } else if (seenAny) {
      return '"any" must appear alone in AuthenticationMethods';
    } else if (!methodListValid(arg)) {
      return "invalid AuthenticationMethods method list.";
    }
    if (store) state.count++;
  }
  return args.length === 0 ? "no AuthenticationMethods specified" : null;
}

/**
 * sshd's start-up check (sshd.c, after fill_default_server_options clears a lone "any"): at least
 * one list must consist of methods enabled at load time, else "AuthenticationMethods cannot be
 * satisfied by enabled authentication methods". `value` is printed form ("any" or lists separated
 * by spaces); `enabled` tells whether an option such as "passwordauthentication" is "yes".
 */
export function authMethodsSatisfiable(value: string, enabled: (keyword: string) => boolean): boolean {
  if (value === "any") return true;
  return value.split(" ").some((list) =>
    list.split(",").every((m) => {
      const option = METHODS.get(methodName(m));
      return option === null || (option !== undefined && enabled(option));
    }),
  );
}

/**
 * Whether a method ("password", "keyboard-interactive") can take part in a login under the printed
 * AuthenticationMethods value: "any" (no restriction) or some list names it, with or without a
 * submethod. sshd refuses a method no list names (auth2.c auth2_method_allowed).
 *
 * @example
 * methodAllowed("publickey publickey,keyboard-interactive:pam", "password"); // false
 */
export function methodAllowed(value: string, method: string): boolean {
  if (value === "any") return true;
  return value.split(" ").some((list) => list.split(",").some((m) => methodName(m) === method));
}

/** Methods that prove no more than knowing a password: a list made of them alone is a password login. */
const PASSWORD_ONLY: ReadonlySet<string> = new Set(["none", "password", "keyboard-interactive"]);

/**
 * Whether `method` can complete a login with no other kind of factor under the printed AuthenticationMethods
 * value: "any", or a list naming it whose other methods prove no more than a password. Under
 * "publickey,keyboard-interactive" its prompt comes only after a key.
 *
 * @example
 * methodWithoutOtherFactor("publickey,keyboard-interactive:pam", "keyboard-interactive"); // false
 */
export function methodWithoutOtherFactor(value: string, method: string): boolean {
  if (value === "any") return true;
  return value.split(" ").some((list) => {
    const names = list.split(",").map(methodName);
    return names.includes(method) && names.every((m) => PASSWORD_ONLY.has(m));
  });
}
