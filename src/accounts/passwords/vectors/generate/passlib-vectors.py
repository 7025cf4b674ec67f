#!/usr/bin/python3
# Known-answer vectors from Debian's python3-passlib (run with /usr/bin/python3, Debian packages
# python3-passlib, python3-bcrypt, python3-argon2). Writes JSON to stdout.
import hashlib, sys, platform
import passlib
from passlib import hash as h
from common import PASSWORDS, dump, with_negatives

CASES = [
    ("md5-crypt", h.md5_crypt),
    ("sha256-crypt", h.sha256_crypt.using(rounds=1000)),
    ("sha256-crypt", h.sha256_crypt.using(rounds=5000)),
    ("sha512-crypt", h.sha512_crypt.using(rounds=1000)),
    ("sha512-crypt", h.sha512_crypt.using(rounds=5000)),
    ("phpass", h.phpass.using(rounds=8)),
    ("phpass", h.phpass.using(rounds=7, ident="H")),
    ("pbkdf2-sha256", h.pbkdf2_sha256.using(rounds=1000)),
    ("pbkdf2-sha512", h.pbkdf2_sha512.using(rounds=1000)),
    ("django-pbkdf2-sha256", h.django_pbkdf2_sha256.using(rounds=1000)),
    ("django-pbkdf2-sha1", h.django_pbkdf2_sha1.using(rounds=1000)),
    ("ssha", h.ldap_salted_sha1),
    ("ssha256", h.ldap_salted_sha256),
    ("ssha512", h.ldap_salted_sha512),
    ("md5", h.hex_md5),
    ("sha1", h.hex_sha1),
    ("sha256", h.hex_sha256),
    ("sha512", h.hex_sha512),
    ("scrypt", h.scrypt.using(rounds=4, block_size=8, parallelism=1)),
    ("scrypt", h.scrypt.using(rounds=5, block_size=4, parallelism=2)),
    ("bcrypt", h.bcrypt.using(rounds=4)),
    ("bcrypt", h.bcrypt.using(rounds=5, ident="2a")),
    ("argon2id", h.argon2.using(type="ID", memory_cost=64, rounds=1, parallelism=1)),
    ("argon2i", h.argon2.using(type="I", memory_cost=128, rounds=2, parallelism=2)),
]

vectors = []
for scheme, handler in CASES:
    for password in PASSWORDS:
        hash_text = handler.hash(password)
        assert handler.verify(password, hash_text)
        vectors += with_negatives(scheme, password, hash_text, "passlib")

# A few legacy costs at their real-world defaults (glibc sha-crypt 5000 is above; Drupal-era phpass 2^15 here).
for password in PASSWORDS[:2]:
    vectors += with_negatives("phpass", password, h.phpass.using(rounds=15).hash(password), "passlib")

# argon2 version 0x10 (pre-2016 libraries), from passlib's backend argon2-cffi directly.
import argon2 as argon2_cffi, os
for password in PASSWORDS:
    vectors += with_negatives("argon2id", password, argon2_cffi.low_level.hash_secret(
        password.encode(), os.urandom(16), time_cost=1, memory_cost=64, parallelism=1, hash_len=32,
        type=argon2_cffi.low_level.Type.ID, version=16).decode(), "argon2-cffi")

# SourceLair-style salted digest, built with hashlib for the digest and declared with a template.
for password in PASSWORDS:
    salt = "0123456789abcdefghijklmnopqrstuv"  # 32 characters, as in the SourceLair post-mortem
    vectors.append({"scheme": "salted-digest", "template": "sha256(salt+password):hex", "salt": salt, "password": password,
                    "digest": hashlib.sha256((salt + password).encode()).hexdigest(), "match": True, "source": "python hashlib"})

dump({
    "generator": "src/accounts/passwords/vectors/generate/passlib-vectors.py",
    "tool": "passlib %s on Python %s (Debian python3-passlib, python3-bcrypt, python3-argon2)" % (passlib.__version__, platform.python_version()),
}, vectors, sys.stdout)
