#!/usr/bin/env bash
# The README's first command: installs what the demo needs (the project with pip; Debian's
# redis-server when missing), then runs the round trip on the embedded default:
# devcluster + Redis + S3 server -> br backup full -> fresh cluster -> br restore full ->
# checksums side by side. Arguments go to the demo (see: bash demo.sh --help).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd -P)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (Debian)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
fi

PY=${PYTHON:-python3}
# Decided by the installed distribution, never by importability: from this directory the source
# packages import without their dependencies. Installed = br-fleet's metadata points at this
# checkout (editable) and every requirement, the devcluster extra's included, is installed.
installed() {
  (cd / && "$PY" - "$HERE" <<'PYEOF'
import json, re, sys
from importlib import metadata
try:
    dist = metadata.distribution("br-fleet")
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    assert url.rstrip("/") == "file://" + sys.argv[1].rstrip("/"), "installed from elsewhere"
    for req in dist.requires or []:
        if "extra ==" not in req or 'extra == "devcluster"' in req:
            metadata.distribution(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
except (metadata.PackageNotFoundError, AssertionError):
    sys.exit(1)
PYEOF
  )
}
if ! installed || [ "${BR_DEMO_REINSTALL:-}" = 1 ]; then
  echo "== installing br-fleet into $("$PY" -c 'import sys; print(sys.prefix)')"
  "$PY" -m pip install -q --disable-pip-version-check -e ".[devcluster]"
fi

exec "$PY" -m br_devcluster.demo "$@"
