#!/usr/bin/env bash
# Installs what the local stack and the tests need, idempotently:
#   - .venv with the pinned Python tools (moto server, cfn-lint) from tools/python/requirements.txt
# Fails with a clear message when something cannot be installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "setup: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not on PATH; install Rust (https://rustup.rs) first"
python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "$python is not on PATH; install Python 3.9+ (Debian: apt-get install python3 python3-venv)"

requirements=tools/python/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv || die "could not create .venv (Debian: apt-get install python3-venv)"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing $(grep -cv '^#' "$requirements") pinned Python packages into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements" \
    || die "pip could not install $requirements (is PyPI reachable?)"
  echo "$want" >"$stamp"
fi
echo "setup: ok (venv: $(.venv/bin/python --version), moto $(.venv/bin/python -c 'import moto; print(moto.__version__)'))"
