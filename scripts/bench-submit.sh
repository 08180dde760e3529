#!/usr/bin/env bash
# Submit throughput against the simulator's rate limit (issue #5). Debug build: the vendor and
# moto, not our code, bound it. Usage: scripts/bench-submit.sh [DOCS] [RPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
cargo build --quiet -p ocrbridge-local --bin bench-submit
target/debug/bench-submit --docs "${1:-150}" --rps "${2:-10}"
