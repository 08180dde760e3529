#!/usr/bin/env bash
# Cold-start init duration of every function under the Runtime Interface Emulator (issue #8).
# Usage: scripts/bench-init.sh [RUNS] [PROFILE]   (PROFILE: release | debug, default release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
runs=${1:-5}
profile=${2:-release}
export OCRBRIDGE_MOTO_PORT=${BENCH_MOTO_PORT:-5059}
export OCRBRIDGE_MOTO_URL="http://127.0.0.1:$OCRBRIDGE_MOTO_PORT"
scripts/moto.sh start
trap 'scripts/moto.sh stop' EXIT
functions=(-p intake -p submit -p webhook -p parse -p reconcile -p rotate)
if [ "$profile" = release ]; then
  cargo build --quiet --release "${functions[@]}" --bins
else
  cargo build --quiet "${functions[@]}" --bins
fi
cargo build --quiet -p ocrbridge-local --bin bench-init
target/debug/bench-init --runs "$runs" --binaries "target/$profile"
