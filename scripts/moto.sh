#!/usr/bin/env bash
# moto server for the local stack: start | stop | status.
# Listens on 127.0.0.1 only. Port from OCRBRIDGE_MOTO_PORT (default 5055).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${OCRBRIDGE_MOTO_PORT:-5055}
state="$root/.local"
pidfile="$state/moto-$port.pid"
logfile="$state/moto-$port.log"
url="http://127.0.0.1:$port"

healthy() {
  "$root/.venv/bin/python" - "$url" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

case "${1:-}" in
  start)
    [ -x "$root/.venv/bin/moto_server" ] || { echo "moto.sh: $root/.venv has no moto_server; run scripts/setup.sh first" >&2; exit 1; }
    mkdir -p "$state"
    if healthy; then echo "moto already answering at $url"; exit 0; fi
    # tools/python/moto_server.py: moto, with DynamoDB requests atomic (see the file for why).
    nohup "$root/.venv/bin/python" "$root/tools/python/moto_server.py" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      if healthy; then echo "moto started at $url (pid $(cat "$pidfile"), log $logfile)"; exit 0; fi
      if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then break; fi
      sleep 0.2
    done
    echo "moto.sh: moto did not become healthy at $url; last log lines:" >&2
    tail -20 "$logfile" >&2 || true
    exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
      echo "moto stopped"
    fi
    ;;
  status)
    if healthy; then echo "moto healthy at $url"; else echo "moto not answering at $url"; exit 1; fi
    ;;
  *)
    echo "usage: scripts/moto.sh start|stop|status" >&2; exit 2 ;;
esac
