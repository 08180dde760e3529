#!/usr/bin/env bash
# disk-check.sh DIR GB: say before a build, not in the middle of one, when the file system that
# holds DIR has less than GB gigabytes free. A build that runs out of space dies with a compiler
# panic ("No space left on device") that names neither the cause nor the remedy.
set -euo pipefail
dir=$1 need_gb=$2
probe=$dir
while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
free_kb=$(df -Pk "$probe" | awk 'NR == 2 { print $4 }')
have_gb=$((free_kb / 1024 / 1024))
# What target/ already holds is reused, so only the rest has to fit.
used_kb=0
if [ -d "$dir" ]; then used_kb=$(du -sk "$dir" 2>/dev/null | awk '{ print $1 }'); fi
used_gb=$((used_kb / 1024 / 1024))
if [ $((have_gb + used_gb)) -lt "$need_gb" ]; then
  echo "disk-check: $dir needs about ${need_gb} GB for a full build and test run; its file system has ${have_gb} GB free and target/ already holds ${used_gb} GB." >&2
  echo "disk-check: free some space (cargo clean in other checkouts, docker image prune) or point CARGO_TARGET_DIR at a larger disk." >&2
  exit 1
fi
echo "disk-check: ${have_gb} GB free for $dir (a full run needs about ${need_gb} GB)"
