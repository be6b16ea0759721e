#!/usr/bin/env bash
# Builds the benchmarks in Release and runs them, one machine-readable line per measurement:
#   name=... value=... unit=... baseline=... ratio=...
# Ratios compare Flotilla with a baseline measured in the same run; absolute values on a shared
# machine mean little. The strategy experiments take about half an hour and run separately:
# build/bench/benchmarks/bench_experiments [rounds] [all|non-iid|attack|attack-decaying|krum].
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# numpy for bench_aggregation's numpy column, gnuplot for the throughput plot.
flotilla_install_packages python3-numpy gnuplot-nox

build="$FLOTILLA_ROOT/build/bench"
cmake -S "$FLOTILLA_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFLOTILLA_BUILD_BENCHMARKS=ON \
  -DFLOTILLA_BUILD_TESTS=OFF -DFLOTILLA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$FLOTILLA_JOBS" >/dev/null

for benchmark in aggregation serialization checksum round_overhead coordinator_memory tcp_round simulation privacy \
  secure_aggregation compression; do
  echo "# bench_$benchmark"
  "$build/benchmarks/bench_$benchmark"
done

# Batched FedAvg throughput against learners and model size, plotted next to its bound.
echo "# bench_aggregation sweep"
sweep="$build/aggregation_sweep.dat"
"$build/benchmarks/bench_aggregation" sweep | tee "$build/aggregation_sweep.txt"
awk '{ for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
       print v["parameters"], v["learners"], v["value"], v["baseline_value"] }' "$build/aggregation_sweep.txt" >"$sweep"
plot="$FLOTILLA_ROOT/benchmarks/results/aggregation_throughput.svg"
mkdir -p "$(dirname "$plot")"
gnuplot <<EOF
set terminal svg size 760,440 dynamic font "sans,12"
set output "$plot"
set title "Batched FedAvg on 2 cores: Flotilla (solid) and a plain two-thread loop (dashed)"
set xlabel "updates folded in the round (learners)"
set ylabel "input GB/s"
set logscale x 2
set xtics (2, 5, 10, 20)
set xrange [1.8:22]
set yrange [0:*]
set key left top
sizes = "1000000 5000000 25000000"
plot for [i = 1:3] "$sweep" using 2:(\$1 == word(sizes, i) + 0 ? \$3 : NaN) with linespoints lw 2 lc i \
       title sprintf("%s M parameters", word("1 5 25", i)), \
     for [i = 1:3] "$sweep" using 2:(\$1 == word(sizes, i) + 0 ? \$4 : NaN) with lines dt 2 lc i notitle
EOF
echo "# plot written to ${plot#"$FLOTILLA_ROOT"/}"

# Compile time: a file using Flotilla against one including only what Flotilla builds on, header-
# only and in the compiled mode (FLOTILLA_SEPARATE_COMPILATION, which linking flotilla::compiled
# defines: the common instantiations are then compiled once in the library, not in the file).
compile_seconds() {  # <source> [flags...]: the best of three compilations, in seconds
  local source="$1" best="" start end
  shift
  for _ in 1 2 3; do
    start=$(date +%s%N)
    g++ -std=c++20 -O2 -I"$FLOTILLA_ROOT/include" -I/usr/include/eigen3 -DASIO_STANDALONE "$@" -c "$source" -o /dev/null
    end=$(date +%s%N)
    best=$(awk -v b="$best" -v t="$(((end - start) / 1000000))" 'BEGIN { print (b == "" || t < b) ? t : b }')
  done
  awk -v ms="$best" 'BEGIN { printf "%.2f", ms / 1000 }'
}
report_compile() {  # <name> <subject seconds> <baseline name> <baseline seconds>
  awk -v n="$1" -v s="$2" -v b="$3" -v bs="$4" \
    'BEGIN { printf "name=%s value=%s unit=s baseline=%s ratio=%.3f\n", n, s, b, s / bs }'
}
echo "# compile time (g++ -O2, best of 3)"
sources="$FLOTILLA_ROOT/benchmarks/compile_time"
compiled=-DFLOTILLA_SEPARATE_COMPILATION
eigen_cereal=$(compile_seconds "$sources/eigen_cereal_only.cpp")
report_compile compile_time_mlp "$(compile_seconds "$sources/federate_mlp.cpp")" eigen_cereal_headers_s "$eigen_cereal"
report_compile compile_time_mlp_compiled "$(compile_seconds "$sources/federate_mlp.cpp" $compiled)" \
  eigen_cereal_headers_s "$eigen_cereal"
report_compile compile_time_mlp_compiled_lean_includes \
  "$(compile_seconds "$sources/federate_mlp_lean.cpp" $compiled)" eigen_cereal_headers_s "$eigen_cereal"
asio=$(compile_seconds "$sources/asio_only.cpp")
report_compile compile_time_tcp_learner "$(compile_seconds "$sources/tcp_learner.cpp")" asio_header_s "$asio"
report_compile compile_time_tcp_learner_compiled "$(compile_seconds "$sources/tcp_learner.cpp" $compiled)" \
  asio_header_s "$asio"
report_compile compile_time_tcp_learner_compiled_lean_includes \
  "$(compile_seconds "$sources/tcp_learner_lean.cpp" $compiled)" asio_header_s "$asio"
report_compile compile_time_own_model "$(compile_seconds "$FLOTILLA_ROOT/examples/01_your_own_model.cpp")" \
  standard_headers_s "$(compile_seconds "$sources/own_model_std_only.cpp")"
