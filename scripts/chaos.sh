#!/usr/bin/env bash
# The chaos run on its own (CHAOS_DOCS documents, default 1,000), with moto started and stopped.
#   CHAOS_VENDOR=sim (default)  both fallbacks against the simulator without idempotency
#   CHAOS_VENDOR=textract       against the Textract twin
#   CHAOS_VENDOR=all            every run
# Exploration: a new CHAOS_SEED each time (printed); CHAOS_SEED=N replays run N. `make test` runs
# the gate's fixed seed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
case "${CHAOS_VENDOR:-sim}" in
  sim) filter=chaos_without_vendor_idempotency ;;
  all) filter=chaos_ ;;
  textract|azure|mindee) filter="chaos_against_the_${CHAOS_VENDOR}_twin" ;;
  *) echo "CHAOS_VENDOR must be sim, textract, azure, mindee or all, not ${CHAOS_VENDOR}" >&2; exit 2 ;;
esac
export CHAOS_SEED=${CHAOS_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
echo "chaos: CHAOS_SEED=$CHAOS_SEED"
CHAOS_DOCS=${CHAOS_DOCS:-1000} cargo test --locked -p ocrbridge-tests --test chaos -- --nocapture "$filter"
