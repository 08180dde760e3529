#!/usr/bin/env bash
# The happy path, measured (issue #8): AWS requests per document by service and operation (moto's
# recorder), and pipeline overhead upload → result minus the simulator's own time, p50/p95.
# Runs the real function binaries under the Runtime Interface Emulator, against its own moto.
# Usage: scripts/bench-pipeline.sh [DOCS] [PROFILE] [BENCH FLAGS…]   (PROFILE: debug | release,
# default release; the flags go to bench-pipeline, e.g. --vendor textract --textract-sync on)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
docs=${1:-20}
profile=${2:-release}
shift $(( $# < 2 ? $# : 2 ))
# A moto of its own, so a `make dev` stack's traffic is not in the recording.
port=${BENCH_MOTO_PORT:-5058}
export MOTO_RECORDER_FILEPATH="$root/.local/moto-recording-$port.jsonl"
mkdir -p .local
. scripts/lib.sh
use_own_moto "$port"
build_functions "$profile" intake submit webhook parse reconcile
cargo build --quiet -p ocrbridge-local --bin bench-pipeline
target/debug/bench-pipeline --docs "$docs" --binaries "target/$profile" "$@"
