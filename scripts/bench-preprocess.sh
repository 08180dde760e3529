#!/usr/bin/env bash
# Preprocessing's cost (issue #30): time per MB of input and peak RSS, in release, for phone
# photos of 1 to 40 megapixels (PREPROCESS_MAX_PIXELS' default), every action on; then blank-page
# removal on duplex PDF scans, conversion of grey and fax TIFFs and of a HEIC photo. Each size is
# prepared in a process of its own, so its peak RSS is its own. No moto needed.
#   scripts/bench-preprocess.sh            # 1 4 12 24 40 megapixels
#   SIZES="2 8" scripts/bench-preprocess.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# PROFILE=optimized: the same code without LTO, minutes quicker to build.
. scripts/lib.sh
profile=${PROFILE:-release}
cargo build --quiet --profile "$profile" -p ocrbridge-local --bin ocrbridge-local
bin=target/$(profile_dir "$profile")/ocrbridge-local
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "preprocessing (orient, downscale, crop, deskew, contrast), release, one process per image:"
for mp in ${SIZES:-1 4 12 24 40}; do
  "$bin" bench-input --megapixels "$mp" "$work/in-$mp.jpg"
  size=$(stat -c %s "$work/in-$mp.jpg")
  printf '%5s MP, %6.1f MB JPEG: ' "$mp" "$(awk "BEGIN{print $size/1000000}")"
  "$bin" preprocess "$work/in-$mp.jpg" "$work/out-$mp.jpg" --actions orient,downscale,crop,deskew,contrast | sed -n 1p | sed 's/^.*(//; s/)$//'
done
echo
echo "blank pages and conversion (a duplex scan: the pack's receipt on a letter page at 200 dpi, then its blank back):"
for pages in ${SCAN_PAGES:-20 200}; do
  "$bin" bench-scan --pages "$pages" "$work/scan-$pages.pdf"
  "$bin" preprocess "$work/scan-$pages.pdf" "$work/out-$pages.pdf" --actions blank_pages | sed -n 1p
done
for pages in ${TIFF_PAGES:-2 10}; do
  "$bin" bench-scan --pages "$pages" "$work/scan-$pages.tif"
  "$bin" preprocess "$work/scan-$pages.tif" "$work/out-$pages-tif.pdf" --actions convert,blank_pages | sed -n 1p
done
"$bin" preprocess tests/fixtures/inputs/receipt-000-fax-g4.tif "$work/fax.pdf" --actions convert | sed -n 1p
"$bin" preprocess tests/fixtures/inputs/receipt-000.heic "$work/photo.jpg" --actions convert | sed -n 1p
