#!/bin/sh
# The TCP examples end to end: an aggregator and two learner processes on 127.0.0.1 for two rounds.
# Usage: tcp_demo.sh AGGREGATOR LEARNER
set -eu
port=$((20000 + $$ % 20000))
"$1" --address 127.0.0.1 --port "$port" --learners 2 --rounds 2 > aggregator.out 2> aggregator.err &
aggregator=$!
"$2" --id 0 --learners 2 --port "$port" 2> learner-0.err &
"$2" --id 1 --learners 2 --port "$port" 2> learner-1.err &
status=0
wait "$aggregator" || status=$?
wait || true
cat aggregator.out
grep -q "learner 0 registered" aggregator.err && grep -q "learner 1 registered" aggregator.err
grep -q "the aggregator ended the run" learner-0.err
[ "$status" -eq 0 ] && echo "tcp demo ok"
exit "$status"
