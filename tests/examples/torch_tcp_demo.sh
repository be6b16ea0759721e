#!/bin/sh
# The LibTorch CNN over TCP: 08_torch_cnn as the aggregator and as 2 learner processes on
# 127.0.0.1, one round of a small network.
# Usage: torch_tcp_demo.sh PROGRAM
set -eu
port=$((20000 + $$ % 20000))
"$1" --aggregate yes --port "$port" --learners 2 --rounds 1 --channels 4 > aggregator.out 2> aggregator.err &
aggregator=$!
for id in 0 1; do
  "$1" --learner "$id" --port "$port" --learners 2 --channels 4 2> "learner-$id.err" &
done
status=0
wait "$aggregator" || status=$?
wait || true
cat aggregator.out
[ "$status" -eq 0 ] && echo "torch tcp demo ok"
exit "$status"
