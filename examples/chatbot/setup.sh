#!/bin/sh
# The install step of the chatbot example: run it once, from this folder, before
# `berth up`. It only checks what the example needs; running it again is harmless.
# Nothing to install: no nginx, certbot, gunicorn, supervisor or Redis. berth makes
# its self-signed certificate itself at the first `berth up` (in .berth/tls/).
set -eu
cd "$(dirname "$0")"

command -v python3 >/dev/null 2>&1 || { echo "setup: python3 is missing (the API is a Python program)" >&2; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' \
  || { echo "setup: python3 is older than 3.8" >&2; exit 1; }
command -v berth >/dev/null 2>&1 || { echo "setup: berth is not on PATH" >&2; exit 1; }

berth check
echo "setup: ready; now run \`berth up\` here, then open https://localhost:8443/"
