#!/usr/bin/env bash
# The happy path, measured (issue #8): AWS requests per document by service and operation (moto's
# recorder), and pipeline overhead upload → result minus the simulator's own time, p50/p95.
# Runs the real function binaries under the Runtime Interface Emulator, against its own moto.
# Usage: scripts/bench-pipeline.sh [DOCS] [PROFILE]   (PROFILE: debug | release, default release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
docs=${1:-20}
profile=${2:-release}
# A moto of its own, so a `make dev` stack's traffic is not in the recording.
export OCRBRIDGE_MOTO_PORT=${BENCH_MOTO_PORT:-5058}
export OCRBRIDGE_MOTO_URL="http://127.0.0.1:$OCRBRIDGE_MOTO_PORT"
export MOTO_RECORDER_FILEPATH="$root/.local/moto-recording-$OCRBRIDGE_MOTO_PORT.jsonl"
mkdir -p .local
scripts/moto.sh stop >/dev/null 2>&1 || true
scripts/moto.sh start
trap 'scripts/moto.sh stop' EXIT
if [ "$profile" = release ]; then
  cargo build --quiet --release -p intake -p submit -p webhook -p parse -p reconcile --bins
else
  cargo build --quiet -p intake -p submit -p webhook -p parse -p reconcile --bins
fi
cargo build --quiet -p ocrbridge-local --bin bench-pipeline
target/debug/bench-pipeline --docs "$docs" --binaries "target/$profile"
