#!/usr/bin/env bash
# Textract, synchronous against asynchronous (issue #31): the same receipts through the Textract
# twin twice — TEXTRACT_SYNCHRONOUS=off (StartExpenseAnalysis, SNS, GetExpenseAnalysis) and on
# (AnalyzeExpense, answered in the call) — each on a fresh stack: end-to-end p50/p95, AWS
# requests per document, and vendor calls per document. Real function binaries under the Runtime
# Interface Emulator, against a moto of its own.
# Usage: scripts/bench-textract-sync.sh [DOCS] [PROFILE]   (PROFILE: debug | release, default release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
docs=${1:-20}
profile=${2:-release}
port=${BENCH_MOTO_PORT:-5059}
export MOTO_RECORDER_FILEPATH="$root/.local/moto-recording-$port.jsonl"
mkdir -p .local
. scripts/lib.sh
use_own_moto "$port"
build_functions "$profile" intake submit webhook parse reconcile
cargo build --quiet -p ocrbridge-local --bin bench-pipeline
for mode in off on; do
  echo "== TEXTRACT_SYNCHRONOUS=$mode"
  target/debug/bench-pipeline --docs "$docs" --binaries "target/$profile" \
    --vendor textract --textract-sync "$mode"
  echo
done
