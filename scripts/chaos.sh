#!/usr/bin/env bash
# The chaos run on its own (CHAOS_DOCS documents, default 1,000), with moto started and stopped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
export OCRBRIDGE_MOTO_URL="http://127.0.0.1:${OCRBRIDGE_MOTO_PORT:-5055}"
started=0
if ! scripts/moto.sh status >/dev/null 2>&1; then scripts/moto.sh start; started=1; fi
trap '[ "$started" = 1 ] && scripts/moto.sh stop' EXIT
CHAOS_DOCS=${CHAOS_DOCS:-1000} cargo test --locked -p ocrbridge-tests --test chaos -- --nocapture
