#!/usr/bin/env bash
# A local Redis Cluster for development and tests: 6 nodes (3 masters, 3 replicas) on
# 127.0.0.1 ports BASE..BASE+5, AOF with `appendfsync always`, a small node timeout.
#
#   scripts/redis-cluster.sh start  [BASE_PORT]   # default 7001; prints the seed nodes
#   scripts/redis-cluster.sh status [BASE_PORT]
#   scripts/redis-cluster.sh stop   [BASE_PORT]
#
# Data, logs and pid files live in a temp dir recorded in $STATE (one per base port), so that
# `stop` ends exactly the processes `start` started, by pid.
set -euo pipefail

cmd=${1:-}
base=${2:-7001}
state=${TMPDIR:-/tmp}/sls-redis-cluster-$base.dir

ports() { seq "$base" $((base + 5)); }

stop() {
    [ -f "$state" ] || { echo "no cluster recorded on $base"; return 0; }
    dir=$(cat "$state")
    for p in $(ports); do
        pidfile=$dir/$p/redis.pid
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
    done
    for p in $(ports); do
        pidfile=$dir/$p/redis.pid
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$dir" "$state"
    echo "stopped cluster on $base"
}

start() {
    command -v redis-server >/dev/null || { echo "redis-server is not installed"; exit 1; }
    if [ -f "$state" ]; then
        # A cluster recorded here whose processes are all gone (a killed test run): forget it.
        alive=0
        for p in $(ports); do
            pidfile=$(cat "$state")/$p/redis.pid
            [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && alive=1
        done
        [ "$alive" = 1 ] && { echo "a cluster is running on $base ($state): stop it first"; exit 1; }
        rm -rf "$(cat "$state")" "$state"
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/sls-redis-cluster.XXXXXX")
    echo "$dir" >"$state"
    for p in $(ports); do
        mkdir -p "$dir/$p"
        redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
            --appendonly yes --appendfsync always --save '' \
            --daemonize yes --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log"
    done
    for p in $(ports); do
        for _ in $(seq 100); do
            redis-cli -p "$p" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
    done
    nodes=$(for p in $(ports); do printf '127.0.0.1:%s ' "$p"; done)
    # shellcheck disable=SC2086
    redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 ||
        { cat "$dir/create.log"; stop; exit 1; }
    for _ in $(seq 200); do
        ok=1
        for p in $(ports); do
            redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0
        done
        [ "$ok" = 1 ] && break
        sleep 0.05
    done
    [ "$ok" = 1 ] || { echo "cluster did not reach cluster_state:ok"; stop; exit 1; }
    echo "cluster up: $nodes(data in $dir)"
}

status() {
    [ -f "$state" ] || { echo "no cluster recorded on $base"; exit 1; }
    redis-cli -p "$base" cluster info | grep -E 'cluster_state|cluster_known_nodes|cluster_size'
}

case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status [BASE_PORT]"; exit 2 ;;
esac
