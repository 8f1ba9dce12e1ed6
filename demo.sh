#!/usr/bin/env bash
# The README's first command: installs what the demo needs (the project with pip; Debian's
# redis-server when missing), then runs the round trip on the embedded default:
# devcluster + Redis + S3 server -> br backup full -> fresh cluster -> br restore full ->
# checksums side by side. Arguments go to the demo (see: bash demo.sh --help).
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (Debian)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c "import br_devcluster, br_coordinator, br_agent" >/dev/null 2>&1 || [ "${BR_DEMO_REINSTALL:-}" = 1 ]; then
  echo "== installing br-fleet"
  "$PY" -m pip install -q --disable-pip-version-check -e .
fi

exec "$PY" -m br_devcluster.demo "$@"
