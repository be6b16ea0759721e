#!/usr/bin/env bash
# bench_mpi on 1, 2 and 4 ranks of this machine: 100,000 learners made on demand, 1,000 a round.
# Ranks beyond the cores share them (--oversubscribe), so on a small machine this shows what the
# transport costs, not a speed-up; each rank gets cores / ranks worker threads.
# Usage: benchmarks/mpi_scaling.sh [learners] [selected] [rounds]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/setup.sh"
build="$FLOTILLA_ROOT/build/bench"
cmake -S "$FLOTILLA_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFLOTILLA_BUILD_BENCHMARKS=ON \
  -DFLOTILLA_BUILD_TESTS=OFF -DFLOTILLA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target bench_mpi -j "$FLOTILLA_JOBS" >/dev/null
as_root=()
[ "$(id -u)" = 0 ] && as_root=(--allow-run-as-root)
for ranks in 1 2 4; do
  mpirun --oversubscribe "${as_root[@]}" -np "$ranks" "$build/benchmarks/bench_mpi" "$@"
done
