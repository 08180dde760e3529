#!/usr/bin/env bash
# Issue #29's second opinion on the quality pack (bench/packs/default, or PACK=dir): the first
# vendor (FIRST, default sim) alone, the second (SECOND, default azure) alone, and a route of
# both with SECOND_OPINION=TRIGGERS — each on a fresh local stack. MODEL_UPDATE (default
# total:0.3) is the first vendor's silent model update: the twins share one engine, and without
# it the two read every document alike.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
. scripts/lib.sh
use_shared_moto

cargo build --quiet -p ocrbridge-local --bin ocrbridge-local
args=(bench-second-opinion --pack "${PACK:-bench/packs/default}" --first "${FIRST:-sim}" --second "${SECOND:-azure}")
if [ -n "${TRIGGERS:-}" ]; then args+=(--triggers "$TRIGGERS"); fi
if [ "${MODEL_UPDATE-total:0.3}" != "" ]; then args+=(--model-update "${MODEL_UPDATE-total:0.3}"); fi
target/debug/ocrbridge-local "${args[@]}"
