# Sourced by the benchmark and chaos scripts: moto for the length of one script.

# moto at OCRBRIDGE_MOTO_PORT (default 5055), shared: started if it is not answering, and then
# stopped on exit; left running if it already was (a `make dev` stack, say).
use_shared_moto() {
  export OCRBRIDGE_MOTO_URL="http://127.0.0.1:${OCRBRIDGE_MOTO_PORT:-5055}"
  moto_started_here=0
  if ! scripts/moto.sh status >/dev/null 2>&1; then scripts/moto.sh start; moto_started_here=1; fi
  trap '[ "$moto_started_here" = 1 ] && scripts/moto.sh stop' EXIT
}

# A fresh moto of its own on PORT, so nothing else's traffic or state is in what it measures;
# stopped on exit.
use_own_moto() {
  export OCRBRIDGE_MOTO_PORT=$1
  export OCRBRIDGE_MOTO_URL="http://127.0.0.1:$OCRBRIDGE_MOTO_PORT"
  scripts/moto.sh stop >/dev/null 2>&1 || true
  scripts/moto.sh start
  trap 'scripts/moto.sh stop' EXIT
}

# The function binaries (`-p NAME` each) in PROFILE (release | debug).
build_functions() {
  local profile=$1; shift
  local packages=()
  for name in "$@"; do packages+=(-p "$name"); done
  if [ "$profile" = release ]; then
    cargo build --quiet --release "${packages[@]}" --bins
  else
    cargo build --quiet "${packages[@]}" --bins
  fi
}

# The directory under target/ a cargo profile builds into (dev builds into debug).
profile_dir() {
  if [ "$1" = dev ]; then echo debug; else echo "$1"; fi
}
