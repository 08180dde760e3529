#!/usr/bin/env bash
# The quality benchmark on the local stack: the pack (bench/packs/default, or PACK=dir) through
# the real pipeline with VENDOR=sim|textract|azure|mindee, scored against the pinned baseline
# kept in .local/bench-quality. Prints the per-field table and the report's path.
#   scripts/bench-quality.sh                 # compare with the baseline, if one is pinned
#   PIN=1 scripts/bench-quality.sh           # ... and make this run the baseline
#   MODEL_UPDATE=total:0.5 scripts/bench-quality.sh   # the simulator silently reads totals worse
#   PACK=.local/packs/degraded PREPROCESS=deskew RELEASE=1 scripts/bench-quality.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
. scripts/lib.sh
use_shared_moto

# RELEASE=1: the functions as they are packaged (optimized), e.g. for preprocessing's A/B audit,
# whose image work is slow in a debug build; PROFILE=optimized is the same code without LTO,
# minutes quicker to build.
profile=${PROFILE:-dev}
if [ "${RELEASE:-0}" = 1 ]; then profile=release; fi
dir=$(profile_dir "$profile")
cargo build --quiet --profile "$profile" -p ocrbridge-local --bin ocrbridge-local
args=(bench-quality --pack "${PACK:-bench/packs/default}" --out "${OUT:-$root/.local/bench-quality}")
if [ "${PIN:-0}" = 1 ]; then args+=(--pin); fi
if [ -n "${MODEL_UPDATE:-}" ]; then args+=(--model-update "$MODEL_UPDATE"); fi
target/$dir/ocrbridge-local "${args[@]}"
