// The keywords OpenSSH 9.2p1 (Debian 12 build: PAM, Kerberos, GSSAPI key exchange patch) accepts in
// sshd_config, where each may appear, and how the values we evaluate are parsed and printed.

/** Where sshd accepts a keyword: anywhere, or only outside Match blocks (servconf.c SSHCFG_GLOBAL). */
export type Scope = "all" | "global";

/** Keywords sshd accepts anywhere, including inside Match blocks (servconf.c SSHCFG_ALL). */
const MATCH_ALLOWED = [
  "permitrootlogin", "loglevel", "logverbose", "rhostsrsaauthentication", "hostbasedauthentication",
  "hostbasedusesnamefrompacketonly", "hostbasedacceptedalgorithms", "hostbasedacceptedkeytypes", "rsaauthentication",
  "pubkeyauthentication", "pubkeyacceptedalgorithms", "pubkeyacceptedkeytypes", "pubkeyauthoptions",
  "kerberosauthentication", "gssapiauthentication", "passwordauthentication", "kbdinteractiveauthentication",
  "challengeresponseauthentication", "skeyauthentication", "ignorerhosts", "x11forwarding", "x11displayoffset",
  "x11uselocalhost", "permitemptypasswords", "rekeylimit", "allowtcpforwarding", "allowagentforwarding", "allowusers",
  "denyusers", "allowgroups", "denygroups", "gatewayports", "maxauthtries", "maxsessions", "banner",
  "clientaliveinterval", "clientalivecountmax", "authorizedkeysfile", "authorizedkeysfile2", "acceptenv", "setenv",
  "permittunnel", "permittty", "permituserrc", "match", "permitopen", "permitlisten", "forcecommand",
  "chrootdirectory", "revokedkeys", "trustedusercakeys", "authorizedprincipalsfile", "include", "ipqos",
  "authorizedkeyscommand", "authorizedkeyscommanduser", "authorizedprincipalscommand",
  "authorizedprincipalscommanduser", "authenticationmethods", "streamlocalbindmask", "streamlocalbindunlink",
  "allowstreamlocalforwarding", "disableforwarding", "exposeauthinfo", "rdomain", "casignaturealgorithms",
  "requiredrsasize", "channeltimeout", "unusedconnectiontimeout",
] as const;

/** Keywords sshd accepts only in the global part (or a `Match All` block, which is active at load time). */
const GLOBAL_ONLY = [
  "usepam", "pamauthenticationviakbdint", "port", "hostkey", "hostdsakey", "hostkeyagent", "pidfile", "modulifile",
  "serverkeybits", "logingracetime", "keyregenerationinterval", "syslogfacility", "rhostsauthentication",
  "hostkeyalgorithms", "dsaauthentication", "kerberosorlocalpasswd", "kerberosticketcleanup", "kerberosgetafstoken",
  "kerberostgtpassing", "afstokenpassing", "gssapicleanupcredentials", "gssapicleanupcreds",
  "gssapistrictacceptorcheck", "gssapikeyexchange", "gssapistorecredentialsonrekey", "gssapikexalgorithms",
  "gssapiusesessioncredcache", "gssusesessionccache", "checkmail", "listenaddress", "addressfamily", "printmotd",
  "printlastlog", "ignoreuserknownhosts", "xauthlocation", "strictmodes", "permituserenvironment", "uselogin",
  "compression", "tcpkeepalive", "keepalive", "ciphers", "macs", "protocol", "subsystem", "maxstartups",
  "persourcemaxstartups", "persourcenetblocksize", "usedns", "verifyreversemapping", "reversemappingcheck",
  "useprivilegeseparation", "hostcertificate", "kexalgorithms", "versionaddendum", "fingerprinthash",
  "securitykeyprovider", "debianbanner", "permitblacklistedkeys",
] as const;

const SCOPES = new Map<string, Scope>([
  ...MATCH_ALLOWED.map((k) => [k, "all"] as [string, Scope]),
  ...GLOBAL_ONLY.map((k) => [k, "global"] as [string, Scope]),
]);

/** Returns where `keyword` (any case) may appear, or undefined when sshd does not know it. */
export function keywordScope(keyword: string): Scope | undefined {
  return SCOPES.get(keyword.toLowerCase());
}

/** Aliases sshd maps onto one option (servconf.c keyword table); the effective map uses the target. */
export const ALIASES: Readonly<Record<string, string>> = {
  challengeresponseauthentication: "kbdinteractiveauthentication",
  skeyauthentication: "kbdinteractiveauthentication",
  dsaauthentication: "pubkeyauthentication",
  keepalive: "tcpkeepalive",
  gssapicleanupcreds: "gssapicleanupcredentials",
  hostbasedacceptedkeytypes: "hostbasedacceptedalgorithms",
  pubkeyacceptedkeytypes: "pubkeyacceptedalgorithms",
};

/** The kinds of algorithm list sshd assembles (servconf.c assemble_algorithms). */
export type AlgorithmFamily = "cipher" | "mac" | "kex" | "key" | "casig";

/** How a value we evaluate is parsed. Choice maps each accepted word (lowercase) to what sshd -T prints. */
export type ValueKind =
  /** lastWins: sshd assigns without its usual "still unset" guard, so the last value at load wins. */
  | { type: "choice"; words: Readonly<Record<string, string>>; caseSensitive?: true; lastWins?: true }
  | { type: "int" }
  | { type: "time" }
  /** key: public key signature algorithms (HostKey, Pubkey, Hostbased); casig: the plain ones a CA may sign with. */
  | { type: "algorithms"; family: AlgorithmFamily }
  | { type: "loglevel" }
  | { type: "path" }
  /** A file sshd reads at start-up: "none", or a path made absolute against the working directory. */
  | { type: "file" }
  /**
   * A file sshd opens per connection, relative to the user's home unless absolute: "~" expanded for the user
   * sshd runs as, nothing else (tilde_expand_filename). A "none" in any case prints as "none" at load time
   * (fill_default_server_options CLEAR_ON_NONE); one from a Match block is printed as written.
   */
  | { type: "userfile" }
  /** AuthorizedKeysFile: one or more user files ("~" expanded each), printed joined by spaces, "none" as written. */
  | { type: "userfiles" }
  /**
   * AuthorizedKeysCommand and AuthorizedPrincipalsCommand: the rest of the line exactly as written (quotes,
   * a trailing "# comment" and all), which must start with "/" or be "none" in any case (servconf.c parse_command).
   */
  | { type: "command" }
  /** A user name, as written ("none" included: sshd runs the command as a user called so). */
  | { type: "user" }
  /** AuthenticationMethods: "any", or one or more comma-separated method lists (auth-methods.ts). */
  | { type: "authmethods" };

const FLAG: ValueKind = { type: "choice", words: { yes: "yes", no: "no" } };
const FORWARDING: ValueKind = { type: "choice", words: { yes: "yes", all: "yes", no: "no", local: "local", remote: "remote" } };

/** The options the evaluator models, keyed by the canonical lowercase name `sshd -T` prints. */
export const EVALUATED: Readonly<Record<string, ValueKind>> = {
  // sshd -T prints PERMIT_NO_PASSWD by its first table name, "without-password" (servconf.c multistate_permitrootlogin).
  permitrootlogin: {
    type: "choice",
    words: { yes: "yes", "prohibit-password": "without-password", "without-password": "without-password", "forced-commands-only": "forced-commands-only", no: "no" },
  },
  passwordauthentication: FLAG,
  kbdinteractiveauthentication: FLAG,
  pubkeyauthentication: FLAG,
  permitemptypasswords: FLAG,
  usepam: FLAG,
  x11forwarding: FLAG,
  x11uselocalhost: FLAG,
  hostbasedauthentication: FLAG,
  ignorerhosts: { type: "choice", words: { yes: "yes", no: "no", "shosts-only": "shosts-only" } },
  ignoreuserknownhosts: FLAG,
  gssapiauthentication: FLAG,
  kerberosauthentication: FLAG,
  printmotd: FLAG,
  printlastlog: FLAG,
  strictmodes: FLAG,
  tcpkeepalive: FLAG,
  permittty: FLAG,
  permituserrc: FLAG,
  allowagentforwarding: FLAG,
  disableforwarding: FLAG,
  exposeauthinfo: FLAG,
  usedns: FLAG,
  streamlocalbindunlink: FLAG,
  hostbasedusesnamefrompacketonly: FLAG,
  kerberosorlocalpasswd: FLAG,
  kerberosticketcleanup: FLAG,
  gssapicleanupcredentials: FLAG,
  gssapistrictacceptorcheck: FLAG,
  gssapikeyexchange: FLAG,
  gssapistorecredentialsonrekey: FLAG,
  // servconf.c sFingerprintHash sets the option on every active line: the one keyword whose last value wins.
  fingerprinthash: { type: "choice", words: { sha256: "SHA256", md5: "MD5" }, lastWins: true },
  compression: { type: "choice", words: { yes: "yes", delayed: "yes", no: "no" } },
  allowtcpforwarding: FORWARDING,
  allowstreamlocalforwarding: FORWARDING,
  gatewayports: { type: "choice", words: { no: "no", yes: "yes", clientspecified: "clientspecified" } },
  // The one choice sshd compares with strcmp (servconf.c sPermitTunnel): "PermitTunnel YES" is refused.
  permittunnel: { type: "choice", words: { no: "no", "point-to-point": "point-to-point", ethernet: "ethernet", yes: "yes" }, caseSensitive: true },
  addressfamily: { type: "choice", words: { any: "any", inet: "inet", inet6: "inet6" } },
  maxauthtries: { type: "int" },
  maxsessions: { type: "int" },
  clientalivecountmax: { type: "int" },
  x11displayoffset: { type: "int" },
  requiredrsasize: { type: "int" },
  logingracetime: { type: "time" },
  clientaliveinterval: { type: "time" },
  loglevel: { type: "loglevel" },
  banner: { type: "file" },
  chrootdirectory: { type: "path" },
  ciphers: { type: "algorithms", family: "cipher" },
  macs: { type: "algorithms", family: "mac" },
  kexalgorithms: { type: "algorithms", family: "kex" },
  hostkeyalgorithms: { type: "algorithms", family: "key" },
  pubkeyacceptedalgorithms: { type: "algorithms", family: "key" },
  hostbasedacceptedalgorithms: { type: "algorithms", family: "key" },
  casignaturealgorithms: { type: "algorithms", family: "casig" },
  // Which methods a login may use at all: "publickey" alone makes PasswordAuthentication moot.
  authenticationmethods: { type: "authmethods" },
  // Where sshd finds the keys and certificate authorities it accepts, beside ~/.ssh/authorized_keys: a second
  // source planted there survives the users' own files being emptied (MITRE ATT&CK T1098.004).
  authorizedkeysfile: { type: "userfiles" },
  authorizedkeyscommand: { type: "command" },
  authorizedkeyscommanduser: { type: "user" },
  trustedusercakeys: { type: "file" },
  authorizedprincipalsfile: { type: "userfile" },
  authorizedprincipalscommand: { type: "command" },
  authorizedprincipalscommanduser: { type: "user" },
};

/**
 * Options sshd sets from a line only while another option is still unset in the same pass, whatever
 * their own value. servconf.c (9.2) parse_command guards AuthorizedPrincipalsCommand with
 * `options->authorized_keys_command == NULL`, AuthorizedKeysCommand's own field: so each such line
 * replaces the one before it until an AuthorizedKeysCommand line has been read, and none after one
 * counts (checked against sshd -T 9.2p1).
 */
export const SET_WHILE_UNSET: Readonly<Record<string, string>> = {
  authorizedprincipalscommand: "authorizedkeyscommand",
};

/**
 * Whether a line for `name`, active in a pass over the file, sets the option, given what the pass has set so
 * far: the first line wins (sshd's "still unset" guard), FingerprintHash's last line, or SET_WHILE_UNSET.
 */
export function lineSetsOption(name: string, setSoFar: ReadonlyMap<string, unknown>): boolean {
  const guard = SET_WHILE_UNSET[name];
  if (guard !== undefined) return !setSoFar.has(guard);
  const kind = EVALUATED[name];
  return (kind?.type === "choice" && kind.lastWins === true) || !setSoFar.has(name);
}

/** KEX_DEFAULT_PK_ALG of the build: the default HostKeyAlgorithms, PubkeyAcceptedAlgorithms and HostbasedAcceptedAlgorithms. */
const DEFAULT_KEY_ALGORITHMS =
  "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com," +
  "ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com," +
  "rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384," +
  "ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256";

/** Every key and signature algorithm of the build, in `ssh -Q key-sig` order (sshkey_alg_list with signature-only names). */
const KEY_ALGORITHMS = [
  "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com", "sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
  "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
  "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", "webauthn-sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss",
  "ssh-dss-cert-v01@openssh.com", "ssh-rsa", "ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256", "rsa-sha2-256-cert-v01@openssh.com",
  "rsa-sha2-512", "rsa-sha2-512-cert-v01@openssh.com",
] as const;

/**
 * The short names sshkey_type_from_name() also accepts, in any case, for the plain (not certificate) key
 * types: a key type list may name them and pass the line's check, although no algorithm is called so.
 */
export const KEY_SHORT_NAMES: readonly string[] = ["ed25519", "ed25519-sk", "ecdsa", "ecdsa-sk", "dsa", "rsa"];

/** Compiled-in defaults exactly as Debian 12's `sshd -T` (OpenSSH 9.2p1-2+deb12u10) prints them for an empty file. */
export const DEFAULTS: Readonly<Record<string, string>> = {
  permitrootlogin: "without-password",
  passwordauthentication: "yes",
  kbdinteractiveauthentication: "yes",
  pubkeyauthentication: "yes",
  permitemptypasswords: "no",
  usepam: "no",
  x11forwarding: "no",
  x11uselocalhost: "yes",
  hostbasedauthentication: "no",
  ignorerhosts: "yes",
  ignoreuserknownhosts: "no",
  gssapiauthentication: "no",
  kerberosauthentication: "no",
  printmotd: "yes",
  printlastlog: "yes",
  strictmodes: "yes",
  tcpkeepalive: "yes",
  permittty: "yes",
  permituserrc: "yes",
  allowagentforwarding: "yes",
  disableforwarding: "no",
  exposeauthinfo: "no",
  usedns: "no",
  streamlocalbindunlink: "no",
  hostbasedusesnamefrompacketonly: "no",
  kerberosorlocalpasswd: "yes",
  kerberosticketcleanup: "yes",
  gssapicleanupcredentials: "yes",
  gssapistrictacceptorcheck: "yes",
  gssapikeyexchange: "no",
  gssapistorecredentialsonrekey: "no",
  fingerprinthash: "SHA256",
  compression: "yes",
  allowtcpforwarding: "yes",
  allowstreamlocalforwarding: "yes",
  gatewayports: "no",
  permittunnel: "no",
  addressfamily: "any",
  maxauthtries: "6",
  maxsessions: "10",
  clientalivecountmax: "3",
  x11displayoffset: "10",
  requiredrsasize: "1024",
  logingracetime: "120",
  clientaliveinterval: "0",
  loglevel: "INFO",
  banner: "none",
  chrootdirectory: "none",
  ciphers: "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
  macs:
    "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com," +
    "hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
  kexalgorithms:
    "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org," +
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256," +
    "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256",
  hostkeyalgorithms: DEFAULT_KEY_ALGORITHMS,
  pubkeyacceptedalgorithms: DEFAULT_KEY_ALGORITHMS,
  hostbasedacceptedalgorithms: DEFAULT_KEY_ALGORITHMS,
  casignaturealgorithms:
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com," +
    "sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256",
  authenticationmethods: "any",
  authorizedkeysfile: ".ssh/authorized_keys .ssh/authorized_keys2",
  authorizedkeyscommand: "none",
  authorizedkeyscommanduser: "none",
  trustedusercakeys: "none",
  authorizedprincipalsfile: "none",
  authorizedprincipalscommand: "none",
  authorizedprincipalscommanduser: "none",
};

/** Every algorithm the build supports, in `ssh -Q cipher|mac|kex` order: what `+`, `-` and `^` lists may name. */
export const SUPPORTED: Readonly<Record<AlgorithmFamily, readonly string[]>> = {
  cipher: [
    "3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "aes128-ctr", "aes192-ctr", "aes256-ctr",
    "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
  ],
  mac: [
    "hmac-sha1", "hmac-sha1-96", "hmac-sha2-256", "hmac-sha2-512", "hmac-md5", "hmac-md5-96", "umac-64@openssh.com",
    "umac-128@openssh.com", "hmac-sha1-etm@openssh.com", "hmac-sha1-96-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com", "hmac-md5-etm@openssh.com", "hmac-md5-96-etm@openssh.com",
    "umac-64-etm@openssh.com", "umac-128-etm@openssh.com",
  ],
  kex: [
    "diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512", "diffie-hellman-group-exchange-sha1",
    "diffie-hellman-group-exchange-sha256", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
    "curve25519-sha256", "curve25519-sha256@libssh.org", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com",
  ],
  key: KEY_ALGORITHMS,
  // A CA signs with a plain key: the list without certificate types (sshkey_alg_list(0, 1, 1, ',')).
  casig: KEY_ALGORITHMS.filter((name) => !name.includes("-cert-v01@")),
};
