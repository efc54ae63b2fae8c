#!/bin/sh
# Client RSS per idle WebSocket connection, gobwas/ws against coder/websocket (docs/measurements.md
# "WebSocket"): both hold N (default 5000) idle connections to `portstorm target --mode websocket`,
# in a private network namespace. Run from the repository: unshare -n sh bench/wsmem/run.sh [N]
set -e
n=${1:-5000}
work=$(mktemp -d)
trap 'kill $T 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/portstorm" ./cmd/portstorm
go build -o "$work/wsmem" ./bench/wsmem
ip link set lo up
timeout 300 "$work/portstorm" target --mode websocket --listen 127.0.0.1:9555 >"$work/target.log" 2>&1 &
T=$!
until grep -q . "$work/target.log" 2>/dev/null; do sleep 0.1; done   # listening once it prints
for i in 1 2; do
  timeout 120 "$work/wsmem" gobwas 127.0.0.1:9555 "$n"
  timeout 120 "$work/wsmem" coder 127.0.0.1:9555 "$n"
done
