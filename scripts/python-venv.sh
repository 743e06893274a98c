#!/usr/bin/env bash
# A Python venv with the tools the tests use: prometheus-client's exposition parsers, which the
# daemon's metrics test checks /metrics with (scripts/check-exposition.py), and websockets,
# the DevTools client with which the load generator's report test drives headless Chromium
# (scripts/report-browser.py).
# Usage: scripts/python-venv.sh [DIR]   (default: target/py-venv under the workspace root)
# Idempotent: an existing venv that already has the pinned versions is kept as it is.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/target/py-venv}"
pins="prometheus-client==0.26.0 websockets==15.0.1"
have() {
    [ -x "$dir/bin/python" ] || return 1
    for pin in $pins; do
        # grep without -q reads all of pip's output: no SIGPIPE to fail the pipe (pipefail).
        "$dir/bin/python" -m pip show "${pin%%==*}" 2>/dev/null \
            | grep -x "Version: ${pin#*==}" >/dev/null || return 1
    done
}
if have; then
    exit 0
fi
python3 -m venv "$dir"
# shellcheck disable=SC2086 # one argument per pin
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check $pins
"$dir/bin/python" -c "import prometheus_client.openmetrics.parser, websockets.sync.client"
echo "python venv with $pins in $dir"
