#!/usr/bin/env bash
# Every failpoint under every action on every configuration it can be reached on (the full
# matrix: ~2,000 runs), with moto started and stopped; prints the table. `make test` runs the
# gate: every (failpoint, action) once, on one configuration each.
#   CRASHPOINTS_ONLY=submit.before_vendor_call   one point (a prefix)
#   CRASHPOINTS_CONFIG=azure/hold                one configuration
#   CRASHPOINTS_PARALLEL=2                       configurations at once (each its own stack)
#   CRASHPOINTS=gate                             the gate's selection instead of the matrix
#   CRASHPOINTS_MESSAGE_CONCURRENCY=5            submit and parse handle a batch at once (off by default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
. scripts/lib.sh
use_shared_moto
export CRASHPOINTS=${CRASHPOINTS:-full}
cargo test -p ocrbridge-tests --test crashpoints -- --nocapture
