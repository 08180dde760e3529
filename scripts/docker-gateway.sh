#!/usr/bin/env bash
# The host's address on Docker's default bridge: what a container uses to reach the host
# (scripts/docker-bridge.py listens there). Fails with a clear message without Docker.
set -euo pipefail
if ! docker info >/dev/null 2>&1; then
  echo "docker-gateway: Docker is not running (or not installed); sam local invoke needs it" >&2
  exit 1
fi
gateway=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null || true)
if [ -z "$gateway" ]; then # the engine does not always record it: the host's side of docker0
  gateway=$(ip -4 -o addr show docker0 2>/dev/null | sed -n 's|.* inet \([0-9.]*\)/.*|\1|p' | head -1)
fi
if [ -z "$gateway" ]; then
  echo "docker-gateway: cannot find Docker's bridge gateway (docker network inspect bridge, ip addr show docker0)" >&2
  exit 1
fi
echo "$gateway"
