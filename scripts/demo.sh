#!/usr/bin/env bash
# Federated MLP on Fashion-MNIST: installs what is missing, builds in Release and runs the demo.
#   ./scripts/demo.sh [--rounds N] [--learners K] [--seconds S]         10 in-memory learners
#   ./scripts/demo.sh --tcp [--port P] [--rounds N] [--learners K] ...  an aggregator process and
#                                                                       K learner processes on 127.0.0.1
#   ./scripts/demo.sh --dp [--epsilon E|none] [--rounds T] [--learners N] [--sampling-rate Q]
#                                          learner-level differential privacy: 6,000 learners
#                                          made on demand, Poisson sampling, epsilon 8 at 1e-5
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

build="$FLOTILLA_ROOT/build/release"
cmake -S "$FLOTILLA_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFLOTILLA_BUILD_TESTS=OFF >/dev/null

# Each run writes its history beside its output and plots it (scripts/plot_history.sh).
history="$build/demo_history.csv"
plot_history() { "$FLOTILLA_ROOT/scripts/plot_history.sh" "$history" "${history%.csv}.svg"; }

if [ "${1:-}" = "--dp" ]; then
  shift
  cmake --build "$build" --target 07_private_federation -j "$FLOTILLA_JOBS"
  "$build/examples/07_private_federation" --history-csv "$history" "$@"
  plot_history
  exit 0
fi

if [ "${1:-}" != "--tcp" ]; then
  cmake --build "$build" --target 03_fashion_mnist -j "$FLOTILLA_JOBS"
  "$build/examples/03_fashion_mnist" --history-csv "$history" "$@"
  plot_history
  exit 0
fi

shift
learners=10
port=7700
arguments=("$@")
for ((i = 0; i < ${#arguments[@]}; i++)); do
  case "${arguments[$i]}" in
    --learners) learners="${arguments[$((i + 1))]}" ;;
    --port) port="${arguments[$((i + 1))]}" ;;
  esac
done
cmake --build "$build" --target tcp_aggregator tcp_learner -j "$FLOTILLA_JOBS"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"$build/examples/tcp_aggregator" --address 127.0.0.1 --port "$port" --learners "$learners" --history-csv "$history" "$@" &
aggregator=$!
for ((id = 0; id < learners; id++)); do
  "$build/examples/tcp_learner" --id "$id" --learners "$learners" --port "$port" 2>"$build/learner-$id.log" &
done
echo "started $learners learner processes (logs: $build/learner-*.log)"
wait "$aggregator"
plot_history
