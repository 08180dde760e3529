#!/usr/bin/env bash
# The webhook handler under 10,000 mixed deliveries, 60% hostile (issue #18): forgeries
# accepted, duplicate notices, Secrets Manager reads, latency per class.
#   scripts/bench-webhook.sh [REQUESTS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
cargo build --release --quiet -p ocrbridge-local --bin bench-webhook
target/release/bench-webhook --requests "${1:-10000}"
