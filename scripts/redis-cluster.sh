#!/usr/bin/env bash
# A local Redis Cluster for development and tests: 6 nodes (3 masters, 3 replicas) on
# 127.0.0.1 ports BASE..BASE+5, AOF with `appendfsync always`, a small node timeout, and
# `cluster-require-full-coverage no` (one failed master must not stop the other shards).
#
#   scripts/redis-cluster.sh start  [BASE_PORT]   # default 7001; prints the seed nodes
#   scripts/redis-cluster.sh status [BASE_PORT]
#   scripts/redis-cluster.sh stop   [BASE_PORT]
#   scripts/redis-cluster.sh kill-node  PORT [BASE_PORT]   # SIGKILL one node (a crash)
#   scripts/redis-cluster.sh start-node PORT [BASE_PORT]   # start it again on its data
#   scripts/redis-cluster.sh freeze-node PORT [BASE_PORT]  # SIGSTOP: alive, answers nothing
#   scripts/redis-cluster.sh thaw-node  PORT [BASE_PORT]   # SIGCONT
#
# Data, logs and pid files live in a temp dir recorded in $STATE (one per base port), so that
# `stop` ends exactly the processes `start` started, by pid.
set -euo pipefail

cmd=${1:-}
case "$cmd" in
kill-node | start-node | freeze-node | thaw-node) node=${2:?PORT}; base=${3:-7001} ;;
*) base=${2:-7001} ;;
esac
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

# One node on its data directory (its nodes.conf brings it back into the cluster).
launch() {
    redis-server --port "$2" --bind 127.0.0.1 --dir "$1/$2" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --cluster-require-full-coverage no \
        --appendonly yes --appendfsync always --save '' --repl-diskless-sync-delay 0 \
        --daemonize yes --pidfile "$1/$2/redis.pid" --logfile "$1/$2/redis.log"
}

# The pid file of the node $node, which must exist.
node_pidfile() {
    [ -f "$state" ] || { echo "no cluster recorded on $base"; exit 1; }
    pidfile=$(cat "$state")/$node/redis.pid
    [ -f "$pidfile" ] || { echo "no node $node"; exit 1; }
}

kill_node() {
    node_pidfile
    pid=$(cat "$pidfile")
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
    echo "killed node $node"
}

# Sends signal $1 to the node (STOP or CONT), by the pid the start recorded.
signal_node() {
    node_pidfile
    kill -s "$1" "$(cat "$pidfile")"
    echo "sent SIG$1 to node $node"
}

start_node() {
    [ -f "$state" ] || { echo "no cluster recorded on $base"; exit 1; }
    launch "$(cat "$state")" "$node"
    for _ in $(seq 100); do
        redis-cli -p "$node" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    echo "started node $node"
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
        launch "$dir" "$p"
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
    # Every replica linked to its master (WAIT counts only linked replicas).
    for _ in $(seq 200); do
        ok=1
        for p in $(ports); do
            info=$(redis-cli -p "$p" info replication 2>/dev/null)
            case "$info" in
            *role:master*) grep -q 'connected_slaves:[1-9]' <<<"$info" || ok=0 ;;
            *) grep -q 'master_link_status:up' <<<"$info" || ok=0 ;;
            esac
        done
        [ "$ok" = 1 ] && break
        sleep 0.05
    done
    [ "$ok" = 1 ] || { echo "replicas did not link to their masters"; stop; exit 1; }
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
kill-node) kill_node ;;
start-node) start_node ;;
freeze-node) signal_node STOP ;;
thaw-node) signal_node CONT ;;
*) echo "usage: $0 start|stop|status [BASE_PORT] | kill-node|start-node|freeze-node|thaw-node PORT [BASE_PORT]"; exit 2 ;;
esac
