#!/usr/bin/env bash
# Starts (or stops) three Cairn members on this machine, data and logs in ./cluster-data.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./target/debug/cairn
DIR=cluster-data
CLUSTER="1=127.0.0.1:7380,2=127.0.0.1:7390,3=127.0.0.1:7400"
case "${1:-start}" in
  start)
    mkdir -p "$DIR"
    for i in 1 2 3; do
      client=$((7369 + 10 * i)); peer=$((7370 + 10 * i))
      if [ -f "$DIR/$i.pid" ] && kill -0 "$(cat "$DIR/$i.pid")" 2>/dev/null; then
        echo "member $i already running (pid $(cat "$DIR/$i.pid"))"; continue
      fi
      "$BIN" --id "$i" --data-dir "$DIR/$i" --listen-client "127.0.0.1:$client" \
        --listen-peer "127.0.0.1:$peer" --initial-cluster "$CLUSTER" >"$DIR/$i.log" 2>&1 &
      echo $! >"$DIR/$i.pid"
    done
    for i in 1 2 3; do
      client=$((7369 + 10 * i)); ready=no
      for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$client/ready" >/dev/null && { ready=yes; break; }; sleep 0.1; done
      if [ "$ready" != yes ]; then
        echo "member $i did not become ready; see $DIR/$i.log (stop with: make cluster-stop)" >&2; exit 1
      fi
    done
    cat <<MSG
Three members are running (logs and data in $DIR/):
  member 1: client http://127.0.0.1:7379  peer 127.0.0.1:7380
  member 2: client http://127.0.0.1:7389  peer 127.0.0.1:7390
  member 3: client http://127.0.0.1:7399  peer 127.0.0.1:7400
Try:  curl -s localhost:7389/v1/cluster
      curl -s -X PUT localhost:7389/v1/nodes/hello -d world
      curl -s localhost:7399/v1/nodes/hello
Stop: make cluster-stop
MSG
    ;;
  stop)
    for i in 1 2 3; do
      if [ -f "$DIR/$i.pid" ]; then kill "$(cat "$DIR/$i.pid")" 2>/dev/null || true; rm -f "$DIR/$i.pid"; fi
    done
    echo "stopped (data kept in $DIR/; remove it for a fresh cluster)"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
