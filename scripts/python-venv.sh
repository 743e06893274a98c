#!/usr/bin/env bash
# A Python venv with the tools the tests use: prometheus-client's exposition parsers, which the
# daemon's metrics test checks /metrics with (scripts/check-exposition.py).
# Usage: scripts/python-venv.sh [DIR]   (default: target/py-venv under the workspace root)
# Idempotent: an existing venv that already has the pinned version is kept as it is.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/target/py-venv}"
pin="prometheus-client==0.26.0"
if [ -x "$dir/bin/python" ] && "$dir/bin/python" -m pip show prometheus-client 2>/dev/null \
    | grep -qx "Version: ${pin#*==}"; then
    exit 0
fi
python3 -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$pin"
"$dir/bin/python" -c "import prometheus_client.openmetrics.parser" 
echo "python venv with $pin in $dir"
