#!/usr/bin/env bash
# Issue #29's failover run on its own: a route of two twins (the simulator, then the Azure twin),
# the first put through an outage, an auth revocation and slowness past the call's timeout, each
# followed by its recovery; FAILOVER_DOCS documents per phase (default 40; `make test` runs 6).
# Prints a row per phase: time and calls for the breaker to open, its closing after recovery,
# documents through the fallback, p95 upload → settled, and what the fallback cost.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
echo "| phase | documents | breaker opened after | closed after | through the fallback | p95 ms | fallback cost USD |"
echo "|---|---|---|---|---|---|---|"
FAILOVER_DOCS=${FAILOVER_DOCS:-40} cargo test --locked -p ocrbridge-tests --test failover -- --nocapture failover_run 2>&1 \
  | tee .local/chaos-failover.log | sed -n 's/^failover: //p'
