#!/usr/bin/env bash
# The deterministic simulator's longer run: seeds A..B (default 0..20000), M steps each
# (default 5000). Stops at the first seed that breaks a rule and prints the command that
# replays it (sls-sim --seed N --steps M).
#
#   scripts/sim.sh [A..B] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-0..20000}"
steps="${2:-5000}"
cargo build --locked --release -p sls-sim
exec target/release/sls-sim --seeds "$seeds" --steps "$steps" --quiet
