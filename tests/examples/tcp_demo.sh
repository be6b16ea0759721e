#!/bin/sh
# The TCP examples end to end: an aggregator and N learner processes (2 by default) on 127.0.0.1
# for two rounds; further arguments go to every process (e.g. --secure yes). With KILL_LAST=yes in
# the environment the last learner is killed as soon as round 1 is reported, so it drops out of
# round 2 while that round runs on.
# Usage: tcp_demo.sh AGGREGATOR LEARNER [N [ARGUMENTS...]]
set -eu
aggregator_program=$1
learner_program=$2
learners=${3:-2}
[ $# -ge 3 ] && shift 3 || shift 2
port=$((20000 + $$ % 20000))
"$aggregator_program" --address 127.0.0.1 --port "$port" --learners "$learners" --rounds 2 "$@" > aggregator.out 2> aggregator.err &
aggregator=$!
id=0
while [ "$id" -lt "$learners" ]; do
  "$learner_program" --id "$id" --learners "$learners" --port "$port" "$@" 2> "learner-$id.err" &
  last=$!
  id=$((id + 1))
done
if [ "${KILL_LAST:-no}" = yes ]; then
  until grep -q "^round  1:" aggregator.out 2>/dev/null; do sleep 0.02; done
  kill -9 "$last"
  echo "killed learner $((learners - 1))"
fi
status=0
wait "$aggregator" || status=$?
wait || true
cat aggregator.out
grep -q "learner 0 registered" aggregator.err && grep -q "learner 1 registered" aggregator.err
grep -q "the aggregator ended the run" learner-0.err
[ "$status" -eq 0 ] && echo "tcp demo ok"
exit "$status"
