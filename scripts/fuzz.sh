#!/usr/bin/env bash
# The cargo-fuzz targets in fuzz/ (libFuzzer), each for FUZZ_SECONDS (default 30; `make fuzz`
# runs 600). Seeds: fuzz/corpus/<target> (committed), plus the vendors' real payloads and the
# awkward inputs from ../shared/fixtures when present; the working corpus and any crash go to
# .local/fuzz/. The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
# A crash fails the run and is kept as .local/fuzz/<target>/crash-*: make it a regression test.
#   scripts/fuzz.sh [TARGET…]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked --version 0.13.2 >/dev/null 2>&1 || {
    echo "fuzz: cannot install cargo-fuzz; check that crates.io is reachable" >&2; exit 1; }
fi
export RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-30}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(webhook_verify function_url_event s3_event pdf_scan image_headers normalizers)
fi
shared=${OCRBRIDGE_SHARED_DIR:-$root/../shared}
(cd fuzz && cargo fuzz build -s none)
for t in "${targets[@]}"; do
  work=.local/fuzz/$t
  mkdir -p "$work/corpus"
  cp -n fuzz/corpus/"$t"/* "$work/corpus/" 2>/dev/null || true
  if [ -d "$shared/fixtures" ]; then
    case $t in
      normalizers) cp -n "$shared"/fixtures/textract/*.json "$shared"/fixtures/azure-di/*.result.json \
                     "$shared"/fixtures/mindee-v2/*/*.json "$work/corpus/" 2>/dev/null || true ;;
      pdf_scan) cp -n "$shared"/fixtures/inputs/*.pdf "$work/corpus/" 2>/dev/null || true ;;
      image_headers) for f in "$shared"/fixtures/inputs/receipt.*; do
                       head -c 65536 "$f" > "$work/corpus/$(basename "$f").head"; done ;;
    esac
  fi
  log=$work/run.log
  if (cd fuzz && cargo fuzz run "$t" -s none "../$work/corpus" -- \
        -max_total_time="$seconds" -artifact_prefix="../$work/" -print_final_stats=1) >"$log" 2>&1; then
    runs=$(grep -m1 -oE 'Done [0-9]+ runs' "$log" || echo "Done ? runs")
    echo "fuzz $t: ${runs#Done } in ${seconds}s, corpus $(ls "$work/corpus" | wc -l), no crash"
  else
    echo "fuzz $t: FAILED — see $log and $work/crash-*" >&2
    grep -m5 -E 'panicked|SUMMARY|ERROR' "$log" >&2 || true
    exit 1
  fi
done
