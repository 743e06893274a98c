#!/usr/bin/env bash
# The nemesis suite's long run (a soak): builds slsd and sls-nemesis (release), then runs many
# fault cycles under the storm and checks every acknowledged verdict (docs/NEMESIS.md).
#
#   scripts/nemesis.sh [--cycles N] [--duration 2h] [--seed S] [--faults freeze-master,...] [...]
#
# Defaults here: --cycles 200 --duration 1h (whichever ends first). Every flag goes to
# sls-nemesis (`target/release/sls-nemesis --help`). The history (JSON lines) and the summary
# (JSON) go to target/nemesis/; the history is kept when the run fails, and its path printed.
# Ctrl-C stops after the current cycle, still checks, and stops every process the run started.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v redis-server >/dev/null || { echo "scripts/nemesis.sh: needs redis-server (scripts/test installs it)" >&2; exit 2; }
cargo build --release --locked -p sls-daemon --bin slsd -p sls-nemesis --bin sls-nemesis

mkdir -p target/nemesis
stamp=$(date -u +%Y%m%dT%H%M%SZ)
args=("$@")
have() { local f; for f in "${args[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
have --cycles || args+=(--cycles 200)
have --duration || args+=(--duration 1h)
have --history || args+=(--history "target/nemesis/history-$stamp.jsonl")
have --summary || args+=(--summary "target/nemesis/summary-$stamp.json")
exec target/release/sls-nemesis "${args[@]}"
