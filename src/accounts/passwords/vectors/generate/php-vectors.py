#!/usr/bin/python3
# Runs php-vectors.php (Debian php-cli) and writes its output as a JSON vector file to stdout,
# adding wrong-password and tampered-hash negatives. The hashes are PHP's; Python only reformats.
import base64, subprocess, sys
from common import dump, tamper, with_negatives
from passlib import hash as h

CROSS_CHECK = {"phpass": h.phpass, "md5-crypt": h.md5_crypt, "sha256-crypt": h.sha256_crypt, "sha512-crypt": h.sha512_crypt,
               "bcrypt": h.bcrypt, "argon2id": h.argon2, "argon2i": h.argon2}

php_version = subprocess.run(["php", "-r", "echo PHP_VERSION;"], capture_output=True, text=True, check=True).stdout
lines = subprocess.run(["php", "php-vectors.php"], capture_output=True, text=True, check=True).stdout.splitlines()
vectors = []
for line in lines:
    fields = line.split("\t")
    if fields[0] == "TEMPLATE":
        _, template, pw64, salt, digest = fields
        password = base64.b64decode(pw64).decode()
        base = {"scheme": "salted-digest", "template": template, "salt": salt, "digest": digest, "source": "php"}
        vectors.append({**base, "password": password, "match": True})
        vectors.append({**base, "password": password + "x", "match": False, "case": "wrong password"})
        vectors.append({**base, "password": password, "digest": tamper(digest), "match": False, "case": "tampered hash"})
    else:
        scheme, pw64, hash_text = fields
        # Cross-check with passlib where it knows the format: two implementations must agree.
        checker = CROSS_CHECK.get(scheme)
        if checker is not None:
            assert checker.verify(base64.b64decode(pw64).decode(), hash_text), (scheme, hash_text)
        vectors += with_negatives(scheme, base64.b64decode(pw64).decode(), hash_text, "php")

dump({
    "generator": "src/accounts/passwords/vectors/generate/php-vectors.py (runs php-vectors.php)",
    "tool": "PHP %s (Debian php-cli): crypt(), password_hash(), hash(), md5(), sha1(); Drupal 7 _password_crypt transcribed in php-vectors.php" % php_version,
}, vectors, sys.stdout)
