#!/usr/bin/env bash
# Proof that can fail: each patch in scripts/mutants/ removes one guard (the lease, the fence, the
# resolution of a lost answer…) and names the test meant to catch it (`# expect-fail: TEST_FILE:NAME`).
# For each, this applies the patch, runs each test it names, and requires every one to FAIL; then
# reverts. `lib:TEST` names a unit test of the shared crate, `cli-lib:TEST` one of the CLI crate, `cli/FILE:TEST` a CLI integration test. The chaos run, when named, runs with CHAOS_DOCS=${MUTANT_CHAOS_DOCS:-100}.
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

# Each test's output is kept here; without the directory no test could even start, and every
# mutant would look killed.
mkdir -p .local
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for p in scripts/mutants/*.patch; do names+=("$(basename "$p" .patch)"); done
fi
survived=()
for name in "${names[@]}"; do
  patch=scripts/mutants/$name.patch
  git apply "$patch"
  trap 'git apply -R "$patch" 2>/dev/null || true' EXIT
  echo "== mutant $name: $(sed -n '1s/^# //p' "$patch")"
  while read -r target; do
    file=${target%%:*}
    test=${target#*:}
    log=".local/mutant-$name-${file//\//-}.log"
    # `lib:` names a unit test of the shared crate (`lib:url_fetch::tests::NAME`).
    # `cli-lib:` a unit test of the CLI crate, `cli/FILE:` one of its integration tests.
    case "$file" in
      lib) where=(-p ocrbridge --lib) ;;
      cli-lib) where=(-p ocrbridge-cli --lib) ;;
      cli/*) where=(-p ocrbridge-cli --test "${file#cli/}") ;;
      *) where=(-p ocrbridge-tests --test "$file") ;;
    esac
    # Tests that run the functions' own binaries (under the RIE or SAM) need them rebuilt with
    # the mutant: `cargo test` builds only the test's crate.
    case "$file" in
      e2e_binaries | rie | sam_local) cargo build --quiet --workspace --bins >"$log" 2>&1 ;;
    esac
    if CHAOS_DOCS=${MUTANT_CHAOS_DOCS:-100} cargo test --quiet "${where[@]}" -- --exact "$test" >"$log" 2>&1; then
      # A name that matches no test runs nothing and passes: that proves nothing either way.
      if ! grep -qE "^test result: ok\. [1-9]" "$log"; then
        echo "   NO TEST: $file::$test names no test ($log); fix its expect-fail line"
        survived+=("$name:$file(no test)")
        continue
      fi
      echo "   SURVIVED: $file::$test passed with the guard removed ($log)"
      survived+=("$name:$file")
    elif grep -qE "panicked at|^test result: FAILED" "$log"; then
      line=$(grep -m1 -A2 -E "panicked at" "$log" | tr '\n' ' ' | cut -c1-400 || true)
      echo "   killed: $file::$test failed — ${line}"
    else
      # Not a test's failure (a build error, a missing tool): the mutant was never tried.
      line=$(grep -m1 -A2 -E "error(\[|:)" "$log" | tr '\n' ' ' | cut -c1-400 || true)
      echo "   NOT RUN: $file::$test did not run ($log): ${line}"
      survived+=("$name:$file(not run)")
    fi
  done < <(sed -n 's/^# expect-fail: //p' "$patch")
  git apply -R "$patch"
  trap - EXIT
done
if [ ${#survived[@]} -gt 0 ]; then
  echo "mutants: ${#survived[@]} survived: ${survived[*]}" >&2
  exit 1
fi
echo "mutants: all ${#names[@]} killed"
