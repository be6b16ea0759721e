#!/usr/bin/env bash
# Builds the benchmarks in Release and runs them, one machine-readable line per measurement:
#   name=... value=... unit=... baseline=... ratio=...
# Ratios compare Flotilla with a baseline measured in the same run; absolute values on a shared
# machine mean little. The strategy experiments take about 15 minutes and run separately:
# build/bench/benchmarks/bench_experiments [rounds] [all|non-iid|attack].
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

build="$FLOTILLA_ROOT/build/bench"
cmake -S "$FLOTILLA_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFLOTILLA_BUILD_BENCHMARKS=ON \
  -DFLOTILLA_BUILD_TESTS=OFF -DFLOTILLA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$FLOTILLA_JOBS" >/dev/null

for benchmark in aggregation serialization checksum round_overhead coordinator_memory tcp_round; do
  echo "# bench_$benchmark"
  "$build/benchmarks/bench_$benchmark"
done

# Compile time: a file using Flotilla against one including only what Flotilla builds on.
compile_seconds() {  # <source>: the best of three compilations, in seconds
  local best="" start end
  for _ in 1 2 3; do
    start=$(date +%s%N)
    g++ -std=c++20 -O2 -I"$FLOTILLA_ROOT/include" -I/usr/include/eigen3 -DASIO_STANDALONE -c "$1" -o /dev/null
    end=$(date +%s%N)
    best=$(awk -v b="$best" -v t="$(((end - start) / 1000000))" 'BEGIN { print (b == "" || t < b) ? t : b }')
  done
  awk -v ms="$best" 'BEGIN { printf "%.2f", ms / 1000 }'
}
report_compile() {  # <name> <subject source> <baseline name> <baseline source>
  local subject baseline
  subject=$(compile_seconds "$2")
  baseline=$(compile_seconds "$4")
  awk -v n="$1" -v s="$subject" -v b="$3" -v bs="$baseline" \
    'BEGIN { printf "name=%s value=%s unit=s baseline=%s ratio=%.3f\n", n, s, b, s / bs }'
}
echo "# compile time (g++ -O2, best of 3)"
sources="$FLOTILLA_ROOT/benchmarks/compile_time"
report_compile compile_federate_mlp "$sources/federate_mlp.cpp" eigen_cereal_headers_s "$sources/eigen_cereal_only.cpp"
report_compile compile_tcp_learner "$sources/tcp_learner.cpp" asio_header_s "$sources/asio_only.cpp"
