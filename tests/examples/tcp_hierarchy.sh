#!/bin/sh
# Hierarchical FL as processes on 127.0.0.1: a root aggregator, two edge aggregators and four
# learners, with tokens at both levels. Edge 1 is killed once round 1 is reported and started
# again at once: the root records its failure, it rejoins, and the last round has both edges.
# Usage: tcp_hierarchy.sh AGGREGATOR EDGE LEARNER
set -eu
port=$((20000 + $$ % 20000))
FLOTILLA_TOKENS="0=root-secret-0,1=root-secret-1" \
  "$1" --address 127.0.0.1 --port "$port" --learners 2 --quorum 1 --rounds 8 > root.out 2> root.err &
root=$!
start_edge() {
  FLOTILLA_TOKEN="root-secret-$1" FLOTILLA_TOKENS="0=edge-secret,1=edge-secret,2=edge-secret,3=edge-secret" \
    "$2" --id "$1" --port $((port + 1 + $1)) --parent-port "$port" --learners 2 --quorum 1 > "edge-$1.out" 2>&1 &
  edge_pid=$!
}
start_edge 0 "$2"
start_edge 1 "$2"
for id in 0 1 2 3; do
  FLOTILLA_TOKEN=edge-secret "$3" --id "$id" --learners 4 --port $((port + 1 + id / 2)) 2> "learner-$id.err" &
done
until grep -q "^round  1:" root.out 2>/dev/null; do sleep 0.02; done
kill -9 "$edge_pid"
wait "$edge_pid" 2>/dev/null || true  # gone, and its port with it, before the new edge binds it
echo "killed edge 1"
start_edge 1 "$2"
status=0
wait "$root" || status=$?
wait || true
cat root.out
[ "$(grep -c "learner 1 registered" root.err)" -ge 2 ]  # it registered again after its restart
[ "$status" -eq 0 ] && echo "tcp hierarchy ok"
exit "$status"
