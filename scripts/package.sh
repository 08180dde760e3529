#!/usr/bin/env bash
# `sam build` for deployment: each function is built with `cargo lambda build --release --arm64`
# (Metadata.BuildMethod rust-cargolambda). Not part of `make test`: about 18 minutes cold on
# 2 cores, and it needs the aarch64-unknown-linux-gnu target, which rustup downloads.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
.venv-sam/bin/python -m pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2' \
  || { echo "package: could not install cargo-lambda from PyPI" >&2; exit 1; }
rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu \
  || { echo "package: rustup could not add aarch64-unknown-linux-gnu (it downloads from outside PyPI/crates.io)" >&2; exit 1; }
export SAM_CLI_TELEMETRY=0 PATH="$root/.venv-sam/bin:$PATH"
sam build --template template.yaml
echo "package: built into .aws-sam/build; deploy with: sam deploy --guided"
