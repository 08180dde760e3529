#!/usr/bin/env bash
# Issue #30's A/B audit of preprocessing: the quality pack with degraded variants of its images
# (ocrbridge-local degrade-pack: turned 3-15°, faded, on a table, halved, with a blank back),
# VARIANTS=… picks them (default: all), run through the local
# stack once with PREPROCESS=off and once per setting, each run paired with the off run field by
# field (ocrbridge quality compare: accuracy both ways, flips, sign test, cost).
#   scripts/bench-preprocess-ab.sh                      # off, then on, crop, deskew, contrast
#   SETTINGS="deskew" scripts/bench-preprocess-ab.sh
#   VARIANTS=blank_page SETTINGS=blank_pages PACK=.local/packs/blank scripts/bench-preprocess-ab.sh
#   OFF_RUN=.local/preprocess-ab/bq-… SETTINGS=crop scripts/bench-preprocess-ab.sh   # reuse an off run
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
cargo build --quiet -p ocrbridge-local --bin ocrbridge-local -p ocrbridge-cli --bin ocrbridge
# The runs optimized (release without LTO, PROFILE=release for the packaged build):
# preprocessing in a debug build is slow enough to crowd intake's deadline.
export PROFILE=${PROFILE:-optimized}
pack=${PACK:-$root/.local/packs/degraded}
out=${OUT:-$root/.local/preprocess-ab}
target/debug/ocrbridge-local degrade-pack --out "$pack" ${VARIANTS:+--variants "$VARIANTS"}
run_dir() { sed -n 's/^report: \([^ ]*\)\/report.html .*/\1/p' "$1" | tail -1; }
mkdir -p "$out"
# OFF_RUN=DIR: an off run already made on the same pack (its run.json's directory).
if [ -n "${OFF_RUN:-}" ]; then
  off=$OFF_RUN
else
  PACK="$pack" PREPROCESS=off OUT="$out" scripts/bench-quality.sh | tee "$out/off.log"
  off=$(run_dir "$out/off.log")
fi
for setting in ${SETTINGS:-on crop deskew contrast}; do
  PACK="$pack" PREPROCESS="$setting" OUT="$out" scripts/bench-quality.sh | tee "$out/$setting.log"
  echo
  echo "== PREPROCESS=off (A) against PREPROCESS=$setting (B)"
  target/debug/ocrbridge quality compare "$off/run.json" "$(run_dir "$out/$setting.log")/run.json"
done
