#!/usr/bin/env bash
# Intake validation benchmark (issue #4): throughput and peak RSS per object, against moto.
# Release build; one process per object so each peak RSS is that object's own.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
cargo build --release --quiet -p ocrbridge-local --bin bench-intake --bin ocrbridge-local
stack="bench-$(date +%s)"
target/release/ocrbridge-local provision --stack "$stack" --env-out .local/bench.env >/dev/null
bucket=$(grep DOCUMENTS_BUCKET .local/bench.env | cut -d= -f2)
target/release/bench-intake prepare --bucket "$bucket"
for key in bench/big.png bench/big.pdf bench/blob-1g.bin; do
  target/release/bench-intake run --bucket "$bucket" --key "$key"
done
