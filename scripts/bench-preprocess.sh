#!/usr/bin/env bash
# Preprocessing's cost (issue #30): time per MB of input and peak RSS, in release, for phone
# photos of 1 to 40 megapixels (PREPROCESS_MAX_PIXELS' default), every action on. Each size is
# prepared in a process of its own, so its peak RSS is its own. No moto needed.
#   scripts/bench-preprocess.sh            # 1 4 12 24 40 megapixels
#   SIZES="2 8" scripts/bench-preprocess.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo build --quiet --release -p ocrbridge-local --bin ocrbridge-local
bin=target/release/ocrbridge-local
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "preprocessing (orient, downscale, crop, deskew, contrast), release, one process per image:"
for mp in ${SIZES:-1 4 12 24 40}; do
  "$bin" bench-input --megapixels "$mp" "$work/in-$mp.jpg"
  size=$(stat -c %s "$work/in-$mp.jpg")
  printf '%5s MP, %6.1f MB JPEG: ' "$mp" "$(awk "BEGIN{print $size/1000000}")"
  "$bin" preprocess "$work/in-$mp.jpg" "$work/out-$mp.jpg" --actions orient,downscale,crop,deskew,contrast | head -1 | sed 's/^.*(//; s/)$//'
done
