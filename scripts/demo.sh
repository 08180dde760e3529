#!/usr/bin/env bash
# The main job on the local stack (README command 1): set up, start moto, and run the pipeline
# on documents — samples/ by default, or a folder given as the first argument (its sub-folders
# are S3 prefixes: receipts/, invoices/, anything else is generic). Prints a summary table,
# writes results to .local/demo-out (or $OUT), and stops everything it started.
#   scripts/demo.sh [DOCS_DIR]            DEV=1 scripts/demo.sh   # keep the stack running
#   BINARIES=1 scripts/demo.sh            # run the real function binaries under the Lambda RIE
#   SAM=1 scripts/demo.sh                 # ... in Docker behind `sam local start-lambda`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
export OCRBRIDGE_MOTO_URL="http://127.0.0.1:${OCRBRIDGE_MOTO_PORT:-5055}"
started_moto=0
if ! scripts/moto.sh status >/dev/null 2>&1; then
  scripts/moto.sh start
  started_moto=1
fi
cleanup() { if [ "$started_moto" = 1 ]; then scripts/moto.sh stop; fi; }
trap cleanup EXIT

docs=$(cd "${1:-samples}" && pwd)
out=${OUT:-$root/.local/demo-out}
mkdir -p "$out"
cargo build --quiet -p ocrbridge-local --bin ocrbridge-local
args=(demo --docs "$docs" --out "$out")
if [ "${DEV:-0}" = 1 ]; then args+=(--keep); fi
if [ "${BINARIES:-0}" = 1 ] || [ "${SAM:-0}" = 1 ]; then
  cargo build --quiet --workspace --bins
  args+=(--binaries "$root/target/debug")
fi
if [ "${SAM:-0}" = 1 ]; then args+=(--sam); fi
target/debug/ocrbridge-local "${args[@]}"
