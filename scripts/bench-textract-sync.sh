#!/usr/bin/env bash
# Textract, synchronous against asynchronous (issue #31): the same receipts through the Textract
# twin twice — TEXTRACT_SYNCHRONOUS=off (StartExpenseAnalysis, SNS, GetExpenseAnalysis) and on
# (AnalyzeExpense, answered in the call) — each on a fresh stack: end-to-end p50/p95, AWS
# requests per document, and vendor calls per document (scripts/bench-pipeline.sh, twice).
# Usage: scripts/bench-textract-sync.sh [DOCS] [PROFILE]   (PROFILE: debug | release, default release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for mode in off on; do
  echo "== TEXTRACT_SYNCHRONOUS=$mode"
  BENCH_MOTO_PORT=${BENCH_MOTO_PORT:-5059} scripts/bench-pipeline.sh "${1:-20}" "${2:-release}" \
    --vendor textract --textract-sync "$mode"
  echo
done
