#!/usr/bin/python3
# Known-answer vectors published by hashcat (`hashcat --example-hashes -m MODE`, Debian package
# hashcat): one hash and password per mode, from an implementation independent of ours and of
# passlib/PHP. Notably the only third-party Drupal 7 $S$ vector. Writes JSON to stdout.
import re, subprocess, sys
from common import dump, tamper, with_negatives

# hashcat mode → our scheme id (or a salted-digest template for "hash:salt" modes).
MODES = {
    0: "md5", 100: "sha1", 1400: "sha256", 1700: "sha512",
    400: "phpass", 7900: "drupal7", 500: "md5-crypt", 7400: "sha256-crypt", 1800: "sha512-crypt",
    3200: "bcrypt", 10000: "django-pbkdf2-sha256", 111: "ssha", 1411: "ssha256", 1711: "ssha512",
    10: "md5(password+salt):hex", 20: "md5(salt+password):hex", 110: "sha1(password+salt):hex",
    1410: "sha256(password+salt):hex", 1420: "sha256(salt+password):hex", 1720: "sha512(salt+password):hex",
}

vectors = []
for mode, scheme in MODES.items():
    info = subprocess.run(["hashcat", "--example-hashes", "-m", str(mode)], capture_output=True, text=True, check=True).stdout
    hash_text = re.search(r"Example\.Hash\.*: (.+)", info).group(1).strip()
    password = re.search(r"Example\.Pass\.*: (.*)", info).group(1).strip()
    if "(" in scheme:
        digest, salt = hash_text.split(":", 1)
        base = {"scheme": "salted-digest", "template": scheme, "salt": salt, "digest": digest, "source": "hashcat mode %d" % mode}
        vectors += [{**base, "password": password, "match": True},
                    {**base, "password": password + "x", "match": False, "case": "wrong password"},
                    {**base, "password": password, "digest": tamper(digest), "match": False, "case": "tampered hash"}]
    else:
        vectors += with_negatives(scheme, password, hash_text, "hashcat mode %d" % mode)

version = subprocess.run(["hashcat", "--version"], capture_output=True, text=True).stdout.strip()
dump({
    "generator": "src/accounts/passwords/vectors/generate/hashcat-vectors.py",
    "tool": "hashcat %s (Debian hashcat), --example-hashes" % version,
}, vectors, sys.stdout)
