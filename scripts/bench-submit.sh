#!/usr/bin/env bash
# Submit throughput against the simulator's rate limit (issues #5, #33): goodput (submissions
# per second over the limit R) and the 429s it cost. Built with the `optimized` profile (release
# without Lambda's link-time work): at R = 50 a debug build of the whole local stack, not the
# vendor, would bound it.
# Usage: scripts/bench-submit.sh [DOCS] [RPS] [BENCH FLAGS…]   (e.g. --burst 2; PROFILE=dev)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
docs=${1:-150}
rps=${2:-10}
shift $(( $# < 2 ? $# : 2 ))
profile=${PROFILE:-optimized}
. scripts/lib.sh
use_shared_moto
cargo build --quiet --profile "$profile" -p ocrbridge-local --bin bench-submit
"target/$(profile_dir "$profile")/bench-submit" --docs "$docs" --rps "$rps" "$@"
