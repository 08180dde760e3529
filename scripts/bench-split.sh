#!/usr/bin/env bash
# Splitting's cost (issue #30): a PDF past the vendor's page limit cut into parts as intake does
# (PDF_PART_PAGES), in release: time, time per MB of input and peak RSS, for documents of 400
# to 3,000 pages (MAX_PDF_PAGES' default), each page a line of text and IMAGE_KB of image data
# (a scanned page's weight). Each document is split in a process of its own, so its peak RSS is
# its own. No moto needed.
#   scripts/bench-split.sh                     # 400 1000 3000 pages, 100 KB a page, 100 a part
#   PAGES="200" IMAGE_KB=300 PER_PART=50 scripts/bench-split.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo build --quiet --release -p ocrbridge-local --bin ocrbridge-local
bin=target/release/ocrbridge-local
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "splitting (lopdf), release, one process per document, ${IMAGE_KB:-100} KB of image a page, parts of ${PER_PART:-100} pages:"
for pages in ${PAGES:-400 1000 3000}; do
  "$bin" bench-pdf --pages "$pages" --image-kb "${IMAGE_KB:-100}" "$work/in-$pages.pdf"
  "$bin" split-pdf "$work/in-$pages.pdf" --per-part "${PER_PART:-100}"
done
