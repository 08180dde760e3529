#!/usr/bin/env bash
# The webhook function under 10,000 mixed deliveries, 60% hostile (issue #18): forgeries
# accepted, duplicate notices, Secrets Manager reads, latency per class.
#   scripts/bench-webhook.sh [REQUESTS]           # the handler in-process
#   EMULATOR=1 scripts/bench-webhook.sh [REQUESTS] # the real binary under the Lambda RIE
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
cargo build --release --quiet -p ocrbridge-local --bin bench-webhook
args=(--requests "${1:-10000}")
if [ "${EMULATOR:-0}" = 1 ]; then
  cargo build --release --quiet -p webhook --bin webhook
  args+=(--emulator "$root/target/release")
fi
target/release/bench-webhook "${args[@]}"
