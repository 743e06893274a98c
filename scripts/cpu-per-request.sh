#!/usr/bin/env bash
# Server CPU per request under regime 1's shape (8 conns x 256 in flight, dsc_plus, 20,000 users):
# scripts/cpu-per-request.sh SLSD SLS-LOADGEN [SECONDS]. Starts SLSD on a free loopback port in a
# temporary dir, runs the load generator twice (a 1 s warm-up fleet, then the measured run), reads
# slsd's utime+stime from /proc, stops slsd by its pid.
set -euo pipefail
SLSD=$1; LG=$2; SECS=${3:-8}
D=$(mktemp -d /tmp/ab-XXXX)
$SLSD --listen 127.0.0.1:0 --rate-per-user 0 --rate-per-client 0 --log warn --data-dir $D/data > $D/out 2> $D/err &
PID=$!
for i in $(seq 50); do grep -q listening $D/out 2>/dev/null && break; sleep 0.1; done
ADDR=$(grep -o 'listening [0-9.:]*' $D/out | cut -d' ' -f2)
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
$LG run --target $ADDR --tls-dir $D/data/tls --users 20000 --mix dsc_plus=1 --scenarios dsc_plus=1 --connections 8 --in-flight 256 --duration 1s --warmup 0s > /dev/null 2>&1
c0=$(cpu); t0=$(date +%s.%N)
$LG run --target $ADDR --tls-dir $D/data/tls --users 20000 --seed 7 --mix dsc_plus=1 --scenarios dsc_plus=1 --connections 8 --in-flight 256 --duration ${SECS}s --warmup 1s --out $D/rep > /dev/null 2>&1
c1=$(cpu); t1=$(date +%s.%N)
ok=$(python3 -c "import json;d=json.load(open('$D/rep/summary.json'));print(sum(s['ok'] for s in d['scenarios']))")
kill $PID; wait $PID 2>/dev/null || true
python3 -c "
ok=$ok; secs=$SECS; ticks=($c1-$c0); hz=100
print(f'{ok/secs:.0f} verified/s, slsd CPU {ticks/hz:.2f} s over {$t1-$t0:.1f} s wall, {ticks/hz*1e6/(ok*2):.2f} us CPU per request (incl. enrolment and warm-up)')"
rm -rf $D
