#!/usr/bin/env bash
# Submissions plus polls against the Azure twin limited to R requests/s (issues #14, #33):
# achieved rate / R and the 429s. Built as scripts/bench-submit.sh builds (PROFILE, default
# optimized). Usage: scripts/bench-poll.sh [DOCS] [RPS] [PROCESSING_MS] [BENCH FLAGS…]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
docs=${1:-120}
rps=${2:-10}
processing=${3:-3000}
shift $(( $# < 3 ? $# : 3 ))
profile=${PROFILE:-optimized}
. scripts/lib.sh
use_shared_moto
cargo build --quiet --profile "$profile" -p ocrbridge-local --bin bench-poll
"target/$(profile_dir "$profile")/bench-poll" --docs "$docs" --rps "$rps" --processing-ms "$processing" "$@"
