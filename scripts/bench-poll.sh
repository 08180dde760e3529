#!/usr/bin/env bash
# Submissions plus polls against the Azure twin limited to R requests/s (issue #14): achieved
# rate / R and the share of 429s. Usage: scripts/bench-poll.sh [DOCS] [RPS] [PROCESSING_MS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
cargo build --quiet -p ocrbridge-local --bin bench-poll
target/debug/bench-poll --docs "${1:-120}" --rps "${2:-10}" --processing-ms "${3:-3000}"
