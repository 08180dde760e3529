#!/usr/bin/env bash
# The cargo-fuzz targets in fuzz/ (libFuzzer), in one of two modes:
#
#   scripts/fuzz.sh replay  [TARGET…]   every target over its committed inputs once, under
#                                        libFuzzer. `make test` replays the same inputs through the
#                                        same checks without a libFuzzer build (tests/fuzz_replay.rs).
#   scripts/fuzz.sh explore [TARGET…]   what `make fuzz` runs: each target explores with random
#                                        inputs for FUZZ_SECONDS (default 600) from those inputs.
#
# The inputs of a target: fuzz/corpus/<target> (seeds), fuzz/regressions/<target> (every crash a
# fuzzer ever found, each with a test that feeds it through the real code), and the vendors' real
# payloads and awkward inputs from ../shared/fixtures when present (OCRBRIDGE_SHARED_DIR).
# A crash found by `explore` is copied into fuzz/regressions/<target>/ for you to commit, with a
# test beside it; `make test` then keeps it fixed. What each target checks is in
# fuzz/checks/<target>.rs, which tests/fuzz_replay.rs includes too.
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

mode=${1:-}
case $mode in
  replay|explore) shift ;;
  *) echo "usage: scripts/fuzz.sh replay|explore [TARGET…]" >&2; exit 2 ;;
esac
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked --version 0.13.2 >/dev/null 2>&1 || {
    echo "fuzz: cannot install cargo-fuzz; check that crates.io is reachable" >&2; exit 1; }
fi
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(webhook_verify function_url_event s3_event pdf_scan image_headers normalizers)
fi
shared=${OCRBRIDGE_SHARED_DIR:-$root/../shared}
# Replaying a few dozen inputs needs no optimizer, and a debug build compiles in half the time;
# exploring runs millions of inputs, so it builds release.
profile=()
[ "$mode" = replay ] && profile=(--dev)
(cd fuzz && cargo fuzz build "${profile[@]}" -s none)

# Copies every committed input of target $1 into directory $2.
gather() {
  local t=$1 into=$2
  mkdir -p "$into"
  cp -n fuzz/corpus/"$t"/* "$into/" 2>/dev/null || true
  cp -n fuzz/regressions/"$t"/* "$into/" 2>/dev/null || true
  if [ -d "$shared/fixtures" ]; then
    case $t in
      normalizers) cp -n "$shared"/fixtures/textract/*.json "$shared"/fixtures/azure-di/*.result.json \
                     "$shared"/fixtures/mindee-v2/*/*.json "$into/" 2>/dev/null || true ;;
      pdf_scan) cp -n "$shared"/fixtures/inputs/*.pdf "$into/" 2>/dev/null || true ;;
      image_headers) for f in "$shared"/fixtures/inputs/receipt.*; do
                       head -c 65536 "$f" > "$into/$(basename "$f").head"; done ;;
    esac
  fi
}

for t in "${targets[@]}"; do
  work=.local/fuzz/$t
  if [ "$mode" = replay ]; then
    # A fresh directory every time: libFuzzer may add to the first corpus directory it is given.
    inputs=$work/replay
    rm -rf "$inputs"
    gather "$t" "$inputs"
    count=$(ls "$inputs" | wc -l)
    log=$work/replay.log
    # -runs=0: run every input once, mutate nothing.
    if (cd fuzz && cargo fuzz run "$t" "${profile[@]}" -s none "../$inputs" -- -runs=0 \
          -artifact_prefix="../$work/replay-") >"$log" 2>&1; then
      echo "fuzz replay $t: $count inputs, no crash"
    else
      echo "fuzz replay $t: FAILED on a committed input — see $log" >&2
      grep -m5 -E 'panicked|SUMMARY|ERROR|Test unit written' "$log" >&2 || true
      exit 1
    fi
    continue
  fi
  seconds=${FUZZ_SECONDS:-600}
  mkdir -p "$work/corpus"
  gather "$t" "$work/corpus"
  log=$work/run.log
  if (cd fuzz && cargo fuzz run "$t" -s none "../$work/corpus" -- \
        -max_total_time="$seconds" -artifact_prefix="../$work/" -print_final_stats=1) >"$log" 2>&1; then
    runs=$(grep -m1 -oE 'Done [0-9]+ runs' "$log" || echo "Done ? runs")
    echo "fuzz explore $t: ${runs#Done } in ${seconds}s, corpus $(ls "$work/corpus" | wc -l), no crash"
  else
    echo "fuzz explore $t: FOUND A CRASH — see $log" >&2
    grep -m5 -E 'panicked|SUMMARY|ERROR' "$log" >&2 || true
    mkdir -p "fuzz/regressions/$t"
    for crash in "$work"/crash-* "$work"/oom-* "$work"/timeout-*; do
      [ -f "$crash" ] || continue
      cp "$crash" "fuzz/regressions/$t/"
      echo "fuzz: kept $(basename "$crash") in fuzz/regressions/$t/: fix the code (or the target), add a test that feeds it through the real code, and commit both; make test replays it from now on" >&2
    done
    exit 1
  fi
done
