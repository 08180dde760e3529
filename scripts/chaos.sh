#!/usr/bin/env bash
# The chaos run on its own (CHAOS_DOCS documents, default 1,000), with moto started and stopped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
CHAOS_DOCS=${CHAOS_DOCS:-1000} cargo test --locked -p ocrbridge-tests --test chaos -- --nocapture
