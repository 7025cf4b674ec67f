# Shared helpers of the vector generators: the passwords every scheme is tried with, and the
# negative cases (wrong password, tampered hash) derived from each positive vector.
PASSWORDS = [
    "password",
    "correct horse battery staple",
    "p\u00e4ssw\u00f6rd \u2713 \u5bc6\u7801",  # unicode: Latin-1 range, a symbol and CJK
    "",  # empty, where the format allows it
]

GROUPS = ["0123456789", "abcdef", "ABCDEF", "ghijklmnopqrstuvwxyz", "GHIJKLMNOPQRSTUVWXYZ"]


def tamper(hash_text):
    """Changes one character in the digest part (10th from the end, or the nearest rotatable one)
    to another of the same class, so the hash stays well-formed but must no longer verify."""
    for i in range(len(hash_text) - 10, 0, -1):
        c = hash_text[i]
        for g in GROUPS:
            if c in g:
                return hash_text[:i] + g[(g.index(c) + 1) % len(g)] + hash_text[i + 1:]
    raise ValueError("nothing to tamper in " + hash_text)


def with_negatives(scheme, password, hash_text, source):
    return [
        {"scheme": scheme, "password": password, "hash": hash_text, "match": True, "source": source},
        {"scheme": scheme, "password": password + "x", "hash": hash_text, "match": False, "source": source, "case": "wrong password"},
        {"scheme": scheme, "password": password, "hash": tamper(hash_text), "match": False, "source": source, "case": "tampered hash"},
    ]


def dump(meta, vectors, out):
    """Writes the vector file: metadata, then one vector per line (reviewable diffs)."""
    import json
    out.write("{\n")
    for key, value in meta.items():
        out.write(" %s: %s,\n" % (json.dumps(key), json.dumps(value, ensure_ascii=False)))
    out.write(' "vectors": [\n')
    out.write(",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in vectors))
    out.write("\n ]\n}\n")
