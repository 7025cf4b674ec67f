#!/usr/bin/python3
# Known-answer vectors from command-line reference tools: `openssl passwd` (md5/sha-crypt),
# `mkpasswd` from Debian's whois package (bcrypt $2b$, sha-crypt with rounds, md5-crypt) and
# coreutils md5sum/sha*sum (bare digests). Python only runs them and writes JSON to stdout.
import subprocess, sys
from common import PASSWORDS, dump, with_negatives


def run(args, stdin):
    return subprocess.run(args, input=stdin.encode(), capture_output=True, check=True).stdout.decode().strip()


def version(args):
    return subprocess.run(args, capture_output=True, text=True).stdout.strip().splitlines()[0]


vectors = []
for pw in PASSWORDS:
    # openssl passwd -stdin reads one line: the password without its newline.
    for flag, scheme in (("-1", "md5-crypt"), ("-5", "sha256-crypt"), ("-6", "sha512-crypt")):
        out = run(["openssl", "passwd", flag, "-stdin"], pw + "\n")
        if out != "<NULL>":  # openssl passwd prints <NULL> for an empty password
            vectors += with_negatives(scheme, pw, out, "openssl passwd")
    # mkpasswd --stdin strips the trailing newline.
    for method, rounds, scheme in (("bcrypt", "5", "bcrypt"), ("sha512crypt", "10000", "sha512-crypt"),
                                   ("sha256crypt", "1000", "sha256-crypt"), ("md5crypt", None, "md5-crypt")):
        args = ["mkpasswd", "--stdin", "-m", method] + (["-R", rounds] if rounds else [])
        if pw == "" and method != "bcrypt":
            continue  # mkpasswd refuses an empty password for these methods
        try:
            vectors += with_negatives(scheme, pw, run(args, pw + "\n"), "mkpasswd")
        except subprocess.CalledProcessError:
            pass
    for tool, scheme in (("md5sum", "md5"), ("sha1sum", "sha1"), ("sha256sum", "sha256"), ("sha512sum", "sha512")):
        vectors += with_negatives(scheme, pw, run([tool], pw).split()[0], tool)

dump({
    "generator": "src/accounts/passwords/vectors/generate/tools-vectors.py",
    "tool": "%s; mkpasswd %s (Debian whois); %s" % (version(["openssl", "version"]), version(["mkpasswd", "--version"]).split()[-1], version(["md5sum", "--version"])),
}, vectors, sys.stdout)
