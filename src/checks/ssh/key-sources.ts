// Findings for where sshd finds the keys and certificate authorities it accepts beside the users' own
// ~/.ssh/authorized_keys (MITRE ATT&CK T1098.004; no ASVS requirement names sshd's key sources).
import type { Rule } from "./findings.ts";
import { methodAllowed } from "./auth-methods.ts";

/** Whether public keys, and so key files, key commands and certificates, can take part in a login at all. */
function keysUsable(e: Readonly<Record<string, string>>): boolean {
  return e["pubkeyauthentication"] === "yes" && methodAllowed(e["authenticationmethods"] ?? "any", "publickey");
}

/** sshd treats "none" in any case as no value for these options (servconf.c strcasecmp). */
function isNone(value: string): boolean {
  return value.toLowerCase() === "none";
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
 * One rule per place sshd takes accepted keys or certificate authorities from. A source an intruder adds there
 * lets them in as any user (root too under prohibit-password) and survives the
 * users' own files being emptied. Each may be legitimate (keys managed centrally, LDAP, a cloud agent, an SSH CA),
 * so medium: named with its line, for a person to confirm; it is no weakness of the configuration by itself.
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
  },
  {
    id: "ssh.authorized-keys-command",
    keyword: "authorizedkeyscommand",
    depends: ["authorizedkeyscommanduser", "pubkeyauthentication", "authenticationmethods"],
    check(v, e) {
      const user = e["authorizedkeyscommanduser"] ?? "none";
      // Without a user sshd skips the command at login ("No user for AuthorizedKeysCommand specified"); at load it refuses to start.
      if (isNone(v) || user === "none" || !keysUsable(e)) return null;
      const root = user === "root";
      return {
        severity: "medium",
        title: `keys also accepted from the output of ${v}, run as ${user}`,
        detail:
          `AuthorizedKeysCommand ${v}: for a public key login that no AuthorizedKeysFile entry allows, sshd runs this program as ${user} and accepts any key it prints, so whoever controls the program, or what it reads, decides who logs in, and emptying authorized_keys changes nothing.` +
          (root ? " It runs as root, with the user name any client sends, where sshd_config(5) advises a dedicated user with no other role." : ""),
        remediation: `Check the program, its owner and what it reads (LDAP, sss_ssh_authorizedkeys, a cloud agent); remove the line if it is not yours${root ? ", and run it as a dedicated unprivileged user (AuthorizedKeysCommandUser)" : ""}.`,
      };
    },
    covers: (earlier, later) => earlier.evidence["value"] === later.evidence["value"],
  },
  {
    id: "ssh.trusted-user-ca-keys",
    keyword: "trustedusercakeys",
    depends: ["authorizedprincipalsfile", "authorizedprincipalscommand", "pubkeyauthentication", "authenticationmethods"],
    check(v, e) {
      if (isNone(v) || !keysUsable(e)) return null;
      const mapped = !isNone(e["authorizedprincipalsfile"] ?? "none") || !isNone(e["authorizedprincipalscommand"] ?? "none");
      return {
        severity: "medium",
        title: `certificates signed by the CA keys in ${v} are accepted`,
        detail: `TrustedUserCAKeys ${v}: a certificate signed by any key listed there logs in as ${mapped ? "the users AuthorizedPrincipalsFile or AuthorizedPrincipalsCommand maps its principals to" : "every user it names as a principal (a certificate naming root logs in as root where PermitRootLogin allows keys)"}, so whoever holds one of those CA private keys can mint logins for any account, and no authorized_keys file shows them.`,
        remediation: `Check every key in ${v} is a certificate authority you run; remove the line otherwise. Revoke stolen certificates with RevokedKeys.`,
      };
    },
    covers: (earlier, later) => earlier.evidence["value"] === later.evidence["value"],
  },
  // Principals only matter for a certificate from a CA in TrustedUserCAKeys (auth2-pubkey.c user_cert_trusted_ca
  // checks the CA first), which is reported medium on its own: low, and nothing while no CA is trusted.
  {
    id: "ssh.authorized-principals-file",
    keyword: "authorizedprincipalsfile",
    depends: ["trustedusercakeys", "pubkeyauthentication", "authenticationmethods"],
    check(v, e) {
      if (isNone(v) || isNone(e["trustedusercakeys"] ?? "none") || !keysUsable(e)) return null;
      return {
        severity: "low",
        title: `certificate principals mapped to users by ${v}`,
        detail: `AuthorizedPrincipalsFile ${v}: a certificate from a CA in TrustedUserCAKeys logs in as a user when one of its principals is listed in this file (relative to the user's home), so a line added there lets another principal in as that user.`,
        remediation: `Check ${v} for every user, root's first; remove principals that are not yours.`,
      };
    },
    covers: (earlier, later) => earlier.evidence["value"] === later.evidence["value"],
  },
  {
    id: "ssh.authorized-principals-command",
    keyword: "authorizedprincipalscommand",
    depends: ["authorizedprincipalscommanduser", "trustedusercakeys", "pubkeyauthentication", "authenticationmethods"],
    check(v, e) {
      const user = e["authorizedprincipalscommanduser"] ?? "none";
      if (isNone(v) || user === "none" || isNone(e["trustedusercakeys"] ?? "none") || !keysUsable(e)) return null;
      return {
        severity: "low",
        title: `certificate principals mapped to users by the output of ${v}, run as ${user}`,
        detail: `AuthorizedPrincipalsCommand ${v}: for a certificate from a CA in TrustedUserCAKeys, sshd runs this program as ${user} and lets the certificate in as the user when one of its principals is printed.`,
        // What the generic "first value wins" wording of the fix gets wrong for this option (keywords.ts SET_WHILE_UNSET).
        remediation: "Check the program, its owner and what it reads; remove the line if it is not yours. sshd 9.2 reads AuthorizedPrincipalsCommand only before the first AuthorizedKeysCommand line, and the last such line wins.",
      };
    },
    covers: (earlier, later) => earlier.evidence["value"] === later.evidence["value"],
  },
];
