#!/usr/bin/env bash
# Proof that can fail: each patch in scripts/mutants/ removes one guard (the lease, the fence, the
# resolution of a lost answer…) and names the test meant to catch it (`# expect-fail: TEST_FILE:NAME`).
# For each, this applies the patch, runs that test, and requires it to FAIL; then reverts.
#   scripts/mutants.sh [NAME…]      (default: every patch)
# Exit status 1 if any mutant survived (its test passed with the guard gone). Not part of
# `make test` (each mutant rebuilds the test binary); `make mutants` runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/lib.sh
use_shared_moto

if [ -n "$(git status --porcelain -- shared functions tools tests)" ]; then
  echo "mutants: commit or stash your changes first (each mutant is applied to a clean tree)" >&2
  exit 2
fi

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for p in scripts/mutants/*.patch; do names+=("$(basename "$p" .patch)"); done
fi
survived=()
for name in "${names[@]}"; do
  patch=scripts/mutants/$name.patch
  target=$(sed -n 's/^# expect-fail: //p' "$patch")
  file=${target%%:*}
  test=${target#*:}
  git apply "$patch"
  trap 'git apply -R "$patch" 2>/dev/null || true' EXIT
  echo "== mutant $name: $(sed -n '1s/^# //p' "$patch")"
  if cargo test --quiet -p ocrbridge-tests --test "$file" -- --exact "$test" >".local/mutant-$name.log" 2>&1; then
    echo "   SURVIVED: $file::$test passed with the guard removed (.local/mutant-$name.log)"
    survived+=("$name")
  else
    line=$(grep -m1 -E "panicked at|error\[" ".local/mutant-$name.log" || true)
    echo "   killed: $file::$test failed — ${line}"
  fi
  git apply -R "$patch"
  trap - EXIT
done
if [ ${#survived[@]} -gt 0 ]; then
  echo "mutants: ${#survived[@]} survived: ${survived[*]}" >&2
  exit 1
fi
echo "mutants: all ${#names[@]} killed"
