// Findings for where sshd finds the keys, certificate authorities and trusted hosts it accepts beside the users'
// own ~/.ssh/authorized_keys (MITRE ATT&CK T1098.004; no ASVS requirement names sshd's key sources).
import type { Rule } from "./findings.ts";
import { methodAllowed } from "./auth-methods.ts";
import type { Source } from "./evaluate.ts";

/** Whether public keys, and so key files, key commands and certificates, can take part in a login at all. */
function keysUsable(e: Readonly<Record<string, string>>): boolean {
  return e["pubkeyauthentication"] === "yes" && methodAllowed(e["authenticationmethods"] ?? "any", "publickey");
}

/** "none" in any case, as servconf.c compares it (strcasecmp); whether it means no value depends on where it was set (below). */
function isNone(value: string): boolean {
  return value.toLowerCase() === "none";
}

/**
 * Whether a value comes from a line in a Match block ("Match All" too): sshd's pass over the file for a connection
 * copies such a value as written (servconf.c copy_set_server_options), without the clearing of "none" that
 * fill_default_server_options() (CLEAR_ON_NONE) does to the values read at load.
 */
function setInMatchBlock(source: Source | undefined): boolean {
  return source !== undefined && !("default" in source) && source.block !== undefined;
}

/**
 * The file sshd reads trusted CA keys from, or null when it trusts none. A "none" read at load is cleared; one
 * set in a Match block stays the file name "none", which auth2-pubkey.c user_cert_trusted_ca() opens relative to
 * sshd's working directory, "/" (sshd.c chdir("/")): the CA keys in /none, a file an intruder can plant.
 */
function caKeysFile(value: string, source: Source | undefined): string | null {
  if (!isNone(value)) return value;
  return setInMatchBlock(source) ? "/none" : null;
}

/** Whether some CA is trusted for user certificates (see caKeysFile): principals matter only then. */
function caTrusted(e: Readonly<Record<string, string>>, sources: Readonly<Record<string, Source>>): boolean {
  return caKeysFile(e["trustedusercakeys"] ?? "none", sources["trustedusercakeys"]) !== null;
}

/**
 * The principals file sshd reads, or null for none: a "none" set in a Match block is the file of that name (as
 * written) in the user's home (auth.c expand_authorized_keys), "~/none"; one read at load is cleared.
 */
function principalsFile(value: string, source: Source | undefined): string | null {
  if (!isNone(value)) return value;
  return setInMatchBlock(source) ? `~/${value}` : null;
}

/**
 * The account sshd runs a key or principals command as, or null when none is set. Unset prints as "none", but
 * servconf.c keeps a line's user as written and auth2-pubkey.c looks it up with getpwnam(): the line
 * "AuthorizedKeysCommandUser none" names the account called none ("AuthorizedKeysCommandUser \"none\" not found"
 * while there is none; an intruder who was root adds it with useradd).
 */
function commandUser(value: string, source: Source | undefined): string | null {
  return source === undefined || "default" in source ? null : value;
}

/** A sentence for a command user spelled "none": not "no user", as it reads. */
function noneAccount(keyword: string, user: string): string {
  return isNone(user) ? ` ${keyword} ${user} is not "no user": sshd runs the command as the account called ${user} when one exists (an intruder who was root adds one in a second), and refuses nothing at start-up.` : "";
}

/** The compiled-in AuthorizedKeysFile: the users' own files. */
const DEFAULT_KEY_FILES: readonly string[] = [".ssh/authorized_keys", ".ssh/authorized_keys2"];

/**
 * The AuthorizedKeysFile entries beyond the users' own files, as sshd -T prints them (joined by spaces, so a
 * name with a space reads as two entries: both still named). sshd skips a "none" entry when it reads keys.
 */
function extraKeyFiles(value: string): string[] {
  return value.split(" ").filter((f) => f !== "" && !isNone(f) && !DEFAULT_KEY_FILES.includes(f));
}

/**
 * One rule per place sshd takes accepted keys, certificate authorities or trusted hosts from. A source an intruder
 * adds there lets them in as any user (root too under prohibit-password) and survives the
 * users' own files being emptied. Each may be legitimate (keys managed centrally, LDAP, a cloud agent, an SSH CA),
 * so medium: named with its line, for a person to confirm; it is no weakness of the configuration by itself. Host-based
 * logins through the users' own ~/.shosts are high: each user may trust any host there, and a host in
 * /root/.shosts is root.
 */
export const KEY_SOURCE_RULES: readonly Rule[] = [
  {
    id: "ssh.authorized-keys-file",
    keyword: "authorizedkeysfile",
    depends: ["pubkeyauthentication", "authenticationmethods"],
    check(v, e) {
      const extra = extraKeyFiles(v);
      if (extra.length === 0 || !keysUsable(e)) return null;
      return {
        severity: "medium",
        title: `keys also accepted from ${extra.join(", ")}`,
        detail: `AuthorizedKeysFile ${v}: sshd accepts a public key listed in any of these files (%u is the user name, %h the home directory, a relative path is under the home directory), so a key in ${extra.join(", ")} logs in whatever ~/.ssh/authorized_keys holds, and emptying the users' own files does not remove it. Keys managed centrally (root-owned /etc/ssh/authorized_keys/%u) look the same: confirm it is yours.`,
        remediation: `Check ${extra.join(", ")} for every user: who owns it and each key in it; remove what is not yours, or set AuthorizedKeysFile .ssh/authorized_keys.`,
      };
    },
    covers: (earlier, later) => extraKeyFiles(String(later.evidence["value"])).every((f) => extraKeyFiles(String(earlier.evidence["value"])).includes(f)),
    coverKeys: (f) => extraKeyFiles(String(f.evidence["value"])),
  },
  {
    id: "ssh.authorized-keys-command",
    keyword: "authorizedkeyscommand",
    depends: ["authorizedkeyscommanduser", "pubkeyauthentication", "authenticationmethods"],
    check(v, e, sources) {
      const user = commandUser(e["authorizedkeyscommanduser"] ?? "none", sources["authorizedkeyscommanduser"]);
      // Without a user sshd skips the command at login ("No user for AuthorizedKeysCommand specified"); at load it refuses to start.
      if (isNone(v) || user === null || !keysUsable(e)) return null;
      const root = user === "root";
      return {
        severity: "medium",
        title: `keys also accepted from the output of ${v}, run as ${user}`,
        detail:
          `AuthorizedKeysCommand ${v}: for a public key login that no AuthorizedKeysFile entry allows, sshd runs this program as ${user} and accepts any key it prints, so whoever controls the program, or what it reads, decides who logs in, and emptying authorized_keys changes nothing.` +
          (root ? " It runs as root, with the user name any client sends, where sshd_config(5) advises a dedicated user with no other role." : "") +
          noneAccount("AuthorizedKeysCommandUser", user),
        remediation: `Check the program, its owner and what it reads (LDAP, sss_ssh_authorizedkeys, a cloud agent); remove the line if it is not yours${root ? ", and run it as a dedicated unprivileged user (AuthorizedKeysCommandUser)" : ""}.`,
      };
    },
    covers: (earlier, later) => earlier.evidence["value"] === later.evidence["value"],
    coverKeys: (f) => [String(f.evidence["value"])],
  },
  {
    id: "ssh.trusted-user-ca-keys",
    keyword: "trustedusercakeys",
    depends: ["authorizedprincipalsfile", "authorizedprincipalscommand", "pubkeyauthentication", "authenticationmethods"],
    check(v, e, sources) {
      const file = caKeysFile(v, sources["trustedusercakeys"]);
      if (file === null || !keysUsable(e)) return null;
      const mapped =
        principalsFile(e["authorizedprincipalsfile"] ?? "none", sources["authorizedprincipalsfile"]) !== null || !isNone(e["authorizedprincipalscommand"] ?? "none");
      const none = file === v ? "" : `TrustedUserCAKeys ${v} is set in a Match block, where it is not "no CA": sshd clears "none" only in the values it reads at start-up, and for a connection opens the file "none" relative to its working directory, "/": ${file}. `;
      return {
        severity: "medium",
        title: `certificates signed by the CA keys in ${file} are accepted`,
        detail: `${none}TrustedUserCAKeys ${file}: a certificate signed by any key listed there logs in as ${mapped ? "the users AuthorizedPrincipalsFile or AuthorizedPrincipalsCommand maps its principals to" : "every user it names as a principal (a certificate naming root logs in as root where PermitRootLogin allows keys)"}, so whoever holds one of those CA private keys can mint logins for any account, and no authorized_keys file shows them.`,
        remediation:
          file === v
            ? `Check every key in ${v} is a certificate authority you run; remove the line otherwise. Revoke stolen certificates with RevokedKeys.`
            : `Remove the line from the Match block (a Match block cannot turn off a CA; leave TrustedUserCAKeys unset where none is wanted), and check who created ${file} if it exists.`,
      };
    },
    covers: (earlier, later) => earlier.evidence["value"] === later.evidence["value"],
    coverKeys: (f) => [String(f.evidence["value"])],
  },
  // Principals only matter for a certificate from a CA in TrustedUserCAKeys (auth2-pubkey.c user_cert_trusted_ca
  // checks the CA first), which is reported medium on its own: low, and nothing while no CA is trusted.
  {
    id: "ssh.authorized-principals-file",
    keyword: "authorizedprincipalsfile",
    depends: ["trustedusercakeys", "pubkeyauthentication", "authenticationmethods"],
    check(v, e, sources) {
      const file = principalsFile(v, sources["authorizedprincipalsfile"]);
      if (file === null || !caTrusted(e, sources) || !keysUsable(e)) return null;
      const none = file === v ? "" : ` AuthorizedPrincipalsFile ${v} is set in a Match block, where sshd does not clear "none" and reads the file of that name in the user's home.`;
      return {
        severity: "low",
        title: `certificate principals mapped to users by ${file}`,
        detail: `AuthorizedPrincipalsFile ${file}: a certificate from a CA in TrustedUserCAKeys logs in as a user when one of its principals is listed in this file (relative to the user's home), so a line added there lets another principal in as that user.${none}`,
        remediation: `Check ${file} for every user, root's first; remove principals that are not yours.`,
      };
    },
    covers: (earlier, later) => earlier.evidence["value"] === later.evidence["value"],
    coverKeys: (f) => [String(f.evidence["value"])],
  },
  {
    id: "ssh.authorized-principals-command",
    keyword: "authorizedprincipalscommand",
    depends: ["authorizedprincipalscommanduser", "trustedusercakeys", "pubkeyauthentication", "authenticationmethods"],
    check(v, e, sources) {
      const user = commandUser(e["authorizedprincipalscommanduser"] ?? "none", sources["authorizedprincipalscommanduser"]);
      if (isNone(v) || user === null || !caTrusted(e, sources) || !keysUsable(e)) return null;
      return {
        severity: "low",
        title: `certificate principals mapped to users by the output of ${v}, run as ${user}`,
        detail: `AuthorizedPrincipalsCommand ${v}: for a certificate from a CA in TrustedUserCAKeys, sshd runs this program as ${user} and lets the certificate in as the user when one of its principals is printed.${noneAccount("AuthorizedPrincipalsCommandUser", user)}`,
        // What the generic "first value wins" wording of the fix gets wrong for this option (keywords.ts SET_WHILE_UNSET).
        remediation: "Check the program, its owner and what it reads; remove the line if it is not yours. sshd 9.2 reads AuthorizedPrincipalsCommand only before the first AuthorizedKeysCommand line, and the last such line wins.",
      };
    },
    covers: (earlier, later) => earlier.evidence["value"] === later.evidence["value"],
    coverKeys: (f) => [String(f.evidence["value"])],
  },
  // Host-based logins trust a client host instead of anything of the user's (sshd_config(5), auth-rhosts.c): one
  // listed in /etc/hosts.equiv or /etc/ssh/shosts.equiv, which sshd ignores for root, or, unless IgnoreRhosts yes,
  // in the user's own ~/.shosts (and ~/.rhosts with IgnoreRhosts no), whose host key sshd knows
  // (/etc/ssh/ssh_known_hosts). auth.c auth_root_allowed() lets hostbased in as root under prohibit-password, so
  // an intruder's host in /root/.shosts is root with no password, key or certificate. CIS lists
  // "HostbasedAuthentication is disabled" and "IgnoreRhosts is enabled".
  {
    id: "ssh.hostbased-authentication",
    keyword: "hostbasedauthentication",
    depends: ["ignorerhosts", "authenticationmethods"],
    check(v, e) {
      if (v !== "yes" || !methodAllowed(e["authenticationmethods"] ?? "any", "hostbased")) return null;
      const ignore = e["ignorerhosts"] ?? "yes";
      const remediation = "Set HostbasedAuthentication no (and IgnoreRhosts yes); if host-based logins are yours, check every host in /etc/hosts.equiv, /etc/ssh/shosts.equiv and the users' ~/.shosts and ~/.rhosts, and every key in /etc/ssh/ssh_known_hosts.";
      if (ignore === "yes") {
        return {
          severity: "medium",
          title: "host-based authentication enabled",
          detail: "HostbasedAuthentication yes: a client host listed in /etc/hosts.equiv or /etc/ssh/shosts.equiv, whose host key sshd knows, logs its users in as the same names here with no password, key or certificate of theirs; no authorized_keys file shows it, and emptying them changes nothing. IgnoreRhosts yes keeps the users' own ~/.rhosts and ~/.shosts out, and sshd ignores the system-wide files for root.",
          remediation,
        };
      }
      const files = ignore === "no" ? "~/.shosts or ~/.rhosts" : "~/.shosts";
      return {
        severity: "high",
        title: `host-based authentication enabled, with the users' own ${files}`,
        detail: `HostbasedAuthentication yes with IgnoreRhosts ${ignore}: a client host listed in a user's ${files} (or in /etc/hosts.equiv or /etc/ssh/shosts.equiv), whose host key sshd knows, logs in as that user with no password, key or certificate; root included, through /root/.shosts, under PermitRootLogin yes or prohibit-password (which allows host-based logins). No authorized_keys file shows it, and emptying them changes nothing.`,
        remediation,
      };
    },
  },
];
