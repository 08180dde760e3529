#!/usr/bin/env bash
# Cold-start init duration of every function under the Runtime Interface Emulator, and of the
# trivial function that is its floor (issues #8, #33). Usage: scripts/bench-init.sh [RUNS] [PROFILE]
# (PROFILE: release | debug, default release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
runs=${1:-5}
profile=${2:-release}
. scripts/lib.sh
use_own_moto "${BENCH_MOTO_PORT:-5059}"
build_functions "$profile" intake submit webhook parse reconcile rotate lambda-floor
cargo build --quiet -p ocrbridge-local --bin bench-init
target/debug/bench-init --runs "$runs" --binaries "target/$profile"
