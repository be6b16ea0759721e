#!/usr/bin/env bash
# Federated MLP on Fashion-MNIST: installs what is missing, builds in Release and runs the demo.
#   ./scripts/demo.sh [--rounds N] [--learners K] [--seconds S]         10 in-memory learners
#   ./scripts/demo.sh --tcp [--port P] [--rounds N] [--learners K] ...  an aggregator process and
#                                                                       K learner processes on 127.0.0.1
#   ./scripts/demo.sh --secure [--port P] [--rounds N] ...           the --tcp federation with secure
#                                          aggregation (SecAgg+); one learner is killed in round 3
#   ./scripts/demo.sh --hierarchy [--port P] [--rounds N] ...        a root aggregator, 2 edge aggregators
#                                          and 10 learner processes on 127.0.0.1 (hierarchical FL)
#   ./scripts/demo.sh --torch [--tcp] [--rounds N] [--channels C] ...  a LibTorch CNN, in memory or as an
#                                          aggregator and 10 learner processes (needs libtorch-dev)
#   ./scripts/demo.sh --mpi [--ranks R] [--rounds N] ...          the same federation across R (4) MPI
#                                          ranks on this machine, rank 0 coordinating
#   ./scripts/demo.sh --dp [--epsilon E|none] [--rounds T] [--learners N] [--sampling-rate Q]
#                                          learner-level differential privacy: 6,000 learners
#                                          made on demand, Poisson sampling, epsilon 8 at 1e-5
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

build="$FLOTILLA_ROOT/build/release"
cmake -S "$FLOTILLA_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFLOTILLA_BUILD_TESTS=OFF >/dev/null

# The value given as --NAME among the arguments, or DEFAULT.
flag_value() {  # <name> <default> <arguments...>
  local name="$1" value="$2"
  shift 2
  while [ $# -gt 0 ]; do
    [ "$1" = "--$name" ] && [ $# -ge 2 ] && value="$2"
    shift
  done
  echo "$value"
}

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

if [ "${1:-}" = "--mpi" ]; then
  # Ranks on this machine may outnumber its cores (--oversubscribe); root needs mpirun's consent.
  shift
  ranks=$(flag_value ranks 4 "$@")
  forwarded=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--ranks" ]; then shift 2; else forwarded+=("$1"); shift; fi
  done
  as_root=()
  [ "$(id -u)" = 0 ] && as_root=(--allow-run-as-root)
  cmake --build "$build" --target 09_mpi_fashion_mnist -j "$FLOTILLA_JOBS"
  mpirun --oversubscribe "${as_root[@]}" -np "$ranks" "$build/examples/09_mpi_fashion_mnist" --history-csv "$history" \
    "${forwarded[@]}"
  plot_history
  exit 0
fi

if [ "${1:-}" = "--torch" ]; then
  # A LibTorch CNN: in memory, or with --tcp an aggregator and K learner processes of the same program.
  shift
  cmake --build "$build" --target 08_torch_cnn -j "$FLOTILLA_JOBS"
  if [ "${1:-}" != "--tcp" ]; then
    "$build/examples/08_torch_cnn" --history-csv "$history" "$@"
    plot_history
    exit 0
  fi
  shift
  learners=$(flag_value learners 10 "$@")
  port=$(flag_value port 7800 "$@")
  trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
  "$build/examples/08_torch_cnn" --aggregate yes --history-csv "$history" "$@" &
  aggregator=$!
  for ((id = 0; id < learners; id++)); do
    "$build/examples/08_torch_cnn" --learner "$id" --learners "$learners" --port "$port" 2>"$build/learner-$id.log" &
  done
  echo "started $learners learner processes (logs: $build/learner-*.log)"
  wait "$aggregator"
  plot_history
  exit 0
fi

if [ "${1:-}" = "--hierarchy" ]; then
  shift
  port=$(flag_value port 7700 "$@")
  cmake --build "$build" --target tcp_aggregator tcp_edge tcp_learner -j "$FLOTILLA_JOBS"
  pids=()
  trap 'kill $(jobs -p) "${pids[@]}" 2>/dev/null || true' EXIT
  # The root asks both edges each round; each edge asks its five learners and passes the round
  # through, so the root's FedAvg is FedAvg over all ten.
  "$build/examples/tcp_aggregator" --address 127.0.0.1 --port "$port" --learners 2 --quorum 2 \
    --history-csv "$history" "$@" &
  aggregator=$!
  for edge in 0 1; do
    "$build/examples/tcp_edge" --id "$edge" --port $((port + 1 + edge)) --parent-port "$port" --learners 5 \
      >"$build/edge-$edge.log" 2>&1 &
    pids+=($!)
  done
  for ((id = 0; id < 10; id++)); do
    "$build/examples/tcp_learner" --id "$id" --learners 10 --port $((port + 1 + id / 5)) 2>"$build/learner-$id.log" &
    pids+=($!)
  done
  echo "started 2 edge and 10 learner processes (logs: $build/edge-*.log, $build/learner-*.log)"
  wait "$aggregator"
  plot_history
  exit 0
fi

secure=no
if [ "${1:-}" = "--secure" ]; then
  secure=yes
elif [ "${1:-}" != "--tcp" ]; then
  cmake --build "$build" --target 03_fashion_mnist -j "$FLOTILLA_JOBS"
  "$build/examples/03_fashion_mnist" --history-csv "$history" "$@"
  plot_history
  exit 0
fi

shift
learners=$(flag_value learners 10 "$@")
port=$(flag_value port 7700 "$@")
cmake --build "$build" --target tcp_aggregator tcp_learner -j "$FLOTILLA_JOBS"
pids=()
trap 'kill $(jobs -p) "${pids[@]}" 2>/dev/null || true' EXIT
progress="$build/aggregator.out"
"$build/examples/tcp_aggregator" --address 127.0.0.1 --port "$port" --learners "$learners" --history-csv "$history" \
  --secure "$secure" "$@" > >(tee "$progress") &
aggregator=$!
for ((id = 0; id < learners; id++)); do
  "$build/examples/tcp_learner" --id "$id" --learners "$learners" --port "$port" --secure "$secure" \
    2>"$build/learner-$id.log" &
  pids+=($!)
  disown "$!"  # its death is reported below, not by the shell
done
echo "started $learners learner processes (logs: $build/learner-*.log)"
if [ "$secure" = yes ]; then
  # Once round 2 is reported, round 3 is under way: the last learner dies in it, mid-training.
  (until grep -q "^round  2:" "$progress" 2>/dev/null; do sleep 0.05; done
   sleep 0.2
   kill -9 "${pids[-1]}" && echo "killed learner $((learners - 1)) (pid ${pids[-1]}) during round 3") &
fi
wait "$aggregator"
plot_history
