#!/bin/sh
# Regenerates every vector file in ../ (see ../README.md for the packages this needs).
set -eu
cd "$(dirname "$0")"
/usr/bin/python3 passlib-vectors.py > ../passlib.json
/usr/bin/python3 php-vectors.py > ../php.json
/usr/bin/python3 tools-vectors.py > ../tools.json
/usr/bin/python3 hashcat-vectors.py > ../hashcat.json
echo "vectors written to $(cd .. && pwd)"
