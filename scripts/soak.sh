#!/usr/bin/env bash
# Soak: slsd under mixed load at a constant rate (default 15,000 steps/s, about half the
# closed-loop maximum measured on this machine) for DURATION (default 600 s), sampling the
# daemon's RSS every 10 s. Loopback only; stops by itself; ends only the slsd it started.
#   scripts/soak.sh [RATE] [DURATION_S] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-15000}
DURATION=${2:-600}
OUT=${3:-soak-report}
cargo build --release --locked -p sls-daemon -p sls-loadgen >/dev/null
DATA=$(mktemp -d)
mkdir -p "$OUT"
./target/release/slsd --listen 127.0.0.1:0 --data-dir "$DATA" --rate-per-user 0 --rate-per-client 0 --log warn \
    > "$OUT/slsd.out" 2> "$OUT/slsd.err" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do grep -q '^listening ' "$OUT/slsd.out" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening //p' "$OUT/slsd.out")
echo "t_s,rss_kb" > "$OUT/rss.csv"
( t=0; while kill -0 "$PID" 2>/dev/null && [ "$t" -le "$((DURATION + 30))" ]; do
    echo "$t,$(awk '/VmRSS/ {print $2}' /proc/$PID/status)" >> "$OUT/rss.csv"; sleep 10; t=$((t + 10)); done ) &
SAMPLER=$!
./target/release/sls-loadgen run --target "$ADDR" --tls-dir "$DATA/tls" --users 100000 --connections 8 \
    --max-apps 5000 --rate "$RATE" --duration "${DURATION}s" --warmup 5s --out "$OUT" | tee "$OUT/summary.txt"
kill "$SAMPLER" 2>/dev/null || true
kill -TERM "$PID"; wait "$PID" || true
echo "RSS samples: $OUT/rss.csv"
