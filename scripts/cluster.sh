#!/usr/bin/env bash
# A local lifelongrec cluster: several `lifelongrec serve` processes on one home folder,
# their events in PostgreSQL, an event bus on Redis, one learner process between them.
#
#   bash scripts/cluster.sh [--home DIR] [--replicas N] [--port FIRST] [--store URL]
#                           [--bus URL] [--data SOURCE] [--config FILE]
#
# The first process makes the home on its first start (trains the first champion on
# --data, default synthetic; --config: a JSON file of service settings) and starts the
# learner; then the others start on the next ports. It prints each process's address
# and log, and stops them all on Ctrl-C (or SIGTERM). Defaults: home lifelongrec-cluster,
# 2 processes from port 8001, the local servers (PostgreSQL on 127.0.0.1:5432, database
# test, schema lifelongrec_cluster; Redis on 127.0.0.1:6379). Put a load balancer (nginx,
# HAProxy) in front of the ports for one address.
set -euo pipefail

home=lifelongrec-cluster
replicas=2
port=8001
store='postgresql://postgres@127.0.0.1:5432/test?schema=lifelongrec_cluster'
bus='redis://127.0.0.1:6379/0?stream=lifelongrec:cluster'
data=synthetic
config=
while [ $# -gt 0 ]; do
    case "$1" in
        --home) home=$2; shift 2 ;;
        --replicas) replicas=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --store) store=$2; shift 2 ;;
        --bus) bus=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "cluster.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$replicas" in ''|*[!0-9]*|0) echo "cluster.sh: --replicas must be a positive integer, not '$replicas'" >&2; exit 2 ;; esac
case "$port" in ''|*[!0-9]*) echo "cluster.sh: --port must be a port number, not '$port'" >&2; exit 2 ;; esac

here=$(cd "$(dirname "$0")/.." && pwd)
lifelongrec=lifelongrec
[ -x "$here/.venv/bin/lifelongrec" ] && lifelongrec="$here/.venv/bin/lifelongrec"
logs="$home-logs"
mkdir -p "$logs"
pids=()

stop() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "cluster stopped"
}
trap 'stop; exit 0' INT TERM

wait_ready() {  # until /health answers on port $1 (the process $2 still running)
    for _ in $(seq 1 1200); do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "cluster.sh: the process on port $1 exited; its log:" >&2
            tail -n 20 "$logs/replica-$1.log" >&2
            stop; exit 1
        fi
        python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$1/health', timeout=2)" 2>/dev/null && return 0
        sleep 0.5
    done
    echo "cluster.sh: no answer on port $1 after 10 minutes" >&2
    stop; exit 1
}

for i in $(seq 0 $((replicas - 1))); do
    p=$((port + i))
    args=(serve --home "$home" --port "$p" --store "$store" --bus "$bus")
    if [ "$i" = 0 ]; then
        args+=(--data "$data")
        [ -n "$config" ] && args+=(--config "$config")
    fi
    "$lifelongrec" "${args[@]}" >"$logs/replica-$p.log" 2>&1 &
    pids+=($!)
    wait_ready "$p" "$!"
    echo "replica $((i + 1)): http://127.0.0.1:$p (log: $logs/replica-$p.log)"
done
echo "cluster ready: $replicas processes, store $store, bus $bus (Ctrl-C stops them)"
wait
