// Algorithms we report as weak, each with the reason an auditor can check. Deliberately narrow: the
// OpenSSH 9.2 defaults (incl. hmac-sha1 and umac-64, still acceptable for integrity) raise nothing.

import type { AlgorithmFamily } from "./keywords.ts";

const SHA1_RSA = "RSA signatures over SHA-1, for which chosen-prefix collisions are practical (Leurent and Peyrin, 2020); disabled by default since OpenSSH 8.8";
const DSA = "DSA: 1024-bit keys and SHA-1 signatures; disabled by default since OpenSSH 7.0";

export const WEAK_ALGORITHMS: Readonly<Record<AlgorithmFamily, Readonly<Record<string, string>>>> = {
  cipher: {
    "3des-cbc": "64-bit block cipher: Sweet32 birthday attack (CVE-2016-2183); also CBC mode",
    "aes128-cbc": "CBC mode in SSH allows plaintext recovery (CVE-2008-5161); removed from OpenSSH's defaults in 7.2",
    "aes192-cbc": "CBC mode in SSH allows plaintext recovery (CVE-2008-5161); removed from OpenSSH's defaults in 7.2",
    "aes256-cbc": "CBC mode in SSH allows plaintext recovery (CVE-2008-5161); removed from OpenSSH's defaults in 7.2",
  },
  mac: {
    "hmac-md5": "MD5-based MAC, disabled by default since OpenSSH 7.2; NIST SP 800-131A disallows MD5",
    "hmac-md5-96": "MD5-based MAC truncated to 96 bits, disabled by default since OpenSSH 7.2",
    "hmac-md5-etm@openssh.com": "MD5-based MAC, disabled by default since OpenSSH 7.2",
    "hmac-md5-96-etm@openssh.com": "MD5-based MAC truncated to 96 bits, disabled by default since OpenSSH 7.2",
    "hmac-sha1-96": "truncated 96-bit SHA-1 MAC, disabled by default since OpenSSH 7.2",
    "hmac-sha1-96-etm@openssh.com": "truncated 96-bit SHA-1 MAC, disabled by default since OpenSSH 7.2",
  },
  kex: {
    "diffie-hellman-group1-sha1": "1024-bit group (Logjam) and SHA-1: RFC 9142 says MUST NOT",
    "diffie-hellman-group14-sha1": "SHA-1 key exchange: RFC 9142 says SHOULD NOT",
    "diffie-hellman-group-exchange-sha1": "SHA-1 key exchange: RFC 9142 says MUST NOT",
  },
  key: {
    "ssh-rsa": SHA1_RSA,
    "ssh-rsa-cert-v01@openssh.com": `certificates with ${SHA1_RSA}`,
    "ssh-dss": DSA,
    "ssh-dss-cert-v01@openssh.com": `certificates with ${DSA}`,
  },
  casig: {
    "ssh-rsa": `a CA signing certificates with ${SHA1_RSA}: a colliding certificate can be forged`,
    "ssh-dss": `a CA signing certificates with ${DSA}`,
  },
};

/**
 * The weak names in one assembled list of `family`.
 *
 * @example
 * weakNames("ssh-ed25519,ssh-rsa", "key"); // [{ name: "ssh-rsa", reason: "RSA signatures over SHA-1, ..." }]
 */
export function weakNames(list: string, family: AlgorithmFamily): { name: string; reason: string }[] {
  const out: { name: string; reason: string }[] = [];
  for (const name of list.split(",")) {
    const reason = WEAK_ALGORITHMS[family][name];
    if (reason !== undefined) out.push({ name, reason });
  }
  return out;
}

export interface WeakAlgorithm {
  keyword: "ciphers" | "macs" | "kexalgorithms" | "hostkeyalgorithms";
  name: string;
  reason: string;
}

/**
 * The weak algorithms an effective configuration enables in the lists sshd takes only in its global
 * part (Ciphers, MACs, KexAlgorithms, HostKeyAlgorithms); the lists a Match block may set have rules
 * of their own (findings.ts).
 *
 * @example
 * weakAlgorithms({ ciphers: "aes128-ctr,3des-cbc", macs: "", kexalgorithms: "" }); // [{ keyword: "ciphers", name: "3des-cbc", ... }]
 */
export function weakAlgorithms(effective: Readonly<Record<string, string>>): WeakAlgorithm[] {
  const out: WeakAlgorithm[] = [];
  const families = [["ciphers", "cipher"], ["macs", "mac"], ["kexalgorithms", "kex"], ["hostkeyalgorithms", "key"]] as const;
  for (const [keyword, family] of families) {
    for (const weak of weakNames(effective[keyword] ?? "", family)) out.push({ keyword, ...weak });
  }
  return out;
}
