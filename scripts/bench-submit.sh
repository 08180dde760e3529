#!/usr/bin/env bash
# Submit throughput against the simulator's rate limit (issue #5). Debug build: the vendor and
# moto, not our code, bound it. Usage: scripts/bench-submit.sh [DOCS] [RPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
export OCRBRIDGE_MOTO_URL="http://127.0.0.1:${OCRBRIDGE_MOTO_PORT:-5055}"
started=0
if ! scripts/moto.sh status >/dev/null 2>&1; then scripts/moto.sh start; started=1; fi
trap '[ "$started" = 1 ] && scripts/moto.sh stop' EXIT
cargo build --quiet -p ocrbridge-local --bin bench-submit
target/debug/bench-submit --docs "${1:-150}" --rps "${2:-10}"
