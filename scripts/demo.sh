#!/usr/bin/env bash
# The main job on the local stack: set up, start moto, provision the template's resources, and run
# the pipeline on documents. The pipeline stages are being built issue by issue; this script runs
# what exists and says plainly what does not.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
export OCRBRIDGE_MOTO_URL="http://127.0.0.1:${OCRBRIDGE_MOTO_PORT:-5055}"
started_moto=0
if ! scripts/moto.sh status >/dev/null 2>&1; then
  scripts/moto.sh start
  started_moto=1
fi
cleanup() { if [ "$started_moto" = 1 ]; then scripts/moto.sh stop; fi; }
trap cleanup EXIT

mkdir -p .local
cargo run --quiet -p ocrbridge-local -- provision --stack ocrbridge-demo --env-out .local/demo.env
echo
echo "demo: the local stack is provisioned (environment in .local/demo.env)."
echo "demo: the pipeline functions are not built yet, so no document can go through it." >&2
exit 1
